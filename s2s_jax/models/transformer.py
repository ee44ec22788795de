"""A Transformer encoder-decoder baseline (Vaswani et al. 2017), pre-norm, with
sinusoidal positions, exposing Seq2Seq's methods so that training, decoding and
evaluation run it unchanged.

Shapes for batch B, source length S, target length T, model width D = hidden_size,
H heads of width D / H, vocabulary V::

    src [B, S] --embed * sqrt(D) + positions--> encoder layers --LayerNorm--> [B, S, D]
        --each decoder layer's cross-attention keys and values--> TransformerMemory
    tgt_in [B, T] --embed * sqrt(D) + positions--> causal decoder layers --LayerNorm-->
        features [B, T, D] --output--> logits [B, T, V]

Each layer is ``x + Dropout(Sublayer(LayerNorm(x)))`` (pre-norm), the feed-forward
sublayer ``W_2 ReLU(W_1 x)`` of width 4D.

Decoding one token at a time keeps a key/value cache: per decoder layer, the keys and
values ``[B, L, H, D/H]`` of the tokens fed so far, with ``L = cache_length(S)`` fixed
when ``encode`` allocates it (shapes must stay static inside ``lax.while_loop``), and
the step index ``[B]``; every leaf has batch first, so decoders can gather its rows.
``L = 2 S + 16`` covers the output bounds ``a S + b`` of the shipped configs
(a <= 1.5, b <= 10); steps past it attend to the first L target tokens only.
"""

import math

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import struct

from s2s_jax.models.cells import Kernel
from s2s_jax.models.model_config import ModelConfig
from s2s_jax.models.time_loop import dense

_MASKED_SCORE = -1e9


def cache_length(src_len: int) -> int:
    """Target tokens the decoding cache holds for a padded source of ``src_len``."""
    return 2 * src_len + 16


def sinusoids(positions: jax.Array, width: int) -> jax.Array:
    """``positions [...]`` int -> ``[..., width]`` float32: sin in the first half of
    the channels, cos in the second, wavelengths 2 pi .. 10000 * 2 pi."""
    half = (width + 1) // 2
    rates = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / max(half, 1))
    angles = positions.astype(jnp.float32)[..., None] * rates
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)[..., :width]


@struct.dataclass
class TransformerMemory:
    """What the decoder attends to: per decoder layer, the cross-attention keys and
    values ``[B, S, H, D/H]`` of the encoder output, and the source mask ``[B, S]``."""

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    mask: jax.Array


