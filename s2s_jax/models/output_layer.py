"""The output layer and the cross-entropy over real tokens only, gradient included.

``projected_metrics`` equals ``token_metrics.sequence_metrics(features @ kernel + bias, ...)``,
computed so that padding costs nothing and the ``[tokens, V]`` logits never exist:

- **Real tokens only.** The real tokens are moved to the front (within each data shard)
  and a loop runs over ``ceil(real / chunk)`` chunks of them, so the three output
  matmuls skip the padding.
- **The gradient in the same pass.** The gradient of the smoothed loss with respect to
  a chunk's logits is ``w * (softmax - q)`` (q: the smoothed target distribution). Under
  ``jax.grad`` each chunk turns its logits into that, then into its share of
  ``d features`` and ``d kernel``, while they are in cache; the backward pass only scales
  them by the incoming cotangent. Memory holds one chunk's ``[chunk, V]`` logits.
- **The bias** is the kernel's last row, matched by a column of ones in the features.
"""

import functools

import jax
import jax.numpy as jnp


def _chunk_sums(x, kernel, targets, weights, smoothing, dtype, with_grads):
    """One chunk: metric sums, and with ``with_grads`` the unscaled gradients of the loss
    sum with respect to ``x`` and ``kernel``.

    Args:
      x: ``[S, c, K]`` features (with the ones column when there is a bias).
      kernel: ``[K, V]`` in ``dtype``; targets: ``[S, c]``; weights: ``[S, c]`` float.
    """
    logits = jnp.einsum("sck,kv->scv", x.astype(dtype), kernel, preferred_element_type=jnp.float32)
    top = logits.max(axis=-1)
    exp = jnp.exp(logits - top[..., None])
    total = exp.sum(axis=-1)
    gold = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    nll = jnp.log(total) + top - gold
    loss = nll
    if smoothing:  # -mean_k log p_k = logsumexp - mean_k logits
        loss = (1.0 - smoothing) * nll + smoothing * (jnp.log(total) + top - logits.mean(axis=-1))
    sums = {
        "loss": jnp.sum(loss * weights),
        "nll": jnp.sum(nll * weights),
        "correct": jnp.sum((gold >= top) * weights),
    }
    if not with_grads:
        return sums, None
    vocab = logits.shape[-1]
    q = smoothing / vocab + (1.0 - smoothing) * jax.nn.one_hot(targets, vocab)
    d_logits = (weights[..., None] * (exp / total[..., None] - q)).astype(dtype)
    d_x = jnp.einsum("scv,kv->sck", d_logits, kernel, preferred_element_type=jnp.float32)
    d_kernel = jnp.einsum(
        "sck,scv->skv", x.astype(dtype), d_logits, preferred_element_type=jnp.float32
    )
    return sums, (d_x, d_kernel)


