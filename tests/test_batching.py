"""Tests for s2s_jax.data.batching."""

import numpy as np
import pytest

from s2s_jax.data import batching
from s2s_jax.data.tasks import make_splits
from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID, CharVocab

VOCAB = CharVocab("abcdefghijklmnopqrstuvwxyz")
BUCKETS = [(8, 8), (16, 24)]


def reversal_examples(n: int, seed: int = 0) -> batching.Examples:
    pairs = make_splits("reversal", seed, {"train": n})["train"]
    return batching.encode_pairs(pairs, VOCAB, VOCAB)


def check_batch(batch, shape, batch_size):
    """Checks the layout of a batch (see the batching module docstring)."""
    src_len, tgt_len = shape
    assert batch["src"].shape == batch["src_mask"].shape == (batch_size, src_len)
    assert batch["tgt_in"].shape == batch["tgt_out"].shape == (batch_size, tgt_len)
    assert batch["tgt_mask"].shape == (batch_size, tgt_len)
    assert batch["valid"].shape == (batch_size,)
    assert batch["src"].dtype == batch["tgt_in"].dtype == np.int32
    assert batch["src_mask"].dtype == batch["tgt_mask"].dtype == bool
    np.testing.assert_array_equal(batch["src_mask"], batch["src"] != PAD_ID)
    np.testing.assert_array_equal(batch["tgt_mask"], batch["tgt_out"] != PAD_ID)
    # Masks are prefixes; the last real token is EOS and nowhere else.
    for mask, ids in [(batch["src_mask"], batch["src"]), (batch["tgt_mask"], batch["tgt_out"])]:
        lengths = mask.sum(axis=1)
        np.testing.assert_array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None])
        np.testing.assert_array_equal(ids[np.arange(batch_size), lengths - 1], EOS_ID)
        assert (ids == EOS_ID).sum() == batch_size
    # tgt_in is tgt_out shifted right behind BOS, padded where tgt_out is.
    expected_in = np.concatenate(
        [np.full((batch_size, 1), BOS_ID), batch["tgt_out"][:, :-1]], axis=1
    )
    expected_in[~batch["tgt_mask"]] = PAD_ID
    np.testing.assert_array_equal(batch["tgt_in"], expected_in)


def test_encode_pairs():
    examples = batching.encode_pairs([("ab", "ba"), ("c", "")], VOCAB, VOCAB)
    assert len(examples) == 2
    assert [s.tolist() for s in examples.src] == [[4, 5, EOS_ID], [6, EOS_ID]]
    assert [t.tolist() for t in examples.tgt] == [[5, 4], []]


def test_single_batch_contents():
    examples = batching.encode_pairs([("abc", "cba")] * 2, VOCAB, VOCAB)
    batch = batching.TrainBatches(examples, 2, [(5, 6)], seed=0).batch(0)
    check_batch(batch, (5, 6), 2)
    np.testing.assert_array_equal(batch["src"][0], [4, 5, 6, EOS_ID, PAD_ID])
    np.testing.assert_array_equal(batch["tgt_in"][0], [BOS_ID, 6, 5, 4, PAD_ID, PAD_ID])
    np.testing.assert_array_equal(batch["tgt_out"][0], [6, 5, 4, EOS_ID, PAD_ID, PAD_ID])
    assert batch["valid"].all()


def test_train_batches_shapes_and_filtering():
    examples = reversal_examples(2000)
    src_lens = np.array([len(s) for s in examples.src])
    tgt_lens = np.array([len(t) + 1 for t in examples.tgt])
    expected_filtered = int(((src_lens > 16) | (tgt_lens > 24)).sum())
    assert expected_filtered > 0
    batches = batching.TrainBatches(examples, 32, BUCKETS, seed=0)
    assert batches.num_filtered == expected_filtered
    assert batches.num_skipped == 0
    shapes = set()
    for batch in batches.iterate():
        check_batch(batch, batch["src"].shape[1:] + batch["tgt_out"].shape[1:], 32)
        shapes.add((batch["src"].shape[1], batch["tgt_out"].shape[1]))
        assert batch["valid"].all()
        if len(shapes) == 2:
            break
    assert shapes == set(BUCKETS)


