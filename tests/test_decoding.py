"""Decoders: beam search against exhaustive search, greedy, sampling, penalties, EOS."""

import functools
import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from s2s_jax import decoding
from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID
from s2s_jax.decoding.search import MAX_HALVINGS, _while_dropping_finished
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq

# What jax.monitoring reports once per XLA compilation, with the function's name.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
SRC_V, TGT_V = 10, 6  # target: the 4 specials and 2 tokens
TOL = dict(rtol=1e-5, atol=1e-5)


def _sources(lengths, src_len, seed=0):
    """``src [B, S]`` (PAD after each length) and ``src_mask [B, S]``."""
    rng = np.random.default_rng(seed)
    mask = np.arange(src_len)[None, :] < np.array(lengths)[:, None]
    src = np.where(mask, rng.integers(4, SRC_V, mask.shape), PAD_ID)
    return jnp.asarray(src, jnp.int32), jnp.asarray(mask)


@functools.cache
def _model(seed, attention="general", eos_bias=0.0, **overrides):
    """A tiny random model, its parameters scaled up so that the output distribution is
    far from uniform, and ``eos_bias`` added to the EOS logit."""
    fields = dict(bidirectional=False, bridge="copy", dropout=0.0, **overrides)
    model = Seq2Seq(
        ModelConfig.create(
            SRC_V, TGT_V, embed_dim=8, hidden_size=8, attention=attention, attention_dim=8, **fields
        )
    )
    src, src_mask = _sources([2], 2)
    params = model.init(jax.random.key(seed), src, src_mask, src)["params"]
    params = jax.tree.map(lambda p: 3.0 * p, params)
    output = params["decoder"]["output"]
    output["bias"] = output["bias"].at[EOS_ID].add(eos_bias)
    return model, params


def _jit(decoder, model, **options):
    return jax.jit(functools.partial(decoder, model, **options))


def _all_outputs(max_len):
    """Every possible output: n < max_len tokens then EOS, or max_len tokens without EOS
    (what beam search returns when it reaches the length bound).

    Returns ``tokens [M, max_len]`` (PAD after EOS) and ``lengths [M]`` (EOS counted).
    """
    others = [t for t in range(TGT_V) if t != EOS_ID]
    outputs = [
        prefix + (EOS_ID,) for n in range(max_len) for prefix in itertools.product(others, repeat=n)
    ]
    outputs += itertools.product(others, repeat=max_len)
    tokens = np.full((len(outputs), max_len), PAD_ID)
    for row, output in enumerate(outputs):
        tokens[row, : len(output)] = output
    return tokens, np.array([len(output) for output in outputs])


