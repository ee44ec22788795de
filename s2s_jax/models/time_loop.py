"""The recurrence over a whole sequence, with a hand-written backward pass.

A cell is split into its recurrent matmul ``r_t = h_{t-1} W_hh (+ b_hh)`` and an
elementwise ``update(params, x_t, r_t, carry) -> (carry', h_t)``, where ``x_t`` is the
input projection, computed for all time steps before the loop
(``RecurrentCell.project``), and ``params`` the update's own parameters (the
layer-normalised LSTM's gains; none for the others). Forward, one loop step is one
matmul and one fused update.

Differentiating ``lax.scan`` directly would accumulate ``dW_hh += h_{t-1}^T dr_t`` with
a matmul inside every backward step. Here the backward loop does only what must be
sequential, ``dh_{t-1} = dr_t W_hh^T`` plus the derivative of ``update`` (whose
parameters' gradients it sums as it goes), and stores ``dr_t``; the weight gradients
then take one large matmul over all time steps and rows, as in cuDNN and oneDNN.

Padding: where ``mask`` is False the carry passes through unchanged and the output is
0, so each sequence's final carry is its state at its own last real step.

Saved for the backward pass: the carry before each step, and ``r_t`` unless ``remat``
is set, in which case ``r_t`` is recomputed (one more matmul per step, about 4/7 less
activation memory for the LSTM). An additive cell (LSTM, plain RNN: the update sees
only ``x_t + r_t``) saves that sum instead, so its backward loop reads no ``x_t`` and
writes one gradient stream, ``d(x_t + r_t)``, which is both ``d x_t`` and ``d r_t``.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Carry = tuple[jax.Array, ...]
# (params, x_proj [B, G*H], r [B, G*H], carry) -> (new carry, h [B, H]): elementwise
# but for a layer norm's means over each row; params: a pytree, () for most cells.
Update = Callable[[Any, jax.Array, jax.Array, Carry], tuple[Carry, jax.Array]]


def _matmul(x: jax.Array, kernel: jax.Array, dtype) -> jax.Array:
    """``x [..., D] @ kernel [D, F]``, multiplied in ``dtype``, accumulated in float32."""
    return jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=jnp.float32)


_low_precision_matmul = jax.custom_vjp(_matmul, nondiff_argnums=(2,))


def _low_precision_matmul_fwd(x, kernel, dtype):
    return _matmul(x, kernel, dtype), (x.astype(dtype), kernel.astype(dtype))


def _low_precision_matmul_bwd(dtype, residuals, d_y):
    """Both gradients multiply in ``dtype`` and come out in float32: the kernel's is
    never rounded to ``dtype`` (autodiff of a cast would round it, then convert it
    back, at every loop step). As autodiff of a dot does, ``d kernel`` contracts the
    leading axes as they are, so a batch sharded across devices is never gathered."""
    x_low, kernel_low = residuals
    d_y = d_y.astype(dtype)
    leading = tuple(range(d_y.ndim - 1))
    d_kernel = jnp.tensordot(x_low, d_y, (leading, leading), preferred_element_type=jnp.float32)
    return _matmul(d_y, kernel_low.T, dtype), d_kernel


_low_precision_matmul.defvjp(_low_precision_matmul_fwd, _low_precision_matmul_bwd)


def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, dtype=jnp.float32) -> jax.Array:
    """``x [..., D] @ kernel [D, F] (+ bias)``, multiplied in ``dtype``, float32 out."""
    if jnp.dtype(dtype) == jnp.float32:
        y = _matmul(x, kernel, dtype)
    else:  # float32 operands: the casts' VJPs return the gradients in x's and kernel's dtypes
        y = _low_precision_matmul(
            x.astype(jnp.float32), kernel.astype(jnp.float32), jnp.dtype(dtype)
        )
    return y if bias is None else y + bias.astype(jnp.float32)


def time_and_batch_matmul(
    x: jax.Array, d: jax.Array, dtype=jnp.float32, batch_sharded: bool = False
) -> jax.Array:
    """``sum over t, b of x[t, b]^T d[t, b]``: ``x [T, B, H]``, ``d [T, B, G]`` ->
    ``[H, G]`` float32, multiplied in ``dtype``.

    On one device, time and batch merge into one axis (a free reshape), the fastest
    form for XLA:CPU. With ``batch_sharded`` (the batch split across devices), merging
    would make XLA all-gather both operands and repeat the matmul on every device, so
    the two axes are contracted as they are: each device multiplies its own rows.
    """
    x, d = x.astype(dtype), d.astype(dtype)
    if batch_sharded:
        return jnp.einsum("tbh,tbg->hg", x, d, preferred_element_type=jnp.float32)
    return jnp.dot(
        x.reshape(-1, x.shape[-1]).T, d.reshape(-1, d.shape[-1]), preferred_element_type=jnp.float32
    )


def _masked(
    update: Update, params, x: jax.Array, r: jax.Array, carry: Carry, mask: jax.Array | None
) -> tuple[Carry, jax.Array]:
    new, h = update(params, x, r, carry)
    if mask is None:
        return new, h
    keep = mask[:, None]
    return (tuple(jnp.where(keep, n, o) for n, o in zip(new, carry)), jnp.where(keep, h, 0.0))


def _run(update, dtype, reverse, unroll, additive, kernel, bias, params, xs, masks, carry):
    """The forward loop over time-major inputs: (final carry, outputs, what the update
    saw per step (``r``, or ``x + r`` when additive), carry before each step)."""

    def body(carry, inputs):
        x, mask = inputs
        r = dense(carry[0], kernel, bias, dtype)
        if additive:
            x, r = 0.0, x + r
        new, h = _masked(update, params, x, r, carry, mask)
        return new, (h, r, carry)

    return jax.lax.scan(body, carry, (xs, masks), reverse=reverse, unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4, 5))
def _recurrence(
    update, dtype, reverse, unroll, remat, additive, kernel, bias, params, xs, masks, carry
):
    final, (hs, _, _) = _run(
        update, dtype, reverse, unroll, additive, kernel, bias, params, xs, masks, carry
    )
    return final, hs


def _recurrence_fwd(
    update, dtype, reverse, unroll, remat, additive, kernel, bias, params, xs, masks, carry
):
    final, (hs, rs, befores) = _run(
        update, dtype, reverse, unroll, additive, kernel, bias, params, xs, masks, carry
    )
    # An additive update's saved ``x + r`` is all its backward step needs.
    keep_xs = remat or not additive
    return (final, hs), (
        kernel,
        bias,
        params,
        xs if keep_xs else None,
        masks,
        None if remat else rs,
        befores,
    )


def _recurrence_bwd(update, dtype, reverse, unroll, remat, additive, residuals, cotangents):
    kernel, bias, params, xs, masks, rs, befores = residuals
    d_final, d_hs = cotangents

    def body(d_loop, inputs):
        d_carry, d_params = d_loop
        x, mask, r, before, d_h = inputs
        if r is None:
            r = dense(before[0], kernel, bias, dtype)
            r = x + r if additive else r
        if additive:  # d x = d r: one stream, not two
            _, vjp = jax.vjp(lambda p, r, c: _masked(update, p, 0.0, r, c, mask), params, r, before)
            d_step_params, d_r, d_before = vjp((d_carry, d_h))
            d_x = None
        else:
            _, vjp = jax.vjp(
                lambda p, x, r, c: _masked(update, p, x, r, c, mask), params, x, r, before
            )
            d_step_params, d_x, d_r, d_before = vjp((d_carry, d_h))
        d_h_prev = d_before[0] + dense(d_r, kernel.T, None, dtype)
        d_params = jax.tree.map(jnp.add, d_params, d_step_params)
        return ((d_h_prev,) + tuple(d_before[1:]), d_params), (d_x, d_r)

    (d_carry, d_params), (d_xs, d_rs) = jax.lax.scan(
        body,
        (d_final, jax.tree.map(jnp.zeros_like, params)),
        (xs, masks, rs, befores, d_hs),
        reverse=not reverse,
        unroll=unroll,
    )
    # Weight gradients: one matmul over every (time step, row) pair.
    d_kernel = time_and_batch_matmul(befores[0], d_rs, dtype, jax.device_count() > 1).astype(
        kernel.dtype
    )
    d_bias = None if bias is None else d_rs.sum(axis=(0, 1)).astype(bias.dtype)
    return d_kernel, d_bias, d_params, d_rs if additive else d_xs, None, d_carry


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def recurrence(
    update: Update,
    kernel: jax.Array,
    bias: jax.Array | None,
    x_proj: jax.Array,
    mask: jax.Array | None,
    carry: Carry,
    *,
    reverse: bool = False,
    unroll: int = 1,
    remat: bool = False,
    additive: bool = False,
    update_params: Any = (),
    dtype=jnp.float32,
) -> tuple[Carry, jax.Array]:
    """Runs a cell over a sequence.

    Args:
      update: the cell's elementwise update (see ``Update``).
      kernel: ``W_hh [H, G*H]``; bias: ``b_hh [G*H]`` or None.
      x_proj: ``[T, B, G*H]`` input projections of every step (float32), time-major
        as the loop reads them.
      mask: ``[B, T]`` bool, True on real steps; None: no padding.
      carry: initial carry, each ``[B, H]`` float32.
      reverse: run from the last step to the first.
      unroll: steps per loop iteration (forward and backward).
      remat: recompute ``r_t`` in the backward pass instead of storing it.
      additive: ``update`` sees only ``x_proj + r``: the loop stores that sum and the
        backward pass uses its gradient as both ``d x_proj`` and ``d r``.
      update_params: ``update``'s own parameters (a pytree of float32 arrays).
      dtype: matmul dtype; the carry and the update stay float32.

    Returns:
      the final carry and the outputs ``[T, B, H]`` (time-major).
    """
    mask = None if mask is None else jnp.swapaxes(mask, 0, 1)
    return _recurrence(
        update,
        dtype,
        reverse,
        unroll,
        remat,
        additive,
        kernel,
        bias,
        update_params,
        x_proj,
        mask,
        tuple(carry),
    )
