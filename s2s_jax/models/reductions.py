"""Reductions over the last axis as each backend runs them fastest: the decoders' hot path.

``argmax``, ``top_k``, ``logsumexp`` and ``log_softmax`` run the two-pass versions here
(``cpu_*``) on XLA:CPU and jax's own (``plain_*``) on other backends (GPU, TPU); both
give the same answers.

XLA's CPU backend lowers ``jnp.argmax`` to a variadic (value, index) reduction that
does not vectorize: over a ``[640, 8000]`` array of logits it measured about 30x
slower than ``max``. ``cpu_argmax`` takes the max of each block of ``BLOCK`` columns,
the argmax over those block maxima (a short row), then the argmax inside the winning
block. It returns exactly what ``jnp.argmax`` returns, ties (first index) and NaN
(which wins) included.

``cpu_top_k`` ranks only the k blocks of ``BLOCK`` columns with the largest maxima, and
``cpu_log_softmax`` is ``x - cpu_logsumexp(x)``. In beam search's step (a matmul to
``[640, 8000]`` logits, log-softmax, plus the beams' scores, the top 10 of each
``[40000]`` row), each took 15-16% off the step against ``jax.lax.top_k`` and
``jax.nn.log_softmax``, timed side by side.
"""

import jax
import jax.numpy as jnp

BLOCK = 64


def _cpu_tuned() -> bool:
    # Two passes beat jax's own on XLA:CPU only, as benchmarks/decode_throughput.py measures.
    return jax.default_backend() == "cpu"


def argmax(x: jax.Array) -> jax.Array:
    """``[..., n] -> [...]`` int32 for floating ``x``: the first index of each row's
    maximum (NaN wins)."""
    return cpu_argmax(x) if _cpu_tuned() else plain_argmax(x)


def top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """``jax.lax.top_k(x, k)`` over the last axis of a floating ``[..., n]`` without NaN:
    values and int32 indices ``[..., k]``, the lower index first among equal values."""
    return cpu_top_k(x, k) if _cpu_tuned() else plain_top_k(x, k)


def logsumexp(x: jax.Array) -> jax.Array:
    """``[..., n] -> [...]``: ``log(sum(exp(x)))`` over the last axis."""
    return cpu_logsumexp(x) if _cpu_tuned() else plain_logsumexp(x)


def log_softmax(x: jax.Array) -> jax.Array:
    """``jax.nn.log_softmax`` over the last axis."""
    return cpu_log_softmax(x) if _cpu_tuned() else plain_log_softmax(x)


# jax's own reductions, used on other backends than CPU.


def plain_argmax(x: jax.Array) -> jax.Array:
    return jnp.argmax(x, axis=-1).astype(jnp.int32)


def plain_top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    return jax.lax.top_k(x, k)


def plain_logsumexp(x: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(x, axis=-1)


def plain_log_softmax(x: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(x, axis=-1)


# The two-pass reductions, used on XLA:CPU.


def _blocks(x: jax.Array) -> jax.Array:
    """``[..., n] -> [..., ceil(n / BLOCK), BLOCK]``, the last block padded with -inf
    (padding never comes first)."""
    pad = -x.shape[-1] % BLOCK
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)], constant_values=-jnp.inf)
    return x.reshape(x.shape[:-1] + (-1, BLOCK))


def cpu_argmax(x: jax.Array) -> jax.Array:
    """``argmax`` from the maxima of blocks of ``BLOCK`` columns, then one block."""
    if x.shape[-1] <= BLOCK:
        return plain_argmax(x)
    blocks = _blocks(x)
    best_block = jnp.argmax(blocks.max(axis=-1), axis=-1)  # [...], over n / BLOCK maxima
    rows = jnp.take_along_axis(blocks, best_block[..., None, None], axis=-2)[..., 0, :]
    return (best_block * BLOCK + jnp.argmax(rows, axis=-1)).astype(jnp.int32)


def cpu_top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """``top_k`` from the k blocks of ``BLOCK`` columns with the largest maxima.

    The k best lie in those blocks (ties to the lower block), so after one pass of block
    maxima only those blocks, in block order, are ranked.
    """
    n = x.shape[-1]
    if n < 2 * k * BLOCK:  # too short for the blocks to save work
        return plain_top_k(x, k)
    blocks = _blocks(x)
    _, best_blocks = jax.lax.top_k(blocks.max(axis=-1), k)
    best_blocks = jnp.sort(best_blocks, axis=-1)  # block order keeps ties in index order
    rows = jnp.take_along_axis(blocks, best_blocks[..., None], axis=-2)  # [..., k, BLOCK]
    values, picks = jax.lax.top_k(rows.reshape(rows.shape[:-2] + (-1,)), k)
    index = jnp.take_along_axis(best_blocks, picks // BLOCK, axis=-1) * BLOCK + picks % BLOCK
    return values, index.astype(jnp.int32)


def cpu_logsumexp(x: jax.Array) -> jax.Array:
    """``logsumexp`` shifted by the max, in two plain passes."""
    top = jax.lax.stop_gradient(x.max(axis=-1, keepdims=True))
    return (top + jnp.log(jnp.exp(x - top).sum(axis=-1, keepdims=True)))[..., 0]


def cpu_log_softmax(x: jax.Array) -> jax.Array:
    """``log_softmax`` as ``x - cpu_logsumexp(x)``."""
    return x - cpu_logsumexp(x)[..., None]
