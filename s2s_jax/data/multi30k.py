"""Multi30k task 1 as a TFDS dataset, "multi30k/<src>-<tgt>" for en, de, fr, cs.

Importing this module registers the builder, so ``tfds.builder("multi30k/en-de")``
works. Prepared offline from a manual dir holding the plain files
(``train.en``, ``val.de``, ...), or online from the official repository.
:func:`load_multi30k` prepares a pair once and returns its splits as string pairs
in the original line order.
"""

import itertools
import os
import pathlib
from collections.abc import Sequence

import tensorflow_datasets as tfds

from s2s_jax.data import readers
from s2s_jax.data.readers import CorpusError, Pairs

LANGUAGES = ("en", "de", "fr", "cs")
# The splits of multi30k/dataset's data/task1/raw and the languages they exist in.
SPLIT_LANGUAGES = {
    "train": LANGUAGES,
    "val": LANGUAGES,
    "test_2016_flickr": LANGUAGES,
    "test_2017_flickr": ("en", "de", "fr"),
    "test_2017_mscoco": ("en", "de", "fr"),
    "test_2018_flickr": LANGUAGES,
}
REQUIRED_SPLITS = ("train", "val", "test_2016_flickr")
_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{}.gz"

_CITATION = """\
@inproceedings{elliott-etal-2016-multi30k,
  title = "{M}ulti30{K}: Multilingual {E}nglish-{G}erman Image Descriptions",
  author = "Elliott, Desmond and Frank, Stella and Sima{'}an, Khalil and
            Specia, Lucia",
  booktitle = "Proceedings of the 5th Workshop on Vision and Language",
  year = "2016",
  address = "Berlin, Germany",
  publisher = "Association for Computational Linguistics",
  pages = "70--74",
  doi = "10.18653/v1/W16-3210",
}
"""


class Multi30kConfig(tfds.core.BuilderConfig):
    """One translation direction, e.g. "en-de" (English to German)."""

    def __init__(self, source: str, target: str):
        super().__init__(
            name=f"{source}-{target}", description=f"Multi30k task 1, {source} to {target}."
        )
        self.source = source
        self.target = target


class Multi30k(tfds.core.GeneratorBasedBuilder):
    """Multi30k task 1: Flickr30K image captions and their translations.

    29,000 training, 1,014 validation and 1,000 test (``test_2016_flickr``)
    captions in English, German, French and Czech; line i of every language is
    the same caption. ``test_2017_flickr``, ``test_2017_mscoco`` (not in Czech)
    and ``test_2018_flickr`` are included when their files are there.

    Examples keep the order of the lines (shuffling is disabled), and
    ``as_supervised=True`` gives (source, target).

    Multi30k is derived from Flickr30K: use is for non-commercial research and
    education.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Task 1 raw text, all ordered pairs of en/de/fr/cs."}
    BUILDER_CONFIGS = [
        Multi30kConfig(source, target) for source, target in itertools.permutations(LANGUAGES, 2)
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Optional: gunzip the files of https://github.com/multi30k/dataset,
    data/task1/raw, into the manual dir (train.en, val.de, test_2016_flickr.fr,
    ...). Without a manual dir they are downloaded.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.Translation(languages=(config.source, config.target)),
            supervised_keys=(config.source, config.target),
            disable_shuffling=True,
            homepage="https://github.com/multi30k/dataset",
            citation=_CITATION,
            license="Derived from Flickr30K: non-commercial research and education only.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError:  # No manual dir (or an empty one): download.
            files = self._download(dl_manager)
        else:
            files = _local_files(manual_dir, *self._languages())
        return {split: self._generate_examples(src, tgt) for split, (src, tgt) in files.items()}

    def _languages(self) -> tuple[str, str]:
        return self.builder_config.source, self.builder_config.target

    def _download(self, dl_manager: tfds.download.DownloadManager):
        """Downloads and gunzips the official files of this pair's splits."""
        names = {
            split: [f"{split}.{lang}" for lang in self._languages()]
            for split in _published_splits(*self._languages())
        }
        urls = {name: _URL.format(name) for pair in names.values() for name in pair}
        paths = dl_manager.download_and_extract(urls)
        return {split: (paths[src], paths[tgt]) for split, (src, tgt) in names.items()}

    def _generate_examples(self, src_path: os.PathLike, tgt_path: os.PathLike):
        """Yields (line index, {source: ..., target: ...}), empty lines kept."""
        pairs, _ = readers.read_aligned(src_path, tgt_path, drop_empty=False)
        src_lang, tgt_lang = self._languages()
        for index, (source, target) in enumerate(pairs):
            yield index, {src_lang: source, tgt_lang: target}


