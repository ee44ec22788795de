"""The Transformer baseline: its decode step agrees with the teacher-forced pass,
padding is ignored, decoding runs on it, and the registry chooses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_models import TGT_V, B, S, T, inputs
from toy_models import transformer as toy_transformer

from s2s_jax import decoding, registries
from s2s_jax.config import ConfigError, base_config
from s2s_jax.data.vocab import BOS_ID
from s2s_jax.models import transformer
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.models.transformer import Transformer

TOL = dict(rtol=1e-5, atol=1e-5)  # float32 arithmetic in different orders


def _stepped(model, params, src, src_mask, tokens):
    """encode + decode_step one token at a time: logits [B, T, V], weights [B, T, S]."""
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method="encode")
    logits, weights = [], []
    for t in range(tokens.shape[1]):
        state, step_logits, step_weights = model.apply(
            variables, state, tokens[:, t], memory, method="decode_step"
        )
        logits.append(step_logits)
        weights.append(step_weights)
    return jnp.stack(logits, axis=1), jnp.stack(weights, axis=1)


@pytest.mark.parametrize("tie", [False, True])
def test_decode_steps_match_teacher_forcing(tie):
    model, params = toy_transformer(tie_embeddings=tie)
    src, src_mask, tgt_in = inputs()
    logits, weights = model.apply({"params": params}, src, src_mask, tgt_in)
    assert logits.shape == (B, T, TGT_V) and weights.shape == (B, T, S)
    stepped_logits, stepped_weights = _stepped(model, params, src, src_mask, tgt_in)
    np.testing.assert_allclose(stepped_logits, logits, **TOL)
    np.testing.assert_allclose(stepped_weights, weights, **TOL)
    # Weights are a distribution over the real source tokens, zero on padding.
    np.testing.assert_allclose(weights.sum(-1), 1.0, **TOL)
    assert not np.any(np.asarray(weights)[~np.asarray(src_mask)[:, None, :].repeat(T, 1)])


def test_decode_step_with_beams_sharing_memory():
    """G consecutive state rows over one memory row (beam search) give each row's
    own result."""
    model, params = toy_transformer()
    src, src_mask, tgt_in = inputs()
    variables = {"params": params}
    state, memory = model.apply(variables, src, src_mask, method="encode")
    beams = jax.tree.map(lambda x: jnp.repeat(x, 2, axis=0), state)
    _, logits, weights = model.apply(
        variables, beams, jnp.repeat(tgt_in[:, 0], 2), memory, method="decode_step"
    )
    _, one_logits, one_weights = model.apply(
        variables, state, tgt_in[:, 0], memory, method="decode_step"
    )
    np.testing.assert_allclose(logits, jnp.repeat(one_logits, 2, axis=0), **TOL)
    np.testing.assert_allclose(weights, jnp.repeat(one_weights, 2, axis=0), **TOL)


def test_state_leaves_have_batch_first():
    model, params = toy_transformer()
    src, src_mask, _ = inputs()
    state, memory = model.apply({"params": params}, src, src_mask, method="encode")
    for leaf in jax.tree.leaves((state, memory)):
        assert leaf.shape[0] == B


@pytest.mark.parametrize("tie", [False, True])
def test_pre_logits_times_kernel_are_the_logits(tie):
    model, params = toy_transformer(tie_embeddings=tie)
    src, src_mask, tgt_in = inputs()
    logits, _ = model.apply({"params": params}, src, src_mask, tgt_in)
    features, kernel, bias = model.apply(
        {"params": params}, src, src_mask, tgt_in, method="teacher_forced_pre_logits"
    )
    assert features.shape == (B, T, 16) and kernel.shape == (16, TGT_V)
    assert (bias is None) == tie
    np.testing.assert_allclose(features @ kernel + (0 if bias is None else bias), logits, **TOL)


def test_source_padding_is_ignored():
    model, params = toy_transformer()
    src, src_mask, tgt_in = inputs()
    other_src = jnp.where(src_mask, src, 7)  # different tokens under the padding
    for method in ("__call__", "teacher_forced_pre_logits"):
        a = model.apply({"params": params}, src, src_mask, tgt_in, method=method)
        b = model.apply({"params": params}, other_src, src_mask, tgt_in, method=method)
        np.testing.assert_allclose(a[0], b[0], **TOL)
    np.testing.assert_allclose(
        _stepped(model, params, src, src_mask, tgt_in)[0],
        _stepped(model, params, other_src, src_mask, tgt_in)[0],
        **TOL,
    )


def test_greedy_decoding_runs_on_it():
    model, params = toy_transformer()
    src, src_mask, tgt_in = inputs()
    decoded = decoding.greedy(model, params, src, src_mask, max_len_a=1.0, max_len_b=3)
    assert decoded.tokens.shape == (B, 1, S + 3)
    bos = jnp.full((B, 1), BOS_ID, jnp.int32)
    logits, _ = model.apply({"params": params}, src, src_mask, bos)
    np.testing.assert_array_equal(decoded.tokens[:, 0, 0], jnp.argmax(logits[:, 0], -1))
    beams = decoding.beam_search(
        model,
        params,
        src,
        src_mask,
        beam_size=3,
        alpha=0.6,
        beta=0.2,
        n_best=2,
        max_len_a=1.0,
        max_len_b=3,
    )
    assert beams.tokens.shape == (B, 2, S + 3)
    assert np.all(np.isfinite(np.asarray(beams.scores[:, 0])))


def test_embed_dim_must_equal_hidden_size():
    with pytest.raises(ValueError, match="embed_dim"):
        toy_transformer(embed_dim=8)


def test_scheduled_sampling_is_refused():
    model, params = toy_transformer()
    src, src_mask, tgt_in = inputs()
    with pytest.raises(NotImplementedError, match="scheduled sampling"):
        model.apply({"params": params}, src, src_mask, tgt_in, jnp.ones_like(tgt_in, bool))


def test_registry_chooses_the_architecture():
    assert ARCHITECTURES["transformer"] is Transformer
    assert ARCHITECTURES["rnn"] is Seq2Seq
    config = base_config()
    assert ARCHITECTURES.chosen(config) is Seq2Seq
    config.model.architecture = "transformer"
    config.model.embed_dim = config.model.hidden_size
    registries.validate(config)
    assert ARCHITECTURES.chosen(config) is Transformer
    config.model.architecture = "lstm_transformer"
    with pytest.raises(ConfigError, match=r"config\.model\.architecture"):
        registries.validate(config)


def test_config_refuses_a_transformer_with_embed_dim_not_hidden_size():
    config = base_config()
    config.model.architecture = "transformer"
    config.model.embed_dim = config.model.hidden_size // 2
    with pytest.raises(ConfigError, match=r"config\.model\.embed_dim"):
        registries.validate(config)


def test_config_refuses_scheduled_sampling_for_a_transformer():
    config = base_config()
    config.model.architecture = "transformer"
    config.model.embed_dim = config.model.hidden_size
    config.train.teacher_forcing_end = 0.5
    with pytest.raises(ConfigError, match=r"config\.model\.architecture"):
        registries.validate(config)


def test_config_refuses_outputs_longer_than_the_decoding_cache():
    config = base_config()
    config.model.architecture = "transformer"
    config.model.embed_dim = config.model.hidden_size
    registries.validate(config)  # the defaults fit: a = 1, b = 10
    config.eval.max_len_a = 2.5
    with pytest.raises(ConfigError, match=r"config\.eval\.max_len_a and eval\.max_len_b"):
        registries.validate(config)
    assert transformer.cache_length(7) >= 2 * 7 + 16  # the bound the check states
