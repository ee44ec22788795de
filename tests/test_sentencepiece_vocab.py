"""Tests for s2s_jax.data.sentencepiece_vocab."""

import os
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from s2s_jax.data import sentencepiece_vocab
from s2s_jax.data.vocab import (
    BOS_ID,
    EOS_ID,
    NUM_SPECIALS,
    PAD_ID,
    SPECIAL_PIECES,
    UNK_CHAR,
    UNK_ID,
)

VOCAB_SIZE = 360
WORDS = """
the house is small and green , we were there yesterday . It's 5 o'clock !
das Haus ist klein und grün ; wir waren gestern dort . Straße Öl über Mädchen
la maison est petite et verte ? nous étions là hier . garçon façon où déjà
dům je malý a zelený , byli jsme tam včera . příliš žluťoučký kůň úpěl ódy
1 2 3 42 2024 3.14 ( ) " - : % € 100 000
""".split()

# Any text without newlines, with extra chances of spaces, tabs, the
# SentencePiece space symbol, CJK, emoji and right-to-left scripts.
TEXTS = st.text(
    alphabet=st.one_of(
        st.sampled_from(" \t\u2581\u3000é日本😀שלוםمرحبا"),
        st.characters(exclude_categories=("Cs",), exclude_characters="\n\r"),
    )
)


def make_corpus(num_lines: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(num_lines)
    ]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def vocab(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp(request.param) / "spm.model")
    return sentencepiece_vocab.train_sentencepiece(make_corpus(), path, VOCAB_SIZE, request.param)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
@example("")
@example(" ")
@example("  leading and trailing  ")
@example("double  spaces\tand\ttabs")
@example("\u2581 a\u2581b \u2581\u2581")
@example("日本語のテキスト 😀👍🏽 שלום עולם مرحبا بالعالم")
@example("<s></s><pad><unk><0x41> \N{REPLACEMENT CHARACTER}")
def test_round_trip(vocab, text):
    ids = vocab.encode(text)
    assert all(NUM_SPECIALS <= i < vocab.size for i in ids)
    assert vocab.decode(ids) == text
    assert vocab.decode(np.array(ids + [EOS_ID], np.int32)) == text


def test_size_and_pieces(vocab):
    assert vocab.size == VOCAB_SIZE
    assert [vocab.piece(i) for i in range(NUM_SPECIALS)] == list(SPECIAL_PIECES)
    assert vocab.piece(NUM_SPECIALS) == "<0x00>"  # Then the 256 byte pieces.
    assert "".join(map(vocab.piece, vocab.encode("das Haus"))) == "▁das▁Haus"
    with pytest.raises(ValueError):
        vocab.piece(vocab.size)


