"""A vocabulary as one file, whatever its kind: what a trained model carries with it.

``save_vocab(vocab, stem)`` writes ``<stem>.json`` (character and word vocabularies:
their tokens) or ``<stem>.model`` (a SentencePiece model); ``load_vocab`` reads either
back into the same vocabulary, with no training data.
"""

import glob
import hashlib
import json

from s2s_jax.data.readers import CorpusError
from s2s_jax.data.sentencepiece_vocab import SentencePieceVocab
from s2s_jax.data.vocab import CharVocab, Vocab, WordVocab

# The "type" a JSON vocabulary file names -> its class.
TOKEN_LIST_VOCABS = {cls.kind: cls for cls in (CharVocab, WordVocab)}


def save_vocab(vocab: Vocab, stem: str) -> str:
    """Writes ``vocab`` to ``stem`` + its kind's suffix and returns that path."""
    path = stem + vocab.file_suffix
    vocab.save(path)
    return path


def vocab_path(stem: str) -> str:
    """The one vocabulary file ``<stem>.*`` (CorpusError if there is none)."""
    found = sorted(glob.glob(glob.escape(stem) + ".*"))
    if not found:
        raise CorpusError(f"{stem}.json or {stem}.model: no such vocabulary file")
    return found[0]


def load_vocab(path: str) -> Vocab:
    """The vocabulary ``save_vocab`` wrote to ``path``."""
    if path.endswith(SentencePieceVocab.file_suffix):
        try:
            return SentencePieceVocab(path)
        except (OSError, RuntimeError, ValueError) as error:
            raise CorpusError(f"{path}: not a usable SentencePiece model: {error}") from None
    try:
        with open(path, encoding="utf-8") as f:
            kind = json.load(f)["type"]
        return TOKEN_LIST_VOCABS[kind].load(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorpusError(
            f"{path}: not a vocabulary file ({type(error).__name__}: {error})"
        ) from None


def same_vocab(a: Vocab, b: Vocab) -> bool:
    """Whether ``a`` and ``b`` map the same ids to the same pieces."""
    return (
        type(a) is type(b)
        and a.size == b.size
        and all(a.piece(i) == b.piece(i) for i in range(a.size))
    )


def vocab_digest(vocab: Vocab) -> str:
    """A digest of ``vocab``'s kind and pieces: equal for vocabularies ``same_vocab``."""
    digest = hashlib.sha256(type(vocab).__name__.encode())
    for i in range(vocab.size):
        digest.update(b"\0" + vocab.piece(i).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]
