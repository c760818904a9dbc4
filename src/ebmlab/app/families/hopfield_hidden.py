"""Recipe ``hopfield-hidden``: a Hopfield network with hidden neurons as a memory for images.

Lecture 001's expanded network: the N visible units carry the (thresholded) images and K hidden
units are added to raise the capacity (``ebmlab.models.HiddenHopfield``). ``fit`` stores
``n_patterns`` training images, each with a hidden part filled by ``fill`` (random codes, or
learned by alternating clamped inference and storage). ``evaluate`` probes every stored image
with ``flip`` of its pixels flipped and its hidden part unknown (inferred by a few clamped sweeps,
``hidden_start``), and reports the fraction recalled exactly beside the same storage rule on the
visible units alone (the same images, the same probes): at a load above the visible-only
network's capacity, the hidden units are what lets the memory hold. No likelihood.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ...models.hopfield import RULES, HopfieldCapacityWarning, flip_bits, to_binary, to_spins
from ...models.hopfield_hidden import FILLS, HIDDEN_STARTS, HiddenHopfield
from ...validation import Integral, Real
from .. import viz
from ..hopfield_experiments import select_patterns
from ..recipes import Context, Figure, Option, Recipe, register
from .hopfield import MAX_CANDIDATES, PROBE_REPEATS


def _network(n_visible: int, n_hidden: int, ctx: Context) -> HiddenHopfield:
    o = ctx.options
    return HiddenHopfield(n_visible, n_hidden, rule=o["rule"], fill=o["fill"], seed=ctx.seed())


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[HiddenHopfield, None]:
    return _network(x_train.shape[1], ctx.options["n_hidden"], ctx), None


def _fit(model: HiddenHopfield, x_train: torch.Tensor, ctx: Context) -> dict[str, Any]:
    o = ctx.options
    binary = (x_train > o["threshold"]).float().cpu()
    seed = ctx.seed()
    candidates = torch.randperm(binary.shape[0], generator=torch.Generator().manual_seed(seed))
    candidates = candidates[:MAX_CANDIDATES]
    idx = candidates[select_patterns(binary[candidates], o["n_patterns"], o["select"], seed)]
    with warnings.catch_warnings():
        # above the visible-only capacity is the point of the hidden units
        warnings.simplefilter("ignore", HopfieldCapacityWarning)
        model.store(to_spins(binary[idx]).to(model.net.W.device))
    return {
        "n_patterns": int(idx.numel()),
        "load": idx.numel() / model.n_visible,
        "fill_rounds": model.fill_rounds,
        "pattern_indices": idx.tolist(),
    }


def _visible_patterns(model: HiddenHopfield) -> torch.Tensor:
    return model.patterns[:, : model.n_visible]


def _recalls(
    model: HiddenHopfield, patterns: torch.Tensor, ctx: Context
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probes, recall of the network, recall of the visible-only network) from fresh noise of
    the probe seed, so that evaluate and figures see the same probes."""
    o = ctx.options
    generator = torch.Generator(device=patterns.device).manual_seed(ctx.seed() + 1)
    probes = flip_bits(patterns, o["flip"], generator)
    recalled = model.recall(probes, hidden=o["hidden_start"], mode=o["mode"], seed=generator)
    plain = _network(model.n_visible, 0, ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HopfieldCapacityWarning)
        plain.store(_visible_patterns(model))
    alone = plain.recall(probes, mode=o["mode"], seed=generator)
    assert isinstance(recalled, torch.Tensor) and isinstance(alone, torch.Tensor)
    return probes, recalled, alone


def _evaluate(
    model: HiddenHopfield, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    patterns = _visible_patterns(model)
    probes = patterns.repeat(PROBE_REPEATS, 1)
    _, recalled, alone = _recalls(model, probes, ctx)
    exact = (recalled == probes).all(1).float().mean().item()
    exact_alone = (alone == probes).all(1).float().mean().item()
    return {
        "flip_recall_fraction": exact,
        "flip_recall_fraction_without_hidden": exact_alone,
        "flip_overlap": (recalled * probes).mean().item(),
        "fixed_point_fraction": model.is_fixed_point(model.patterns).float().mean().item(),
        "n_patterns": patterns.shape[0],
        "n_hidden": model.n_hidden,
        "load": patterns.shape[0] / model.n_visible,
        "n_probes": probes.shape[0],
        "log_likelihood_method": "none",
    }


def _figures(model: HiddenHopfield, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape or (1, model.n_visible)
    patterns = _visible_patterns(model)[:10]
    probes, recalled, alone = _recalls(model, patterns, ctx)
    pct = round(100 * ctx.options["flip"])
    path = viz.labelled_rows(
        [
            ("stored", to_binary(patterns)),
            (f"{pct}% flipped", to_binary(probes)),
            ("visible only", to_binary(alone)),
            (f"with {model.n_hidden} hidden", to_binary(recalled)),
        ],
        shape,
        ctx.out_dir / "completion.png",
        title=f"Hopfield with {model.n_hidden} hidden units: recall",
    )
    n = model.patterns.shape[0]
    return [
        Figure(
            path,
            "Recall with and without hidden units",
            f"{n} stored images on {model.n_visible} visible units (load "
            f"{n / model.n_visible:.2f}, {ctx.options['rule']} rule). Each probe has {pct}% of "
            "its pixels flipped and its hidden part unknown; the third row is the same rule on "
            "the visible units alone.",
        )
    ]


register(
    Recipe(
        name="hopfield-hidden",
        summary="Hopfield network with hidden neurons: more stored images than N units hold",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        fit=_fit,
        binarize="threshold",
        options=(
            Option(
                "n_hidden",
                int,
                32,
                "hidden units K added to the N visible ones (0: the visible network alone)",
                check=Integral(0),
            ),
            Option("rule", str, "pseudoinverse", "storage rule of the full network", choices=RULES),
            Option("fill", str, "random", "hidden parts of the stored images", choices=FILLS),
            Option(
                "hidden_start",
                str,
                "infer",
                "a probe's unknown hidden part: random, or inferred with the visible part clamped",
                choices=HIDDEN_STARTS,
            ),
            Option("n_patterns", int, 30, "number of training images stored"),
            Option(
                "select",
                str,
                "farthest",
                "how the stored images are picked",
                choices=("farthest", "kmeans", "random"),
            ),
            Option("threshold", float, 0.5, "pixel threshold for +-1 states", check=Real(0, 1)),
            Option(
                "flip", float, 0.1, "fraction of pixels flipped in the probes", check=Real(0, 1)
            ),
            Option("mode", str, "async", "update dynamics", choices=("async", "sync")),
        ),
        demo={"data": "digits"},
    )
)
