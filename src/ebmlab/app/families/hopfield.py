"""Recipe ``hopfield``: a binary Hopfield network as an associative memory for images.

``fit`` thresholds the training images, picks ``n_patterns`` of them (most separated, k-means
representatives or random) and stores them with the chosen rule (lecture 001 part 1; the
pseudo-inverse rule by default, since images are strongly correlated and the Hebbian rule then
merges them). ``evaluate`` probes the stored images with 20% of their pixels flipped and with
half the image hidden; ``figures`` draws the completions and what unseen test images recall.
No likelihood: a Hopfield network is a memory, not a normalised density here.
"""

from __future__ import annotations

from typing import Any

import torch

from ...models.hopfield import RULES, Hopfield, to_binary, to_spins
from ...validation import Real
from .. import viz
from ..hopfield_experiments import completion_rows, select_patterns
from ..recipes import Context, Figure, Option, Recipe, register

#: At most this many training images are searched when picking the patterns.
MAX_CANDIDATES = 5000
#: Noisy probes per stored pattern in ``evaluate``.
PROBE_REPEATS = 20


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[Hopfield, None]:
    return Hopfield(x_train.shape[1], rule=ctx.options["rule"]), None


def _fit(model: Hopfield, x_train: torch.Tensor, ctx: Context) -> dict[str, Any]:
    options = ctx.options
    binary = (x_train > options["threshold"]).float().cpu()
    seed = ctx.seed()
    candidates = torch.randperm(binary.shape[0], generator=torch.Generator().manual_seed(seed))
    candidates = candidates[:MAX_CANDIDATES]
    idx = candidates[
        select_patterns(binary[candidates], options["n_patterns"], options["select"], seed)
    ]
    model.store(to_spins(binary[idx]).to(model.W.device))
    return {
        "n_patterns": int(idx.numel()),
        "load": idx.numel() / model.n_units,
        "pattern_indices": idx.tolist(),
    }


def _probe_generator(ctx: Context) -> torch.Generator:
    # a fresh generator from the run's seed, so that evaluate and figures draw the same probes
    return torch.Generator(device=ctx.device).manual_seed(ctx.generator.initial_seed() + 1)


def _probe(
    model: Hopfield, patterns: torch.Tensor, shape: tuple[int, int], ctx: Context
) -> tuple[list[tuple[str, torch.Tensor]], dict[str, float]]:
    """``completion_rows`` of ``patterns`` with the run's --flip and --mode, from the probe seed."""
    o = ctx.options
    generator = _probe_generator(ctx)
    return completion_rows(
        model, patterns, shape, flip=o["flip"], mode=o["mode"], generator=generator
    )


def _evaluate(
    model: Hopfield, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    shape = ctx.image_shape or (1, model.n_units)
    # every stored pattern probed PROBE_REPEATS times with fresh noise, for stable fractions
    probes = model.patterns.repeat(PROBE_REPEATS, 1)
    _, rates = _probe(model, probes, shape, ctx)
    binary = to_spins((x_test[:1000] > ctx.options["threshold"]).float())
    recalled, info = model.recall(
        binary, mode=ctx.options["mode"], seed=_probe_generator(ctx), return_info=True
    )
    nearest = (recalled @ model.patterns.T).argmax(1)
    stored = (recalled == model.patterns[nearest]).all(1).float().mean().item()
    metrics: dict[str, Any] = dict(rates)
    metrics.update(
        {
            "n_patterns": model.patterns.shape[0],
            "load": model.patterns.shape[0] / model.n_units,
            "n_probes": probes.shape[0],
            "test_recalls_a_stored_pattern": stored,
            "test_mean_sweeps": info.sweeps.float().mean().item(),
            "log_likelihood_method": "none",
        }
    )
    return metrics


def _figures(model: Hopfield, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape or (1, model.n_units)
    patterns = model.patterns[:10]
    rows, metrics = _probe(model, patterns, shape, ctx)
    rule = ctx.options["rule"]
    completion = viz.labelled_rows(
        rows, shape, ctx.out_dir / "completion.png", title=f"Hopfield ({rule}): pattern completion"
    )
    test = to_spins((x_test[:10] > ctx.options["threshold"]).float())
    recalled, _ = model.recall(
        test, mode=ctx.options["mode"], seed=_probe_generator(ctx), return_info=True
    )
    memory = viz.labelled_rows(
        [("test image", to_binary(test)), ("recalls", to_binary(recalled))],
        shape,
        ctx.out_dir / "test_recall.png",
        title="Hopfield: unseen test images fall into a stored memory",
    )
    n = model.patterns.shape[0]
    return [
        Figure(
            completion,
            "Pattern completion",
            f"{n} stored images ({rule} rule). From 20% flipped pixels "
            f"{metrics['flip_recall_fraction']:.0%} of the shown patterns are recalled exactly; "
            f"from the top half alone {metrics['half_recall_fraction']:.0%}.",
        ),
        Figure(
            memory,
            "Associative recall of test images",
            "Each unseen test image, run to a fixed point: the memory it is attracted to.",
        ),
    ]


register(
    Recipe(
        name="hopfield",
        summary="Hopfield associative memory: store binary images, complete corrupted ones",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        fit=_fit,
        binarize="threshold",
        options=(
            Option("rule", str, "pseudoinverse", "storage rule", choices=RULES),
            Option("n_patterns", int, 10, "number of training images stored"),
            Option(
                "select",
                str,
                "farthest",
                "how the stored images are picked",
                choices=("farthest", "kmeans", "random"),
            ),
            Option("threshold", float, 0.5, "pixel threshold for +-1 states", check=Real(0, 1)),
            Option(
                "flip",
                float,
                0.2,
                "fraction of pixels flipped in the noisy probes",
                check=Real(0, 1),
            ),
            Option("mode", str, "async", "update dynamics", choices=("async", "sync")),
        ),
        demo={"data": "digits", "options": {"n_patterns": 10}},
    )
)
