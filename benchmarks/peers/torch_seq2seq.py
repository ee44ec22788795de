"""The PyTorch reference: s2s_jax's Luong model built the way PyTorch toolkits build it.

JoeyNMT, OpenNMT-py and the PyTorch tutorials run the encoder as one fused
``torch.nn.LSTM`` over a packed padded batch (oneDNN kernels on CPU) and, for Luong
attention without input feeding, the decoder as another fused ``nn.LSTM`` over the
whole target, attending afterwards. With input feeding the decoder is a loop of
one-step ``nn.LSTM`` calls, each fed the last attentional vector (OpenNMT-py's
``InputFeedRNNDecoder``). This module does exactly that, for the subset of s2s_jax
configs the benchmarks use: LSTM cells, bidirectional encoder, dense bridge,
``general`` attention, untied output layer; float32, or bfloat16 through ``precision``.

The layer for layer correspondence with ``s2s_jax.models.seq2seq.Seq2Seq`` is exact, so
``load_flax_params`` gives the same function (tests and decode benchmarks rely on it):
  - LSTM gates are (i, f, g, o) in both; flax has one bias, torch's ``b_hh`` is zero;
  - flax ``Dense`` kernels are ``[in, out]``, torch ``Linear`` weights ``[out, in]``.
"""

import contextlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD_ID = 0
MASKED_SCORE = -1e9  # as s2s_jax.models.attention
PRECISIONS = ("float32", "bfloat16")  # the s2s_jax model.dtype values it runs


def check_supported(model: dict) -> None:
    """Raises ValueError for an s2s_jax model config this reference does not build."""
    wanted = {
        "cell": "lstm",
        "bidirectional": True,
        "bridge": "dense",
        "attention": "general",
        "tie_embeddings": False,
        "residual": False,
        "reverse_source": False,
    }
    wrong = {k: model[k] for k, v in wanted.items() if model[k] != v}
    if model.get("dtype", "float32") not in PRECISIONS:
        wrong["dtype"] = model["dtype"]
    if wrong:
        raise ValueError(
            f"the PyTorch reference needs {wanted} and a dtype in {PRECISIONS}; differs: {wrong}"
        )


