"""Autoregressive decoding with fixed shapes, built on ``Seq2Seq.decode_step``.

Decoders run inside ``jax.jit`` as a ``lax.while_loop`` that stops early once every
sentence has produced EOS. The output length bound is ``a * src_len + b`` where
``src_len`` is the padded source length (a static shape, so nothing recompiles).
"""

import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID
from s2s_jax.models.seq2seq import Seq2Seq


@struct.dataclass
class Decoded:
    """``tokens [B, L]`` (EOS included, PAD after), ``weights [B, L, S]`` or None."""

    tokens: jax.Array
    weights: Optional[jax.Array]


def max_decode_length(src_len: int, a: float, b: int) -> int:
    return max(1, int(a * src_len + b))


def greedy(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array,
           max_len_a: float, max_len_b: int) -> Decoded:
    """Greedy decoding: at each step the most probable token.

    Args:
      model: the Seq2Seq module.
      params: its parameters.
      src, src_mask: ``[B, S]``.
      max_len_a, max_len_b: output length bound ``a * S + b``.
    """
    batch_size, src_len = src.shape
    max_len = max_decode_length(src_len, max_len_a, max_len_b)
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method=Seq2Seq.encode)
    step = functools.partial(model.apply, variables, method=Seq2Seq.decode_step)

    _, _, weights_shape = jax.eval_shape(
        step, state, jnp.zeros((batch_size,), jnp.int32), memory)
    weights = (None if weights_shape is None
               else jnp.zeros((batch_size, max_len, src_len), jnp.float32))
    init = (0, state, jnp.full((batch_size,), BOS_ID, jnp.int32),
            jnp.zeros((batch_size,), bool),
            jnp.full((batch_size, max_len), PAD_ID, jnp.int32), weights)

    def cond(loop):
        i, _, _, done, _, _ = loop
        return (i < max_len) & ~jnp.all(done)

    def body(loop):
        i, state, token, done, tokens, weights = loop
        state, logits, step_weights = step(state, token, memory)
        token = jnp.where(done, PAD_ID, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        tokens = tokens.at[:, i].set(token)
        if weights is not None:
            weights = weights.at[:, i].set(step_weights)
        return i + 1, state, token, done | (token == EOS_ID), tokens, weights

    _, _, _, _, tokens, weights = jax.lax.while_loop(cond, body, init)
    return Decoded(tokens, weights)


DECODERS = {"greedy": greedy}


def compile_decoder(model: Seq2Seq, eval_config):
    """``(params, src, src_mask) -> Decoded``, jitted, with the config's length bound."""
    return jax.jit(functools.partial(greedy, model, max_len_a=eval_config.max_len_a,
                                     max_len_b=eval_config.max_len_b))
