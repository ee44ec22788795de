"""Decoding speed: sentences/s and target tokens/s, greedy and beam search.

  python benchmarks/decode_throughput.py --config=configs/multi30k.py:en-de \
      --config.data.manual_dir=../shared/data/multi30k --workdir=runs/m30k_en_de

Decodes the whole evaluation split (Multi30k: test_2016_flickr, 1,000 sentences)
with the workdir's best checkpoint, or with random weights when it has none (the
speed of a fixed-shape decoder does not depend on the weights, only the output
lengths do: both are reported). Every shape is compiled before timing. Prints a
table, then one JSON line.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from s2s_jax import decoding, parallel
from s2s_jax.data.batching import encode_pairs, eval_batches
from s2s_jax.data.vocab import EOS_ID, PAD_ID
from s2s_jax.experiment import Experiment

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bench_decode", "Checkpoints (optional), caches.")
flags.DEFINE_list("beam_sizes", ["1", "5"], "Beam sizes to time; 1 means greedy.")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _decode_split(decode, params, batches, mesh) -> tuple[float, int]:
    """Seconds to decode all batches, and the target tokens produced (EOS included)."""
    start, tokens = time.perf_counter(), 0
    for batch in batches:
        arrays = parallel.shard_batch(parallel.process_rows(batch), mesh)
        best = np.asarray(jax.device_get(decode(params, arrays["src"], arrays["src_mask"]))
                          .tokens[:, 0])
        ends = np.where((best == EOS_ID).any(1), (best == EOS_ID).argmax(1) + 1,
                        (best != PAD_ID).sum(1))
        tokens += int(ends[batch["valid"]].sum())
    return time.perf_counter() - start, tokens


def main(argv):
    del argv
    config = FLAGS.config
    exp = Experiment.create(config, FLAGS.workdir)
    trained = exp.restore("best") or exp.restore("latest")
    pairs = exp.corpus.splits[config.eval.split]
    examples = encode_pairs(pairs, exp.corpus.src_vocab, exp.corpus.tgt_vocab)
    batch_size = parallel.round_to_devices(config.eval.batch_size, exp.mesh)
    batches = list(eval_batches(examples, batch_size, config.data.buckets))
    results = []
    for beam_size in map(int, FLAGS.beam_sizes):
        eval_config = config.eval.copy_and_resolve_references()
        with eval_config.unlocked():
            eval_config.decoder = "beam" if beam_size > 1 else "greedy"
            eval_config.beam_size = beam_size
        decode = decoding.compile_decoder(exp.model, eval_config)
        compile_seconds, _ = _decode_split(decode, exp.state.params, batches, exp.mesh)
        seconds, tokens = _decode_split(decode, exp.state.params, batches, exp.mesh)
        results.append({"decoder": eval_config.decoder, "beam_size": beam_size,
                        "sentences_per_sec": len(pairs) / seconds,
                        "tokens_per_sec": tokens / seconds, "seconds": seconds,
                        "first_pass_seconds": compile_seconds, "target_tokens": tokens})
    print(f"{len(pairs)} sentences of {config.eval.split}, batch {batch_size}, "
          f"{'trained' if trained else 'random'} weights, {jax.device_count()} device(s)")
    print(f"{'decoder':<8} {'beam':>4} {'sent/s':>9} {'tok/s':>9} {'seconds':>8} "
          f"{'1st pass':>8}")
    for r in results:
        print(f"{r['decoder']:<8} {r['beam_size']:>4} {r['sentences_per_sec']:>9.1f} "
              f"{r['tokens_per_sec']:>9.0f} {r['seconds']:>8.2f} "
              f"{r['first_pass_seconds']:>8.2f}")
    print(json.dumps({"benchmark": "decode_throughput", "split": config.eval.split,
                      "sentences": len(pairs), "trained": trained, "results": results,
                      "devices": jax.device_count(), "jax": jax.__version__}))


if __name__ == "__main__":
    app.run(main)
