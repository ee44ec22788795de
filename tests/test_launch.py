"""Launch scripts: the commands they run, with gcloud and srun replaced by stubs.

``launch/local_multiprocess.sh`` runs for real in ``test_multihost.py``, and SLURM's
environment is emulated there.
"""

import os
import stat
import subprocess

from cli_runs import REPO

ARGS = [
    "--config=configs/multi30k.py:en-de",
    "--config.data.manual_dir=/mnt/my data/m30k",
    "--config.eval.decoder=beam",
]


def _stub(path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_tpu_pod_runs_main_on_every_worker_with_auto_distributed(tmp_path):
    bin_dir, repo = tmp_path / "bin", tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    _stub(bin_dir / "gcloud", f'printf "%s\\n" "$@" > {tmp_path}/gcloud_args')
    _stub(repo / ".venv" / "bin" / "python", 'printf "%s\\n" "$@"')
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        TPU="pod",
        ZONE="zone",
        WORKDIR="/mnt/runs/a b",
        REPO=str(repo),
    )
    run = subprocess.run(
        ["bash", "launch/tpu_pod.sh", *ARGS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    gcloud = (tmp_path / "gcloud_args").read_text().splitlines()
    assert gcloud[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"]
    assert "--zone=zone" in gcloud and "--worker=all" in gcloud
    command = next(arg for arg in gcloud if arg.startswith("--command="))[len("--command=") :]
    # What each worker's shell runs, with the repository's interpreter echoing its argv.
    worker = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert worker.stdout.splitlines() == [
        "-m",
        "s2s_jax.main",
        *ARGS,
        "--workdir=/mnt/runs/a b",
        "--config.distributed.coordinator_address=auto",
    ]


def test_tpu_pod_names_what_is_missing(tmp_path):
    run = subprocess.run(
        ["bash", "launch/tpu_pod.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert run.returncode != 0 and "set TPU" in run.stderr


def test_slurm_sbatch_starts_one_task_per_gpu_with_auto_distributed(tmp_path):
    _stub(tmp_path / "srun", 'printf "%s\\n" "$@"')
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    run = subprocess.run(
        ["bash", os.path.join(REPO, "launch", "slurm_gpu.sbatch"), *ARGS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "--kill-on-bad-exit=1",
        ".venv/bin/python",
        "-m",
        "s2s_jax.main",
        *ARGS,
        "--config.distributed.coordinator_address=auto",
    ]
    header = open(os.path.join(REPO, "launch", "slurm_gpu.sbatch")).read()
    assert "#SBATCH --signal=TERM@120" in header and "#SBATCH --requeue" in header
