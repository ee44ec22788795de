"""Tests for s2s_jax.models.rnn_layers (masking, directions, stacking) and reverse_padded.

A padded batch must compute exactly what each sequence computes alone. The layers are
compared with themselves run on the unpadded sequences (float32 vs float32: tolerance
1e-6) and with an independent float64 numpy implementation of the cell equations run
on each unpadded sequence (float32 vs float64: rtol = atol = 1e-5).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_reference import cell_params, cell_step

from s2s_jax.models.cells import CELLS
from s2s_jax.models.encoder import reverse_padded
from s2s_jax.models.rnn_layers import BidirectionalLayer, RecurrentLayer, StackedEncoderRNN

BATCH, TIME, IN_FEATURES, HIDDEN = 3, 7, 5, 4
LENGTHS = (7, 4, 1)
REF_TOL = dict(rtol=1e-5, atol=1e-5)  # float32 JAX vs float64 numpy
SAME_TOL = dict(rtol=1e-6, atol=1e-6)  # float32 JAX vs float32 JAX, different batch shapes


# ----------------------------------------------------------------------------------
# Independent float64 numpy reference.


def np_direction(cell, p, x, reverse=False):
    """One unpadded sequence ``x [L, D]`` -> (final carry of [H], outputs [L, H])."""
    hidden = p["w_hh"].shape[0]
    carry = tuple(np.zeros(hidden) for _ in range(CELLS[cell].carry_size))
    order = range(len(x) - 1, -1, -1) if reverse else range(len(x))
    outputs = np.zeros((len(x), hidden))
    for t in order:
        carry, outputs[t] = cell_step(cell, p, carry, x[t])
    return carry, outputs


def np_bidirectional(cell, params, x):
    fwd_carry, fwd = np_direction(cell, cell_params(params["forward"]), x)
    bwd_carry, bwd = np_direction(cell, cell_params(params["backward"]), x, reverse=True)
    carry = tuple(np.concatenate([f, b]) for f, b in zip(fwd_carry, bwd_carry))
    return carry, np.concatenate([fwd, bwd], axis=-1)


def np_stacked(cell, params, x, num_layers, bidirectional, residual):
    finals = []
    for i in range(num_layers):
        layer = params[f"layer_{i}"]
        if bidirectional:
            carry, y = np_bidirectional(cell, layer, x)
        else:
            carry, y = np_direction(cell, cell_params(layer), x)
        if residual and i > 0 and y.shape[-1] == x.shape[-1]:
            y = y + x
        finals.append(carry)
        x = y
    return finals, x


# ----------------------------------------------------------------------------------
# Helpers.


def padded_batch(seed=0):
    """Inputs [B, T, D] with large garbage on padded steps, and the mask [B, T]."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(BATCH, TIME, IN_FEATURES)).astype(np.float32)
    mask = np.arange(TIME)[None, :] < np.array(LENGTHS)[:, None]
    garbage = 10.0 * rng.normal(size=inputs.shape).astype(np.float32)
    inputs = np.where(mask[..., None], inputs, garbage)
    return inputs, mask


def random_variables(module, seed, *args):
    """Random parameters (non-zero biases included) in the module's own tree.

    ``jax.eval_shape`` gives the tree without running the initialisers (much faster
    than ``init``); every parameter is then drawn from N(0, 0.5^2).
    """
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes
    )


def check_padding_is_zero(outputs, mask):
    outputs = np.asarray(outputs)
    assert np.all(outputs[~mask] == 0.0)


CELL_NAMES = sorted(CELLS)


