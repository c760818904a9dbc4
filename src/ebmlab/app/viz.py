"""Pictures: image grids, training curves, 2-D densities. Everything writes PNG files with
matplotlib's Agg backend (no display needed).

The figures are made to be projected in a classroom:

* image grids are drawn at a whole number of screen pixels per image pixel (``pixel_scale``:
  about ``IMAGE_SIDE_PX`` pixels per image, so 8x8 digits are upscaled six times), in a frame
  that fits the grid, and samples are shown beside the data they imitate
  (``samples_beside_data``);
* every title is fitted to the width of what it heads (``fit_title``: a slightly smaller font,
  then line breaks; never cut), ``title_overflows`` checks a figure for titles that are not;
* curves and densities have labelled axes, densities a colour bar.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

#: Resolution of every PNG (one figure inch is this many image pixels).
DPI = 100
#: Font sizes (points) of titles (largest and smallest before line breaks) and of labels.
TITLE_FONTSIZE = 11.0
MIN_TITLE_FONTSIZE = 8.0
LABEL_FONTSIZE = 9.0
#: About this many screen pixels per image side in a grid (8x8 digits: 6 pixels per pixel).
IMAGE_SIDE_PX = 48
#: Widest an image figure gets (several panels together) and narrowest a panel may be.
MAX_FIGURE_WIDTH_PX = 1000
MIN_PANEL_WIDTH_PX = 240
#: Largest upscaling of one image pixel (a single small image is shown this large at most).
MAX_PIXEL_SCALE = 24
#: Files a run's samples figure leaves beside it for a gallery of every family's samples: the
#: samples alone, and the data they are shown beside.
GALLERY_SAMPLES = "gallery.png"
GALLERY_DATA = "gallery_data.png"


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


# ----- titles that fit --------------------------------------------------------------------------
#: The text and largest size each fitted title was asked for (refitted when the layout changes).
_REQUESTED: weakref.WeakKeyDictionary[Text, tuple[str, float]] = weakref.WeakKeyDictionary()
_SCRATCH: dict[str, Any] = {}


def text_extent(text: str, fontsize: float) -> tuple[float, float]:
    """(width, height) in pixels at ``DPI`` of ``text`` (several lines allowed) in the default
    font at ``fontsize`` points."""
    if "canvas" not in _SCRATCH:
        figure = Figure(dpi=DPI)
        _SCRATCH["canvas"] = FigureCanvasAgg(figure)
        _SCRATCH["figure"] = figure
    figure, canvas = _SCRATCH["figure"], _SCRATCH["canvas"]
    artist = figure.text(0, 0, text, fontsize=fontsize)
    try:
        box = artist.get_window_extent(canvas.get_renderer())
    finally:
        artist.remove()
    return float(box.width), float(box.height)


def _greedy_lines(paragraph: str, width: float, fontsize: float) -> list[str] | None:
    """Words of ``paragraph`` in as few lines as fit ``width``; None if one word does not fit."""
    lines: list[str] = []
    for word in paragraph.split():
        if text_extent(word, fontsize)[0] > width:
            return None
        if lines and text_extent(f"{lines[-1]} {word}", fontsize)[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _broken_lines(paragraph: str, width: float, fontsize: float) -> list[str]:
    """``paragraph`` cut into lines of as many characters as fit ``width`` (at least one)."""
    lines: list[str] = []
    rest = paragraph.strip()
    while rest:
        n = len(rest)
        while n > 1 and text_extent(rest[:n], fontsize)[0] > width:
            n -= 1
        lines.append(rest[:n].rstrip())
        rest = rest[n:].lstrip()
    return lines or [""]


def wrap_to_width(
    text: str,
    width: float,
    fontsize: float = TITLE_FONTSIZE,
    min_fontsize: float = MIN_TITLE_FONTSIZE,
) -> tuple[str, float]:
    """``text`` laid out to be at most ``width`` pixels wide: (lines joined by newlines, font size).

    One line at ``fontsize`` or down to 85% of it if that fits; otherwise broken between words
    at ``fontsize`` (the font shrinks, down to ``min_fontsize``, only while a single word is too
    wide); a word wider than ``width`` even at ``min_fontsize`` is broken between characters.
    """
    if width <= 0:
        raise ValueError(f"width: expected a positive number of pixels, got {width}")
    if min_fontsize <= 0 or min_fontsize > fontsize:
        raise ValueError(
            f"min_fontsize: expected 0 < min_fontsize <= fontsize ({fontsize}), got {min_fontsize}"
        )
    text = str(text)
    if "\n" not in text:
        size = fontsize
        while size >= max(min_fontsize, 0.85 * fontsize):
            if text_extent(text, size)[0] <= width:
                return text, size
            size -= 0.5
    size = fontsize
    while True:
        wrapped = [_greedy_lines(p, width, size) for p in text.split("\n")]
        if all(lines is not None for lines in wrapped):
            return "\n".join(line for lines in wrapped for line in lines or []), size
        if size <= min_fontsize:
            broken = [_broken_lines(p, width, size) for p in text.split("\n")]
            return "\n".join(line for lines in broken for line in lines), size
        size = max(min_fontsize, size - 0.5)


def _renderer(fig: Figure) -> Any:
    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _axes_span(fig: Figure) -> tuple[float, float]:
    """(left, right) pixel edges of the union of the figure's visible axes."""
    renderer = _renderer(fig)
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    if not boxes:
        return 0.0, float(fig.bbox.width)
    return min(b.x0 for b in boxes), max(b.x1 for b in boxes)


