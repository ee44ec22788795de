"""The encoder: ``src [B, S]`` -> final carry per layer and memory ``[B, S, M]``."""

import jax
import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.models.cells import Carry
from s2s_jax.models.model_config import ModelConfig
from s2s_jax.models.rnn_layers import StackedEncoderRNN


def reverse_padded(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Reverses each sequence's real steps in place, padding stays at the end.

    ``x [B, S, ...]``, ``mask [B, S]``. The map is its own inverse.
    """
    positions = jnp.arange(mask.shape[1])[None, :]
    lengths = mask.sum(axis=1, keepdims=True)
    index = jnp.where(positions < lengths, lengths - 1 - positions, positions)
    index = index.reshape(index.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


class Encoder(nn.Module):
    """Embedding, optional source reversal (Sutskever et al.), stacked RNN."""

    config: ModelConfig
    shared_embed: nn.Embed | None = None  # the decoder's too; None: its own

    @nn.compact
    def __call__(
        self, src: jax.Array, src_mask: jax.Array, deterministic: bool
    ) -> tuple[tuple[Carry, ...], jax.Array]:
        """``src [B, S]`` -> (final carry per layer, memory ``[B, S, M]`` in source order)."""
        c = self.config
        if c.reverse_source:
            src = reverse_padded(src, src_mask)
        embed = self.shared_embed or nn.Embed(c.src_vocab_size, c.embed_dim, name="embed")
        x = embed(src)
        x = nn.Dropout(c.dropout)(x, deterministic=deterministic)
        finals, memory = StackedEncoderRNN(
            c.cell,
            c.hidden_size,
            c.encoder_layers,
            c.bidirectional,
            c.residual,
            c.dropout,
            **c.loop_options,
            name="rnn",
        )(x, src_mask, deterministic)
        if c.reverse_source:  # attention weights then line up with the original tokens
            memory = reverse_padded(memory, src_mask)
        return finals, memory
