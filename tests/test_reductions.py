"""reductions.argmax equals jnp.argmax (first index among ties, NaN wins)."""

import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.reductions import argmax


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
