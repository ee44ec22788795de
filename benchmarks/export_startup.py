"""An export against its workdir: bytes on disk, and seconds from start to the first
translated line.

  python -m benchmarks.export_startup --workdir=runs/m30k_en_de --export=exports/en-de \
      --export=exports/en-de-bf16 \
      --reference_checkout=/tmp/s2s_old --reference_flags="--config=configs/multi30k.py:en-de \
      --config.data.manual_dir=../shared/data/multi30k"

Each contestant is a fresh ``python -m s2s_jax.main --mode=translate`` process given one
line on stdin; the clock stops when its translation is read. Contestants run in turn,
``--repeats`` rounds, and the median counts; all decode as ``--translate_flags`` say
(greedy by default, so that every contestant compiles the same search).
``--reference_checkout`` adds the same
command on the workdir from another checkout of s2s_jax (e.g. a commit before exports
existed, which needs its ``--reference_flags``). Sizes: the export against the latest
training checkpoint of the workdir (parameters and optimizer state). With ``--eval``,
each export also scores the workdir's eval split (``--mode=eval --model``), beside the
workdir's own report: a bfloat16 export's BLEU against float32's.
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A trained workdir.", required=True)
flags.DEFINE_multi_string("export", [], "Exports of that workdir.")
flags.DEFINE_string("reference_checkout", None, "Another checkout of s2s_jax (optional).")
flags.DEFINE_string("reference_flags", "", "Its extra translate flags (e.g. its --config).")
flags.DEFINE_string(
    "translate_flags",
    "--config.eval.decoder=greedy",
    "Flags for every contestant (the same decoder for all).",
)
flags.DEFINE_string(
    "line", "Two young men are playing football on a green field.", "The line translated."
)
flags.DEFINE_integer("repeats", 3, "Rounds of all contestants.")
flags.DEFINE_bool(
    "eval",
    True,
    "Also score each export on config.eval.split with "
    "--mode=eval --model (BLEU against the workdir's report).",
)


def _size(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _first_line_seconds(command: list[str], cwd: str, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    process.stdin.write(FLAGS.line + "\n")
    process.stdin.close()
    line = process.stdout.readline()
    seconds = time.perf_counter() - start
    process.wait()
    if process.returncode:
        raise SystemExit(f"error: {shlex.join(command)} exited {process.returncode}")
    return seconds, line.rstrip("\n")


def _eval_metrics(export: str, repo: str) -> dict:
    """``--mode=eval --model=export`` on its config's eval split: its metrics.json."""
    with tempfile.TemporaryDirectory() as reports:
        command = [
            sys.executable,
            "-m",
            "s2s_jax.main",
            "--mode=eval",
            f"--model={export}",
            f"--workdir={reports}",
        ]
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
        (split,) = os.listdir(os.path.join(reports, "eval"))
        with open(os.path.join(reports, "eval", split, "metrics.json")) as f:
            return json.load(f)


def main(argv):
    del argv
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    translate = [sys.executable, "-m", "s2s_jax.main", "--mode=translate"]
    options = shlex.split(FLAGS.translate_flags)  # after any --config
    workdir = f"--workdir={os.path.abspath(FLAGS.workdir)}"
    contestants = {"workdir": (translate + [workdir] + options, repo, dict(os.environ))}
    for path in FLAGS.export:
        contestants[f"export {os.path.basename(os.path.normpath(path))}"] = (
            translate + [f"--model={os.path.abspath(path)}"] + options,
            repo,
            dict(os.environ),
        )
    if FLAGS.reference_checkout:
        reference = os.path.abspath(FLAGS.reference_checkout)
        contestants["workdir, reference checkout"] = (
            translate + [workdir] + shlex.split(FLAGS.reference_flags) + options,
            reference,
            dict(os.environ, PYTHONPATH=reference),
        )
    seconds = {name: [] for name in contestants}
    outputs = {}
    for _ in range(FLAGS.repeats):
        for name, (command, cwd, env) in contestants.items():
            elapsed, outputs[name] = _first_line_seconds(command, cwd, env)
            seconds[name].append(elapsed)
    checkpoints = os.path.join(FLAGS.workdir, "checkpoints")
    latest = max((d for d in os.listdir(checkpoints) if d.isdigit()), key=int)
    checkpoint_bytes = _size(os.path.join(checkpoints, latest))
    base = statistics.median(
        seconds["workdir, reference checkout"] if FLAGS.reference_checkout else seconds["workdir"]
    )
    rows = []
    for name in contestants:
        row = {
            "contestant": name,
            "median_seconds": statistics.median(seconds[name]),
            "seconds": seconds[name],
            "output": outputs[name],
        }
        row["relative_time"] = row["median_seconds"] / base
        if name.startswith("export "):
            path = FLAGS.export[[n for n in contestants if n.startswith("export ")].index(name)]
            row["bytes"] = _size(path)
            row["size_of_checkpoint"] = row["bytes"] / checkpoint_bytes
            if FLAGS.eval:
                metrics = _eval_metrics(os.path.abspath(path), repo)
                row.update(
                    {
                        key: metrics.get(key)
                        for key in ("bleu", "bleu_wmt17", "chrf", "bleu_signature")
                    }
                )
        rows.append(row)
    with open(os.path.join(FLAGS.workdir, "config.json")) as f:
        split = json.load(f)["config"]["eval"]["split"]
    with open(os.path.join(FLAGS.workdir, "eval", split, "metrics.json")) as f:
        report = json.load(f)
    print(
        f"first translated line of {FLAGS.line!r}; latest checkpoint {latest}: "
        f"{checkpoint_bytes / 2**20:.1f} MiB"
    )
    print(
        f"the workdir's report: BLEU {report['bleu']:.2f}, bleu_wmt17 "
        f"{report.get('bleu_wmt17', float('nan')):.2f} ({report['bleu_signature']})"
    )
    print(
        f"{'contestant':<30} {'median s':>9} {'x base':>7} {'MiB':>8} {'x checkpoint':>12} "
        f"{'BLEU':>6} {'wmt17':>6}"
    )
    for r in rows:
        size = (
            f"{r['bytes'] / 2**20:8.1f} {r['size_of_checkpoint']:12.3f}"
            if "bytes" in r
            else " " * 21
        )
        bleu = (
            f"{r['bleu']:6.2f} {r.get('bleu_wmt17') or float('nan'):6.2f}"
            if r.get("bleu") is not None
            else ""
        )
        print(
            f"{r['contestant']:<30} {r['median_seconds']:>9.2f} {r['relative_time']:>7.2f} "
            f"{size} {bleu}"
        )
    print(
        json.dumps(
            {
                "benchmark": "export_startup",
                "checkpoint_bytes": checkpoint_bytes,
                "checkpoint_step": int(latest),
                "repeats": FLAGS.repeats,
                "report_bleu": report["bleu"],
                "report_bleu_wmt17": report.get("bleu_wmt17"),
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
