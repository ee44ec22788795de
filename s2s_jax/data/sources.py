"""Where (source, target) sentence pairs come from, and their vocabularies.

``load_corpus(config, workdir)`` returns a :class:`Corpus`: split name -> list of
string pairs (``train``, ``validation``, ``test`` and any extra test sets), and the
source and target vocabularies, trained on the training split only and cached. A
registry maps ``config.data.source`` to a loader, so a new source is one function
and one line. Training pairs with an empty side are dropped and counted; evaluation
splits keep every line (an empty source gets an empty translation).
"""

import contextlib
import dataclasses
import hashlib
import os
import sys
from typing import Callable

from s2s_jax.data import readers
from s2s_jax.data.readers import CorpusError, Pairs
from s2s_jax.data.tasks import make_splits
from s2s_jax.data.tokenizer import cache_name, load_or_train, reservoir_sample
from s2s_jax.data.vocab import CharVocab, Vocab, WordVocab


@dataclasses.dataclass(frozen=True)
class Corpus:
    splits: dict[str, Pairs]
    src_vocab: Vocab
    tgt_vocab: Vocab
    num_dropped: int  # training pairs dropped for an empty side


def _synthetic(data, seed: int, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """A generated task, deterministic given the seed."""
    sizes = {"train": data.train_size, "validation": data.eval_size,
             "test": data.eval_size}
    return make_splits(data.task, seed, sizes)  # all three: they are disjoint


@contextlib.contextmanager
def _tfds_output_to_stderr():
    """TFDS prints progress to stdout, which translate mode keeps for translations."""
    import tensorflow_datasets as tfds  # see _multi30k
    tfds.disable_progress_bar()
    with contextlib.redirect_stdout(sys.stderr):
        yield


# Multi30k's split names; ours are train / validation / test, extra test sets keep theirs.
_MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
_MULTI30K_EXTRA = ("test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


def _multi30k(data, seed: int, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """Multi30k task 1 through the project's TFDS builder (offline with manual_dir)."""
    # TFDS and TensorFlow load only when a TFDS-backed source is read: a translate,
    # export or eval on files then starts seconds sooner (benchmarks/export_startup.py).
    from s2s_jax.data.multi30k import available_splits, load_multi30k
    pair = f"{data.src_lang}-{data.tgt_lang}"
    data_dir = data.data_dir or os.path.join(workdir, "tfds")
    extra = [s for s in _MULTI30K_EXTRA if s in available_splits(pair, data.manual_dir)]
    names = {ours: theirs for ours, theirs in
             {**_MULTI30K_SPLITS, **{split: split for split in extra}}.items()
             if ours in wanted}
    with _tfds_output_to_stderr():
        loaded = load_multi30k(pair, data.manual_dir, data_dir, list(names.values()))
    return {ours: loaded[theirs] for ours, theirs in names.items()}


_TFDS_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def _tfds(data, seed: int, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """Any TFDS catalog translation dataset, e.g. wmt14_translate/de-en."""
    from s2s_jax.data.tfds_source import load_tfds  # see _multi30k
    data_dir = data.data_dir or os.path.join(workdir, "tfds")
    with _tfds_output_to_stderr():
        return load_tfds(data.tfds_name, data_dir,
                         {ours: theirs for ours, theirs in _TFDS_SPLITS.items()
                          if ours in wanted}, data.src_lang, data.tgt_lang)


def _read_path(path: str, data) -> Pairs:
    """``path`` is a TSV file, or the prefix of ``path.<src_lang>``/``path.<tgt_lang>``."""
    src, tgt = f"{path}.{data.src_lang}", f"{path}.{data.tgt_lang}"
    if not os.path.isfile(path) and (os.path.exists(src) or os.path.exists(tgt)):
        return readers.read_aligned(src, tgt, drop_empty=False)[0]
    return readers.read_tsv(path, drop_empty=False)[0]


def _files(data, seed: int, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """Local files; evaluation splits not given are held out from the training file
    (which is read only where it is needed)."""
    given = {"validation": data.validation_path, "test": data.test_path}
    if "train" not in wanted and all(given[split] for split in wanted if split in given):
        return {split: _read_path(given[split], data) for split in wanted if split in given}
    splits = {"train": _read_path(data.train_path, data)}
    for offset, (split, path) in enumerate(given.items()):
        if path:
            splits[split] = _read_path(path, data)
        else:  # a different hash seed per split: two independent held-out sets
            splits["train"], splits[split] = readers.held_out_split(
                splits["train"], data.held_out_fraction, seed + offset)
    return splits


SOURCES: dict[str, Callable[..., dict[str, Pairs]]] = {
    "synthetic": _synthetic,
    "multi30k": _multi30k,
    "tfds": _tfds,
    "files": _files,
}


def _fingerprint(texts: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def _vocabulary(data, texts: list[str], vocab_dir: str, side: str, seed: int) -> Vocab:
    """One vocabulary trained on ``texts`` (cached for word and sentencepiece;
    SentencePiece on a sample of ``data.vocab_sample_sentences`` of them)."""
    if data.tokenizer == "char":
        return CharVocab("".join(sorted(set("".join(texts)))))
    if data.tokenizer == "word":
        path = os.path.join(vocab_dir, f"words_{data.vocab_size}_{side}_"
                                       f"{_fingerprint(texts)}.json")
        if not os.path.exists(path):
            os.makedirs(vocab_dir, exist_ok=True)
            WordVocab.build(texts, data.vocab_size).save(path)
        return WordVocab.load(path)
    sample = data.vocab_sample_sentences
    name = cache_name(data.spm_model_type, data.vocab_size,
                      f"{side}:{_fingerprint(texts)}:sample {sample}, seed {seed}")
    return load_or_train(vocab_dir, name,
                         lambda: reservoir_sample(texts, sample, seed) if sample else texts,
                         data.vocab_size, data.spm_model_type)


TOKENIZERS = ("char", "word", "sentencepiece")


def load_splits(config, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """The ``wanted`` splits of ``config.data``'s source (CorpusError naming the
    missing ones), reading no more of it than they need."""
    splits = SOURCES[config.data.source](config.data, config.seed, workdir, wanted)
    missing = [split for split in wanted if split not in splits]
    if missing:
        raise CorpusError(f"config.data.source={config.data.source!r} has no split "
                          f"{', '.join(missing)} (it has {', '.join(splits)})")
    return {split: splits[split] for split in wanted}


ALL_SPLITS = ("train", "validation", "test", *_MULTI30K_EXTRA)


def load_corpus(config, workdir: str) -> Corpus:
    """Every split of the source, and vocabularies trained on (or cached for) its
    training split: what training needs."""
    data = config.data
    splits = SOURCES[data.source](data, config.seed, workdir, list(ALL_SPLITS))
    train = [(s, t) for s, t in splits["train"] if s.strip() and t.strip()]
    num_dropped = len(splits["train"]) - len(train)
    splits["train"] = train
    vocab_dir = data.vocab_dir or os.path.join(workdir, "vocab")
    sources, targets = [s for s, _ in train], [t for _, t in train]
    if data.joint_vocab:
        src_vocab = tgt_vocab = _vocabulary(data, sources + targets, vocab_dir, "joint",
                                            config.seed)
    else:
        src_vocab = _vocabulary(data, sources, vocab_dir, "source", config.seed)
        tgt_vocab = _vocabulary(data, targets, vocab_dir, "target", config.seed)
    return Corpus(splits, src_vocab, tgt_vocab, num_dropped)
