"""Fixed-shape, bucketed numpy batches for training, evaluation and translation.

A batch is a dict of numpy arrays:
  src:      int32 [batch, src_len]  source ids, then EOS_ID, then PAD_ID.
  src_mask: bool  [batch, src_len]  True on real source tokens (incl. EOS).
  tgt_in:   int32 [batch, tgt_len]  BOS_ID, y_1..y_n, then PAD_ID.
  tgt_out:  int32 [batch, tgt_len]  y_1..y_n, EOS_ID, then PAD_ID.
  tgt_mask: bool  [batch, tgt_len]  True on the n + 1 real positions of tgt_out.
  valid:    bool  [batch]           False on rows that only fill up a batch.
Source-only batches (translation) have just `src`, `src_mask` and `valid`.
"""

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar

import numpy as np

from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab

T = TypeVar("T")
Batch = dict[str, np.ndarray]
Shape = tuple[int, int]
# (src_len, tgt_len) batch shapes, sorted ascending, e.g. [(16, 12), (32, 12)].
Buckets = Sequence[Shape]
# Dummy row filling up the last evaluation batch: src = [EOS], empty target.
_DUMMY_SRC = np.array([EOS_ID], np.int32)
_DUMMY_TGT = np.zeros(0, np.int32)


@dataclasses.dataclass(frozen=True)
class Examples:
    """Encoded pairs: `src[i]` is int32 [n_i + 1] ending in EOS_ID, `tgt[i]` is
    int32 [m_i] without BOS/EOS."""

    src: list[np.ndarray]
    tgt: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.src)

    @property
    def lengths(self) -> np.ndarray:
        """int64 [num_pairs, 2]: source length (EOS included), target length."""
        return np.array([(len(s), len(t)) for s, t in zip(self.src, self.tgt)], np.int64).reshape(
            -1, 2
        )

    def rows(self, ids: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [self.src[i] for i in ids], [self.tgt[i] for i in ids]


class Rows(Protocol):
    """Encoded pairs read by index: ``Examples`` in memory, ``records.Records`` on disk."""

    @property
    def lengths(self) -> np.ndarray:
        """[num_pairs, 2]: source length (EOS included), target length."""

    def rows(self, ids: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(sources, targets) of the pairs ``ids``, as in ``Examples``."""


def sort_by_source_length(examples: Examples) -> tuple[np.ndarray, Examples]:
    """The examples shortest source first (stable), and ``order``: position k of the
    result is ``examples[order[k]]``. Batched this way, sentences end decoding at about
    the same step and fit the smallest bucket."""
    order = np.argsort([len(src) for src in examples.src], kind="stable")
    return order, Examples([examples.src[i] for i in order], [examples.tgt[i] for i in order])


def encode_source(text: str, vocab: Vocab) -> np.ndarray:
    """Returns int32 [length + 1]: the ids of `text` followed by EOS_ID."""
    return np.array(vocab.encode(text) + [EOS_ID], np.int32)


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab) -> Examples:
    return Examples(
        src=[encode_source(src, src_vocab) for src, _ in pairs],
        tgt=[np.array(tgt_vocab.encode(tgt), np.int32) for _, tgt in pairs],
    )


def _check_buckets(buckets: Buckets) -> None:
    if not buckets or list(buckets) != sorted(buckets):
        raise ValueError(f"buckets must be non-empty and sorted, got {buckets}")


def _round_up(n: int, multiple: int = 8) -> int:
    return -(-n // multiple) * multiple


def _batch_shape(src_len: int, tgt_len: int, buckets: Buckets) -> Shape:
    """The first bucket fitting the lengths; else each length rounded up to a
    multiple of 8, but at least the largest bucket's."""
    for bucket_src, bucket_tgt in buckets:
        if src_len <= bucket_src and tgt_len <= bucket_tgt:
            return bucket_src, bucket_tgt
    return (
        max(max(s for s, _ in buckets), _round_up(src_len)),
        max(max(t for _, t in buckets), _round_up(tgt_len)),
    )


def _pad(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Right-pads `rows` with PAD_ID into int32 [len(rows), length]."""
    out = np.full((len(rows), length), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _make_batch(
    src: Sequence[np.ndarray], tgt: Sequence[np.ndarray] | None, num_valid: int, shape: Shape
) -> Batch:
    """Builds a batch from the rows; rows from `num_valid` on are not valid."""
    batch = {"src": _pad(src, shape[0])}
    batch["src_mask"] = batch["src"] != PAD_ID
    if tgt is not None:
        tgt_out = _pad([np.append(row, EOS_ID) for row in tgt], shape[1])
        tgt_mask = tgt_out != PAD_ID
        tgt_in = np.full_like(tgt_out, PAD_ID)
        tgt_in[:, 0] = BOS_ID
        tgt_in[:, 1:] = np.where(tgt_mask[:, 1:], tgt_out[:, :-1], PAD_ID)
        batch.update(tgt_in=tgt_in, tgt_out=tgt_out, tgt_mask=tgt_mask)
    batch["valid"] = np.arange(len(src)) < num_valid
    return batch


def token_budget_batch_sizes(buckets: Buckets, tokens_per_batch: int, multiple: int) -> list[int]:
    """Sentences per batch for each bucket so that a batch holds about
    `tokens_per_batch` padded tokens (the longer side counts), rounded down to a
    multiple of `multiple` (the number of devices) and at least `multiple`."""
    return [
        max(multiple, tokens_per_batch // max(shape) // multiple * multiple) for shape in buckets
    ]


class TooFewExamplesError(ValueError):
    """No bucket holds as many examples as one batch."""


class TrainBatches:
    """An infinite, deterministic, resumable stream of fixed-shape batches.

    Each example goes to the first bucket it fits (source incl. EOS and target
    incl. EOS). Epoch e permutes each bucket's examples with
    `np.random.default_rng([seed, e])`, cuts them into full global batches
    (dropping the leftover) and shuffles the order of these batches. Buckets
    with fewer examples than their batch size are skipped.

    `batch_size` is one size for every bucket or one per bucket (see
    `token_budget_batch_sizes`). With several processes, process p gets rows
    [p * b, (p + 1) * b) of every global batch, where b = size // process_count.

    Attributes:
      num_filtered: number of examples that fit no bucket.
      num_skipped: number of examples in buckets too small for one batch.
      steps_per_epoch: number of batches in each epoch.
      shapes: the (src_len, tgt_len, batch_size) of the buckets in use.
    """

    def __init__(
        self,
        examples: Rows,
        batch_size: int | Sequence[int],
        buckets: Buckets,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
    ):
        _check_buckets(buckets)
        sizes = [batch_size] * len(buckets) if isinstance(batch_size, int) else list(batch_size)
        if len(sizes) != len(buckets):
            raise ValueError(f"{len(sizes)} batch sizes for {len(buckets)} buckets")
        for size in sizes:
            if size % process_count:
                raise ValueError(
                    f"batch size {size} is not divisible by process_count {process_count}"
                )
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        self._examples = examples
        self._seed = seed
        self._process = (process_index, process_count)

        lengths = np.asarray(examples.lengths)  # uint16 from disk: no int64 copies
        src_lens = lengths[:, 0]
        tgt_lens = lengths[:, 1].astype(np.int32) + 1  # the target with its EOS
        unassigned = np.ones(len(lengths), bool)
        self._buckets: list[tuple[Shape, int, np.ndarray]] = []
        self.num_skipped = 0
        for (bucket_src, bucket_tgt), size in zip(buckets, sizes):
            fits = unassigned & (src_lens <= bucket_src) & (tgt_lens <= bucket_tgt)
            unassigned &= ~fits
            if fits.sum() >= size:
                ids = np.flatnonzero(fits).astype(np.int32)  # 4 bytes per example
                self._buckets.append(((bucket_src, bucket_tgt), size, ids))
            else:
                self.num_skipped += int(fits.sum())
        self.num_filtered = int(unassigned.sum())
        self.shapes = [shape + (size,) for shape, size, _ in self._buckets]
        self.steps_per_epoch = sum(len(ids) // size for _, size, ids in self._buckets)
        if not self.steps_per_epoch:
            raise TooFewExamplesError(
                f"no bucket of {list(buckets)} holds a batch ({sizes}) of "
                f"the {len(lengths)} examples ({self.num_filtered} fit no bucket)"
            )
        self._epoch_cache: tuple[int, list[tuple[Shape, np.ndarray]]] | None = None

    def _epoch(self, epoch: int) -> list[tuple[Shape, np.ndarray]]:
        """Returns the epoch's (shape, example indices [batch_size]) in order."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self._seed, epoch])
            batches = []
            for shape, size, ids in self._buckets:
                num = len(ids) // size
                perm = rng.permutation(ids)[: num * size]
                batches += [(shape, rows) for rows in perm.reshape(num, size)]
            order = rng.permutation(len(batches))
            self._epoch_cache = (epoch, [batches[i] for i in order])
        return self._epoch_cache[1]

    def batch(self, step: int) -> Batch:
        """Returns this process's part of the global batch for `step`."""
        epoch, index = divmod(step, self.steps_per_epoch)
        return self._make(*self._epoch(epoch)[index])

    def _make(self, shape: Shape, ids: np.ndarray) -> Batch:
        """This process's part of the global batch of the examples ``ids``."""
        process_index, process_count = self._process
        local = len(ids) // process_count
        src, tgt = self._examples.rows(ids[process_index * local : (process_index + 1) * local])
        return _make_batch(src, tgt, len(src), shape)

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        step = start_step
        while True:
            yield self.batch(step)
            step += 1


def eval_batches(examples: Examples, batch_size: int, buckets: Buckets) -> Iterator[Batch]:
    """Yields all examples in order, in batches of exactly `batch_size` rows.

    Each batch gets the smallest bucket shape that fits all its rows, or, for
    rows longer than every bucket, lengths rounded up to a multiple of 8. The
    last batch is filled with dummy rows (src = [EOS], empty target) that have
    valid=False.
    """
    _check_buckets(buckets)
    for start in range(0, len(examples), batch_size):
        src = list(examples.src[start : start + batch_size])
        tgt = list(examples.tgt[start : start + batch_size])
        num_valid = len(src)
        src += [_DUMMY_SRC] * (batch_size - num_valid)
        tgt += [_DUMMY_TGT] * (batch_size - num_valid)
        shape = _batch_shape(max(map(len, src)), max(map(len, tgt)) + 1, buckets)
        yield _make_batch(src, tgt, num_valid, shape)


def pad_source_batch(sources: Sequence[np.ndarray], batch_size: int, buckets: Buckets) -> Batch:
    """Pads up to `batch_size` encoded sources (see `encode_source`) to a batch
    with keys `src`, `src_mask` and `valid`, like `eval_batches` does."""
    _check_buckets(buckets)
    if not 0 < len(sources) <= batch_size:
        raise ValueError(f"need 1 to {batch_size} sources, got {len(sources)}")
    src = list(sources) + [_DUMMY_SRC] * (batch_size - len(sources))
    shape = _batch_shape(max(map(len, src)), 0, buckets)
    return _make_batch(src, None, len(sources), shape)


def prefetch(iterator: Iterator[T], size: int) -> Iterator[T]:
    """Yields the items of `iterator`, produced `size` ahead by a daemon thread
    (so host-side batching overlaps the device step); errors are re-raised here."""
    if size <= 0:
        yield from iterator
        return
    items: queue.Queue = queue.Queue(maxsize=size)
    end = object()

    def produce():
        try:
            for item in iterator:
                items.put((item, None))
        except Exception as error:  # noqa: BLE001 - handed to the consumer
            items.put((end, error))
        else:
            items.put((end, None))

    threading.Thread(target=produce, daemon=True).start()
    while True:
        item, error = items.get()
        if error is not None:
            raise error
        if item is end:
            return
        yield item
