"""SentencePiece subword vocabularies implementing `Vocab`.

`SentencePieceVocab` round-trips any text exactly (`decode(encode(s)) == s`
for every string without lone surrogates): the model is trained without
normalization, keeps every space, and falls back to UTF-8 byte pieces instead
of UNK. Models are trained once on the training split and cached as a
`.model` file, the only artifact needed to rebuild the vocabulary.
"""

import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

import numpy as np
import sentencepiece as spm
from absl import logging

from s2s_jax.data.readers import CorpusError
from s2s_jax.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_CHAR, UNK_ID, strip_specials
from s2s_jax.runtime.atomic_files import write_atomically

ModelType = Literal["unigram", "bpe"]
T = TypeVar("T")

# SentencePiece writes spaces as this meta symbol (U+2581) inside pieces, and
# decodes the symbol back to a space wherever it comes from.
_SPACE_SYMBOL = "\N{LOWER ONE EIGHTH BLOCK}"

# Options shared by every model; the trained model depends on all of them
# (even on num_threads), so they are fixed and part of `cache_name`.
_TRAINER_OPTIONS = dict(
    pad_id=PAD_ID,
    unk_id=UNK_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    unk_surface=UNK_CHAR,
    # Exact round trip: no Unicode normalization, keep runs of spaces, and
    # encode characters outside the vocabulary as UTF-8 byte pieces.
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    byte_fallback=True,
    # The rarest characters become bytes rather than vocabulary entries.
    character_coverage=0.9995,
    # The wrapper adds the dummy prefix itself (see SentencePieceVocab.encode).
    add_dummy_prefix=False,
    split_digits=True,
    num_threads=2,
)

_TOO_LARGE = re.compile(
    r"Vocabulary size too high \(\d+\)\. "
    r"Please set it to a value <= (\d+)"
)
_TOO_SMALL = re.compile(
    r"Vocabulary size is smaller than required_chars\. "
    r"\d+ vs (\d+)"
)


