"""Where (source, target) sentence pairs come from, and their vocabularies.

A registry maps ``config.data.source`` to a loader, so a new source is one function
and one line. A loader returns the evaluation splits as lists of string pairs and the
training split as a :class:`PairStream`, read one pair at a time, however large.

``load_corpus(config, workdir)`` returns a :class:`Corpus`: the evaluation splits
(``validation``, ``test`` and any extra test sets), vocabularies trained on the
training split only, and the training pairs encoded on disk (``data/records.py``).
Vocabularies and records are keyed by the training pairs' fingerprint and built once:
a later start only opens them. Training pairs with a blank side are dropped (and
counted); evaluation splits keep every line (an empty source gets an empty
translation).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator

import filelock

from s2s_jax.config.registry import Registry
from s2s_jax.data import corpus_files, joined_captions, records
from s2s_jax.data.corpus_files import HELD_OUT_SPLITS, CorpusFile
from s2s_jax.data.readers import CorpusError, Pairs
from s2s_jax.data.tasks import make_splits
from s2s_jax.data.vocab import Vocab
from s2s_jax.data.vocab_files import vocab_digest
from s2s_jax.data.vocabularies import build_vocabularies, short_digest


@dataclasses.dataclass(frozen=True)
class PairStream:
    """Training pairs, read one at a time as often as needed, never all in memory.

    Attributes:
      name: says where they come from, in errors (e.g. the corpus file).
      fingerprint: identifies the pairs; vocabularies and records are keyed by it.
      read: returns a new iterator over the pairs.
    """

    name: str
    fingerprint: str
    read: Callable[[], Iterator[tuple[str, str]]]

    @classmethod
    def of(cls, name: str, pairs: Pairs) -> "PairStream":
        """Pairs already in memory (the small sources: synthetic tasks, Multi30k)."""
        digest = hashlib.blake2b(digest_size=16)
        for pair in pairs:
            digest.update("\t".join(pair).encode("utf-8", "surrogatepass") + b"\n")
        return cls(name, f"pairs {digest.hexdigest()}", lambda: iter(pairs))


@dataclasses.dataclass(frozen=True)
class Corpus:
    splits: dict[str, Pairs]  # the evaluation splits
    train: records.Records  # the training pairs, encoded on disk
    src_vocab: Vocab
    tgt_vocab: Vocab

    @property
    def num_dropped(self) -> int:
        """Training pairs dropped for a blank side."""
        return self.train.manifest["num_dropped_empty"]


def _synthetic(data, seed: int, workdir: str, wanted: list[str]) -> dict:
    """A generated task, deterministic given the seed."""
    sizes = {"train": data.train_size, "validation": data.eval_size, "test": data.eval_size}
    splits = make_splits(data.task, seed, sizes)  # all three: they are disjoint
    return {
        **splits,
        "train": PairStream.of(f"the {data.task!r} task's training split", splits["train"]),
    }


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


def _multi30k(data, seed: int, workdir: str, wanted: list[str]) -> dict:
    """Multi30k task 1 through the project's TFDS builder (offline with manual_dir)."""
    # TFDS and TensorFlow load only when a TFDS-backed source is read: a translate,
    # export or eval on files then starts seconds sooner (benchmarks/export_startup.py).
    from s2s_jax.data.multi30k import available_splits, load_multi30k

    pair = f"{data.src_lang}-{data.tgt_lang}"
    data_dir = data.data_dir or os.path.join(workdir, "tfds")
    extra = [s for s in _MULTI30K_EXTRA if s in available_splits(pair, data.manual_dir)]
    names = {
        ours: theirs
        for ours, theirs in {**_MULTI30K_SPLITS, **{split: split for split in extra}}.items()
        if ours in wanted
    }
    with _tfds_output_to_stderr():
        loaded = load_multi30k(pair, data.manual_dir, data_dir, list(names.values()))
    splits = {ours: loaded[theirs] for ours, theirs in names.items()}
    return _join_captions(splits, data.join_captions, seed, f"Multi30k {pair}")


def _join_captions(splits: dict[str, Pairs], k: int, seed: int, name: str) -> dict:
    """``splits`` with captions joined into longer pairs (``data.join_captions`` = k,
    see ``data/joined_captions.py``; k = 1 leaves them as they are), the training
    split (small enough to hold) as a PairStream whose fingerprint names the join."""
    splits = {
        split: pairs if split == "train" else joined_captions.join_evaluation(pairs, k)
        for split, pairs in splits.items()
    }
    if "train" in splits:
        if k == 1:
            splits["train"] = PairStream.of(f"{name} train", splits["train"])
        else:
            stream = PairStream.of(
                f"{name} train, {joined_captions.describe(k, seed)}",
                joined_captions.join_training(splits["train"], k, seed),
            )
            fingerprint = f"{stream.fingerprint} {joined_captions.describe(k, seed)}"
            splits["train"] = dataclasses.replace(stream, fingerprint=fingerprint)
    return splits


