"""Multi-host: 2 processes x 2 CPU devices, joined by jax.distributed through
``launch/local_multiprocess.sh``, train and evaluate like 1 process x 4 devices; under
SLURM (emulated) they join by themselves, and SIGTERM to one of them stops both at the
same step with a checkpoint. The Checkpointer saves and restores from 2 processes
(``_save_and_restore`` below, executed as a script in each).
"""

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from cli_runs import REPO, TINY, host_devices, main_command

# Sums over the global batch are reduced in another order: float32 round-off.
RTOL = 1e-5
FLAGS = [
    *TINY,
    "--config.data.buckets=((24, 24),)",
    "--config.train.num_steps=6",
    "--config.train.log_every=1",
]


def _losses(workdir) -> dict[int, float]:
    """train/loss by step from the TensorBoard events, which process 0 alone writes."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    (events,) = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
    return {
        event.step: float(tensor_util.make_ndarray(value.tensor))
        for event in event_file_loader.EventFileLoader(events).Load()
        for value in event.summary.value
        if value.tag == "train/loss"
    }


def test_two_processes_match_one_process_with_four_devices(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    with open(tmp_path / "two.log", "w") as log:
        two = subprocess.Popen(
            ["bash", "launch/local_multiprocess.sh", "2", f"--workdir={tmp_path / 'two'}", *FLAGS],
            cwd=REPO,
            env=dict(env, PYTHON=sys.executable, DEVICES_PER_PROCESS="2"),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    one = subprocess.run(
        main_command(tmp_path / "one", *FLAGS),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(env, XLA_FLAGS=host_devices(4)),
        timeout=600,
    )
    two.wait(timeout=600)
    two_stderr = (tmp_path / "two.log").read_text()
    assert two.returncode == 0, two_stderr[-5000:]
    assert one.returncode == 0, one.stderr[-3000:]
    assert "process 1 of 2, 2 of 4 devices" in two_stderr

    curve_one, curve_two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert list(curve_two) == list(curve_one) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(list(curve_two.values()), list(curve_one.values()), rtol=RTOL)
    assert len(set(curve_one.values())) == 6  # the parameters do change

    # Evaluation gathers every row to every process; process 0 writes the report.
    reports = [
        json.loads((tmp_path / run / "eval" / "test" / "metrics.json").read_text())
        for run in ("one", "two")
    ]
    assert reports[0]["step"] == reports[1]["step"] == 6
    np.testing.assert_allclose(reports[1]["loss"], reports[0]["loss"], rtol=RTOL)
    hypotheses = (tmp_path / "two" / "eval" / "test" / "hypotheses.txt").read_text()
    assert len(hypotheses.splitlines()) == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_job_joins_by_itself_and_sigterm_to_one_process_stops_both(tmp_path):
    port, num_steps = _free_port(), 60
    processes = []
    for rank in range(2):
        slurm = {
            "SLURM_JOB_ID": "1",
            "SLURM_STEP_NODELIST": "127.0.0.1",
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "JAX_COORDINATOR_PORT": str(port),
        }  # what srun sets for each task
        env = dict(
            os.environ,
            **slurm,
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=host_devices(2),
        )
        with open(tmp_path / f"stderr{rank}.txt", "w") as stderr:
            processes.append(
                subprocess.Popen(
                    main_command(
                        tmp_path / "run",
                        *FLAGS,
                        f"--config.train.num_steps={num_steps}",
                        "--config.distributed.coordinator_address=auto",
                    ),
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
    log = tmp_path / "stderr0.txt"
    while f"] step 8/{num_steps}:" not in log.read_text():
        assert processes[0].poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)  # process 0 hears of it from JAX's service
    for process in processes:
        process.wait(timeout=600)
    stderr = [(tmp_path / f"stderr{rank}.txt").read_text() for rank in range(2)]
    assert [p.returncode for p in processes] == [0, 0], stderr[0][-3000:] + stderr[1][-3000:]
    assert "process 1 of 2, 2 of 4 devices" in stderr[1]
    assert f"] step 8/{num_steps}:" not in stderr[1]  # INFO lines come from process 0 only
    saved = [
        re.findall(r"SIGTERM: stopped after saving the checkpoint of step (\d+)", text)
        for text in stderr
    ]
    assert saved[0] == saved[1] and len(saved[0]) == 1, saved
    step = int(saved[0][0])
    assert 8 <= step < num_steps
    assert max(int(name) for name in os.listdir(tmp_path / "run" / "checkpoints")) == step


def _save_and_restore(coordinator: str, process_id: int, workdir: str) -> dict:
    """Saves a best and a latest checkpoint at every step, as training does, then
    restores the latest; returns what one process saw."""
    import jax
    import jax.numpy as jnp

    jax.distributed.initialize(coordinator, 2, process_id)
    from s2s_jax.runtime import parallel
    from s2s_jax.runtime.checkpointing import Checkpointer

    state = parallel.replicate({"w": jnp.zeros(1000)}, parallel.make_mesh())
    checkpointer = Checkpointer(workdir, keep=2)
    for step in range(1, 21):
        state = jax.tree.map(lambda x: x + 1, state)
        checkpointer.save_best(step, state, float(step))
        checkpointer.save(step, state)
    checkpointer.wait()
    restored = checkpointer.restore(jax.tree.map(jnp.zeros_like, state))
    return {
        "latest": checkpointer.latest_step(),
        "best": checkpointer.best_step(),
        "restored": float(parallel.fetch(restored["w"])[0]),
    }


def test_checkpointer_saves_latest_and_best_from_two_processes(tmp_path):
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=host_devices(2))
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, coordinator, str(rank), str(tmp_path)],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for rank in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:  # a hung barrier ignores SIGTERM (JAX's preemption service catches it)
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    for stdout, _ in outputs:
        assert json.loads(stdout.splitlines()[-1]) == {"latest": 20, "best": 20, "restored": 20.0}


def _rows_config():
    from s2s_jax.config import base_config

    config = base_config()
    with config.unlocked():
        config.data.update(train_size=400, batch_size=16, buckets=((32, 12),))
    return config


def _read_rows(coordinator: str, process_id: int, workdir: str) -> dict:
    """This process's rows of the first training batches, and how many rows it read
    from the records (which process 0 builds and process 1 opens)."""
    import jax

    jax.distributed.initialize(coordinator, 2, process_id)
    from s2s_jax.training import train

    corpus, batches = train.training_data(_rows_config(), workdir)
    sources = [batches.batch(step)["src"].tolist() for step in range(5)]
    return {"rows_read": corpus.train.rows_read, "sources": sources}


def test_each_process_reads_only_its_own_rows(tmp_path):
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=host_devices(2))
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "rows", coordinator, str(rank), str(tmp_path / "run")],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for rank in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    seen = [json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs]
    assert [process["rows_read"] for process in seen] == [5 * 8, 5 * 8]

    from s2s_jax.training import train  # one process: the whole global batches

    _, batches = train.training_data(_rows_config(), str(tmp_path / "one"))
    for step in range(5):
        assert (
            seen[0]["sources"][step] + seen[1]["sources"][step]
            == batches.batch(step)["src"].tolist()
        )


if __name__ == "__main__":
    script = _read_rows if sys.argv[1] == "rows" else _save_and_restore
    args = sys.argv[2:] if sys.argv[1] == "rows" else sys.argv[1:]
    print(json.dumps(script(args[0], int(args[1]), args[2])))
