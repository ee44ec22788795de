"""Tests for s2s_jax.output_loss: the fused output layer + cross-entropy.

Reference: the unfused path, ``losses.sequence_metrics(features @ kernel + bias)``,
differentiated by JAX through ``log_softmax``; its values are themselves checked
against numpy in tests/test_train.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax import losses, output_loss

B, T, H, V = 3, 5, 7, 11


def _problem(seed=0, with_bias=True):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(B, T, H)).astype(np.float32)
    kernel = rng.normal(size=(H, V)).astype(np.float32)
    bias = rng.normal(size=(V,)).astype(np.float32) if with_bias else None
    targets = rng.integers(0, V, (B, T))
    mask = rng.random((B, T)) > 0.3
    return features, kernel, bias, targets, mask


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [0, 4, 15, 100])  # none, ragged, exact, larger than all
@pytest.mark.parametrize("with_bias", [True, False])
def test_values_and_gradients_match_the_unfused_loss(smoothing, chunk, with_bias):
    features, kernel, bias, targets, mask = _problem(with_bias=with_bias)

    def reference(features, kernel, bias):
        logits = features @ kernel + (0.0 if bias is None else bias)
        return losses.sequence_metrics(logits, targets, mask, smoothing)

    def fused(features, kernel, bias):
        return output_loss.projected_metrics(features, kernel, bias, targets, mask,
                                             smoothing, chunk)

    want, got = reference(features, kernel, bias), jax.jit(fused)(features, kernel, bias)
    for key in ("loss", "nll", "correct", "tokens"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    argnums = (0, 1) if bias is None else (0, 1, 2)
    want_grads = jax.grad(lambda *a: reference(*a)["loss"], argnums)(features, kernel, bias)
    got_grads = jax.jit(jax.grad(lambda *a: fused(*a)["loss"], argnums))(
        features, kernel, bias)
    for got_grad, want_grad in zip(got_grads, want_grads):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-6)


def test_padding_gets_no_gradient():
    features, kernel, bias, targets, mask = _problem(seed=1)
    grad = jax.grad(lambda f: output_loss.projected_metrics(
        f, kernel, bias, targets, mask, 0.1)["loss"])(features)
    np.testing.assert_array_equal(np.asarray(grad)[~mask], 0.0)
    assert np.abs(np.asarray(grad)[mask]).min() > 0


def test_bfloat16_matmuls_stay_close():
    features, kernel, bias, targets, mask = _problem(seed=2)
    full = output_loss.projected_metrics(features, kernel, bias, targets, mask)
    half = output_loss.projected_metrics(features, kernel, bias, targets, mask,
                                         dtype=jnp.bfloat16)
    assert half["loss"].dtype == jnp.float32
    np.testing.assert_allclose(half["loss"], full["loss"], rtol=2e-2)
