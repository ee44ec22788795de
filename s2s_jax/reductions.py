"""``argmax`` over the last axis in two vectorizable passes.

XLA's CPU backend lowers ``jnp.argmax`` to a variadic (value, index) reduction that
does not vectorize: over a ``[640, 8000]`` array of logits it measured about 30x
slower than ``max``. ``argmax`` here takes the max of each block of ``BLOCK`` columns,
the argmax over those block maxima (a short row), then the argmax inside the winning
block. It returns exactly what ``jnp.argmax`` returns, ties (first index) and NaN
(which wins) included.
"""

import jax
import jax.numpy as jnp

BLOCK = 64


def argmax(x: jax.Array) -> jax.Array:
    """``[..., n] -> [...]`` int32 for floating ``x``: the first index of each row's
    maximum."""
    if x.shape[-1] <= BLOCK:
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    pad = -x.shape[-1] % BLOCK  # -inf columns never come first
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)], constant_values=-jnp.inf)
    blocks = x.reshape(x.shape[:-1] + (-1, BLOCK))
    best_block = jnp.argmax(blocks.max(axis=-1), axis=-1)  # [...], over n / BLOCK maxima
    rows = jnp.take_along_axis(blocks, best_block[..., None, None], axis=-2)[..., 0, :]
    return (best_block * BLOCK + jnp.argmax(rows, axis=-1)).astype(jnp.int32)