class SentencePieceVocab:
    """A SentencePiece model trained by `train_sentencepiece`."""

    file_suffix = ".model"

    def __init__(self, model_path: str):
        self._sp = spm.SentencePieceProcessor(model_file=model_path)
        specials = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(
                f"{model_path} has special ids {specials}, "
                f"expected {(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}"
            )
        self._space_symbol_ids = [
            self._sp.piece_to_id(f"<0x{b:02X}>") for b in _SPACE_SYMBOL.encode()
        ]
        if not all(map(self._sp.is_byte, self._space_symbol_ids)):
            raise ValueError(f"{model_path} was trained without byte_fallback")

    @property
    def size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Returns the subword ids of `text`; no BOS/EOS, never UNK."""
        # A leading space makes the first word look like the others ("▁The"),
        # as SentencePiece's own dummy prefix would. The space symbol itself
        # goes in as UTF-8 bytes, or it would come back as a space.
        first, *rest = (" " + text).split(_SPACE_SYMBOL)
        ids = self._sp.encode(first)
        for segment in rest:
            ids += self._space_symbol_ids + self._sp.encode(segment)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(text) for text in texts]``, encoded on every core."""
        ids = self._sp.encode([" " + text for text in texts], num_threads=os.cpu_count() or 1)
        for i, text in enumerate(texts):
            if _SPACE_SYMBOL in text:  # rare: the slow path keeps its bytes
                ids[i] = self.encode(text)
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Decodes `[length]` ids up to the first EOS_ID, skipping PAD and BOS."""
        return self._sp.decode(strip_specials(ids)).removeprefix(" ")

    def piece(self, i: int) -> str:
        """Returns the piece for id `i`, e.g. "▁Haus", "<0xE2>" or "</s>"."""
        if not 0 <= i < self.size:
            raise ValueError(f"id {i} out of range for vocabulary of size {self.size}")
        return self._sp.id_to_piece(i)

    def save(self, path: str) -> None:
        """Writes the model (all that rebuilds this vocabulary) to `path`."""
        write_atomically(path, self._sp.serialized_model_proto())


def cache_name(model_type: ModelType, vocab_size: int, data: str) -> str:
    """Returns a file name for `load_or_train`, e.g. "spm_bpe_8000_1a2b3c4d5e".

    The suffix hashes `data` and the fixed trainer options, so a change of
    either gives a new name rather than a stale cached model.

    Args:
      model_type: "unigram" or "bpe".
      vocab_size: the number of pieces, specials included.
      data: describes the training texts, e.g. "wmt14/de-en/train/de".
    """
    key = json.dumps([data, _TRAINER_OPTIONS], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"spm_{model_type}_{vocab_size}_{digest}"


def train_sentencepiece(
    texts: Iterable[str], path: str, vocab_size: int, model_type: ModelType
) -> SentencePieceVocab:
    """Trains a SentencePiece model on `texts` and writes it to `path`.

    The file is written atomically, and the same texts always give the same
    file (with the same sentencepiece version).

    Args:
      texts: the training sentences (the training split only), one per item.
        Empty ones are ignored.
      path: where to write the model, conventionally ending in ".model".
      vocab_size: the number of pieces, specials and 256 byte pieces included.
      model_type: "unigram" or "bpe".

    Returns:
      The trained vocabulary.

    Raises:
      CorpusError (a ValueError): if `texts` has no non-empty sentence, or
        `vocab_size` does not suit the corpus.
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    # With the dummy prefix that SentencePieceVocab.encode adds.
    sentences = (" " + text for text in texts if text)
    first = next(sentences, None)
    if first is None:
        raise CorpusError(
            "cannot train a SentencePiece model without any non-empty training sentence"
        )
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=itertools.chain([first], sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            minloglevel=1,
            **_TRAINER_OPTIONS,
        )
    except RuntimeError as e:
        if match := _TOO_LARGE.search(str(e)):
            raise CorpusError(
                f"vocabulary size {vocab_size} is too large for this corpus: "
                f"the largest it supports is {match[1]}; lower "
                "config.data.vocab_size"
            ) from e
        if match := _TOO_SMALL.search(str(e)):
            raise CorpusError(
                f"vocabulary size {vocab_size} is too small for this corpus: "
                f"it needs at least {match[1]} pieces for the specials, the "
                "256 bytes and its characters; raise config.data.vocab_size"
            ) from e
        raise
    write_atomically(path, model.getvalue())
    return SentencePieceVocab(path)


def reservoir_sample(items: Iterable[T], size: int, seed: int, chunk: int = 1 << 16) -> list[T]:
    """A uniform random sample of at most `size` of `items`, drawn in one pass
    holding `size` items (Algorithm R, its random slots drawn `chunk` at a time);
    all of them, in order, when there are no more than `size`. The same items and
    seed give the same sample."""
    rng = np.random.default_rng(seed)
    sample: list[T] = []
    seen = 0
    iterator = iter(items)
    while block := list(itertools.islice(iterator, chunk)):
        fill = max(0, min(len(block), size - seen))
        sample += block[:fill]
        # Item number j (0-based) replaces slot s ~ U{0..j} when s < size.
        slots = rng.integers(0, np.arange(seen + fill, seen + len(block)) + 1)
        for k in np.flatnonzero(slots < size):
            sample[slots[k]] = block[fill + k]
        seen += len(block)
    return sample


def load_or_train(
    cache_dir: str,
    name: str,
    texts_fn: Callable[[], Iterable[str]],
    vocab_size: int,
    model_type: ModelType,
) -> SentencePieceVocab:
    """Loads `<cache_dir>/<name>.model`, training and caching it if missing.

    Args:
      cache_dir: the directory of cached models, created if needed.
      name: identifies the model and the options it is trained with, e.g.
        from `cache_name`.
      texts_fn: returns the training texts; only called to train.
      vocab_size: see `train_sentencepiece`.
      model_type: see `train_sentencepiece`.
    """
    path = os.path.join(cache_dir, f"{name}.model")
    if os.path.exists(path):
        return SentencePieceVocab(path)
    logging.info(
        "Training a %s SentencePiece model of %d pieces into %s", model_type, vocab_size, path
    )
    os.makedirs(cache_dir, exist_ok=True)
    return train_sentencepiece(texts_fn(), path, vocab_size, model_type)
