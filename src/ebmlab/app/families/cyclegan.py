"""Recipe ``cyclegan``: CycleGAN (Zhu et al. 2017) between two unpaired image collections.

``ebmlab train cyclegan --data mnist`` builds the known-answer task of ``ebmlab.data.domains``:
domain X = the digits of one half of the training set, domain Y = a fixed transformation T of
the digits of the other half (``--target invert``: colour inversion, the default;
``--target rotate90``: a quarter turn), never paired. ``--target fashion-mnist`` is the visual
pair MNIST <-> Fashion-MNIST instead: domain Y = as many Fashion-MNIST training images (read from
the same data folder), with no right answer to compare with. The model is
``ebmlab.models.cyclegan.CycleGAN`` (residual generators, PatchGAN discriminators), the objective
``ebmlab.objectives.cyclegan.CycleGANObjective`` (least-squares adversarial losses, lambda = 10
cycle consistency), trained by the one loop on rows [x, y].

Evaluation on the test images x of the run's dataset (labels y), for a known transformation T:

  * ``test_translation_mse``: mean squared error per pixel of G(x) against T(x), the answer;
    beside two baselines: the identity map (``identity_mse``, x against T(x)) and the nearest
    training image of domain Y (``nearest_domain_y_mse``: for each x, the image of domain Y
    closest to T(x), an oracle that knows the answer and may only pick an image it has seen);
    ``translation_mse_ratio_identity`` and ``translation_mse_ratio_nearest`` are the ratios;
  * ``test_back_translation_mse``: F(T(x)) against x (the other direction);
  * ``test_cycle_class_agreement``: how often the classifier trained on real labels (the Frechet
    digit distance's) gives F(G(x)) the label of x, and ``test_translation_class_agreement``:
    the same for T^-1(G(x)) (does G keep the digit?); ``test_cycle_mse``: F(G(x)) against x.

For the visual pair: the cycle scores, and the Frechet distance of G(x) to the Fashion-MNIST test
images (in the Fashion-MNIST classifier's features) beside the floor of as many Fashion-MNIST
training images.
"""

from __future__ import annotations

from typing import Any

import torch

from ...data.domains import TRANSFORMS, inverse_transform, transform, unpaired_halves
from ...metrics.conditional import predict_classes
from ...metrics.frechet import feature_classifier, frechet_distance
from ...models.cyclegan import ARCHITECTURES, CycleGAN
from ...objectives.cyclegan import GAN_LOSSES, CycleGANObjective
from ...training import Stage, TrainConfig
from ...validation import Integral, Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register
from .gan import D_STEPS_OPTION, TRAIN_DEFAULTS

#: The visual pair: domain Y from another dataset of the same image size.
VISUAL_PAIRS = ("fashion-mnist",)
TARGETS = (*TRANSFORMS, *VISUAL_PAIRS)