def _reference_scores(model, params, src, src_mask, tokens, lengths, alpha, beta):
    """GNMT scores ``[B, M]`` of the outputs ``tokens [M, L]`` of each sentence of
    ``src [B, S]``, from teacher-forced log-probabilities and attention, in float64."""
    batch_size, (count, max_len) = len(src), tokens.shape
    tokens, lengths = np.tile(tokens, (batch_size, 1)), np.tile(lengths, batch_size)
    tgt_in = np.concatenate([np.full((len(tokens), 1), BOS_ID), tokens[:, :-1]], axis=1)
    logits, weights = model.apply(
        {"params": params},
        jnp.repeat(src, count, axis=0),
        jnp.repeat(src_mask, count, axis=0),
        jnp.asarray(tgt_in),
    )
    logits = np.asarray(logits, np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    steps = np.arange(max_len)[None, :] < lengths[:, None]
    token_log_probs = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    scores = np.where(steps, token_log_probs, 0.0).sum(axis=1) / ((5 + lengths) / 6) ** alpha
    if beta:
        coverage = np.where(steps[..., None], np.asarray(weights, np.float64), 0.0).sum(axis=1)
        coverage = np.where(np.repeat(src_mask, count, axis=0), np.minimum(coverage, 1.0), 1.0)
        scores += beta * np.log(coverage).sum(axis=1)
    return scores.reshape(batch_size, count)


# Every candidate stays in the beam: V * (V - 1) ** (L - 1) at the last step, L = 3.
EXHAUSTIVE_LEN, EXHAUSTIVE_BEAM, N_BEST = 3, TGT_V * (TGT_V - 1) ** 2, 5


@pytest.mark.parametrize(
    "attention, alpha, beta",
    [
        ("general", 0.0, 0.0),
        ("general", 0.6, 0.0),
        ("none", 1.0, 0.0),
        ("bahdanau", 0.6, 0.4),
        ("general", 0.0, 1.0),
    ],
)
def test_wide_beam_equals_exhaustive_search(attention, alpha, beta):
    model = _model(0, attention, eos_bias=1.0)[0]
    # As evaluation compiles it: alpha is traced (beta and the sizes are compiled in).
    decode = decoding.compile_decoder(
        model,
        types.SimpleNamespace(
            decoder="beam",
            beam_size=EXHAUSTIVE_BEAM,
            alpha=alpha,
            beta=beta,
            n_best=N_BEST,
            max_len_a=0.0,
            max_len_b=EXHAUSTIVE_LEN,
        ),
    )
    outputs, lengths = _all_outputs(EXHAUSTIVE_LEN)
    src, src_mask = _sources([4, 2], 4)
    for seed in range(3):
        params = _model(seed, attention, eos_bias=1.0)[1]
        decoded = decode(params, src, src_mask)
        references = _reference_scores(model, params, src, src_mask, outputs, lengths, alpha, beta)
        for row, scores in enumerate(references):
            order = np.argsort(-scores, kind="stable")[: N_BEST + 1]
            assert np.all(-np.diff(scores[order]) > 1e-4), "near tie: pick another seed"
            np.testing.assert_array_equal(decoded.tokens[row], outputs[order[:N_BEST]])
            np.testing.assert_allclose(decoded.scores[row], scores[order[:N_BEST]], **TOL)


def test_beam_of_one_equals_greedy():
    src, src_mask = _sources([5, 3, 1, 4], 5)
    options = dict(max_len_a=1.0, max_len_b=2)
    model = _model(0, input_feeding=True, eos_bias=0.0)[0]
    greedy = _jit(decoding.greedy, model, **options)
    beam = _jit(decoding.beam_search, model, beam_size=1, alpha=0.0, beta=0.0, n_best=1, **options)
    ends = set()
    for seed, eos_bias in itertools.product(range(3), (0.0, 1.5)):
        params = _model(seed, input_feeding=True, eos_bias=eos_bias)[1]
        expected, decoded = greedy(params, src, src_mask), beam(params, src, src_mask)
        np.testing.assert_array_equal(decoded.tokens, expected.tokens)
        np.testing.assert_allclose(decoded.scores, expected.scores, **TOL)
        ends.update((np.asarray(expected.tokens)[:, 0] == EOS_ID).any(axis=1).tolist())
    assert ends == {True, False}  # sentences that reach EOS and sentences cut off


def test_beam_search_is_independent_of_batch_composition():
    model, params = _model(1, "bahdanau", eos_bias=1.0)
    decode = _jit(
        decoding.beam_search,
        model,
        beam_size=4,
        alpha=0.6,
        beta=0.2,
        n_best=3,
        max_len_a=0.0,
        max_len_b=6,
    )
    lengths = [5, 3, 1, 4]
    src, src_mask = _sources(lengths, 5)
    together = decode(params, src, src_mask)
    # Reversed, with a fifth sentence and two more padding columns.
    wide, wide_mask = _sources(lengths[::-1] + [2], 7)
    wide = wide.at[:4, :5].set(src[::-1])
    reversed_wider = decode(params, wide, wide_mask)
    for row in range(len(lengths)):
        alone = decode(params, src[row : row + 1], src_mask[row : row + 1])
        for other, other_row in ((together, row), (reversed_wider, len(lengths) - 1 - row)):
            np.testing.assert_array_equal(other.tokens[other_row], alone.tokens[0])
            np.testing.assert_allclose(other.scores[other_row], alone.scores[0], **TOL)


class _MarkovChain(nn.Module):
    """A stand-in model: next-token probabilities ``probs[previous token]``, whatever
    the source; no attention. The decoder state counts steps."""

    probs: tuple[tuple[float, ...], ...]  # [V, V]

    def encode(self, src, src_mask):
        return jnp.zeros(src.shape[:1]), None

    def decode_step(self, state, token, memory):
        return state + 1, jnp.log(jnp.asarray(self.probs))[token], None


def _chain(transitions):
    """A _MarkovChain from ``{previous token: {token: probability}}`` (0 elsewhere)."""
    probs = np.zeros((TGT_V, TGT_V))
    for previous, row in transitions.items():
        for token, p in row.items():
            probs[previous, token] = p
    return _MarkovChain(tuple(map(tuple, probs)))


# After BOS: EOS 0.6, A = 4: 0.4; after A: A 0.95, EOS 0.05. Alone, EOS is the best output,
# but with a strong length penalty "A A A A" (cut off by the bound) beats it.
CHAIN = {BOS_ID: {EOS_ID: 0.6, 4: 0.4}, 4: {4: 0.95, EOS_ID: 0.05}}


@pytest.mark.parametrize(
    "alpha, expected",
    [
        (0.0, ([EOS_ID, PAD_ID, PAD_ID, PAD_ID], np.log(0.6))),
        (2.0, ([4, 4, 4, 4], np.log(0.4 * 0.95**3) / ((5 + 4) / 6) ** 2.0)),
    ],
)
def test_beam_search_on_a_markov_chain_by_hand(alpha, expected):
    """With alpha = 2, "EOS" (log 0.6 / lp(1) = -0.51) is finished at step 1, and the
    search must go on: "A" (log 0.4) divided by the largest length penalty,
    lp(4) = 2.25, could still beat it, and "A A A A" does (-0.48)."""
    src, src_mask = _sources([2], 2)
    decoded = decoding.beam_search(
        _chain(CHAIN),
        {},
        src,
        src_mask,
        beam_size=2,
        alpha=alpha,
        beta=0.0,
        n_best=1,
        max_len_a=0.0,
        max_len_b=4,
    )
    tokens, score = expected
    np.testing.assert_array_equal(decoded.tokens[0, 0], tokens)
    np.testing.assert_allclose(decoded.scores[0, 0], score, **TOL)


def test_length_and_coverage_penalties_by_hand():
    np.testing.assert_allclose(decoding.length_penalty(3, 0.6), (8 / 6) ** 0.6, rtol=1e-6)
    np.testing.assert_allclose(decoding.length_penalty(3, 0.0), 1.0)
    # Two target steps over three source positions, the last one padding: coverage is
    # (1.1, 0.4), capped at 1 -> log 1 + log 0.4.
    coverage = jnp.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]]).sum(axis=0)
    mask = jnp.array([True, True, False])
    np.testing.assert_allclose(
        decoding.coverage_penalty(coverage, mask, 0.2), 0.2 * np.log(0.4), rtol=1e-6
    )
    np.testing.assert_allclose(
        decoding.gnmt_score(jnp.float32(-2.0), 3, coverage, mask, alpha=0.6, beta=0.2),
        -2.0 / (8 / 6) ** 0.6 + 0.2 * np.log(0.4),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        decoding.gnmt_score(jnp.float32(-2.0), 3, None, mask, alpha=0.6, beta=0.0),
        -2.0 / (8 / 6) ** 0.6,
        rtol=1e-6,
    )


