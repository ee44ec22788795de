"""How cost grows with sequence length: the recurrent model, with remat, and a
Transformer of about the same parameter count (seed 003's second bottleneck: an RNN
processes tokens one after another).

  python -m benchmarks.scaling --config=configs/multi30k.py:en-de

For source = target lengths 25, 50, 100 and 200 and a fixed number of sentences per
batch (random token ids, no padding), each variant

- compiles the real ``train_step`` and reports training tokens/s (source + target,
  median of timed steps), compile time, and the step's peak buffer memory as XLA
  allocates it (arguments + outputs + temporaries, from the compiled program's memory
  analysis);
- decodes the same sources greedily to exactly as many tokens (EOS is made
  impossible in the random weights' output bias, and the length bound is the source
  length) and reports sentences/s and the decoder's XLA temporaries.

Variants: ``rnn``, the config's model; ``rnn, remat``, the same with ``model.remat``
(less memory, same decoding: not decoded again); ``transformer``, a pre-norm
Transformer (s2s_jax/models/transformer.py) whose width and layer counts (the
``--transformer_*`` flags) are chosen so that its parameter count is close to the
RNN's (both are printed). The variants are timed in turns at
every length, so machine noise hits each alike. Prints a table, then one JSON line.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from s2s_jax.data.vocab import EOS_ID
from s2s_jax.decoding.decoders import DECODERS
from s2s_jax.decoding.search import until_eos
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.seq2seq import ModelConfig
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.training.schedules import create_optimizer
from s2s_jax.training.train import jit_train_step
from s2s_jax.training.train_state import initial_state

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["25", "50", "100", "200"], "Source = target lengths.")
flags.DEFINE_list("variants", ["rnn", "rnn, remat", "transformer"], "Variants to measure.")
flags.DEFINE_integer("sentences", 32, "Sentences per training and decoding batch.")
flags.DEFINE_integer("vocab_size", 8_000, "Source and target vocabulary size.")
flags.DEFINE_integer("rounds", 3, "Turns per point: a training step and a decoding batch each.")
flags.DEFINE_integer("transformer_width", 256, "Transformer model width (embed = hidden).")
# 4 + 3 layers of width 256: 12.47M parameters against the base RNN's 12.64M.
flags.DEFINE_integer("transformer_encoder_layers", 4, "Transformer encoder layers.")
flags.DEFINE_integer("transformer_decoder_layers", 3, "Transformer decoder layers.")
flags.DEFINE_integer("transformer_heads", 4, "Transformer attention heads.")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _remat(config):
    config.model.remat = True


def _transformer(config):
    model = config.model
    model.architecture = "transformer"
    model.embed_dim = model.hidden_size = FLAGS.transformer_width
    model.encoder_layers = FLAGS.transformer_encoder_layers
    model.decoder_layers = FLAGS.transformer_decoder_layers
    model.num_heads = FLAGS.transformer_heads


# variant -> (changes to the config, whether to time decoding)
VARIANTS = {
    "rnn": (lambda config: None, True),
    "rnn, remat": (_remat, False),
    "transformer": (_transformer, True),
}


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


def _peak_mib(compiled) -> tuple[float, float]:
    """(arguments + outputs + temporaries, temporaries) of a compiled program, MiB."""
    memory = compiled.memory_analysis()
    peak = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )
    return peak / 2**20, memory.temp_size_in_bytes / 2**20


def _without_eos(params):
    """A copy of ``params`` (training donates its own) with the output bias's EOS entry
    at -1e9: random weights then decode to the length bound, so that every variant
    decodes the same number of steps."""

    output_biases = []

    def mask(path, leaf):
        if path[-1].key == "bias" and leaf.shape == (FLAGS.vocab_size,):
            output_biases.append(path)
            return leaf.at[EOS_ID].set(-1e9)
        return jnp.copy(leaf)

    masked = jax.tree_util.tree_map_with_path(mask, params)
    if not output_biases:
        raise ValueError("no output bias of the vocabulary's size: keep model.tie_embeddings off")
    return masked


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


class Point:
    """One variant at one length: compiled training step and decoder, and their state."""

    def __init__(self, name: str, length: int):
        change, self.decodes = VARIANTS[name]
        config = FLAGS.config.copy_and_resolve_references()
        change(config)
        model = ARCHITECTURES[config.model.architecture](
            ModelConfig.create(
                src_vocab_size=FLAGS.vocab_size,
                tgt_vocab_size=FLAGS.vocab_size,
                **config.model.to_dict(),
            )
        )
        mesh = parallel.make_mesh()
        self.state = initial_state(config, model, create_optimizer(config.train, 1), mesh)
        self.batch = parallel.shard_batch(_batch(length, np.random.default_rng(length)), mesh)
        step, self.rng = jit_train_step(config)
        start = time.perf_counter()
        self.step = step.lower(self.state, self.batch, self.rng).compile()
        self.result = {
            "variant": name,
            "length": length,
            "parameters": sum(np.size(p) for p in jax.tree.leaves(self.state.params)),
            "compile_seconds": time.perf_counter() - start,
        }
        self.result["peak_mib"], self.result["temp_mib"] = _peak_mib(self.step)
        if self.decodes:
            self.params = _without_eos(self.state.params)
            decode = DECODERS["greedy"].jitted
            bound = {"max_len_a": 1.0, "max_len_b": 0}
            args = (model, self.params, self.batch["src"], self.batch["src_mask"])
            self.decode = decode.lower(*args, **bound).compile()
            _, self.result["decode_temp_mib"] = _peak_mib(self.decode)
        self.train()  # the first call of a compiled program does one-off work
        self.train_seconds, self.decode_seconds = [], []

    def train(self) -> None:
        self.state, sums = self.step(self.state, self.batch, self.rng)
        jax.block_until_ready((self.state, sums))

    def decode_batch(self) -> np.ndarray:
        decoded = self.decode(self.params, self.batch["src"], self.batch["src_mask"])
        return np.asarray(jax.device_get(decoded.tokens))

    def run_round(self) -> None:
        """One timed training step, and one timed decoding batch."""
        self.train_seconds.append(_seconds(self.train))
        if self.decodes:
            self.decode_seconds.append(_seconds(self.decode_batch))

    def measure(self) -> dict:
        """The result, from the medians of the rounds run."""
        tokens = 2 * FLAGS.sentences * self.result["length"]
        self.result["tokens_per_sec"] = tokens / float(np.median(self.train_seconds))
        if self.decodes:
            decoded = self.decode_batch()
            lengths = [len(until_eos(tokens)) for tokens in decoded[:, 0]]
            self.result["decoded_length"] = float(np.mean(lengths))
            seconds = float(np.median(self.decode_seconds))
            self.result["decode_sentences_per_sec"] = FLAGS.sentences / seconds
        return self.result


def _table(results: list[dict]) -> None:
    print(
        f"{FLAGS.sentences} sentences per batch, vocabulary {FLAGS.vocab_size}; "
        "training tokens are source + target; decoding is greedy to the source length"
    )
    print(
        f"{'variant':<12} {'params':>10} {'length':>6} {'train tok/s':>11} {'compile s':>9} "
        f"{'peak MiB':>8} {'temp MiB':>8} {'decode sent/s':>13} {'decode temp MiB':>15}"
    )
    for r in results:
        decode = (
            f"{r['decode_sentences_per_sec']:>13.1f} {r['decode_temp_mib']:>15.0f}"
            if "decode_sentences_per_sec" in r
            else f"{'-':>13} {'-':>15}"
        )
        print(
            f"{r['variant']:<12} {r['parameters']:>10,} {r['length']:>6} "
            f"{r['tokens_per_sec']:>11.0f} {r['compile_seconds']:>9.1f} {r['peak_mib']:>8.0f} "
            f"{r['temp_mib']:>8.0f} {decode}"
        )


def main(argv):
    del argv
    host_memory.configure(FLAGS.config)
    results = []
    for length in map(int, FLAGS.lengths):
        # Compiled together, then timed in turns: the same machine load for each.
        points = [Point(name, length) for name in FLAGS.variants]
        for _ in range(FLAGS.rounds):
            for point in points:
                point.run_round()
        results += [point.measure() for point in points]
        del points
    _table(results)
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "sentences": FLAGS.sentences,
                "rounds": FLAGS.rounds,
                "vocab_size": FLAGS.vocab_size,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
