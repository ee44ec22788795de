"""The s2s_jax contestant of train_throughput.py (a worker, see side_by_side.py).

  python -m benchmarks.jax_train_worker SPEC_DIR

Builds the model and optimizer from SPEC_DIR/spec.json exactly as training does,
compiles ``s2s_jax.training.train.train_step`` once per batch shape, then times steps on the
batches of SPEC_DIR/batches.npz when the driver asks.
"""

import json
import os
import sys

import jax
import ml_collections
import numpy as np

from benchmarks.side_by_side import jax_matmul_rate, serve, timed
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.seq2seq import ModelConfig
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.training.schedules import create_optimizer
from s2s_jax.training.train import jit_train_step
from s2s_jax.training.train_state import initial_state


def main(spec_dir: str) -> None:
    spec = json.load(open(os.path.join(spec_dir, "spec.json")))
    config = ml_collections.ConfigDict(spec["config"])
    host_memory.configure(config)
    data = np.load(os.path.join(spec_dir, "batches.npz"))
    batches = [
        {key: data[f"{i}/{key}"] for key in spec["keys"]} for i in range(spec["num_batches"])
    ]
    model = ARCHITECTURES[config.model.architecture](
        ModelConfig.create(
            src_vocab_size=spec["src_vocab_size"],
            tgt_vocab_size=spec["tgt_vocab_size"],
            **config.model.to_dict(),
        )
    )
    mesh = parallel.make_mesh()
    state = initial_state(
        config, model, create_optimizer(config.train, spec["steps_per_epoch"]), mesh
    )
    step_fn, rng = jit_train_step(config)
    compiled, compile_seconds = {}, {}

    def shard(i):
        return parallel.shard_batch(batches[i], mesh)

    def warmup(indices):
        nonlocal state
        for i in indices:
            batch = shard(i)
            shape = batch["src"].shape + batch["tgt_in"].shape[1:]
            if shape not in compiled:
                lowered = step_fn.lower(state, batch, rng)
                compile_seconds[str(shape)] = timed(
                    lambda: compiled.setdefault(shape, lowered.compile())
                )
            state, _ = compiled[shape](state, batch, rng)
        jax.block_until_ready(state)
        return {"compile_seconds": compile_seconds, "programs": len(compiled)}

    def run(indices):
        times = []
        for i in indices:
            batch = shard(i)

            def step():
                nonlocal state
                state, sums = compiled[batch["src"].shape + batch["tgt_in"].shape[1:]](
                    state, batch, rng
                )
                jax.block_until_ready((state, sums))

            times.append(timed(step))
        return {"seconds": times}

    def rate(size):
        return {"flops_per_sec": jax_matmul_rate(size, config.model.dtype)}

    serve({"warmup": warmup, "run": run, "matmul_rate": rate})


if __name__ == "__main__":
    main(sys.argv[1])
