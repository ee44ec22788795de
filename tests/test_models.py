"""Seq2Seq as a whole: the decoder's paths agree, masking, reversal, scheduled sampling."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax import decoding
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq

B, S, T, SRC_V, TGT_V = 3, 7, 5, 20, 15
LENGTHS = (7, 4, 1)
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 arithmetic in different orders


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    src_mask = np.arange(S)[None, :] < np.array(LENGTHS)[:, None]
    src = np.where(src_mask, rng.integers(4, SRC_V, (B, S)), 0)
    tgt_in = rng.integers(4, TGT_V, (B, T))
    return jnp.asarray(src, jnp.int32), jnp.asarray(src_mask), jnp.asarray(tgt_in, jnp.int32)


def _model(**overrides):
    fields = dict(
        cell="lstm",
        embed_dim=8,
        hidden_size=16,
        attention="general",
        attention_dim=12,
        num_heads=2,
        bidirectional=True,
        bridge="dense",
        encoder_layers=2,
        decoder_layers=2,
    )
    fields.update(overrides)
    model = Seq2Seq(ModelConfig.create(SRC_V, TGT_V, dropout=0.0, **fields))
    src, src_mask, tgt_in = _inputs()
    params = model.init(jax.random.key(0), src, src_mask, tgt_in)["params"]
    return model, params


def _stepped_logits(model, params, src, src_mask, tokens):
    """Runs Decoder.step one token at a time: logits [B, T, V], weights [B, T, S]."""
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method=Seq2Seq.encode)
    logits, weights = [], []
    for t in range(tokens.shape[1]):
        state, step_logits, step_weights = model.apply(
            variables, state, tokens[:, t], memory, method=Seq2Seq.decode_step
        )
        logits.append(step_logits)
        weights.append(step_weights)
    stacked = None if weights[0] is None else jnp.stack(weights, axis=1)
    return jnp.stack(logits, axis=1), stacked


CONFIGS = [
    dict(attention="none"),
    dict(attention="none", bidirectional=False, bridge="copy"),
    dict(attention="bahdanau"),
    dict(attention="dot", bidirectional=False, bridge="copy"),
    dict(attention="general"),
    dict(attention="general", input_feeding=True),
    dict(attention="concat", residual=True),
    dict(attention="multihead", tie_embeddings=True),
    dict(attention="general", cell="gru", bridge="zeros"),
    dict(attention="bahdanau", cell="rnn", input_feeding=True),
    dict(attention="general", cell="ln_lstm", input_feeding=True),
    dict(attention="none", cell="ln_lstm", bidirectional=False, bridge="copy"),
]


@pytest.mark.parametrize("overrides", CONFIGS, ids=str)
def test_teacher_forced_path_equals_stepping(overrides):
    model, params = _model(**overrides)
    src, src_mask, tgt_in = _inputs()
    full, full_weights = model.apply({"params": params}, src, src_mask, tgt_in)
    stepped, stepped_weights = _stepped_logits(model, params, src, src_mask, tgt_in)
    np.testing.assert_allclose(full, stepped, **TOL)
    if overrides["attention"] == "none":
        assert full_weights is None and stepped_weights is None
    else:
        np.testing.assert_allclose(full_weights, stepped_weights, **TOL)


@pytest.mark.parametrize(
    "overrides",
    [c for c in CONFIGS if c["attention"] != "none"]
    + [dict(attention="local_p", input_feeding=True)],
    ids=str,
)
def test_step_with_memory_shared_by_beams_equals_a_copy_per_beam(overrides):
    """Beam search passes one memory row per sentence for its G consecutive beams."""
    model, params = _model(**overrides)
    variables = {"params": params}
    src, src_mask, _ = _inputs()
    group = 4
    state, memory = model.apply(variables, src, src_mask, method=Seq2Seq.encode)
    repeat = functools.partial(jnp.repeat, repeats=group, axis=0)
    state = jax.tree.map(repeat, state)  # the beams of a sentence start from its state
    tokens = jnp.arange(B * group, dtype=jnp.int32) % TGT_V
    for t in range(2):  # the second step starts from distinct beam states
        shared = model.apply(variables, state, tokens + t, memory, method=Seq2Seq.decode_step)
        copied = model.apply(
            variables, state, tokens + t, jax.tree.map(repeat, memory), method=Seq2Seq.decode_step
        )
        for got, want in zip(jax.tree.leaves(shared), jax.tree.leaves(copied)):
            np.testing.assert_allclose(got, want, **TOL)
        state = shared[0]


@pytest.mark.parametrize("overrides", CONFIGS[::3], ids=str)
def test_teacher_forcing_ratio_one_equals_teacher_forcing(overrides):
    model, params = _model(**overrides)
    src, src_mask, tgt_in = _inputs()
    forced = jnp.ones(tgt_in.shape, bool)
    expected, _ = model.apply({"params": params}, src, src_mask, tgt_in)
    logits, _ = model.apply({"params": params}, src, src_mask, tgt_in, forced=forced)
    np.testing.assert_allclose(logits, expected, **TOL)


def test_teacher_forcing_ratio_zero_equals_free_running():
    """Only the first input (BOS) is gold; the rest are the model's own argmax, which is
    what greedy decoding feeds, so the logits must match greedy's step by step."""
    model, params = _model(attention="bahdanau")
    src, src_mask, _ = _inputs()
    bos = jnp.full((B, T), 2, jnp.int32)
    forced = jnp.zeros((B, T), bool).at[:, 0].set(True)
    logits, _ = model.apply({"params": params}, src, src_mask, bos, forced=forced)
    predicted = jnp.argmax(logits, axis=-1)
    greedy = decoding.greedy(model, params, src, src_mask, max_len_a=0.0, max_len_b=T)
    # Greedy pads after EOS; compare up to each row's first EOS.
    for row in range(B):
        tokens = np.asarray(greedy.tokens[row, 0])
        end = int(np.argmax(tokens == 3)) + 1 if (tokens == 3).any() else T
        np.testing.assert_array_equal(predicted[row, :end], tokens[:end])
    replay, _ = _stepped_logits(
        model, params, src, src_mask, jnp.concatenate([bos[:, :1], predicted[:, :-1]], axis=1)
    )
    np.testing.assert_allclose(logits, replay, **TOL)