def precision(model: dict) -> contextlib.AbstractContextManager:
    """What a forward pass runs under to match s2s_jax's ``model.dtype``: nothing for
    float32; for bfloat16, PyTorch's own mixed precision, ``torch.autocast`` on CPU
    (linear layers, matmuls and LSTMs multiply in bfloat16; parameters, gradients and
    Adam stay float32, as in s2s_jax)."""
    if model.get("dtype", "float32") == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TorchSeq2Seq(nn.Module):
    """Embeddings, packed bi-LSTM encoder, dense bridge, LSTM decoder, general attention.

    Args:
      model: ``config.model`` of s2s_jax as a dict, plus ``src_vocab_size`` and
        ``tgt_vocab_size``.
    """

    def __init__(self, model: dict):
        super().__init__()
        check_supported(model)
        emb, hid, drop = model["embed_dim"], model["hidden_size"], model["dropout"]
        enc_layers, dec_layers = model["encoder_layers"], model["decoder_layers"]
        self.src_embed = nn.Embedding(model["src_vocab_size"], emb)
        self.encoder = nn.LSTM(
            emb,
            hid,
            enc_layers,
            batch_first=True,
            bidirectional=True,
            dropout=drop if enc_layers > 1 else 0.0,
        )
        self.bridge = nn.ModuleList(nn.Linear(4 * hid, hid) for _ in range(2 * dec_layers))
        self.tgt_embed = nn.Embedding(model["tgt_vocab_size"], emb)
        self.input_feeding = model["input_feeding"]
        feed = hid if self.input_feeding else 0  # the last attentional vector
        self.decoder = nn.LSTM(
            emb + feed, hid, dec_layers, batch_first=True, dropout=drop if dec_layers > 1 else 0.0
        )
        self.w_a = nn.Linear(2 * hid, hid, bias=False)
        self.combine = nn.Linear(3 * hid, hid, bias=False)
        self.output = nn.Linear(hid, model["tgt_vocab_size"])
        self.dropout = nn.Dropout(drop)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor):
        """``src [B, S]`` -> decoder state ``(h, c)`` each ``[layers, B, H]`` (and the
        fed attentional vector ``[1, B, H]`` with input feeding), memory ``[B, S, 2H]``
        and attention keys ``[B, S, H]``."""
        x = self.dropout(self.src_embed(src))
        lengths = src_mask.sum(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        top = torch.cat([h[-2], h[-1], c[-2], c[-1]], dim=-1)
        carries = [torch.tanh(layer(top)) for layer in self.bridge]
        state = (torch.stack(carries[0::2]), torch.stack(carries[1::2]))
        if self.input_feeding:
            state += (torch.zeros_like(state[0][:1]),)
        return state, memory, self.w_a(memory)

    def _attend(self, out, memory, keys, src_mask):
        """Decoder outputs ``[B, T, H]`` -> attentional vectors ``[B, T, H]``."""
        scores = torch.bmm(out, keys.transpose(1, 2))
        scores = scores.masked_fill(~src_mask[:, None, :], MASKED_SCORE)
        context = torch.bmm(torch.softmax(scores, dim=-1), memory)
        return self.dropout(torch.tanh(self.combine(torch.cat([context, out], -1))))

    def decode(self, state, tgt_in: torch.Tensor, memory, keys, src_mask):
        """``tgt_in [B, T]`` -> logits ``[B, T, V]`` and the new state."""
        x = self.dropout(self.tgt_embed(tgt_in))
        if not self.input_feeding:
            out, state = self.decoder(x, state)
            return self.output(self._attend(out, memory, keys, src_mask)), state
        h, c, feed = state
        steps = []
        for t in range(x.shape[1]):
            step_in = torch.cat([x[:, t : t + 1], feed.transpose(0, 1)], -1)
            out, (h, c) = self.decoder(step_in, (h, c))
            steps.append(self._attend(out, memory, keys, src_mask))
            feed = steps[-1].transpose(0, 1)
        return self.output(torch.cat(steps, 1)), (h, c, feed)

    def forward(self, src, src_mask, tgt_in):
        state, memory, keys = self.encode(src, src_mask)
        logits, _ = self.decode(state, tgt_in, memory, keys, src_mask)
        return logits


def loss_fn(model: TorchSeq2Seq, batch: dict, label_smoothing: float) -> torch.Tensor:
    """Mean smoothed cross-entropy over real target tokens (as s2s_jax.models.token_metrics)."""
    logits = model(batch["src"], batch["src_mask"], batch["tgt_in"])
    total = F.cross_entropy(
        logits.flatten(0, 1),
        batch["tgt_out"].flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    return total / batch["tgt_mask"].sum()


def _linear(layer: nn.Linear, params: dict) -> None:
    layer.weight.copy_(torch.from_numpy(np.array(params["kernel"]).T))
    if layer.bias is not None:
        layer.bias.copy_(torch.from_numpy(np.array(params["bias"])))


def _lstm(lstm: nn.LSTM, suffix: str, cell: dict) -> None:
    getattr(lstm, f"weight_ih_{suffix}").copy_(torch.from_numpy(np.array(cell["ih"]["kernel"]).T))
    getattr(lstm, f"weight_hh_{suffix}").copy_(torch.from_numpy(np.array(cell["hh"]["kernel"]).T))
    getattr(lstm, f"bias_ih_{suffix}").copy_(torch.from_numpy(np.array(cell["ih"]["bias"])))
    getattr(lstm, f"bias_hh_{suffix}").zero_()


@torch.no_grad()
def load_flax_params(model: TorchSeq2Seq, params) -> None:
    """Copies an s2s_jax ``Seq2Seq`` parameter tree (numpy or jax leaves) into ``model``."""
    enc, dec = params["encoder"], params["decoder"]
    model.src_embed.weight.copy_(torch.from_numpy(np.array(enc["embed"]["embedding"])))
    for i in range(model.encoder.num_layers):
        layer = enc["rnn"][f"layer_{i}"]
        _lstm(model.encoder, f"l{i}", layer["forward"]["cell"])
        _lstm(model.encoder, f"l{i}_reverse", layer["backward"]["cell"])
    for i in range(model.decoder.num_layers):
        _lstm(model.decoder, f"l{i}", dec[f"layer_{i}"]["cell"])
        for j in range(2):
            _linear(model.bridge[2 * i + j], dec["bridge"][f"layer_{i}_{j}"])
    model.tgt_embed.weight.copy_(torch.from_numpy(np.array(dec["embed"]["embedding"])))
    _linear(model.w_a, dec["attention"]["w_a"])
    _linear(model.combine, dec["combine"])
    _linear(model.output, dec["output"])
