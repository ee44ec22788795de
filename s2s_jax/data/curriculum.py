"""Competence-based curriculum learning (Platanios et al. 2019): short pairs first.

For its first ``steps`` steps, ``CurriculumBatches`` draws each batch from the easiest
share c(t) of the training pairs, easiest meaning the shortest source (then target),
with the paper's square-root competence

  c(t) = min(1, sqrt(c0^2 + (1 - c0^2) * t / steps)),

so that the model spends equal time on each new slice of harder pairs. From step
``steps`` on, it is the epoch stream of ``TrainBatches`` from its first epoch. Batches
keep the buckets' fixed shapes: a step picks a bucket with a weight of the full batches
its eligible pairs make (so each bucket gets its share of the tokens, as in an epoch)
and draws that many of them without replacement, with a generator keyed by the seed and
the step, so the stream is deterministic and resumes at any step.

Attention models learn to align on short pairs long before they do on long ones: on
Multi30k captions joined into pairs of up to four (``configs/multi30k.py:en-de,long``),
the attention model of ``benchmarks/bottleneck_study.py`` without a curriculum was still
a target language model after 1,300 steps.
"""

import numpy as np

from s2s_jax.data.batching import Batch, TrainBatches


def competence(step: int, steps: int, start: float) -> float:
    """The share of the training pairs, easiest first, that ``step`` draws from."""
    return min(1.0, float(np.sqrt(start**2 + (1.0 - start**2) * step / steps)))


class CurriculumBatches(TrainBatches):
    """``TrainBatches`` (same arguments) whose first ``steps`` steps follow the
    curriculum, starting from the easiest ``start`` share of the pairs (at least enough
    of them to fill one batch)."""

    def __init__(self, *args, steps: int, start: float, **kwargs):
        super().__init__(*args, **kwargs)
        if steps < 1 or not 0.0 < start <= 1.0:
            raise ValueError(f"need steps >= 1 and 0 < start <= 1, got {steps} and {start}")
        self._steps, self._start = steps, start
        ids = np.concatenate([bucket_ids for _, _, bucket_ids in self._buckets])
        lengths = np.asarray(self._examples.lengths)[ids]
        order = np.lexsort((lengths[:, 1], lengths[:, 0]))  # by source, then target
        ranks = np.empty(len(ids), np.int64)
        ranks[order] = np.arange(len(ids))
        # Per bucket: its pairs' ids easiest first, and their ranks among all pairs.
        self._ranked: list[tuple[np.ndarray, np.ndarray]] = []
        for bucket_ids, bucket_ranks in zip(
            (ids for _, _, ids in self._buckets),
            np.split(ranks, np.cumsum([len(i) for _, _, i in self._buckets])[:-1]),
        ):
            by_rank = np.argsort(bucket_ranks)
            self._ranked.append((bucket_ids[by_rank], bucket_ranks[by_rank]))
        self._num_pairs = len(ids)
        self._min_pairs = min(
            int(bucket_ranks[size - 1]) + 1
            for (_, size, _), (_, bucket_ranks) in zip(self._buckets, self._ranked)
        )

    def eligible_pairs(self, step: int) -> int:
        """How many of the easiest pairs ``step`` draws from."""
        share = competence(step, self._steps, self._start)
        return max(self._min_pairs, int(np.ceil(share * self._num_pairs)))

    def batch(self, step: int) -> Batch:
        if step >= self._steps:
            return super().batch(step - self._steps)
        eligible = self.eligible_pairs(step)
        counts = [int(np.searchsorted(ranks, eligible)) for _, ranks in self._ranked]
        full = np.array([n // size for n, (_, size, _) in zip(counts, self._buckets)], float)
        rng = np.random.default_rng([self._seed, step, 1])  # the epochs use [seed, epoch]
        bucket = int(rng.choice(len(full), p=full / full.sum()))
        shape, size, _ = self._buckets[bucket]
        easiest = self._ranked[bucket][0][: counts[bucket]]
        return self._make(shape, rng.choice(easiest, size, replace=False))
