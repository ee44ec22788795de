"""Decoding speed: sentences/s and target tokens/s, greedy and beam search, s2s_jax
against the PyTorch reference (benchmarks/peers) on the same weights.

  python -m benchmarks.decode_throughput --config=configs/multi30k.py:en-de \
      --config.data.manual_dir=../shared/data/multi30k --workdir=runs/m30k_en_de

Decodes the whole evaluation split (Multi30k: test_2016_flickr, 1,000 sentences)
with the workdir's best checkpoint, or with random weights when it has none (the
output lengths, and so the speed, depend on the weights: it is reported which).
Sentences are batched shortest first, as s2s_jax's evaluation does. Every shape is
compiled before timing. The PyTorch reference (torch installed, a
config it supports) gets the same weights and batches, with as many threads as the
machine has cores; passes alternate between the two and each figure is the faster
of ``--passes`` passes. Its hypotheses are compared with s2s_jax's.

Each decoder's model FLOP utilisation (MFU) is the fewest model FLOPs that its search
could spend on these hypotheses (``model_flops.search_flops``) per second, over the
matmul rate in the model's dtype measured first on random [2048, 2048] matrices (the
better of jax.numpy and torch; in bfloat16 the reference runs under
``torch.autocast``). The same bound gives each beam size a ceiling: the sentences/s
that no implementation of the search exceeds at that matmul rate. Beam search runs
on past its best hypothesis until no alive one can win; with the decoder steps the
reference's search ran per sentence (the same stopping rule as s2s_jax's), a second,
tighter ceiling bounds every search that stops as these do. Prints a table, then one
JSON line.
"""

import dataclasses
import json
import os
import time

import jax
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from benchmarks.model_flops import search_flops
from benchmarks.side_by_side import jax_matmul_rate, torch_matmul_rate
from s2s_jax import decoding
from s2s_jax.data.batching import encode_pairs, eval_batches, sort_by_source_length
from s2s_jax.data.sources import load_corpus
from s2s_jax.decoding.translator import Translator
from s2s_jax.evaluation.parameters import NoCheckpointError, make_checkpointer, restore_configured
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.training.train_state import initial_state

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bench_decode", "Checkpoints (optional), caches.")
flags.DEFINE_list("beam_sizes", ["1", "5"], "Beam sizes to time; 1 means greedy.")
flags.DEFINE_integer("passes", 2, "Timed passes over the split, per decoder.")
flags.DEFINE_bool("torch", True, "Also time the PyTorch reference when torch is installed.")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")


def _matmul_rate(dtype: str) -> float:
    """The machine's matmul FLOP/s in ``dtype``: the better of jax.numpy and torch
    (if any)."""
    try:
        return max(jax_matmul_rate(dtype=dtype), torch_matmul_rate(dtype=dtype))
    except ImportError:
        return jax_matmul_rate(dtype=dtype)


def _decode_split(decode, params, batches, mesh) -> tuple[float, list[np.ndarray]]:
    """Seconds to decode all batches, and the best hypothesis of each valid row."""
    start, best = time.perf_counter(), []
    for batch in batches:
        arrays = parallel.shard_batch(parallel.process_rows(batch), mesh)
        tokens = jax.device_get(decode(params, arrays["src"], arrays["src_mask"]).tokens)
        best += list(np.asarray(tokens)[:, 0][batch["valid"]])
    return time.perf_counter() - start, best


def _torch_decoder(translator: Translator, beam_size: int):
    """The PyTorch reference's ``(batch) -> best hypotheses``, or None without torch."""
    if not FLAGS.torch:
        return None
    try:
        import torch

        from benchmarks.peers import torch_search
        from benchmarks.peers.torch_seq2seq import (
            TorchSeq2Seq,
            check_supported,
            load_flax_params,
            precision,
        )
    except ImportError:
        return None
    model_config = {
        **translator.config.model.to_dict(),
        "src_vocab_size": translator.src_vocab.size,
        "tgt_vocab_size": translator.tgt_vocab.size,
    }
    check_supported(model_config)
    torch.set_num_threads(os.cpu_count())
    peer = TorchSeq2Seq(model_config)
    load_flax_params(peer, jax.device_get(translator.params))
    peer.eval()
    ev = translator.config.eval

    def decode(batch):
        src, mask = torch.from_numpy(batch["src"]).long(), torch.from_numpy(batch["src_mask"])
        max_len = decoding.max_decode_length(src.shape[1], ev.max_len_a, ev.max_len_b)
        with precision(model_config):
            if beam_size == 1:
                return torch_search.greedy(peer, src, mask, max_len).numpy(), None
            best, steps = torch_search.beam_search(peer, src, mask, beam_size, ev.alpha, max_len)
        return best.numpy(), steps.numpy()

    return decode


def _torch_split(decode, batches) -> tuple[float, list[np.ndarray], np.ndarray | None]:
    """Seconds, the best hypothesis of each valid row, and the decoder steps its beam
    search ran per valid row (None for greedy search)."""
    start, best, steps = time.perf_counter(), [], []
    for batch in batches:
        tokens, ran = decode(batch)
        best += list(tokens[batch["valid"]])
        steps += [] if ran is None else list(ran[batch["valid"]])
    return time.perf_counter() - start, best, np.array(steps) if steps else None


