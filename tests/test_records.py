"""Records: training pairs encoded on disk read back exactly as encoded in memory; a
killed or damaged build is never trusted."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from s2s_jax.config import base_config
from s2s_jax.data import records
from s2s_jax.data.batching import TrainBatches, encode_pairs
from s2s_jax.data.readers import CorpusError
from s2s_jax.data.sources import load_corpus
from s2s_jax.data.tasks import make_splits
from s2s_jax.data.vocab import CharVocab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = make_splits("dates", 0, {"train": 300})["train"]
VOCAB = CharVocab("".join(sorted({c for pair in PAIRS for c in pair[0] + pair[1]})))


def _rows(data, ids):
    src, tgt = data.rows(ids)
    return [row.tolist() for row in src], [row.tolist() for row in tgt]


def test_records_hold_what_encoding_in_memory_gives_across_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "SHARD_PAIRS", 64)  # 5 shards
    monkeypatch.setattr(records, "CHUNK_PAIRS", 50)  # chunks across shard ends
    blank = [("", "x"), ("a b", " "), ("\t", "y")]
    built = records.build(
        str(tmp_path / "r"), iter(PAIRS[:150] + blank + PAIRS[150:]), VOCAB, VOCAB, {"what": "test"}
    )
    examples = encode_pairs(PAIRS, VOCAB, VOCAB)
    assert len(built) == len(PAIRS) and built.manifest["num_dropped_empty"] == 3
    assert len(built.manifest["shards"]) == 5 and built.manifest["dtype"] == "<u2"
    np.testing.assert_array_equal(built.lengths, examples.lengths)
    ids = np.random.default_rng(0).permutation(len(PAIRS))[:100]
    assert _rows(built, ids) == _rows(examples, ids)
    assert built.rows_read == 100
    reopened = records.open_records(str(tmp_path / "r"))
    assert _rows(reopened, [0, 299]) == _rows(examples, [0, 299])
    assert not os.path.exists(tmp_path / "r.partial")


def test_train_batches_are_the_same_from_disk_and_from_memory(tmp_path):
    built = records.build(str(tmp_path / "r"), iter(PAIRS), VOCAB, VOCAB, {})
    examples = encode_pairs(PAIRS, VOCAB, VOCAB)
    on_disk = TrainBatches(built, 16, ((16, 12), (32, 12)), seed=3)
    in_memory = TrainBatches(examples, 16, ((16, 12), (32, 12)), seed=3)
    assert on_disk.shapes == in_memory.shapes
    for step in (0, 1, on_disk.steps_per_epoch + 2):
        a, b = on_disk.batch(step), in_memory.batch(step)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_pairs_longer_than_the_length_index_holds_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_TOKENS", 12)
    built = records.build(str(tmp_path / "r"), iter(PAIRS), VOCAB, VOCAB, {})
    long = sum(len(s) + 1 > 12 or len(t) > 12 for s, t in PAIRS)
    assert 0 < long < len(PAIRS)
    assert built.manifest["num_dropped_long"] == long and len(built) == len(PAIRS) - long


def test_damaged_records_are_refused_naming_the_file(tmp_path):
    built = records.build(str(tmp_path / "r"), iter(PAIRS), VOCAB, VOCAB, {})
    shard = os.path.join(built.path, built.manifest["shards"][0]["name"])
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 10)
    with pytest.raises(CorpusError, match=f"{shard}: missing or not the size"):
        records.open_records(built.path)
    with pytest.raises(CorpusError, match="not a complete records directory"):
        records.open_records(str(tmp_path / "absent"))


def _config(train_path: str):
    config = base_config()
    with config.unlocked():
        config.data.update(source="files", tokenizer="char", train_path=train_path)
    return config


# Run as a script by the test below: preprocesses, and stops for good (to be killed)
# once the records are half written.
_KILLED_BUILD = """
import sys, time
from s2s_jax.data import records
from tests.test_records import _config
from s2s_jax.data.sources import load_corpus
records.CHUNK_PAIRS = 20
encode, calls = records._encode_chunk, []
def encode_then_stall(*args):
    calls.append(1)
    if len(calls) == 3:  # two chunks are written
        open(sys.argv[2], "w").close()
        time.sleep(600)
    return encode(*args)
records._encode_chunk = encode_then_stall
load_corpus(_config(sys.argv[1]), sys.argv[3])
"""


def test_sigkill_during_preprocessing_leaves_nothing_trusted(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS))
    flag, workdir = tmp_path / "half_written", tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD, str(corpus), str(flag), str(workdir)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = os.listdir(workdir / "records")
    partial = [name for name in left if name.endswith(".partial")]
    assert len(partial) == 1 and os.listdir(workdir / "records" / partial[0])
    assert not [
        name
        for name in left  # no records a run would open
        if "." not in name and (workdir / "records" / name).is_dir()
    ]

    rerun = load_corpus(_config(str(corpus)), str(workdir))  # builds them afresh
    clean = load_corpus(_config(str(corpus)), str(tmp_path / "clean"))
    assert os.path.basename(rerun.train.path) == os.path.basename(clean.train.path)
    everything = range(len(clean.train))
    assert len(rerun.train) == len(clean.train) > 250
    assert _rows(rerun.train, everything) == _rows(clean.train, everything)
    assert not os.path.exists(rerun.train.path + ".partial")
