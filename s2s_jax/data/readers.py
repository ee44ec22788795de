"""Reads parallel corpora from local text files, with errors that say where.

Two layouts are supported: two aligned files with one sentence per line
(:func:`read_aligned`) and one ``source<TAB>target`` file (:func:`read_tsv`).
Every problem raises :class:`CorpusError` naming the file and, where it applies,
the 1-based line number. :func:`held_out_split` carves a held-out set out of a
corpus that has none.
"""

import hashlib
import os
import pathlib

Pairs = list[tuple[str, str]]


class CorpusError(ValueError):
    """A corpus file is missing, unreadable or malformed."""


def _read_lines(path: str | os.PathLike) -> list[str]:
    """Returns the lines of a UTF-8 file without their "\\n" or "\\r\\n" ends.

    Only "\\n" separates lines: other characters `str.splitlines` would split on
    (form feeds, U+2028, ...) stay inside their sentence.
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, expected a text file") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(
            f"{path}, line {line}: invalid UTF-8 at byte offset {e.start} "
            f"({e.reason})") from None
    # A byte-order mark (Windows editors write one) is no part of the first sentence.
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    if lines[-1] == "":  # The file ends with a newline, or is empty.
        lines.pop()
    return lines


def _is_empty(text: str) -> bool:
    return not text or text.isspace()


def _handle_empty(pairs: Pairs, drop_empty: bool) -> tuple[Pairs, int]:
    """Drops the pairs with an empty (or blank) side if `drop_empty`."""
    if not drop_empty:
        return pairs, 0
    kept = [(s, t) for s, t in pairs if not (_is_empty(s) or _is_empty(t))]
    return kept, len(pairs) - len(kept)


def read_aligned(src_path: str | os.PathLike, tgt_path: str | os.PathLike, *,
                 drop_empty: bool) -> tuple[Pairs, int]:
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
    src_lines, tgt_lines = _read_lines(src_path), _read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise CorpusError(
            f"Different line counts: {src_path} has {len(src_lines)} lines, "
            f"{tgt_path} has {len(tgt_lines)}")
    return _handle_empty(list(zip(src_lines, tgt_lines)), drop_empty)


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
    pairs = []
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) == 2:
            pairs.append((fields[0], fields[1]))
        elif _is_empty(line):
            pairs.append((line, ""))
        else:
            raise CorpusError(
                f"{path}, line {number}: expected source<TAB>target, found "
                f"{len(fields) - 1} tabs")
    return _handle_empty(pairs, drop_empty)


def _unit_hash(seed: int, source: str) -> float:
    """A uniform number in [0, 1) that depends only on `seed` and `source`."""
    digest = hashlib.blake2b(f"{seed}\t{source}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def held_out_split(pairs: Pairs, fraction: float,
                   seed: int) -> tuple[Pairs, Pairs]:
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
        (held_out if _unit_hash(seed, pair[0]) < fraction else train).append(pair)
    return train, held_out
