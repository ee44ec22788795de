"""Runs a benchmark and records its output in benchmarks/RESULTS.md.

  python -m benchmarks.record input_pipeline -- python -m benchmarks.input_pipeline \
      --config=configs/multi30k.py:en-de --config.data.manual_dir=../shared/data/multi30k

The section named by the first argument is replaced (or appended) with the exact
command, the date, the machine and library versions, the benchmark's table and its
final JSON line, so that no figure in RESULTS.md is ever typed by hand. The command
runs at the repository root (where ``python -m benchmarks.NAME`` finds the package),
as a reader of RESULTS.md reruns it.
"""

import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from importlib import metadata

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch")


def _machine() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    cpu = platform.machine()
    if os.path.exists("/proc/cpuinfo"):  # the model: results differ between machines
        models = re.findall(r"^model name\s*:\s*(.+)$", open("/proc/cpuinfo").read(), re.M)
        cpu = models[0] if models else cpu
    return (
        f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}; {', '.join(versions)}"
    )


def _commit() -> str:
    """The checkout's commit, "+changes" when tracked files other than RESULTS.md
    differ from it."""

    def git(*args):
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=os.path.dirname(RESULTS)
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [
        line
        for line in git("status", "--porcelain", "--untracked-files=no").split("\n")
        if line and not line.endswith("RESULTS.md")
    ]
    return commit + ("+changes" if changed else "")


def _section(name: str, command: list[str], output: str, commit: str) -> str:
    lines = output.rstrip("\n").split("\n")
    json.loads(lines[-1])  # a benchmark ends with its JSON line
    table = "\n".join(lines[:-1])
    today = datetime.date.today().isoformat()
    return (
        f"<!-- BEGIN {name} -->\n## {name}\n\n"
        f"Measured {today} at commit {commit} on {_machine()}.\n\n"
        f"```bash\n{shlex.join(command)}\n```\n\n"
        f"```\n{table}\n```\n\n```json\n{lines[-1]}\n```\n<!-- END {name} -->\n"
    )


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(__doc__)
    name, command = argv[1], argv[3:]
    commit = _commit()  # before the run: what was measured
    run = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    sys.stderr.write(run.stderr[-5000:])
    print(run.stdout, end="")
    if run.returncode:
        sys.exit(f"benchmark failed with exit code {run.returncode}; RESULTS.md unchanged")
    section = _section(name, command, run.stdout, commit)
    text = (
        open(RESULTS, encoding="utf-8").read()
        if os.path.exists(RESULTS)
        else (
            "# Benchmark results\n\nEvery section below is written by `benchmarks/record.py` "
            "from the output of the command it shows.\n\n"
        )
    )
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->\n", re.S
    )
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + section
    with open(RESULTS, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv)
