"""The encoder-decoder: Encoder, Bridge, Decoder and Seq2Seq.

Data flow (shapes for batch B, source length S, target length T)::

    src [B, S] --Encoder--> memory [B, S, M], final carry per layer (the context vector)
                   --Bridge--> decoder initial state
    tgt_in [B, T] --Decoder (teacher forcing)--> features [B, T, H] --output--> logits [B, T, V]

The parts live in `encoder`, `bridge` and `decoder` (see there for the decoder's
step function and its whole-target fast path); the model's hyper-parameters in
`model_config`.
"""

import jax
from flax import linen as nn

from s2s_jax.models.bridge import BRIDGES
from s2s_jax.models.decoder import Decoder, DecoderState, Memory
from s2s_jax.models.encoder import Encoder
from s2s_jax.models.model_config import ModelConfig

# What callers import from here: the model, its config and decoder state, and the
# bridge names the config is checked against.
__all__ = ["BRIDGES", "DecoderState", "Memory", "ModelConfig", "Seq2Seq"]


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention; see the module docstring."""

    config: ModelConfig

    def setup(self):
        c = self.config
        # One embedding for both sides (config.model.share_embeddings), else their own.
        shared = (
            nn.Embed(c.tgt_vocab_size, c.embed_dim, name="embed") if c.share_embeddings else None
        )
        self.encoder = Encoder(c, shared, name="encoder")
        self.decoder = Decoder(c, shared, name="decoder")

    def encode(
        self, src: jax.Array, src_mask: jax.Array, deterministic: bool = True
    ) -> tuple[DecoderState, Memory]:
        """``src [B, S]``, ``src_mask [B, S]`` -> decoder initial state and memory."""
        finals, values = self.encoder(src, src_mask, deterministic)
        return self.decoder.start(finals, values, src_mask)

    def decode_step(self, state: DecoderState, token: jax.Array, memory: Memory):
        """Inference step: ``token [R]`` -> (state, logits ``[R, V]``, weights ``[R, S]``);
        the memory may hold one row per G consecutive rows (``Decoder.features_step``)."""
        return self.decoder.step(state, token, memory)

    def teacher_forced_pre_logits(
        self, src: jax.Array, src_mask: jax.Array, tgt_in: jax.Array, deterministic: bool = True
    ):
        """Training's fast path, up to the output matmul.

        Returns:
          pre-logit features ``[B, T, D]``, and the output kernel ``[D, V]`` and bias
          ``[V]`` (or None): the logits are ``features @ kernel + bias``.
        """
        state, memory = self.encode(src, src_mask, deterministic)
        features, _ = self.decoder.teacher_forced_features(state, tgt_in, memory, deterministic)
        return (self.decoder.pre_logits(features),) + self.decoder.output_weights()

    def __call__(
        self,
        src: jax.Array,
        src_mask: jax.Array,
        tgt_in: jax.Array,
        forced: jax.Array | None = None,
        sample: bool = False,
        deterministic: bool = True,
    ):
        """Training forward pass.

        Args:
          src, src_mask: ``[B, S]`` source ids and mask.
          tgt_in: ``[B, T]`` decoder inputs (BOS, y_1, ..., y_{T-1}).
          forced: ``[B, T]`` bool, where to feed the gold token (scheduled sampling);
            None means teacher forcing everywhere (the fast path).
          sample: with ``forced``, sample the model's own inputs instead of argmax.
          deterministic: disables dropout.

        Returns:
          logits ``[B, T, V]`` and attention weights ``[B, T, S]`` (None without attention).
        """
        state, memory = self.encode(src, src_mask, deterministic)
        if forced is None:
            features, weights = self.decoder.teacher_forced_features(
                state, tgt_in, memory, deterministic
            )
            return self.decoder.logits(features), weights
        return self.decoder.scheduled(state, tgt_in, forced, memory, sample, deterministic)
