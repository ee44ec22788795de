"""reductions against independent references: argmax equals jnp.argmax (first index
among ties, NaN wins); top_k equals a stable numpy sort; logsumexp and log_softmax
equal float64 numpy. The CPU-tuned two-pass variants and jax's own (the plain ones,
used on GPU and TPU) give the same answers, and on CPU the CPU-tuned ones run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models import reductions
from s2s_jax.models.reductions import argmax, log_softmax, logsumexp, top_k

ARGMAX = {"dispatched": argmax, "cpu": reductions.cpu_argmax, "plain": reductions.plain_argmax}
TOP_K = {"dispatched": top_k, "cpu": reductions.cpu_top_k, "plain": reductions.plain_top_k}
LOGSUMEXP = {
    "dispatched": logsumexp,
    "cpu": reductions.cpu_logsumexp,
    "plain": reductions.plain_logsumexp,
}
LOG_SOFTMAX = {
    "dispatched": log_softmax,
    "cpu": reductions.cpu_log_softmax,
    "plain": reductions.plain_log_softmax,
}
VARIANTS = ["dispatched", "cpu", "plain"]
PLAIN = {table["dispatched"]: table["plain"] for table in (ARGMAX, TOP_K, LOGSUMEXP, LOG_SOFTMAX)}


def _argmax_input(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).astype(np.float32)
    x.reshape(-1, shape[-1])[0, :] = 1.0  # a row of ties: the first index
    x.reshape(-1, shape[-1])[1, ::3] = 5.0  # ties across blocks
    x.reshape(-1, shape[-1])[-1, :] = -np.inf  # nothing finite
    return x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(5, 7), (3, 64), (4, 65), (2, 3, 1000), (6, 8000)])
def test_matches_numpy_argmax(shape, variant):
    x = _argmax_input(shape)
    np.testing.assert_array_equal(ARGMAX[variant](jnp.asarray(x)), np.argmax(x, axis=-1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_wins_as_in_jnp(variant):
    x = np.zeros((2, 300), np.float32)
    x[0, 250], x[0, 100], x[1, 299] = np.nan, np.nan, 1.0
    np.testing.assert_array_equal(ARGMAX[variant](jnp.asarray(x)), jnp.argmax(jnp.asarray(x), -1))


def _stable_top_k(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.argsort(-x, axis=-1, kind="stable")[..., :k]  # lower index first on ties
    return np.take_along_axis(x, index, axis=-1), index


TOP_K_CASES = [((3, 40), 4), ((4, 5 * 800), 10), ((2, 3, 1000), 3), ((5, 8000), 7), ((2, 700), 1)]


def _top_k_input(shape, k):
    rng = np.random.default_rng(sum(shape) + k)
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # many ties, across blocks
    x.reshape(-1, shape[-1])[0, :] = rng.normal(size=shape[-1])
    x.reshape(-1, shape[-1])[-1, : shape[-1] // 2] = -np.inf
    x.reshape(-1, shape[-1])[-1, -1] = 9.0  # a lone winner in the padded last block
    return x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape,k", TOP_K_CASES)
def test_top_k_matches_a_stable_sort(shape, k, variant):
    x = _top_k_input(shape, k)
    values, index = TOP_K[variant](jnp.asarray(x), k)
    want_values, want_index = _stable_top_k(x, k)
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(index, jax.lax.top_k(jnp.asarray(x), k)[1])


def _logsumexp_input():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=30.0, size=(6, 8000)).astype(np.float32)
    x[1, :] += 1e4  # exp would overflow without the shift
    x[2, ::2] = -np.inf
    return x


@pytest.mark.parametrize("variant", VARIANTS)
def test_logsumexp_and_log_softmax_match_float64(variant):
    x = _logsumexp_input()
    x64 = x.astype(np.float64)
    top = x64.max(axis=-1, keepdims=True)
    want = (top + np.log(np.exp(x64 - top).sum(axis=-1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(LOGSUMEXP[variant](jnp.asarray(x)), want, rtol=1e-6)
    got = np.asarray(LOG_SOFTMAX[variant](jnp.asarray(x)))
    finite = np.isfinite(x)
    np.testing.assert_allclose(got[finite], (x64 - want[:, None])[finite], rtol=1e-5, atol=1e-3)
    assert np.all(got[~finite] == -np.inf)


def test_the_cpu_tuned_and_plain_variants_agree():
    """What a GPU or TPU computes (the plain variants) is what CPU computes: argmax and
    top_k (values, indices, their order) exactly, ties and -inf included; logsumexp and
    log_softmax to float32 rounding."""
    for shape in [(5, 7), (4, 65), (2, 3, 1000), (6, 8000)]:
        x = jnp.asarray(_argmax_input(shape))
        np.testing.assert_array_equal(reductions.cpu_argmax(x), reductions.plain_argmax(x))
    for shape, k in TOP_K_CASES:
        x = jnp.asarray(_top_k_input(shape, k))
        for cpu, plain in zip(reductions.cpu_top_k(x, k), reductions.plain_top_k(x, k)):
            assert cpu.dtype == plain.dtype
            np.testing.assert_array_equal(cpu, plain)
    x = jnp.asarray(_logsumexp_input())
    np.testing.assert_allclose(
        reductions.cpu_logsumexp(x), reductions.plain_logsumexp(x), rtol=1e-6
    )
    cpu, plain = reductions.cpu_log_softmax(x), reductions.plain_log_softmax(x)
    np.testing.assert_array_equal(np.isneginf(cpu), np.isneginf(plain))
    finite = np.isfinite(plain)
    np.testing.assert_allclose(
        np.asarray(cpu)[finite], np.asarray(plain)[finite], rtol=1e-6, atol=1e-3
    )


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the CPU choice")
def test_cpu_runs_the_cpu_tuned_variants():
    x = jnp.zeros((4, 8000))

    def program(reduction, *args):
        return str(jax.make_jaxpr(lambda x: reduction(x, *args))(x))

    for dispatched, cpu, args in [
        (argmax, reductions.cpu_argmax, ()),
        (top_k, reductions.cpu_top_k, (10,)),
        (logsumexp, reductions.cpu_logsumexp, ()),
        (log_softmax, reductions.cpu_log_softmax, ()),
    ]:
        assert program(dispatched, *args) == program(cpu, *args)
        assert program(dispatched, *args) != program(PLAIN[dispatched], *args)
