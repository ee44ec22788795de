"""reductions against independent references: argmax equals jnp.argmax (first index
among ties, NaN wins); top_k equals a stable numpy sort; logsumexp and log_softmax
equal float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models.reductions import argmax, log_softmax, logsumexp, top_k


@pytest.mark.parametrize("shape", [(5, 7), (3, 64), (4, 65), (2, 3, 1000), (6, 8000)])
def test_matches_numpy_argmax(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).astype(np.float32)
    x.reshape(-1, shape[-1])[0, :] = 1.0  # a row of ties: the first index
    x.reshape(-1, shape[-1])[1, ::3] = 5.0  # ties across blocks
    x.reshape(-1, shape[-1])[-1, :] = -np.inf  # nothing finite
    np.testing.assert_array_equal(argmax(jnp.asarray(x)), np.argmax(x, axis=-1))


def test_nan_wins_as_in_jnp():
    x = np.zeros((2, 300), np.float32)
    x[0, 250], x[0, 100], x[1, 299] = np.nan, np.nan, 1.0
    np.testing.assert_array_equal(argmax(jnp.asarray(x)), jnp.argmax(jnp.asarray(x), -1))


def _stable_top_k(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.argsort(-x, axis=-1, kind="stable")[..., :k]  # lower index first on ties
    return np.take_along_axis(x, index, axis=-1), index


@pytest.mark.parametrize("shape,k", [((3, 40), 4), ((4, 5 * 800), 10), ((2, 3, 1000), 3),
                                     ((5, 8000), 7), ((2, 700), 1)])
def test_top_k_matches_a_stable_sort(shape, k):
    rng = np.random.default_rng(sum(shape) + k)
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # many ties, across blocks
    x.reshape(-1, shape[-1])[0, :] = rng.normal(size=shape[-1])
    x.reshape(-1, shape[-1])[-1, : shape[-1] // 2] = -np.inf
    x.reshape(-1, shape[-1])[-1, -1] = 9.0  # a lone winner in the padded last block
    values, index = top_k(jnp.asarray(x), k)
    want_values, want_index = _stable_top_k(x, k)
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(index, jax.lax.top_k(jnp.asarray(x), k)[1])


def test_logsumexp_and_log_softmax_match_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=30.0, size=(6, 8000)).astype(np.float32)
    x[1, :] += 1e4  # exp would overflow without the shift
    x[2, ::2] = -np.inf
    x64 = x.astype(np.float64)
    top = x64.max(axis=-1, keepdims=True)
    want = (top + np.log(np.exp(x64 - top).sum(axis=-1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(logsumexp(jnp.asarray(x)), want, rtol=1e-6)
    got = np.asarray(log_softmax(jnp.asarray(x)))
    finite = np.isfinite(x)
    np.testing.assert_allclose(got[finite], (x64 - want[:, None])[finite], rtol=1e-5,
                               atol=1e-3)
    assert np.all(got[~finite] == -np.inf)
