"""Autoregressive decoding with fixed shapes, built on ``Seq2Seq.decode_step``.

Three decoders, each one ``lax.while_loop`` that runs inside ``jax.jit`` and returns a
``Decoded``:

* ``greedy``: the most probable token at each step;
* ``sample``: ancestral sampling at a temperature, optionally from the top-k tokens;
* ``beam_search``: beam search with the GNMT length and coverage penalties.

Greedy decoding and sampling are one loop (``_step_loop``) with different token
choices; a sentence is finished once it has produced EOS. In beam search a sentence is
finished once no alive hypothesis can beat its finished ones. As sentences finish, the
loop goes on with the unfinished ones in a batch half as large
(``_while_dropping_finished``), so finished sentences stop costing compute. Beam
search keeps one encoder memory per sentence: the K beams attend to it as K queries of
one call (``Decoder.features_step``), so no memory is copied per beam. The output
length bound is ``a * src_len + b`` tokens, EOS included, where ``src_len`` is the
padded source length (a static shape, so nothing recompiles). ``compile_decoder``
builds the decoder an eval config names, and ``attention_of`` gives the attention
heatmap of any hypothesis.
"""

import functools
import itertools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from s2s_jax.models import reductions
from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID
from s2s_jax.models.seq2seq import DecoderState, Memory, Seq2Seq

NEG_INF = -jnp.inf

# (step index, logits [B, V]) -> the next tokens [B].
TokenChoice = Callable[[jax.Array, jax.Array], jax.Array]
DecodeStep = Callable[[DecoderState, jax.Array, Memory],
                      tuple[DecoderState, jax.Array, Optional[jax.Array]]]


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
    return tokens[:ends[0] + 1] if len(ends) else tokens


def max_decode_length(src_len: int, a: float, b: int) -> int:
    return max(1, int(a * src_len + b))


