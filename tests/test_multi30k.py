"""Tests for s2s_jax.data.multi30k: the real files where present, small ones otherwise."""

import pytest
import tensorflow_datasets as tfds

from s2s_jax.data import multi30k
from s2s_jax.data.readers import CorpusError, read_aligned

SPLIT_SIZES = {"train": 29_000, "val": 1_014, "test_2016_flickr": 1_000}


@pytest.fixture(scope="module")
def manual_dir(shared_data_dir):
    return shared_data_dir / "multi30k"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def en_de(manual_dir, data_dir):
    return multi30k.load_multi30k("en-de", manual_dir, data_dir)


def write_split(directory, split: str, lines: dict[str, list[str]]):
    """Writes `split`.<lang> for each language of `lines`."""
    for lang, text in lines.items():
        (directory / f"{split}.{lang}").write_text("".join(f"{line}\n" for line in text))


@pytest.fixture
def small_manual_dir(tmp_path):
    """A manual dir with the required en and de files, three lines each."""
    directory = tmp_path / "manual"
    directory.mkdir()
    for split in multi30k.REQUIRED_SPLITS:
        write_split(
            directory,
            split,
            {lang: [f"{split} {lang} {i}" for i in range(3)] for lang in ("en", "de")},
        )
    return directory


def test_registered_with_all_pairs():
    assert len(multi30k.Multi30k.BUILDER_CONFIGS) == 12
    builder = tfds.builder("multi30k/fr-cs")
    assert isinstance(builder, multi30k.Multi30k)
    assert builder.info.supervised_keys == ("fr", "cs")


def test_split_sizes(en_de):
    assert {split: len(pairs) for split, pairs in en_de.items()} == SPLIT_SIZES


@pytest.mark.parametrize("split", list(SPLIT_SIZES))
def test_line_order_kept(en_de, manual_dir, split):
    src_lines = (manual_dir / f"{split}.en").read_text(encoding="utf-8").splitlines()
    tgt_lines = (manual_dir / f"{split}.de").read_text(encoding="utf-8").splitlines()
    pairs = en_de[split]
    assert pairs[0] == (src_lines[0], tgt_lines[0])
    assert pairs[-1] == (src_lines[-1], tgt_lines[-1])
    assert (
        pairs
        == read_aligned(manual_dir / f"{split}.en", manual_dir / f"{split}.de", drop_empty=False)[0]
    )


def test_second_load_reuses_prepared_data(en_de, manual_dir, data_dir):
    records = sorted((data_dir / "multi30k" / "en-de").rglob("*.tfrecord*"))
    stamps = [path.stat().st_mtime_ns for path in records]
    again = multi30k.load_multi30k("en-de", manual_dir, data_dir, splits=["val"])
    assert again == {"val": en_de["val"]}
    assert [path.stat().st_mtime_ns for path in records] == stamps


def test_reversed_pair_swaps_source_and_target(en_de, manual_dir, data_dir):
    de_en = multi30k.load_multi30k("de-en", manual_dir, data_dir, splits=["test_2016_flickr"])
    assert de_en["test_2016_flickr"] == [(t, s) for s, t in en_de["test_2016_flickr"]]


def test_missing_manual_dir(tmp_path):
    with pytest.raises(CorpusError, match=f"manual dir {tmp_path / 'absent'} is not a dir"):
        multi30k.load_multi30k("en-de", tmp_path / "absent", tmp_path / "tfds")


def test_missing_required_file(small_manual_dir, tmp_path):
    (small_manual_dir / "val.de").unlink()
    with pytest.raises(CorpusError, match=f"missing {small_manual_dir / 'val.de'}"):
        multi30k.load_multi30k("en-de", small_manual_dir, tmp_path / "tfds")


def test_unknown_pair_and_split(small_manual_dir, tmp_path):
    with pytest.raises(ValueError, match="Unknown Multi30k pair 'en-xx'"):
        multi30k.load_multi30k("en-xx", small_manual_dir, tmp_path / "tfds")
    with pytest.raises(CorpusError, match="no split test_2017_flickr"):
        multi30k.load_multi30k(
            "en-de", small_manual_dir, tmp_path / "tfds", splits=["val", "test_2017_flickr"]
        )


def test_optional_splits_when_present(small_manual_dir, tmp_path):
    write_split(small_manual_dir, "test_2017_flickr", {"en": ["a"], "de": ["x"]})
    write_split(small_manual_dir, "test_2018_flickr", {"en": ["b"]})  # No German.
    expected = [*multi30k.REQUIRED_SPLITS, "test_2017_flickr"]
    assert multi30k.available_splits("en-de", small_manual_dir) == expected
    builder = multi30k.Multi30k(config="en-de", data_dir=tmp_path / "tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=small_manual_dir)
    )
    assert list(builder.info.splits) == expected


def test_available_splits_online():
    assert multi30k.available_splits("cs-en", "") == [
        "train",
        "val",
        "test_2016_flickr",
        "test_2018_flickr",
    ]
    assert len(multi30k.available_splits("fr-de", None)) == 6


def test_empty_lines_are_kept(small_manual_dir, tmp_path):
    write_split(small_manual_dir, "val", {"en": ["a", "", "c"], "de": ["x", "y", " "]})
    splits = multi30k.load_multi30k("en-de", small_manual_dir, tmp_path / "tfds", splits=["val"])
    assert splits["val"] == [("a", "x"), ("", "y"), ("c", " ")]


def test_invalid_utf8_names_file_and_line(small_manual_dir, tmp_path):
    (small_manual_dir / "train.de").write_bytes(b"x\ny\n\xe9\n")
    with pytest.raises(CorpusError, match=r"train.de, line 3: invalid UTF-8"):
        multi30k.load_multi30k("en-de", small_manual_dir, tmp_path / "tfds")


def test_downloads_the_official_files_without_a_manual_dir(tmp_path, monkeypatch):
    """Stands in for the network: each URL 'downloads' to a file holding the URL."""
    requested = []

    def download_and_extract(self, urls):
        requested.extend(urls.values())
        for name, url in urls.items():
            (tmp_path / name).write_text(f"{url}\n")
        return {name: tmp_path / name for name in urls}

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", download_and_extract)
    splits = multi30k.available_splits("en-cs", "")
    loaded = multi30k.load_multi30k("en-cs", "", tmp_path / "tfds", splits)
    url = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{}.gz"
    assert sorted(requested) == sorted(
        url.format(f"{split}.{lang}") for split in splits for lang in ("en", "cs")
    )
    assert loaded == {
        split: [(url.format(f"{split}.en"), url.format(f"{split}.cs"))] for split in splits
    }
