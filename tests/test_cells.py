"""Tests for s2s_jax.models.cells (through RecurrentLayer).

Every cell is checked against an independent float64 numpy implementation of its
equations, stepped in a Python loop. JAX runs in float32, so the comparisons use
rtol = atol = 1e-5 (float32 round-off over a handful of steps is ~1e-6).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_reference import cell_params, cell_step

from s2s_jax.models.cells import CELLS
from s2s_jax.models.rnn_layers import RecurrentLayer

BATCH, TIME, IN_FEATURES, HIDDEN = 3, 6, 5, 4
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 JAX vs float64 numpy
NUM_GATES = {"lstm": 4, "ln_lstm": 4, "gru": 3, "rnn": 1}
LAYER_NORM = {"x_scale", "h_scale", "bias", "c_scale", "c_bias"}  # ln_lstm's own


def numpy_run(cell, p, inputs, carry=None):
    """Runs the numpy cell over ``inputs [B, T, D]``; returns (carry, outputs [B, T, H])."""
    batch, time = inputs.shape[:2]
    hidden = p["w_hh"].shape[0]
    if carry is None:
        carry = tuple(np.zeros((batch, hidden)) for _ in range(CELLS[cell].carry_size))
    outputs = []
    for t in range(time):
        carry, h = cell_step(cell, p, carry, inputs[:, t])
        outputs.append(h)
    return carry, np.stack(outputs, axis=1)


def make_inputs(seed=0, time=TIME):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, time, IN_FEATURES)).astype(np.float32)


@functools.cache
def _init_variables(cell, seed):
    """``RecurrentLayer.init`` (cached: the tests only read the variables)."""
    layer = RecurrentLayer(cell, HIDDEN)
    return layer.init(jax.random.PRNGKey(seed), jnp.asarray(make_inputs(seed)))


def init_layer(cell, seed=0):
    """The layer, its (cached) initial variables, and inputs [B, T, D] drawn with ``seed``."""
    return RecurrentLayer(cell, HIDDEN), _init_variables(cell, 0), make_inputs(seed)


def perturb(variables, seed):
    """Random non-zero biases so that every parameter matters in the comparison."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda v: v + 0.3 * rng.normal(size=v.shape).astype(np.float32), variables
    )


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_param_structure(cell):
    _, variables, _ = init_layer(cell)
    params = variables["params"]
    assert set(params) == {"cell"}
    cell_params = params["cell"]
    assert set(cell_params) == {"ih", "hh"} | (LAYER_NORM if cell == "ln_lstm" else set())
    gates = NUM_GATES[cell]
    assert cell_params["ih"]["kernel"].shape == (IN_FEATURES, gates * HIDDEN)
    if cell == "ln_lstm":  # the gates' bias comes after the normalisations
        assert set(cell_params["ih"]) == {"kernel"}
        for name in LAYER_NORM:
            width = HIDDEN if name.startswith("c_") else gates * HIDDEN
            assert cell_params[name].shape == (width,)
    else:
        assert cell_params["ih"]["bias"].shape == (gates * HIDDEN,)
    assert cell_params["hh"]["kernel"].shape == (HIDDEN, gates * HIDDEN)
    if cell == "gru":
        assert set(cell_params["hh"]) == {"kernel", "bias"}
        assert cell_params["hh"]["bias"].shape == (gates * HIDDEN,)
    else:
        assert set(cell_params["hh"]) == {"kernel"}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("perturbed", [False, True], ids=["init", "perturbed"])