def test_finished_hypotheses_end_at_eos_and_the_n_best_are_distinct_and_sorted():
    model, params = _model(2, "general", eos_bias=2.0)
    src, src_mask = _sources([5, 3, 1, 4], 5)
    max_len = 8
    decoded = jax.device_get(
        decoding.beam_search(
            model,
            params,
            src,
            src_mask,
            beam_size=4,
            alpha=0.6,
            beta=0.2,
            n_best=4,
            max_len_a=0.0,
            max_len_b=max_len,
        )
    )
    finished = decoded.tokens == EOS_ID
    assert np.all(finished.sum(axis=-1) <= 1)
    assert finished[:, :, :-1].any()  # some hypotheses finish before the bound
    after_eos = np.cumsum(finished, axis=-1) - finished > 0
    assert np.all(decoded.tokens[after_eos] == PAD_ID)
    for row in range(len(src)):
        assert len({tuple(hypothesis) for hypothesis in decoded.tokens[row]}) == 4
    assert np.all(np.isfinite(decoded.scores))
    assert np.all(np.diff(decoded.scores, axis=1) <= 0)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention="general"),
        dict(attention="bahdanau"),
        dict(attention="general", input_feeding=True),
    ],
)
def test_attention_of_a_hypothesis_is_what_decoding_it_attended(overrides):
    """The heatmap of greedy's hypotheses, by one teacher-forced pass, against the weights
    ``decode_step`` returns when it is fed the same tokens one step at a time."""
    model, params = _model(0, eos_bias=1.0, **overrides)
    src, src_mask = _sources([5, 3, 1, 4], 5)
    tokens = decoding.greedy(model, params, src, src_mask, max_len_a=1.0, max_len_b=2).tokens
    tokens = tokens[:, 0]
    heatmap = decoding.attention_of(model, params, src, src_mask, tokens)
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method="encode")
    token = jnp.full(len(src), BOS_ID)
    for j in range(tokens.shape[1]):
        state, _, weights = model.apply(variables, state, token, memory, method="decode_step")
        np.testing.assert_allclose(heatmap[:, j], weights, **TOL)
        token = tokens[:, j]
    without_attention, its_params = _model(0, "none")
    assert decoding.attention_of(without_attention, its_params, src, src_mask, tokens) is None


