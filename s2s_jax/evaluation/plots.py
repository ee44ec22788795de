"""Matplotlib figures for analysing translations.

Figures are built with `matplotlib.figure.Figure` and rendered with the Agg
canvas directly, without `pyplot`: no global figure registry is touched, so
nothing leaks between calls, it works headless and with any backend selected.
Every function returns the rendered RGB image (e.g. for TensorBoard image
summaries) and optionally writes it as a PNG. Matplotlib is imported on first use:
at the top it took 0.4-0.5 s of the 2.5-3 s that every command-line start spends
importing, translate's included.
"""

import functools
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Fonts tried in order for each glyph (matplotlib font fallback). Characters
# covered by none of the installed ones are drawn as placeholder boxes.
_FONT_PREFERENCE = (
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "Noto Sans Arabic",
    "Noto Sans Hebrew",
    "Noto Sans Devanagari",
    "Noto Sans Thai",
    "Arial Unicode MS",
)


@functools.cache
def _token_fonts() -> list[str]:
    """Returns the installed fonts of `_FONT_PREFERENCE`, in order."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in _FONT_PREFERENCE if name in installed] or ["sans-serif"]


def _display_token(token: str) -> str:
    """Makes spaces and control characters of `token` visible."""
    token = token.replace(" ", "\u2423")  # '␣'
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in token
    )


def _new_figure(width: float, height: float) -> "Figure":
    """An empty figure of ``width`` x ``height`` inches, laid out without overlaps."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _render(fig: "Figure", path: str | os.PathLike | None) -> np.ndarray:
    """Draws `fig`, optionally saves it as PNG and returns its pixels.

    Args:
        fig: Figure to render.
        path: Where to write the PNG, or None.

    Returns:
        uint8 RGB image of shape [height, width, 3].
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        # Glyphs missing from every font are drawn as boxes; don't warn per glyph.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        canvas.draw()
        if path is not None:
            fig.savefig(path, format="png")
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def attention_heatmap(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> np.ndarray:
    """Plots cross-attention weights of one sentence pair.

    Args:
        weights: Attention weights of shape [tgt_len, src_len].
        src_tokens: The src_len source tokens, shown on the x axis.
        tgt_tokens: The tgt_len target tokens, shown on the y axis.
        path: If given, the PNG file to write.
        title: Optional figure title.

    Returns:
        uint8 RGB image of shape [height, width, 3].
    """
    weights = np.asarray(weights, dtype=np.float32)
    expected_shape = (len(tgt_tokens), len(src_tokens))
    if weights.shape != expected_shape:
        raise ValueError(
            f"weights has shape {weights.shape}, expected [tgt_len, src_len] = {expected_shape}."
        )
    tgt_len, src_len = expected_shape
    fig = _new_figure(min(3.0 + 0.3 * src_len, 40.0), min(2.0 + 0.3 * tgt_len, 40.0))
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, aspect="auto")
    fig.colorbar(image, ax=ax)
    label_style = dict(fontfamily=_token_fonts(), parse_math=False)
    ax.set_xticks(
        range(src_len),
        [_display_token(t) for t in src_tokens],
        rotation=90,
        **label_style,
    )
    ax.set_yticks(range(tgt_len), [_display_token(t) for t in tgt_tokens], **label_style)
    ax.set_xlabel("Source")
    ax.set_ylabel("Target")
    if title is not None:
        ax.set_title(title, **label_style)
    return _render(fig, path)


def bleu_by_length(
    buckets: Sequence[str],
    series: dict[str, Sequence[float]],
    path: str | os.PathLike | None = None,
    ylabel: str = "BLEU",
    lines: bool = False,
) -> np.ndarray:
    """Plots a score per sentence-length bucket as grouped bars, one per system, or
    (``lines``) as one line per system, as Bahdanau et al.'s Figure 2.

    Args:
        buckets: The num_buckets bucket labels, e.g. ["1-10", "11-20"].
        series: Maps a system name to its num_buckets scores (None: an empty bucket,
            no bar and no point).
        path: If given, the PNG file to write.
        ylabel: Label of the score axis.
        lines: Lines with a marker per bucket instead of bars.

    Returns:
        uint8 RGB image of shape [height, width, 3].
    """
    for name, values in series.items():
        if len(values) != len(buckets):
            raise ValueError(
                f"Series {name!r} has {len(values)} values for {len(buckets)} buckets."
            )
    if lines:  # room per bucket, and for the legend beside the axes
        fig_width = 4.0 + len(buckets)
    else:  # room for a bar per system in every bucket
        fig_width = 1.0 + 0.5 * len(buckets) * max(len(series), 1)
    fig = _new_figure(max(5.0, fig_width), 4.0)
    ax = fig.add_subplot()
    positions = np.arange(len(buckets))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        heights = [np.nan if value is None else value for value in values]
        if lines:
            ax.plot(positions, heights, marker="o", label=name)
            continue
        offset = (i - (len(series) - 1) / 2) * width
        bars = ax.bar(positions + offset, heights, width, label=name)
        labels = ["" if value is None else f"{value:.1f}" for value in values]
        ax.bar_label(bars, labels=labels, fontsize="x-small")
    ax.set_xticks(positions, buckets)
    ax.set_xlabel("Source length (tokens)")
    ax.set_ylabel(ylabel)
    if series and lines:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    elif series:
        ax.legend()
    return _render(fig, path)
