"""The training state: step, parameters, optimizer state; freshly initialised on the mesh.

Only training holds one: evaluation, translation and export read parameters alone
(``s2s_jax.evaluation.parameters``) into a ``s2s_jax.decoding.translator.Translator``.
"""

from typing import Any

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
    ``ema_params``: the parameters' moving average (``train.ema_decay``), else None.
    """

    skipped: jax.Array | int = 0
    ema_params: Any = None

    def apply_gradients(self, *, grads, ema_decay: float = 0.0, **kwargs) -> "TrainState":
        """The update of ``flax``'s ``TrainState``, then the average's: with
        d = min(ema_decay, (1 + t) / (10 + t)) at step t (this update's, from 0),
        ema <- d * ema + (1 - d) * params (new ones)."""
        new = super().apply_gradients(grads=grads, **kwargs)
        if self.ema_params is None:
            return new
        step = jnp.asarray(self.step, jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, self.ema_params, new.params)
        return new.replace(ema_params=ema)

    @property
    def eval_params(self) -> Any:
        """What evaluation, checkpoint selection and export use."""
        return self.params if self.ema_params is None else self.ema_params


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
    if config.train.ema_decay:
        state = state.replace(ema_params=jax.tree.map(jnp.copy, params))
    return parallel.replicate(state, mesh)
