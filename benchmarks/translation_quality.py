"""Multi30k quality in one hour: one command trains from scratch, chooses the beam on
val and scores test_2016_flickr; this script runs it and reports what it wrote.

  python -m benchmarks.translation_quality --pair=en-de --workdir=/tmp/quality_en_de

The command it runs and times end to end (vocabulary, training within the config's
``train.time_budget_minutes``, beam size and length penalty chosen on val, test
decoding) is the one a user runs:

  python -m s2s_jax.main --config=configs/multi30k.py:<pair> \
      --config.data.manual_dir=<manual_dir> --workdir=<workdir> [--override ...]

With ``--split=validation`` the run scores val instead and test is never decoded: the
way candidate changes (``--override``) are compared before one is kept.

Reported: wall-clock minutes, steps and epochs trained, the checkpoint kept (best
val BLEU), the parameters chosen on val (that checkpoint's, or a mean of the latest
or the best checkpoints'), the beam chosen on val, and test BLEU as WMT17 scored it
(lowercased, Moses-tokenized, against the official references: the figure the
published systems report, see s2s_jax/evaluation/wmt17.py), sacrebleu's cased BLEU
and chrF. The target is the best published single RNN system the issue names. Prints a
table, then one JSON line.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from absl import app, flags

from s2s_jax.runtime.checkpointing import Checkpointer

FLAGS = flags.FLAGS
flags.DEFINE_string("pair", "en-de", "Direction: configs/multi30k.py:<pair>.")
flags.DEFINE_string("manual_dir", "../shared/data/multi30k", "Multi30k files.")
flags.DEFINE_string("workdir", "/tmp/s2s_quality", "Run directory (emptied first).")
flags.DEFINE_multi_string("override", [], "Extra --config.x=y flags for the run.")
flags.DEFINE_enum(
    "split",
    "test",
    ["test", "validation"],
    "The split scored after training: validation compares candidate changes without "
    "ever decoding test (beam and parameters are chosen on it, as always).",
)

# test_2016_flickr BLEU (WMT17 convention) to beat, from the issue: LIUM-CVC's attentive
# monomodal GRU (Caglayan et al. 2017) for en-de and en-fr; de-en as the issue sets it.
TARGETS = {"en-de": 39.0, "en-fr": 59.0, "de-en": 40.0}


def _parameters(steps: list[int]) -> str:
    """One checkpoint's step, or the steps whose parameters were averaged."""
    return f"step {steps[0]}" if len(steps) == 1 else "mean of steps " + ", ".join(map(str, steps))


def main(argv):
    del argv
    workdir = os.path.abspath(FLAGS.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "s2s_jax.main",
        f"--config=configs/multi30k.py:{FLAGS.pair}",
        f"--config.data.manual_dir={os.path.abspath(FLAGS.manual_dir)}",
        f"--workdir={workdir}",
        *([] if FLAGS.split == "test" else [f"--config.eval.split={FLAGS.split}"]),
        *FLAGS.override,
    ]
    start = time.monotonic()
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
    )
    minutes = (time.monotonic() - start) / 60
    if run.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{run.stderr[-5000:]}")
    steps_per_epoch = int(re.search(r"(\d+) steps per epoch", run.stderr).group(1))
    split = FLAGS.split
    with open(os.path.join(workdir, "eval", split, "metrics.json")) as f:
        report = json.load(f)
    with open(os.path.join(workdir, "eval", "validation", "decoding_grid.json")) as f:
        grid = json.load(f)
    steps = Checkpointer(workdir, best_metric=grid["metric"]).latest_step()
    chosen = grid["chosen"]
    target = TARGETS.get(FLAGS.pair) if split == "test" else None
    rows = [
        ("wall clock, one command (min)", f"{minutes:.1f}"),
        ("steps trained (epochs)", f"{steps} ({steps / steps_per_epoch:.1f})"),
        ("checkpoint kept (best val)", f"step {report['step']}"),
        ("parameters chosen on val", _parameters(report["parameters_of_steps"])),
        (
            "beam chosen on val",
            f"{chosen['beam_size']}, alpha {chosen['alpha']}"
            f" (val {grid['metric']} {chosen[grid['metric']]:.2f})",
        ),
        (f"{split} BLEU, WMT17 convention", f"{report['bleu_wmt17']:.2f}"),
        (f"{split} BLEU, sacrebleu cased 13a", f"{report['bleu']:.2f}"),
        (f"{split} chrF", f"{report['chrf']:.2f}"),
        ("target (WMT17 convention)", f"{target}" if target else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    split_file = "test_2016_flickr" if split == "test" else "val"
    print(f"Multi30k {FLAGS.pair}, {split_file}, single model")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        json.dumps(
            {
                "benchmark": "translation_quality",
                "pair": FLAGS.pair,
                "command": command[1:],
                "wall_clock_minutes": minutes,
                "steps": steps,
                "epochs": steps / steps_per_epoch,
                "best_step": report["step"],
                "parameters_of_steps": report["parameters_of_steps"],
                "decoding": chosen,
                "val_metric": grid["metric"],
                f"{split}_bleu_wmt17": report["bleu_wmt17"],
                f"{split}_bleu_cased": report["bleu"],
                f"{split}_chrf": report["chrf"],
                "bleu_signature": report["bleu_signature"],
                "bleu_wmt17_signature": report["bleu_wmt17_signature"],
                "target_bleu_wmt17": target,
                "met": None if target is None else report["bleu_wmt17"] >= target,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
