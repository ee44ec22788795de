"""Long sentence pairs made of short ones: consecutive captions joined end to end.

Multi30k's captions are short (12 words on average, hardly any over 30), too short to
show how a model's quality falls with source length. ``config.data.join_captions = k``
(read by the ``multi30k`` source only) turns them into a long-sentence benchmark that
anyone can rebuild from the official files and the seed:

- :func:`join_training`: each training pair is 1..k training captions joined (source
  with source, target with target, by a single space); every caption is used once
  in a pair of each size 1..k, so that each size holds a k-th of the words.
- :func:`join_evaluation`: an evaluation split becomes, for j = 1..k, every run of j
  consecutive captions joined (non-overlapping, a trailing partial run dropped): the
  original split first, then floor(n / j) pairs of j captions for each j.

A joined target is the translation of its joined source by construction: caption i's
reference follows caption i - 1's, as its source does.
"""

from collections.abc import Sequence

import numpy as np

from s2s_jax.data.readers import Pairs, is_blank


def join(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """One pair: the sources joined by a space, and the targets in the same order."""
    return " ".join(source for source, _ in pairs), " ".join(target for _, target in pairs)


def describe(k: int, seed: int) -> str:
    """The join settings, for the training pairs' fingerprint (records, vocabularies)."""
    return f"captions joined 1..{k}, each caption in one pair of each size, seed {seed}"


def join_training(pairs: Sequence[tuple[str, str]], k: int, seed: int) -> Pairs:
    """Training pairs of 1..``k`` captions each, the same for the same ``seed``.

    For each size j = 1..k in turn, the captions with no blank side (a blank one is
    dropped from training anyway) are shuffled with ``numpy.random.default_rng(seed)``
    and cut into consecutive runs of j (the last run may be shorter): each caption
    lands in exactly one pair of each size, and each size holds the same number of
    words. (Drawing a size per pair instead gives the short pairs a tenth of the words:
    a 15-minute attention model then learned no alignment, ``bottleneck/long/luong``
    of 2026-12-06.) ``k`` = 1 returns ``pairs`` as they are, in their order.
    """
    if k < 1:
        raise ValueError(f"join_captions must be >= 1, got {k}")
    if k == 1:
        return list(pairs)
    kept = [pair for pair in pairs if not (is_blank(pair[0]) or is_blank(pair[1]))]
    rng = np.random.default_rng(seed)
    joined = []
    for size in range(1, k + 1):
        order = rng.permutation(len(kept))
        for start in range(0, len(kept), size):
            joined.append(join([kept[i] for i in order[start : start + size]]))
    return joined


def join_evaluation(pairs: Sequence[tuple[str, str]], k: int) -> Pairs:
    """An evaluation split made longer: for j = 1..``k`` in turn, captions 0..j-1
    joined, then j..2j-1, ... (floor(len(pairs) / j) pairs for each j). The first
    len(pairs) are ``pairs`` unchanged; every line is kept, an empty one too."""
    if k < 1:
        raise ValueError(f"join_captions must be >= 1, got {k}")
    return [
        join(pairs[start : start + j])
        for j in range(1, k + 1)
        for start in range(0, len(pairs) - j + 1, j)
    ]