def _real_tokens_loop(x, kernel, order, targets, weights, smoothing, dtype, chunk, with_grads):
    """Sums over the real tokens, and with ``with_grads`` the unscaled gradients with
    respect to ``x`` and ``kernel``.

    Args:
      x: ``[S, N, K]`` features; kernel: ``[K, V]``, or ``[K + 1, V]`` with the bias
        as its last row.
      order: ``[S, M]`` token indices into ``x``, real tokens first; ``targets`` and
        ``weights`` ``[S, M]`` in that order. ``M`` is a multiple of ``chunk``.

    Returns:
      The sums, and ``d x`` ``[S, M, K]`` in ``order``'s order and ``d kernel`` (one per
      shard, ``[S, *kernel.shape]``: their sum is the data-parallel reduction, done once
      after the loop).
    """
    bias = len(kernel) > x.shape[-1]
    kernel = kernel.astype(dtype)
    real = jnp.sum(weights > 0, axis=1).max()
    sums = {key: jnp.zeros((), jnp.float32) for key in ("loss", "nll", "correct")}
    grads = (
        (
            jnp.zeros(order.shape + x.shape[-1:], jnp.float32),
            jnp.zeros((len(x),) + kernel.shape, jnp.float32),
        )
        if with_grads
        else None
    )

    def body(i, carry):
        sums, grads = carry
        start = i * chunk
        rows, targets_i, weights_i = (
            jax.lax.dynamic_slice_in_dim(a, start, chunk, axis=1) for a in (order, targets, weights)
        )
        x_i = jnp.take_along_axis(x, rows[..., None], axis=1)
        if bias:
            x_i = jnp.concatenate([x_i, jnp.ones(x_i.shape[:2] + (1,), x_i.dtype)], -1)
        chunk_sums, chunk_grads = _chunk_sums(
            x_i, kernel, targets_i, weights_i, smoothing, dtype, with_grads
        )
        sums = jax.tree.map(jnp.add, sums, chunk_sums)
        if with_grads:
            d_x_i = chunk_grads[0][..., : x.shape[-1]]
            grads = (
                jax.lax.dynamic_update_slice_in_dim(grads[0], d_x_i, start, 1),
                grads[1] + chunk_grads[1],
            )
        return sums, grads

    return jax.lax.fori_loop(0, (real + chunk - 1) // chunk, body, (sums, grads))


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _loss_sums(x, kernel, order, rank, targets, weights, smoothing, dtype, chunk):
    return _real_tokens_loop(x, kernel, order, targets, weights, smoothing, dtype, chunk, False)[0]


def _loss_sums_fwd(x, kernel, order, rank, targets, weights, smoothing, dtype, chunk):
    sums, (d_x, d_kernel) = _real_tokens_loop(
        x, kernel, order, targets, weights, smoothing, dtype, chunk, True
    )
    d_x = jnp.take_along_axis(d_x, rank[..., None], axis=1)  # back to x's order
    return sums, (d_x, d_kernel.sum(axis=0))


def _loss_sums_bwd(smoothing, dtype, chunk, grads, cotangents):
    del smoothing, dtype, chunk
    g = cotangents["loss"]
    return g * grads[0], g * grads[1], None, None, None, None


_loss_sums.defvjp(_loss_sums_fwd, _loss_sums_bwd)


def projected_metrics(
    features: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None,
    targets: jax.Array,
    mask: jax.Array,
    label_smoothing: float = 0.0,
    chunk_tokens: int = 0,
    dtype=jnp.float32,
    shards: int = 1,
) -> dict[str, jax.Array]:
    """Metric sums of the logits ``features @ kernel + bias`` over real tokens.

    Args:
      features: ``[B, T, H]``; kernel: ``[H, V]``; bias: ``[V]`` or None.
      targets: ``[B, T]`` int; mask: ``[B, T]`` bool, True on real tokens.
      label_smoothing: as in ``token_metrics.token_losses``.
      chunk_tokens: real tokens per step of the loop (0: all of a shard's in one).
      dtype: matmul dtype; softmax and sums are float32.
      shards: the rows form this many groups (the data-parallel devices, each holding
        ``B / shards`` rows), and each group's real tokens are gathered on their own,
        so no device reads another's.

    Returns:
      ``loss``, ``nll``, ``correct`` and ``tokens`` sums, as ``token_metrics.sequence_metrics``
      (only ``loss`` carries a gradient; a gold logit tied with the maximum counts as
      correct).
    """
    batch, length, width = features.shape
    if batch % shards:
        raise ValueError(f"{batch} rows do not split into {shards} shards")
    per_shard = batch // shards * length
    chunk = chunk_tokens if 0 < chunk_tokens < per_shard else per_shard
    pad = -per_shard % chunk

    x, targets, real = (
        a.reshape((shards, per_shard) + a.shape[2:])
        for a in (features.astype(jnp.float32), targets, mask)
    )
    # order: real tokens first (stable); rank: the inverse, a token's place in order.
    order = jnp.argsort(~real, axis=1, stable=True)
    count = jnp.cumsum(real, axis=1)
    rank = jnp.where(real, count, count[:, -1:] + jnp.cumsum(~real, axis=1)) - 1
    order = jnp.pad(order, [(0, 0), (0, pad)])
    targets, weights = (jnp.take_along_axis(a, order, axis=1) for a in (targets, real))
    weights = weights & (jnp.arange(per_shard + pad) < per_shard)
    if bias is not None:
        kernel = jnp.concatenate([kernel, bias[None].astype(kernel.dtype)])
    sums = _loss_sums(
        x, kernel, order, rank, targets, weights.astype(jnp.float32), label_smoothing, dtype, chunk
    )
    return {**sums, "tokens": jnp.sum(mask.astype(jnp.float32))}
