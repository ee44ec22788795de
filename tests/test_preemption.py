"""Preemption and crashes: SIGTERM is noted until the next step boundary; through the
command line, SIGKILL at a random step and a restart end bit-identical to an
uninterrupted run, SIGTERM saves and exits 0, and a run of non-finite steps stops
training with an error and keeps the checkpoints."""

import os
import re
import signal
import subprocess

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from cli_runs import REPO, TINY, main_command, run_main

from s2s_jax.runtime.preemption import Preemption

NUM_STEPS = 30
FLAGS = [
    *TINY,
    "--config.data.buckets=((24, 24),)",
    f"--config.train.num_steps={NUM_STEPS}",
    "--config.train.log_every=1",
    "--config.train.eval_every=1000",
]


def _checkpoint(workdir, step: int | None = None):
    """The raw training state of a checkpoint (default: the latest), as nested dicts."""
    steps = [int(name) for name in os.listdir(workdir / "checkpoints")]
    step = max(steps) if step is None else step
    return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")


def _start_until(workdir, step: int) -> subprocess.Popen:
    """Starts training and returns once it has logged ``step``."""
    process = subprocess.Popen(
        main_command(workdir, *FLAGS),
        cwd=REPO,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for line in process.stderr:
        if f"] step {step}/{NUM_STEPS}:" in line:
            return process
    raise AssertionError(f"training ended before step {step}: exit {process.wait()}")


def _assert_same_state(workdir, expected, context: str) -> None:
    state = _checkpoint(workdir, NUM_STEPS)
    assert int(state["step"]) == NUM_STEPS
    for key in ("params", "opt_state", "skipped"):
        for a, b in zip(jax.tree.leaves(state[key]), jax.tree.leaves(expected[key]), strict=True):
            assert np.array_equal(a, b), f"{key} differ ({context})"


def test_sigterm_is_reported_at_the_next_step_and_the_handler_restored():
    before = signal.getsignal(signal.SIGTERM)
    with Preemption() as preemption:
        assert not preemption.reached(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.reached(2)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    run = run_main(workdir, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    return _checkpoint(workdir, NUM_STEPS)


def test_sigkill_at_a_random_step_then_restart_ends_bit_identical(tmp_path, uninterrupted):
    kill_at = int(np.random.default_rng().integers(6, 21))
    process = _start_until(tmp_path, kill_at)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    run = run_main(tmp_path, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    resumed = re.search(r"resuming at step (\d+)", run.stderr)
    resumed = int(resumed[1]) if resumed else 0  # killed before the first save completed
    assert resumed <= kill_at + 5 and resumed < NUM_STEPS, (kill_at, resumed)
    _assert_same_state(tmp_path, uninterrupted, f"killed at step {kill_at}, resumed at {resumed}")


def test_sigterm_saves_the_next_step_and_exits_0(tmp_path, uninterrupted):
    process = _start_until(tmp_path, 8)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=600)[1]
    assert process.returncode == 0, stderr[-3000:]
    saved = int(re.search(r"SIGTERM: stopped after saving the checkpoint of step (\d+)", stderr)[1])
    assert 8 <= saved < NUM_STEPS
    assert max(int(name) for name in os.listdir(tmp_path / "checkpoints")) == saved
    assert not (tmp_path / "eval").exists()  # stopped without the final evaluation
    run = run_main(tmp_path, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"resuming at step {saved}" in run.stderr
    _assert_same_state(tmp_path, uninterrupted, f"stopped at step {saved}")


def test_a_run_of_nonfinite_steps_stops_training(tmp_path):
    # Plain SGD at 1e38 overflows the parameters after one step; every later loss is NaN.
    run = run_main(
        tmp_path,
        *FLAGS,
        "--config.train.optimizer=sgd",
        "--config.train.learning_rate=1e38",
        "--config.train.grad_clip_norm=0",
        "--config.train.max_consecutive_nonfinite=3",
        "--config.train.checkpoint_every=2",
    )
    assert run.returncode == 1
    stopped = re.search(
        r"error: training stopped at step (\d+): the loss or gradient was "
        r"not finite at 3 steps in a row",
        run.stderr,
    )
    assert stopped, run.stderr[-3000:]
    state = _checkpoint(tmp_path)
    assert 0 < int(state["step"]) <= int(stopped[1]) and int(state["skipped"]) > 0
    assert all(np.isfinite(p).all() for p in jax.tree.leaves(state["params"]))


def test_a_garbled_latest_checkpoint_is_passed_over_and_the_rerun_ends_bit_identical(
    tmp_path, uninterrupted
):
    process = _start_until(tmp_path, 12)
    process.send_signal(signal.SIGTERM)
    assert process.communicate(timeout=600)[1] is not None and process.returncode == 0
    latest = max(int(name) for name in os.listdir(tmp_path / "checkpoints"))
    data = [
        os.path.join(root, name)
        for root, _, names in os.walk(tmp_path / "checkpoints" / str(latest) / "default")
        for name in names
    ]
    with open(max(data, key=os.path.getsize), "r+b") as f:  # 4 KiB flipped mid-file
        f.seek(os.path.getsize(f.name) // 2)
        block = f.read(4096)
        f.seek(os.path.getsize(f.name) // 2)
        f.write(bytes(b ^ 0xFF for b in block))
    run = run_main(tmp_path, *FLAGS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Cannot restore checkpoint {latest} of" in run.stderr
    assert "does not match its checksum" in run.stderr
    resumed = int(re.search(r"resuming at step (\d+)", run.stderr)[1])
    assert resumed < latest
    _assert_same_state(tmp_path, uninterrupted, f"step {latest} garbled, resumed at {resumed}")
