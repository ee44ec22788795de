"""The output layer and the cross-entropy in one function, with a hand-written gradient.

``projected_metrics`` equals ``losses.sequence_metrics(features @ kernel + bias, ...)``
but never differentiates through ``log_softmax``: the gradient of the smoothed loss
with respect to the logits is ``w * (softmax - q)`` (q: the smoothed target
distribution), so the forward pass keeps ``exp(logits - max)`` and the backward pass
makes the logit gradient in one elementwise pass, then two matmuls whose operands are
laid out for them (no ``[tokens, V]`` transpose).

With ``chunk_tokens`` > 0 the tokens are processed in chunks of that many and the
logits of a chunk are recomputed in the backward pass, so memory holds one chunk's
``[chunk, V]`` instead of all tokens' (one more output matmul per step).
"""

import functools

import jax
import jax.numpy as jnp

from s2s_jax.models.recurrence import dense


def _forward(x, kernel, bias, targets, weights, smoothing, dtype):
    """Sums and the backward's needs: ``exp(logits - max)`` and its row sums."""
    logits = dense(x, kernel, bias, dtype)
    top = logits.max(axis=-1)
    exp = jnp.exp(logits - top[:, None])
    total = exp.sum(axis=-1)
    gold = jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    nll = jnp.log(total) + top - gold
    loss = nll
    if smoothing:  # -mean_k log p_k = logsumexp - mean_k logits
        loss = (1.0 - smoothing) * nll + smoothing * (
            jnp.log(total) + top - logits.mean(axis=-1))
    sums = {"loss": jnp.sum(loss * weights), "nll": jnp.sum(nll * weights),
            "correct": jnp.sum((gold >= top) * weights)}
    return sums, (exp, total)


def _logit_grad(exp, total, targets, weights, smoothing, g):
    """d loss_sum / d logits, ``[n, V]``: ``g w (softmax - q)``."""
    scale = (g * weights / total)[:, None]
    grad = exp * scale - (g * weights * smoothing / exp.shape[-1])[:, None]
    gold = (g * weights * (1.0 - smoothing))[:, None]
    return grad - gold * jax.nn.one_hot(targets, exp.shape[-1], dtype=grad.dtype)


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
    d_logits = _logit_grad(*saved, targets, weights, smoothing, cotangents["loss"])
    d_logits = d_logits.astype(dtype)
    d_x = jnp.dot(d_logits, kernel.astype(dtype).T, preferred_element_type=jnp.float32)
    d_kernel = jnp.dot(x.astype(dtype).T, d_logits, preferred_element_type=jnp.float32)
    d_bias = None if bias is None else d_logits.astype(jnp.float32).sum(axis=0)
    return (d_x.astype(x.dtype), d_kernel.astype(kernel.dtype),
            None if bias is None else d_bias.astype(bias.dtype), None, None)


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
    hidden = features.shape[-1]
    x = features.reshape(-1, hidden).astype(jnp.float32)
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