def main(argv):
    del argv
    config = FLAGS.config
    host_memory.configure(config)  # for both libraries: one process runs both
    corpus = load_corpus(config, FLAGS.workdir)
    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    mesh = translator.mesh
    try:  # the workdir's best (else latest) checkpoint, or random weights
        params, _ = restore_configured(
            make_checkpointer(config, FLAGS.workdir),
            translator.abstract_params(),
            config.eval,
            FLAGS.workdir,
        )
        trained = True
    except NoCheckpointError:
        params = initial_state(config, translator.model, optax.identity(), mesh).params
        trained = False
    translator = dataclasses.replace(translator, params=params)
    pairs = corpus.splits[config.eval.split]
    examples = encode_pairs(pairs, corpus.src_vocab, corpus.tgt_vocab)
    _, examples = sort_by_source_length(examples)
    batch_size = parallel.round_to_devices(config.eval.batch_size, mesh)
    batches = list(eval_batches(examples, batch_size, config.data.buckets))
    src_tokens = np.concatenate([b["src_mask"].sum(axis=1)[b["valid"]] for b in batches])
    model = {**config.model.to_dict(), "tgt_vocab_size": corpus.tgt_vocab.size}
    rate = _matmul_rate(config.model.dtype)
    results, ceilings, rule_ceilings = [], {}, {}
    for beam_size in map(int, FLAGS.beam_sizes):
        eval_config = config.eval.copy_and_resolve_references()
        with eval_config.unlocked():
            eval_config.decoder = "beam" if beam_size > 1 else "greedy"
            eval_config.beam_size = beam_size
            eval_config.n_best = 1
        decode = decoding.compile_decoder(translator.model, eval_config)
        compile_seconds, _ = _decode_split(decode, params, batches, mesh)
        peer = _torch_decoder(translator, beam_size)
        times = {"s2s_jax": [], "torch": []}
        for _ in range(FLAGS.passes):
            seconds, best = _decode_split(decode, params, batches, mesh)
            times["s2s_jax"].append(seconds)
            if peer:
                seconds, peer_best, peer_steps = _torch_split(peer, batches)
                times["torch"].append(seconds)
        lengths = [len(decoding.until_eos(b)) for b in best]
        flops = search_flops(model, src_tokens, lengths, beam_size)
        ceilings[beam_size] = len(pairs) * rate / flops
        if peer and peer_steps is not None:  # the steps both searches' rule runs
            rule_ceilings[beam_size] = (
                len(pairs) * rate / search_flops(model, src_tokens, peer_steps, beam_size)
            )
        for name, seconds in times.items():
            if not seconds:
                continue
            row = {
                "contestant": name,
                "decoder": eval_config.decoder,
                "beam_size": beam_size,
                "sentences_per_sec": len(pairs) / min(seconds),
                "seconds": min(seconds),
                "mfu": flops / min(seconds) / rate,
            }
            if name == "s2s_jax":
                row.update(
                    tokens_per_sec=sum(lengths) / min(seconds),
                    target_tokens=sum(lengths),
                    first_pass_seconds=compile_seconds,
                )
            else:
                row["same_hypotheses"] = float(
                    np.mean(
                        [
                            np.array_equal(decoding.until_eos(a), decoding.until_eos(b))
                            for a, b in zip(best, peer_best)
                        ]
                    )
                )
                row["speedup_of_s2s_jax"] = min(seconds) / min(times["s2s_jax"])
            results.append(row)
    print(
        f"{len(pairs)} sentences of {config.eval.split}, batch {batch_size}, "
        f"{'trained' if trained else 'random'} weights, {jax.device_count()} device(s)"
    )
    print(
        f"{'contestant':<10} {'decoder':<7} {'beam':>4} {'sent/s':>8} {'seconds':>8} "
        f"{'MFU':>6} {'s2s_jax speed-up':>16} {'same hyps':>9}"
    )
    for r in results:
        speedup = r.get("speedup_of_s2s_jax")
        same = r.get("same_hypotheses")
        print(
            f"{r['contestant']:<10} {r['decoder']:<7} {r['beam_size']:>4} "
            f"{r['sentences_per_sec']:>8.1f} {r['seconds']:>8.2f} {r['mfu']:>6.1%} "
            f"{'' if speedup is None else f'{speedup:.2f}x':>16} "
            f"{'' if same is None else f'{same:.1%}':>9}"
        )
    print(
        f"{config.model.dtype} matmul rate {rate / 1e9:.1f} GFLOP/s; no search of these "
        "hypotheses exceeds, in sent/s: "
        + ", ".join(f"beam {k}: {c:.0f}" for k, c in ceilings.items())
    )
    if rule_ceilings:
        print(
            "nor any search that stops when this one does (the steps the reference ran), "
            "in sent/s: " + ", ".join(f"beam {k}: {c:.0f}" for k, c in rule_ceilings.items())
        )
    print(
        json.dumps(
            {
                "benchmark": "decode_throughput",
                "split": config.eval.split,
                "sentences": len(pairs),
                "trained": trained,
                "results": results,
                "matmul_flops_per_sec": rate,
                "ceiling_sentences_per_sec": {str(k): c for k, c in ceilings.items()},
                "stopping_rule_ceiling_sentences_per_sec": {
                    str(k): c for k, c in rule_ceilings.items()
                },
                "devices": jax.device_count(),
                "jax": jax.__version__,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
