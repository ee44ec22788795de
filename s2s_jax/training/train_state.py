"""The training state: step, parameters, optimizer state; freshly initialised on the mesh.

Only training holds one: evaluation, translation and export read parameters alone
(``s2s_jax.evaluation.parameters``) into a ``s2s_jax.decoding.translator.Translator``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import Mesh

from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.runtime import parallel


class TrainState(train_state.TrainState):
    """Step, params and optimizer state; randomness is derived from (seed, step).

    ``skipped``: int32 [], updates skipped so far for a non-finite loss or gradient.
    """

    skipped: jax.Array | int = 0


def initial_state(
    config, model: Seq2Seq, tx: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """Freshly initialised parameters (seed ``config.seed``) and optimizer state,
    replicated on ``mesh``."""
    src_len, tgt_len = config.data.buckets[0]
    src = jnp.zeros((1, src_len), jnp.int32)
    tgt = jnp.zeros((1, tgt_len), jnp.int32)
    init = jax.jit(model.init, out_shardings=parallel.replicated(mesh))
    params = init(jax.random.key(config.seed), src, jnp.ones_like(src, bool), tgt)["params"]
    count = sum(np.size(p) for p in jax.tree.leaves(params))
    logging.info("model parameters: %s", f"{count:,}")
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    return parallel.replicate(state, mesh)
