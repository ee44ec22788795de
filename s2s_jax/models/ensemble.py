"""Several trained models decoding as one: at every step, the mean of their
log-probabilities (as OpenNMT-py, fairseq and Marian ensemble).

``Ensemble(members)`` has the methods decoding and evaluation call on a model
(``encode``, ``decode_step``, ``__call__``), so greedy and beam search run it inside
their one jitted loop, unchanged. Its parameters are ``{"members_<i>": params of member
i}``; its state and memory are tuples of the members'. The members may have different
architectures (an RNN and a Transformer) but read the same source ids and write the
same target ids: the loader checks their vocabularies.

The "logits" it returns are the mean of the members' logits. Decoding and the loss
normalise them (``logits - logsumexp(logits)``), which gives the normalised mean of the
members' log-probabilities: each member's own normaliser is a constant per row, which
cancels. So the ensemble pays for one softmax per step, as one model does, not one per
member plus one: the beam-5 time of a 2-model ensemble fell from 2.23x to 2.07x one
model's (RESULTS.md ensemble_quality/en-de/val_candidates). An ensemble of one model
decodes as that model.

Attention weights ``[R, S]`` are the mean of the members' that have them (None when
none has).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn


def _mean_logits(logits: Sequence[jax.Array]) -> jax.Array:
    """``[..., V]`` each -> their mean, float32: normalised, the mean log-probabilities."""
    return sum(x.astype(jnp.float32) for x in logits) / len(logits)


def _mean_weights(weights: Sequence[jax.Array | None]) -> jax.Array | None:
    present = [w for w in weights if w is not None]
    return sum(present) / len(present) if present else None


class Ensemble(nn.Module):
    """The members' mean log-probabilities, as one model."""

    members: tuple[nn.Module, ...]

    def encode(self, src: jax.Array, src_mask: jax.Array, deterministic: bool = True):
        """``src [B, S]``, ``src_mask [B, S]`` -> (the members' initial states, their
        memories), tuples."""
        encoded = [member.encode(src, src_mask, deterministic) for member in self.members]
        return tuple(state for state, _ in encoded), tuple(memory for _, memory in encoded)

    def decode_step(self, state: tuple, token: jax.Array, memory: tuple):
        """``token [R]`` -> (states, mean logits ``[R, V]``, mean weights
        ``[R, S]`` or None)."""
        steps = [
            member.decode_step(s, token, m)
            for member, s, m in zip(self.members, state, memory, strict=True)
        ]
        return (
            tuple(s for s, _, _ in steps),
            _mean_logits([logits for _, logits, _ in steps]),
            _mean_weights([w for _, _, w in steps]),
        )

    def __call__(self, src: jax.Array, src_mask: jax.Array, tgt_in: jax.Array):
        """Teacher-forced pass (evaluation's loss, heatmaps): mean logits
        ``[B, T, V]`` and mean weights ``[B, T, S]`` (or None)."""
        outputs = [member(src, src_mask, tgt_in) for member in self.members]
        return (
            _mean_logits([logits for logits, _ in outputs]),
            _mean_weights([w for _, w in outputs]),
        )
