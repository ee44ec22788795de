"""Ensembles: an ensemble of one model decodes as that model, of a model with itself
gives the same hypotheses, and of different architectures scores each step with the
mean of the members' log-probabilities (against a float64 numpy reference)."""

import numpy as np
import pytest
from toy_models import SRC_V, TGT_V, T, initialised, inputs, transformer

from s2s_jax import decoding
from s2s_jax.models.ensemble import Ensemble
from s2s_jax.models.model_config import ModelConfig
from s2s_jax.models.seq2seq import Seq2Seq

TOL = dict(rtol=1e-5, atol=1e-5)


def _rnn(seed=0):
    config = ModelConfig.create(
        SRC_V, TGT_V, embed_dim=8, hidden_size=12, attention="general", dropout=0.0
    )
    return initialised(Seq2Seq(config), seed)


def _transformer():
    return transformer(seed=1, encoder_layers=1, decoder_layers=1)


def _ensemble(*members):
    return Ensemble(tuple(m for m, _ in members)), {
        f"members_{i}": params for i, (_, params) in enumerate(members)
    }


def _decode(model, params, decoder):
    src, src_mask, _ = inputs()
    if decoder == "greedy":
        return decoding.greedy(model, params, src, src_mask, max_len_a=1.0, max_len_b=4)
    return decoding.beam_search(
        model,
        params,
        src,
        src_mask,
        beam_size=3,
        alpha=0.6,
        beta=0.0,
        n_best=2,
        max_len_a=1.0,
        max_len_b=4,
    )


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_an_ensemble_of_one_model_is_that_model(decoder):
    single = _rnn()
    alone = _decode(*single, decoder)
    together = _decode(*_ensemble(single), decoder)
    np.testing.assert_array_equal(together.tokens, alone.tokens)
    np.testing.assert_allclose(together.scores, alone.scores, **TOL)


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_an_ensemble_of_a_model_with_itself_gives_its_hypotheses(decoder):
    single = _transformer()
    alone = _decode(*single, decoder)
    doubled = _decode(*_ensemble(single, single), decoder)
    np.testing.assert_array_equal(doubled.tokens, alone.tokens)
    np.testing.assert_allclose(doubled.scores, alone.scores, **TOL)


def _log_softmax64(logits):
    x = np.asarray(logits, np.float64)
    return (
        x
        - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True))
        - x.max(-1, keepdims=True)
    )


def test_each_step_is_the_mean_of_the_members_log_probabilities():
    """An RNN and a Transformer over the same vocabularies, stepped together."""
    members = [_rnn(), _transformer()]
    model, params = _ensemble(*members)
    src, src_mask, tgt_in = inputs()
    state, memory = model.apply({"params": params}, src, src_mask, method="encode")
    singles = [m.apply({"params": p}, src, src_mask, method="encode") for m, p in members]
    for t in range(T):
        state, mean, weights = model.apply(
            {"params": params}, state, tgt_in[:, t], memory, method="decode_step"
        )
        expected, expected_weights = 0.0, 0.0
        for i, (member, member_params) in enumerate(members):
            s, m = singles[i]
            s, logits, w = member.apply(
                {"params": member_params}, s, tgt_in[:, t], m, method="decode_step"
            )
            singles[i] = (s, m)
            expected = expected + _log_softmax64(logits) / len(members)
            expected_weights = expected_weights + np.asarray(w, np.float64) / len(members)
        # What decoding scores with: the normalised mean of the log-probabilities.
        np.testing.assert_allclose(_log_softmax64(mean), _log_softmax64(expected), **TOL)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_the_teacher_forced_pass_is_the_mean_of_the_members():
    members = [_rnn(), _transformer()]
    model, params = _ensemble(*members)
    src, src_mask, tgt_in = inputs()
    mean, weights = model.apply({"params": params}, src, src_mask, tgt_in)
    outputs = [m.apply({"params": p}, src, src_mask, tgt_in) for m, p in members]
    expected = sum(_log_softmax64(logits) for logits, _ in outputs) / 2
    np.testing.assert_allclose(_log_softmax64(mean), _log_softmax64(expected), **TOL)
    np.testing.assert_allclose(weights, (outputs[0][1] + outputs[1][1]) / 2, rtol=1e-5, atol=1e-6)


def test_members_without_attention_are_left_out_of_the_weights():
    plain = Seq2Seq(ModelConfig.create(SRC_V, TGT_V, embed_dim=8, hidden_size=12, attention="none"))
    members = [initialised(plain, 2), _rnn()]
    model, params = _ensemble(*members)
    src, src_mask, tgt_in = inputs()
    _, weights = model.apply({"params": params}, src, src_mask, tgt_in)
    _, expected = members[1][0].apply({"params": members[1][1]}, src, src_mask, tgt_in)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    only_plain, only_plain_params = _ensemble(members[0])
    assert only_plain.apply({"params": only_plain_params}, src, src_mask, tgt_in)[1] is None