# ----------------------------------------------------------------------------------
# Masking.


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
def test_masked_layer_equals_each_sequence_alone(cell, reverse):
    inputs, mask = padded_batch(seed=1)
    layer = RecurrentLayer(cell, HIDDEN, reverse=reverse)
    variables = random_variables(layer, 2, jnp.asarray(inputs), jnp.asarray(mask))
    apply = jax.jit(layer.apply)  # one compiled program per shape: faster than eager
    carry, outputs = apply(variables, jnp.asarray(inputs), jnp.asarray(mask))
    assert outputs.shape == (BATCH, TIME, HIDDEN)
    check_padding_is_zero(outputs, mask)
    p = cell_params(variables["params"])
    for b, length in enumerate(LENGTHS):
        alone_carry, alone = apply(variables, jnp.asarray(inputs[b : b + 1, :length]))
        np.testing.assert_allclose(
            np.asarray(outputs[b, :length]), np.asarray(alone[0]), **SAME_TOL
        )
        ref_carry, ref = np_direction(cell, p, inputs[b, :length].astype(np.float64), reverse)
        np.testing.assert_allclose(np.asarray(outputs[b, :length]), ref, **REF_TOL)
        for got, same, want in zip(carry, alone_carry, ref_carry):
            np.testing.assert_allclose(np.asarray(got[b]), np.asarray(same[0]), **SAME_TOL)
            np.testing.assert_allclose(np.asarray(got[b]), want, **REF_TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # carries of 2 and of 1 array
def test_masked_bidirectional_equals_each_sequence_alone(cell):
    inputs, mask = padded_batch(seed=3)
    layer = BidirectionalLayer(cell, HIDDEN)
    variables = random_variables(layer, 4, jnp.asarray(inputs), jnp.asarray(mask))
    apply = jax.jit(layer.apply)
    carry, outputs = apply(variables, jnp.asarray(inputs), jnp.asarray(mask))
    check_padding_is_zero(outputs, mask)
    for b, length in enumerate(LENGTHS):
        alone_carry, alone = apply(
            variables, jnp.asarray(inputs[b : b + 1, :length]), jnp.ones((1, length), bool)
        )
        np.testing.assert_allclose(
            np.asarray(outputs[b, :length]), np.asarray(alone[0]), **SAME_TOL
        )
        ref_carry, ref = np_bidirectional(
            cell, variables["params"], inputs[b, :length].astype(np.float64)
        )
        np.testing.assert_allclose(np.asarray(outputs[b, :length]), ref, **REF_TOL)
        for got, same, want in zip(carry, alone_carry, ref_carry):
            np.testing.assert_allclose(np.asarray(got[b]), np.asarray(same[0]), **SAME_TOL)
            np.testing.assert_allclose(np.asarray(got[b]), want, **REF_TOL)


@pytest.mark.parametrize(
    "cell, bidirectional",
    [("lstm", False), ("gru", True), ("rnn", True)],
    ids=["lstm-uni", "gru-bi", "rnn-bi"],
)
def test_masked_stacked_equals_each_sequence_alone(cell, bidirectional):
    inputs, mask = padded_batch(seed=5)
    model = StackedEncoderRNN(
        cell, HIDDEN, num_layers=2, bidirectional=bidirectional, residual=True
    )
    variables = random_variables(model, 6, jnp.asarray(inputs), jnp.asarray(mask), True)
    apply = jax.jit(model.apply, static_argnums=3)  # deterministic is static
    finals, outputs = apply(variables, jnp.asarray(inputs), jnp.asarray(mask), True)
    check_padding_is_zero(outputs, mask)
    assert len(finals) == 2
    for b, length in enumerate(LENGTHS):
        alone_finals, alone = apply(
            variables, jnp.asarray(inputs[b : b + 1, :length]), jnp.ones((1, length), bool), True
        )
        np.testing.assert_allclose(
            np.asarray(outputs[b, :length]), np.asarray(alone[0]), **SAME_TOL
        )
        ref_finals, ref = np_stacked(
            cell,
            variables["params"],
            inputs[b, :length].astype(np.float64),
            2,
            bidirectional,
            residual=True,
        )
        np.testing.assert_allclose(np.asarray(outputs[b, :length]), ref, **REF_TOL)
        for carry, alone_carry, ref_carry in zip(finals, alone_finals, ref_finals):
            for got, same, want in zip(carry, alone_carry, ref_carry):
                np.testing.assert_allclose(np.asarray(got[b]), np.asarray(same[0]), **SAME_TOL)
                np.testing.assert_allclose(np.asarray(got[b]), want, **REF_TOL)


# ----------------------------------------------------------------------------------
# The context vector.


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_final_carry_is_state_at_last_real_token(cell):
    inputs, mask = padded_batch(seed=7)
    lengths = np.array(LENGTHS)
    rows = np.arange(BATCH)

    forward = RecurrentLayer(cell, HIDDEN)
    variables = random_variables(forward, 8, jnp.asarray(inputs))
    apply = jax.jit(forward.apply)
    (h_final, *_), _ = apply(variables, jnp.asarray(inputs), jnp.asarray(mask))
    _, unmasked = apply(variables, jnp.asarray(inputs))  # runs through the padding
    np.testing.assert_allclose(
        np.asarray(h_final), np.asarray(unmasked)[rows, lengths - 1], **SAME_TOL
    )
    # The unmasked final state has read the padding, so it differs for the padded rows.
    assert not np.allclose(np.asarray(h_final[1:]), np.asarray(unmasked[1:, -1]), atol=1e-3)

    backward = RecurrentLayer(cell, HIDDEN, reverse=True)
    (h_back, *_), back_outputs = backward.apply(variables, jnp.asarray(inputs), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(h_back), np.asarray(back_outputs[:, 0]), **SAME_TOL)
    p = cell_params(variables["params"])
    for b, length in enumerate(LENGTHS):
        _, ref = np_direction(cell, p, inputs[b, :length].astype(np.float64), reverse=True)
        np.testing.assert_allclose(np.asarray(h_back[b]), ref[0], **REF_TOL)


# ----------------------------------------------------------------------------------
# Shapes, bidirectional halves, residuals.


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_concatenates_directions(cell):
    inputs, mask = padded_batch(seed=9)
    layer = BidirectionalLayer(cell, HIDDEN)
    variables = random_variables(layer, 4, jnp.asarray(inputs), jnp.asarray(mask))
    assert set(variables["params"]) == {"forward", "backward"}
    carry, outputs = layer.apply(variables, jnp.asarray(inputs), jnp.asarray(mask))
    assert outputs.shape == (BATCH, TIME, 2 * HIDDEN)
    assert len(carry) == CELLS[cell].carry_size
    for c in carry:
        assert c.shape == (BATCH, 2 * HIDDEN)
    for name, reverse, half in (
        ("forward", False, slice(0, HIDDEN)),
        ("backward", True, slice(HIDDEN, 2 * HIDDEN)),
    ):
        sub = {"params": variables["params"][name]}
        d_carry, d_out = RecurrentLayer(cell, HIDDEN, reverse=reverse).apply(
            sub, jnp.asarray(inputs), jnp.asarray(mask)
        )
        np.testing.assert_allclose(np.asarray(outputs[..., half]), np.asarray(d_out), **SAME_TOL)
        for got, want in zip(carry, d_carry):
            np.testing.assert_allclose(np.asarray(got[:, half]), np.asarray(want), **SAME_TOL)


@pytest.mark.parametrize(
    "cell, bidirectional", [("lstm", True), ("gru", False)], ids=["lstm-bi", "gru-uni"]
)
def test_stacked_shapes_and_residual(cell, bidirectional):
    inputs, mask = padded_batch(seed=10)
    width = HIDDEN * (2 if bidirectional else 1)
    residual = StackedEncoderRNN(cell, HIDDEN, 2, bidirectional=bidirectional, residual=True)
    plain = StackedEncoderRNN(cell, HIDDEN, 2, bidirectional=bidirectional, residual=False)
    args = (jnp.asarray(inputs), jnp.asarray(mask), True)
    variables = random_variables(residual, 5, *args)
    assert set(variables["params"]) == {"layer_0", "layer_1"}

    finals, out_res = jax.jit(residual.apply, static_argnums=3)(variables, *args)
    _, out_plain = jax.jit(plain.apply, static_argnums=3)(variables, *args)  # the same parameters
    assert out_res.shape == out_plain.shape == (BATCH, TIME, width)
    assert len(finals) == 2
    for carry in finals:
        assert len(carry) == CELLS[cell].carry_size
        for c in carry:
            assert c.shape == (BATCH, width)

    assert not np.allclose(np.asarray(out_res), np.asarray(out_plain), atol=1e-3)
    # Layer 0's input (D = 5) differs from its output size, so only layer 1 adds its input:
    # residual output = layer_1(layer_0(x)) + layer_0(x).
    first = StackedEncoderRNN(cell, HIDDEN, 1, bidirectional=bidirectional)
    _, out_first = first.apply({"params": {"layer_0": variables["params"]["layer_0"]}}, *args)
    np.testing.assert_allclose(np.asarray(out_res), np.asarray(out_plain + out_first), **SAME_TOL)
    check_padding_is_zero(out_res, mask)


def test_stacked_residual_never_on_first_layer():
    """Layer 0 never adds its input (the embeddings), even when sizes agree."""
    inputs, mask = padded_batch(seed=11)
    inputs = inputs[..., :HIDDEN]  # D == H so the sizes agree
    args = (jnp.asarray(inputs), jnp.asarray(mask), True)
    residual = StackedEncoderRNN("gru", HIDDEN, 1, residual=True)
    plain = StackedEncoderRNN("gru", HIDDEN, 1, residual=False)
    variables = random_variables(residual, 6, *args)
    _, a = residual.apply(variables, *args)
    _, b = plain.apply(variables, *args)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------------
# reverse_padded.


def np_reverse_padded(x, lengths):
    out = x.copy()
    for b, length in enumerate(lengths):
        out[b, :length] = x[b, :length][::-1]
    return out


@pytest.mark.parametrize("lengths", [(7, 4, 1), (0, 7, 2), (3, 3, 3)])
def test_reverse_padded_ids(lengths):
    rng = np.random.default_rng(12)
    mask = np.arange(TIME)[None, :] < np.array(lengths)[:, None]
    ids = rng.integers(1, 100, size=(len(lengths), TIME)).astype(np.int32)
    # Distinct non-zero padding values, to see that padding stays where it is.
    ids = np.where(mask, ids, 200 + np.arange(TIME)[None, :]).astype(np.int32)
    out = np.asarray(reverse_padded(jnp.asarray(ids), jnp.asarray(mask)))
    np.testing.assert_array_equal(out, np_reverse_padded(ids, lengths))
    np.testing.assert_array_equal(out[~mask], ids[~mask])
    again = np.asarray(reverse_padded(jnp.asarray(out), jnp.asarray(mask)))
    np.testing.assert_array_equal(again, ids)


def test_reverse_padded_features():
    rng = np.random.default_rng(13)
    lengths = LENGTHS
    mask = np.arange(TIME)[None, :] < np.array(lengths)[:, None]
    x = rng.normal(size=(BATCH, TIME, 2, 3)).astype(np.float32)  # trailing axes
    out = np.asarray(reverse_padded(jnp.asarray(x), jnp.asarray(mask)))
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, np_reverse_padded(x, lengths))
    np.testing.assert_array_equal(
        np.asarray(reverse_padded(jnp.asarray(out), jnp.asarray(mask))), x
    )
    # Row 1 (length 4): [x0 x1 x2 x3 p p p] -> [x3 x2 x1 x0 p p p].
    np.testing.assert_array_equal(out[1, :4], x[1, 3::-1])
    np.testing.assert_array_equal(out[1, 4:], x[1, 4:])
