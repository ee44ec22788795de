"""Character-level vocabulary with fixed ids for the special tokens."""

import json
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

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

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def piece(self, i: int) -> str: ...


class CharVocab:
    """Maps single characters to ids; ids below NUM_SPECIALS are specials."""

    def __init__(self, chars: str | Iterable[str]):
        self._chars = sorted(set(chars))
        if any(len(c) != 1 for c in self._chars):
            raise ValueError(f"CharVocab needs single characters, got {self._chars}")
        self._ids = {c: i for i, c in enumerate(self._chars, start=NUM_SPECIALS)}

    @property
    def size(self) -> int:
        return NUM_SPECIALS + len(self._chars)

    def encode(self, text: str) -> list[int]:
        """Returns one id per character, UNK_ID for unknown ones; no BOS/EOS."""
        return [self._ids.get(c, UNK_ID) for c in text]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Decodes `[length]` ids up to the first EOS_ID, skipping PAD and BOS."""
        text = []
        for i in map(int, ids):
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                text.append(UNK_CHAR if i == UNK_ID else self.piece(i))
        return "".join(text)

    def piece(self, i: int) -> str:
        """Returns the character for id `i`, or the name of a special token."""
        if not 0 <= i < self.size:
            raise ValueError(f"id {i} out of range for vocabulary of size {self.size}")
        if i < NUM_SPECIALS:
            return SPECIAL_PIECES[i]
        return self._chars[i - NUM_SPECIALS]

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"type": "char", "chars": self._chars}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str) -> "CharVocab":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["chars"])
