"""Hopfield experiments: the capacity sweep and pattern completion on images.

Capacity (``capacity_sweep``): random +-1 patterns, P = load * N of them, stored with each rule;
for every load it measures the fraction of stored patterns that are fixed points of the
dynamics and the fraction recalled exactly from probes with 10% of their bits flipped (exactly
round(0.1 N) bits, chosen at random), and the mean overlap m = y . x / N after recall. The
Hebbian rule collapses near P/N = 0.138 (Amit, Gutfreund & Sompolinsky 1985); the modern network
(Ramsauer et al. 2020) stores exponentially many patterns, and its binary recall is the sign of
one update. ``write_capacity`` writes the table (JSON) and the plot (PNG).

Pattern completion (``completion_rows``, ``completion_grid``): stored images, probes with 20% of
pixels flipped and with half of the image hidden (set to "off" or to random pixels), and what
the network retrieves from each, as one labelled image grid.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..models.hopfield import (
    RULES,
    Hopfield,
    HopfieldCapacityWarning,
    ModernHopfield,
    capacity_bounds,
    flip_bits,
    hebbian_fixed_point_probability,
    to_binary,
    to_spins,
)
from ..models.hopfield_hidden import HiddenHopfield

ALL_RULES = (*RULES, "modern")
#: Loads P/N for the classical rules: dense around the Hebbian collapse at 0.138.
DEFAULT_LOADS = (
    0.025, 0.05, 0.075, 0.1, 0.12, 0.138, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
)  # fmt: skip
#: Extra loads for the modern network, far beyond N.
DEFAULT_MODERN_LOADS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
HEBBIAN_CAPACITY = 0.138
#: Marker and line style per rule, so that curves lying on top of each other stay visible.
STYLES = {
    "hebbian": ("o", "-"),
    "storkey": ("s", "-"),
    "pseudoinverse": ("^", "-"),
    "learned": ("D", "-"),
    "modern": ("*", "--"),
}
#: The capacity bounds drawn on the plot (keys of ``capacity_bounds``): colour, style, label.
BOUND_STYLES = {
    "mceliece": ("tab:red", ":", "N / (4 ln N), McEliece et al. 1987"),
    "amit": ("gray", "--", "0.138 N, Amit et al. 1985"),
    "mostafa_st_jacques": ("tab:green", "-.", "N, Mostafa & St. Jacques 1985"),
}


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 0.0) / max(n, 1))


def random_patterns(p: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """P uniformly random +-1 patterns of N units."""
    return torch.where(torch.rand(p, n, generator=generator) < 0.5, -1.0, 1.0)


def series_name(row: dict[str, Any]) -> str:
    """The curve a row belongs to: its rule, with ``K = n_hidden`` when it has hidden units."""
    k = row.get("n_hidden", 0)
    return row["rule"] if not k else f"{row['rule']}, K={k}"


def _measure(
    rule: str,
    patterns: torch.Tensor,
    probes_idx: torch.Tensor,
    noise: float,
    mode: str,
    max_sweeps: int,
    model_options: dict[str, Any],
    modern_beta: float | None,
    generator: torch.Generator,
    n_hidden: int = 0,
    hidden_fill: str = "random",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fixed-point flags over all patterns, exact-recall flags, overlaps) for one network.

    With ``n_hidden`` K > 0 the network is a ``HiddenHopfield`` of N + K units: the probes give
    the visible part only, the hidden part is inferred with the visible part clamped, and recall
    is judged on the visible part."""
    n = patterns.shape[1]
    targets = patterns[probes_idx]
    probes = flip_bits(targets, noise, generator)
    if n_hidden > 0:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        hidden = HiddenHopfield(
            n, n_hidden, rule=rule, fill=hidden_fill, seed=seed, **model_options
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HopfieldCapacityWarning)
            hidden.store(patterns)
        fixed = hidden.is_fixed_point(hidden.patterns)
        recalled = hidden.recall(probes, mode=mode, max_sweeps=max_sweeps, seed=generator)
    elif rule == "modern":
        modern = ModernHopfield(n, beta=modern_beta).store(patterns)
        fixed = (modern.recall(patterns, binary=True) == patterns).all(1)
        recalled = modern.recall(probes, binary=True)
    else:
        net = Hopfield(n, rule=rule, **model_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HopfieldCapacityWarning)  # overload is the point
            net.store(patterns)
        fixed = net.is_fixed_point(patterns)
        recalled, _ = net.recall(
            probes, mode=mode, max_sweeps=max_sweeps, seed=generator, return_info=True
        )
    exact = (recalled == targets).all(1)
    overlap = (recalled * targets).mean(1)
    return fixed, exact, overlap


