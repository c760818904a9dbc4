"""Recipe ``realnvp``: Real NVP normalizing flows (Dinh, Sohl-Dickstein & Bengio 2017) trained by
maximum likelihood, on 2-D toy densities and on images.

``ebmlab train realnvp --data 8gaussians --eval``   (``ebmlab.models.RealNVP``, MLP couplings)
``ebmlab train realnvp --data mnist --eval``        (``ebmlab.models.image_flows.ImageRealNVP``)

2-D densities: the flow's density is exact, so ``test_log_likelihood`` is mean log q(x_test)
(tag ``"exact"``); KL(p_data || q) is summed on the grid the ``ebm`` family uses
(``ebmlab.estimators.grid.grid_log_likelihood``: 360 x 360 cells on [-4.5, 4.5]^2, q
renormalized on the grid), with ``log_z_grid`` (the flow's mass on the grid, about 0) as a
check, and a Monte Carlo KL on the test points (``kl_mc``: mean log p_data - log q) beside it.

Images: uniform dequantization (x_int + u) / K with K intensity levels (2 for the binarized data
the recipe loads by default; the model infers K from the data, so grey-level data work through
the API), a logit transform and checkerboard couplings with convolutional conditioners. Each
minibatch draws fresh noise u (``DequantizedMaximumLikelihood``). ``test_log_likelihood`` is the
Jensen bound E_u[log p((x_int + u) / K)] - D log K on log P(x_int), in nats (tag
``"dequantized"``), with ``eval_dequantizations`` draws of u per test image; bits per dimension
are reported too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ...estimators import dequantized_log_likelihoods
from ...estimators.grid import grid_log_likelihood
from ...models.flows import RealNVP
from ...models.image_flows import ImageRealNVP, infer_levels
from ...objectives.base import Objective
from ...objectives.likelihood import DequantizedMaximumLikelihood, MaximumLikelihood
from ...stats import mean_and_se
from ...validation import Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register

#: Training images scored for ``train_log_likelihood``.
TRAIN_SUBSET = 2000

#: Images used to initialize the standardization layer of the image flow.
STANDARDIZE_SUBSET = 5000


# ----- build --------------------------------------------------------------------------------------
def _build(x_train: torch.Tensor, ctx: Context) -> tuple[ImageRealNVP | RealNVP, Objective]:
    o = ctx.options
    if ctx.image_shape is not None:
        model = ImageRealNVP(
            list(ctx.image_shape),
            levels=infer_levels(x_train[:STANDARDIZE_SUBSET]),
            n_couplings=o["layers"],
            channels=o["channels"],
            n_blocks=o["blocks"],
            alpha=o["alpha"],
            scale_bound=o["scale_bound"],
        )
        model.standardize(
            x_train[:STANDARDIZE_SUBSET], torch.Generator(device="cpu").manual_seed(ctx.seed())
        )
        return model, DequantizedMaximumLikelihood()
    flow = RealNVP(
        x_train.shape[1],
        n_layers=o["layers"],
        hidden=o["hidden"],
        depth=o["depth"],
        scale_bound=o["scale_bound"],
    )
    flow.standardize(x_train)
    return flow, MaximumLikelihood()


# ----- evaluate -----------------------------------------------------------------------------------
def _evaluate_images(
    model: ImageRealNVP, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    n_u = ctx.options["eval_dequantizations"]
    # the uniform noise is drawn on the model's device from a seeded generator of its own
    generator = torch.Generator(device=model.device).manual_seed(ctx.seed())
    test, test_se = mean_and_se(dequantized_log_likelihoods(model, x_test, generator, n_u))
    train, _ = mean_and_se(
        dequantized_log_likelihoods(model, x_train[:TRAIN_SUBSET], generator, n_u)
    )
    return {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "train_log_likelihood": train,
        "log_likelihood_method": "dequantized",
        "test_bits_per_dim": -test / (model.dim * math.log(2)),
        "levels": model.levels,
        "dequantization_samples": n_u,
        "note": "Jensen lower bound on the discrete log-likelihood (uniform dequantization)",
    }


def _evaluate_toy(model: RealNVP, x_test: torch.Tensor, ctx: Context) -> dict[str, Any]:
    from ... import data

    with torch.no_grad():
        log_q = torch.cat([model.log_prob(p) for p in x_test.split(65_536)])
        log_p = data.toy2d_log_density(ctx.data_name, x_test.cpu()).to(log_q)
    test, test_se = mean_and_se(log_q)
    grid = grid_log_likelihood(model, ctx.data_name, x_test)
    kl_mc, kl_mc_se = mean_and_se(log_p - log_q)
    return {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "log_likelihood_method": "exact",
        "kl": grid["kl"],
        "kl_grid": grid["grid"],
        "log_z_grid": grid["log_z_grid"],
        "test_log_likelihood_grid": grid["test_log_likelihood"],
        "kl_mc": kl_mc,
        "kl_mc_se": kl_mc_se,
        "test_log_likelihood_data": float(log_p.mean()),
    }


def _evaluate(
    model: ImageRealNVP | RealNVP, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.eval()
    if isinstance(model, ImageRealNVP):
        return _evaluate_images(model, x_train, x_test, ctx)
    return _evaluate_toy(model, x_test, ctx)


# ----- figures ------------------------------------------------------------------------------------
def density_figure(
    model: RealNVP,
    path: Path,
    title: str,
    generator: torch.Generator,
    n_samples: int = 2000,
    data: torch.Tensor | None = None,
) -> Path:
    """The data (when given), the flow's density on a 180 x 180 grid of [-4.5, 4.5]^2 and its
    samples, side by side."""
    from ... import data as datasets

    grid = datasets.toy2d_grid(None, n=180)
    with torch.no_grad():
        log_q = model.log_prob(grid.points.to(model.device))
    # Grid2D rows go up in y; density_2d wants [x, y]
    image = log_q.reshape(grid.n, grid.n).T
    samples = model.sample(n_samples, generator=generator)
    return viz.density_2d(image, grid.bounds, path, samples=samples, title=title, data=data)


def _image_figures(model: ImageRealNVP, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = model.image_shape
    samples = model.sample(64, generator=ctx.generator)
    continuous = model.sample_continuous(64, generator=ctx.generator, temperature=0.7)
    return [
        Figure(
            viz.samples_beside_data(
                samples, x_test, shape, ctx.out_dir / "samples.png", title="Real NVP samples"
            ),
            "Samples",
            f"Left: 64 test images. Right: 64 draws of the dequantized density, each mapped to "
            f"its cell on the {model.levels}-level grid (floor(K y)).",
        ),
        Figure(
            viz.image_grid(
                continuous,
                shape,
                ctx.out_dir / "samples_t07.png",
                title="Real NVP, temperature 0.7",
            ),
            "Samples at temperature 0.7",
            "Continuous draws y with the base noise scaled by 0.7 (not exact samples: "
            "reduced temperature trades diversity for cleaner images).",
        ),
    ]


def _figures(model: ImageRealNVP | RealNVP, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    model.eval()
    if isinstance(model, ImageRealNVP):
        return _image_figures(model, x_test, ctx)
    path = density_figure(
        model,
        ctx.out_dir / "density.png",
        f"Real NVP on {ctx.data_name}",
        ctx.generator,
        n_samples=500 if ctx.quick else 2000,
        data=x_test,
    )
    return [
        Figure(
            path,
            "Density and samples",
            "Left: the test points. Middle: the flow's exact density. Right: samples (base noise "
            "through the inverse).",
        )
    ]


register(
    Recipe(
        name="realnvp",
        summary="Real NVP normalizing flow: exact density (2-D), dequantized bound (images)",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        binarize="stochastic",
        options=(
            Option("layers", int, 8, "affine couplings"),
            Option("hidden", int, 64, "2-D: conditioner MLP width"),
            Option("depth", int, 2, "2-D: conditioner MLP hidden layers"),
            Option("channels", int, 32, "images: conditioner ResNet channels"),
            Option("blocks", int, 2, "images: residual blocks per conditioner"),
            Option(
                "alpha",
                float,
                0.05,
                "images: logit-transform margin",
                check=Real(0, 0.5, closed="left"),
            ),
            Option(
                "scale_bound",
                float,
                2.0,
                "soft bound on each coupling's log-scale, s = bound * tanh(raw / bound) (5 lets "
                "the tails far from the data collapse: 2-D grid KL 23.8 instead of 0.27)",
            ),
            Option(
                "eval_dequantizations",
                int,
                4,
                "images: draws of the uniform noise per test image in evaluation",
            ),
        ),
        train_defaults={
            "epochs": 40,
            "batch_size": 256,
            "lr": 1e-3,
            "optimizer": "adam",
            "schedule": "cosine",
            "final_lr_fraction": 0.05,
            "max_grad_norm": 100.0,
            "log_every_steps": 50,
        },
        demo={
            "data": "digits",
            "options": {"layers": 4, "channels": 16, "blocks": 1, "eval_dequantizations": 2},
            "epochs": 4,
            "batch_size": 64,
            "lr": 3e-3,
        },
        data_kinds=("toy2d", "image"),
    )
)
