"""Encoded training pairs on disk: built once per corpus and vocabularies, then opened
in well under a second by every later start, process and host.

A records directory holds:
  shard-NNNNN.array_record: one record per pair, the source ids (EOS included) then
      the target ids, little-endian ``dtype`` (uint16, or int32 for vocabularies of
      more than 65,536 pieces); ArrayRecord files with group_size:1, so any row is read
      on its own (``ArrayRecordDataSource``, the random-access source Grain reads too).
  lengths.npy: uint16 [num_pairs, 2]: each pair's source length (EOS included) and
      target length, the index bucketing works from (4 bytes a pair).
  manifest.json: written last: counts, dtype, shards and their sizes, what was encoded.

``build`` streams the pairs (any number, in bounded memory), encodes them in chunks
(SentencePiece on every core) and writes into ``<path>.partial``, renamed to ``path``
only when complete: a killed build leaves nothing a later run trusts, and the next
build starts over. ``open_records`` checks the manifest and the shard sizes.
"""

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from array_record.python.array_record_data_source import ArrayRecordDataSource
from array_record.python.array_record_module import ArrayRecordWriter

from s2s_jax.data.batching import prefetch
from s2s_jax.data.readers import CorpusError, is_blank
from s2s_jax.data.vocab import EOS_ID, Vocab

FORMAT = 1
MANIFEST = "manifest.json"
LENGTHS = "lengths.npy"
# Pairs per shard file (about 100 MB of WMT-like sentences) and per encoded chunk.
SHARD_PAIRS = 1 << 20
CHUNK_PAIRS = 1 << 14
# Lengths are stored as uint16; a longer side fits no bucket anyway.
MAX_TOKENS = np.iinfo(np.uint16).max
# Random access: one record a chunk, no compression (token ids barely compress).
_WRITER_OPTIONS = "group_size:1,uncompressed"


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    chunk = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclasses.dataclass
class Records:
    """An opened records directory: rows read on demand from its shards.

    Attributes:
      path: the directory.
      manifest: its manifest.json.
      lengths: uint16 [num_pairs, 2]: source length (EOS included), target length.
      rows_read: how many rows ``rows`` has returned (tests count them).
    """

    path: str
    manifest: dict
    lengths: np.ndarray
    rows_read: int = 0

    def __post_init__(self):
        self._dtype = np.dtype(self.manifest["dtype"])
        shards = [os.path.join(self.path, shard["name"]) for shard in self.manifest["shards"]]
        self._source = ArrayRecordDataSource(shards) if shards else None

    def __len__(self) -> int:
        return len(self.lengths)

    def rows(self, ids: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The pairs ``ids``: sources int [n_i + 1] ending in EOS_ID, targets [m_i]."""
        records = self._source.__getitems__([int(i) for i in ids])
        self.rows_read += len(records)
        src, tgt = [], []
        for i, record in zip(ids, records):
            ids_ = np.frombuffer(record, self._dtype)
            src.append(ids_[: self.lengths[i, 0]])
            tgt.append(ids_[self.lengths[i, 0] :])
        return src, tgt


def open_records(path: str) -> Records:
    """Opens a complete records directory (CorpusError if it is not one)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        lengths = np.load(os.path.join(path, LENGTHS), mmap_mode="r")
    except (OSError, ValueError) as error:
        raise CorpusError(f"{path}: not a complete records directory ({error})") from None
    if manifest.get("format") != FORMAT or len(lengths) != manifest["num_pairs"]:
        raise CorpusError(
            f"{path}: records of another format or damaged; delete the directory and it is rebuilt"
        )
    for shard in manifest["shards"]:
        shard_path = os.path.join(path, shard["name"])
        if not os.path.isfile(shard_path) or os.path.getsize(shard_path) != shard["bytes"]:
            raise CorpusError(
                f"{shard_path}: missing or not the size its manifest says "
                "(damaged); delete the directory and it is rebuilt"
            )
    return Records(path, manifest, lengths)


class _ShardWriter:
    """Writes records into shard files of SHARD_PAIRS records each."""

    def __init__(self, directory: str):
        self.directory = directory
        self.shards: list[dict] = []
        self._writer = None
        self._count = 0

    def write(self, record: bytes) -> None:
        if self._writer is None or self._count == SHARD_PAIRS:
            self.close()
            name = f"shard-{len(self.shards):05d}.array_record"
            self.shards.append({"name": name})
            self._writer = ArrayRecordWriter(os.path.join(self.directory, name), _WRITER_OPTIONS)
            self._count = 0
        self._writer.write(record)
        self._count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            shard = self.shards[-1]
            shard["bytes"] = os.path.getsize(os.path.join(self.directory, shard["name"]))


def _encode_chunk(
    chunk: list[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab, dtype: np.dtype
) -> tuple[list[bytes], np.ndarray, int]:
    """(records, lengths [n, 2], pairs dropped for a side over MAX_TOKENS)."""
    sources = src_vocab.encode_batch([src for src, _ in chunk])
    targets = tgt_vocab.encode_batch([tgt for _, tgt in chunk])
    records, lengths = [], []
    for src, tgt in zip(sources, targets):
        src.append(EOS_ID)
        if len(src) <= MAX_TOKENS and len(tgt) <= MAX_TOKENS:
            records.append(np.array(src + tgt, dtype).tobytes())
            lengths.append((len(src), len(tgt)))
    return records, np.array(lengths, np.uint16).reshape(-1, 2), len(chunk) - len(records)


def _write_json(path: str, content: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def build(
    path: str,
    pairs: Iterable[tuple[str, str]],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    description: dict,
) -> Records:
    """Encodes the training ``pairs`` into a records directory at ``path``.

    Pairs with an empty or blank side are dropped (``num_dropped_empty``), and so
    are pairs with a side longer than MAX_TOKENS (``num_dropped_long``).
    ``description`` (what the pairs and vocabularies are) goes into the manifest.
    """
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a killed build left
    os.makedirs(partial)
    started = time.perf_counter()
    dtype = np.dtype("<u2" if max(src_vocab.size, tgt_vocab.size) <= 1 << 16 else "<i4")
    writer = _ShardWriter(partial)
    lengths, dropped_empty, dropped_long = [], 0, 0
    for chunk in prefetch(_chunks(pairs, CHUNK_PAIRS), 2):  # reading overlaps encoding
        kept = [(s, t) for s, t in chunk if not (is_blank(s) or is_blank(t))]
        dropped_empty += len(chunk) - len(kept)
        records, chunk_lengths, too_long = _encode_chunk(kept, src_vocab, tgt_vocab, dtype)
        for record in records:
            writer.write(record)
        lengths.append(chunk_lengths)
        dropped_long += too_long
    writer.close()
    lengths = np.concatenate(lengths or [np.zeros((0, 2), np.uint16)])
    np.save(os.path.join(partial, LENGTHS), lengths)
    _write_json(
        os.path.join(partial, MANIFEST),
        {
            "format": FORMAT,
            "num_pairs": len(lengths),
            "num_dropped_empty": dropped_empty,
            "num_dropped_long": dropped_long,
            "dtype": dtype.str,
            "shards": writer.shards,
            "description": description,
            "build_seconds": round(time.perf_counter() - started, 1),
        },
    )
    shutil.rmtree(path, ignore_errors=True)  # a damaged earlier build, if any
    os.replace(partial, path)
    return open_records(path)