def fit_title(
    ax: Axes,
    text: str,
    fontsize: float = TITLE_FONTSIZE,
    min_fontsize: float = MIN_TITLE_FONTSIZE,
    **kwargs: Any,
) -> Text:
    """Set ``ax``'s title to ``text`` laid out no wider than the axes (``wrap_to_width``); the
    figure's saver fits it again after the final layout."""
    width = ax.get_window_extent(_renderer(ax.figure)).width
    wrapped, size = wrap_to_width(text, max(width, 1.0), fontsize, min_fontsize)
    title = ax.set_title(wrapped, fontsize=size, **kwargs)
    _REQUESTED[title] = (str(text), fontsize)
    return title


def fit_suptitle(
    fig: Figure,
    text: str,
    fontsize: float = TITLE_FONTSIZE,
    min_fontsize: float = MIN_TITLE_FONTSIZE,
    **kwargs: Any,
) -> Text:
    """The figure's title, centred over its axes and no wider than they are together."""
    left, right = _axes_span(fig)
    wrapped, size = wrap_to_width(text, max(right - left, 1.0), fontsize, min_fontsize)
    kwargs.setdefault("x", (left + right) / 2 / fig.bbox.width)
    title = fig.suptitle(wrapped, fontsize=size, **kwargs)
    _REQUESTED[title] = (str(text), fontsize)
    return title


def _titles(fig: Figure) -> list[tuple[Text, Axes | None]]:
    """Every non-empty title of ``fig`` with the axes it heads (None: the figure's title)."""
    found: list[tuple[Text, Axes | None]] = [
        (ax.title, ax) for ax in fig.axes if ax.get_visible() and ax.title.get_text()
    ]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        found.append((suptitle, None))
    return found


def _refit_titles(fig: Figure) -> None:
    for title, ax in _titles(fig):
        text, size = _REQUESTED.get(title, (title.get_text(), float(title.get_fontsize())))
        if ax is None:
            fit_suptitle(fig, text, size, min(MIN_TITLE_FONTSIZE, size), y=title.get_position()[1])
        else:
            fit_title(ax, text, size, min(MIN_TITLE_FONTSIZE, size))


