"""What checkpoint checksums cost: verifying a step's files against the time to
restore it, on the Multi30k model.

  python -m benchmarks.checkpoint_verify --config=configs/multi30k.py:en-de

Builds the config's model with vocabularies of --vocab_size pieces (Multi30k's joint
SentencePiece vocabulary has 8,000), saves its training state (parameters and Adam
moments) as training does, then times --repeats times each: the CRC32C check of the
step's files alone, a restore of the training state (what a resumed run does) and a
restore of the parameters alone (eval, translate, export), both verification
included. Prints a table (medians), then one JSON line.
"""

import os
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.report import print_report
from s2s_jax.data.vocab import WordVocab
from s2s_jax.decoding.translator import Translator
from s2s_jax.runtime import checkpointing, checksums
from s2s_jax.training import schedules
from s2s_jax.training.train_state import initial_state

FLAGS = flags.FLAGS
flags.DEFINE_integer("vocab_size", 8_000, "Pieces of each vocabulary.")
flags.DEFINE_integer("repeats", 7, "Timed repetitions of each measurement.")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv):
    del argv
    config = FLAGS.config
    vocab = WordVocab([f"w{i}" for i in range(FLAGS.vocab_size - 4)])
    translator = Translator.build(config, vocab, vocab)
    state = initial_state(
        config, translator.model, schedules.create_optimizer(config.train, 1), translator.mesh
    )
    with tempfile.TemporaryDirectory() as workdir:
        checkpointer = checkpointing.Checkpointer(workdir)
        checkpointer.save(1, state)
        checkpointer.wait()
        step_dir = os.path.join(workdir, "checkpoints", "1")
        step_bytes = sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(step_dir)
            for name in names
        )
        abstract = translator.abstract_params()
        verify = _median_seconds(lambda: checksums.verify(step_dir), FLAGS.repeats)
        restore = _median_seconds(lambda: checkpointer.restore(state, step=1), FLAGS.repeats)
        params = _median_seconds(lambda: checkpointer.restore_params(abstract, 1), FLAGS.repeats)
    figures = {
        "benchmark": "checkpoint_verify",
        "step_mib": step_bytes / 2**20,
        "verify_seconds": verify,
        "restore_state_seconds": restore,
        "restore_params_seconds": params,
        "verify_share_of_state_restore": verify / restore,
        "verify_share_of_params_restore": verify / params,
    }
    rows = [
        ("checkpoint files (MiB)", f"{figures['step_mib']:.1f}"),
        ("CRC32C check of every file (s)", f"{verify:.3f}"),
        ("restore training state, check included (s)", f"{restore:.3f}"),
        ("restore parameters alone, check included (s)", f"{params:.3f}"),
        ("check / state restore", f"{verify / restore:.1%}"),
        ("check / parameters restore", f"{verify / params:.1%}"),
    ]
    print_report(rows, figures)


if __name__ == "__main__":
    app.run(main)
