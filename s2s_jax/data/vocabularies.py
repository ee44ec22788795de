"""The vocabularies of a corpus, trained on its training pairs only: one builder per
``config.data.tokenizer`` (the ``TOKENIZERS`` registry), each cached under the pairs'
fingerprint so that a later start only loads it."""

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator

from s2s_jax.config.registry import Registry
from s2s_jax.data.readers import CorpusError, is_blank
from s2s_jax.data.sentencepiece_vocab import cache_name, load_or_train, reservoir_sample
from s2s_jax.data.vocab import NUM_SPECIALS, CharVocab, Vocab, WordVocab

# () -> the training texts of the vocabulary's sides, read anew at each call.
Texts = Callable[[], Iterator[str]]


def short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token_list(vocab_cls, build: Callable[[], Vocab], data, key: str, vocab_dir: str) -> Vocab:
    """A char or word vocabulary, built once into ``vocab_dir`` and loaded from there."""
    path = os.path.join(vocab_dir, f"{data.tokenizer}s_{data.vocab_size}_{short_digest(key)}.json")
    if not os.path.exists(path):
        os.makedirs(vocab_dir, exist_ok=True)
        build().save(path)
    return vocab_cls.load(path)


def _chars(data, texts: Texts, key: str, vocab_dir: str, seed: int) -> Vocab:
    """Every character of the texts (``data.vocab_size`` is not read)."""
    del seed

    def build() -> CharVocab:
        chars = set()
        for text in texts():
            chars.update(text)
        return CharVocab("".join(sorted(chars)))

    return _token_list(CharVocab, build, data, key, vocab_dir)


def _words(data, texts: Texts, key: str, vocab_dir: str, seed: int) -> Vocab:
    """The most frequent words: ``data.vocab_size`` ids in all, special tokens included
    (as a SentencePiece vocabulary of that size has)."""
    del seed
    build = lambda: WordVocab.build(texts(), data.vocab_size - NUM_SPECIALS)  # noqa: E731
    return _token_list(WordVocab, build, data, key, vocab_dir)


def _sentencepiece(data, texts: Texts, key: str, vocab_dir: str, seed: int) -> Vocab:
    """``data.vocab_size`` pieces trained on a seeded sample of
    ``data.vocab_sample_sentences`` texts (0: all of them)."""
    sample = data.vocab_sample_sentences
    return load_or_train(
        vocab_dir,
        cache_name(data.spm_model_type, data.vocab_size, f"{key}:sample {sample}, seed {seed}"),
        lambda: reservoir_sample(texts(), sample, seed) if sample else texts(),
        data.vocab_size,
        data.spm_model_type,
    )


TOKENIZERS = Registry(
    "data.tokenizer", {"char": _chars, "word": _words, "sentencepiece": _sentencepiece}
)


def _texts(stream, side: int) -> Iterator[str]:
    """One side of the training pairs training keeps (no blank side)."""
    for pair in stream.read():
        if not (is_blank(pair[0]) or is_blank(pair[1])):
            yield pair[side]


def _vocabulary(
    data, stream, sides: tuple[int, ...], name: str, vocab_dir: str, seed: int
) -> Vocab:
    """The vocabulary of the ``sides`` (0 source, 1 target) of ``stream``'s pairs."""
    texts = lambda: itertools.chain.from_iterable(_texts(stream, side) for side in sides)  # noqa: E731
    try:
        return TOKENIZERS[data.tokenizer](
            data, texts, f"{name}:{stream.fingerprint}", vocab_dir, seed
        )
    except CorpusError as error:
        raise CorpusError(f"{stream.name}: {error}") from None


def build_vocabularies(config, workdir: str, stream) -> tuple[Vocab, Vocab]:
    """The source and target vocabularies of the training pairs ``stream`` (a
    ``sources.PairStream``: ``name``, ``fingerprint``, ``read()``), one shared
    vocabulary with ``data.joint_vocab``; cached in ``data.vocab_dir``
    (default ``<workdir>/vocab``)."""
    data = config.data
    vocab_dir = data.vocab_dir or os.path.join(workdir, "vocab")
    if data.joint_vocab:
        vocab = _vocabulary(data, stream, (0, 1), "joint", vocab_dir, config.seed)
        return vocab, vocab
    return (
        _vocabulary(data, stream, (0,), "source", vocab_dir, config.seed),
        _vocabulary(data, stream, (1,), "target", vocab_dir, config.seed),
    )
