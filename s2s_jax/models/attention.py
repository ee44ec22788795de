"""Attention over the encoder memory, a registry of score functions.

Every attention module has two methods:

* ``keys(memory) -> keys``: the part of the score that depends only on the memory,
  computed once per source sentence (never per decoder step);
* ``__call__(query, keys, memory, mask) -> (context, weights)`` for queries of shape
  ``[batch, q_len, Q]``, so one call serves a single decoder step (q_len = 1) and the
  whole teacher-forced target at once.

``query_is_previous_state`` tells the decoder which state is the query: Bahdanau
et al. (2014) attend with s_{t-1} before the recurrent step and feed the context into
it; Luong et al. (2015) attend with s_t after it.

Padding never receives weight: masked scores are set to a large negative number
before the softmax, so the weights over real tokens sum to 1 and are exactly 0 on
padding.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.config.registry import Registry

_MASKED_SCORE = -1e9


def _softmax_context(
    scores: jax.Array, memory: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``scores [b, q, s]``, ``memory [b, s, M]``, ``mask [b, s]`` -> context, weights."""
    scores = jnp.where(mask[:, None, :], scores.astype(jnp.float32), _MASKED_SCORE)
    weights = jax.nn.softmax(scores, axis=-1)
    weights = jnp.where(mask[:, None, :], weights, 0.0)
    context = jnp.einsum("bqs,bsm->bqm", weights, memory.astype(jnp.float32))
    return context, weights


class Attention(nn.Module):
    """Base: the constructor every registered attention takes.

    Attributes:
      features: size of the attention's hidden layer (additive, multi-head).
      query_size: size of the decoder state used as the query.
      num_heads: heads of the multi-head variant.
    """

    features: int
    query_size: int
    num_heads: int = 1

    query_is_previous_state = False
    weights_sum_to_one = True  # False for local-p, whose Gaussian rescales the softmax

    def keys(self, memory: jax.Array) -> jax.Array:
        """``[batch, src_len, M] -> keys``; the identity unless a subclass projects."""
        return memory


class DotAttention(Attention):
    """Luong dot: score(s_t, h_i) = s_t . h_i (query and memory sizes must agree)."""

    def __call__(self, query, keys, memory, mask):
        scores = jnp.einsum("bqd,bsd->bqs", query, keys)
        return _softmax_context(scores, memory, mask)


class GeneralAttention(DotAttention):
    """Luong general: score(s_t, h_i) = s_t^T W_a h_i, with W_a h_i precomputed."""

    def setup(self):
        self.w_a = nn.Dense(self.query_size, use_bias=False, name="w_a")

    def keys(self, memory: jax.Array) -> jax.Array:
        return self.w_a(memory)


class LocalPredictiveAttention(GeneralAttention):
    """Luong local-p: general scores inside a window around a predicted position.

    p_t = (S_x - 1) sigmoid(v_p^T tanh(W_p s_t)) for a source of S_x real tokens;
    a_t(s) = softmax over |s - p_t| <= D of the general scores, times
    exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D / 2 (Luong et al. 2015, eqs. 9-10).
    The weights are zero outside the window and do not sum to 1.
    """

    window: int = 10  # D
    weights_sum_to_one = False

    def setup(self):
        super().setup()
        self.w_p = nn.Dense(self.features, use_bias=False, name="w_p")
        self.v_p = nn.Dense(1, use_bias=False, name="v_p")

    def __call__(self, query, keys, memory, mask):
        scores = jnp.einsum("bqd,bsd->bqs", query, keys).astype(jnp.float32)
        last = mask.sum(axis=-1).astype(jnp.float32)[:, None] - 1.0  # [b, 1]
        centre = last * jax.nn.sigmoid(self.v_p(jnp.tanh(self.w_p(query)))[..., 0])
        distance = jnp.arange(mask.shape[-1])[None, None, :] - centre[..., None]  # [b, q, s]
        inside = (jnp.abs(distance) <= self.window) & mask[:, None, :]
        weights = jax.nn.softmax(jnp.where(inside, scores, _MASKED_SCORE), axis=-1)
        sigma = self.window / 2
        weights = jnp.where(inside, weights * jnp.exp(-(distance**2) / (2 * sigma**2)), 0.0)
        context = jnp.einsum("bqs,bsm->bqm", weights, memory.astype(jnp.float32))
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau / Luong concat: score(s, h_i) = v^T tanh(W_q s + W_k h_i)."""

    def setup(self):
        self.w_k = nn.Dense(self.features, name="w_k")
        self.w_q = nn.Dense(self.features, use_bias=False, name="w_q")
        self.v = nn.Dense(1, use_bias=False, name="v")

    def keys(self, memory: jax.Array) -> jax.Array:
        return self.w_k(memory)

    def __call__(self, query, keys, memory, mask):
        hidden = jnp.tanh(self.w_q(query)[:, :, None, :] + keys[:, None, :, :])
        scores = self.v(hidden)[..., 0]  # [b, q, s]
        return _softmax_context(scores, memory, mask)


class BahdanauAttention(AdditiveAttention):
    """Additive attention queried with the previous decoder state s_{t-1}."""

    query_is_previous_state = True


class MultiHeadDotAttention(Attention):
    """Scaled dot-product attention with ``num_heads`` heads and an output projection.

    The returned weights are the mean over heads (they still sum to 1).
    """

    def setup(self):
        head_dim = self.features // self.num_heads
        dense = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)  # noqa: E731
        self.w_q, self.w_k, self.w_v = dense("w_q"), dense("w_k"), dense("w_v")
        self.w_o = nn.DenseGeneral(self.query_size, axis=(-2, -1), name="w_o")

    def keys(self, memory: jax.Array) -> jax.Array:
        """``[b, s, M] -> [b, s, 2, heads, head_dim]`` (keys and values)."""
        return jnp.stack([self.w_k(memory), self.w_v(memory)], axis=2)

    def __call__(self, query, keys, memory, mask):
        q = self.w_q(query) / jnp.sqrt(self.features // self.num_heads)
        k, v = keys[:, :, 0], keys[:, :, 1]
        scores = jnp.einsum("bqhd,bshd->bhqs", q, k)
        scores = jnp.where(mask[:, None, None, :], scores, _MASKED_SCORE)
        weights = jnp.where(mask[:, None, None, :], jax.nn.softmax(scores, -1), 0.0)
        heads = jnp.einsum("bhqs,bshd->bqhd", weights, v)
        return self.w_o(heads), weights.mean(axis=1)


# "none" is the vanilla context-vector model: the decoder sees only its initial state.
ATTENTIONS: Registry[type[Attention] | None] = Registry(
    "model.attention",
    {
        "none": None,
        "bahdanau": BahdanauAttention,
        "dot": DotAttention,
        "general": GeneralAttention,
        "local_p": LocalPredictiveAttention,
        "concat": AdditiveAttention,
        "multihead": MultiHeadDotAttention,
    },
)