def length_penalty(length: jax.Array | int, alpha: float) -> jax.Array:
    """GNMT ``lp(Y) = ((5 + |Y|) / 6) ** alpha``, |Y| counting the generated EOS."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def coverage_penalty(coverage: jax.Array, src_mask: jax.Array, beta: float) -> jax.Array:
    """GNMT ``cp(X; Y) = beta * sum_i log(min(sum_j a_ij, 1))`` over real source tokens i.

    Args:
      coverage: ``[..., S]`` the attention each source token received, summed over the
        target steps j: ``sum_j a_ij``.
      src_mask: ``[..., S]``, broadcastable to ``coverage``.
      beta: the penalty's weight.

    Returns:
      ``[...]``, zero or negative.
    """
    coverage = jnp.minimum(coverage, 1.0)
    return beta * jnp.sum(jnp.where(src_mask, jnp.log(coverage), 0.0), axis=-1)


def gnmt_score(log_prob: jax.Array, length: jax.Array | int, coverage: Optional[jax.Array],
               src_mask: jax.Array, *, alpha: float, beta: float) -> jax.Array:
    """``log P(Y|X) / lp(Y) + cp(X; Y)`` (Wu et al. 2016, eq. 14), shaped like ``log_prob``.

    ``coverage`` and ``src_mask`` are as in ``coverage_penalty``; they are not read when
    ``beta`` is 0 (coverage may then be None).
    """
    score = log_prob / length_penalty(length, alpha)
    if beta:
        score = score + coverage_penalty(coverage, src_mask, beta)
    return score


def _start(model: Seq2Seq, params: Any, src: jax.Array,
           src_mask: jax.Array) -> tuple[DecodeStep, DecoderState, Memory, bool]:
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


def _while_dropping_finished(step: Callable[[jax.Array, Any, Any], Any],
                             unfinished: Callable[[Any], jax.Array], rows: Any, context: Any,
                             max_len: int) -> Any:
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


def _step_loop(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array,
               choose: TokenChoice, max_len_a: float, max_len_b: int) -> Decoded:
    """Feeds each sentence the token ``choose`` picks until every sentence has produced EOS.

    Returns N = 1 hypothesis per sentence, scored by its log-probability under the model.
    """
    batch_size, src_len = src.shape
    max_len = max_decode_length(src_len, max_len_a, max_len_b)
    step, state, memory, _ = _start(model, params, src, src_mask)
    init = (state, jnp.full((batch_size,), BOS_ID, jnp.int32),
            jnp.zeros((batch_size,), bool), jnp.full((batch_size, max_len), PAD_ID, jnp.int32),
            jnp.zeros((batch_size,), jnp.float32))

    def body(i, loop, memory):
        state, token, done, tokens, log_prob = loop
        state, logits, _ = step(state, token, memory)
        token = jnp.where(done, PAD_ID, choose(i, logits).astype(jnp.int32))
        token_log_prob = (jnp.take_along_axis(logits, token[:, None], axis=1)[:, 0]
                          - reductions.logsumexp(logits))
        log_prob = log_prob + jnp.where(done, 0.0, token_log_prob)
        tokens = tokens.at[:, i].set(token)
        return state, token, done | (token == EOS_ID), tokens, log_prob

    _, _, _, tokens, log_prob = _while_dropping_finished(
        body, lambda loop: ~loop[2], init, memory, max_len)
    return Decoded(tokens[:, None], log_prob[:, None])


def greedy(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array, *,
           max_len_a: float, max_len_b: int) -> Decoded:
    """Greedy decoding: at each step the most probable token.

    Args:
      model: the Seq2Seq module.
      params: its parameters.
      src, src_mask: ``[B, S]``.
      max_len_a, max_len_b: output length bound ``a * S + b``.

    Returns:
      ``Decoded`` with N = 1.
    """
    return _step_loop(model, params, src, src_mask, lambda i, logits: reductions.argmax(logits),
                      max_len_a, max_len_b)


def sample(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array, rng: jax.Array,
           *, temperature: float, top_k: int, max_len_a: float, max_len_b: int) -> Decoded:
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
        raise ValueError(f"sampling needs temperature > 0 and top_k >= 0, got "
                         f"temperature={temperature}, top_k={top_k}")

    def choose(i: jax.Array, logits: jax.Array) -> jax.Array:
        key = jax.random.fold_in(rng, i)
        logits = logits / temperature
        if not 0 < top_k < logits.shape[-1]:
            return jax.random.categorical(key, logits)
        top_logits, top_tokens = jax.lax.top_k(logits, top_k)
        choice = jax.random.categorical(key, top_logits)
        return jnp.take_along_axis(top_tokens, choice[:, None], axis=1)[:, 0]

    return _step_loop(model, params, src, src_mask, choose, max_len_a, max_len_b)


def _repeat_beams(tree: Any, beam_size: int) -> Any:
    """``[B, ...]`` leaves -> ``[B, K, ...]``, each row copied K times."""
    return jax.tree.map(
        lambda x: jnp.broadcast_to(x[:, None], (x.shape[0], beam_size) + x.shape[1:]), tree)


def _flatten_beams(tree: Any) -> Any:
    """``[B, K, ...]`` -> ``[B * K, ...]``."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def _unflatten_beams(tree: Any, batch_size: int) -> Any:
    """``[B * K, ...]`` -> ``[B, K, ...]``."""
    return jax.tree.map(lambda x: x.reshape((batch_size, -1) + x.shape[1:]), tree)


def _gather_beams(tree: Any, beams: jax.Array) -> Any:
    """``[B, K, ...]`` leaves, ``beams [B, K']`` indices into K -> ``[B, K', ...]``."""
    return jax.tree.map(lambda x: jax.vmap(lambda row, index: row[index])(x, beams), tree)


@struct.dataclass
class _Beams:
    """Beam search loop state: K alive and N finished hypotheses per sentence.

    Attributes:
      alive_tokens: ``[B, K, 1 + L]``, BOS then the tokens so far (PAD from 1 + i on).
      alive_log_probs: ``[B, K]`` log P(prefix|X), -inf for empty slots.
      alive_coverage: ``[B, K, S]`` attention weights summed over each prefix's steps,
        for the coverage penalty; None without it.
      decoder_state: the DecoderState after each alive prefix, leaves ``[B, K, ...]``.
      finished_tokens: ``[B, N, L]``, EOS included, PAD after.
      finished_scores: ``[B, N]`` GNMT scores, best first, -inf for empty slots.
    """

    alive_tokens: jax.Array
    alive_log_probs: jax.Array
    alive_coverage: Optional[jax.Array]
    decoder_state: DecoderState
    finished_tokens: jax.Array
    finished_scores: jax.Array


