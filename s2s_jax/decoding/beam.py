"""Beam search scored by GNMT's ``log P(Y|X) / lp(Y) + cp(X; Y)`` (``gnmt_score``).

At step i each alive prefix is extended by every token (only one alive slot is live at
step 0, so the first K prefixes are distinct), and of these K * V candidates, all
i + 1 tokens long:

* those among the K most probable that end with EOS are finished (as in fairseq);
* the K most probable that do not end with EOS stay alive;
* at the length bound L, the K most probable are finished as they are (L tokens, no
  EOS), so a sentence always gets hypotheses even when none reaches EOS.

Finished hypotheses are never extended and keep their score; the N best are kept.
Ranking candidates by log-probability rather than score changes nothing for the length
penalty (they have one length) and makes beam size 1 equal greedy decoding when
alpha = beta = 0. A sentence is finished once its best alive log-probability divided by
the largest length penalty, lp(L), is below its worst kept finished score:
log-probabilities only decrease, lp(|Y|) <= lp(L) for alpha >= 0 and the coverage
penalty is <= 0, so no alive hypothesis could enter the N best any more, and dropping
the sentence (``_while_dropping_finished``) changes no result.

Beam search keeps one encoder memory per sentence: the K beams attend to it as K
queries of one call (``Decoder.features_step``), so no memory is copied per beam.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID
from s2s_jax.decoding.penalties import gnmt_score, length_penalty
from s2s_jax.decoding.search import (
    Decoded,
    DecodeStep,
    _start,
    _while_dropping_finished,
    max_decode_length,
)
from s2s_jax.models import reductions
from s2s_jax.models.seq2seq import DecoderState, Seq2Seq

NEG_INF = -jnp.inf


def _repeat_beams(tree: Any, beam_size: int) -> Any:
    """``[B, ...]`` leaves -> ``[B, K, ...]``, each row copied K times."""
    return jax.tree.map(
        lambda x: jnp.broadcast_to(x[:, None], (x.shape[0], beam_size) + x.shape[1:]), tree
    )


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
    alive_coverage: jax.Array | None
    decoder_state: DecoderState
    finished_tokens: jax.Array
    finished_scores: jax.Array

    @classmethod
    def initial(
        cls,
        state: DecoderState,
        batch_size: int,
        src_len: int,
        *,
        beam_size: int,
        n_best: int,
        max_len: int,
        coverage: bool,
    ) -> "_Beams":
        """Before step 0: one live prefix (BOS) per sentence, after which the decoder is in
        ``state`` (leaves ``[B, ...]``), the other K - 1 slots empty, and no finished
        hypothesis."""
        return cls(
            alive_tokens=jnp.full((batch_size, beam_size, 1 + max_len), PAD_ID, jnp.int32)
            .at[:, :, 0]
            .set(BOS_ID),
            alive_log_probs=jnp.where(
                jnp.arange(beam_size) == 0, 0.0, jnp.full((batch_size, beam_size), NEG_INF)
            ),
            alive_coverage=jnp.zeros((batch_size, beam_size, src_len)) if coverage else None,
            decoder_state=_repeat_beams(state, beam_size),
            finished_tokens=jnp.full((batch_size, n_best, max_len), PAD_ID, jnp.int32),
            finished_scores=jnp.full((batch_size, n_best), NEG_INF),
        )


def _unfinished(beams: _Beams, *, alpha: float, max_len: int) -> jax.Array:
    """``[B]`` bool: whether an alive hypothesis could still enter a sentence's N best."""
    best_alive = beams.alive_log_probs.max(axis=1) / length_penalty(max_len, alpha)
    return ~(best_alive < beams.finished_scores[:, -1])