OPTIONS = (
    Option("target", str, "invert", "domain Y: T(x) of the other half, or a dataset", TARGETS),
    Option("architecture", str, "conv", "residual/PatchGAN (conv) or MLP", choices=ARCHITECTURES),
    Option(
        "channels",
        int,
        8,
        "channels of the conv networks' first layer (conv)",
        when={"architecture": ("conv",)},
    ),
    Option(
        "blocks",
        int,
        1,
        "residual blocks of each generator (conv)",
        when={"architecture": ("conv",)},
    ),
    Option("hidden", int, 256, "MLP width (mlp)", when={"architecture": ("mlp",)}),
    Option("depth", int, 2, "hidden layers of each MLP (mlp)", when={"architecture": ("mlp",)}),
    Option(
        "cycle_weight",
        float,
        10.0,
        "lambda, the weight of the cycle-consistency loss",
        check=Real(0),
    ),
    Option("identity_weight", float, 0.0, "weight of the identity loss (0: none)", check=Real(0)),
    Option("gan_loss", str, "lsgan", "adversarial losses", choices=GAN_LOSSES),
    Option("generator_lr_ratio", float, 1.0, "generators' lr / discriminators' lr"),
    D_STEPS_OPTION,
    Option(
        "beta1",
        float,
        0.5,
        "Adam beta1 of the four networks (CycleGAN: 0.5)",
        check=Real(0, 1, closed="left"),
    ),
    Option(
        "split_seed",
        int,
        0,
        "seed of the split of the training set into the two domains",
        check=Integral(0),
    ),
    Option(
        "nearest_test",
        int,
        0,
        "test images for the nearest-image baseline (0: all)",
        check=Integral(0),
    ),
)


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[CycleGAN, CycleGANObjective]:
    o = ctx.options
    shape = ctx.image_shape
    if o["target"] == "rotate90" and shape is not None and shape[0] != shape[1]:
        raise ValueError(f"--target: rotate90 needs square images, got {shape}")
    model = CycleGAN(
        x_train.shape[1],
        architecture=o["architecture"],
        channels=o["channels"],
        n_blocks=o["blocks"],
        hidden=o["hidden"],
        depth=o["depth"],
        image_shape=None if shape is None else list(shape),
        output="sigmoid",
        seed=ctx.seed(),
    )
    objective = CycleGANObjective(
        cycle_weight=o["cycle_weight"],
        identity_weight=o["identity_weight"],
        gan_loss=o["gan_loss"],
        generator_lr_ratio=o["generator_lr_ratio"],
        d_steps=o["d_steps"],
        beta1=o["beta1"],
    )
    return model, objective


def _image_shape(ctx: Context) -> tuple[int, int]:
    if ctx.image_shape is None:
        raise ValueError("--data: a CycleGAN translates images; choose an image dataset")
    return ctx.image_shape


def _visual_pair(ctx: Context, split: str, n: int) -> torch.Tensor:
    """n images of the target dataset's ``split`` (its first n), on the run's device."""
    from ... import data

    target = ctx.options["target"]
    if data.image_shape(target) != ctx.image_shape:
        raise ValueError(
            f"--target: {target!r} has images of shape {data.image_shape(target)}, the data "
            f"{ctx.data_name!r} {ctx.image_shape}"
        )
    images, _ = data.load(target, split, data_dir=ctx.data_dir)
    return images[:n].to(ctx.device)


def domains(ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(domain X, domain Y, the training indices of domain Y's sources) of the run: X = one half
    of the training images, Y = T(the other half), or images of the visual pair's dataset."""
    x = ctx.train_data()
    shape = _image_shape(ctx)
    first, second = unpaired_halves(x.shape[0], ctx.options["split_seed"])
    target = ctx.options["target"]
    domain_x = x[first.to(x.device)]
    if target in TRANSFORMS:
        domain_y = transform(x[second.to(x.device)], target, shape)
    else:
        domain_y = _visual_pair(ctx, "train", x.shape[0])[second.to(x.device)]
    return domain_x, domain_y, second


def _stages(
    model: CycleGAN, objective: CycleGANObjective, ctx: Context, config: TrainConfig
) -> list[Stage]:
    """One stage on rows [x, y], an image of each domain from unrelated examples."""
    domain_x, domain_y, _ = domains(ctx)
    rows = torch.cat([domain_x, domain_y], 1)
    return [Stage("train", model, objective, rows, config, "G, F, D_X and D_Y, unpaired")]


# ----- evaluation --------------------------------------------------------------------------------
def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).square().mean())


@torch.no_grad()
def nearest_mse(references: torch.Tensor, targets: torch.Tensor, chunk: int = 1000) -> float:
    """Mean over targets of the per-pixel squared error of the reference image closest to each
    target (the best any choice among ``references`` can do)."""
    refs = references.float()
    best = []
    for part in targets.float().split(chunk):
        best.append(torch.cdist(part, refs).amin(1).square() / refs.shape[1])
    return float(torch.cat(best).double().mean())


def _agreement(
    images: torch.Tensor, labels: torch.Tensor | None, dataset: str, progress: bool = True
) -> float | None:
    if labels is None:
        return None
    classifier, _ = feature_classifier(dataset, progress=progress)
    return float((predict_classes(classifier, images) == labels.cpu()).double().mean())


