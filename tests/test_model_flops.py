"""The benchmarks' FLOP formulas (benchmarks/model_flops.py) against the matrix
products the model really traces: every ``dot_general`` in its jaxpr, scan bodies
counted once per step, on unpadded batches (the formulas count real tokens only)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.model_flops import forward_flops, search_flops
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq

B, S, T, SRC_V, TGT_V = 3, 7, 5, 30, 20


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", item)
            if hasattr(inner, "eqns"):
                yield inner


def matmul_flops(jaxpr) -> int:
    """2 x multiply-adds of every dot_general, times the trip count of enclosing scans."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("while", "cond"):
            raise ValueError(f"{eqn.primitive.name}: trip count unknown to the counter")
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
        trips = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        total += trips * sum(matmul_flops(sub) for sub in _subjaxprs(eqn))
    return total


def _model(**overrides):
    fields = dict(
        cell="lstm",
        embed_dim=8,
        hidden_size=16,
        encoder_layers=2,
        decoder_layers=2,
        bidirectional=True,
        bridge="dense",
        attention="general",
        input_feeding=False,
    )
    fields.update(overrides)
    config = ModelConfig.create(SRC_V, TGT_V, dropout=0.0, **fields)
    model = Seq2Seq(config)
    src = jnp.ones((B, S), jnp.int32)
    mask = jnp.ones((B, S), bool)
    tgt_in = jnp.ones((B, T), jnp.int32)
    params = model.init(jax.random.key(0), src, mask, tgt_in)["params"]
    formula_config = {**{k: getattr(config, k) for k in fields}, "tgt_vocab_size": TGT_V}
    return model, params, formula_config, (src, mask, tgt_in)


CONFIGS = [
    dict(),
    dict(input_feeding=True),
    dict(cell="gru", attention="dot", bidirectional=False, bridge="copy"),
    dict(bidirectional=False, encoder_layers=1, decoder_layers=3, cell="rnn"),
    dict(attention="none", embed_dim=16),
]


@pytest.mark.parametrize(
    "overrides", CONFIGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_training_forward_flops_equal_the_traced_matmuls(overrides):
    model, params, formula, args = _model(**overrides)
    traced = matmul_flops(jax.make_jaxpr(lambda p: model.apply({"params": p}, *args))(params).jaxpr)
    want = forward_flops(formula, np.full(B, S), np.full(B, T))
    assert traced == want


@pytest.mark.parametrize("beam_size", [1, 4])
@pytest.mark.parametrize(
    "overrides", [dict(), dict(input_feeding=True)], ids=["general", "input-feeding"]
)
def test_search_flops_equal_the_traced_steps(overrides, beam_size):
    """One sentence: the encoder, one step for BOS, then beam_size rows a step."""
    model, params, formula, _ = _model(**overrides)
    variables = {"params": params}
    steps = 6  # decoder steps

    def encode(rows):
        src = jnp.ones((rows, S), jnp.int32)
        return model.apply(variables, src, src > 0, method=Seq2Seq.encode)

    def step(rows):
        state, memory = encode(rows)
        token = jnp.ones((rows,), jnp.int32)
        return model.apply(variables, state, token, memory, method=Seq2Seq.decode_step)

    def flops(fn, rows):
        return matmul_flops(jax.make_jaxpr(fn, static_argnums=0)(rows).jaxpr)

    per_step = {rows: flops(step, rows) - flops(encode, rows) for rows in (1, beam_size)}
    traced = flops(encode, 1) + per_step[1] + (steps - 1) * per_step[beam_size]
    assert traced == search_flops(formula, np.array([S]), np.array([steps]), beam_size)
