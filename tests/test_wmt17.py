"""Tests for s2s_jax.evaluation.wmt17: BLEU in the WMT17 multimodal convention."""

import pytest

from s2s_jax.config import base_config
from s2s_jax.evaluation import wmt17


@pytest.fixture
def manual_dir(shared_data_dir):
    return shared_data_dir / "multi30k"


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("lang", ["en", "de", "fr", "cs"])
def test_preprocess_reproduces_the_official_references(manual_dir, lang):
    """The raw references through our pipeline are the official tokenized files
    (one line in 1,014 of val differs for de and fr, a quirk of the 2016 scripts)."""
    for split, name in (("validation", "val"), ("test", "test_2016_flickr")):
        raw = _lines(manual_dir / f"{name}.{lang}")
        official = wmt17.official_references(str(manual_dir), split, lang)
        same = sum(wmt17.preprocess(line, lang) == ref for line, ref in zip(raw, official))
        assert len(official) == len(raw)
        assert same >= len(raw) - 1, (split, lang, len(raw) - same)


def test_preprocess_lowercases_normalizes_tokenizes_and_escapes():
    assert wmt17.preprocess("L'homme «rit»  !", "fr") == "l&apos; homme &quot; rit &quot; !"
    assert wmt17.preprocess("Ein Mann, der läuft.", "de") == "ein mann , der läuft ."


def test_perfect_hypotheses_score_100_against_the_official_files(manual_dir):
    config = base_config()
    config.data.update(source="multi30k", manual_dir=str(manual_dir), tgt_lang="de")
    raw = _lines(manual_dir / "test_2016_flickr.de")
    references, origin = wmt17.references(config, "test", raw)
    assert origin == "official"
    metrics = wmt17.score(raw, references, "de", origin)
    assert metrics["bleu_wmt17"] == pytest.approx(100.0)
    assert "tok:none" in metrics["bleu_wmt17_signature"]
    worse = wmt17.score([line.upper() + " x" for line in raw], references, "de", origin)
    assert worse["bleu_wmt17"] < 95.0  # casing is ignored, the extra token is not


def test_other_corpora_preprocess_their_raw_references():
    config = base_config()
    config.data.update(source="files", tgt_lang="en")
    references, origin = wmt17.references(config, "test", ["A dog runs.", "Hello, world!"])
    assert origin == "moses"
    assert references == ["a dog runs .", "hello , world !"]
