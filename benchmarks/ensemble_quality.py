"""Multi30k ensembles: single models that differ only in their seed, each trained by
the one-hour command of benchmarks/translation_quality.py, then their ensemble (beam
size and length penalty chosen on val for it) scored on test_2016_flickr; and the time
to translate test_2016_flickr at beam 5 with the ensemble against one model.

  python -m benchmarks.ensemble_quality --pair=en-de --seeds=1,2 \
      --manual_dir=../shared/data/multi30k --workdir=/tmp/ensemble_en_de

Each member's run is ``translation_quality --override=--config.seed=<seed>`` (plus any
``--override``) into ``<workdir>/seed_<seed>``; the ensemble's is the command a user runs:

  python -m s2s_jax.main --mode=eval --workdir=<member 1> --ensemble=<member 2>,...

``--members=runs/a,runs/b`` uses trained workdirs instead (their training is then not
timed). The beam-5 timings come from one process: each model translates the source file
once to compile, then one model and the ensemble alternate twice, and the faster of
each pair is kept. Reported: each member's and the ensemble's test BLEU (WMT17
convention where the config asks for it, sacrebleu cased) and chrF, the minutes of all
the runs together, and the two timings with their ratio. Prints a table, then one JSON
line.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

import s2s_jax

FLAGS = flags.FLAGS
flags.DEFINE_string("pair", "en-de", "Direction: configs/multi30k.py:<pair>.")
flags.DEFINE_string("manual_dir", "../shared/data/multi30k", "Multi30k files.")
flags.DEFINE_string("workdir", "/tmp/s2s_ensemble", "Where the members are trained.")
flags.DEFINE_list("seeds", ["1", "2"], "One member per seed (config.seed).")
flags.DEFINE_multi_string("override", [], "Extra --config.x=y flags for every member.")
flags.DEFINE_list("members", [], "Trained workdirs to use instead of training.")
flags.DEFINE_string(
    "source_file", None, "Timed at beam 5; default: <manual_dir>/test_2016_flickr.<source>."
)
flags.DEFINE_string("split", "test", "The split the members and the ensemble reported.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMED_BEAM = 5


def _run(command: list[str]) -> float:
    """Runs ``command`` at the repository root; its minutes. Exits naming it if it
    fails."""
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if run.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{run.stderr[-5000:]}")
    return (time.monotonic() - start) / 60


def _train_members() -> tuple[list[str], float]:
    """Trains one member per seed with translation_quality; their paths and minutes."""
    paths, minutes = [], 0.0
    for seed in FLAGS.seeds:
        path = os.path.join(os.path.abspath(FLAGS.workdir), f"seed_{seed}")
        taken = _run(
            [
                sys.executable,
                "-m",
                "benchmarks.translation_quality",
                f"--pair={FLAGS.pair}",
                f"--manual_dir={os.path.abspath(FLAGS.manual_dir)}",
                f"--workdir={path}",
                f"--override=--config.seed={seed}",
                *(f"--override={flag}" for flag in FLAGS.override),
            ]
        )
        paths.append(path)
        minutes += taken
    return paths, minutes


def _scores(report_dir: str) -> dict:
    """The figures of one evaluation report: ``<report_dir>/eval/<split>/metrics.json``."""
    with open(os.path.join(report_dir, "eval", FLAGS.split, "metrics.json")) as f:
        report = json.load(f)
    keys = ("bleu_wmt17", "bleu", "chrf", "decoding", "parameters_of_steps")
    return {key: report.get(key) for key in keys}


def _beam_seconds(paths: list[str], sources: list[str]) -> tuple[float, float]:
    """Seconds to translate ``sources`` at beam 5: the first model alone, the ensemble."""
    models = [s2s_jax.load(paths[0]), s2s_jax.load(paths)]
    for model in models:  # compiles every shape the file needs
        model.translate(sources, beam_size=TIMED_BEAM)
    best = [float("inf"), float("inf")]
    for _ in range(2):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model.translate(sources, beam_size=TIMED_BEAM)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def _figure(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv):
    del argv
    paths, minutes = (
        ([os.path.abspath(p) for p in FLAGS.members], 0.0) if FLAGS.members else _train_members()
    )
    ensemble_flag = "--ensemble=" + ",".join(paths[1:])
    eval_minutes = _run(
        [
            sys.executable,
            "-m",
            "s2s_jax.main",
            "--mode=eval",
            f"--workdir={paths[0]}",
            ensemble_flag,
        ]
    )
    members = [_scores(path) for path in paths]
    ensemble = _scores(os.path.join(paths[0], "ensemble"))
    src = FLAGS.pair.split("-")[0]
    source_file = FLAGS.source_file or os.path.join(FLAGS.manual_dir, f"test_2016_flickr.{src}")
    with open(source_file, encoding="utf-8") as f:
        sources = f.read().splitlines()
    one, both = _beam_seconds(paths, sources)

    print(f"{FLAGS.pair}, {FLAGS.split}: {len(paths)} members and their ensemble")
    names = [os.path.basename(path) for path in paths]
    width = max(len(name) for name in [*names, "ensemble"])
    print(f"{'model':<{width}} {'BLEU WMT17':>10} {'BLEU cased':>10} {'chrF':>6}  decoding")
    for name, scores in [*zip(names, members), ("ensemble", ensemble)]:
        decoding = scores["decoding"] or {}
        print(
            f"{name:<{width}} {_figure(scores['bleu_wmt17']):>10} {_figure(scores['bleu']):>10}"
            f" {_figure(scores['chrf']):>6}  beam {decoding.get('beam_size')},"
            f" alpha {decoding.get('alpha')}"
        )
    total = minutes + eval_minutes
    print(f"minutes, all runs            {total:.1f} (ensemble eval {eval_minutes:.1f})")
    print(f"beam {TIMED_BEAM}, {len(sources)} lines (s)     one {one:.2f}, ensemble {both:.2f}")
    print(f"ensemble / one model         {both / one:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "ensemble_quality",
                "pair": FLAGS.pair,
                "split": FLAGS.split,
                "members": paths,
                "seeds": None if FLAGS.members else FLAGS.seeds,
                "overrides": FLAGS.override,
                "member_scores": members,
                "ensemble_scores": ensemble,
                "minutes_all_runs": total,
                "ensemble_eval_minutes": eval_minutes,
                "timed_lines": len(sources),
                "beam": TIMED_BEAM,
                "seconds_one_model": one,
                "seconds_ensemble": both,
                "time_ratio": both / one,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