def test_first_word_is_encoded_like_the_others(vocab):
    ids = vocab.encode("Haus Haus")
    assert ids[: len(ids) // 2] == ids[len(ids) // 2 :]


def test_decode_stops_at_eos_and_skips_pad_and_bos(vocab):
    a, b = vocab.encode("Haus"), vocab.encode("dort")
    ids = np.array([BOS_ID, *a, PAD_ID, *b, EOS_ID, *a, PAD_ID])
    assert vocab.decode(ids) == "Haus dort"
    assert vocab.decode([EOS_ID, *a]) == ""
    assert vocab.decode([]) == ""
    assert vocab.decode([UNK_ID]) == UNK_CHAR


def test_training_is_deterministic(tmp_path):
    corpus = make_corpus()
    sample = make_corpus(20, seed=1)
    for model_type in ("unigram", "bpe"):
        paths = [str(tmp_path / f"{model_type}{k}.model") for k in range(2)]
        a, b = (
            sentencepiece_vocab.train_sentencepiece(iter(corpus), p, VOCAB_SIZE, model_type)
            for p in paths
        )
        assert [a.encode(s) for s in sample] == [b.encode(s) for s in sample]
        with open(paths[0], "rb") as f0, open(paths[1], "rb") as f1:
            assert f0.read() == f1.read()


def test_load_or_train_trains_once(tmp_path):
    calls = []

    def texts_fn():
        calls.append(1)
        return make_corpus()

    cache_dir = str(tmp_path / "cache")
    name = sentencepiece_vocab.cache_name("bpe", VOCAB_SIZE, "test corpus")
    trained = sentencepiece_vocab.load_or_train(cache_dir, name, texts_fn, VOCAB_SIZE, "bpe")
    path = os.path.join(cache_dir, f"{name}.model")
    mtime = os.stat(path).st_mtime_ns
    loaded = sentencepiece_vocab.load_or_train(cache_dir, name, texts_fn, VOCAB_SIZE, "bpe")
    assert len(calls) == 1
    assert os.stat(path).st_mtime_ns == mtime
    assert os.listdir(cache_dir) == [f"{name}.model"]  # No temporary file left.
    assert loaded.encode("das Haus") == trained.encode("das Haus")


def test_cache_name():
    name = sentencepiece_vocab.cache_name("unigram", 8000, "wmt/de-en")
    assert name.startswith("spm_unigram_8000_")
    assert name == sentencepiece_vocab.cache_name("unigram", 8000, "wmt/de-en")
    assert name != sentencepiece_vocab.cache_name("unigram", 8000, "wmt/fr-en")


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_too_large_vocab_size(tmp_path, model_type):
    path = tmp_path / "spm.model"
    with pytest.raises(
        ValueError,
        match=r"100000 .* largest it supports is \d+"
        r".* lower config\.data\.vocab_size",
    ):
        sentencepiece_vocab.train_sentencepiece(make_corpus(), str(path), 100_000, model_type)
    assert not os.listdir(tmp_path)


def test_too_small_vocab_size(tmp_path):
    with pytest.raises(ValueError, match=r"100 .* at least \d+ .*config\.data\.vocab_size"):
        sentencepiece_vocab.train_sentencepiece(
            make_corpus(), str(tmp_path / "spm.model"), 100, "unigram"
        )


@pytest.mark.parametrize("texts", [[], ["", ""]])
def test_empty_corpus(tmp_path, texts):
    with pytest.raises(ValueError, match="non-empty"):
        sentencepiece_vocab.train_sentencepiece(
            texts, str(tmp_path / "spm.model"), VOCAB_SIZE, "bpe"
        )


def test_unknown_model_type(tmp_path):
    with pytest.raises(ValueError, match="model_type"):
        sentencepiece_vocab.train_sentencepiece(
            make_corpus(), str(tmp_path / "spm.model"), VOCAB_SIZE, "word"
        )


@pytest.mark.parametrize("chunk", [1 << 16, 64])  # one block of draws, or many
def test_reservoir_sample_is_uniform_seeded_and_whole_when_small(chunk):
    items = list(range(1000))
    tokenizer_sample = sentencepiece_vocab.reservoir_sample

    def reservoir_sample(items, size, seed):
        return tokenizer_sample(items, size, seed, chunk)

    assert reservoir_sample(items, 1000, seed=3) == items  # no larger: all, in order
    assert reservoir_sample(iter(items[:7]), 10, seed=3) == items[:7]
    sample = reservoir_sample(iter(items), 100, seed=3)
    assert len(set(sample)) == 100 and sample == reservoir_sample(items, 100, 3)
    assert sample != reservoir_sample(items, 100, seed=4)
    # Each item is kept with probability 100/1000: over 2,000 draws, every tenth of the
    # stream gets 10% of the sample (binomial sd 0.21 points), early and late alike.
    counts = np.zeros(10)
    for seed in range(2000):
        np.add.at(counts, np.array(reservoir_sample(items, 100, seed)) // 100, 1)
    np.testing.assert_allclose(counts / counts.sum(), 0.1, atol=0.01)
