"""The decoder: stacked recurrent layers, attention, input feeding, output layer.

The decoder has one step function, ``Decoder.step(state, token, memory)``, used by
greedy, beam and sampled decoding and by scheduled sampling in training. When the
recurrence does not depend on attention (no attention, or Luong attention without
input feeding) and every input is the gold token, ``Decoder.teacher_forced_features``
runs each layer over the whole target in one scan and attends afterwards, with the
same parameters; a test proves both paths agree.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import struct

from s2s_jax.models import reductions
from s2s_jax.models.attention import ATTENTIONS
from s2s_jax.models.bridge import Bridge
from s2s_jax.models.cells import Carry, Kernel
from s2s_jax.models.model_config import ModelConfig
from s2s_jax.models.rnn_layers import RecurrentLayer
from s2s_jax.models.time_loop import dense


@struct.dataclass
class Memory:
    """What the decoder attends to: values ``[B, S, M]``, precomputed keys, mask ``[B, S]``."""

    values: jax.Array
    keys: jax.Array | None
    mask: jax.Array


@struct.dataclass
class DecoderState:
    """Per-layer carries, and the previous attentional vector ``[B, H]`` (input feeding)."""

    layers: tuple[Carry, ...]
    feed: jax.Array | None


class Decoder(nn.Module):
    """Stacked RNN decoder with optional attention and input feeding."""

    config: ModelConfig
    shared_embed: nn.Embed | None = None  # the encoder's too; None: its own

    def setup(self):
        c = self.config
        self.embed = self.shared_embed or nn.Embed(c.tgt_vocab_size, c.embed_dim, name="embed")
        self.layers = [
            RecurrentLayer(
                c.cell,
                c.hidden_size,
                **c.loop_options,
                in_features=self._input_size if i == 0 else 0,
                name=f"layer_{i}",
            )
            for i in range(c.decoder_layers)
        ]
        self.bridge = Bridge(c, name="bridge")
        self.dropout = nn.Dropout(c.dropout)
        attention = ATTENTIONS[c.attention]
        if attention is not None:
            self.attention = attention(
                c.attention_dim, c.hidden_size, c.num_heads, name="attention"
            )
            self.combine = nn.Dense(c.hidden_size, use_bias=False, name="combine")
        if c.tie_embeddings:
            if c.hidden_size != c.embed_dim:
                self.pre_output = nn.Dense(c.embed_dim, use_bias=False, name="pre_output")
        else:
            self.output = Kernel(c.tgt_vocab_size, name="output")

    @property
    def _input_size(self) -> int:
        """The first layer's input: [y_{t-1} embedded; context (Bahdanau); feed]."""
        c = self.config
        return (
            c.embed_dim
            + (c.memory_size if self._attends_before_step else 0)
            + (c.hidden_size if c.input_feeding else 0)
        )

    @property
    def _has_attention(self) -> bool:
        return ATTENTIONS[self.config.attention] is not None

    @property
    def _attends_before_step(self) -> bool:
        """Bahdanau: the query is s_{t-1} and the context enters the recurrent input."""
        return self._has_attention and ATTENTIONS[self.config.attention].query_is_previous_state

    @property
    def attention_in_recurrence(self) -> bool:
        """Whether step t's recurrent input depends on attention (no full-sequence path)."""
        return self.config.input_feeding or self._attends_before_step

    def start(
        self, finals: tuple[Carry, ...], values: jax.Array, mask: jax.Array
    ) -> tuple[DecoderState, Memory]:
        """Initial state from the encoder's final carries; keys projected once."""
        batch_size = values.shape[0]
        layers = self.bridge(finals, batch_size)
        feed = (
            jnp.zeros((batch_size, self.config.hidden_size), jnp.float32)
            if self.config.input_feeding
            else None
        )
        keys = self.attention.keys(values) if self._has_attention else None
        return DecoderState(layers, feed), Memory(values, keys, mask)

    def _attend(self, query: jax.Array, memory: Memory) -> tuple[jax.Array, jax.Array]:
        """``query [B, T, H]`` -> context ``[B, T, M]``, weights ``[B, T, S]``."""
        return self.attention(query, memory.keys, memory.values, memory.mask)

    def _attend_step(self, query: jax.Array, memory: Memory) -> tuple[jax.Array, jax.Array]:
        """One step's ``query [R, H]`` -> context ``[R, M]``, weights ``[R, S]``.

        R may be G times the memory's rows: each run of G consecutive rows (the beams
        of one sentence) then attends to one memory row as G queries of one call, so
        no memory is copied per beam.
        """
        rows = query.shape[0]
        context, weights = self._attend(
            query.reshape(memory.values.shape[0], -1, query.shape[-1]), memory
        )
        return context.reshape(rows, -1), weights.reshape(rows, -1)

    def _readout(self, top: jax.Array, context: jax.Array | None, deterministic: bool) -> jax.Array:
        """Attentional vector tanh(W_c [c_t; s_t]) (Luong eq. 5), or s_t without attention."""
        if context is not None:
            top = jnp.tanh(self.combine(jnp.concatenate([context, top], axis=-1)))
        return self.dropout(top, deterministic=deterministic)

    def _between_layers(self, i: int, x: jax.Array, h: jax.Array, deterministic: bool) -> jax.Array:
        if self.config.residual and i > 0 and h.shape[-1] == x.shape[-1]:
            h = h + x
        if i < len(self.layers) - 1:
            h = self.dropout(h, deterministic=deterministic)
        return h

    def _projected_tokens(self, tokens: jax.Array, deterministic: bool) -> jax.Array:
        """``tokens [...]`` -> the first layer's projection of their embeddings
        ``[..., G*H]``, the part of its input known before the step."""
        x = self.dropout(self.embed(tokens), deterministic=deterministic)
        return self.layers[0].project(x)

    def features_step(
        self,
        state: DecoderState,
        token: jax.Array | None,
        memory: Memory,
        deterministic: bool = True,
        x_proj: jax.Array | None = None,
    ):
        """One step without the output layer.

        Args:
          state: the previous DecoderState, ``[R, ...]``.
          token: ``[R]`` int32 input y_{t-1} (unused when ``x_proj`` is given).
          memory: encoder memory of B = R / G sentences, each shared by G consecutive
            rows (G = 1, or the beams of beam search).
          x_proj: ``[R, G*H]``, the token's ``_projected_tokens``, when computed for all
            steps at once before the loop (teacher forcing).

        Returns:
          (new state, features ``[R, H]``, attention weights ``[R, S]`` or None).
        """
        if x_proj is None:
            x_proj = self._projected_tokens(token, deterministic)
        rest = []  # the first layer's inputs that only the step knows
        context = weights = None
        if self._attends_before_step:
            context, weights = self._attend_step(state.layers[-1][0], memory)
            rest.append(context)
        if self.config.input_feeding:
            rest.append(state.feed)
        rest = jnp.concatenate(rest, axis=-1) if rest else None
        carry, x = self.layers[0].step(state.layers[0], rest, x_proj)
        x = self._between_layers(0, None, x, deterministic)
        carries = [carry]
        for i, layer in enumerate(self.layers[1:], 1):
            carry, h = layer.step(state.layers[i], x)
            carries.append(carry)
            x = self._between_layers(i, x, h, deterministic)
        if self._has_attention and context is None:
            context, weights = self._attend_step(x, memory)
        features = self._readout(x, context, deterministic)
        feed = features if self.config.input_feeding else None
        return DecoderState(tuple(carries), feed), features, weights

    def pre_logits(self, features: jax.Array) -> jax.Array:
        """``[..., H] -> [..., D]``: what the output matrix multiplies (D = embed_dim
        when tied to an embedding of another size, H otherwise)."""
        c = self.config
        if c.tie_embeddings and c.hidden_size != c.embed_dim:
            return self.pre_output(features)
        return features

    def output_weights(self) -> tuple[jax.Array, jax.Array | None]:
        """The output layer: kernel ``[D, V]`` (the target embedding's transpose when
        tied) and bias ``[V]`` (None when tied)."""
        if self.config.tie_embeddings:
            return self.embed.embedding.T, None
        return self.output(self.config.hidden_size)

    def logits(self, features: jax.Array) -> jax.Array:
        """``[..., H] -> [..., V]``."""
        return dense(
            self.pre_logits(features), *self.output_weights(), jnp.dtype(self.config.dtype)
        )

    def step(
        self, state: DecoderState, token: jax.Array, memory: Memory, deterministic: bool = True
    ):
        """The one decoder step: ``(state, token [B]) -> (state, logits [B, V], weights)``."""
        state, features, weights = self.features_step(state, token, memory, deterministic)
        return state, self.logits(features), weights

    def teacher_forced_features(
        self, state: DecoderState, tgt_in: jax.Array, memory: Memory, deterministic: bool
    ):
        """Features ``[B, T, H]`` and weights ``[B, T, S]`` with every input the gold token."""
        if self.attention_in_recurrence:

            def body(module, carry, x_proj):
                carry, features, weights = module.features_step(
                    carry, None, memory, deterministic, x_proj
                )
                return carry, (features, weights)

            scan = nn.scan(
                body,
                variable_broadcast="params",
                split_rngs={"params": False, "dropout": True},
                in_axes=0,
                out_axes=1,
                unroll=self.config.unroll,
            )
            # The embeddings' share of the first layer's input: all steps in one matmul,
            # time-major [T, B, G*H] as the loop reads it (no transpose of G*H columns).
            x_proj = self._projected_tokens(tgt_in.T, deterministic)
            _, (features, weights) = scan(self, state, x_proj)
            return features, weights
        x = self.dropout(self.embed(tgt_in), deterministic=deterministic)
        for i, layer in enumerate(self.layers):
            _, h = layer(x, None, state.layers[i])  # the whole target in one scan
            x = self._between_layers(i, x, h, deterministic)
        context, weights = self._attend(x, memory) if self._has_attention else (None, None)
        return self._readout(x, context, deterministic), weights

    def scheduled(
        self,
        state: DecoderState,
        tgt_in: jax.Array,
        forced: jax.Array,
        memory: Memory,
        sample: bool,
        deterministic: bool,
    ):
        """Scheduled sampling (Bengio et al. 2015): logits ``[B, T, V]`` and weights.

        Where ``forced [B, T]`` is True the input is the gold token, elsewhere the
        model's own previous prediction: its argmax, or a sample from its softmax
        (rng stream "sample") when ``sample``.
        """

        def body(module, carry, inputs):
            state, predicted = carry
            gold, use_gold = inputs
            token = jnp.where(use_gold, gold, predicted)
            state, logits, weights = module.step(state, token, memory, deterministic)
            if sample:
                predicted = jax.random.categorical(module.make_rng("sample"), logits)
            else:
                predicted = reductions.argmax(logits)
            return (state, predicted.astype(tgt_in.dtype)), (logits, weights)

        scan = nn.scan(
            body,
            variable_broadcast="params",
            split_rngs={"params": False, "dropout": True, "sample": True},
            in_axes=1,
            out_axes=1,
            unroll=self.config.unroll,
        )
        _, (logits, weights) = scan(self, (state, tgt_in[:, 0]), (tgt_in, forced))
        return logits, weights
