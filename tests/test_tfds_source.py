"""Tests for s2s_jax.data.tfds_source, on TFDS's mock data (random sentences, no download)."""

import pytest
import tensorflow_datasets as tfds

from s2s_jax.data.tfds_source import load_tfds

SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def test_reads_string_pairs(tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        splits = load_tfds("wmt14_translate/de-en", tmp_path, SPLITS, "en", "de")
    assert list(splits) == list(SPLITS)
    for pairs in splits.values():
        assert len(pairs) == 5
        assert all(isinstance(s, str) and isinstance(t, str) and s and t for s, t in pairs)


def test_languages_pick_the_sides(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        pt_en = load_tfds(
            "ted_hrlr_translate/pt_to_en", tmp_path, {"test": "test[:50%]"}, "pt", "en"
        )
        en_pt = load_tfds(
            "ted_hrlr_translate/pt_to_en", tmp_path, {"test": "test[:50%]"}, "en", "pt"
        )
    assert en_pt["test"] == [(t, s) for s, t in pt_en["test"]]
    assert en_pt["test"][0][0] != en_pt["test"][0][1]


def test_unknown_language(tmp_path):
    with tfds.testing.mock_data(num_examples=1):
        with pytest.raises(ValueError, match=r"no language 'fr', only \['pt', 'en'\]"):
            load_tfds("ted_hrlr_translate/pt_to_en", tmp_path, SPLITS, "fr", "en")
