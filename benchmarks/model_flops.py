"""Model FLOPs of one training step, from the architecture's formula.

Counts the multiply-adds of the matrix products (2 FLOPs each) over real tokens only:
padding, recomputation and elementwise work (gates, softmax) are not model FLOPs. A
training step is 3x the forward pass (the backward pass costs two forward passes).
Covers what the benchmarks run: every cell (a layer norm is elementwise work),
(bi)directional stacked encoder, dense bridge, Luong attention with or without input
feeding, untied output layer. ``search_flops`` bounds the FLOPs of a beam search from
below, which bounds the sentences/s that any implementation (or any implementation of
one stopping rule) can reach at a given matmul rate.
"""

import numpy as np

from s2s_jax.models.cells import CELLS


def _recurrent(in_size: int, hidden: int, gates: int) -> int:
    """Forward FLOPs of one cell step: input and recurrent projections."""
    return 2 * (in_size + hidden) * gates * hidden


def forward_flops(model: dict, src_tokens: np.ndarray, tgt_tokens: np.ndarray) -> float:
    """Forward FLOPs for sentences of ``src_tokens [N]`` and ``tgt_tokens [N]`` real tokens.

    ``model`` is ``config.model`` as a dict plus ``tgt_vocab_size``.
    """
    if model["attention"] not in ("general", "dot", "none"):
        raise ValueError(
            f"model_flops covers Luong dot/general attention, not {model['attention']!r}"
        )
    emb, hid, gates = model["embed_dim"], model["hidden_size"], CELLS[model["cell"]].num_gates
    directions = 2 if model["bidirectional"] else 1
    mem = directions * hid
    src, tgt = np.asarray(src_tokens, np.float64), np.asarray(tgt_tokens, np.float64)
    per_src = sum(
        directions * _recurrent(emb if i == 0 else mem, hid, gates)
        for i in range(model["encoder_layers"])
    )
    feed = hid if model["input_feeding"] else 0  # the last attentional vector, fed in
    per_tgt = sum(
        _recurrent(emb + feed if i == 0 else hid, hid, gates)
        for i in range(model["decoder_layers"])
    )
    per_tgt += 2 * hid * model["tgt_vocab_size"]  # output layer
    per_sentence = 0.0
    if model["bridge"] == "dense":  # every decoder carry from the top encoder carries
        carries = 2 if model["cell"] == "lstm" else 1
        per_sentence += 2 * (carries * mem) * hid * carries * model["decoder_layers"]
    flops = per_src * src.sum() + per_tgt * tgt.sum() + per_sentence * len(src)
    if model["attention"] != "none":
        if model["attention"] == "general":
            flops += 2 * mem * hid * src.sum()  # keys W_a h_i, once per source token
        flops += 2 * (hid + mem) * (src * tgt).sum()  # scores and context, per pair
        flops += 2 * (mem + hid) * hid * tgt.sum()  # attentional vector W_c [c; s]
    return float(flops)


def train_step_flops(model: dict, src_tokens: np.ndarray, tgt_tokens: np.ndarray) -> float:
    return 3.0 * forward_flops(model, src_tokens, tgt_tokens)


def search_flops(model: dict, src_tokens: np.ndarray, steps: np.ndarray, beam_size: int) -> float:
    """Model FLOPs of a batched beam search that runs ``steps [N]`` decoder steps per
    sentence: the encoder reads each source once, the first step scores one hypothesis
    (BOS), every later step ``beam_size`` of them, as batched searches do (a finished
    hypothesis is replaced or kept as a padded row). Greedy search is ``beam_size=1``.

    Two uses:

    * ``steps`` = the returned hypotheses' lengths, their EOS included (the steps that
      produced them): no search that returns them stops earlier, so this bounds every
      search from below;
    * ``steps`` = what a search ran per sentence under its stopping rule (beam search
      goes on until no alive hypothesis can win, often well past its best hypothesis):
      the fewest FLOPs of any search that stops as that one does.
    """
    steps = np.asarray(steps, np.float64)
    return forward_flops(model, src_tokens, 1 + beam_size * np.maximum(steps - 1, 0))