def test_layer_matches_numpy_equations(cell, perturbed):
    layer, variables, inputs = init_layer(cell, seed=1)
    if perturbed:
        variables = perturb(variables, seed=2)
    carry, outputs = jax.jit(layer.apply)(variables, jnp.asarray(inputs))
    ref_carry, ref_outputs = numpy_run(
        cell, cell_params(variables["params"]), inputs.astype(np.float64)
    )

    assert outputs.shape == (BATCH, TIME, HIDDEN)
    assert outputs.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(outputs), ref_outputs, **TOL)
    assert len(carry) == len(ref_carry) == CELLS[cell].carry_size
    for got, want in zip(carry, ref_carry):
        assert got.shape == (BATCH, HIDDEN)
        np.testing.assert_allclose(np.asarray(got), want, **TOL)
    # The carry's first element is h, the last output.
    np.testing.assert_allclose(np.asarray(carry[0]), np.asarray(outputs[:, -1]), rtol=0, atol=0)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_layer_with_initial_carry_matches_numpy(cell):
    layer, variables, inputs = init_layer(cell, seed=3)
    variables = perturb(variables, seed=4)
    rng = np.random.default_rng(5)
    n = CELLS[cell].carry_size
    init = tuple(rng.normal(size=(BATCH, HIDDEN)).astype(np.float32) for _ in range(n))
    carry, outputs = jax.jit(layer.apply)(
        variables, jnp.asarray(inputs), None, tuple(jnp.asarray(c) for c in init)
    )
    ref_carry, ref_outputs = numpy_run(
        cell,
        cell_params(variables["params"]),
        inputs.astype(np.float64),
        tuple(c.astype(np.float64) for c in init),
    )
    np.testing.assert_allclose(np.asarray(outputs), ref_outputs, **TOL)
    for got, want in zip(carry, ref_carry):
        np.testing.assert_allclose(np.asarray(got), want, **TOL)


@pytest.mark.parametrize("cell, path", [("lstm", ("ih", "bias")), ("ln_lstm", ("bias",))])
def test_lstm_forget_bias_is_one(cell, path):
    _, variables, _ = init_layer(cell)
    bias = variables["params"]["cell"]
    for key in path:
        bias = bias[key]
    bias = np.asarray(bias)
    i, f, g, o = np.split(bias, 4)
    np.testing.assert_array_equal(f, np.ones(HIDDEN))
    for other in (i, g, o):
        np.testing.assert_array_equal(other, np.zeros(HIDDEN))


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_biases_start_at_zero(cell):
    _, variables, _ = init_layer(cell)
    cell_params = variables["params"]["cell"]
    np.testing.assert_array_equal(np.asarray(cell_params["ih"]["bias"]), 0.0)
    if cell == "gru":
        np.testing.assert_array_equal(np.asarray(cell_params["hh"]["bias"]), 0.0)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_recurrent_kernel_orthogonal_per_gate(cell):
    _, variables, _ = init_layer(cell, seed=7)
    w_hh = np.asarray(variables["params"]["cell"]["hh"]["kernel"], np.float64)
    gates = NUM_GATES[cell]
    blocks = [w_hh[:, k * HIDDEN : (k + 1) * HIDDEN] for k in range(gates)]
    for block in blocks:
        # float32 orthogonal matrices: Q^T Q = I to ~1e-6; tolerance 1e-5.
        np.testing.assert_allclose(block.T @ block, np.eye(HIDDEN), atol=1e-5)
        np.testing.assert_allclose(block @ block.T, np.eye(HIDDEN), atol=1e-5)
    # Each gate gets its own orthogonal block (independent keys), not copies of one.
    for a in range(gates):
        for b in range(a + 1, gates):
            assert not np.allclose(blocks[a], blocks[b])
    if gates > 1:
        # Per-block orthogonality implies W W^T = sum_k Q_k Q_k^T = G * I.
        np.testing.assert_allclose(w_hh @ w_hh.T, gates * np.eye(HIDDEN), atol=1e-4)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_step_matches_scan(cell):
    layer, variables, inputs = init_layer(cell, seed=8)
    variables = perturb(variables, seed=9)
    carry_scan, outputs_scan = jax.jit(layer.apply)(variables, jnp.asarray(inputs))

    carry = layer.apply(variables, BATCH, method="initial_carry")
    for c in carry:
        np.testing.assert_array_equal(np.asarray(c), np.zeros((BATCH, HIDDEN)))
    ref_carry = tuple(np.zeros((BATCH, HIDDEN)) for _ in carry)
    p = cell_params(variables["params"])
    step = jax.jit(functools.partial(layer.apply, method="step"))
    for t in range(TIME):
        carry, h = step(variables, carry, jnp.asarray(inputs[:, t]))
        ref_carry, ref_h = cell_step(cell, p, ref_carry, inputs[:, t].astype(np.float64))
        np.testing.assert_allclose(np.asarray(h), np.asarray(outputs_scan[:, t]), **TOL)
        np.testing.assert_allclose(np.asarray(h), ref_h, **TOL)
    for got, want in zip(carry, carry_scan):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("first", [1, 3], ids=["first1", "first3"])
