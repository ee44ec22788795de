"""Tests for s2s_jax.evaluation.plots."""

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from s2s_jax.evaluation import plots


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    assert not plt.get_fignums()
    yield
    assert not plt.get_fignums()


def _check_png(path, image: np.ndarray) -> None:
    assert path.stat().st_size > 0
    assert path.read_bytes().startswith(b"\x89PNG")
    saved = matplotlib.image.imread(path)
    assert saved.shape[:2] == image.shape[:2]


def _check_image(image: np.ndarray) -> None:
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 0  # Not blank.


@pytest.mark.parametrize("tgt_len,src_len", [(1, 1), (30, 40)])
def test_attention_heatmap(tmp_path, tgt_len, src_len):
    rng = np.random.default_rng(0)
    weights = rng.random((tgt_len, src_len))
    weights /= weights.sum(axis=1, keepdims=True)
    src = [f"s{i}" for i in range(src_len)]
    tgt = [f"t{i}" for i in range(tgt_len)]
    path = tmp_path / "attention.png"

    image = plots.attention_heatmap(weights, src, tgt, path=str(path), title="x")

    _check_image(image)
    _check_png(path, image)


def test_attention_heatmap_size_grows_with_lengths():
    small = plots.attention_heatmap(np.ones((2, 3)), ["a"] * 3, ["b"] * 2)
    large = plots.attention_heatmap(np.ones((20, 30)), ["a"] * 30, ["b"] * 20)
    assert large.shape[0] > small.shape[0]
    assert large.shape[1] > small.shape[1]


def test_attention_heatmap_unusual_tokens():
    src = ["▁Hello", " ", "$x$", "a\nb", "中文", "🙂", ""]
    tgt = ["Привет", "$", "\t"]
    image = plots.attention_heatmap(np.full((3, 7), 1 / 7), src, tgt, title="50$ & 中")
    _check_image(image)


def test_attention_heatmap_shape_mismatch():
    with pytest.raises(ValueError, match="tgt_len, src_len"):
        plots.attention_heatmap(np.ones((2, 3)), ["a"] * 2, ["b"] * 3)


def test_display_token():
    assert plots._display_token(" a b") == "␣a␣b"
    assert plots._display_token("a\nb") == "a\\nb"


@pytest.mark.parametrize("lines", [False, True])
def test_bleu_by_length(tmp_path, lines):
    path = tmp_path / "bleu.png"
    image = plots.bleu_by_length(
        ["1-10", "11-20", "21-30", "31-40", "41-50", "51+"],
        {
            "rnn": [30.1, 27.5, 22.0, 15.2, 11.0, 8.3],
            "transformer": [33.0, 31.2, 28.4, 24.9, 23.1, 21.7],
        },
        str(path),
        lines=lines,
    )
    _check_image(image)
    _check_png(path, image)


def test_bleu_by_length_lines_differ_from_bars():
    buckets, series = ["1-10", "11-20"], {"a": [10.0, 20.0], "b": [15.0, 5.0]}
    bars = plots.bleu_by_length(buckets, series)
    lines = plots.bleu_by_length(buckets, series, lines=True)
    assert bars.shape[0] == lines.shape[0] and lines.shape[1] > bars.shape[1]  # a legend beside
    assert not np.array_equal(bars[:, : bars.shape[1]], lines[:, : bars.shape[1]])


def test_bleu_by_length_empty_buckets_get_no_bar():
    image = plots.bleu_by_length(["1-10", "41-50", "51+"], {"a": [12.5, None, None]}, None)
    _check_image(image)


def test_bleu_by_length_without_path():
    image = plots.bleu_by_length(["short"], {"a": [1.0]}, None, ylabel="chrF")
    _check_image(image)


def test_bleu_by_length_length_mismatch():
    with pytest.raises(ValueError, match="2 values for 3 buckets"):
        plots.bleu_by_length(["a", "b", "c"], {"x": [1.0, 2.0]}, None)