def _published_splits(source: str, target: str) -> list[str]:
    return [
        split for split, langs in SPLIT_LANGUAGES.items() if source in langs and target in langs
    ]


def _local_files(
    manual_dir: str | os.PathLike, source: str, target: str
) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    """Split -> (source file, target file) for the splits present in `manual_dir`.

    Raises:
      CorpusError: `manual_dir` is not a directory or lacks a file of
        REQUIRED_SPLITS.
    """
    if not pathlib.Path(manual_dir).is_dir():
        raise CorpusError(f"Multi30k: manual dir {manual_dir} is not a directory")
    files = {}
    for split in SPLIT_LANGUAGES:
        pair = tuple(pathlib.Path(manual_dir, f"{split}.{lang}") for lang in (source, target))
        missing = [str(path) for path in pair if not path.is_file()]
        if not missing:
            files[split] = pair
        elif split in REQUIRED_SPLITS:
            raise CorpusError(f"Multi30k: missing {', '.join(missing)}")
    return files


def _pair_config(pair: str) -> Multi30kConfig:
    configs = {config.name: config for config in Multi30k.BUILDER_CONFIGS}
    if pair not in configs:
        raise ValueError(f"Unknown Multi30k pair {pair!r}, expected one of {list(configs)}")
    return configs[pair]


def available_splits(pair: str, manual_dir: str | os.PathLike | None) -> list[str]:
    """The splits of `pair` found in `manual_dir`, or published online if it is empty.

    Args:
      pair: "<source>-<target>", e.g. "en-de".
      manual_dir: as in :func:`load_multi30k`.
    """
    config = _pair_config(pair)
    if not manual_dir:
        return _published_splits(config.source, config.target)
    return list(_local_files(manual_dir, config.source, config.target))


def load_multi30k(
    pair: str,
    manual_dir: str | os.PathLike | None,
    data_dir: str | os.PathLike,
    splits: Sequence[str] = REQUIRED_SPLITS,
) -> dict[str, Pairs]:
    """Prepares "multi30k/<pair>" (once) and reads its splits.

    Args:
      pair: "<source>-<target>", e.g. "en-de".
      manual_dir: the directory holding ``train.en``, ``val.de``, ...: nothing is
        downloaded. If empty (None or ""), the official files are downloaded.
      data_dir: where TFDS writes the prepared dataset (and downloads); a later
        call with the same `data_dir` reuses it.
      splits: the Multi30k split names to read.

    Returns:
      Split name -> (source, target) pairs, in the order of the files' lines.

    Raises:
      CorpusError: a file is missing or malformed, or a split is not there.
    """
    config = _pair_config(pair)
    if manual_dir:  # Fail clearly here: TFDS would download if the dir is missing.
        _local_files(manual_dir, config.source, config.target)
    builder = Multi30k(config=pair, data_dir=os.fspath(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir or None)
    )
    missing = [split for split in splits if split not in builder.info.splits]
    if missing:
        raise CorpusError(
            f"Multi30k {pair}: no split {', '.join(missing)} (found {list(builder.info.splits)})"
        )
    return {split: _read_split(builder, split) for split in splits}


def _read_split(builder: tfds.core.DatasetBuilder, split: str) -> Pairs:
    """Reads one split, in its stored order, as (source, target) strings."""
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False).batch(4096)
    return [
        (source.decode(), target.decode())
        for sources, targets in tfds.as_numpy(dataset)
        for source, target in zip(sources, targets)
    ]