def _pick(
    picks: jax.Array,
    i: jax.Array,
    top: jax.Array,
    index: jax.Array,
    vocab_size: int,
    alive_tokens: jax.Array,
    coverage: jax.Array | None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """Extends the alive prefixes by candidates of step ``i``.

    Args:
      picks: ``[B, K]`` positions among the 2K best candidates.
      i: the step.
      top, index: ``[B, 2K]`` the 2K best candidates' log-probs and their positions in
        the flattened ``[K, V]`` (parent beam, token) candidates.
      vocab_size: V.
      alive_tokens: ``[B, K, 1 + L]`` the alive prefixes.
      coverage: ``[B, K, S]`` each alive prefix's coverage after step i; None without
        the coverage penalty.

    Returns:
      The picked candidates' log-probs ``[B, K]``, parent beams ``[B, K]``, tokens
      ``[B, K, 1 + L]`` and coverage ``[B, K, S]`` (None without the coverage penalty).
    """
    picked = jnp.take_along_axis(index, picks, axis=1)
    parents = picked // vocab_size
    tokens, picked_coverage = _gather_beams((alive_tokens, coverage), parents)
    tokens = tokens.at[:, :, i + 1].set(picked % vocab_size)
    return jnp.take_along_axis(top, picks, axis=1), parents, tokens, picked_coverage


def _finish(
    beams: _Beams,
    i: jax.Array,
    log_prob: jax.Array,
    tokens: jax.Array,
    coverage: jax.Array | None,
    src_mask: jax.Array,
    *,
    alpha: float,
    beta: float,
    max_len: int,
) -> tuple[jax.Array, jax.Array]:
    """The N best of the finished hypotheses and of the K most probable candidates
    ``log_prob [B, K]``, ``tokens [B, K, 1 + L]``, ``coverage [B, K, S]`` of step ``i``,
    of which those that end with EOS or reach the length bound finish.

    Returns:
      ``finished_tokens [B, N, L]`` and ``finished_scores [B, N]``, best first.
    """
    finishes = (tokens[:, :, i + 1] == EOS_ID) | (i == max_len - 1)
    new_scores = jnp.where(
        finishes,
        gnmt_score(log_prob, i + 1, coverage, src_mask[:, None, :], alpha=alpha, beta=beta),
        NEG_INF,
    )
    n_best = beams.finished_scores.shape[1]
    finished_scores, best = jax.lax.top_k(
        jnp.concatenate([beams.finished_scores, new_scores], axis=1), n_best
    )
    finished_tokens = _gather_beams(
        jnp.concatenate([beams.finished_tokens, tokens[:, :, 1:]], axis=1), best
    )
    return finished_tokens, finished_scores


def _beam_step(
    step: DecodeStep,
    i: jax.Array,
    beams: _Beams,
    context: tuple[Any, jax.Array],
    *,
    alpha: float,
    beta: float,
    max_len: int,
) -> _Beams:
    """Step ``i`` of beam search over the rows of ``beams`` (B, or fewer once sentences
    finish), given ``context``: the encoder's memory and ``src_mask [B, S]``."""
    memory, src_mask = context
    rows, beam_size = beams.alive_log_probs.shape
    decoder_state, logits, step_weights = step(
        _flatten_beams(beams.decoder_state), beams.alive_tokens[:, :, i].reshape(-1), memory
    )
    log_probs = reductions.log_softmax(logits).reshape(rows, beam_size, -1)
    vocab_size = log_probs.shape[-1]
    candidates = beams.alive_log_probs[:, :, None] + log_probs  # [B, K, V]
    coverage = None
    if beta:  # the coverage after this step of each alive prefix
        coverage = beams.alive_coverage + step_weights.reshape(rows, beam_size, -1)

    # One top-k serves both selections: there are at most K EOS candidates (one per
    # beam), so the 2K best hold the K best and the K best that do not end in EOS.
    top, index = reductions.top_k(candidates.reshape(rows, -1), 2 * beam_size)
    pick = functools.partial(
        _pick,
        i=i,
        top=top,
        index=index,
        vocab_size=vocab_size,
        alive_tokens=beams.alive_tokens,
        coverage=coverage,
    )

    log_prob, _, tokens, new_coverage = pick(
        jnp.broadcast_to(jnp.arange(beam_size), (rows, beam_size))
    )
    finished_tokens, finished_scores = _finish(
        beams, i, log_prob, tokens, new_coverage, src_mask, alpha=alpha, beta=beta, max_len=max_len
    )

    not_eos_first = jnp.argsort(index % vocab_size == EOS_ID, axis=1, stable=True)
    alive_log_probs, parents, alive_tokens, alive_coverage = pick(not_eos_first[:, :beam_size])
    decoder_state = _gather_beams(_unflatten_beams(decoder_state, rows), parents)
    return _Beams(
        alive_tokens,
        alive_log_probs,
        alive_coverage,
        decoder_state,
        finished_tokens,
        finished_scores,
    )


def _check_options(beam_size: int, alpha: float, beta: float, n_best: int) -> None:
    if not 1 <= n_best <= beam_size:
        raise ValueError(
            f"beam search needs 1 <= n_best <= beam_size, got n_best={n_best}, "
            f"beam_size={beam_size}"
        )
    if beta < 0 or (isinstance(alpha, (int, float)) and alpha < 0):
        raise ValueError(
            f"beam search needs alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}"
        )


def beam_search(
    model: Seq2Seq,
    params: Any,
    src: jax.Array,
    src_mask: jax.Array,
    *,
    beam_size: int,
    alpha: float,
    beta: float,
    n_best: int,
    max_len_a: float,
    max_len_b: int,
) -> Decoded:
    """Beam search with the GNMT length and coverage penalties (see the module).

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
    _check_options(beam_size, alpha, beta, n_best)
    batch_size, src_len = src.shape
    max_len = max_decode_length(src_len, max_len_a, max_len_b)
    step, state, memory, attends = _start(model, params, src, src_mask)
    if beta and not attends:
        raise ValueError(
            f"the coverage penalty (beta={beta}) needs attention weights, and "
            "the model has none (attention 'none'): set beta to 0"
        )

    init = _Beams.initial(
        state,
        batch_size,
        src_len,
        beam_size=beam_size,
        n_best=n_best,
        max_len=max_len,
        coverage=bool(beta),
    )
    # One memory row per sentence: the decoder step attends with its K beams at once.
    beams = _while_dropping_finished(
        functools.partial(_beam_step, step, alpha=alpha, beta=beta, max_len=max_len),
        functools.partial(_unfinished, alpha=alpha, max_len=max_len),
        init,
        (memory, src_mask),
        max_len,
    )
    return Decoded(beams.finished_tokens, beams.finished_scores)
