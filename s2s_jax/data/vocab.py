"""Vocabularies: the interface, the fixed special ids, character and word vocabularies."""

import collections
import json
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from s2s_jax.runtime.atomic_files import write_atomically

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
NUM_SPECIALS = 4
SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")
UNK_CHAR = "\N{REPLACEMENT CHARACTER}"


class Vocab(Protocol):
    """The tokenizer interface the data pipeline and the models rely on."""

    @property
    def size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(text) for text in texts]``, as fast as the vocabulary can."""

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def piece(self, i: int) -> str: ...


def one_line(text: str) -> str:
    """``text`` with each line break (any that ``str.splitlines`` splits on: "\\r",
    form feed, U+2028, ...) made a space: one output line per input line."""
    return " ".join(text.splitlines())


def strip_specials(ids: Sequence[int] | np.ndarray) -> list[int]:
    """Returns `ids` up to the first EOS_ID, without PAD_ID and BOS_ID."""
    kept = []
    for i in map(int, ids):
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            kept.append(i)
    return kept


class _TokenListVocab:
    """A fixed list of tokens, ids from NUM_SPECIALS on; subclasses say how text
    splits into tokens (`_split`) and how tokens join back (`separator`)."""

    kind = ""  # the "type" written by save
    separator = ""
    file_suffix = ".json"

    def __init__(self, tokens: Sequence[str]):
        self._tokens = list(tokens)
        self._ids = {t: i for i, t in enumerate(self._tokens, start=NUM_SPECIALS)}

    @staticmethod
    def _split(text: str) -> list[str]:
        raise NotImplementedError

    @property
    def size(self) -> int:
        return NUM_SPECIALS + len(self._tokens)

    def encode(self, text: str) -> list[int]:
        """Returns one id per token, UNK_ID for unknown ones; no BOS/EOS."""
        return [self._ids.get(t, UNK_ID) for t in self._split(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Decodes `[length]` ids up to the first EOS_ID, skipping PAD and BOS."""
        return self.separator.join(
            UNK_CHAR if i == UNK_ID else self.piece(i) for i in strip_specials(ids)
        )

    def piece(self, i: int) -> str:
        """Returns the token for id `i`, or the name of a special token."""
        if not 0 <= i < self.size:
            raise ValueError(f"id {i} out of range for vocabulary of size {self.size}")
        if i < NUM_SPECIALS:
            return SPECIAL_PIECES[i]
        return self._tokens[i - NUM_SPECIALS]

    def save(self, path: str) -> None:
        write_atomically(
            path, json.dumps({"type": self.kind, "tokens": self._tokens}, ensure_ascii=False)
        )

    @classmethod
    def load(cls, path: str):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["tokens"])


class CharVocab(_TokenListVocab):
    """Maps single characters to ids (sorted, so construction is deterministic)."""

    kind = "char"

    def __init__(self, chars: str | Iterable[str]):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise ValueError(f"CharVocab needs single characters, got {chars}")
        super().__init__(chars)

    @staticmethod
    def _split(text: str) -> list[str]:
        return list(text)


class WordVocab(_TokenListVocab):
    """Maps whitespace-separated words to ids; meant for small tasks.

    `decode` joins words with single spaces, so the round trip is exact only for
    texts of words separated by single spaces, without leading or trailing
    whitespace and without unknown words.
    """

    kind = "word"
    separator = " "

    def __init__(self, words: Sequence[str]):
        """Gives `words[k]` the id `NUM_SPECIALS + k`."""
        if len(set(words)) != len(words):
            raise ValueError("WordVocab needs distinct words")
        if any(w.split() != [w] for w in words):
            raise ValueError("WordVocab words must be non-empty, without whitespace")
        super().__init__(words)

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int) -> "WordVocab":
        """Keeps the `max_size` most frequent words, ties broken alphabetically."""
        counts = collections.Counter(w for text in texts for w in text.split())
        return cls(sorted(counts, key=lambda w: (-counts[w], w))[:max_size])

    @staticmethod
    def _split(text: str) -> list[str]:
        return text.split()
