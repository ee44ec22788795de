"""Tests for s2s_jax.models.time_loop, the fused recurrent fast path.

The forward pass is compared with the float64 numpy equations stepped in a Python
loop (tests/numpy_reference.py); the hand-written backward pass with JAX's automatic
derivative of a plain Python loop over the same cell step, which shares nothing with
it but the elementwise update. Every combination of cell, direction, padding, unroll
and remat is covered.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_reference import cell_step

from s2s_jax.models.cells import CELLS
from s2s_jax.models.time_loop import dense, recurrence, time_and_batch_matmul

BATCH, TIME, HIDDEN = 3, 7, 4
LENGTHS = np.array([7, 3, 1])  # one full, one padded, one single-step sequence
TOL = dict(rtol=2e-5, atol=2e-5)
CASES = list(itertools.product(CELLS, (False, True), (1, 3), (False, True)))


LN_PARAMS = ("x_scale", "h_scale", "bias", "c_scale", "c_bias")  # LayerNormLSTMCell's order


def _problem(cell: str, seed: int = 0):
    """Random kernel, bias, projected inputs, initial carry, mask and update parameters."""
    gates = CELLS[cell].num_gates
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    kernel = 0.5 * normal(HIDDEN, gates * HIDDEN)
    bias = normal(gates * HIDDEN) if CELLS[cell].recurrent_bias else None
    x_proj = normal(BATCH, TIME, gates * HIDDEN)
    carry = tuple(0.5 * normal(BATCH, HIDDEN) for _ in range(CELLS[cell].carry_size))
    mask = np.arange(TIME)[None, :] < LENGTHS[:, None]
    params = ()
    if cell == "ln_lstm":
        widths = (gates * HIDDEN,) * 3 + (HIDDEN,) * 2
        params = tuple(1.0 + 0.3 * normal(width) for width in widths)
    return kernel, bias, x_proj, carry, mask, params


def _numpy_run(cell, kernel, bias, x_proj, carry, mask, params, reverse):
    """float64 loop over the seeds' equations, with the identity input projection."""
    gates = CELLS[cell].num_gates
    p = {
        "w_ih": np.eye(gates * HIDDEN),
        "b_ih": np.zeros(gates * HIDDEN),
        "w_hh": kernel.astype(np.float64),
        **{name: value.astype(np.float64) for name, value in zip(LN_PARAMS, params)},
    }
    if bias is not None:
        p["b_hh"] = bias.astype(np.float64)
    carry = tuple(c.astype(np.float64) for c in carry)
    outputs = np.zeros((BATCH, TIME, HIDDEN))
    for t in reversed(range(TIME)) if reverse else range(TIME):
        new, h = cell_step(cell, p, carry, x_proj[:, t].astype(np.float64))
        keep = mask[:, t, None]
        carry = tuple(np.where(keep, n, o) for n, o in zip(new, carry))
        outputs[:, t] = np.where(keep, h, 0.0)
    return carry, outputs


def _loop_run(cell, kernel, bias, x_proj, carry, mask, params, reverse):
    """The same recurrence as a Python loop of jnp ops, for automatic differentiation."""
    update = CELLS[cell].update
    outputs = [None] * TIME
    for t in reversed(range(TIME)) if reverse else range(TIME):
        r = carry[0] @ kernel + (0.0 if bias is None else bias)
        new, h = update(params, x_proj[:, t], r, carry)
        keep = mask[:, t, None]
        carry = tuple(jnp.where(keep, n, o) for n, o in zip(new, carry))
        outputs[t] = jnp.where(keep, h, 0.0)
    return carry, jnp.stack(outputs, axis=1)


def _fused_run(cell, reverse, unroll, remat):
    def run(kernel, bias, x_proj, carry, mask, params):
        final, outputs = recurrence(
            CELLS[cell].update,
            kernel,
            bias,
            jnp.swapaxes(x_proj, 0, 1),
            mask,
            carry,
            reverse=reverse,
            unroll=unroll,
            remat=remat,
            additive=CELLS[cell].additive,
            update_params=params,
        )
        return final, jnp.swapaxes(outputs, 0, 1)

    return run


