"""Recipe ``semantic-hashing``: binary codes from an RBM-pretrained autoencoder (lecture 002).

Salakhutdinov & Hinton's semantic hashing: a deep autoencoder whose code layer is logistic and
driven to binary values by noise added before the code sigmoid in training
(``ebmlab.models.HashingAutoencoder``), pretrained by a stack of RBMs and fine-tuned by
reconstruction (``autoencoder_stages``, the one greedy engine and the one loop). An image's
address is its code thresholded at 1/2; similar images land at nearby addresses, so a query
retrieves the items within a small Hamming ball through an address table, with no scan.

``evaluate`` scores the codes of test images as queries against the training images as the
database, "same class" being relevance: mean average precision of the Hamming ranking
(``test_map``), precision within Hamming radius 2 (``test_precision_r2``) and the
precision-recall curve over radii, beside three baselines of as many bits fitted in the same run
(sign of PCA projections, random-hyperplane LSH, ITQ). ``ebmlab hash`` is the MNIST experiment
with the retrieval timing; this recipe is the same scoring as a family of ``ebmlab train``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...models.hashing import MAX_BITS, HashingAutoencoder, hamming_distances
from ...objectives.autoencoder import ReconstructionObjective
from ...training import Stage, TrainConfig
from ...training.greedy import autoencoder_stages
from ...validation import Integral, Real
from .. import viz
from ..hashing_experiments import plot_hashing, score_codes
from ..recipes import Context, Figure, Option, Recipe, parse_sizes, register

#: The baselines' names in ``score_codes``' results: the prefix of their metrics.
BASELINES = {"pca-sign": "pca_sign", "lsh": "lsh", "itq": "itq"}


def _build(
    x_train: torch.Tensor, ctx: Context
) -> tuple[HashingAutoencoder, ReconstructionObjective]:
    o = ctx.options
    sizes = [x_train.shape[1], *parse_sizes(o["hidden"], "--hidden"), ctx.options["bits"]]
    model = HashingAutoencoder(sizes, code_noise=o["code_noise"], seed=ctx.seed())
    return model, ReconstructionObjective("cross_entropy")


def _stages(
    model: HashingAutoencoder,
    objective: ReconstructionObjective,
    ctx: Context,
    config: TrainConfig,
) -> list[Stage]:
    """RBM pretraining of every layer (``pretrain1``, ...), then fine-tuning with the noisy code
    (``finetune``, the loop flags)."""
    return list(
        autoencoder_stages(
            model,
            objective,
            ctx.train_data(),
            config,
            pretrain_epochs=ctx.options["pretrain_epochs"],
            seed=ctx.seed(),
            settings="--pretrain-epochs (the rest fixed: CD-1, lr 0.1, batch 100)",
        )
    )


def _labels(ctx: Context, x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[Any, Any]:
    y_train, y_test = ctx.labels("train", x_train.shape[0]), ctx.labels("test", x_test.shape[0])
    if y_train is None or y_test is None:
        raise ValueError(
            f"--data: semantic hashing is scored with class labels as relevance, and "
            f"{ctx.data_name!r} has none"
        )
    return y_train.cpu(), y_test.cpu()


def _scores(
    model: HashingAutoencoder, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    y_train, y_test = _labels(ctx, x_train, x_test)
    return score_codes(
        model, x_train.cpu(), y_train, x_test.cpu(), y_test, ctx.options["queries"], ctx.seed()
    )


def _evaluate(
    model: HashingAutoencoder, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.cpu()
    scored = _scores(model, x_train, x_test, ctx)
    results = scored["results"]
    metrics: dict[str, Any] = {
        "likelihood": "none: an autoencoder's codes are scored by retrieval",
        "log_likelihood_method": "none",
        "n_bits": model.code_size,
        "n_queries": scored["n_queries"],
        "n_items": int(x_train.shape[0]),
        "code_saturation": scored["code_saturation"],
        "chance_precision": scored["chance_precision"],
        "test_map": results["autoencoder"]["map"],
        "test_precision_r2": results["autoencoder"]["precision_r2"],
        "distinct_addresses": results["autoencoder"]["distinct_addresses"],
        "pr_curve": results["autoencoder"]["pr_curve"],
    }
    for name, prefix in BASELINES.items():
        metrics[f"{prefix}_map"] = results[name]["map"]
        metrics[f"{prefix}_precision_r2"] = results[name]["precision_r2"]
    return metrics


def _figures(model: HashingAutoencoder, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    model.cpu()
    x_train = ctx.train_data().cpu()
    x_test = x_test.cpu()
    scored = _scores(model, x_train, x_test, ctx)
    curves = plot_hashing(
        {"benchmark": {"n_bits": model.code_size, "results": scored["results"]}},
        ctx.out_dir / "precision_recall.png",
        dataset=ctx.data_name,
    )
    # a few test queries and the training images nearest to them in Hamming distance
    shape = ctx.image_shape or (1, x_train.shape[1])
    queries = x_test[:8]
    d = hamming_distances(model.binary_codes(queries), scored["_item_codes"])
    nearest = d.argsort(dim=1, stable=True)[:, :5]
    rows = [("query", queries)] + [
        (f"neighbour {k + 1}", x_train[nearest[:, k]]) for k in range(nearest.shape[1])
    ]
    neighbours = viz.labelled_rows(
        rows, shape, ctx.out_dir / "neighbours.png", title="Nearest training images by code"
    )
    bits = model.code_size
    return [
        Figure(
            curves,
            "Precision and recall over Hamming radii",
            f"{bits}-bit codes of test queries against the training images, same class as "
            "relevance; the learned codes beside PCA-sign, LSH and ITQ codes of as many bits.",
        ),
        Figure(
            neighbours,
            "Retrieval by address",
            "Each column: a test image and the five training images whose codes are nearest to "
            "its code (Hamming distance, ties in database order).",
        ),
    ]


register(
    Recipe(
        name="semantic-hashing",
        summary="semantic hashing: binary codes of an RBM-pretrained autoencoder vs PCA/LSH/ITQ",
        build=_build,
        stages=_stages,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=(
            Option("bits", int, 32, f"code bits (1 to {MAX_BITS})", check=Integral(1, MAX_BITS)),
            Option("hidden", str, "500,250", "encoder hidden layers, bottom first"),
            Option(
                "pretrain_epochs",
                int,
                5,
                "epochs of every RBM in the pretraining",
                check=Integral(0),
            ),
            Option(
                "code_noise",
                float,
                4.0,
                "std of the noise before the code sigmoid",
                check=Real(0),
            ),
            Option("queries", int, 1000, "test images used as queries"),
        ),
        train_defaults={"epochs": 5, "batch_size": 100, "lr": 1e-3, "optimizer": "adam"},
        demo={
            "data": "digits",
            "options": {"bits": 16, "hidden": "256,128", "pretrain_epochs": 10, "queries": 359},
            "epochs": 100,
            "batch_size": 50,
            "lr": 3e-3,
        },
    )
)