def capacity_sweep(
    n_units: int = 500,
    loads: Sequence[float] = DEFAULT_LOADS,
    modern_loads: Sequence[float] = DEFAULT_MODERN_LOADS,
    rules: Sequence[str] = ALL_RULES,
    noise: float = 0.1,
    min_probes: int = 200,
    max_probes: int = 500,
    mode: str = "async",
    max_sweeps: int = 100,
    learned_options: dict[str, Any] | None = None,
    modern_beta: float | None = None,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
    n_hidden: Sequence[int] = (0,),
    hidden_fill: str = "random",
) -> list[dict[str, Any]]:
    """Sweep the load P/N for each rule and number of hidden units; one row per (rule, K, load).

    Each row: rule, n_units, n_patterns, load, trials (independent networks), n_probes,
    fixed_point_fraction (over all stored patterns of all trials), recall_fraction (exact recall
    from ``noise``-flipped probes), recall_overlap (mean y . x / N), their standard errors, and
    seconds. Each network gets fresh random patterns; the same patterns are used for every rule
    (seeded by seed, load and trial). At most ``max_probes`` probes per network; networks are
    repeated until ``min_probes`` probes are reached. The pseudoinverse rule is skipped at
    P >= N (it cannot store that many). ``learned_options`` go to ``Hopfield`` for the learned
    rule (default: ``{"learned_noise": 0.1}``, negatives started from 10%-flipped patterns).
    ``n_hidden``: the values of K (hidden units added to the N visible ones, ``HiddenHopfield``
    with hidden parts filled by ``hidden_fill``); the load stays P/N, with N the visible units,
    and K > 0 is skipped for the modern network. The pseudoinverse rule is skipped at
    P >= N + K.
    """
    unknown = [r for r in rules if r not in ALL_RULES]
    if unknown:
        raise ValueError(f"rules: unknown {unknown}; valid: {', '.join(ALL_RULES)}")
    if n_units < 2:
        raise ValueError(f"n_units: expected at least 2, got {n_units}")
    if any(not load > 0 for load in (*loads, *modern_loads)):
        raise ValueError("loads: expected positive numbers P/N")
    hidden_values = list(dict.fromkeys(n_hidden))
    if not hidden_values or any(
        not isinstance(k, int) or isinstance(k, bool) or k < 0 for k in hidden_values
    ):
        raise ValueError(f"n_hidden: expected integers K >= 0, got {list(n_hidden)}")
    learned = {"learned_noise": 0.1} if learned_options is None else dict(learned_options)
    rows: list[dict[str, Any]] = []
    for rule, k_hidden in itertools.product(rules, hidden_values):
        if rule == "modern" and k_hidden > 0:
            continue
        rule_loads = sorted(set(loads) | (set(modern_loads) if rule == "modern" else set()))
        for load in rule_loads:
            p = max(1, round(load * n_units))
            if rule == "pseudoinverse" and p >= n_units + k_hidden:
                continue
            started = time.perf_counter()
            n_probe = min(p, max_probes)
            trials = max(1, math.ceil(min_probes / n_probe))
            fixed, exact, overlap = [], [], []
            for trial in range(trials):
                # the same patterns for every rule at this (load, trial)
                key = seed * 1_000_003 + round(load * 1e4) * 1_009 + trial
                generator = torch.Generator().manual_seed(key)
                patterns = random_patterns(p, n_units, generator)
                idx = torch.randperm(p, generator=generator)[:n_probe]
                options = learned if rule == "learned" else {}
                f, e, o = _measure(
                    rule,
                    patterns,
                    idx,
                    noise,
                    mode,
                    max_sweeps,
                    options,
                    modern_beta,
                    generator,
                    k_hidden,
                    hidden_fill,
                )
                fixed.append(f)
                exact.append(e)
                overlap.append(o)
            f_all, e_all, o_all = torch.cat(fixed), torch.cat(exact), torch.cat(overlap)
            fp, rf = f_all.float().mean().item(), e_all.float().mean().item()
            row = {
                "rule": rule,
                "n_units": n_units,
                "n_hidden": k_hidden,
                "n_patterns": p,
                "load": p / n_units,
                "trials": trials,
                "n_probes": e_all.numel(),
                "fixed_point_fraction": fp,
                "fixed_point_se": _binomial_se(fp, f_all.numel()),
                "recall_fraction": rf,
                "recall_se": _binomial_se(rf, e_all.numel()),
                "recall_overlap": o_all.mean().item(),
                "seconds": round(time.perf_counter() - started, 3),
            }
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def crossing_load(rows: Sequence[dict[str, Any]], rule: str, key: str, level: float = 0.5) -> float:
    """Load at which ``key`` first falls below ``level`` for ``rule`` (linear interpolation);
    inf if it never does, 0 if it starts below."""
    points = sorted((r["load"], r[key]) for r in rows if series_name(r) == rule)
    if not points:
        raise ValueError(f"rule: no rows for {rule!r}")
    if points[0][1] < level:
        return 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y1 < level <= y0:
            return x0 + (y0 - level) / (y0 - y1) * (x1 - x0)
    return math.inf


