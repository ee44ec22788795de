"""Running the command line from tests: a tiny training config and the runners."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config=configs/synthetic.py:reversal",
    "--config.data.train_size=512",
    "--config.data.eval_size=20",
    "--config.data.batch_size=32",
    "--config.eval.batch_size=8",
    "--config.model.embed_dim=8",
    "--config.model.hidden_size=16",
    "--config.model.attention_dim=16",
    "--config.train.log_every=5",
    "--config.train.eval_every=10",
    "--config.train.checkpoint_every=5",
]


def main_command(workdir, *flags) -> list[str]:
    """``python -m s2s_jax.main`` with ``workdir`` relative to the repository root."""
    return [
        sys.executable,
        "-m",
        "s2s_jax.main",
        f"--workdir={os.path.relpath(workdir, REPO)}",
        *flags,
    ]


def run_main(workdir, *flags, stdin=None, env=None) -> subprocess.CompletedProcess:
    """Runs the CLI from the repository root to completion, capturing text output."""
    return subprocess.run(
        main_command(workdir, *flags),
        cwd=REPO,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def host_devices(count: int) -> str:
    """XLA_FLAGS for ``count`` CPU devices, after the flags this process runs with."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