def beam_search(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array, *,
                beam_size: int, alpha: float, beta: float, n_best: int, max_len_a: float,
                max_len_b: int) -> Decoded:
    """Beam search scored by GNMT's ``log P(Y|X) / lp(Y) + cp(X; Y)`` (``gnmt_score``).

    At step i each alive prefix is extended by every token (only one alive slot is
    live at step 0, so the first K prefixes are distinct), and of these K * V
    candidates, all i + 1 tokens long:

    * those among the K most probable that end with EOS are finished (as in fairseq);
    * the K most probable that do not end with EOS stay alive;
    * at the length bound L, the K most probable are finished as they are (L tokens,
      no EOS), so a sentence always gets hypotheses even when none reaches EOS.

    Finished hypotheses are never extended and keep their score; the N best are kept.
    Ranking candidates by log-probability rather than score changes nothing for the
    length penalty (they have one length) and makes beam size 1 equal greedy decoding
    when alpha = beta = 0. A sentence is finished once its best alive log-probability
    divided by the largest length penalty, lp(L), is below its worst kept finished
    score: log-probabilities only decrease, lp(|Y|) <= lp(L) for alpha >= 0 and the
    coverage penalty is <= 0, so no alive hypothesis could enter the N best any more,
    and dropping the sentence changes no result.

    Args:
      model, params, src, src_mask, max_len_a, max_len_b: as for ``greedy``.
      beam_size: K, hypotheses kept alive per sentence.
      alpha: length penalty exponent, >= 0 (0: none); a float or a traced scalar, so
        that one compiled search serves every alpha (``compile_decoder``).
      beta: coverage penalty weight, >= 0 (0: none); > 0 needs a model with attention.
      n_best: N <= K, hypotheses returned per sentence.

    Returns:
      ``Decoded`` with N = n_best, sorted by score.
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"beam search needs 1 <= n_best <= beam_size, got n_best={n_best}, "
                         f"beam_size={beam_size}")
    if beta < 0 or (isinstance(alpha, (int, float)) and alpha < 0):
        raise ValueError(f"beam search needs alpha >= 0 and beta >= 0, got alpha={alpha}, "
                         f"beta={beta}")
    batch_size, src_len = src.shape
    max_len = max_decode_length(src_len, max_len_a, max_len_b)
    step, state, memory, attends = _start(model, params, src, src_mask)
    if beta and not attends:
        raise ValueError(f"the coverage penalty (beta={beta}) needs attention weights, and "
                         "the model has none (attention 'none'): set beta to 0")
    # One memory row per sentence: the decoder step attends with its K beams at once.
    context = (memory, src_mask)

    def unfinished(beams: _Beams) -> jax.Array:
        best_alive = beams.alive_log_probs.max(axis=1) / length_penalty(max_len, alpha)
        return ~(best_alive < beams.finished_scores[:, -1])

    def body(i: jax.Array, beams: _Beams, context) -> _Beams:
        memory, mask = context
        rows = len(beams.alive_log_probs)  # B, or fewer once sentences finish
        decoder_state, logits, step_weights = step(
            _flatten_beams(beams.decoder_state), beams.alive_tokens[:, :, i].reshape(-1), memory)
        log_probs = reductions.log_softmax(logits).reshape(rows, beam_size, -1)
        vocab_size = log_probs.shape[-1]
        candidates = beams.alive_log_probs[:, :, None] + log_probs  # [B, K, V]
        coverage = None
        if beta:  # the coverage after this step of each alive prefix
            coverage = beams.alive_coverage + step_weights.reshape(rows, beam_size, src_len)

        # One top-k serves both selections: there are at most K EOS candidates (one per
        # beam), so the 2K best hold the K best and the K best that do not end in EOS.
        top, index = reductions.top_k(candidates.reshape(rows, -1), 2 * beam_size)

        def extend(picks: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array,
                                              Optional[jax.Array]]:
            """Candidates ``picks [B, K]`` (positions among the 2K best): their log-probs
            ``[B, K]``, parent beams ``[B, K]``, tokens ``[B, K, 1 + L]`` and coverage
            ``[B, K, S]`` (None without the coverage penalty)."""
            picked = jnp.take_along_axis(index, picks, axis=1)
            parents = picked // vocab_size
            tokens, picked_coverage = _gather_beams((beams.alive_tokens, coverage), parents)
            tokens = tokens.at[:, :, i + 1].set(picked % vocab_size)
            return jnp.take_along_axis(top, picks, axis=1), parents, tokens, picked_coverage

        log_prob, _, tokens, new_coverage = extend(
            jnp.broadcast_to(jnp.arange(beam_size), (rows, beam_size)))
        finishes = (tokens[:, :, i + 1] == EOS_ID) | (i == max_len - 1)
        new_scores = jnp.where(finishes, gnmt_score(log_prob, i + 1, new_coverage,
                                                    mask[:, None, :],
                                                    alpha=alpha, beta=beta), NEG_INF)
        finished_scores, best = jax.lax.top_k(
            jnp.concatenate([beams.finished_scores, new_scores], axis=1), n_best)
        finished_tokens = _gather_beams(
            jnp.concatenate([beams.finished_tokens, tokens[:, :, 1:]], axis=1), best)

        not_eos_first = jnp.argsort(index % vocab_size == EOS_ID, axis=1, stable=True)
        alive_log_probs, parents, alive_tokens, alive_coverage = extend(
            not_eos_first[:, :beam_size])
        decoder_state = _gather_beams(_unflatten_beams(decoder_state, rows), parents)
        return _Beams(alive_tokens, alive_log_probs, alive_coverage, decoder_state,
                      finished_tokens, finished_scores)

    init = _Beams(
        alive_tokens=jnp.full((batch_size, beam_size, 1 + max_len), PAD_ID,
                              jnp.int32).at[:, :, 0].set(BOS_ID),
        alive_log_probs=jnp.where(jnp.arange(beam_size) == 0, 0.0,
                                  jnp.full((batch_size, beam_size), NEG_INF)),
        alive_coverage=jnp.zeros((batch_size, beam_size, src_len)) if beta else None,
        decoder_state=_repeat_beams(state, beam_size),
        finished_tokens=jnp.full((batch_size, n_best, max_len), PAD_ID, jnp.int32),
        finished_scores=jnp.full((batch_size, n_best), NEG_INF))
    beams = _while_dropping_finished(body, unfinished, init, context, max_len)
    return Decoded(beams.finished_tokens, beams.finished_scores)


def attention_of(model: Seq2Seq, params: Any, src: jax.Array, src_mask: jax.Array,
                 tokens: jax.Array) -> Optional[jax.Array]:
    """The attention heatmap of hypotheses: the weights the decoder gives the source at
    each step while it reads ``tokens`` (teacher-forced), which are the weights it gave
    while it decoded them; decoders need not keep histories.

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


