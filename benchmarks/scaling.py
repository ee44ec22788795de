"""How training cost grows with sequence length, with and without remat.

  python -m benchmarks.scaling --config=configs/multi30k.py:en-de

For source = target lengths 25, 50, 100 and 200 and a fixed number of sentences per
batch, compiles the real ``train_step`` of the config's model (random token ids, no
padding) as configured and in memory-saving mode (``model.remat`` on), and reports
tokens/s (median of timed steps), compile time, and the step's peak buffer memory as
XLA allocates it (arguments + outputs + temporaries, from the compiled program's
memory analysis). Memory should grow linearly with length, and remat should lower it.
Prints a table, then one JSON line.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.seq2seq import ModelConfig
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.training.schedules import create_optimizer
from s2s_jax.training.train import jit_train_step
from s2s_jax.training.train_state import initial_state

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["25", "50", "100", "200"], "Source = target lengths.")
flags.DEFINE_integer("sentences", 32, "Sentences per batch.")
flags.DEFINE_integer("vocab_size", 8_000, "Source and target vocabulary size.")
flags.DEFINE_integer("steps", 3, "Timed steps per point (after compilation).")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _batch(length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    shape = (FLAGS.sentences, length)
    ids = lambda: rng.integers(4, FLAGS.vocab_size, shape).astype(np.int32)  # noqa: E731
    ones = np.ones(shape, bool)
    return {
        "src": ids(),
        "src_mask": ones,
        "tgt_in": ids(),
        "tgt_out": ids(),
        "tgt_mask": ones,
        "valid": np.ones(FLAGS.sentences, bool),
    }


def _measure(config, length: int) -> dict:
    model = ARCHITECTURES[config.model.architecture](
        ModelConfig.create(
            src_vocab_size=FLAGS.vocab_size,
            tgt_vocab_size=FLAGS.vocab_size,
            **config.model.to_dict(),
        )
    )
    mesh = parallel.make_mesh()
    state = initial_state(config, model, create_optimizer(config.train, 1), mesh)
    batch = parallel.shard_batch(_batch(length, np.random.default_rng(length)), mesh)
    step, rng = jit_train_step(config)
    start = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    peak = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )
    state, _ = compiled(state, batch, rng)
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        state, sums = compiled(state, batch, rng)
        jax.block_until_ready((state, sums))
        times.append(time.perf_counter() - start)
    tokens = 2 * FLAGS.sentences * length
    return {
        "length": length,
        "saving": config.model.remat,
        "tokens_per_sec": tokens / float(np.median(times)),
        "compile_seconds": compile_seconds,
        "peak_mib": peak / 2**20,
        "temp_mib": memory.temp_size_in_bytes / 2**20,
    }


def main(argv):
    del argv
    host_memory.configure(FLAGS.config)
    results = []
    for saving in (False, True):
        config = FLAGS.config.copy_and_resolve_references()
        if saving:
            config.model.remat = True
        results += [_measure(config, int(length)) for length in FLAGS.lengths]
    base = {r["saving"]: r for r in results if r["length"] == int(FLAGS.lengths[0])}
    print(
        f"{FLAGS.sentences} sentences per batch, vocabulary {FLAGS.vocab_size}, "
        f"model of {FLAGS.config.model.hidden_size} hidden units"
    )
    print(
        f"{'length':>6} {'saving':>6} {'tokens/s':>9} {'compile s':>9} {'peak MiB':>9} "
        f"{'temp MiB':>9} {'temp / temp@' + FLAGS.lengths[0]:>14}"
    )
    for r in results:
        growth = r["temp_mib"] / base[r["saving"]]["temp_mib"]
        print(
            f"{r['length']:>6} {str(r['saving']):>6} {r['tokens_per_sec']:>9.0f} "
            f"{r['compile_seconds']:>9.1f} {r['peak_mib']:>9.0f} {r['temp_mib']:>9.0f} "
            f"{growth:>14.2f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "sentences": FLAGS.sentences,
                "vocab_size": FLAGS.vocab_size,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
