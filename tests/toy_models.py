"""A toy batch and a small Transformer over it, shared by the model tests."""

import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.models.model_config import ModelConfig
from s2s_jax.models.transformer import Transformer

B, S, T, SRC_V, TGT_V = 3, 7, 6, 20, 15  # batch, source and target lengths, vocabularies
LENGTHS = (7, 4, 1)  # the source lengths: full, padded, a single token


def inputs():
    """src ``[B, S]`` (0 where padded), src_mask ``[B, S]``, tgt_in ``[B, T]``."""
    rng = np.random.default_rng(0)
    src_mask = np.arange(S)[None, :] < np.array(LENGTHS)[:, None]
    src = np.where(src_mask, rng.integers(4, SRC_V, (B, S)), 0)
    tgt_in = rng.integers(4, TGT_V, (B, T))
    return jnp.asarray(src, jnp.int32), jnp.asarray(src_mask), jnp.asarray(tgt_in, jnp.int32)


def initialised(model, seed=0):
    """``model`` and its parameters, initialised on ``inputs()`` from ``seed``."""
    src, src_mask, tgt_in = inputs()
    return model, model.init(jax.random.key(seed), src, src_mask, tgt_in)["params"]


def transformer(seed=0, **overrides):
    """A 2-layer, 16-wide Transformer (``overrides``: other ModelConfig fields) and its
    parameters."""
    fields = dict(
        architecture="transformer",
        embed_dim=16,
        hidden_size=16,
        num_heads=4,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
    )
    fields.update(overrides)
    return initialised(Transformer(ModelConfig.create(SRC_V, TGT_V, **fields)), seed)
