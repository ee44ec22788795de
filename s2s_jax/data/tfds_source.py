"""Translation datasets of the TFDS catalog, read as (source, target) strings."""

import os
from collections.abc import Iterator

import tensorflow_datasets as tfds

from s2s_jax.data.readers import Pairs


def prepare(
    name: str, data_dir: str | os.PathLike, src_lang: str, tgt_lang: str
) -> tfds.core.DatasetBuilder:
    """The builder of ``name`` (e.g. "wmt14_translate/de-en"), prepared in ``data_dir``:
    downloaded and prepared there on first use (which needs internet), then reused.
    ValueError if it has no feature ``src_lang`` or ``tgt_lang``."""
    builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    languages = list(builder.info.features)
    for lang in (src_lang, tgt_lang):
        if lang not in languages:
            raise ValueError(f"{name} has no language {lang!r}, only {languages}")
    builder.download_and_prepare()
    return builder


def fingerprint(builder: tfds.core.DatasetBuilder, split: str, src_lang: str, tgt_lang: str) -> str:
    """Identifies a split's pairs: TFDS datasets do not change within a version."""
    return f"tfds {builder.info.full_name} {split} {src_lang}-{tgt_lang}"


def iter_split(
    builder: tfds.core.DatasetBuilder, split: str, src_lang: str, tgt_lang: str
) -> Iterator[tuple[str, str]]:
    """Streams one split (TFDS slicing such as "train[:90%]" works), in its stored
    order, as (source, target) strings."""
    dataset = builder.as_dataset(split=split, shuffle_files=False).batch(4096)
    for batch in tfds.as_numpy(dataset):
        for source, target in zip(batch[src_lang], batch[tgt_lang]):
            yield source.decode(), target.decode()


def load_tfds(
    name: str, data_dir: str | os.PathLike, splits: dict[str, str], src_lang: str, tgt_lang: str
) -> dict[str, Pairs]:
    """Our split name -> its pairs, for ``splits``: our split name -> the TFDS split,
    e.g. {"validation": "validation", "test": "test[:50%]"}; see ``prepare``."""
    builder = prepare(name, data_dir, src_lang, tgt_lang)
    return {
        ours: list(iter_split(builder, theirs, src_lang, tgt_lang))
        for ours, theirs in splits.items()
    }
