"""Does the input pipeline keep up? Its tokens/s against the train step's.

  python -m benchmarks.input_pipeline --config=configs/multi30k.py:en-de \
      --config.data.manual_dir=../shared/data/multi30k --workdir=/tmp/bench_input

Measures, on the same config and batches: the one-time cost of reading, tokenizing
and encoding the corpus; the batches/s and tokens/s (non-padding source + target)
of the batch stream alone; and the tokens/s of the compiled train step (median of
timed steps after compiling every bucket shape). Prints a table, then one JSON line.
"""

import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.report import print_report
from s2s_jax.data.batching import prefetch
from s2s_jax.decoding.translator import Translator
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.training import schedules
from s2s_jax.training.train import jit_train_step, training_data
from s2s_jax.training.train_state import initial_state

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bench_input", "Vocabulary / TFDS cache.")
flags.DEFINE_integer("pipeline_steps", 2_000, "Batches drawn from the stream.")
flags.DEFINE_integer("train_steps", 20, "Timed train steps (after compilation).")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _tokens(batch) -> int:
    return int(batch["src_mask"].sum() + batch["tgt_mask"].sum())


def main(argv):
    del argv
    config = FLAGS.config
    host_memory.configure(config)
    start = time.perf_counter()
    corpus, batches = training_data(config, FLAGS.workdir)
    setup_seconds = time.perf_counter() - start

    start = time.perf_counter()
    tokens = sum(_tokens(b) for b in (batches.batch(s) for s in range(FLAGS.pipeline_steps)))
    pipeline_seconds = time.perf_counter() - start
    pipeline_tokens_per_sec = tokens / pipeline_seconds

    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    mesh = translator.mesh
    step, rng = jit_train_step(config)
    state = initial_state(
        config,
        translator.model,
        schedules.create_optimizer(config.train, batches.steps_per_epoch),
        mesh,
    )
    compiled = set()
    stream = prefetch(batches.iterate(0), config.data.prefetch)
    start = time.perf_counter()
    while len(compiled) < len(batches.shapes):  # compile every bucket shape first
        batch = next(stream)
        state, sums = step(state, parallel.shard_batch(batch, mesh), rng)
        jax.block_until_ready(sums)
        compiled.add(batch["src"].shape)
    compile_seconds = time.perf_counter() - start
    rates = []
    for _ in range(FLAGS.train_steps):
        batch = next(stream)
        start = time.perf_counter()
        state, sums = step(state, parallel.shard_batch(batch, mesh), rng)
        jax.block_until_ready(sums)
        rates.append(_tokens(batch) / (time.perf_counter() - start))
    train_tokens_per_sec = float(np.median(rates))

    ratio = pipeline_tokens_per_sec / train_tokens_per_sec
    rows = [
        ("corpus read + tokenize + encode (s)", f"{setup_seconds:.1f}"),
        (
            "training pairs / filtered / dropped empty",
            f"{len(corpus.train)} / {batches.num_filtered} / {corpus.num_dropped}",
        ),
        ("batch shapes (src, tgt, sentences)", str(batches.shapes)),
        ("pipeline batches/s", f"{FLAGS.pipeline_steps / pipeline_seconds:,.0f}"),
        ("pipeline tokens/s", f"{pipeline_tokens_per_sec:,.0f}"),
        ("train step tokens/s (median)", f"{train_tokens_per_sec:,.0f}"),
        ("compile time, all shapes (s)", f"{compile_seconds:.1f}"),
        ("pipeline / train step", f"{ratio:.1f}x"),
    ]
    print_report(
        rows,
        {
            "benchmark": "input_pipeline",
            "setup_seconds": setup_seconds,
            "pipeline_tokens_per_sec": pipeline_tokens_per_sec,
            "train_tokens_per_sec": train_tokens_per_sec,
            "ratio": ratio,
            "compile_seconds": compile_seconds,
            "shapes": batches.shapes,
            "filtered": batches.num_filtered,
            "dropped_empty": corpus.num_dropped,
            "devices": jax.device_count(),
            "jax": jax.__version__,
        },
    )


if __name__ == "__main__":
    app.run(main)
