"""The seeds' central experiment: does a fixed-size context vector limit long inputs?

  python -m benchmarks.bottleneck_study --tasks=long --variants=luong \\
      --manual_dir=../shared/data/multi30k
  python -m benchmarks.bottleneck_study --tasks=long --assemble

Trains each variant below on a task, all with the same budget, data, vocabulary and
seed, and reports test BLEU (sacrebleu, with its signature) per source-length bucket
(1-10, 11-20, 21-30, 31-40, 41-50, 51+ tokens; "-" where a bucket is empty). Tasks:

  long      Multi30k en-de with captions joined (configs/multi30k.py:en-de,long): test
            holds every caption, then every 2, 3 and 4 consecutive ones joined;
  multi30k  Multi30k en-de as published (the captions alone): the reference for the
            long task's first 1,000 test sentences;
  copy      the synthetic copy task (1-60 letters), a budget of --copy_steps steps.

The Multi30k tasks train for ``--budget_minutes`` of wall clock each (preparing the
data and compiling included, as a user's run), then decode greedily with the last
checkpoint. Variants (each changes the task's model only as named):

  luong                      the task's model: bidirectional LSTM encoder, Luong
                             general attention with input feeding;
  bahdanau                   ... with additive attention and no input feeding;
  context vector             Sutskever et al.: a unidirectional LSTM encoder whose final
                             states start the decoder, no attention;
  context vector reversed    ... the source fed reversed;
  context vector 2 / 4 layers  ... deeper (encoder and decoder);
  context vector TF 1->0.5   ... the teacher-forcing ratio decaying linearly to 0.5
                             over --teacher_forcing_steps steps;
  transformer                pre-norm Transformer, width 256, 4 + 3 layers (about the
                             LSTM model's parameter count), 500 warm-up steps.

One run (``--variants`` and ``--tasks`` select) prints its table and one JSON line, which
``benchmarks/record.py`` records as section ``bottleneck/<task>/<variant>``. With
``--assemble`` nothing is trained: the recorded sections of each task are read back from
RESULTS.md into one table, one JSON line and one plot per task (``--figures``), BLEU
against length with a line per variant, as Bahdanau et al.'s Figure 2. Each Multi30k
run also scores its first test sentences, the original split, against the official
references (BLEU cased and in the WMT17 convention, chrF: column "k=1").
"""

import json
import os
import re
import shutil

from absl import app, flags, logging

from configs import multi30k, synthetic
from s2s_jax.evaluation import evaluate, plots, wmt17
from s2s_jax.registries import validate
from s2s_jax.runtime import host_memory
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.training.train import train_and_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bottleneck", "One sub-directory per run.")
flags.DEFINE_string("manual_dir", "../shared/data/multi30k", "Multi30k files.")
flags.DEFINE_string(
    "figures",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures"),
    "Where --assemble writes the plots.",
)
flags.DEFINE_list("tasks", ["long"], "Tasks to run.")
flags.DEFINE_list("variants", [], "Variants to run (default: all).")
flags.DEFINE_integer("copy_steps", 500, "Training steps per copy-task model.")
flags.DEFINE_float("budget_minutes", 15.0, "Wall clock per Multi30k model.")
flags.DEFINE_integer("teacher_forcing_steps", 2_000, "Budgeted tasks: length of TF decay.")
flags.DEFINE_bool("assemble", False, "Only assemble the recorded runs of --tasks.")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
CONTEXT_VECTOR = {
    "model.attention": "none",
    "model.bidirectional": False,
    "model.bridge": "copy",
    "model.input_feeding": False,
}
VARIANTS = {
    "luong": {"model.attention": "general"},
    "bahdanau": {"model.attention": "bahdanau", "model.input_feeding": False},
    "context vector": CONTEXT_VECTOR,
    "context vector reversed": {**CONTEXT_VECTOR, "model.reverse_source": True},
    "context vector 2 layers": {
        **CONTEXT_VECTOR,
        "model.encoder_layers": 2,
        "model.decoder_layers": 2,
    },
    "context vector 4 layers": {
        **CONTEXT_VECTOR,
        "model.encoder_layers": 4,
        "model.decoder_layers": 4,
    },
    "context vector TF 1->0.5": {**CONTEXT_VECTOR, "train.teacher_forcing_end": 0.5},
    "transformer": {
        "model.architecture": "transformer",
        "model.embed_dim": 256,
        "model.hidden_size": 256,
        "model.encoder_layers": 4,
        "model.decoder_layers": 3,
        "model.num_heads": 4,
        "train.warmup_steps": 500,
    },
}


def _copy_task():
    config = synthetic.get_config("copy")
    config.model.update(embed_dim=64, hidden_size=128, dropout=0.0)
    config.train.update(num_steps=FLAGS.copy_steps, teacher_forcing_steps=FLAGS.copy_steps)
    return config


def _multi30k_task(arg: str):
    config = multi30k.get_config(arg)
    config.data.manual_dir = FLAGS.manual_dir
    config.train.update(
        num_steps=10_000_000,  # the budget ends training
        time_budget_minutes=FLAGS.budget_minutes,
        teacher_forcing_steps=FLAGS.teacher_forcing_steps,
    )
    config.eval.update(tune_average_checkpoints=(), tune_average_best=(), tune_beam_sizes=())
    return config


