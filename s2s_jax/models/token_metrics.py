"""Masked token losses and metrics as (sum, count) pairs.

Metrics are returned as sums with their denominators so that they can be added across
steps, devices and hosts, and divided only when written (:func:`summarize`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from s2s_jax.models import reductions


def token_losses(
    logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """Per-token smoothed loss and plain negative log-likelihood, each ``[B, T]``.

    With smoothing eps the target distribution is (1 - eps) on the gold token plus
    eps spread uniformly over the vocabulary.
    """
    logits = logits.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    if not label_smoothing:
        return nll, nll
    labels = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, labels), nll


def sequence_metrics(
    logits: jax.Array, targets: jax.Array, mask: jax.Array, label_smoothing: float = 0.0
) -> dict[str, jax.Array]:
    """Sums over real tokens (``mask [B, T]``); padding never counts.

    Returns ``loss`` (smoothed, what is optimised), ``nll``, ``correct`` (argmax hits)
    and ``tokens`` (the denominator), each a scalar sum.
    """
    weights = mask.astype(jnp.float32)
    loss, nll = token_losses(logits, targets, label_smoothing)
    correct = (reductions.argmax(logits) == targets).astype(jnp.float32)
    return {
        "loss": jnp.sum(loss * weights),
        "nll": jnp.sum(nll * weights),
        "correct": jnp.sum(correct * weights),
        "tokens": jnp.sum(weights),
    }


def add(total: dict, new: dict) -> dict:
    """Accumulates metric sums."""
    if not total:
        return dict(new)
    return {key: total[key] + new[key] for key in total}


def summarize(sums: dict) -> dict[str, float]:
    """Sums -> per-token loss, perplexity and token accuracy."""
    tokens = max(float(sums["tokens"]), 1.0)
    nll = float(sums["nll"]) / tokens
    return {
        "loss": float(sums["loss"]) / tokens,
        "nll": nll,
        "perplexity": float(np.exp(min(nll, 50.0))),
        "token_accuracy": float(sums["correct"]) / tokens,
    }