def _evaluate(
    model: CycleGAN, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    target = ctx.options["target"]
    shape = _image_shape(ctx)
    y_test = ctx.labels("test", x_test.shape[0])
    forward = model.translate_all(x_test).cpu()
    cycled = model.translate_all(model.translate_all(x_test), back=True).cpu()
    x = x_test.cpu()
    metrics: dict[str, Any] = {
        "likelihood": "none: a CycleGAN defines no density (scored by its translations)",
        "test_cycle_mse": _mse(cycled, x),
        "test_cycle_class_agreement": _agreement(cycled, y_test, ctx.data_name, ctx.progress),
        "translation_n_test": int(x.shape[0]),
    }
    if target not in TRANSFORMS:
        n = x.shape[0]
        reference = _visual_pair(ctx, "test", n).cpu()
        train_y = _visual_pair(ctx, "train", n).cpu()
        metrics["test_translation_frechet_distance"] = frechet_distance(
            forward, target, reference=reference, progress=ctx.progress
        ).distance
        metrics["test_translation_frechet_distance_train_floor"] = frechet_distance(
            train_y, target, reference=reference, progress=ctx.progress
        ).distance
        return metrics
    answer = transform(x, target, shape)
    _, domain_y, _ = domains(ctx)
    m = ctx.options["nearest_test"] or x.shape[0]
    translation = _mse(forward, answer)
    identity = _mse(x, answer)
    nearest = nearest_mse(domain_y.cpu(), answer[:m])
    back = model.translate_all(answer.to(model.device), back=True).cpu()
    metrics.update(
        {
            "test_translation_mse": translation,
            "identity_mse": identity,
            "nearest_domain_y_mse": nearest,
            "nearest_domain_y_n_test": int(min(m, x.shape[0])),
            "translation_mse_ratio_identity": translation / identity,
            "translation_mse_ratio_nearest": _mse(forward[:m], answer[:m]) / nearest,
            "test_back_translation_mse": _mse(back, x),
            "test_translation_class_agreement": _agreement(
                inverse_transform(forward, target, shape), y_test, ctx.data_name, ctx.progress
            ),
            "translation_method": f"G(x) against T(x), T = {target} (known answer)",
        }
    )
    return metrics


# ----- figures -----------------------------------------------------------------------------------
@torch.no_grad()
def _figures(model: CycleGAN, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = _image_shape(ctx)
    target = ctx.options["target"]
    x = x_test[:10]
    forward = model.translate(x)
    rows = [("x", x), ("G(x)", forward)]
    if target in TRANSFORMS:
        rows.append(("T(x)", transform(x, target, shape)))
    rows.append(("F(G(x))", model.translate_back(forward)))
    _, domain_y, _ = domains(ctx)
    y = domain_y[:10].to(model.device)
    backward = model.translate_back(y)
    reverse = [("y", y), ("F(y)", backward), ("G(F(y))", model.translate(backward))]
    return [
        Figure(
            viz.labelled_rows(rows, shape, ctx.out_dir / "translations.png", title="X -> Y"),
            "Translations X -> Y",
            "Test images x, their translations G(x)"
            + (", the right answer T(x)" if target in TRANSFORMS else "")
            + " and the cycle F(G(x)), which should give x back.",
        ),
        Figure(
            viz.labelled_rows(
                reverse, shape, ctx.out_dir / "back_translations.png", title="Y -> X"
            ),
            "Translations Y -> X",
            "Images y of domain Y (training), F(y) and the cycle G(F(y)).",
        ),
    ]


register(
    Recipe(
        name="cyclegan",
        summary="CycleGAN between unpaired image domains; translation error on a known answer",
        build=_build,
        stages=_stages,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=OPTIONS,
        train_defaults={**TRAIN_DEFAULTS, "epochs": 5, "lr": 1e-3},
        demo={
            "data": "digits",
            "epochs": 15,
            "batch_size": 32,
            "lr": 1e-3,
        },
        data_kinds=("image",),
    )
)
