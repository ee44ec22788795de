"""The PyTorch contestant of train_throughput.py (a worker, see side_by_side.py).

  python -m benchmarks.peers.torch_train_worker SPEC_DIR [--compile]

The same model, batches, loss (smoothed cross-entropy over real tokens), Adam and
global-norm clipping as s2s_jax's training, with as many threads as the machine has
cores and the same malloc settings (``s2s_jax.runtime.host_memory``); eager, or
``torch.compile`` of the loss with ``--compile``; the forward pass in the model's
``dtype`` (``torch_seq2seq.precision``).
"""

import json
import os
import sys

import numpy as np
import torch

from benchmarks.peers.torch_seq2seq import TorchSeq2Seq, loss_fn, precision
from benchmarks.side_by_side import serve, timed, torch_matmul_rate
from s2s_jax.runtime import host_memory


def main(spec_dir: str, compile_loss: bool) -> None:
    torch.set_num_threads(os.cpu_count())
    spec = json.load(open(os.path.join(spec_dir, "spec.json")))
    config = spec["config"]
    host_memory.configure(config)  # the same allocator settings as s2s_jax's
    torch.manual_seed(config["seed"])
    data = np.load(os.path.join(spec_dir, "batches.npz"))
    batches = [
        {
            key: torch.from_numpy(data[f"{i}/{key}"]).long()
            if data[f"{i}/{key}"].dtype != bool
            else torch.from_numpy(data[f"{i}/{key}"])
            for key in spec["keys"]
        }
        for i in range(spec["num_batches"])
    ]
    model = TorchSeq2Seq(
        {
            **config["model"],
            "src_vocab_size": spec["src_vocab_size"],
            "tgt_vocab_size": spec["tgt_vocab_size"],
        }
    )
    model.train()
    train = config["train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=train["learning_rate"], fused=True)
    loss = torch.compile(loss_fn, dynamic=False) if compile_loss else loss_fn

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        with precision(config["model"]):
            value = loss(model, batch, train["label_smoothing"])
        value.backward()
        if train["grad_clip_norm"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train["grad_clip_norm"])
        optimizer.step()

    def warmup(indices):
        seen, seconds = set(), {}
        for i in indices:
            shape = tuple(batches[i]["src"].shape) + tuple(batches[i]["tgt_in"].shape[1:])
            first = shape not in seen
            seen.add(shape)
            elapsed = timed(lambda: step(batches[i]))
            if first:
                seconds[str(shape)] = elapsed
        return {"compile_seconds": seconds if compile_loss else {}, "programs": len(seen)}

    def run(indices):
        return {"seconds": [timed(lambda: step(batches[i])) for i in indices]}

    def rate(size):
        return {"flops_per_sec": torch_matmul_rate(size, config["model"]["dtype"])}

    serve({"warmup": warmup, "run": run, "matmul_rate": rate})


if __name__ == "__main__":
    main(sys.argv[1], "--compile" in sys.argv[2:])
