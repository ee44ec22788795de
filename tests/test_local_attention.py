"""Tests for Luong's local-p attention against a float64 numpy version of eqs. 9-10."""

import jax
import numpy as np

from s2s_jax.models.attention import ATTENTIONS, LocalPredictiveAttention

BATCH, Q_LEN, SRC_LEN, QUERY, MEMORY, FEATURES = 3, 4, 30, 5, 6, 8
LENGTHS = np.array([30, 17, 1])


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(BATCH, Q_LEN, QUERY)).astype(np.float32)
    memory = rng.normal(size=(BATCH, SRC_LEN, MEMORY)).astype(np.float32)
    mask = np.arange(SRC_LEN)[None, :] < LENGTHS[:, None]
    module = LocalPredictiveAttention(FEATURES, QUERY)
    params = module.init(
        jax.random.key(seed),
        query,
        memory,
        mask,
        method=lambda m, q, mem, k: m(q, m.keys(mem), mem, k),
    )["params"]
    params = jax.tree.map(lambda p: 2.0 * p, params)  # spread the predicted positions

    def attend(q, mem, k):
        keys = module.apply({"params": params}, mem, method="keys")
        return module.apply({"params": params}, q, keys, mem, k)

    return params, jax.jit(attend), query, memory, mask


def _numpy(params, query, memory, mask, window=10):
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    q, m = query.astype(np.float64), memory.astype(np.float64)
    scores = np.einsum("bqd,bsd->bqs", q, m @ p["w_a"]["kernel"])
    centre = (mask.sum(1) - 1.0)[:, None] / (
        1 + np.exp(-(np.tanh(q @ p["w_p"]["kernel"]) @ p["v_p"]["kernel"])[..., 0])
    )
    distance = np.arange(SRC_LEN)[None, None, :] - centre[..., None]
    inside = (np.abs(distance) <= window) & mask[:, None, :]
    e = np.where(
        inside, np.exp(scores - np.where(inside, scores, -np.inf).max(-1, keepdims=True)), 0.0
    )
    weights = e / e.sum(-1, keepdims=True) * np.exp(-(distance**2) / (2 * (window / 2) ** 2))
    return weights @ m, weights, centre, inside


def test_registered():
    assert ATTENTIONS["local_p"] is LocalPredictiveAttention


def test_matches_numpy_equations():
    params, attend, query, memory, mask = _setup()
    context, weights = attend(query, memory, mask)
    want_context, want_weights, centre, inside = _numpy(params, query, memory, mask)
    np.testing.assert_allclose(weights, want_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, want_context, rtol=1e-5, atol=1e-5)
    # Zero outside the window and on padding; the window really cuts the long source.
    assert np.all(np.asarray(weights)[~inside] == 0.0)
    assert (~inside[0] & mask[0][None, :]).any()
    assert np.all(centre >= 0) and np.all(centre <= (LENGTHS - 1)[:, None])
    # The predicted position moves with the query (different rows, different windows).
    assert np.ptp(centre[0]) > 1.0


def test_single_step_matches_full_queries_and_padding_has_no_influence():
    _, attend, query, memory, mask = _setup(1)
    context, weights = attend(query, memory, mask)
    c1, w1 = attend(query[:, 2:3], memory, mask)
    np.testing.assert_allclose(w1[:, 0], weights[:, 2], rtol=1e-6, atol=1e-6)
    garbage = np.where(mask[..., None], memory, 1e3).astype(np.float32)
    c2, w2 = attend(query, garbage, mask)
    np.testing.assert_array_equal(w2, weights)
    np.testing.assert_array_equal(c2, context)


def test_gradients_are_finite():
    params, _, query, memory, mask = _setup(2)
    module = LocalPredictiveAttention(FEATURES, QUERY)

    def loss(params):
        keys = module.apply({"params": params}, memory, method="keys")
        return module.apply({"params": params}, query, keys, memory, mask)[0].sum()

    grads = jax.jit(jax.grad(loss))(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    assert np.abs(grads["v_p"]["kernel"]).sum() > 0  # the position predictor learns
