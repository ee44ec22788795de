"""Autoregressive decoding with fixed shapes, built on ``Seq2Seq.decode_step``.

Each decoder is one ``lax.while_loop`` that runs inside ``jax.jit`` and returns a
``Decoded``. Greedy decoding (the most probable token at each step) and sampling (at a
temperature, optionally from the top-k tokens) are one loop, ``_step_loop``, with
different token choices; a sentence is finished once it has produced EOS. As sentences
finish, the loop goes on with the unfinished ones in a batch half as large
(``_while_dropping_finished``), so finished sentences stop costing compute; beam search
(``s2s_jax.decoding.beam``) runs in the same loop. The output length bound is
``a * src_len + b`` tokens, EOS included, where ``src_len`` is the padded source length
(a static shape, so nothing recompiles). ``attention_of`` gives the attention heatmap
of any hypothesis.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID
from s2s_jax.models import reductions
from s2s_jax.models.seq2seq import DecoderState, Memory, Seq2Seq

# (step index, logits [B, V]) -> the next tokens [B].
TokenChoice = Callable[[jax.Array, jax.Array], jax.Array]
# (state, tokens [B], memory) -> (state, logits [B, V], attention weights [B, S] or None).
DecodeStep = Callable[
    [DecoderState, jax.Array, Memory], tuple[DecoderState, jax.Array, jax.Array | None]
]


@struct.dataclass
class Decoded:
    """N hypotheses per sentence, best first (N = 1 for greedy decoding and sampling).

    Attributes:
      tokens: ``[B, N, L]`` int32, each hypothesis up to and including its EOS, PAD
        after; a hypothesis cut off by the length bound has L tokens and no EOS.
      scores: ``[B, N]`` float32: the GNMT score for beam search (``gnmt_score``), the
        model's log P(Y|X) for greedy decoding and sampling. Beam slots beyond the
        number of distinct hypotheses the search can form score -inf.
    """

    tokens: jax.Array
    scores: jax.Array


def until_eos(tokens: np.ndarray) -> np.ndarray:
    """One hypothesis of ``Decoded.tokens`` up to and including its EOS (all of it when
    the length bound cut it off)."""
    ends = np.flatnonzero(tokens == EOS_ID)
    return tokens[: ends[0] + 1] if len(ends) else tokens


def max_decode_length(src_len: int, a: float, b: int) -> int:
    """The output length bound ``a * src_len + b`` (at least 1), EOS included."""
    return max(1, int(a * src_len + b))


def _start(
    model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array
) -> tuple[DecodeStep, DecoderState, Memory, bool]:
    """Runs the encoder: (decode step, initial state, memory, whether the model attends).

    Decoders use nothing of the model but these two methods, called by name, so any
    flax module with Seq2Seq's ``encode`` and ``decode_step`` can stand in for it.
    """
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method="encode")
    step = functools.partial(model.apply, variables, method="decode_step")
    _, _, weights = jax.eval_shape(step, state, jnp.zeros(src.shape[:1], jnp.int32), memory)
    return step, state, memory, weights is not None


# A decoding batch is halved at most this many times as its sentences finish: a few
# loop sizes, each compiled once.
MAX_HALVINGS = 4


def _while_dropping_finished(
    step: Callable[[jax.Array, Any, Any], Any],
    unfinished: Callable[[Any], jax.Array],
    rows: Any,
    context: Any,
    max_len: int,
) -> Any:
    """A ``lax.while_loop`` over the sentences of a batch that drops the finished ones.

    Runs ``rows = step(i, rows, context)`` for i = 0, 1, ... while i < ``max_len`` and a
    sentence is unfinished, like one loop over the whole batch. But once at most half of
    the rows are unfinished, it gathers those into a batch half as large and goes on
    with that (at most ``MAX_HALVINGS`` times, down to B / 16 rows): finished sentences
    stop costing compute, as when PyTorch toolkits drop them, and every shape stays
    static (one loop per size). This changes no result as long as rows do not interact,
    a finished sentence stays finished and ``step`` changes none of its results.

    Args:
      step: ``(i, rows, context) -> rows``.
      unfinished: ``rows -> [b]`` bool, per sentence.
      rows: the loop state, leaves ``[B, ...]``.
      context: what ``step`` reads per sentence (the encoder's memory), leaves ``[B, ...]``.
      max_len: the most steps.

    Returns:
      ``rows`` at the end, in the batch's order.
    """
    batch_size = jax.tree.leaves(rows)[0].shape[0]
    smallest = max(1, batch_size >> MAX_HALVINGS)
    final, original, size, i = rows, jnp.arange(batch_size), batch_size, jnp.int32(0)
    while True:
        half = size // 2 if size // 2 >= smallest else 0  # 0: the last loop

        def cond(loop):  # traced at once by while_loop: this iteration's half and context
            i, rows = loop
            return (i < max_len) & (jnp.sum(unfinished(rows)) > half)

        def body(loop):
            i, rows = loop
            return i + 1, step(i, rows, context)

        i, rows = jax.lax.while_loop(cond, body, (i, rows))
        final = jax.tree.map(lambda whole, part: whole.at[original].set(part), final, rows)
        if not half:
            return final
        keep = jnp.argsort(~unfinished(rows), stable=True)[:half]  # the unfinished first
        rows, context, original = jax.tree.map(lambda x: x[keep], (rows, context, original))
        size = half


def _step_loop(
    model: Seq2Seq,
    params: Any,
    src: jax.Array,
    src_mask: jax.Array,
    choose: TokenChoice,
    max_len_a: float,
    max_len_b: int,
) -> Decoded:
    """Feeds each sentence the token ``choose`` picks until every sentence has produced EOS.

    Returns N = 1 hypothesis per sentence, scored by its log-probability under the model.
    """
    batch_size, src_len = src.shape
    max_len = max_decode_length(src_len, max_len_a, max_len_b)
    step, state, memory, _ = _start(model, params, src, src_mask)
    init = (
        state,
        jnp.full((batch_size,), BOS_ID, jnp.int32),
        jnp.zeros((batch_size,), bool),
        jnp.full((batch_size, max_len), PAD_ID, jnp.int32),
        jnp.zeros((batch_size,), jnp.float32),
    )

    def body(i, loop, memory):
        state, token, done, tokens, log_prob = loop
        state, logits, _ = step(state, token, memory)
        token = jnp.where(done, PAD_ID, choose(i, logits).astype(jnp.int32))
        token_log_prob = jnp.take_along_axis(logits, token[:, None], axis=1)[
            :, 0
        ] - reductions.logsumexp(logits)
        log_prob = log_prob + jnp.where(done, 0.0, token_log_prob)
        tokens = tokens.at[:, i].set(token)
        return state, token, done | (token == EOS_ID), tokens, log_prob

    _, _, _, tokens, log_prob = _while_dropping_finished(
        body, lambda loop: ~loop[2], init, memory, max_len
    )
    return Decoded(tokens[:, None], log_prob[:, None])


def greedy(
    model: Seq2Seq,
    params: Any,
    src: jax.Array,
    src_mask: jax.Array,
    *,
    max_len_a: float,
    max_len_b: int,
) -> Decoded:
    """Greedy decoding: at each step the most probable token.

    Args:
      model: the Seq2Seq module.
      params: its parameters.
      src, src_mask: ``[B, S]``.
      max_len_a, max_len_b: output length bound ``a * S + b``.

    Returns:
      ``Decoded`` with N = 1.
    """
    return _step_loop(
        model,
        params,
        src,
        src_mask,
        lambda i, logits: reductions.argmax(logits),
        max_len_a,
        max_len_b,
    )


def sample(
    model: Seq2Seq,
    params: Any,
    src: jax.Array,
    src_mask: jax.Array,
    rng: jax.Array,
    *,
    temperature: float,
    top_k: int,
    max_len_a: float,
    max_len_b: int,
) -> Decoded:
    """Ancestral sampling from ``softmax(logits / temperature)``.

    Args:
      model, params, src, src_mask, max_len_a, max_len_b: as for ``greedy``.
      rng: PRNG key; the samples are a function of it (step i uses ``fold_in(rng, i)``).
      temperature: > 0; towards 0 sampling becomes greedy, above 1 flatter.
      top_k: when in (0, V), sample among the top_k most likely tokens only.

    Returns:
      ``Decoded`` with N = 1, scored by the untempered model's log P(Y|X). Sentences
      stop at EOS or the length bound, as in ``greedy``.
    """
    if temperature <= 0 or top_k < 0:
        raise ValueError(
            f"sampling needs temperature > 0 and top_k >= 0, got "
            f"temperature={temperature}, top_k={top_k}"
        )

    def choose(i: jax.Array, logits: jax.Array) -> jax.Array:
        key = jax.random.fold_in(rng, i)
        logits = logits / temperature
        if not 0 < top_k < logits.shape[-1]:
            return jax.random.categorical(key, logits)
        top_logits, top_tokens = jax.lax.top_k(logits, top_k)
        choice = jax.random.categorical(key, top_logits)
        return jnp.take_along_axis(top_tokens, choice[:, None], axis=1)[:, 0]

    return _step_loop(model, params, src, src_mask, choose, max_len_a, max_len_b)


@functools.partial(jax.jit, static_argnames="model")
def attention_of(
    model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array, tokens: jax.Array
) -> jax.Array | None:
    """The attention heatmap of hypotheses: the weights the decoder gives the source at
    each step while it reads ``tokens`` (teacher-forced), which are the weights it gave
    while it decoded them; decoders need not keep histories.

    Jitted with the model static: one compilation per model and shapes, shared by every
    caller (the Evaluators and ``Translator.attention``).

    Args:
      model, params, src, src_mask: as for ``greedy``.
      tokens: ``[B, L]`` one hypothesis per sentence (``Decoded.tokens[:, 0]``).

    Returns:
      ``[B, L, S]``: row j holds the weights with which token j was predicted. None for a
      model without attention.
    """
    tgt_in = jnp.concatenate([jnp.full_like(tokens[:, :1], BOS_ID), tokens[:, :-1]], axis=1)
    _, weights = model.apply({"params": params}, src, src_mask, tgt_in)
    return weights