def test_the_loop_drops_finished_sentences_and_keeps_their_results():
    """Sentence r needs ``needs[r]`` steps; each step counts itself and writes the batch
    size it ran in. Counts must be exact, and the last sentences must end in a batch of
    B / 16 rows."""
    needs = np.random.default_rng(0).permutation(np.arange(1, 33) * 3)  # B = 32
    rows = (jnp.zeros(32, jnp.int32), jnp.asarray(needs), jnp.zeros(32, jnp.int32))

    def step(i, rows, context):
        count, need, _ = rows
        return count + (count < need), need, jnp.full(len(count), len(count)) + context

    count, _, size = jax.jit(
        lambda rows: _while_dropping_finished(
            step, lambda rows: rows[0] < rows[1], rows, jnp.zeros(32, jnp.int32), max_len=1000
        )
    )(rows)
    np.testing.assert_array_equal(count, needs)
    assert size[np.argmax(needs)] == 32 >> MAX_HALVINGS
    assert size[np.argmin(needs)] == 32


def test_invalid_beam_options():
    src, src_mask = _sources([2], 2)
    model, params = _model(0, "none")
    options = dict(alpha=0.0, max_len_a=0.0, max_len_b=2)
    with pytest.raises(ValueError, match="coverage penalty"):
        decoding.beam_search(
            model, params, src, src_mask, beam_size=2, beta=0.5, n_best=1, **options
        )
    with pytest.raises(ValueError, match="n_best"):
        decoding.beam_search(
            model, params, src, src_mask, beam_size=2, beta=0.0, n_best=3, **options
        )


SAMPLE_OPTIONS = dict(max_len_a=1.0, max_len_b=2)


def test_sampling_is_a_function_of_the_rng():
    model, params = _model(0)
    src, src_mask = _sources([5, 3, 1, 4], 5)
    decode = _jit(decoding.sample, model, temperature=1.0, top_k=0, **SAMPLE_OPTIONS)
    first = decode(params, src, src_mask, jax.random.key(0))
    again = decode(params, src, src_mask, jax.random.key(0))
    np.testing.assert_array_equal(first.tokens, again.tokens)
    np.testing.assert_array_equal(first.scores, again.scores)
    other = decode(params, src, src_mask, jax.random.key(1))
    assert not np.array_equal(first.tokens, other.tokens)


@pytest.mark.parametrize("temperature, top_k", [(1.0, 1), (1e-6, 0)])
def test_sampling_at_top_1_or_near_zero_temperature_is_greedy(temperature, top_k):
    src, src_mask = _sources([5, 3, 1, 4], 5)
    model = _model(0)[0]
    greedy = _jit(decoding.greedy, model, **SAMPLE_OPTIONS)
    decode = _jit(decoding.sample, model, temperature=temperature, top_k=top_k, **SAMPLE_OPTIONS)
    for seed in range(3):
        params = _model(seed)[1]
        expected = greedy(params, src, src_mask)
        decoded = decode(params, src, src_mask, jax.random.key(seed))
        np.testing.assert_array_equal(decoded.tokens, expected.tokens)
        np.testing.assert_allclose(decoded.scores, expected.scores, **TOL)