def capacity_summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per rule (and K): the load where the fixed-point and exact-recall fractions fall through
    1/2."""
    summary = {}
    for rule in dict.fromkeys(series_name(r) for r in rows):
        fixed = crossing_load(rows, rule, "fixed_point_fraction")
        recall = crossing_load(rows, rule, "recall_fraction")
        max_load = max(r["load"] for r in rows if series_name(r) == rule)
        summary[rule] = {
            "fixed_point_half_load": fixed if math.isfinite(fixed) else None,
            "recall_half_load": recall if math.isfinite(recall) else None,
            "max_load_tested": max_load,
        }
    return summary


def plot_capacity(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Three panels against the load P/N (log scale): fixed points, exact recall, overlap.

    Every panel marks the capacity bounds of lecture 001 at this N as loads (``BOUND_STYLES``);
    the first also draws the Hebbian fixed-point probability (1 - p_err)^N of
    ``hebbian_fixed_point_probability`` when the rows include the Hebbian rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("fixed_point_fraction", "fixed_point_se", "stored patterns that are fixed points"),
        ("recall_fraction", "recall_se", "recalled exactly from 10% flipped bits"),
        ("recall_overlap", None, "overlap y.x/N after recall"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    n_units = rows[0]["n_units"] if rows else 0
    bounds = capacity_bounds(n_units) if n_units >= 2 else {}
    hebbian_loads = sorted({r["load"] for r in rows if r["rule"] == "hebbian"})
    if hebbian_loads:
        grid = torch.logspace(
            math.log10(hebbian_loads[0]), math.log10(hebbian_loads[-1]), 60
        ).tolist()
        loads = sorted({max(1, round(x * n_units)) / n_units for x in grid})
        theory = [hebbian_fixed_point_probability(n_units, round(x * n_units)) for x in loads]
        theory_style = {"color": "black", "linestyle": ":", "linewidth": 1.2}
        axes[0].plot(loads, theory, label="hebbian, (1 - p_err)^N", **theory_style)
    for ax, (key, se_key, label) in zip(axes, panels):
        for rule in dict.fromkeys(series_name(r) for r in rows):
            pts = sorted((r for r in rows if series_name(r) == rule), key=lambda r: r["load"])
            xs = [r["load"] for r in pts]
            ys = [r[key] for r in pts]
            marker, style = STYLES.get(pts[0]["rule"], ("o", "-"))
            style = style if not pts[0].get("n_hidden") else ":"
            ax.plot(xs, ys, marker=marker, markersize=4, linestyle=style, label=rule)
            if se_key is not None:
                se = [r[se_key] for r in pts]
                lo = [y - s for y, s in zip(ys, se)]
                hi = [y + s for y, s in zip(ys, se)]
                ax.fill_between(xs, lo, hi, alpha=0.2)
        for name, patterns in bounds.items():
            colour, style, text = BOUND_STYLES[name]
            ax.axvline(patterns / n_units, color=colour, linestyle=style, linewidth=1, label=text)
        ax.set_xscale("log")
        ax.set_xlabel("load P/N")
        ax.set_title(label, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or f"Hopfield capacity, N = {n_units} random patterns")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def write_capacity(
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    config: dict[str, Any] | None = None,
    stem: str = "hopfield_capacity",
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (config, summary, machine, rows) and ``<stem>.png``; return paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "config": config or {},
        "summary": capacity_summary(rows),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "seconds": round(sum(r["seconds"] for r in rows), 1),
        "rows": list(rows),
    }
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    png_path = plot_capacity(rows, out / f"{stem}.png")
    return json_path, png_path


# ----- pattern completion on images --------------------------------------------------------------
def select_patterns(
    x: torch.Tensor,
    n: int,
    method: str = "kmeans",
    seed: int = 0,
    labels: torch.Tensor | None = None,
    max_fit: int = 5000,
) -> torch.Tensor:
    """Pick ``n`` distinct rows of binary images ``x`` (M, D) to store; returns their indices.

    ``per-class`` (needs ``labels``): classes in turn, in each the examples nearest the class's
    mean image first (one typical image per class, then a second, ...);
    ``kmeans``: the example nearest to each of n k-means centres (typical, diverse images);
    ``farthest``: greedy max-min Hamming distance from a random start (most separated);
    ``random``: uniformly at random. k-means is fitted on at most ``max_fit`` rows.
    """
    m = x.shape[0]
    if not 1 <= n <= m:
        raise ValueError(f"n_patterns: expected 1..{m} (the number of images), got {n}")
    generator = torch.Generator().manual_seed(seed)
    if method == "per-class":
        if labels is None or labels.shape[0] != m:
            raise ValueError("labels: select='per-class' needs one label per image")
        ranked = []
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().squeeze(1)
            mean = x[members].double().mean(0)
            order = (x[members].double() - mean).square().sum(1).argsort()
            ranked.append(members[order])
        picks = [r[k] for k in range(max(len(r) for r in ranked)) for r in ranked if k < len(r)]
        return torch.stack(picks[:n])
    if method == "random":
        return torch.randperm(m, generator=generator)[:n]
    if method == "farthest":
        chosen = [int(torch.randint(m, (1,), generator=generator))]
        distance = (x != x[chosen[0]]).sum(1).double()
        for _ in range(n - 1):
            nxt = int(distance.argmax())
            chosen.append(nxt)
            distance = torch.minimum(distance, (x != x[nxt]).sum(1).double())
        return torch.tensor(chosen)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        fit_idx = torch.randperm(m, generator=generator)[:max_fit]
        data = x[fit_idx].double().cpu().numpy()
        km = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(data)
        centres = torch.as_tensor(km.cluster_centers_)
        nearest = torch.cdist(centres, x[fit_idx].double().cpu()).argmin(1)
        idx = fit_idx[nearest]
        return torch.unique(idx, sorted=False)[:n]
    raise ValueError(f"select: expected one of per-class, kmeans, farthest, random, got {method!r}")


def hide_half(
    y: torch.Tensor,
    image_shape: tuple[int, int],
    side: str = "bottom",
    fill: str = "off",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide one half of each image: returns (probes, known) with ``known`` a (D,) bool mask.

    ``fill`` sets the hidden pixels: "off" (-1, blank) or "random" (+-1 coin flips).
    """
    h, w = image_shape
    if y.shape[1] != h * w:
        raise ValueError(f"image_shape: {image_shape} does not match {y.shape[1]} units")
    rows = torch.arange(h, device=y.device)[:, None].expand(h, w)
    cols = torch.arange(w, device=y.device)[None, :].expand(h, w)
    hidden = {
        "bottom": rows >= h // 2,
        "top": rows < h - h // 2,
        "right": cols >= w // 2,
        "left": cols < w - w // 2,
    }
    if side not in hidden:
        raise ValueError(f"side: expected one of {', '.join(hidden)}, got {side!r}")
    mask = hidden[side].reshape(-1)
    if fill == "off":
        values = -torch.ones_like(y)
    elif fill == "random":
        u = torch.rand(y.shape, generator=generator, device=y.device)
        values = torch.where(u < 0.5, -1.0, 1.0).to(y.dtype)
    else:
        raise ValueError(f"fill: expected 'off' or 'random', got {fill!r}")
    return torch.where(mask[None, :], values, y), ~mask


