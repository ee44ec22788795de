"""The seeds' central experiment: does a fixed-size context vector limit long inputs?

  python -m benchmarks.bottleneck_study --manual_dir=../shared/data/multi30k

On two tasks, a synthetic one with long inputs (``copy``: 1-60 letters) and Multi30k
en-de, trains every variant below with the same budget (steps, batches, sizes,
seed) and reports test BLEU per source-length bucket (1-10, 11-20, 21-30, 31-40,
41-50, 51+ tokens; "-" where a bucket is empty), as a table and as one plot per task
(``--figures``):

  attention            Luong general attention over the encoder states;
  vanilla              the context-vector model (attention none), as Sutskever et al.;
  vanilla, reversed    ... with the source reversed;
  vanilla, 2 / 4 layers  ... deeper (encoder and decoder);
  vanilla, TF 1->0.5   ... with the teacher-forcing ratio decaying linearly to 0.5.

Every model is a unidirectional LSTM whose final states start the decoder (bridge
"copy"); only the named factor changes. What the table shows is what was measured
under this budget, not what the papers claim. Prints the table, then one JSON line.
"""

import json
import os

from absl import app, flags, logging

from configs import multi30k, synthetic
from s2s_jax.evaluation import plots
from s2s_jax.registries import validate
from s2s_jax.runtime import host_memory
from s2s_jax.training.train import train_and_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bottleneck", "One sub-directory per run.")
flags.DEFINE_string("manual_dir", "../shared/data/multi30k", "Multi30k files.")
flags.DEFINE_string(
    "figures",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures"),
    "Where the plots go.",
)
flags.DEFINE_list("tasks", ["copy", "multi30k"], "Tasks to run.")
flags.DEFINE_list("variants", [], "Variants to run (default: all).")
flags.DEFINE_integer("copy_steps", 500, "Training steps per copy-task model.")
flags.DEFINE_integer("multi30k_steps", 250, "Training steps per Multi30k model.")

VANILLA = {"model.attention": "none"}
VARIANTS = {
    "attention": {"model.attention": "general"},
    "vanilla": VANILLA,
    "vanilla, reversed": {**VANILLA, "model.reverse_source": True},
    "vanilla, 2 layers": {**VANILLA, "model.encoder_layers": 2, "model.decoder_layers": 2},
    "vanilla, 4 layers": {**VANILLA, "model.encoder_layers": 4, "model.decoder_layers": 4},
    "vanilla, TF 1->0.5": {**VANILLA, "train.teacher_forcing_end": 0.5},
}


def _copy_task():
    config = synthetic.get_config("copy")
    config.model.update(embed_dim=64, hidden_size=128, dropout=0.0)
    config.train.num_steps = FLAGS.copy_steps
    return config


def _multi30k_task():
    config = multi30k.get_config("en-de")
    config.data.manual_dir = FLAGS.manual_dir
    config.model.update(embed_dim=256, hidden_size=256)
    config.train.num_steps = FLAGS.multi30k_steps
    config.train.decay_start_epoch = 100.0  # a short budget: no decay
    return config


TASKS = {"copy": _copy_task, "multi30k": _multi30k_task}


def _config(task: str, overrides: dict):
    config = TASKS[task]()
    config.model.update(bidirectional=False, bridge="copy")
    train = config.train
    train.update(
        eval_every=train.num_steps,
        checkpoint_every=train.num_steps,
        log_every=max(train.num_steps // 4, 1),
        best_metric="bleu",
        teacher_forcing_steps=train.num_steps,
    )
    config.eval.update(decoder="greedy", num_heatmaps=0)
    for key, value in overrides.items():
        block, field = key.split(".")
        config[block][field] = value
    validate(config)
    return config


def main(argv):
    del argv
    host_memory.reuse_freed_memory()
    variants = FLAGS.variants or list(VARIANTS)
    os.makedirs(FLAGS.figures, exist_ok=True)
    results = {}
    for task in FLAGS.tasks:
        results[task] = {}
        for name in variants:
            workdir = os.path.join(
                FLAGS.workdir, task, name.replace(", ", "_").replace(" ", "_").replace(">", "")
            )
            logging.info("bottleneck study: %s / %s in %s", task, name, workdir)
            metrics = train_and_evaluate(_config(task, VARIANTS[name]), workdir)
            with open(os.path.join(workdir, "eval", "test", "metrics.json")) as f:
                by_length = json.load(f)["bleu_by_length"]
            results[task][name] = {"bleu": metrics["bleu"], "by_length": by_length}
        buckets = [row["bucket"] for row in next(iter(results[task].values()))["by_length"]]
        plots.bleu_by_length(
            buckets,
            {name: [row["bleu"] for row in r["by_length"]] for name, r in results[task].items()},
            os.path.join(FLAGS.figures, f"bottleneck_{task}.png"),
        )
    for task, rows in results.items():
        first = next(iter(rows.values()))["by_length"]
        counts = ", ".join(f"{row['bucket']}: {row['sentences']}" for row in first)
        print(f"\n{task}: test BLEU by source length (sentences per bucket: {counts})")
        print(f"{'variant':<20} {'all':>6} " + " ".join(f"{row['bucket']:>7}" for row in first))
        for name, r in rows.items():
            print(
                f"{name:<20} {r['bleu']:>6.2f} "
                + " ".join(
                    f"{'-' if row['bleu'] is None else format(row['bleu'], '.2f'):>7}"
                    for row in r["by_length"]
                )
            )
    print(
        json.dumps(
            {
                "benchmark": "bottleneck_study",
                "copy_steps": FLAGS.copy_steps,
                "multi30k_steps": FLAGS.multi30k_steps,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
