"""Multi-host: 2 processes x 2 CPU devices, joined by jax.distributed through
``launch/local_multiprocess.sh``, train and evaluate like 1 process x 4 devices."""

import glob
import json
import os
import subprocess
import sys

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
