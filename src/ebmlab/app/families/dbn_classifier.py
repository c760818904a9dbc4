"""Recipe ``dbn-classifier``: a DBN pretrained greedily, unrolled and fine-tuned as a classifier.

Hinton, Osindero & Teh (2006) report 1.25% MNIST test error for a fine-tuned 784-500-500-2000
DBN; Erhan et al. (2010) ask why unsupervised pre-training helps (lecture 002). ``ebmlab train
dbn-classifier --data mnist --layers 500,500,2000`` trains the RBMs of the stack greedily (stages
``layer1``, ``layer2``, ..., ``ebmlab.training.greedy.classifier_stages`` through ``dbn_stages``:
CD-1 on grey levels, SGD with momentum 0.5 then 0.9, weight decay 2e-4, ``--pretrain-*``
settings), unrolls them into sigmoid layers with a softmax output
(``ebmlab.models.DBNClassifier``) and fine-tunes the network by backpropagation of the
cross-entropy (stage ``finetune``, the loop flags ``--epochs``, ``--lr``, ``--batch-size``).
``--no-pretrain`` starts the same network from random weights and fine-tunes it with the same
budget; the pretraining budget is reported beside (``pretrain_epochs_per_rbm``,
``pretrain_seconds``).

Data. The last ``--validation`` fraction of the training images (1/6: MNIST's last 10,000) is
held out for the per-epoch validation curve; the rest (MNIST's first 50,000) pretrains and
fine-tunes the network. After every fine-tuning epoch the loop logs ``eval_training_error`` (on
the first 10,000 training images), ``eval_validation_error`` and ``eval_test_error``. The test
set gives the final number and is not used to choose anything.

Evaluation: ``test_error`` (the fraction misclassified, with its binomial standard error),
``train_error``, ``validation_error``, and the cross-entropies -log p(y | x) in nats. A
classifier defines no density over the images: no likelihood.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ...models.classifier import DBNClassifier, check_labels
from ...objectives.classification import CrossEntropyClassification
from ...stats import mean_and_se
from ...training import Stage, TrainConfig
from ...training.greedy import classifier_stages
from ...training.logging import stage_seconds
from ...training.loop import EpochCallback
from ...validation import Integral, Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, parse_sizes, register

#: Training examples the per-epoch training error is measured on.
CURVE_SUBSET = 10_000
#: The per-epoch errors the fine-tuning stage logs (``eval_`` + key in metrics.jsonl) and their
#: names in the figure.
CURVES = {
    "training_error": "training error",
    "validation_error": "validation error",
    "test_error": "test error",
}

OPTIONS = (
    Option("layers", str, "500,500,2000", "hidden layer sizes, bottom first (comma-separated)"),
    Option("pretrain", bool, True, "initialise the hidden layers from a greedily trained DBN"),
    Option("pretrain_epochs", int, 10, "CD epochs of every RBM of the stack", check=Integral(0)),
    Option("pretrain_lr", float, 0.05, "SGD learning rate of the RBMs"),
    Option("pretrain_batch_size", int, 100, "minibatch size of the RBMs"),
    Option("pretrain_k", int, 1, "Gibbs sweeps per CD update (CD-k)"),
    Option(
        "validation",
        float,
        1 / 6,
        "fraction of the training images held out, the last ones (1/6: MNIST's last 10,000)",
        check=Real(0, 1, closed="neither"),
    ),
)


def _data(ctx: Context) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The fitting, validation and test images with their labels (on the run's device):
    the training images split into the first ones (fitting) and the last ``validation``
    fraction."""
    if ctx.x_train is None or ctx.x_test is None:
        raise ValueError("ctx: the classifier needs the run's training and test data")
    y_train, y_test = ctx.y_train, ctx.y_test
    if y_train is None or y_test is None:
        raise ValueError(
            f"--data: the DBN classifier needs class labels, and {ctx.data_name!r} has none"
        )
    x = ctx.train_data()
    n = x.shape[0]
    fraction = float(ctx.options["validation"])
    n_valid = round(n * fraction)
    if not 0 < fraction < 1 or n_valid < 1 or n_valid >= n:
        raise ValueError(
            f"--validation: expected a fraction of the {n} training images that leaves at least "
            f"one image on each side, got {ctx.options['validation']!r}"
        )
    y_train = check_labels(y_train, _n_classes(ctx), n, "training labels").to(x.device)
    y_test = check_labels(y_test, _n_classes(ctx), ctx.x_test.shape[0], "test labels")
    fit = n - n_valid
    return {
        "train": (x[:fit], y_train[:fit]),
        "validation": (x[fit:], y_train[fit:]),
        "test": (ctx.x_test.to(x.device), y_test.to(x.device)),
    }