def test_each_epoch_covers_each_example_at_most_once():
    examples = batching.encode_pairs(
        [(f"{a}{b}", "x") for a in "abcdefgh" for b in "abcdefgh"], VOCAB, VOCAB
    )
    batches = batching.TrainBatches(examples, 10, [(4, 4)], seed=0)
    assert batches.steps_per_epoch == 6
    for epoch in range(2):
        rows = np.concatenate([batches.batch(epoch * 6 + i)["src"] for i in range(6)])
        assert len({tuple(r) for r in rows}) == 60
    assert not np.array_equal(batches.batch(0)["src"], batches.batch(6)["src"])


def test_batch_is_deterministic_and_resumable():
    examples = reversal_examples(1000)
    a = batching.TrainBatches(examples, 16, BUCKETS, seed=7)
    b = batching.TrainBatches(examples, 16, BUCKETS, seed=7)
    c = batching.TrainBatches(examples, 16, BUCKETS, seed=8)
    for step in [0, 1, 5, a.steps_per_epoch + 3, 10 * a.steps_per_epoch]:
        for key, value in a.batch(step).items():
            np.testing.assert_array_equal(value, b.batch(step)[key])
    resumed = b.iterate(start_step=5)
    for step in range(5, 5 + a.steps_per_epoch + 2):
        np.testing.assert_array_equal(next(resumed)["src"], a.batch(step)["src"])
    assert any(not np.array_equal(a.batch(s)["src"], c.batch(s)["src"]) for s in range(3))


def test_process_shards():
    examples = batching.encode_pairs(  # Unique sources, so rows are distinct.
        [(a + b + c, c) for a in "abcd" for b in "abcd" for c in "abcdefgh"], VOCAB, VOCAB
    )
    full = batching.TrainBatches(examples, 16, BUCKETS, seed=3)
    shards = [
        batching.TrainBatches(examples, 16, BUCKETS, seed=3, process_index=i, process_count=2)
        for i in range(2)
    ]
    for step in range(2 * full.steps_per_epoch):
        parts = [shard.batch(step) for shard in shards]
        check_batch(parts[0], (8, 8), 8)
        rows = [{tuple(r) for r in p["src"]} for p in parts]
        assert len(rows[0]) == len(rows[1]) == 8 and not rows[0] & rows[1]
        for key, value in full.batch(step).items():
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), value)
    with pytest.raises(ValueError, match="divisible"):
        batching.TrainBatches(examples, 15, BUCKETS, seed=0, process_count=2)


def test_small_buckets_are_skipped():
    examples = batching.encode_pairs(
        [("a", "a")] * 3 + [("abcdefghij", "a")] * 20 + [("a" * 30, "a")], VOCAB, VOCAB
    )
    batches = batching.TrainBatches(examples, 8, BUCKETS, seed=0)
    assert (batches.num_filtered, batches.num_skipped) == (1, 3)
    assert batches.steps_per_epoch == 2
    assert batches.batch(0)["src"].shape == (8, 16)
    with pytest.raises(ValueError, match="no bucket"):
        batching.TrainBatches(examples, 32, BUCKETS, seed=0)


