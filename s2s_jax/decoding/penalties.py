"""GNMT's hypothesis score (Wu et al. 2016, eq. 14): the log-probability divided by a
length penalty, plus a coverage penalty on source tokens the attention neglected."""

import jax
import jax.numpy as jnp


def length_penalty(length: jax.Array | int, alpha: float) -> jax.Array:
    """GNMT ``lp(Y) = ((5 + |Y|) / 6) ** alpha``, |Y| counting the generated EOS."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def coverage_penalty(coverage: jax.Array, src_mask: jax.Array, beta: float) -> jax.Array:
    """GNMT ``cp(X; Y) = beta * sum_i log(min(sum_j a_ij, 1))`` over real source tokens i.

    Args:
      coverage: ``[..., S]`` the attention each source token received, summed over the
        target steps j: ``sum_j a_ij``.
      src_mask: ``[..., S]``, broadcastable to ``coverage``.
      beta: the penalty's weight.

    Returns:
      ``[...]``, zero or negative.
    """
    coverage = jnp.minimum(coverage, 1.0)
    return beta * jnp.sum(jnp.where(src_mask, jnp.log(coverage), 0.0), axis=-1)


def gnmt_score(
    log_prob: jax.Array,
    length: jax.Array | int,
    coverage: jax.Array | None,
    src_mask: jax.Array,
    *,
    alpha: float,
    beta: float,
) -> jax.Array:
    """``log P(Y|X) / lp(Y) + cp(X; Y)``, shaped like ``log_prob``.

    ``coverage`` and ``src_mask`` are as in ``coverage_penalty``; they are not read when
    ``beta`` is 0 (coverage may then be None).
    """
    score = log_prob / length_penalty(length, alpha)
    if beta:
        score = score + coverage_penalty(coverage, src_mask, beta)
    return score
