"""Reads parallel corpora from local text files, with errors that say where.

Two layouts are supported: two aligned files with one sentence per line
(:func:`iter_aligned`, :func:`read_aligned`) and one ``source<TAB>target`` file
(:func:`iter_tsv`, :func:`read_tsv`). The ``iter_*`` functions stream a file of any
size in bounded memory; the ``read_*`` ones return lists. Every problem raises
:class:`CorpusError` naming the file and, where it applies, the 1-based line number.
:func:`held_out_split` carves a held-out set out of a corpus that has none.
"""

import hashlib
import itertools
import os
from collections.abc import Iterator

Pairs = list[tuple[str, str]]
# Bytes read at a time: large enough that decoding runs at C speed, small enough
# that a corpus of any size streams in bounded memory.
BLOCK_BYTES = 8 << 20


class CorpusError(ValueError):
    """A corpus file is missing, unreadable or malformed."""


def open_binary(path: str | os.PathLike):
    """``open(path, "rb")``, its errors a CorpusError naming the file."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, expected a text file") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None


def iter_lines(path: str | os.PathLike) -> Iterator[str]:
    """Yields the lines of a UTF-8 file without their "\\n" or "\\r\\n" ends.

    Only "\\n" separates lines: other characters `str.splitlines` would split on
    (form feeds, U+2028, ...) stay inside their sentence.
    """
    with open_binary(path) as f:
        offset, line, rest, first = 0, 1, b"", True
        while True:
            try:
                block = f.read(BLOCK_BYTES)
            except OSError as e:
                raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
            data = rest + block
            end = len(data) if not block else data.rfind(b"\n") + 1
            data, rest = data[:end], data[end:]
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                bad_line = line + data.count(b"\n", 0, e.start)
                raise CorpusError(
                    f"{path}, line {bad_line}: invalid UTF-8 at byte offset "
                    f"{offset + e.start} ({e.reason})"
                ) from None
            if first:  # A byte-order mark (Windows editors write one) is no part of line 1.
                text, first = text.removeprefix("\ufeff"), False
            lines = text.replace("\r\n", "\n").split("\n")
            if lines[-1] == "":  # the block ends with a newline, or is empty
                lines.pop()
            yield from lines
            offset, line = offset + len(data), line + len(lines)
            if not block:
                return


def is_blank(text: str) -> bool:
    """Empty or whitespace only: a side that training drops."""
    return not text or text.isspace()


def _handle_empty(pairs: Pairs, drop_empty: bool) -> tuple[Pairs, int]:
    """Drops the pairs with an empty (or blank) side if `drop_empty`."""
    if not drop_empty:
        return pairs, 0
    kept = [(s, t) for s, t in pairs if not (is_blank(s) or is_blank(t))]
    return kept, len(pairs) - len(kept)


def iter_aligned(
    src_path: str | os.PathLike, tgt_path: str | os.PathLike
) -> Iterator[tuple[str, str]]:
    """Streams the pairs of two line-aligned files (see :func:`read_aligned`); the
    line counts are checked when the shorter file ends."""
    missing = object()
    counts = [0, 0]
    for pair in itertools.zip_longest(
        iter_lines(src_path), iter_lines(tgt_path), fillvalue=missing
    ):
        counts[0] += pair[0] is not missing
        counts[1] += pair[1] is not missing
        if counts[0] == counts[1]:
            yield pair
    if counts[0] != counts[1]:
        raise CorpusError(
            f"Different line counts: {src_path} has {counts[0]} lines, {tgt_path} has {counts[1]}"
        )


def iter_tsv(path: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """Streams the pairs of a ``source<TAB>target`` file (see :func:`read_tsv`)."""
    for number, line in enumerate(iter_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) == 2:
            yield fields[0], fields[1]
        elif is_blank(line):
            yield line, ""
        else:
            raise CorpusError(
                f"{path}, line {number}: expected source<TAB>target, found {len(fields) - 1} tabs"
            )


def read_aligned(
    src_path: str | os.PathLike, tgt_path: str | os.PathLike, *, drop_empty: bool
) -> tuple[Pairs, int]:
    """Reads two line-aligned files: line i of one translates line i of the other.

    Args:
      src_path: the source sentences, one a line, UTF-8.
      tgt_path: the target sentences, as many lines as `src_path`.
      drop_empty: if True (training data), pairs with an empty or whitespace-only
        side are dropped; if False (evaluation data), they are kept as they are,
        so that line i of the output still belongs to line i of the files.

    Returns:
      The (source, target) pairs and how many pairs were dropped.

    Raises:
      CorpusError: a file is missing or not valid UTF-8, or the line counts
        differ.
    """
    return _handle_empty(list(iter_aligned(src_path, tgt_path)), drop_empty)


def read_tsv(path: str | os.PathLike, *, drop_empty: bool) -> tuple[Pairs, int]:
    """Reads one pair a line, ``source<TAB>target``, UTF-8.

    Args:
      path: the file.
      drop_empty: as in :func:`read_aligned`; an empty line counts as a pair
        with two empty sides.

    Returns:
      The (source, target) pairs and how many pairs were dropped.

    Raises:
      CorpusError: the file is missing or not valid UTF-8, or a non-empty line
        does not hold exactly one tab.
    """
    return _handle_empty(list(iter_tsv(path)), drop_empty)


def unit_hash(seed: int, source: str) -> float:
    """A uniform number in [0, 1) that depends only on `seed` and `source`."""
    digest = hashlib.blake2b(f"{seed}\t{source}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def held_out_split(pairs: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs]:
    """Splits one corpus into (train, held_out) by a seeded hash of the source.

    A pair goes to the held-out side when the hash of (seed, source) falls below
    `fraction`, so the side depends on nothing else: repeated sources always land
    on the same side (no train/test leakage) and reordering the input only
    reorders each side, which keeps the input order.

    Args:
      pairs: the corpus.
      fraction: the expected share of held-out pairs, in (0, 1).
      seed: selects one of many such splits.

    Returns:
      The training pairs and the held-out pairs.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    train, held_out = [], []
    for pair in pairs:
        (held_out if unit_hash(seed, pair[0]) < fraction else train).append(pair)
    return train, held_out