def _n_classes(ctx: Context) -> int:
    """K = the largest training label + 1 (at least 2); labels must be integers >= 0."""
    y = ctx.y_train
    if y is None:
        raise ValueError(
            f"--data: the DBN classifier needs class labels, and {ctx.data_name!r} has none"
        )
    if y.numel() == 0 or int(y.min()) < 0:
        raise ValueError("training labels: expected class labels 0, 1, ..., K - 1")
    return max(int(y.max()) + 1, 2)


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[DBNClassifier, CrossEntropyClassification]:
    layers = parse_sizes(ctx.options["layers"], "--layers", "500,500,2000")
    model = DBNClassifier([x_train.shape[1], *layers], n_classes=_n_classes(ctx), seed=ctx.seed())
    return model, CrossEntropyClassification()


def epoch_errors(data: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> EpochCallback:
    """The callback of the fine-tuning stage: after each epoch, the error rates on the first
    ``CURVE_SUBSET`` training images, the validation images and the test images."""
    x_train, y_train = data["train"]
    sets = {
        "training_error": (x_train[:CURVE_SUBSET], y_train[:CURVE_SUBSET]),
        "validation_error": data["validation"],
        "test_error": data["test"],
    }

    def callback(model: Any, epoch: int) -> dict[str, float]:
        return {key: model.error_rate(x, y) for key, (x, y) in sets.items()}

    return callback


def _stages(
    model: DBNClassifier,
    objective: CrossEntropyClassification,
    ctx: Context,
    config: TrainConfig,
) -> Iterator[Stage]:
    """RBM pretraining of every hidden layer (stages ``layer1``, ...; none with --no-pretrain),
    then fine-tuning (stage ``finetune``) with the loop flags, the same in both cases."""
    o = ctx.options
    data = _data(ctx)
    x, y = data["train"]
    return classifier_stages(
        model,
        objective,
        x,
        y,
        config,
        pretrain_epochs=o["pretrain_epochs"] if o["pretrain"] else 0,
        lr=o["pretrain_lr"],
        batch_size=o["pretrain_batch_size"],
        k=o["pretrain_k"],
        seed=ctx.seed(),
        epoch_callback=epoch_errors(data),
    )


# ----- evaluation --------------------------------------------------------------------------------
def read_curves(run_dir: Path) -> list[dict[str, Any]]:
    """The fine-tuning epochs of a run's metrics.jsonl: epoch, the minibatch error and loss, and
    the ``CURVES`` errors (keys without the ``eval_`` prefix), in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("kind") != "epoch" or record.get("stage") != "finetune":
            continue
        row = {"epoch": record["epoch"], "minibatch_error": record.get("minibatch_error")}
        row.update({key: record.get(f"eval_{key}") for key in CURVES})
        rows.append(row)
    return rows


def _evaluate(
    model: DBNClassifier, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    data = _data(ctx)
    metrics: dict[str, Any] = {
        "likelihood": "none: a classifier defines no density over the images (scored by its "
        "test error)",
        "log_likelihood_method": "none",
    }
    for split, (x, y) in data.items():
        errors = model.errors(x, y)
        error, error_se = mean_and_se(errors)
        metrics[f"{split}_error"] = error
        metrics[f"{split}_error_se"] = error_se
        metrics[f"{split}_cross_entropy"] = mean_and_se(model.cross_entropy(x, y))[0]
        metrics[f"n_{split}"] = int(x.shape[0])
    metrics["test_accuracy"] = 1.0 - metrics["test_error"]
    curves = read_curves(ctx.out_dir)
    valid = [r for r in curves if r["validation_error"] is not None]
    if valid:
        best = min(valid, key=lambda r: r["validation_error"])
        metrics["best_validation_epoch"] = best["epoch"]
        metrics["test_error_at_best_validation_epoch"] = best["test_error"]
    seconds = stage_seconds(ctx.out_dir)
    pretrained = bool(ctx.options["pretrain"]) and ctx.options["pretrain_epochs"] > 0
    metrics["pretrained"] = pretrained
    metrics["pretrain_epochs_per_rbm"] = ctx.options["pretrain_epochs"] if pretrained else 0
    metrics["pretrain_seconds"] = round(
        sum(v for k, v in seconds.items() if k.startswith("layer")), 2
    )
    metrics["finetune_seconds"] = round(seconds.get("finetune", 0.0), 2)
    metrics["error_note"] = (
        "fraction of images whose most probable class is not the label (Hinton, Osindero & Teh "
        "2006: 1.25% test error for a fine-tuned 784-500-500-2000 DBN trained on all 60,000 "
        "images)"
    )
    return metrics


# ----- figures -----------------------------------------------------------------------------------
def _curves_figure(ctx: Context) -> Figure | None:
    import matplotlib.pyplot as plt

    rows = read_curves(ctx.out_dir)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, name in CURVES.items():
        points = [(r["epoch"], 100 * r[key]) for r in rows if r[key] is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=name)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    pretrained = ctx.options["pretrain"] and ctx.options["pretrain_epochs"] > 0
    start = "pretrained" if pretrained else "random start"
    viz.fit_title(ax, f"errors during fine-tuning ({start})")
    path = viz.save_figure(fig, ctx.out_dir / "errors.png")
    return Figure(
        path,
        "Errors during fine-tuning",
        f"After every fine-tuning epoch: the error on the first {CURVE_SUBSET:,} training images "
        "(or all of them when fewer), on the held-out validation images and on the test images.",
    )


def _figures(model: DBNClassifier, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    figures = []
    curves = _curves_figure(ctx)
    if curves is not None:
        figures.append(curves)
    shape = ctx.image_shape
    if shape is not None and model.n_layers > 0:
        weights = model.hidden[0].weight.detach().T  # (D, n_1), as an RBM's W
        n_filters = min(weights.shape[1], viz.MAX_FILTERS)
        figures.append(
            Figure(
                viz.filters_grid(
                    weights,
                    shape,
                    ctx.out_dir / "filters.png",
                    f"first-layer weights after fine-tuning (first {n_filters})",
                ),
                "First-layer filters",
                "Weights of the first sigmoid layer's units, each rescaled to [0, 1]: after "
                "pretraining they start as the first RBM's filters, without it as noise.",
            )
        )
    return figures


register(
    Recipe(
        name="dbn-classifier",
        summary="DBN classifier: greedy RBM pretraining, then fine-tuning by backpropagation",
        build=_build,
        stages=_stages,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=OPTIONS,
        train_defaults={
            "epochs": 20,
            "batch_size": 100,
            "lr": 0.1,
            "optimizer": "sgd",
            "momentum": 0.9,
            "schedule": "linear",
            "final_lr_fraction": 0.0,
            "log_every_steps": 100,
        },
        demo={
            "data": "digits",
            "options": {"layers": "100,100", "pretrain_epochs": 10, "pretrain_batch_size": 20},
            "epochs": 15,
            "batch_size": 20,
            "lr": 0.3,
        },
    )
)