class DecoderSpec(NamedTuple):
    """A decoder and the eval config fields it takes by keyword, besides the length bound:
    ``options`` are compiled in (each value compiles its own decoder), ``traced`` are
    passed as float32 scalars (one compiled decoder serves every value)."""

    decode: Callable[..., Decoded]
    options: tuple[str, ...]
    traced: tuple[str, ...] = ()
    random: bool = False  # takes a PRNG key after src_mask


DECODERS = {
    "greedy": DecoderSpec(greedy, ()),
    "beam": DecoderSpec(beam_search, ("beam_size", "beta", "n_best"), traced=("alpha",)),
    "sample": DecoderSpec(sample, ("temperature", "top_k"), random=True),
}


@functools.lru_cache(maxsize=64)
def jitted(function: Callable, model: Seq2Seq,
           options: tuple[tuple[str, Any], ...] = ()) -> Callable:
    """``function(model, ..., **options)`` jitted once and shared by every caller: the
    Evaluators of a beam-search grid reuse one decoder compilation per beam size, and
    the training loop's, the grid's and the test split's Evaluators one of the metrics."""
    return jax.jit(functools.partial(function, model, **dict(options)))


def compile_decoder(model: Seq2Seq, eval_config) -> Callable[[Any, jax.Array, jax.Array],
                                                              Decoded]:
    """``(params, src, src_mask) -> Decoded``, jitted: the decoder ``eval_config.decoder``.

    Reads ``decoder``, ``max_len_a``, ``max_len_b`` and the chosen decoder's options
    (``DECODERS``); sampling also reads ``sample_seed`` and draws with
    ``fold_in(key(sample_seed), n)`` on the n-th call, so a run is reproducible for the
    same sequence of batches.
    """
    if eval_config.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {eval_config.decoder!r}; choose from "
                         f"{sorted(DECODERS)}")
    spec = DECODERS[eval_config.decoder]
    options = tuple((name, getattr(eval_config, name))
                    for name in spec.options + ("max_len_a", "max_len_b"))
    decode = jitted(spec.decode, model, options)
    traced = {name: jnp.float32(getattr(eval_config, name)) for name in spec.traced}
    if not spec.random:
        return lambda params, src, src_mask: decode(params, src, src_mask, **traced)
    seed, calls = jax.random.key(eval_config.sample_seed), itertools.count()
    return lambda params, src, src_mask: decode(
        params, src, src_mask, jax.random.fold_in(seed, next(calls)), **traced)
