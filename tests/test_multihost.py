"""Multi-host: 2 processes x 2 CPU devices, joined by jax.distributed through
``launch/local_multiprocess.sh``, train and evaluate like 1 process x 4 devices; under
SLURM (emulated) they join by themselves, and SIGTERM to one of them stops both at the
same step with a checkpoint."""

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
from cli_runs import REPO, TINY, main_command

# Sums over the global batch are reduced in another order: float32 round-off.
RTOL = 1e-5
FLAGS = [*TINY, "--config.data.buckets=((24, 24),)", "--config.train.num_steps=6",
         "--config.train.log_every=1"]


def _losses(workdir) -> dict[int, float]:
    """train/loss by step from the TensorBoard events, which process 0 alone writes."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    (events,) = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
    return {event.step: float(tensor_util.make_ndarray(value.tensor))
            for event in event_file_loader.EventFileLoader(events).Load()
            for value in event.summary.value if value.tag == "train/loss"}


def test_two_processes_match_one_process_with_four_devices(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    two = subprocess.Popen(
        ["bash", "launch/local_multiprocess.sh", "2", f"--workdir={tmp_path / 'two'}",
         *FLAGS], cwd=REPO, env=dict(env, PYTHON=sys.executable, DEVICES_PER_PROCESS="2"),
        stderr=subprocess.PIPE, text=True)
    one = subprocess.run(
        main_command(tmp_path / "one", *FLAGS), cwd=REPO, capture_output=True, text=True,
        env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4"), timeout=600)
    two_stderr = two.communicate(timeout=600)[1]
    assert two.returncode == 0, two_stderr[-5000:]
    assert one.returncode == 0, one.stderr[-3000:]
    assert "process 1 of 2, 2 of 4 devices" in two_stderr

    curve_one, curve_two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert list(curve_two) == list(curve_one) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(list(curve_two.values()), list(curve_one.values()), rtol=RTOL)
    assert len(set(curve_one.values())) == 6  # the parameters do change

    # Evaluation gathers every row to every process; process 0 writes the report.
    reports = [json.loads((tmp_path / run / "eval" / "test" / "metrics.json").read_text())
               for run in ("one", "two")]
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
        slurm = {"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2",
                 "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                 "JAX_COORDINATOR_PORT": str(port)}  # what srun sets for each task
        env = dict(os.environ, **slurm, JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
        with open(tmp_path / f"stderr{rank}.txt", "w") as stderr:
            processes.append(subprocess.Popen(
                main_command(tmp_path / "run", *FLAGS, f"--config.train.num_steps={num_steps}",
                             "--config.distributed.coordinator_address=auto"),
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
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
    saved = [re.findall(r"SIGTERM: stopped after saving the checkpoint of step (\d+)", text)
             for text in stderr]
    assert saved[0] == saved[1] and len(saved[0]) == 1, saved
    step = int(saved[0][0])
    assert 8 <= step < num_steps
    assert max(int(name) for name in os.listdir(tmp_path / "run" / "checkpoints")) == step
