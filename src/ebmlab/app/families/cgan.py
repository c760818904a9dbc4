"""Recipe ``cgan``: conditional GAN (Mirza & Osindero 2014), MLP or DCGAN-style.

``ebmlab train cgan --data mnist`` trains a generator G(z, y) and a discriminator D(x, y) on
grey-level images and their labels (``ebmlab.models.cgan``); the objective is the GAN's
(non-saturating generator loss, R1 penalty, both players from one loss) with the class given to
both players (``ebmlab.objectives.cgan``). The labels reach the one training loop as one-hot
columns beside the pixels (``stages``), as for the Boltzmann machine with label units.

Evaluation. No density, so no likelihood (as for ``gan``). For as many samples as there are
test images, one per test image with that image's class (so the classes come in the test set's
proportions):

  * ``test_class_accuracy``: the fraction that the classifier trained on the dataset's real
    labels (the Frechet digit distance's, ``ebmlab.metrics.frechet``) assigns to the requested
    class, per class in ``test_class_accuracy_per_class``, beside the classifier's own accuracy
    on real test images;
  * the Frechet digit distance of all samples against the test images, with the floor and
    baselines of ``gan`` (``test_frechet_distance``, ...), and per class: the samples of class k
    against the test images of class k (``test_frechet_distance_per_class``), beside the floor
    of as many training images of class k. ``gan`` reports the same per-class numbers with its
    samples grouped by the classifier's labels, at the same sample sizes.
"""

from __future__ import annotations

from typing import Any

import torch

from ...metrics.conditional import class_accuracy
from ...models.cgan import ConditionalGAN
from ...objectives.cgan import ConditionalGANObjective, labelled_rows
from ...training import Stage, TrainConfig
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register
from .gan import (
    DEMO,
    TRAIN_DEFAULTS,
    image_scores,
    network_options,
    objective_options,
    per_class_scores,
)
from .gan import OPTIONS as GAN_OPTIONS

#: Per data kind, the value an option left at None takes (images only: labels are needed).
AUTO: dict[str, dict[str, Any]] = {"image": {"latent_dim": 64, "hidden": 512, "r1_gamma": 3.0}}

OPTIONS = (
    *GAN_OPTIONS,
    Option(
        "discriminator_batch_norm",
        bool,
        False,
        "BatchNorm in the discriminator (DCGAN, not on its first layer)",
    ),
)


def _n_classes(ctx: Context) -> int:
    y = ctx.y_train
    if y is None:
        raise ValueError(
            f"--data: the conditional GAN needs class labels, and {ctx.data_name!r} has none"
        )
    return max(int(y.max()) + 1, 2)


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[ConditionalGAN, ConditionalGANObjective]:
    o = ctx.resolved_options(AUTO)
    model = ConditionalGAN(
        x_train.shape[1],
        n_classes=_n_classes(ctx),
        **network_options(o, ctx.image_shape),
        output="sigmoid",
        discriminator_batch_norm=o["discriminator_batch_norm"],
        seed=ctx.seed(),
    )
    return model, ConditionalGANObjective(**objective_options(o))


def _stages(
    model: ConditionalGAN,
    objective: ConditionalGANObjective,
    ctx: Context,
    config: TrainConfig,
) -> list[Stage]:
    """One stage on the rows [x, e_y]: the labels travel beside the pixels."""
    x = ctx.train_data()
    y = ctx.labels("train", x.shape[0])
    if y is None:
        raise ValueError(f"--data: dataset {ctx.data_name!r} has no labels for its images")
    rows = labelled_rows(x, y, model.n_classes)
    return [Stage("train", model, objective, rows, config, "both players, conditioned")]


# ----- evaluation --------------------------------------------------------------------------------
@torch.no_grad()
def class_samples(
    model: ConditionalGAN, labels: torch.Tensor, generator: torch.Generator, chunk: int = 5000
) -> torch.Tensor:
    """One sample G(z, y) per entry of ``labels`` (on the CPU), drawn in chunks."""
    parts = [
        model.sample(part.shape[0], generator, labels=part.to(model.device)).cpu()
        for part in labels.split(chunk)
    ]
    return torch.cat(parts)


def _evaluate(
    model: ConditionalGAN, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    y_test = ctx.labels("test", x_test.shape[0])
    if y_test is None:
        raise ValueError(f"dataset {ctx.data_name!r}: the test images have no labels")
    n = ctx.options.get("fd_samples") or x_test.shape[0]
    labels = y_test.cpu().repeat(-(-n // y_test.shape[0]))[:n]
    samples = class_samples(model, labels, ctx.generator)
    metrics: dict[str, Any] = {
        "likelihood": "none: a GAN defines no density (scored by its classes and the Frechet "
        "distance)"
    }
    accuracy = class_accuracy(samples, labels, ctx.data_name)
    metrics.update(
        {
            "test_class_accuracy": accuracy["accuracy"],
            "test_class_accuracy_per_class": {str(k): v for k, v in accuracy["per_class"].items()},
            "class_accuracy_n_samples": accuracy["n"],
            "class_accuracy_method": "classifier trained on real labels (Frechet digit distance)",
            "classifier_test_accuracy": accuracy["classifier_accuracy"],
        }
    )
    metrics.update(image_scores(samples, x_train, x_test, ctx))
    if n == x_test.shape[0]:
        metrics.update(per_class_scores(samples, labels, x_train, x_test, ctx))
    return metrics


# ----- figures -----------------------------------------------------------------------------------
@torch.no_grad()
def _figures(model: ConditionalGAN, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    k, columns = model.n_classes, 10
    z = model.sample_latent(columns, ctx.generator).repeat(k, 1)
    labels = torch.arange(k, device=model.device).repeat_interleave(columns)
    grid = model.generate(z, labels)
    return [
        Figure(
            viz.image_grid(
                grid,
                shape,
                ctx.out_dir / "class_samples.png",
                nrow=columns,
                row_labels=[str(c) for c in range(k)],
                title="conditional GAN: G(z, y), one row per class",
            ),
            "Class-conditional samples",
            "Row y: G(z, y) for class y; each column keeps the same z, so what changes down a "
            "column is the class and what changes along a row is the style z encodes.",
        )
    ]


register(
    Recipe(
        name="cgan",
        summary="conditional GAN (MLP or DCGAN-style); class accuracy, Frechet digit distance",
        build=_build,
        stages=_stages,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=OPTIONS,
        train_defaults=TRAIN_DEFAULTS,
        demo=DEMO,
        data_kinds=("image",),
    )
)