_TFDS_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def _tfds(data, seed: int, workdir: str, wanted: list[str]) -> dict:
    """Any TFDS catalog translation dataset, e.g. wmt14_translate/de-en; its training
    split streamed."""
    from s2s_jax.data import tfds_source  # see _multi30k

    data_dir = data.data_dir or os.path.join(workdir, "tfds")
    langs = data.src_lang, data.tgt_lang
    with _tfds_output_to_stderr():
        builder = tfds_source.prepare(data.tfds_name, data_dir, *langs)
        splits = {
            ours: list(tfds_source.iter_split(builder, theirs, *langs))
            for ours, theirs in _TFDS_SPLITS.items()
            if ours in wanted and ours != "train"
        }
    if "train" in wanted:
        splits["train"] = PairStream(
            f"{data.tfds_name} train",
            tfds_source.fingerprint(builder, "train", *langs),
            lambda: tfds_source.iter_split(builder, "train", *langs),
        )
    return splits


def records_dir(data, workdir: str) -> str:
    """Where encoded training pairs and held-out splits go (shareable between runs)."""
    return data.records_dir or os.path.join(workdir, "records")


def _files(data, seed: int, workdir: str, wanted: list[str]) -> dict:
    """Local files; evaluation splits not given are held out from the training file
    (which is read only where it is needed)."""
    given = {"validation": data.validation_path, "test": data.test_path}
    splits: dict = {
        split: corpus_files.read_pairs(path, data.src_lang, data.tgt_lang)
        for split, path in given.items()
        if path and split in wanted
    }
    held_out = tuple(split for split in HELD_OUT_SPLITS if not given[split])
    if "train" in wanted or set(held_out) & set(wanted):
        corpus = CorpusFile(
            corpus_files.corpus_paths(data.train_path, data.src_lang, data.tgt_lang),
            held_out,
            data.held_out_fraction,
            seed,
            records_dir(data, workdir),
        )
        if "train" in wanted:
            splits["train"] = PairStream(
                " and ".join(corpus.paths), corpus.fingerprint, corpus.train_pairs
            )
        if held_out:
            splits.update(corpus.held_out_pairs())
    return splits


SOURCES = Registry(
    "data.source",
    {
        "synthetic": _synthetic,
        "multi30k": _multi30k,
        "tfds": _tfds,
        "files": _files,
    },
)


def _records(
    data, workdir: str, stream: PairStream, src_vocab: Vocab, tgt_vocab: Vocab
) -> records.Records:
    """The training pairs encoded on disk: opened if built before, else built (once,
    whoever else waits for the same records)."""
    description = {
        "pairs": stream.fingerprint,
        "source_vocab": vocab_digest(src_vocab),
        "target_vocab": vocab_digest(tgt_vocab),
    }
    path = os.path.join(
        records_dir(data, workdir), short_digest(json.dumps(description, sort_keys=True))
    )
    if not os.path.exists(os.path.join(path, records.MANIFEST)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with filelock.FileLock(path + ".lock"):
            if not os.path.exists(os.path.join(path, records.MANIFEST)):
                return records.build(path, stream.read(), src_vocab, tgt_vocab, description)
    return records.open_records(path)


def load_splits(config, workdir: str, wanted: list[str]) -> dict[str, Pairs]:
    """The ``wanted`` splits of ``config.data``'s source (CorpusError naming the
    missing ones), reading no more of it than they need."""
    splits = SOURCES[config.data.source](config.data, config.seed, workdir, wanted)
    missing = [split for split in wanted if split not in splits]
    if missing:
        raise CorpusError(
            f"config.data.source={config.data.source!r} has no split "
            f"{', '.join(missing)} (it has {', '.join(splits)})"
        )
    if "train" in wanted:
        splits["train"] = list(splits["train"].read())
    return {split: splits[split] for split in wanted}


ALL_SPLITS = ("train", "validation", "test", *_MULTI30K_EXTRA)


def load_vocabularies(config, workdir: str) -> tuple[Vocab, Vocab]:
    """The source and target vocabularies training builds (cached after the first)."""
    train = SOURCES[config.data.source](config.data, config.seed, workdir, ["train"])
    return build_vocabularies(config, workdir, train["train"])


def load_corpus(config, workdir: str) -> Corpus:
    """Every split of the source, vocabularies trained on (or cached for) its
    training split, and that split encoded on disk: what training needs."""
    splits = SOURCES[config.data.source](config.data, config.seed, workdir, list(ALL_SPLITS))
    train = splits.pop("train")
    src_vocab, tgt_vocab = build_vocabularies(config, workdir, train)
    encoded = _records(config.data, workdir, train, src_vocab, tgt_vocab)
    if not len(encoded):
        raise CorpusError(
            f"{train.name}: no training pair to learn from "
            f"({encoded.manifest['num_dropped_empty']} with a blank side, "
            f"{encoded.manifest['num_dropped_long']} too long)"
        )
    return Corpus(splits, encoded, src_vocab, tgt_vocab)
