"""Greedy and beam search for the PyTorch reference, as PyTorch toolkits write them.

Batched over sentences and beams (rows ``B * K``), eager, ``torch.no_grad``; sentences
that are done leave the batch (as in fairseq and OpenNMT-py), so late steps only run
the sentences still decoding. The beam search has s2s_jax's semantics
(``s2s_jax.decoding.beam_search`` with n_best = 1 and no coverage penalty): of the
K * V candidates, those among the K most probable that end with EOS finish, the K
most probable others stay alive, the score is log P / ((5 + |Y|) / 6) ** alpha, and a
sentence is done once its best alive log-probability over lp(L) is below its best
finished score. Hypotheses are therefore the same as s2s_jax's on the same weights,
up to floating-point near-ties.
"""

import torch
from torch.nn import functional as F

BOS_ID, EOS_ID, PAD_ID = 2, 3, 0


def _length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def _select(rows: torch.Tensor, state, memory, keys, mask):
    """Keeps the decoder inputs of ``rows`` (indices into dim 0, dim 1 for the state)."""
    state = tuple(s.index_select(1, rows) for s in state)
    return state, memory[rows], keys[rows], mask[rows]


@torch.no_grad()
def greedy(model, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """``src [B, S]`` -> tokens ``[B, max_len]``, EOS included, PAD after."""
    batch_size = src.shape[0]
    state, memory, keys = model.encode(src, src_mask)
    out = torch.full((batch_size, max_len), PAD_ID, dtype=torch.long)
    active = torch.arange(batch_size)
    token = torch.full((batch_size, 1), BOS_ID, dtype=torch.long)
    mask = src_mask
    for i in range(max_len):
        logits, state = model.decode(state, token, memory, keys, mask)
        token = logits[:, 0].argmax(-1, keepdim=True)
        out[active, i] = token[:, 0]
        going = (token[:, 0] != EOS_ID).nonzero()[:, 0]
        if len(going) < len(active):
            if not len(going):
                break
            active, token = active[going], token[going]
            state, memory, keys, mask = _select(going, state, memory, keys, mask)
    return out


@torch.no_grad()
def beam_search(
    model, src: torch.Tensor, src_mask: torch.Tensor, beam_size: int, alpha: float, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``src [B, S]`` -> the best hypothesis ``[B, max_len]``, EOS included, PAD after,
    and ``[B]`` the decoder steps each sentence ran before its stopping rule ended it
    (which may be well after its best hypothesis ended)."""
    batch_size, k = src.shape[0], beam_size
    state, memory, keys = model.encode(src, src_mask)
    tile = torch.arange(batch_size).repeat_interleave(k)
    state, memory, keys, mask = _select(tile, state, memory, keys, src_mask)
    alive = torch.full((batch_size, k, max_len + 1), PAD_ID, dtype=torch.long)
    alive[:, :, 0] = BOS_ID
    alive_lp = torch.full((batch_size, k), -float("inf"))
    alive_lp[:, 0] = 0.0
    best = torch.full((batch_size, max_len), PAD_ID, dtype=torch.long)
    best_score = torch.full((batch_size,), -float("inf"))
    active = torch.arange(batch_size)  # sentences still decoding
    steps = torch.full((batch_size,), max_len, dtype=torch.long)
    bound = _length_penalty(max_len, alpha)
    for i in range(max_len):
        n = len(active)
        logits, state = model.decode(state, alive[:, :, i].reshape(-1, 1), memory, keys, mask)
        # log-probabilities in float32 even under autocast (as fairseq's)
        cand = alive_lp[:, :, None] + F.log_softmax(logits[:, 0].float(), -1).view(n, k, -1)
        vocab = cand.shape[-1]
        top, index = cand.view(n, -1).topk(k)
        ends = (index % vocab == EOS_ID) | (i == max_len - 1)
        scores = torch.where(ends, top / _length_penalty(i + 1, alpha), -float("inf"))
        new_score, pick = scores.max(1)
        better = (new_score > best_score[active]).nonzero()[:, 0]
        if len(better):
            index_b = index[better, pick[better]]
            parent = alive[better, index_b // vocab, 1 : i + 1]
            best[active[better], :i] = parent
            best[active[better], i] = index_b % vocab
            best_score[active[better]] = new_score[better]
        cand[:, :, EOS_ID] = -float("inf")
        alive_lp, index = cand.view(n, -1).topk(k)
        parents = index // vocab
        alive = alive.gather(1, parents[:, :, None].expand(-1, -1, alive.shape[-1]))
        alive[:, :, i + 1] = index % vocab
        rows = (parents + k * torch.arange(n)[:, None]).view(-1)
        going = alive_lp.max(1).values / bound >= best_score[active]
        steps[active[~going]] = i + 1
        going = going.nonzero()[:, 0]
        if not len(going):
            break
        if len(going) < n:
            active, alive, alive_lp = active[going], alive[going], alive_lp[going]
            rows = rows.view(n, k)[going].view(-1)
            state, memory, keys, mask = _select(rows, state, memory, keys, mask)
        else:
            state = tuple(s.index_select(1, rows) for s in state)
    return best, steps