def test_eval_batches_keep_everything_in_order():
    examples = reversal_examples(203)
    examples.src[5] = np.array([4] * 40 + [EOS_ID], np.int32)  # Longer than
    examples.tgt[5] = np.array([4] * 30, np.int32)  # every bucket.
    batches = list(batching.eval_batches(examples, 32, BUCKETS))
    assert len(batches) == 7
    for i, batch in enumerate(batches):
        max_src = max(len(s) for s in examples.src[32 * i : 32 * (i + 1)])
        max_tgt = max(len(t) + 1 for t in examples.tgt[32 * i : 32 * (i + 1)])
        if max_src <= 8 and max_tgt <= 8:
            expected = (8, 8)
        elif max_src <= 16 and max_tgt <= 24:
            expected = (16, 24)
        else:  # Round up to a multiple of 8, but not below the largest bucket.
            expected = (max(16, -(-max_src // 8) * 8), max(24, -(-max_tgt // 8) * 8))
        check_batch(batch, expected, 32)
    assert batches[0]["src"].shape == (32, 48)
    assert batches[0]["tgt_out"].shape == (32, 32)
    valid = np.concatenate([b["valid"] for b in batches])
    assert valid.sum() == 203 and valid[:203].all()
    srcs = [row[mask] for b in batches for row, mask in zip(b["src"], b["src_mask"])]
    tgts = [row[mask][:-1] for b in batches for row, mask in zip(b["tgt_out"], b["tgt_mask"])]
    for i in range(203):
        np.testing.assert_array_equal(srcs[i], examples.src[i])
        np.testing.assert_array_equal(tgts[i], examples.tgt[i])
    for src, tgt in zip(srcs[203:], tgts[203:]):  # Dummy rows.
        assert src.tolist() == [EOS_ID] and tgt.size == 0


def test_eval_batch_uses_smallest_fitting_bucket():
    examples = batching.encode_pairs([("abc", "cba"), ("abcdefgh", "a")], VOCAB, VOCAB)
    shapes = [
        b["src"].shape[1:] + b["tgt_out"].shape[1:]
        for b in batching.eval_batches(examples, 1, BUCKETS)
    ]
    assert shapes == [(8, 8), (16, 24)]


def test_pad_source_batch():
    sources = [batching.encode_source(text, VOCAB) for text in ["abc", "a" * 20]]
    batch = batching.pad_source_batch(sources, 4, BUCKETS)
    assert set(batch) == {"src", "src_mask", "valid"}
    assert batch["src"].shape == (4, 24)
    np.testing.assert_array_equal(batch["src_mask"], batch["src"] != PAD_ID)
    np.testing.assert_array_equal(batch["src"][0, :5], [4, 5, 6, EOS_ID, PAD_ID])
    np.testing.assert_array_equal(batch["valid"], [True, True, False, False])
    assert batching.pad_source_batch(sources[:1], 4, BUCKETS)["src"].shape == (4, 8)
    with pytest.raises(ValueError):
        batching.pad_source_batch(sources * 3, 4, BUCKETS)


def test_token_budget_batch_sizes():
    sizes = batching.token_budget_batch_sizes([(8, 8), (16, 24), (64, 32)], 1000, 4)
    assert sizes == [124, 40, 12]
    assert batching.token_budget_batch_sizes([(600, 8)], 1000, 4) == [4]


def test_per_bucket_batch_sizes_give_per_bucket_shapes():
    examples = reversal_examples(3000)
    batches = batching.TrainBatches(
        examples, [48, 16], BUCKETS, seed=0, process_index=1, process_count=2
    )
    assert batches.shapes == [(8, 8, 48), (16, 24, 16)]
    seen = set()
    for step in range(batches.steps_per_epoch):
        batch = batches.batch(step)
        shape = batch["src"].shape[1:] + batch["tgt_out"].shape[1:]
        rows = {(8, 8): 24, (16, 24): 8}[shape]
        check_batch(batch, shape, rows)
        seen.add(shape)
    assert seen == set(BUCKETS)


def test_prefetch_keeps_order_and_reraises():
    assert list(batching.prefetch(iter(range(100)), 3)) == list(range(100))
    assert list(batching.prefetch(iter(range(5)), 0)) == list(range(5))

    def broken():
        yield 1
        raise RuntimeError("corrupt line")

    stream = batching.prefetch(broken(), 2)
    assert next(stream) == 1
    with pytest.raises(RuntimeError, match="corrupt line"):
        next(stream)