def test_sampling_frequencies_follow_the_tempered_top_k_distribution():
    """First tokens of 1024 samples from BOS -> {EOS: 0.7, A: 0.2, B: 0.1} at temperature
    2 among the top 2: p(EOS) = 0.7 ** (1/2) / (0.7 ** (1/2) + 0.2 ** (1/2)), p(A) the rest."""
    chain = _chain({BOS_ID: {EOS_ID: 0.7, 4: 0.2, 5: 0.1}})
    src, src_mask = _sources([2] * 1024, 2)
    decoded = decoding.sample(
        chain,
        {},
        src,
        src_mask,
        jax.random.key(0),
        temperature=2.0,
        top_k=2,
        max_len_a=0.0,
        max_len_b=1,
    )
    first = np.asarray(decoded.tokens[:, 0, 0])
    eos = 0.7**0.5 / (0.7**0.5 + 0.2**0.5)
    np.testing.assert_allclose(
        [np.mean(first == EOS_ID), np.mean(first == 4)], [eos, 1 - eos], atol=0.05
    )


def test_sampling_draws_each_step_afresh():
    """On a chain that picks A or B with probability 1/2 whatever came before, about half
    the steps change token, and every sample has probability 2 ** -L."""
    coin = {4: 0.5, 5: 0.5}
    src, src_mask = _sources([2] * 64, 2)
    chain = _chain({BOS_ID: coin, 4: coin, 5: coin})
    decoded = decoding.sample(
        chain,
        {},
        src,
        src_mask,
        jax.random.key(0),
        temperature=1.0,
        top_k=0,
        max_len_a=0.0,
        max_len_b=8,
    )
    tokens = np.asarray(decoded.tokens[:, 0])
    assert np.all((tokens == 4) | (tokens == 5))
    np.testing.assert_allclose(np.mean(tokens[:, 1:] != tokens[:, :-1]), 0.5, atol=0.1)
    np.testing.assert_allclose(decoded.scores, 8 * np.log(0.5), **TOL)


def test_compile_decoder_picks_the_configured_decoder():
    model, params = _model(0)
    src, src_mask = _sources([5, 3], 5)
    eval_config = types.SimpleNamespace(
        max_len_a=1.0,
        max_len_b=2,
        beam_size=3,
        alpha=0.6,
        beta=0.2,
        n_best=2,
        temperature=1.0,
        top_k=0,
        sample_seed=0,
    )
    shapes = {}
    for name in decoding.DECODERS:
        eval_config.decoder = name
        shapes[name] = decoding.compile_decoder(model, eval_config)(
            params, src, src_mask
        ).tokens.shape
    assert shapes == {"greedy": (2, 1, 7), "beam": (2, 2, 7), "sample": (2, 1, 7)}
    eval_config.decoder = "sample"

    def three_calls():
        decode = decoding.compile_decoder(model, eval_config)
        return [np.asarray(decode(params, src, src_mask).tokens) for _ in range(3)]

    first, second = three_calls(), three_calls()
    np.testing.assert_array_equal(first, second)  # the same seed, the same samples
    assert not np.array_equal(first[0], first[1])  # a fresh key per call
    eval_config.decoder = "nucleus"
    with pytest.raises(ValueError, match="unknown decoder"):
        decoding.compile_decoder(model, eval_config)


def test_equal_settings_on_equal_models_share_one_compilation():
    """Two models of equal configs and two eval configs that differ only in alpha
    (traced) compile beam search once: ``jax.jit``'s cache, keyed on the model by value
    and the compiled-in options, is shared by every ``compile_decoder`` call. Another
    beam size compiles anew."""
    compiled = []

    def count(event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT and "beam_search" in kwargs.get("fun_name", ""):
            compiled.append(kwargs["fun_name"])

    def eval_config(beam_size, alpha):
        return types.SimpleNamespace(
            decoder="beam",
            beam_size=beam_size,
            alpha=alpha,
            beta=0.0,
            n_best=1,
            max_len_a=0.5,
            max_len_b=3,
        )

    def model():  # a fresh module each time, equal to the others (and to no other test's)
        return Seq2Seq(
            ModelConfig.create(
                SRC_V, TGT_V, embed_dim=8, hidden_size=12, attention="general", attention_dim=8
            )
        )

    assert model() is not model() and model() == model() and hash(model()) == hash(model())
    src, src_mask = _sources([3, 2], 3)
    params = model().init(jax.random.key(0), src, src_mask, src)["params"]
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for alpha in (0.0, 0.6):
            jax.block_until_ready(
                decoding.compile_decoder(model(), eval_config(3, alpha))(params, src, src_mask)
            )
        assert len(compiled) == 1
        decoding.compile_decoder(model(), eval_config(2, 0.6))(params, src, src_mask)
        assert len(compiled) == 2
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
