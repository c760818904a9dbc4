"""Recipe ``pixelcnn``: PixelCNN on binary images, trained by maximum likelihood.

``ebmlab train pixelcnn --data mnist --eval`` (stochastically binarized MNIST by default).

The autoregressive factorization makes the likelihood exact: ``evaluate`` reports the test
log-likelihood in nats per image (tag ``"exact"``) over the whole test set, with its standard
error, and the training log-likelihood on up to 2,000 training images. Figures: exact samples
drawn pixel by pixel, and completions of test images whose bottom half is unknown (exact draws
from p(bottom | top), since the top half precedes the bottom in raster order).

Published figure: 81.30 nats (van den Oord et al. 2016, "Pixel Recurrent Neural Networks",
Table 4; stochastically binarized MNIST; a much larger network trained far longer than the
defaults here; see the PixelCNN page of the documentation, docs/families/pixelcnn.md).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...estimators import exact_log_likelihoods
from ...models.autoregressive import ARCHITECTURES, PixelCNN
from ...objectives.likelihood import MaximumLikelihood
from ...stats import mean_and_se
from .. import viz
from ..recipes import Context, Figure, Option, Preset, Recipe, register, top_half_known

#: Training images scored for ``train_log_likelihood`` (cheap relative to the test set).
TRAIN_SUBSET = 2000


def _image_shape(x_train: torch.Tensor, ctx: Context) -> tuple[int, int]:
    if ctx.image_shape is None:
        raise ValueError(
            f"data: pixelcnn models images; {ctx.data_name!r} has no image shape "
            "(use digits, mnist, fashion-mnist or binarized-mnist)"
        )
    return ctx.image_shape


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[PixelCNN, MaximumLikelihood]:
    o = ctx.options
    model = PixelCNN(
        list(_image_shape(x_train, ctx)),
        channels=o["channels"],
        n_layers=o["layers"],
        kernel=o["kernel"],
        first_kernel=o["first_kernel"],
        architecture=o["architecture"],
    )
    model.check_images(x_train[:1000], "x_train")
    return model, MaximumLikelihood()


def _evaluate(
    model: PixelCNN, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.eval()
    test, test_se = mean_and_se(exact_log_likelihoods(model, x_test))
    train, _ = mean_and_se(exact_log_likelihoods(model, x_train[:TRAIN_SUBSET]))
    return {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "train_log_likelihood": train,
        "log_likelihood_method": "exact",
        "n_test": x_test.shape[0],
        "n_train_scored": min(TRAIN_SUBSET, x_train.shape[0]),
    }


def _figures(model: PixelCNN, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = _image_shape(x_test, ctx)
    model.eval()
    big = shape[0] * shape[1] > 256  # pixel-by-pixel sampling of 28 x 28 images is slow on CPU
    n_samples = 16 if (ctx.quick and big) else 64 if not big else 36
    samples = model.sample(n_samples, generator=ctx.generator)
    figures = [
        Figure(
            viz.samples_beside_data(
                samples,
                x_test,
                shape,
                ctx.out_dir / "samples.png",
                title=f"{type(model).__name__} samples",
                nrow=math.ceil(math.sqrt(n_samples)),
            ),
            "Samples",
            f"Left: {n_samples} test images. Right: {n_samples} exact samples, drawn pixel by "
            f"pixel in raster order ({shape[0] * shape[1]} network passes).",
        )
    ]
    n_complete = 8 if ctx.quick and big else 10
    originals = x_test[:n_complete]
    known = top_half_known(shape, x_test.device)
    rows = [("original", originals), ("given", viz.hide_unknown(originals, known))]
    for i in (1, 2, 3):
        rows.append((f"draw {i}", model.complete(originals, known, generator=ctx.generator)))
    figures.append(
        Figure(
            viz.labelled_rows(
                rows,
                shape,
                ctx.out_dir / "completions.png",
                title=f"{type(model).__name__}: completions of the bottom half",
            ),
            "Completions",
            "Test images with the bottom half unknown, and three exact draws from "
            "p(bottom | top) each.",
        )
    )
    return figures


#: ``--preset paper``: the gated PixelCNN of van den Oord et al. (2016b) at the size two CPU
#: cores train through about twenty epochs of MNIST in 90 minutes (32 feature maps, 7 layers,
#: bfloat16 forward passes: 1.7x float32 on CPUs with AVX-512 BF16); the paper's network is wider
#: and deeper and trained far longer. ``--max-minutes`` bounds it by the clock, and the cosine
#: schedule then follows the clock.
PIXELCNN_PRESETS = {
    "paper": Preset(
        "gated PixelCNN, 32 feature maps, 7 layers, Adam 2e-3 with a cosine schedule, batch 64, "
        "bfloat16 forward passes, up to 30 epochs (van den Oord et al. 2016: -81.30 with a much "
        "larger network)",
        options={"channels": 32, "layers": 7, "architecture": "gated"},
        train={
            "epochs": 30,
            "lr": 2e-3,
            "batch_size": 64,
            "schedule": "cosine",
            "precision": "bfloat16",
        },
    )
}

register(
    Recipe(
        name="pixelcnn",
        summary="PixelCNN (gated or plain masked convolutions): exact autoregressive likelihood",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        binarize="stochastic",
        presets=PIXELCNN_PRESETS,
        options=(
            Option("channels", int, 32, "feature maps per layer"),
            Option("layers", int, 5, "masked layers, the first (mask A) included"),
            Option("kernel", int, 3, "kernel size of the later layers (odd)"),
            Option("first_kernel", int, 7, "kernel size of the first, mask-A layer (odd)"),
            Option(
                "architecture",
                str,
                "gated",
                "gated: vertical + horizontal stacks, no blind spot (van den Oord et al. 2016b); "
                "plain: residual mask-B blocks (2016a)",
                ARCHITECTURES,
            ),
        ),
        train_defaults={
            "epochs": 20,
            "batch_size": 64,
            "lr": 1e-3,
            "optimizer": "adam",
            "schedule": "cosine",
            "final_lr_fraction": 0.05,
            "max_grad_norm": 100.0,
            "log_every_steps": 50,
        },
        demo={
            "data": "digits",
            "options": {"channels": 16, "layers": 4, "first_kernel": 5},
            "epochs": 5,
            "batch_size": 32,
            "lr": 3e-3,
        },
    )
)