def test_scheduled_sampling_mixes_gold_and_own_tokens():
    model, params = _model(attention="general")
    src, src_mask, tgt_in = _inputs()
    half = jnp.asarray(np.random.default_rng(1).random((B, T)) < 0.5).at[:, 0].set(True)
    gold, _ = model.apply({"params": params}, src, src_mask, tgt_in)
    mixed, _ = model.apply({"params": params}, src, src_mask, tgt_in, forced=half)
    own = jnp.argmax(mixed, axis=-1)
    inputs = jnp.where(half, tgt_in, jnp.concatenate([tgt_in[:, :1], own[:, :-1]], axis=1))
    replay, _ = _stepped_logits(model, params, src, src_mask, inputs)
    np.testing.assert_allclose(mixed, replay, **TOL)
    assert not np.allclose(mixed, gold)


def test_sampled_inputs_depend_on_sample_rng():
    model, params = _model(attention="general")
    src, src_mask, tgt_in = _inputs()
    forced = jnp.zeros(tgt_in.shape, bool).at[:, 0].set(True)
    run = lambda seed: model.apply(  # noqa: E731
        {"params": params},
        src,
        src_mask,
        tgt_in,
        forced=forced,
        sample=True,
        rngs={"sample": jax.random.key(seed)},
    )[0]
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.allclose(run(0), run(1))


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(reverse_source=True, bidirectional=False, attention="bahdanau")],
    ids=str,
)
def test_padded_batch_equals_each_sentence_alone(overrides):
    model, params = _model(**overrides)
    src, src_mask, tgt_in = _inputs()
    batch_logits, batch_weights = model.apply({"params": params}, src, src_mask, tgt_in)
    for row, length in enumerate(LENGTHS):
        alone = (
            src[row : row + 1, :length],
            src_mask[row : row + 1, :length],
            tgt_in[row : row + 1],
        )
        logits, weights = model.apply({"params": params}, *alone)
        np.testing.assert_allclose(batch_logits[row], logits[0], **TOL)
        np.testing.assert_allclose(batch_weights[row, :, :length], weights[0], **TOL)
        assert not np.any(batch_weights[row, :, length:])


def test_reverse_source_feeds_tokens_last_to_first():
    """With reversal on, the model's output equals the model without reversal fed
    with each sentence reversed by hand (and attention mapped back)."""
    overrides = dict(bidirectional=False, attention="bahdanau")
    model, params = _model(reverse_source=True, **overrides)
    plain = Seq2Seq(dataclasses.replace(model.config, reverse_source=False))
    src, src_mask, tgt_in = _inputs()
    logits, weights = model.apply({"params": params}, src, src_mask, tgt_in)
    reversed_src = np.array(src)
    for row, length in enumerate(LENGTHS):
        reversed_src[row, :length] = reversed_src[row, :length][::-1]
    expected, expected_weights = plain.apply(
        {"params": params}, jnp.asarray(reversed_src), src_mask, tgt_in
    )
    np.testing.assert_allclose(logits, expected, **TOL)
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(
            weights[row, :, :length], expected_weights[row, :, :length][:, ::-1], **TOL
        )


@pytest.mark.parametrize("bridge", ["copy", "dense", "zeros"])
def test_bridges(bridge):
    model, params = _model(bridge=bridge, bidirectional=False, attention="none")
    src, src_mask, _ = _inputs()
    variables = {"params": params}
    state, _ = model.apply(variables, src, src_mask, method=Seq2Seq.encode)
    finals, _ = model.apply(variables, src, src_mask, False, method=lambda m, *a: m.encoder(*a))
    assert len(state.layers) == 2 and all(len(c) == 2 for c in state.layers)
    if bridge == "copy":
        for got, want in zip(jax.tree.leaves(state.layers), jax.tree.leaves(finals)):
            np.testing.assert_array_equal(got, want)
    elif bridge == "zeros":
        assert all(not np.any(leaf) for leaf in jax.tree.leaves(state.layers))
    else:
        assert "bridge" in params["decoder"]
        assert all(np.all(np.abs(leaf) < 1) for leaf in jax.tree.leaves(state.layers))


def test_greedy_is_independent_of_batch_composition():
    model, params = _model(attention="bahdanau")
    src, src_mask, _ = _inputs()
    decode = jax.jit(functools.partial(decoding.greedy, model, max_len_a=1.0, max_len_b=2))
    together = decode(params, src, src_mask)
    for row in range(B):
        alone = decode(params, src[row : row + 1], src_mask[row : row + 1])
        np.testing.assert_array_equal(together.tokens[row], alone.tokens[0])
