"""Pictures: image grids, training curves, 2-D densities. Everything writes PNG files with
matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


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
    canvas = tile_images(images, image_shape, nrow=nrow, normalize=normalize)
    height, width = canvas.shape
    scale = max(2.0, 6.0 / max(width, height) * 40)
    fig, ax = plt.subplots(
        figsize=(max(2.5, width / 40 * scale / 2), max(2.5, height / 40 * scale / 2))
    )
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        h = image_shape[0]
        ax.set_yticks([1 + i * (h + 1) + h / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=8)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


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


def plot_curves(
    history: Sequence[dict[str, Any]],
    keys: Sequence[str],
    path: str | os.PathLike[str],
    x_key: str = "epoch",
    title: str | None = None,
) -> Path:
    """Plot ``keys`` of a list of metric records against ``x_key``; one panel per key."""
    keys = [k for k in keys if any(k in r for r in history)]
    fig, axes = plt.subplots(
        1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3), squeeze=False
    )
    for ax, key in zip(axes[0], keys):
        points = [(r[x_key], r[key]) for r in history if key in r and x_key in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None)
        ax.set_xlabel(x_key)
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def density_2d(
    log_density: Any,
    bounds: tuple[float, float],
    path: str | os.PathLike[str],
    samples: Any | None = None,
    title: str | None = None,
) -> Path:
    """Show a (G, G) grid of log densities as an image (and optional samples beside it)."""
    values = _to_numpy(log_density)
    n_panels = 2 if samples is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(3.2 * n_panels, 3.2), squeeze=False)
    lo, hi = bounds
    axes[0][0].imshow(
        np.exp(values - values.max()).T, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis"
    )
    axes[0][0].set_title("density", fontsize=9)
    if samples is not None:
        s = _to_numpy(samples)
        axes[0][1].scatter(s[:, 0], s[:, 1], s=1, alpha=0.5)
        axes[0][1].set_xlim(lo, hi)
        axes[0][1].set_ylim(lo, hi)
        axes[0][1].set_aspect("equal")
        axes[0][1].set_title("samples", fontsize=9)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


# MCMC trace and autocorrelation plots live beside the diagnostics they draw
from .viz_mcmc import plot_autocorrelation, plot_trace  # noqa: E402

__all__ = [
    "MAX_FILTERS",
    "density_2d",
    "filters_grid",
    "hide_unknown",
    "image_grid",
    "labelled_rows",
    "plot_autocorrelation",
    "plot_curves",
    "plot_trace",
    "tile_images",
]
