"""The output layer and the cross-entropy in one function, with a hand-written gradient.

``projected_metrics`` equals ``losses.sequence_metrics(features @ kernel + bias, ...)``
but never differentiates through ``log_softmax``: the gradient of the smoothed loss
with respect to the logits is ``w * (softmax - q)`` (q: the smoothed target
distribution), so the backward pass makes the logit gradient in one elementwise pass
over the saved logits, then two matmuls whose operands are laid out for them (no
``[tokens, V]`` transpose). The bias is folded into the matmul.

With ``chunk_tokens`` > 0 the tokens are processed in chunks of that many and the
logits of a chunk are recomputed in the backward pass, so memory holds one chunk's
``[chunk, V]`` instead of all tokens' (one more output matmul per step).
"""

import functools

import jax
import jax.numpy as jnp

from s2s_jax.models.recurrence import dense


def _with_ones(x):
    """``[x, 1]``: with the bias as the kernel's last row, the matmul adds it (no extra
    pass over the ``[n, V]`` logits)."""
    return jnp.concatenate([x, jnp.ones((len(x), 1), x.dtype)], axis=1)


def _logits(x, kernel, bias, dtype):
    if bias is None:
        return dense(x, kernel, None, dtype)
    return dense(_with_ones(x), jnp.concatenate([kernel, bias[None].astype(kernel.dtype)]),
                 None, dtype)


def _forward(x, kernel, bias, targets, weights, smoothing, dtype):
    """Sums, and what the backward pass needs: the logits, their max and
    ``sum(exp(logits - max))``."""
    logits = _logits(x, kernel, bias, dtype)
    top = logits.max(axis=-1)
    total = jnp.exp(logits - top[:, None]).sum(axis=-1)
    gold = jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    nll = jnp.log(total) + top - gold
    loss = nll
    if smoothing:  # -mean_k log p_k = logsumexp - mean_k logits
        loss = (1.0 - smoothing) * nll + smoothing * (
            jnp.log(total) + top - logits.mean(axis=-1))
    sums = {"loss": jnp.sum(loss * weights), "nll": jnp.sum(nll * weights),
            "correct": jnp.sum((gold >= top) * weights)}
    return sums, (logits, top, total)


def _logit_grad(logits, top, total, targets, weights, smoothing, g):
    """d loss_sum / d logits, ``[n, V]``: ``g w (softmax - q)``, in one pass."""
    vocab = logits.shape[-1]
    scale = (g * weights)[:, None]
    q = (smoothing / vocab + (1.0 - smoothing) * jax.nn.one_hot(targets, vocab))
    return scale * (jnp.exp(logits - top[:, None]) / total[:, None] - q)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _chunk(x, kernel, bias, targets, weights, smoothing, dtype, recompute):
    return _forward(x, kernel, bias, targets, weights, smoothing, dtype)[0]


def _chunk_fwd(x, kernel, bias, targets, weights, smoothing, dtype, recompute):
    sums, saved = _forward(x, kernel, bias, targets, weights, smoothing, dtype)
    return sums, (x, kernel, bias, targets, weights, None if recompute else saved)


def _chunk_bwd(smoothing, dtype, recompute, residuals, cotangents):
    x, kernel, bias, targets, weights, saved = residuals
    if saved is None:
        saved = _forward(x, kernel, bias, targets, weights, smoothing, dtype)[1]
    d_logits = _logit_grad(*saved, targets, weights, smoothing,
                           cotangents["loss"]).astype(dtype)
    d_x = jnp.dot(d_logits, kernel.astype(dtype).T, preferred_element_type=jnp.float32)
    x_ones = x if bias is None else _with_ones(x)
    d_kernel = jnp.dot(x_ones.astype(dtype).T, d_logits, preferred_element_type=jnp.float32)
    d_bias = None if bias is None else d_kernel[-1].astype(bias.dtype)
    d_kernel = d_kernel[:len(kernel)].astype(kernel.dtype)
    return d_x.astype(x.dtype), d_kernel, d_bias, None, None


_chunk.defvjp(_chunk_fwd, _chunk_bwd)


def projected_metrics(features: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                      targets: jax.Array, mask: jax.Array, label_smoothing: float = 0.0,
                      chunk_tokens: int = 0, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Metric sums of the logits ``features @ kernel + bias`` over real tokens.

    Args:
      features: ``[B, T, H]``; kernel: ``[H, V]``; bias: ``[V]`` or None.
      targets: ``[B, T]`` int; mask: ``[B, T]`` bool, True on real tokens.
      label_smoothing: as in ``losses.token_losses``.
      chunk_tokens: > 0: tokens per chunk (bounded memory, logits recomputed).
      dtype: matmul dtype; softmax and sums are float32.

    Returns:
      ``loss``, ``nll``, ``correct`` and ``tokens`` sums, as ``losses.sequence_metrics``
      (only ``loss`` carries a gradient; a gold logit tied with the maximum counts as
      correct).
    """
    x = features.reshape(-1, features.shape[-1]).astype(jnp.float32)
    weights = mask.reshape(-1).astype(jnp.float32)
    targets = targets.reshape(-1)
    if not 0 < chunk_tokens < len(x):
        sums = _chunk(x, kernel, bias, targets, weights, label_smoothing, dtype, False)
    else:
        pad = -len(x) % chunk_tokens
        chunks = [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(
            (-1, chunk_tokens) + a.shape[1:]) for a in (x, targets, weights)]
        per_chunk = jax.lax.map(
            lambda c: _chunk(c[0], kernel, bias, c[1], c[2], label_smoothing, dtype, True),
            tuple(chunks))
        sums = jax.tree.map(jnp.sum, per_chunk)
    return {**sums, "tokens": jnp.sum(weights)}
