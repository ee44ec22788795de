"""Training speed: s2s_jax against the PyTorch reference, side by side in one run.

  python -m benchmarks.train_throughput --config=configs/multi30k.py:en-de \
      --config.data.manual_dir=../shared/data/multi30k
  python -m benchmarks.train_throughput --config=configs/multi30k.py:en-de,large \
      --config.data.manual_dir=../shared/data/multi30k

Both contestants train the same model (the config's) on the same real batches (the
config's buckets and token budget), with the same loss, Adam and clipping, each in
its own process with all cores (see side_by_side.py); they run in turns, a few
steps each, so machine noise hits both alike. Reported per contestant: non-padding
source + target tokens/s over all timed steps, step time p50/p90, compile time per
shape, peak RSS, and model FLOP utilisation (MFU): model FLOPs over real tokens
(model_flops.py) per second, over the matmul rate in the model's dtype measured
first on random [2048, 2048] matrices (the better of jax.numpy and torch, the
machine's rate). PyTorch runs eager and with torch.compile; the faster is the
reference. With ``--config.model.dtype=bfloat16`` PyTorch runs under its own mixed
precision, ``torch.autocast`` (peers/torch_seq2seq.py: ``precision``). Needs the
``peers`` extra (torch). Prints a table, then one JSON line.
"""

import json
import os
import sys
import tempfile

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.model_flops import train_step_flops
from benchmarks.side_by_side import MATMUL_SIZE, Worker
from s2s_jax.training.train import training_data

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/s2s_bench_train", "Vocabulary / TFDS cache.")
flags.DEFINE_integer("rounds", 4, "Turns per contestant.")
flags.DEFINE_integer("steps_per_round", 5, "Timed steps per turn.")
flags.DEFINE_list("contestants", ["s2s_jax", "torch", "torch_compile"], "Who runs.")
config_flags.DEFINE_config_file("config", "configs/multi30k.py:en-de", "Config file.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = {  # contestant -> (module, extra arguments after the spec directory)
    "s2s_jax": ("benchmarks.jax_train_worker", []),
    "torch": ("benchmarks.peers.torch_train_worker", []),
    "torch_compile": ("benchmarks.peers.torch_train_worker", ["--compile"]),
}


def _write_spec(config, spec_dir: str) -> tuple[list[dict], dict]:
    """Draws the warm-up and timed batches once, for every contestant to read."""
    corpus, stream = training_data(config, FLAGS.workdir)
    timed = FLAGS.rounds * FLAGS.steps_per_round
    batches = [stream.batch(step) for step in range(timed)]
    first_of_shape = {}  # warm-up: one batch of every bucket shape, drawn after these
    step = timed
    while len(first_of_shape) < len(stream.shapes):
        batch = stream.batch(step)
        first_of_shape.setdefault(batch["src"].shape + batch["tgt_in"].shape[1:], batch)
        step += 1
    batches += list(first_of_shape.values())
    np.savez(
        os.path.join(spec_dir, "batches.npz"),
        **{f"{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items()},
    )
    spec = {
        "config": json.loads(config.to_json()),
        "keys": sorted(batches[0]),
        "num_batches": len(batches),
        "src_vocab_size": corpus.src_vocab.size,
        "tgt_vocab_size": corpus.tgt_vocab.size,
        "steps_per_epoch": stream.steps_per_epoch,
        "buckets": len(stream.shapes),
    }
    with open(os.path.join(spec_dir, "spec.json"), "w") as f:
        json.dump(spec, f)
    return batches, spec


def _percentile(times, q) -> float:
    return float(np.percentile(times, q))


def main(argv):
    del argv
    config = FLAGS.config
    with tempfile.TemporaryDirectory() as spec_dir:
        batches, spec = _write_spec(config, spec_dir)
        workers = {}
        for name in FLAGS.contestants:
            module, extra = WORKERS[name]
            workers[name] = Worker(name, [sys.executable, "-m", module, spec_dir] + extra, cwd=REPO)
        timed = FLAGS.rounds * FLAGS.steps_per_round
        rate = max(
            w.call("matmul_rate", size=MATMUL_SIZE)["flops_per_sec"] for w in workers.values()
        )
        warm = {
            name: w.call("warmup", indices=list(range(timed, len(batches))))
            for name, w in workers.items()
        }
        seconds = {name: [] for name in workers}
        last = {}
        for r in range(FLAGS.rounds):
            indices = list(range(r * FLAGS.steps_per_round, (r + 1) * FLAGS.steps_per_round))
            for name, w in workers.items():
                last[name] = w.call("run", indices=indices)
                seconds[name] += last[name]["seconds"]
        for w in workers.values():
            w.close()
    timed_batches = batches[:timed]
    src_tokens = np.concatenate([b["src_mask"][b["valid"]].sum(1) for b in timed_batches])
    tgt_tokens = np.concatenate([b["tgt_mask"][b["valid"]].sum(1) for b in timed_batches])
    model = {**spec["config"]["model"], "tgt_vocab_size": spec["tgt_vocab_size"]}
    flops = train_step_flops(model, src_tokens, tgt_tokens)
    tokens = int(src_tokens.sum() + tgt_tokens.sum())
    results = {}
    for name in workers:
        total = sum(seconds[name])
        results[name] = {
            "tokens_per_sec": tokens / total,
            "step_p50_s": _percentile(seconds[name], 50),
            "step_p90_s": _percentile(seconds[name], 90),
            "compile_seconds": warm[name]["compile_seconds"],
            "programs": warm[name]["programs"],
            "peak_rss_mib": last[name]["peak_rss_mib"],
            "mfu": flops / total / rate,
        }
    peers = [n for n in results if n != "s2s_jax"]
    reference = max(peers, key=lambda n: results[n]["tokens_per_sec"]) if peers else None
    print(
        f"{timed} timed steps ({FLAGS.rounds} turns of {FLAGS.steps_per_round}), "
        f"{tokens:,} real tokens, {flops / timed / 1e9:.1f} model GFLOP/step, "
        f"{config.model.dtype} matmul rate {rate / 1e9:.1f} GFLOP/s, "
        f"{spec['buckets']} bucket shapes"
    )
    print(
        f"{'contestant':<14} {'tokens/s':>9} {'p50 s':>7} {'p90 s':>7} {'MFU':>6} "
        f"{'compile s (max)':>15} {'programs':>8} {'peak RSS MiB':>12}"
    )
    for name, r in results.items():
        compile_max = max(r["compile_seconds"].values(), default=0.0)
        print(
            f"{name:<14} {r['tokens_per_sec']:>9.0f} {r['step_p50_s']:>7.3f} "
            f"{r['step_p90_s']:>7.3f} {r['mfu']:>6.1%} {compile_max:>15.1f} "
            f"{r['programs']:>8} {r['peak_rss_mib']:>12.0f}"
        )
    speedup = None
    if reference and "s2s_jax" in results:
        speedup = results["s2s_jax"]["tokens_per_sec"] / results[reference]["tokens_per_sec"]
        print(f"s2s_jax / {reference} (the faster PyTorch): {speedup:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "model": model,
                "timed_steps": timed,
                "real_tokens": tokens,
                "model_flops_per_step": flops / timed,
                "matmul_flops_per_sec": rate,
                "buckets": spec["buckets"],
                "results": results,
                "reference": reference,
                "speedup": speedup,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
