"""Data parallelism: 8 simulated CPU devices compute what 1 device computes.

XLA_FLAGS must be set before jax is imported, so the comparison runs in a
subprocess (see ``_compare_devices`` below, executed as a script).
"""

import json
import os
import subprocess
import sys

from cli_runs import host_devices

# Sums over a sharded batch are reduced in a different order than on one device:
# float32 round-off, far below anything a training run could notice.
RTOL, ATOL = 1e-5, 1e-6


def _compare_devices() -> dict:
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from s2s_jax.config import base_config
    from s2s_jax.data.batching import TrainBatches, encode_pairs
    from s2s_jax.data.tasks import make_splits
    from s2s_jax.data.vocab import CharVocab
    from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq
    from s2s_jax.models.time_loop import dense
    from s2s_jax.runtime import parallel
    from s2s_jax.training import schedules
    from s2s_jax.training.train import train_step
    from s2s_jax.training.train_state import TrainState

    config = base_config()
    with config.unlocked():
        config.model.update(embed_dim=16, hidden_size=32, attention_dim=32, dropout=0.0)
    pairs = make_splits("dates", 0, {"train": 400})["train"]
    corpus_vocab = CharVocab("".join(sorted({c for p in pairs for c in p[0] + p[1]})))
    batches = TrainBatches(encode_pairs(pairs, corpus_vocab, corpus_vocab), 16, ((32, 12),), seed=0)
    model = Seq2Seq(
        ModelConfig.create(corpus_vocab.size, corpus_vocab.size, **config.model.to_dict())
    )
    batch = batches.batch(0)
    params = model.init(jax.random.key(0), batch["src"], batch["src_mask"], batch["tgt_in"])[
        "params"
    ]
    step = jax.jit(functools.partial(train_step, config=config))
    grad_step = jax.jit(
        jax.grad(
            lambda p, b: model.apply({"params": p}, b["src"], b["src_mask"], b["tgt_in"])[0].sum()
        )
    )

    results = {}
    for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        mesh = Mesh(np.array(devices), (parallel.DATA_AXIS,))
        state = parallel.replicate(
            TrainState.create(
                apply_fn=model.apply, params=params, tx=schedules.create_optimizer(config.train, 10)
            ),
            mesh,
        )
        curve = []
        for i in range(3):
            sharded = parallel.shard_batch(batches.batch(i), mesh)
            state, sums = step(state, sharded, jax.random.key(0))
            curve.append(float(sums["loss"] / sums["tokens"]))
        grads = grad_step(params, parallel.shard_batch(batches.batch(0), mesh))
        results[name] = {
            "devices": len(devices),
            "batch_shards": len(sharded["src"].addressable_shards),
            "curve": curve,
            "params": [np.asarray(x).ravel().tolist()[:50] for x in jax.tree.leaves(state.params)],
            "grads": [np.asarray(x).ravel().tolist()[:50] for x in jax.tree.leaves(grads)],
            "step_all_gathers": step.lower(state, sharded, jax.random.key(0))
            .compile()
            .as_text()
            .count("all-gather("),
        }
    # A time-major [T, B, D] input with its batch sharded, as the recurrent layers'
    # input projections take it: its kernel gradient must not gather the batch.
    x = jax.device_put(
        jnp.ones((4, 16, 8)), NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))
    )
    kernel = jnp.ones((8, 12))
    results["dense_all_gathers"] = {
        jnp.dtype(dtype).name: jax.jit(
            jax.grad(lambda x, k: jnp.sum(dense(x, k, None, dtype) ** 2), argnums=(0, 1))
        )
        .lower(x, kernel)
        .compile()
        .as_text()
        .count("all-gather(")
        for dtype in (jnp.float32, jnp.bfloat16)
    }
    return results


def test_eight_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS=host_devices(8), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, __file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    one, eight = results["one"], results["eight"]
    assert (one["devices"], eight["devices"], eight["batch_shards"]) == (1, 8, 8)
    # data parallelism reduces gradients; it never gathers a sharded batch
    assert eight["step_all_gathers"] == 0
    assert results["dense_all_gathers"] == {"float32": 0, "bfloat16": 0}
    import numpy as np

    np.testing.assert_allclose(eight["curve"], one["curve"], rtol=RTOL)
    for key in ("grads", "params"):
        for a, b in zip(eight[key], one[key]):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


if __name__ == "__main__":
    print(json.dumps(_compare_devices()))
