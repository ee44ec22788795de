"""Multi30k quality in one hour: one command trains from scratch, chooses the beam on
val and scores test_2016_flickr; this script runs it and reports what it wrote.

  python -m benchmarks.translation_quality --pair=en-de --workdir=/tmp/quality_en_de

The command it runs and times end to end (vocabulary, training within the config's
``train.time_budget_minutes``, beam size and length penalty chosen on val, test
decoding) is the one a user runs:

  python -m s2s_jax.main --config=configs/multi30k.py:<pair> \
      --config.data.manual_dir=<manual_dir> --workdir=<workdir> [--override ...]

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
    with open(os.path.join(workdir, "eval", "test", "metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(workdir, "eval", "validation", "decoding_grid.json")) as f:
        grid = json.load(f)
    steps = Checkpointer(workdir, best_metric=grid["metric"]).latest_step()
    chosen = grid["chosen"]
    target = TARGETS.get(FLAGS.pair)
    rows = [
        ("wall clock, one command (min)", f"{minutes:.1f}"),
        ("steps trained (epochs)", f"{steps} ({steps / steps_per_epoch:.1f})"),
        ("checkpoint kept (best val)", f"step {test['step']}"),
        ("parameters chosen on val", _parameters(test["parameters_of_steps"])),
        (
            "beam chosen on val",
            f"{chosen['beam_size']}, alpha {chosen['alpha']}"
            f" (val {grid['metric']} {chosen[grid['metric']]:.2f})",
        ),
        ("test BLEU, WMT17 convention", f"{test['bleu_wmt17']:.2f}"),
        ("test BLEU, sacrebleu cased 13a", f"{test['bleu']:.2f}"),
        ("test chrF", f"{test['chrf']:.2f}"),
        ("target (WMT17 convention)", f"{target}" if target else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"Multi30k {FLAGS.pair}, test_2016_flickr, single model")
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
                "best_step": test["step"],
                "parameters_of_steps": test["parameters_of_steps"],
                "decoding": chosen,
                "val_metric": grid["metric"],
                "test_bleu_wmt17": test["bleu_wmt17"],
                "test_bleu_cased": test["bleu"],
                "test_chrf": test["chrf"],
                "bleu_signature": test["bleu_signature"],
                "bleu_wmt17_signature": test["bleu_wmt17_signature"],
                "target_bleu_wmt17": target,
                "met": None if target is None else test["bleu_wmt17"] >= target,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
