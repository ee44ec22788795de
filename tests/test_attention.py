"""Tests for s2s_jax.models.attention.

Each registered attention is checked for the masking contract (weights sum to 1 over
real positions and are exactly 0 on padding; padded memory has no influence) and
against an independent float64 numpy implementation of its score function. JAX runs
in float32: comparisons with numpy use rtol = atol = 1e-5.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models.attention import ATTENTIONS, BahdanauAttention

BATCH, SRC_LEN, Q_LEN = 3, 6, 4
QUERY_SIZE, FEATURES, NUM_HEADS = 8, 8, 2
LENGTHS = (6, 3, 1)
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 JAX vs float64 numpy
NAMES = sorted(
    name for name in ATTENTIONS if name != "none" and ATTENTIONS[name].weights_sum_to_one
)
# local_p (a window, Gaussian-rescaled weights) has its own tests in test_local_attention.py


def memory_size(name):
    """Dot attention needs memory and query sizes to agree; the others get M != Q."""
    return QUERY_SIZE if name == "dot" else 6


def make_inputs(name, seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(BATCH, Q_LEN, QUERY_SIZE)).astype(np.float32)
    memory = rng.normal(size=(BATCH, SRC_LEN, memory_size(name))).astype(np.float32)
    mask = np.arange(SRC_LEN)[None, :] < np.array(LENGTHS)[:, None]
    return query, memory, mask


def _keys_then_call(module, query, memory, mask):
    return module(query, module.keys(memory), memory, mask)


@functools.cache
def setup_attention(name):
    """(module, variables with non-zero biases, jitted attend function)."""
    module = ATTENTIONS[name](FEATURES, QUERY_SIZE, NUM_HEADS)
    query, memory, mask = make_inputs(name)
    variables = module.init(
        jax.random.PRNGKey(0),
        jnp.asarray(query),
        jnp.asarray(memory),
        jnp.asarray(mask),
        method=_keys_then_call,
    )
    # Perturb every parameter so that biases are non-zero and matter.
    rng = np.random.default_rng(1)
    variables = jax.tree_util.tree_map(
        lambda v: v + 0.3 * rng.normal(size=v.shape).astype(np.float32), variables
    )

    @jax.jit
    def attend(variables, query, memory, mask):
        keys = module.apply(variables, memory, method="keys")  # once per source
        return module.apply(variables, query, keys, memory, mask)

    return module, variables, attend


def run(name, query, memory, mask):
    _, variables, attend = setup_attention(name)
    context, weights = attend(variables, jnp.asarray(query), jnp.asarray(memory), jnp.asarray(mask))
    return np.asarray(context), np.asarray(weights)


# ----------------------------------------------------------------------------------
# Independent float64 numpy references.


def np_params(name):
    _, variables, _ = setup_attention(name)
    params = variables.get("params", {})
    return jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), dict(params))


def np_masked_softmax(scores, mask):
    """``scores [..., s]`` with ``mask`` broadcastable; exact zeros on padding."""
    scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.where(mask, np.exp(scores), 0.0)
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(name, query, memory, mask):
    """Float64 (context, weights) from the score equations."""
    p = np_params(name)
    q, m = query.astype(np.float64), memory.astype(np.float64)
    if name == "multihead":

        def proj(x, dense):  # DenseGeneral: [.., in] x [in, heads, d] + [heads, d]
            return np.einsum("bti,ihd->bthd", x, dense["kernel"]) + dense["bias"]

        head_dim = FEATURES // NUM_HEADS
        qh = proj(q, p["w_q"]) / np.sqrt(head_dim)
        kh, vh = proj(m, p["w_k"]), proj(m, p["w_v"])
        scores = np.einsum("bqhd,bshd->bhqs", qh, kh)
        weights = np_masked_softmax(scores, mask[:, None, None, :])  # [b, h, q, s]
        heads = np.einsum("bhqs,bshd->bqhd", weights, vh)
        context = np.einsum("bqhd,hdo->bqo", heads, p["w_o"]["kernel"]) + p["w_o"]["bias"]
        return context, weights.mean(axis=1)
    if name == "dot":
        scores = np.einsum("bqd,bsd->bqs", q, m)  # s_t . h_i
    elif name == "general":
        keys = m @ p["w_a"]["kernel"]  # W_a h_i, no bias
        scores = np.einsum("bqd,bsd->bqs", q, keys)  # s_t^T W_a h_i
    elif name in ("bahdanau", "concat"):
        wq = q @ p["w_q"]["kernel"]  # [b, q, A]
        wk = m @ p["w_k"]["kernel"] + p["w_k"]["bias"]  # [b, s, A]
        hidden = np.tanh(wq[:, :, None, :] + wk[:, None, :, :])  # [b, q, s, A]
        scores = hidden @ p["v"]["kernel"][:, 0]  # v^T tanh(W_q s + W_k h + b_k)
    else:
        raise ValueError(f"no numpy reference for {name!r}")
    weights = np_masked_softmax(scores, mask[:, None, :])
    return weights @ m, weights


# ----------------------------------------------------------------------------------
# Tests.


def test_registry():
    assert ATTENTIONS["none"] is None
    assert set(NAMES) == {"bahdanau", "dot", "general", "concat", "multihead"}


@pytest.mark.parametrize("name", NAMES)
def test_param_names_and_shapes(name):
    p = np_params(name)
    mem = memory_size(name)
    head_dim = FEATURES // NUM_HEADS
    expected = {
        "dot": {},
        "general": {"w_a": {"kernel": (mem, QUERY_SIZE)}},
        "bahdanau": {
            "w_q": {"kernel": (QUERY_SIZE, FEATURES)},
            "w_k": {"kernel": (mem, FEATURES), "bias": (FEATURES,)},
            "v": {"kernel": (FEATURES, 1)},
        },
        "multihead": {
            "w_q": {"kernel": (QUERY_SIZE, NUM_HEADS, head_dim), "bias": (NUM_HEADS, head_dim)},
            "w_k": {"kernel": (mem, NUM_HEADS, head_dim), "bias": (NUM_HEADS, head_dim)},
            "w_v": {"kernel": (mem, NUM_HEADS, head_dim), "bias": (NUM_HEADS, head_dim)},
            "w_o": {"kernel": (NUM_HEADS, head_dim, QUERY_SIZE), "bias": (QUERY_SIZE,)},
        },
    }
    expected["concat"] = expected["bahdanau"]
    assert jax.tree_util.tree_map(np.shape, p) == expected[name]


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_a_masked_distribution(name):
    query, memory, mask = make_inputs(name, seed=2)
    context, weights = run(name, query, memory, mask)
    assert weights.shape == (BATCH, Q_LEN, SRC_LEN)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-5)
    np.testing.assert_allclose((weights * mask[:, None, :]).sum(axis=-1), 1.0, rtol=0, atol=1e-5)
    padding = np.broadcast_to(~mask[:, None, :], weights.shape)
    assert np.all(weights[padding] == 0.0)
    assert np.all(weights[~padding] > 0.0)
    # A length-1 source puts all the weight on its only token.
    np.testing.assert_allclose(weights[2, :, 0], 1.0, rtol=0, atol=1e-6)
    if name == "multihead":
        assert context.shape == (BATCH, Q_LEN, QUERY_SIZE)  # output projection
    else:
        assert context.shape == (BATCH, Q_LEN, memory_size(name))
        np.testing.assert_allclose(context, weights.astype(np.float64) @ memory, **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_padded_memory_has_no_influence(name):
    query, memory, mask = make_inputs(name, seed=3)
    context, weights = run(name, query, memory, mask)
    rng = np.random.default_rng(4)
    garbage = 100.0 * rng.normal(size=memory.shape).astype(np.float32)
    changed = np.where(mask[..., None], memory, garbage)
    assert not np.array_equal(changed, memory)
    context2, weights2 = run(name, query, changed, mask)
    # Masked scores are replaced, masked weights are exact zeros: bit-identical results.
    np.testing.assert_array_equal(weights2, weights)
    np.testing.assert_array_equal(context2, context)


@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy_reference(name):
    query, memory, mask = make_inputs(name, seed=5)
    context, weights = run(name, query, memory, mask)
    ref_context, ref_weights = np_attention(name, query, memory, mask)
    np.testing.assert_allclose(weights, ref_weights, **TOL)
    np.testing.assert_allclose(context, ref_context, **TOL)
    # The weights are not trivially uniform: the scores really depend on the query.
    assert not np.allclose(weights[0, 0], weights[0, 1], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_single_query_step_matches_full_queries(name):
    """A decoder step (q_len = 1) gives the same row as the whole target at once."""
    query, memory, mask = make_inputs(name, seed=6)
    context, weights = run(name, query, memory, mask)
    for t in (0, Q_LEN - 1):
        c1, w1 = run(name, query[:, t : t + 1], memory, mask)
        np.testing.assert_allclose(w1[:, 0], weights[:, t], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(c1[:, 0], context[:, t], rtol=1e-6, atol=1e-6)


def test_query_is_previous_state():
    assert BahdanauAttention.query_is_previous_state is True
    assert ATTENTIONS["bahdanau"].query_is_previous_state is True
    for name in NAMES:
        if name != "bahdanau":
            assert ATTENTIONS[name].query_is_previous_state is False, name