@pytest.mark.parametrize("cell,reverse,unroll,remat", CASES)
def test_forward_matches_numpy_equations(cell, reverse, unroll, remat):
    kernel, bias, x_proj, carry, mask, params = _problem(cell)
    final, outputs = jax.jit(_fused_run(cell, reverse, unroll, remat))(
        kernel, bias, x_proj, carry, mask, params
    )
    want_final, want_outputs = _numpy_run(cell, kernel, bias, x_proj, carry, mask, params, reverse)
    np.testing.assert_allclose(outputs, want_outputs, **TOL)
    for got, want in zip(final, want_final):
        np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("cell,reverse,unroll,remat", CASES)
def test_gradients_match_autodiff_of_the_step_loop(cell, reverse, unroll, remat):
    kernel, bias, x_proj, carry, mask, params = _problem(cell, seed=1)
    rng = np.random.default_rng(2)
    out_weights = rng.normal(size=(BATCH, TIME, HIDDEN)).astype(np.float32)
    carry_weights = [rng.normal(size=(BATCH, HIDDEN)).astype(np.float32) for _ in carry]

    def objective(run):
        def f(kernel, bias, x_proj, carry, params):
            final, outputs = run(kernel, bias, x_proj, carry, mask, params)
            return jnp.sum(outputs * out_weights) + sum(
                jnp.sum(c * w) for c, w in zip(final, carry_weights)
            )

        return f

    args = (kernel, bias, x_proj, carry, params)
    argnums = (0, 2, 3, 4) if bias is None else (0, 1, 2, 3, 4)
    fused = jax.jit(jax.grad(objective(_fused_run(cell, reverse, unroll, remat)), argnums=argnums))(
        *args
    )
    loop = jax.grad(objective(lambda *a: _loop_run(cell, *a, reverse)), argnums=argnums)(*args)
    for got, want in zip(jax.tree.leaves(fused), jax.tree.leaves(loop)):
        np.testing.assert_allclose(got, want, **TOL)
    # Padded steps receive no gradient through the input projections.
    d_x = fused[argnums.index(2)]
    np.testing.assert_array_equal(np.asarray(d_x)[~mask], 0.0)


def test_remat_and_unroll_are_execution_details():
    """Bit-for-bit the same outputs; gradients equal to float32 round-off."""
    kernel, bias, x_proj, carry, mask, params = _problem("lstm", seed=3)
    runs = [
        _fused_run("lstm", False, unroll, remat)
        for unroll, remat in ((1, False), (4, False), (1, True), (4, True))
    ]
    outputs = [r(kernel, bias, x_proj, carry, mask, params)[1] for r in runs]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch_sharded", [False, True])
def test_weight_gradient_matmul_sums_over_time_and_batch(batch_sharded):
    rng = np.random.default_rng(5)
    x, d = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 8))
    want = sum(x[t].T @ d[t] for t in range(4))  # float64
    got = time_and_batch_matmul(
        jnp.asarray(x, jnp.float32), jnp.asarray(d, jnp.float32), batch_sharded=batch_sharded
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bfloat16_dense_gradients_accumulate_in_float32():
    """A bfloat16 ``dense`` in a loop: the output and both gradients equal float64
    products of the bfloat16-rounded operands (float32 accumulation), and the kernel's
    gradient sums the steps' in float32, never rounded to bfloat16 on the way."""
    rng = np.random.default_rng(0)
    x, kernel, d_y = (
        rng.normal(size=shape).astype(np.float32) for shape in ((5, 3, 16), (16, 8), (5, 3, 8))
    )  # [T, B, D], [D, F]

    def loss(x, kernel):
        _, ys = jax.lax.scan(lambda c, x_t: (c, dense(x_t, kernel, None, jnp.bfloat16)), 0.0, x)
        return jnp.sum(ys * d_y), ys

    (d_x, d_kernel), ys = jax.grad(loss, argnums=(0, 1), has_aux=True)(x, kernel)
    x64, kernel64, d_y64 = (
        np.asarray(jnp.asarray(a, jnp.bfloat16)).astype(np.float64) for a in (x, kernel, d_y)
    )
    assert d_x.dtype == d_kernel.dtype == jnp.float32
    np.testing.assert_allclose(ys, x64 @ kernel64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_x, d_y64 @ kernel64.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_kernel, np.einsum("tbd,tbf->df", x64, d_y64), rtol=1e-5, atol=1e-5)