@struct.dataclass
class TransformerState:
    """The decoding cache: per decoder layer, self-attention keys and values
    ``[R, L, H, D/H]`` of the tokens fed so far, and the step index ``[R]`` int32."""

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    index: jax.Array


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention of H heads; projections split from the attention
    so that keys and values can be computed once (memory) or cached (decoding)."""

    features: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        heads = (self.num_heads, self.features // self.num_heads)
        dense_heads = lambda name: nn.DenseGeneral(heads, dtype=self.dtype, name=name)  # noqa: E731
        self.query, self.key, self.value = map(dense_heads, ("query", "key", "value"))
        self.out = nn.DenseGeneral(self.features, axis=(-2, -1), dtype=self.dtype, name="out")

    def keys_values(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``[B, S, D]`` -> keys and values ``[B, S, H, D/H]``."""
        return self.key(x), self.value(x)

    def __call__(self, x: jax.Array, keys: jax.Array, values: jax.Array, mask: jax.Array):
        """``x [B, T, D]`` attends to ``keys, values [B, S, H, D/H]`` where ``mask``
        (broadcastable to ``[B, T, S]``) is True.

        Returns:
          output ``[B, T, D]`` and weights ``[B, T, S]`` averaged over heads.
        """
        q = self.query(x) / math.sqrt(self.features // self.num_heads)
        scores = jnp.einsum("bthd,bshd->bhts", q, keys).astype(jnp.float32)
        scores = jnp.where(mask[:, None], scores, _MASKED_SCORE)
        weights = jax.nn.softmax(scores, axis=-1)
        context = jnp.einsum("bhts,bshd->bthd", weights, values.astype(jnp.float32))
        return self.out(context), weights.mean(axis=1)


class FeedForward(nn.Module):
    """``W_2 Dropout(ReLU(W_1 x))``, inner width 4D."""

    features: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        h = nn.relu(nn.Dense(4 * self.features, dtype=self.dtype, name="inner")(x))
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        return nn.Dense(self.features, dtype=self.dtype, name="outer")(h)


def _attention(config: ModelConfig, name: str) -> MultiHeadAttention:
    return MultiHeadAttention(
        config.hidden_size, config.num_heads, jnp.dtype(config.dtype), name=name
    )


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward over the source."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
        """``x [B, S, D]``, ``mask [B, S]`` -> ``[B, S, D]``."""
        c = self.config
        drop = nn.Dropout(c.dropout)
        h = nn.LayerNorm(name="norm_self")(x)
        attention = _attention(c, "self_attention")
        h, _ = attention(h, *attention.keys_values(h), mask[:, None, :])
        x = x + drop(h, deterministic=deterministic)
        h = nn.LayerNorm(name="norm_ff")(x)
        h = FeedForward(c.hidden_size, c.dropout, jnp.dtype(c.dtype), name="ff")(h, deterministic)
        return x + drop(h, deterministic=deterministic)


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention and feed-forward; a whole
    target at once (``__call__``) or one token against a cache (``step``)."""

    config: ModelConfig

    def setup(self):
        c = self.config
        self.norm_self = nn.LayerNorm(name="norm_self")
        self.self_attention = _attention(c, "self_attention")
        self.norm_cross = nn.LayerNorm(name="norm_cross")
        self.cross_attention = _attention(c, "cross_attention")
        self.norm_ff = nn.LayerNorm(name="norm_ff")
        self.ff = FeedForward(c.hidden_size, c.dropout, jnp.dtype(c.dtype), name="ff")
        self.dropout = nn.Dropout(c.dropout)

    def memory_keys_values(self, encoded: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encoder output ``[B, S, D]`` -> cross-attention keys, values ``[B, S, H, D/H]``."""
        return self.cross_attention.keys_values(encoded)

    def _cross_and_ff(self, x, keys, values, src_mask, deterministic):
        """``x [B, T, D]`` -> (``[B, T, D]``, cross-attention weights ``[B, T, S]``)."""
        h, weights = self.cross_attention(self.norm_cross(x), keys, values, src_mask[:, None, :])
        x = x + self.dropout(h, deterministic=deterministic)
        h = self.ff(self.norm_ff(x), deterministic)
        return x + self.dropout(h, deterministic=deterministic), weights

    def __call__(self, x, keys, values, src_mask, deterministic: bool):
        """``x [B, T, D]`` with memory ``keys, values [B, S, H, D/H]`` and
        ``src_mask [B, S]`` -> (``[B, T, D]``, weights ``[B, T, S]``)."""
        h = self.norm_self(x)
        causal = jnp.tril(jnp.ones((x.shape[1], x.shape[1]), bool))[None]
        h, _ = self.self_attention(h, *self.self_attention.keys_values(h), causal)
        x = x + self.dropout(h, deterministic=deterministic)
        return self._cross_and_ff(x, keys, values, src_mask, deterministic)

    def step(self, x, cache_keys, cache_values, index, keys, values, src_mask):
        """One token per row, inference only.

        Args:
          x: ``[R, D]``, the token's input at step ``index [R]``.
          cache_keys, cache_values: ``[R, L, H, D/H]``, the earlier tokens'.
          keys, values, src_mask: the memory of B = R / G sentences, each shared by
            G consecutive rows (the beams of beam search).

        Returns:
          ``[R, D]``, the updated cache, cross-attention weights ``[R, S]``.
        """
        rows, batch = x.shape[0], src_mask.shape[0]
        h = self.norm_self(x[:, None])
        new_keys, new_values = self.self_attention.keys_values(h)
        here = (jnp.arange(cache_keys.shape[1])[None, :] == index[:, None])[..., None, None]
        cache_keys = jnp.where(here, new_keys.astype(cache_keys.dtype), cache_keys)
        cache_values = jnp.where(here, new_values.astype(cache_values.dtype), cache_values)
        seen = jnp.arange(cache_keys.shape[1])[None, None, :] <= index[:, None, None]
        h, _ = self.self_attention(h, cache_keys, cache_values, seen)
        x = x[:, None] + h
        # The G rows of one sentence are G queries of one attention over its memory.
        x, weights = self._cross_and_ff(
            x.reshape(batch, rows // batch, -1), keys, values, src_mask, True
        )
        return x.reshape(rows, -1), (cache_keys, cache_values), weights.reshape(rows, -1)


class Transformer(nn.Module):
    """Transformer encoder-decoder with Seq2Seq's methods; see the module docstring.

    Uses ``hidden_size`` (D, which ``embed_dim`` must equal), ``num_heads``,
    ``encoder_layers``, ``decoder_layers``, ``dropout`` and ``tie_embeddings`` of the
    config; the recurrent fields are ignored.
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        if c.embed_dim != c.hidden_size:
            raise ValueError(
                f"the transformer needs model.embed_dim == model.hidden_size, got "
                f"embed_dim={c.embed_dim}, hidden_size={c.hidden_size}"
            )
        if c.hidden_size % c.num_heads:
            raise ValueError(
                f"the transformer needs model.hidden_size divisible by model.num_heads, "
                f"got hidden_size={c.hidden_size}, num_heads={c.num_heads}"
            )
        self.tgt_embed = nn.Embed(c.tgt_vocab_size, c.hidden_size, name="tgt_embed")
        self.src_embed = (
            self.tgt_embed
            if c.share_embeddings
            else nn.Embed(c.src_vocab_size, c.hidden_size, name="src_embed")
        )
        self.encoder_layers = [
            EncoderLayer(c, name=f"encoder_{i}") for i in range(c.encoder_layers)
        ]
        self.decoder_layers = [
            DecoderLayer(c, name=f"decoder_{i}") for i in range(c.decoder_layers)
        ]
        self.encoder_norm = nn.LayerNorm(name="encoder_norm")
        self.decoder_norm = nn.LayerNorm(name="decoder_norm")
        self.dropout = nn.Dropout(c.dropout)
        if not c.tie_embeddings:
            self.output = Kernel(c.tgt_vocab_size, name="output")

    def _embed(self, embed: nn.Embed, tokens: jax.Array, positions: jax.Array) -> jax.Array:
        """``tokens [...]`` at ``positions [...]`` -> ``[..., D]`` (before dropout)."""
        d = self.config.hidden_size
        return embed(tokens) * math.sqrt(d) + sinusoids(positions, d)

    def encode(self, src: jax.Array, src_mask: jax.Array, deterministic: bool = True):
        """``src [B, S]``, ``src_mask [B, S]`` -> (an empty TransformerState with a cache
        of ``cache_length(S)`` tokens, TransformerMemory)."""
        x = self._embed(self.src_embed, src, jnp.arange(src.shape[1]))
        x = self.dropout(x, deterministic=deterministic)
        for layer in self.encoder_layers:
            x = layer(x, src_mask, deterministic)
        encoded = self.encoder_norm(x)
        keys, values = zip(*(layer.memory_keys_values(encoded) for layer in self.decoder_layers))
        batch, c = src.shape[0], self.config
        shape = (batch, cache_length(src.shape[1]), c.num_heads, c.hidden_size // c.num_heads)
        empty = tuple(jnp.zeros(shape, jnp.float32) for _ in self.decoder_layers)
        state = TransformerState(empty, empty, jnp.zeros((batch,), jnp.int32))
        return state, TransformerMemory(tuple(keys), tuple(values), src_mask)

    def decode_step(self, state: TransformerState, token: jax.Array, memory: TransformerMemory):
        """Inference step: ``token [R]`` -> (state, logits ``[R, V]``, weights ``[R, S]``,
        the last layer's cross-attention averaged over heads); the memory may hold one
        row per G consecutive rows (the beams of beam search)."""
        x = self._embed(self.tgt_embed, token, state.index)
        keys, values = [], []
        for i, layer in enumerate(self.decoder_layers):
            x, (k, v), weights = layer.step(
                x,
                state.keys[i],
                state.values[i],
                state.index,
                memory.keys[i],
                memory.values[i],
                memory.mask,
            )
            keys.append(k)
            values.append(v)
        state = TransformerState(tuple(keys), tuple(values), state.index + 1)
        return state, self._logits(self.decoder_norm(x)), weights

    def _features(self, src, src_mask, tgt_in, deterministic):
        """Decoder output features ``[B, T, D]`` and weights ``[B, T, S]``."""
        _, memory = self.encode(src, src_mask, deterministic)
        x = self._embed(self.tgt_embed, tgt_in, jnp.arange(tgt_in.shape[1]))
        x = self.dropout(x, deterministic=deterministic)
        for i, layer in enumerate(self.decoder_layers):
            x, weights = layer(x, memory.keys[i], memory.values[i], src_mask, deterministic)
        return self.decoder_norm(x), weights

    def output_weights(self) -> tuple[jax.Array, jax.Array | None]:
        """Kernel ``[D, V]`` (the target embedding's transpose when tied) and bias
        ``[V]`` (None when tied)."""
        if self.config.tie_embeddings:
            return self.tgt_embed.embedding.T, None
        return self.output(self.config.hidden_size)

    def _logits(self, features: jax.Array) -> jax.Array:
        """``[..., D] -> [..., V]`` float32."""
        return dense(features, *self.output_weights(), jnp.dtype(self.config.dtype))

    def teacher_forced_pre_logits(
        self, src: jax.Array, src_mask: jax.Array, tgt_in: jax.Array, deterministic: bool = True
    ):
        """Training's fast path, up to the output matmul: features ``[B, T, D]``, kernel
        ``[D, V]`` and bias ``[V]`` (or None); the logits are ``features @ kernel + bias``."""
        features, _ = self._features(src, src_mask, tgt_in, deterministic)
        return (features,) + self.output_weights()

    def __call__(
        self,
        src: jax.Array,
        src_mask: jax.Array,
        tgt_in: jax.Array,
        forced: jax.Array | None = None,
        sample: bool = False,
        deterministic: bool = True,
    ):
        """Training forward pass, teacher-forced.

        Args:
          src, src_mask: ``[B, S]`` source ids and mask.
          tgt_in: ``[B, T]`` decoder inputs (BOS, y_1, ..., y_{T-1}).
          forced, sample: scheduled sampling, not supported (``forced`` must be None).
          deterministic: disables dropout.

        Returns:
          logits ``[B, T, V]`` and the last decoder layer's cross-attention weights
          ``[B, T, S]``, averaged over heads.
        """
        if forced is not None:
            raise NotImplementedError(
                "scheduled sampling (forced) is not implemented for the transformer; "
                "train it with teacher forcing"
            )
        features, weights = self._features(src, src_mask, tgt_in, deterministic)
        return self._logits(features), weights
