"""Tests for s2s_jax.data.vocab."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2s_jax.data import vocab as vocab_lib
from s2s_jax.data.vocab import (
    BOS_ID,
    EOS_ID,
    NUM_SPECIALS,
    PAD_ID,
    SPECIAL_PIECES,
    UNK_CHAR,
    UNK_ID,
    CharVocab,
    WordVocab,
)

ALPHABET = "abc xyz,.-0123456789é"


def test_special_ids():
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert vocab_lib.NUM_SPECIALS == 4
    vocab = CharVocab("ab")
    assert [vocab.piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_construction_is_deterministic():
    a, b = CharVocab("cabbage"), CharVocab(["g", "e", "c", "b", "a"])
    assert a.size == b.size == 4 + 5
    assert a.encode("cage") == b.encode("cage") == [6, 4, 8, 7]


def test_rejects_multi_character_items():
    with pytest.raises(ValueError):
        CharVocab(["ab", "c"])


@given(st.text(alphabet=ALPHABET))
def test_round_trip(text):
    vocab = CharVocab(ALPHABET)
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    assert all(vocab_lib.NUM_SPECIALS <= i < vocab.size for i in ids)
    assert vocab.decode(ids) == text
    assert vocab.decode(np.array(ids, np.int32)) == text


def test_unknown_characters():
    vocab = CharVocab("ab")
    assert vocab.encode("aXb") == [4, UNK_ID, 5]
    assert vocab.decode(vocab.encode("aXb")) == "a\N{REPLACEMENT CHARACTER}b"


def test_decode_stops_at_eos_and_skips_pad_and_bos():
    vocab = CharVocab("ab")
    ids = np.array([BOS_ID, 4, PAD_ID, 5, EOS_ID, 4, 4, PAD_ID])
    assert vocab.decode(ids) == "ab"
    assert vocab.decode([EOS_ID, 4]) == ""
    assert vocab.decode([]) == ""


def test_piece():
    vocab = CharVocab("ba ")
    assert [vocab.piece(i) for i in range(4, vocab.size)] == [" ", "a", "b"]
    with pytest.raises(ValueError):
        vocab.piece(vocab.size)


def test_save_load(tmp_path):
    vocab = CharVocab(ALPHABET)
    path = str(tmp_path / "vocab.json")
    vocab.save(path)
    loaded = CharVocab.load(path)
    assert loaded.size == vocab.size
    assert [loaded.piece(i) for i in range(loaded.size)] == [
        vocab.piece(i) for i in range(vocab.size)
    ]


def test_word_vocab():
    vocab = WordVocab.build(["b a c", " a  b ", "d a\tb e"], max_size=3)
    assert vocab.size == NUM_SPECIALS + 3
    # a (3 times), b (3 times), then c, d, e once each: c wins alphabetically.
    assert [vocab.piece(i) for i in range(vocab.size)] == [*SPECIAL_PIECES, "a", "b", "c"]
    assert vocab.encode("  c a\tz ") == [6, 4, UNK_ID]
    assert vocab.decode([BOS_ID, 6, PAD_ID, 4, UNK_ID, EOS_ID, 5]) == f"c a {UNK_CHAR}"
    assert vocab.decode(vocab.encode("a  b\tc ")) == "a b c"
    with pytest.raises(ValueError):
        vocab.piece(vocab.size)


@pytest.mark.parametrize("words", [["a", "a"], ["a b"], [""]])
def test_word_vocab_rejects_bad_words(words):
    with pytest.raises(ValueError):
        WordVocab(words)


def test_word_vocab_save_load(tmp_path):
    vocab = WordVocab(["grün", "Haus", "a"])
    path = str(tmp_path / "vocab.json")
    vocab.save(path)
    loaded = WordVocab.load(path)
    assert [loaded.piece(i) for i in range(loaded.size)] == [
        vocab.piece(i) for i in range(vocab.size)
    ]
