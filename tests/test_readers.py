"""Tests for s2s_jax.data.readers."""

import random
import time

import pytest

from s2s_jax.data.readers import CorpusError, held_out_split, read_aligned, read_tsv


def write(path, text: str | bytes):
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


@pytest.fixture
def aligned(tmp_path):
    """Writes a source and a target file, returns a function of their contents."""

    def make(src: str | bytes, tgt: str | bytes):
        return write(tmp_path / "c.src", src), write(tmp_path / "c.tgt", tgt)

    return make


def test_read_aligned(aligned):
    pairs, dropped = read_aligned(*aligned("a b\nc\n", "x\ny z\n"), drop_empty=True)
    assert (pairs, dropped) == ([("a b", "x"), ("c", "y z")], 0)


def test_a_byte_order_mark_is_not_part_of_line_1(aligned, tmp_path):
    bom = "\ufeff".encode()
    pairs, _ = read_aligned(*aligned(bom + b"aehg hfd\nb\n", bom + b"x\ny\n"), drop_empty=True)
    assert pairs == [("aehg hfd", "x"), ("b", "y")]
    pairs, _ = read_tsv(write(tmp_path / "c.tsv", bom + b"aehg hfd\tx\n"), drop_empty=True)
    assert pairs == [("aehg hfd", "x")]


def test_strips_only_line_ends(aligned):
    src, tgt = aligned(" a \r\nb\tc\x0cd\u2028e\n\u00e9", " x \r\ny\nz")
    pairs, _ = read_aligned(src, tgt, drop_empty=True)
    assert pairs == [(" a ", " x "), ("b\tc\x0cd\u2028e", "y"), ("\u00e9", "z")]


def test_empty_files(aligned):
    assert read_aligned(*aligned("", ""), drop_empty=True) == ([], 0)


@pytest.mark.parametrize("missing", ["src", "tgt"])
def test_missing_file(tmp_path, missing):
    src, tgt = write(tmp_path / "a.src", "a\n"), write(tmp_path / "a.tgt", "x\n")
    (src if missing == "src" else tgt).unlink()
    with pytest.raises(CorpusError, match=f"a.{missing}: no such file"):
        read_aligned(src, tgt, drop_empty=True)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CorpusError, match=f"{tmp_path}: is a directory"):
        read_aligned(tmp_path, tmp_path, drop_empty=True)
    with pytest.raises(CorpusError, match="no such file"):
        read_tsv(tmp_path / "absent.tsv", drop_empty=True)


def test_different_line_counts(aligned):
    src, tgt = aligned("a\nb\nc\n", "x\ny\n")
    with pytest.raises(CorpusError) as error:
        read_aligned(src, tgt, drop_empty=True)
    assert str(error.value) == (f"Different line counts: {src} has 3 lines, {tgt} has 2")


def test_missing_last_newline_is_not_a_line_count_difference(aligned):
    pairs, _ = read_aligned(*aligned("a\nb", "x\ny\n"), drop_empty=True)
    assert pairs == [("a", "x"), ("b", "y")]


def test_invalid_utf8(aligned):
    src, tgt = aligned("a\nb\n", "x\nyy\xff z\n".encode("latin-1"))
    with pytest.raises(CorpusError) as error:
        read_aligned(src, tgt, drop_empty=True)
    assert str(error.value).startswith(f"{tgt}, line 2: invalid UTF-8 at byte offset 4")


@pytest.mark.parametrize(
    "src, tgt",
    [
        ("a\n\nc\n", "x\ny\nz\n"),
        ("a\n \t\nc\n", "x\ny\nz\n"),
        ("a\nb\nc\n", "x\n\nz\n"),
        ("a\r\n\r\nc\r\n", "x\ny\nz\n"),
    ],
)
def test_empty_lines(aligned, src, tgt):
    files = aligned(src, tgt)
    pairs, dropped = read_aligned(*files, drop_empty=True)
    assert (pairs, dropped) == ([("a", "x"), ("c", "z")], 1)
    pairs, dropped = read_aligned(*files, drop_empty=False)
    assert len(pairs) == 3 and dropped == 0
    assert pairs[1] == tuple(text.replace("\r", "").split("\n")[1] for text in (src, tgt))


def test_read_tsv(tmp_path):
    path = write(tmp_path / "c.tsv", "a b\tx\r\n\t\nc\ty z\n  \n")
    assert read_tsv(path, drop_empty=True) == ([("a b", "x"), ("c", "y z")], 2)
    assert read_tsv(path, drop_empty=False) == (
        [("a b", "x"), ("", ""), ("c", "y z"), ("  ", "")],
        0,
    )


@pytest.mark.parametrize("line, tabs", [("a b", 0), ("a\tb\tc", 2)])
def test_tsv_needs_one_tab(tmp_path, line, tabs):
    path = write(tmp_path / "c.tsv", f"a\tx\n{line}\n")
    with pytest.raises(CorpusError) as error:
        read_tsv(path, drop_empty=True)
    assert str(error.value) == (f"{path}, line 2: expected source<TAB>target, found {tabs} tabs")


def test_tsv_invalid_utf8(tmp_path):
    path = write(tmp_path / "c.tsv", b"a\tx\nb\ty\n\xc3(\tz\n")
    with pytest.raises(CorpusError, match=r"c.tsv, line 3: invalid UTF-8 at byte offset 8"):
        read_tsv(path, drop_empty=True)


def test_large_tsv_is_fast(tmp_path):
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "ein", "Hund", "läuft", "über", "die", "Wiese"]
    lines = [
        " ".join(rng.choices(words, k=12)) + "\t" + " ".join(rng.choices(words, k=12))
        for _ in range(150_000)
    ]
    path = write(tmp_path / "big.tsv", "\n".join(lines) + "\n")
    start = time.perf_counter()
    pairs, dropped = read_tsv(path, drop_empty=True)
    elapsed = time.perf_counter() - start
    assert len(pairs) == 150_000 and dropped == 0
    assert pairs[-1] == tuple(lines[-1].split("\t"))
    assert elapsed < 3, f"reading 150k pairs took {elapsed:.2f} s"


def corpus(n: int) -> list[tuple[str, str]]:
    return [(f"source {i}", f"target {i}") for i in range(n)]


def test_held_out_split_is_deterministic_and_roughly_sized():
    pairs = corpus(10_000)
    train, held_out = held_out_split(pairs, 0.1, seed=0)
    assert (train, held_out) == held_out_split(pairs, 0.1, seed=0)
    assert sorted(train + held_out) == sorted(pairs)
    assert 850 < len(held_out) < 1150
    assert held_out != held_out_split(pairs, 0.1, seed=1)[1]


def test_held_out_split_does_not_depend_on_order():
    pairs = corpus(2_000)
    shuffled = random.Random(0).sample(pairs, len(pairs))
    for a, b in zip(held_out_split(pairs, 0.2, seed=3), held_out_split(shuffled, 0.2, seed=3)):
        assert sorted(a) == sorted(b)
    train, held_out = held_out_split(shuffled, 0.2, seed=3)
    train_set = set(train)
    assert train == [pair for pair in shuffled if pair in train_set]  # Input order kept.


def test_held_out_split_keeps_repeated_sources_together():
    pairs = [(f"source {i % 300}", f"target {i}") for i in range(3_000)]
    train, held_out = held_out_split(pairs, 0.3, seed=0)
    assert held_out and train
    assert not {s for s, _ in train} & {s for s, _ in held_out}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_held_out_split_validates_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        held_out_split(corpus(10), fraction, seed=0)