TASKS = {
    "copy": _copy_task,
    "multi30k": lambda: _multi30k_task("en-de"),
    "long": lambda: _multi30k_task("en-de,long"),
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _config(task: str, variant: str):
    config = TASKS[task]()
    train = config.train
    # Evaluated and saved once, at the end: the budget goes to training.
    train.update(eval_every=train.num_steps, checkpoint_every=1_000, best_metric="bleu")
    config.eval.update(decoder="greedy", num_heatmaps=0, wmt17_bleu=False)
    for key, value in VARIANTS[variant].items():
        block, field = key.split(".")
        config[block][field] = value
    validate(config)
    return config


def _first_captions(config, workdir: str, hypotheses: list[str]) -> dict:
    """Scores of the first hypotheses, those of the split's original captions (all of
    them without joined captions), against the official references."""
    original = config.copy_and_resolve_references()
    original.data.join_captions = 1
    split = config.eval.split
    pairs = evaluate.split_pairs(original, workdir, None, split)
    references = [target for _, target in pairs]
    first = hypotheses[: len(references)]
    scores = evaluate.score(first, references, config.eval.bleu_tokenize)
    tokenized, origin = wmt17.references(original, split, references)
    return {
        "sentences": len(references),
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        **wmt17.score(first, tokenized, config.data.tgt_lang, origin),
    }


def _run(task: str, variant: str) -> dict:
    workdir = os.path.join(FLAGS.workdir, task, _slug(variant))
    shutil.rmtree(workdir, ignore_errors=True)
    logging.info("bottleneck study: %s / %s in %s", task, variant, workdir)
    config = _config(task, variant)
    metrics = train_and_evaluate(config, workdir)
    report = os.path.join(workdir, "eval", config.eval.split)
    with open(os.path.join(report, "metrics.json")) as f:
        by_length = json.load(f)["bleu_by_length"]
    result = {
        "task": task,
        "variant": variant,
        "steps": Checkpointer(workdir, best_metric="bleu").latest_step(),
        "budget_minutes": config.train.time_budget_minutes or None,
        "bleu": metrics["bleu"],
        "bleu_signature": metrics["bleu_signature"],
        "by_length": by_length,
    }
    if config.data.source == "multi30k":
        with open(os.path.join(report, "hypotheses.txt"), encoding="utf-8") as f:
            hypotheses = f.read().splitlines()
        result["original_captions"] = _first_captions(config, workdir, hypotheses)
    return result


def _recorded(task: str) -> dict[str, dict]:
    """variant -> the JSON line of its recorded section ``bottleneck/<task>/...``."""
    text = open(RESULTS, encoding="utf-8").read()
    pattern = rf"<!-- BEGIN bottleneck/{re.escape(task)}/\S+ -->.*?```json\n(.*?)\n```"
    lines = re.findall(pattern, text, re.S)
    runs = [run for line in lines for run in json.loads(line)["results"][task].values()]
    by_variant = {run["variant"]: run for run in runs}
    return {name: by_variant[name] for name in VARIANTS if name in by_variant}


def _cell(value) -> str:
    return f"{'-' if value is None else format(value, '.2f'):>7}"


def _table(task: str, runs: dict[str, dict]) -> None:
    first = next(iter(runs.values()))
    counts = ", ".join(f"{row['bucket']}: {row['sentences']}" for row in first["by_length"])
    print(f"\n{task}: test BLEU by source length (sentences per bucket: {counts})")
    print(f"BLEU {first['bleu_signature']}; k=1: the original test captions")
    header = " ".join(f"{row['bucket']:>7}" for row in first["by_length"])
    print(f"{'variant':<26} {'steps':>6} {'all':>7} {header} {'k=1':>7} {'k=1 WMT17':>9}")
    for name, run in runs.items():
        original = run.get("original_captions") or {}
        print(
            f"{name:<26} {run['steps']:>6} {_cell(run['bleu'])} "
            + " ".join(_cell(row["bleu"]) for row in run["by_length"])
            + f" {_cell(original.get('bleu'))} {_cell(original.get('bleu_wmt17')):>9}"
        )


def main(argv):
    del argv
    host_memory.reuse_freed_memory()
    results = {}
    for task in FLAGS.tasks:
        if FLAGS.assemble:
            results[task] = _recorded(task)
            if not results[task]:
                raise SystemExit(f"error: no recorded bottleneck/{task}/<variant> in {RESULTS}")
            runs = results[task].values()
            os.makedirs(FLAGS.figures, exist_ok=True)
            plots.bleu_by_length(
                [row["bucket"] for row in next(iter(runs))["by_length"]],
                {
                    name: [row["bleu"] for row in r["by_length"]]
                    for name, r in results[task].items()
                },
                os.path.join(FLAGS.figures, f"bottleneck_{task}.png"),
                lines=True,
            )
        else:
            results[task] = {name: _run(task, name) for name in FLAGS.variants or VARIANTS}
        _table(task, results[task])
    print(json.dumps({"benchmark": "bottleneck_study", "results": results}))


if __name__ == "__main__":
    app.run(main)
