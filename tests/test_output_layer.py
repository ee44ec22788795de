"""Tests for s2s_jax.models.output_layer: the fused output layer + cross-entropy.

Reference: the unfused path, ``token_metrics.sequence_metrics(features @ kernel + bias)``,
differentiated by JAX through ``log_softmax``; its values are themselves checked
against numpy in tests/test_train.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models import output_layer, token_metrics

B, T, H, V = 6, 5, 7, 11


def _problem(seed=0, with_bias=True):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(B, T, H)).astype(np.float32)
    kernel = rng.normal(size=(H, V)).astype(np.float32)
    bias = rng.normal(size=(V,)).astype(np.float32)
    targets = rng.integers(0, V, (B, T))
    mask = rng.random((B, T)) > 0.3
    return features, kernel, bias if with_bias else None, targets, mask


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
# one chunk, ragged chunks, chunks that are a shard's tokens, larger than all
@pytest.mark.parametrize("chunk", [0, 4, 15, 100])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shards", [1, 2])
def test_values_and_gradients_match_the_unfused_loss(smoothing, chunk, with_bias, shards):
    features, kernel, bias, targets, mask = _problem(seed=1, with_bias=with_bias)
    # Real tokens [14] or [5, 9]: ragged chunks of 4, and shards that need 2 and 3.
    real = mask.reshape(shards, -1).sum(axis=1)
    assert len(set(-real // 4)) == shards and all(real % 4)

    def reference(features, kernel, bias):
        logits = features @ kernel + (0.0 if bias is None else bias)
        return token_metrics.sequence_metrics(logits, targets, mask, smoothing)

    def fused(features, kernel, bias):
        return output_layer.projected_metrics(
            features, kernel, bias, targets, mask, smoothing, chunk, shards=shards
        )

    want, got = reference(features, kernel, bias), jax.jit(fused)(features, kernel, bias)
    for key in ("loss", "nll", "correct", "tokens"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    argnums = (0, 1) if bias is None else (0, 1, 2)
    want_grads = jax.grad(lambda *a: reference(*a)["loss"], argnums)(features, kernel, bias)
    # 3 x the loss: the gradients made in the forward pass are scaled by the cotangent.
    got_grads = jax.jit(jax.grad(lambda *a: fused(*a)["loss"] / 3.0, argnums))(
        features, kernel, bias
    )
    got_grads = [3.0 * grad for grad in got_grads]
    for got_grad, want_grad in zip(got_grads, want_grads):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-6)


def test_only_real_tokens_are_read():
    """Padding's features, however large, change neither the sums nor the gradients."""
    features, kernel, bias, targets, mask = _problem(seed=7)
    noisy = np.where(mask[..., None], features, 1e30).astype(np.float32)

    def metrics(features):
        return output_layer.projected_metrics(features, kernel, bias, targets, mask, 0.1, 4)

    want, got = metrics(features), metrics(noisy)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    grad = jax.grad(lambda f, k: metrics(f)["loss"], argnums=(0, 1))
    for got_grad, want_grad in zip(grad(noisy, kernel), grad(features, kernel)):
        np.testing.assert_array_equal(got_grad, want_grad)


def test_rows_must_split_into_the_shards():
    features, kernel, bias, targets, mask = _problem()
    with pytest.raises(ValueError, match="6 rows do not split into 4 shards"):
        output_layer.projected_metrics(features, kernel, bias, targets, mask, shards=4)


def test_padding_gets_no_gradient():
    features, kernel, bias, targets, mask = _problem(seed=1)
    grad = jax.grad(
        lambda f: output_layer.projected_metrics(f, kernel, bias, targets, mask, 0.1)["loss"]
    )(features)
    np.testing.assert_array_equal(np.asarray(grad)[~mask], 0.0)
    assert np.abs(np.asarray(grad)[mask]).min() > 0


def test_bfloat16_matmuls_stay_close():
    features, kernel, bias, targets, mask = _problem(seed=2)
    full = output_layer.projected_metrics(features, kernel, bias, targets, mask)
    half = output_layer.projected_metrics(features, kernel, bias, targets, mask, dtype=jnp.bfloat16)
    assert half["loss"].dtype == jnp.float32
    np.testing.assert_allclose(half["loss"], full["loss"], rtol=2e-2)