def test_step_with_split_input_matches_numpy(cell, first):
    """``step(carry, rest, x_proj=project(x_first))``: the input's first features projected
    beforehand (as the input-feeding decoder does for its embeddings), the rest inside
    the step (for the LSTM and the RNN in one matmul with h)."""
    layer = RecurrentLayer(cell, HIDDEN, in_features=IN_FEATURES)
    variables = perturb(_init_variables(cell, 0), seed=10)
    inputs = make_inputs(seed=11)
    p = cell_params(variables["params"])
    project = jax.jit(functools.partial(layer.apply, method="project"))
    step = jax.jit(functools.partial(layer.apply, method="step"))
    carry = layer.apply(variables, BATCH, method="initial_carry")
    ref_carry = tuple(np.zeros((BATCH, HIDDEN)) for _ in carry)
    for t in range(TIME):
        x = jnp.asarray(inputs[:, t])
        carry, h = step(variables, carry, x[:, first:], project(variables, x[:, :first]))
        ref_carry, ref_h = cell_step(cell, p, ref_carry, inputs[:, t].astype(np.float64))
        np.testing.assert_allclose(np.asarray(h), ref_h, **TOL)
    for got, want in zip(carry, ref_carry):
        np.testing.assert_allclose(np.asarray(got), want, **TOL)


@pytest.mark.parametrize(
    "cell, reverse",
    [("lstm", False), ("lstm", True), ("gru", True), ("rnn", False)],
    ids=["lstm-forward", "lstm-backward", "gru-backward", "rnn-forward"],
)
def test_unroll_does_not_change_results(cell, reverse):
    time = 7  # not a multiple of the unroll factor
    inputs = make_inputs(seed=10, time=time)
    lengths = np.array([7, 4, 1])
    mask = np.arange(time)[None, :] < lengths[:, None]
    layer1 = RecurrentLayer(cell, HIDDEN, reverse=reverse, unroll=1)
    layer3 = RecurrentLayer(cell, HIDDEN, reverse=reverse, unroll=3)
    # unroll is a pure execution detail: the same variables serve both layers.
    variables = perturb(_init_variables(cell, 0), seed=12)
    results = {}
    for name, m in (("unmasked", None), ("masked", jnp.asarray(mask))):
        carry1, out1 = jax.jit(layer1.apply)(variables, jnp.asarray(inputs), m)
        carry3, out3 = jax.jit(layer3.apply)(variables, jnp.asarray(inputs), m)
        # Same float32 ops in the same order; 1e-6 leaves room for fusion differences.
        np.testing.assert_allclose(np.asarray(out3), np.asarray(out1), rtol=1e-6, atol=1e-6)
        for a, b in zip(carry3, carry1):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
        results[name] = out3
    # And both agree with the equations (unmasked, reversed time for the backward layer).
    x64 = inputs.astype(np.float64)
    _, ref = numpy_run(cell, cell_params(variables["params"]), x64[:, ::-1] if reverse else x64)
    np.testing.assert_allclose(
        np.asarray(results["unmasked"]), ref[:, ::-1] if reverse else ref, **TOL
    )
