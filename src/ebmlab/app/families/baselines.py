"""Recipes for the factorized baselines: ``independent`` (product of Bernoullis, images) and
``gaussian`` (diagonal Gaussian, toy 2-D densities). Both have exact log-likelihoods, so they
set the floor of the cross-family comparison."""

from __future__ import annotations

from typing import Any

import torch

from ...models.baselines import DiagonalGaussian, IndependentBernoulli
from ...objectives.likelihood import MaximumLikelihood
from ...stats import mean_and_se
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register


# ----- independent Bernoulli --------------------------------------------------------------------
def _build_independent(x_train: torch.Tensor, ctx: Context) -> tuple[IndependentBernoulli, None]:
    return IndependentBernoulli(x_train.shape[1]), None


def _fit_independent(
    model: IndependentBernoulli, x_train: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.fit(x_train, pseudocount=ctx.options["pseudocount"])
    return {"n_train": x_train.shape[0]}


def _evaluate_exact(
    model: IndependentBernoulli | DiagonalGaussian,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    ctx: Context,
) -> dict[str, Any]:
    with torch.no_grad():
        test, test_se = mean_and_se(model.log_prob(x_test))
        train, _ = mean_and_se(model.log_prob(x_train))
    return {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "train_log_likelihood": train,
        "log_likelihood_method": "exact",
    }


def _figures_independent(
    model: IndependentBernoulli, x_test: torch.Tensor, ctx: Context
) -> list[Figure]:
    shape = ctx.image_shape or (1, x_test.shape[1])
    samples = model.sample(64, generator=ctx.generator)
    path = viz.samples_beside_data(
        samples, x_test, shape, ctx.out_dir / "samples.png", title="independent Bernoulli pixels"
    )
    return [
        Figure(
            path,
            "Samples",
            "Left: 64 test images. Right: every pixel drawn independently from its marginal: "
            "the floor every model with structure must beat.",
        )
    ]


register(
    Recipe(
        name="independent",
        summary="product of independent Bernoullis (exact likelihood; the baseline)",
        build=_build_independent,
        evaluate=_evaluate_exact,
        figures=_figures_independent,
        fit=_fit_independent,
        binarize="stochastic",
        options=(Option("pseudocount", float, 1.0, "added to on and off counts of every pixel"),),
        demo={"data": "digits"},
    )
)


# ----- diagonal Gaussian ------------------------------------------------------------------------
def _build_gaussian(
    x_train: torch.Tensor, ctx: Context
) -> tuple[DiagonalGaussian, MaximumLikelihood]:
    return DiagonalGaussian(x_train.shape[1]), MaximumLikelihood()


def _evaluate_gaussian(
    model: DiagonalGaussian, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    metrics = _evaluate_exact(model, x_train, x_test, ctx)
    from ... import data

    if data.is_toy2d(ctx.data_name):
        # KL(p_data || p_model) = E_data[log p_data - log p_model], Monte Carlo on the test set
        with torch.no_grad():
            gap = data.toy2d_log_density(ctx.data_name, x_test.cpu()).to(x_test) - model.log_prob(
                x_test
            )
        metrics["kl"], metrics["kl_se"] = mean_and_se(gap)
    return metrics


def _figures_gaussian(model: DiagonalGaussian, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    from ... import data

    if not data.is_toy2d(ctx.data_name):
        return []
    lo, hi = -4.5, 4.5
    axis = torch.linspace(lo, hi, 200, device=x_test.device)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        logp = model.log_prob(grid).reshape(200, 200)
    path = viz.density_2d(
        logp,
        (lo, hi),
        ctx.out_dir / "density.png",
        samples=model.sample(2000, ctx.generator),
        title=f"diagonal Gaussian on {ctx.data_name}",
        data=x_test,
    )
    return [
        Figure(
            path,
            "Density and samples",
            "Left: the test points. Middle: the maximum-likelihood diagonal Gaussian. Right: its "
            "samples.",
        )
    ]


register(
    Recipe(
        name="gaussian",
        summary="diagonal Gaussian fitted by maximum likelihood (exact; toy 2-D baseline)",
        build=_build_gaussian,
        evaluate=_evaluate_gaussian,
        figures=_figures_gaussian,
        train_defaults={"epochs": 20, "batch_size": 500, "lr": 0.05},
        data_kinds=("toy2d",),
    )
)
