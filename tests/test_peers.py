"""The PyTorch reference of the benchmarks (benchmarks/peers) is the same function as
s2s_jax's model on the same weights, and its searches find the same hypotheses.

Needs the ``peers`` extra (torch); skipped without it.
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch reference needs the [peers] extra")

from benchmarks.peers import torch_search  # noqa: E402
from benchmarks.peers.torch_seq2seq import (  # noqa: E402
    TorchSeq2Seq,
    check_supported,
    load_flax_params,
    loss_fn,
    precision,
)
from s2s_jax import decoding  # noqa: E402
from s2s_jax.data.vocab import EOS_ID  # noqa: E402
from s2s_jax.models import token_metrics  # noqa: E402
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq  # noqa: E402

MODEL = dict(
    src_vocab_size=30,
    tgt_vocab_size=20,
    cell="lstm",
    embed_dim=8,
    hidden_size=16,
    encoder_layers=2,
    decoder_layers=2,
    bidirectional=True,
    bridge="dense",
    attention="general",
    input_feeding=False,
    tie_embeddings=False,
    residual=False,
    reverse_source=False,
    dropout=0.0,
)


def _models(seed, input_feeding=False):
    rng = np.random.default_rng(seed)
    src = rng.integers(4, 30, (4, 9))
    src_mask = np.arange(9)[None] < np.array([9, 5, 2, 7])[:, None]
    src = np.where(src_mask, src, 0)
    tgt = rng.integers(4, 20, (4, 6))
    config = dict(MODEL, input_feeding=input_feeding)
    model = Seq2Seq(ModelConfig.create(**config))
    params = model.init(jax.random.key(seed), src, src_mask, tgt)["params"]
    params = jax.tree.map(lambda p: 3 * p, params)  # confident, varied predictions
    bias = params["decoder"]["output"]["bias"]
    params["decoder"]["output"]["bias"] = bias.at[EOS_ID].add(4.0)  # some stop early
    peer = TorchSeq2Seq(config)
    load_flax_params(peer, params)
    peer.eval()
    return model, params, peer, src, src_mask, tgt


@pytest.mark.parametrize("input_feeding", [False, True])
def test_same_logits_and_loss(input_feeding):
    model, params, peer, src, src_mask, tgt = _models(0, input_feeding)
    logits, _ = model.apply({"params": params}, src, src_mask, tgt)
    tgt_mask = tgt > 0
    tgt_mask[1, 4:] = False
    tgt_out = np.where(tgt_mask, tgt, 0)
    with torch.no_grad():
        peer_logits = peer(torch.tensor(src), torch.tensor(src_mask), torch.tensor(tgt))
        peer_loss = loss_fn(
            peer,
            {
                "src": torch.tensor(src),
                "src_mask": torch.tensor(src_mask),
                "tgt_in": torch.tensor(tgt),
                "tgt_out": torch.tensor(tgt_out),
                "tgt_mask": torch.tensor(tgt_mask),
            },
            0.1,
        )
    np.testing.assert_allclose(peer_logits.numpy(), logits, rtol=1e-4, atol=1e-4)
    sums = token_metrics.sequence_metrics(logits, tgt_out, tgt_mask, 0.1)
    np.testing.assert_allclose(float(peer_loss), sums["loss"] / sums["tokens"], rtol=1e-5)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_bfloat16_is_pytorch_mixed_precision(input_feeding):
    """With ``dtype="bfloat16"`` the reference runs under autocast: its logits move
    away from float32's by bfloat16 rounding (not float32's), about as far as
    s2s_jax's bfloat16 logits do."""
    model, params, peer, src, src_mask, tgt = _models(0, input_feeding)
    bf16 = dict(MODEL, input_feeding=input_feeding, dtype="bfloat16")
    inputs = (src, src_mask, tgt)
    logits = model.apply({"params": params}, *inputs)[0]
    ours = Seq2Seq(ModelConfig.create(**bf16)).apply({"params": params}, *inputs)[0]
    with torch.no_grad(), precision(bf16):
        theirs = peer(*map(torch.tensor, inputs)).float().numpy()
    scale = np.abs(logits).max()
    assert 1e-3 < np.abs(theirs - logits).max() / scale < 0.1
    assert np.abs(theirs - ours).max() / scale < 0.1
    with pytest.raises(ValueError, match="dtype"):
        check_supported(dict(MODEL, dtype="float16"))


@pytest.mark.parametrize("seed, input_feeding", [(0, False), (1, False), (2, True)])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_same_hypotheses(seed, input_feeding, alpha):
    model, params, peer, src, src_mask, _ = _models(seed, input_feeding)
    bound = dict(max_len_a=1.0, max_len_b=3)
    max_len = decoding.max_decode_length(src.shape[1], 1.0, 3)
    t_src, t_mask = torch.tensor(src), torch.tensor(src_mask)
    greedy = decoding.greedy(model, params, src, src_mask, **bound).tokens[:, 0]
    np.testing.assert_array_equal(torch_search.greedy(peer, t_src, t_mask, max_len), greedy)
    beam = decoding.beam_search(
        model, params, src, src_mask, beam_size=4, alpha=alpha, beta=0.0, n_best=1, **bound
    ).tokens[:, 0]
    peer_beam, steps = torch_search.beam_search(peer, t_src, t_mask, 4, alpha, max_len)
    np.testing.assert_array_equal(peer_beam, beam)
    assert (np.asarray(beam) == EOS_ID).any(), "the test should include finished hypotheses"
    lengths = np.array([len(decoding.until_eos(b)) for b in np.asarray(beam)])
    assert ((lengths <= steps.numpy()) & (steps.numpy() <= max_len)).all(), (lengths, steps)


@pytest.mark.parametrize("seed", [0, 2])
def test_beam_of_one_stops_when_greedy_does(seed):
    """With one beam and no length penalty, the stopping rule ends a sentence at the
    step that finishes it, as greedy search does: the steps are the greedy lengths."""
    model, params, peer, src, src_mask, _ = _models(seed, seed == 2)
    max_len = decoding.max_decode_length(src.shape[1], 1.0, 3)
    greedy = decoding.greedy(model, params, src, src_mask, max_len_a=1.0, max_len_b=3)
    lengths = [len(decoding.until_eos(b)) for b in np.asarray(greedy.tokens[:, 0])]
    _, steps = torch_search.beam_search(
        peer, torch.tensor(src), torch.tensor(src_mask), 1, 0.0, max_len
    )
    np.testing.assert_array_equal(steps.numpy(), lengths)