def title_overflows(fig: Figure, tolerance: float = 0.5) -> list[str]:
    """The titles of ``fig`` that are wider than what they head (their axes; the figure's title:
    its axes together) or that reach outside the figure, one line each; empty when all fit."""
    renderer = _renderer(fig)
    figure_box = fig.bbox
    problems = []
    for title, ax in _titles(fig):
        box = title.get_window_extent(renderer)
        left, right = (
            _axes_span(fig)
            if ax is None
            else (ax.get_window_extent(renderer).x0, ax.get_window_extent(renderer).x1)
        )
        name = title.get_text().replace("\n", " ")
        if box.width > right - left + tolerance:
            problems.append(f"{name!r} is {box.width:.0f} px wide over {right - left:.0f} px")
        if (
            box.x0 < figure_box.x0 - tolerance
            or box.x1 > figure_box.x1 + tolerance
            or box.y0 < figure_box.y0 - tolerance
            or box.y1 > figure_box.y1 + tolerance
        ):
            problems.append(f"{name!r} reaches outside the figure")
    return problems


# ----- image grids ------------------------------------------------------------------------------
def tile_images(
    images: Any,
    image_shape: tuple[int, int],
    nrow: int | None = None,
    pad: int = 1,
    normalize: bool = False,
) -> np.ndarray:
    """Arrange (N, H*W) images in a grid with ``nrow`` images per row; returns a 2-D array.

    With ``normalize`` each image is rescaled to [0, 1] (for filters); otherwise values are
    clipped to [0, 1].
    """
    x = _to_numpy(images)
    h, w = image_shape
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(
            f"images: expected shape (N, {h * w}) for image_shape {image_shape}, got {x.shape}"
        )
    n = x.shape[0]
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol_rows = math.ceil(n / nrow)
    if normalize:
        lo = x.min(axis=1, keepdims=True)
        hi = x.max(axis=1, keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-12)  # guard constant images against 0/0
    x = np.clip(x, 0.0, 1.0)
    canvas = np.ones((ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top : top + h, left : left + w] = x[i].reshape(h, w)
    return canvas


def pixel_scale(image_shape: tuple[int, int], canvas_widths: Sequence[int]) -> int:
    """Screen pixels per image pixel for grids of ``image_shape`` images whose canvases are
    ``canvas_widths`` wide (one per panel, drawn side by side).

    About ``IMAGE_SIDE_PX`` per image side (at least 1); more for a panel narrower than
    ``MIN_PANEL_WIDTH_PX`` (up to ``MAX_PIXEL_SCALE``); less (down to 1) while the panels
    together are wider than ``MAX_FIGURE_WIDTH_PX``."""
    side = max(image_shape)
    scale = max(1, round(IMAGE_SIDE_PX / side))
    narrowest = min(canvas_widths)
    scale = max(scale, min(MAX_PIXEL_SCALE, math.ceil(MIN_PANEL_WIDTH_PX / narrowest)))
    while scale > 1 and scale * sum(canvas_widths) > MAX_FIGURE_WIDTH_PX:
        scale -= 1
    return scale


#: Margins of image figures, in pixels: around the figure, between panels, under a title.
_MARGIN, _GAP, _TITLE_GAP = 10, 18, 6


def image_panels(
    panels: Sequence[tuple[str | None, Any]],
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    nrow: int | None = None,
    title: str | None = None,
    normalize: bool = False,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Grids of (N, H*W) images side by side, one per ``(heading, images)`` panel, at one
    ``pixel_scale``, with ``title`` over them all and ``row_labels`` left of the first panel's
    rows; writes a PNG and returns its path."""
    if not panels:
        raise ValueError("panels: expected at least one (heading, images) panel")
    canvases = [
        tile_images(images, image_shape, nrow=nrow, normalize=normalize) for _, images in panels
    ]
    scale = pixel_scale(image_shape, [c.shape[1] for c in canvases])
    widths = [c.shape[1] * scale for c in canvases]
    heights = [c.shape[0] * scale for c in canvases]
    label_width = 0.0
    if row_labels:
        label_width = max(text_extent(str(label), LABEL_FONTSIZE)[0] for label in row_labels) + 6
    headings = [
        wrap_to_width(heading, width, LABEL_FONTSIZE + 1, MIN_TITLE_FONTSIZE) if heading else None
        for (heading, _), width in zip(panels, widths)
    ]
    heading_height = max(
        (text_extent(text, size)[1] for text, size in (h for h in headings if h)), default=0.0
    )
    heading_space = heading_height + _TITLE_GAP if heading_height else 0.0
    span = sum(widths) + _GAP * (len(panels) - 1)
    fitted = wrap_to_width(title, span) if title else None
    title_space = text_extent(*fitted)[1] + _TITLE_GAP if fitted else 0.0
    total_w = math.ceil(_MARGIN + label_width + span + _MARGIN)
    total_h = math.ceil(_MARGIN + title_space + heading_space + max(heights) + _MARGIN)
    fig = plt.figure(figsize=(total_w / DPI, total_h / DPI), dpi=DPI)
    x = _MARGIN + label_width
    top = total_h - _MARGIN - title_space - heading_space
    for k, (canvas, width, height, heading) in enumerate(zip(canvases, widths, heights, headings)):
        ax = fig.add_axes(
            (x / total_w, (top - height) / total_h, width / total_w, height / total_h)
        )
        ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        if k == 0 and row_labels:
            h = image_shape[0]
            ax.set_yticks([1 + i * (h + 1) + h / 2 - 0.5 for i in range(len(row_labels))])
            ax.set_yticklabels([str(label) for label in row_labels], fontsize=LABEL_FONTSIZE)
            ax.tick_params(axis="y", length=0, pad=3)
        if heading:
            ax.set_title(heading[0], fontsize=heading[1], pad=_TITLE_GAP * 72 / DPI)
        for spine in ax.spines.values():
            spine.set_linewidth(0.5)
        x += width + _GAP
    if fitted:
        fig.suptitle(
            fitted[0],
            fontsize=fitted[1],
            x=(_MARGIN + label_width + span / 2) / total_w,
            y=1 - _MARGIN / total_h,
            ha="center",
            va="top",
        )
    return save_figure(fig, path, layout=False)


def image_grid(
    images: Any,
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    nrow: int | None = None,
    title: str | None = None,
    normalize: bool = False,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Write a grid of (N, H*W) images to a PNG and return its path."""
    return image_panels(
        [(None, images)], image_shape, path, nrow, title, normalize, row_labels=row_labels
    )


def samples_beside_data(
    samples: Any,
    data: Any,
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str | None = None,
    nrow: int = 8,
    row_labels: Sequence[str] | None = None,
    data_heading: str = "test data",
    samples_heading: str = "model samples",
    gallery: bool = True,
) -> Path:
    """The model's samples beside as many data images, in two panels at one scale; with
    ``gallery`` the samples alone and the data alone are also written beside ``path``
    (``GALLERY_SAMPLES``, ``GALLERY_DATA``) for a page of every family's samples."""
    x, s = _to_numpy(data), _to_numpy(samples)
    shown = x[: s.shape[0]]
    target = image_panels(
        [(data_heading, shown), (samples_heading, s)],
        image_shape,
        path,
        nrow=nrow,
        title=title,
        row_labels=row_labels,
    )
    if gallery:
        image_grid(s, image_shape, target.parent / GALLERY_SAMPLES, nrow=nrow)
        image_grid(shown, image_shape, target.parent / GALLERY_DATA, nrow=nrow)
    return target


#: Most units a filters grid shows (the first ones).
MAX_FILTERS = 100


def filters_grid(
    weights: Any,
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str | None = None,
    max_filters: int = MAX_FILTERS,
) -> Path:
    """Write the first ``max_filters`` columns of an (H*W, units) weight matrix as images, ten
    per row, each rescaled to [0, 1]; returns the PNG's path."""
    filters = _to_numpy(weights)[:, :max_filters].T
    return image_grid(filters, image_shape, path, nrow=10, title=title, normalize=True)


def labelled_rows(
    rows: Sequence[tuple[str, Any]],
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Write one grid row per ``(label, images)`` entry, labelled on the left (e.g. test images
    over their reconstructions); every entry holds the same number of (H*W,) images."""
    lengths = {len(images) for _, images in rows}
    if len(lengths) != 1:
        raise ValueError(f"rows: expected the same number of images in every row, got {lengths}")
    images = np.concatenate([_to_numpy(images) for _, images in rows])
    labels = [label for label, _ in rows]
    return image_grid(images, image_shape, path, nrow=lengths.pop(), title=title, row_labels=labels)


def hide_unknown(images: Any, known: Any, fill: float = 0.5) -> np.ndarray:
    """The images as an inpainting is given them: pixels where ``known`` is False set to ``fill``
    (grey); ``known`` is (H*W,) or one mask per image."""
    x = _to_numpy(images)
    return np.where(_to_numpy(known).astype(bool), x, np.float32(fill))


# ----- curves -----------------------------------------------------------------------------------
#: Width (inches) of one panel of training curves: three to a row fit a report's page unscaled.
CURVE_PANEL_WIDTH = 3.8
#: Line styles of the series of a panel (``plot_curves``'s ``series_key``), in order.
SERIES_STYLES = ("-", "--", ":", "-.")


def plot_curves(
    history: Sequence[dict[str, Any]],
    keys: Sequence[str],
    path: str | os.PathLike[str],
    x_key: str = "epoch",
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    xlabel: str | None = None,
    group_key: str | None = None,
    boundaries: Sequence[tuple[float, str]] = (),
    series_key: str | None = None,
) -> Path:
    """Plot ``keys`` of a list of metric records against ``x_key``, one panel per key (three to
    a row), headed by ``labels[key]`` (default: the key) with ``units[key]`` on the y axis and
    ``xlabel`` (default ``x_key``) on the x axis. Records with different ``group_key`` values
    (e.g. training stages) are separate lines, named in a legend; records with different
    ``series_key`` values (e.g. training and held-out data) are separate lines on the same axes,
    one colour per series (solid, then dashed, ...), named in the legend; ``boundaries`` are
    (x, name) vertical markers (e.g. where a stage starts)."""
    labels, units = labels or {}, units or {}
    keys = [k for k in keys if any(k in r for r in history)]
    n = max(len(keys), 1)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(CURVE_PANEL_WIDTH * columns, 3.1 * rows), squeeze=False, dpi=DPI
    )
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    series_order: list[Any] = []
    for r in history:
        value = r.get(series_key) if series_key else None
        if value is not None and value not in series_order:
            series_order.append(value)
    for ax, key in zip(axes.flat, keys):
        lines: dict[tuple[Any, Any], list[tuple[float, float]]] = {}
        for r in history:
            if key in r and x_key in r and isinstance(r[key], int | float):
                group = r.get(group_key) if group_key else None
                series = r.get(series_key) if series_key else None
                lines.setdefault((group, series), []).append((r[x_key], r[key]))
        groups = list(dict.fromkeys(g for g, _ in lines))
        labelled: set[str] = set()
        for (group, series), points in lines.items():
            xs, ys = zip(*points)
            style: dict[str, Any] = {}
            if series is not None:  # one colour and style per series, in every group
                i = series_order.index(series)
                style = {"color": f"C{i}", "ls": SERIES_STYLES[i % len(SERIES_STYLES)]}
            elif series_order:  # colours other than the series' (a stage is not a subset)
                style = {"color": f"C{len(series_order) + groups.index(group)}"}
            parts = [str(group)] if group is not None and len(groups) > 1 and series is None else []
            parts += [str(series)] if series is not None else []
            label = ", ".join(parts) or None
            if label in labelled:
                label = None  # the series already named (an earlier group)
            elif label is not None:
                labelled.add(label)
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=label, **style)
        span = [x for points in lines.values() for x, _ in points]
        for x, _ in boundaries:
            if span and min(span) < x < max(span):  # not beside a panel of one stage
                ax.axvline(x, color="0.6", lw=0.8, ls=":")
        if x_key == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(labelled) > 1:
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel(xlabel or x_key, fontsize=LABEL_FONTSIZE)
        ax.set_ylabel(units.get(key, ""), fontsize=LABEL_FONTSIZE)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        fit_title(ax, labels.get(key, key), fontsize=LABEL_FONTSIZE + 1)
    if title:
        fig.tight_layout()
        fit_suptitle(fig, title)
    return save_figure(fig, path)


# ----- 2-D densities ----------------------------------------------------------------------------
def grid_density(log_density: Any, bounds: tuple[float, float]) -> np.ndarray:
    """exp(log_density) on a (G, G) grid of cells covering [lo, hi]^2, normalized so that it
    integrates to one on the grid: p_ij = exp(l_ij) / (sum_kl exp(l_kl) * cell area), cell area
    ((hi - lo) / G)^2 (computed from l - max l, so any unnormalized log density will do)."""
    values = _to_numpy(log_density).astype(np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"log_density: expected a square (G, G) grid, got shape {values.shape}")
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds: expected (lo, hi) with lo < hi, got {bounds}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("log_density: expected at least one finite value")
    weights = np.exp(np.where(np.isfinite(values), values - finite.max(), -np.inf))
    cell = ((hi - lo) / values.shape[0]) ** 2
    return weights / (weights.sum() * cell)


def density_2d(
    log_density: Any,
    bounds: tuple[float, float],
    path: str | os.PathLike[str],
    samples: Any | None = None,
    title: str | None = None,
    data: Any | None = None,
    density_heading: str = "model density",
) -> Path:
    """A (G, G) grid of log densities, indexed [x, y], on [lo, hi]^2: the data (when given), the
    density normalized on the grid (``grid_density``) with a colour bar, and the model's samples
    (when given), in panels with the same axes x_1, x_2."""
    density = grid_density(log_density, bounds)
    lo, hi = bounds
    panels = ["data"] if data is not None else []
    panels += ["density"] + (["samples"] if samples is not None else [])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.5 * len(panels) + 0.6, 3.7), squeeze=False, dpi=DPI
    )
    for ax, panel in zip(axes[0], panels):
        if panel == "density":
            image = ax.imshow(
                density.T, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis", aspect="equal"
            )
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
            bar.set_label("density (normalized on the grid)", fontsize=8)
            bar.ax.tick_params(labelsize=7)
            heading = density_heading
        else:
            points = _to_numpy(data if panel == "data" else samples)
            ax.scatter(
                points[:, 0],
                points[:, 1],
                s=2,
                alpha=0.5,
                color="0.25" if panel == "data" else "C1",
                rasterized=True,
            )
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            heading = f"{'data (test)' if panel == 'data' else 'model samples'} ({len(points)})"
        ax.set_xlabel("$x_1$", fontsize=LABEL_FONTSIZE)
        ax.set_ylabel("$x_2$", fontsize=LABEL_FONTSIZE)
        ax.tick_params(labelsize=7)
        fit_title(ax, heading, fontsize=LABEL_FONTSIZE + 1)
    if title:
        fig.tight_layout()
        fit_suptitle(fig, title)
    return save_figure(fig, path)


# ----- saving -----------------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | os.PathLike[str], layout: bool = True) -> Path:
    """Lay ``fig`` out (``tight_layout``, unless ``layout`` is False for figures placed by hand),
    fit every title to what it heads again, write it as a PNG at ``DPI`` and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        for _ in range(2):  # titles that wrap change the layout, which changes their widths
            fig.tight_layout()
            _refit_titles(fig)
    fig.savefig(target, dpi=DPI)
    plt.close(fig)
    return target


_save = save_figure


# MCMC trace and autocorrelation plots live beside the diagnostics they draw
from .viz_mcmc import plot_autocorrelation, plot_trace  # noqa: E402

__all__ = [
    "DPI",
    "GALLERY_DATA",
    "GALLERY_SAMPLES",
    "MAX_FILTERS",
    "density_2d",
    "filters_grid",
    "fit_suptitle",
    "fit_title",
    "grid_density",
    "hide_unknown",
    "image_grid",
    "image_panels",
    "labelled_rows",
    "pixel_scale",
    "plot_autocorrelation",
    "plot_curves",
    "plot_trace",
    "samples_beside_data",
    "save_figure",
    "text_extent",
    "tile_images",
    "title_overflows",
    "wrap_to_width",
]
