"""Translation datasets of the TFDS catalog, read as (source, target) strings."""

import os

import tensorflow_datasets as tfds

from s2s_jax.data.readers import Pairs


def load_tfds(name: str, data_dir: str | os.PathLike, splits: dict[str, str],
              src_lang: str, tgt_lang: str) -> dict[str, Pairs]:
    """Prepares a TFDS dataset if needed and reads two of its languages.

    Args:
      name: the dataset and config, e.g. "wmt14_translate/de-en".
      data_dir: where the prepared dataset is, or goes: it is downloaded and
        prepared there on first use (which needs internet), then reused.
      splits: our split name -> the TFDS split to read it from, e.g.
        {"train": "train", "validation": "validation", "test": "test"}; TFDS
        slicing such as "train[:90%]" works too.
      src_lang: the feature holding the source sentences, e.g. "en".
      tgt_lang: the feature holding the target sentences, e.g. "de".

    Returns:
      Our split name -> (source, target) pairs, in the stored order.
    """
    builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    languages = list(builder.info.features)
    for lang in (src_lang, tgt_lang):
        if lang not in languages:
            raise ValueError(f"{name} has no language {lang!r}, only {languages}")
    builder.download_and_prepare()
    return {ours: _read_split(builder, theirs, src_lang, tgt_lang)
            for ours, theirs in splits.items()}


def _read_split(builder: tfds.core.DatasetBuilder, split: str, src_lang: str,
                tgt_lang: str) -> Pairs:
    """Reads one split, in its stored order, as (source, target) strings."""
    dataset = builder.as_dataset(split=split, shuffle_files=False).batch(4096)
    return [(source.decode(), target.decode())
            for batch in tfds.as_numpy(dataset)
            for source, target in zip(batch[src_lang], batch[tgt_lang])]