def completion_rows(
    model: Hopfield,
    patterns: torch.Tensor,
    image_shape: tuple[int, int],
    flip: float = 0.2,
    side: str = "bottom",
    fill: str = "off",
    mode: str = "async",
    clamp_known: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[list[tuple[str, torch.Tensor]], dict[str, float]]:
    """Probe a network with its stored images (+-1 rows of ``patterns``) corrupted two ways.

    Returns the grid rows [(label, 0/1 images)] (stored, flipped probe, its recall, half-hidden
    probe, its recall) and metrics: fraction of stored patterns that are fixed points, and for
    each probe kind the fraction recalled exactly and the mean overlap y . x / N.
    ``clamp_known`` holds the visible half fixed while the hidden half is completed.
    """
    flipped = flip_bits(patterns, flip, generator)
    hidden, known = hide_half(patterns, image_shape, side, fill, generator)
    recall_flip, _ = model.recall(flipped, mode=mode, seed=generator, return_info=True)
    recall_half, _ = model.recall(
        hidden, mode=mode, seed=generator, clamp=known if clamp_known else None, return_info=True
    )
    metrics = {
        "fixed_point_fraction": model.is_fixed_point(patterns).float().mean().item(),
        "flip_recall_fraction": (recall_flip == patterns).all(1).float().mean().item(),
        "flip_overlap": (recall_flip * patterns).mean().item(),
        "half_recall_fraction": (recall_half == patterns).all(1).float().mean().item(),
        "half_overlap": (recall_half * patterns).mean().item(),
    }
    pct = round(100 * flip)
    rows = [
        ("stored", to_binary(patterns)),
        (f"{pct}% flipped", to_binary(flipped)),
        ("recalled", to_binary(recall_flip)),
        (f"{side} half hidden", to_binary(hidden)),
        ("recalled", to_binary(recall_half)),
    ]
    return rows, metrics


def completion_grid(
    rows: Sequence[tuple[str, torch.Tensor]],
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """One labelled row of 0/1 images per entry of ``rows`` (all rows the same length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = {images.shape[0] for _, images in rows}
    if len(lengths) != 1:
        raise ValueError(f"rows: expected the same number of images in every row, got {lengths}")
    n_cols, n_rows = lengths.pop(), len(rows)
    cell = 0.7 if max(image_shape) <= 16 else 0.9
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(1.6 + cell * n_cols, 0.4 + cell * n_rows),
        squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.08},
    )
    for r, (label, images) in enumerate(rows):
        pictures = images.detach().cpu().float().reshape(-1, *image_shape)
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(pictures[c].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return target


def image_completion(
    x: torch.Tensor,
    image_shape: tuple[int, int],
    path: str | os.PathLike[str],
    n_patterns: int = 10,
    rule: str = "pseudoinverse",
    threshold: float = 0.5,
    select: str = "kmeans",
    flip: float = 0.2,
    seed: int = 0,
    title: str | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[Hopfield, dict[str, float], Path]:
    """Store ``n_patterns`` images of ``x`` (values in [0, 1], thresholded), probe them and write
    the completion grid; returns (network, metrics, path)."""
    binary = (x > threshold).float()
    idx = select_patterns(binary, n_patterns, select, seed, labels)
    patterns = to_spins(binary[idx])
    net = Hopfield(binary.shape[1], rule=rule).store(patterns)
    generator = torch.Generator().manual_seed(seed)
    rows, metrics = completion_rows(net, patterns, image_shape, flip=flip, generator=generator)
    out = completion_grid(rows, image_shape, path, title=title)
    return net, metrics, out
