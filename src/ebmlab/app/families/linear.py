"""Recipes for the linear-Gaussian family: ``pca``, ``ppca`` (probabilistic PCA) and ``fa``
(factor analysis). All three fit in closed form or by EM on the data's mean and covariance
(``Recipe.fit``, no training loop); ``components`` defaults to 30, the size Hinton &
Salakhutdinov (2006) compare PCA at on MNIST (test reconstruction error 13.87).

Likelihoods. PPCA and FA are densities of continuous vectors. On grey levels (the default, no
binarization) ``test_log_likelihood`` is that density, exactly (method ``exact``): a number in
nats of a continuous density, not comparable with the discrete likelihoods of the binary
families. On binary data (``--binarize stochastic``) the model is fitted to, and scored on, the
uniformly dequantized data x + u, u ~ U[0,1)^D (method ``dequantized``): since each binary
vector owns the unit cube [x, x + 1)^D, log P(x) = log E_u p(x + u) >= E_u log p(x + u) (Jensen;
Theis, van den Oord & Bethge 2016), a lower bound on the discrete log-likelihood in the same nats
as the other families. For a Gaussian both the fit and the bound are exact, with no sampling:
averaged over u, the data x + u have mean m + 1/2 and covariance S + I/12, so the maximum-
likelihood fit to those moments maximizes the mean bound over the training set, and the bound
itself is log N(x + 1/2) - tr(C^{-1}) / 24 (``LinearGaussian.log_prob_dequantized``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...models.linear_gaussian import PCA, FactorAnalysis, ProbabilisticPCA, moments
from ...stats import mean_and_se
from ...validation import Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register

#: Variance of U[0, 1): what uniform dequantization adds to every pixel's variance.
_UNIFORM_VARIANCE = 1.0 / 12.0

_COMMON_OPTIONS = (
    Option("components", int, 30, "number of components / latent factors K"),
    Option(
        "binarize",
        str,
        None,
        "binarize the images first (the density is then fitted to and scored on dequantized "
        "binary data); default: grey levels",
        choices=("threshold", "stochastic"),
    ),
)
_DENSITY_OPTIONS = (
    *_COMMON_OPTIONS,
    Option("min_noise", float, 1e-6, "floor on the noise variances", check=Real(0)),
)


def is_binary(x: torch.Tensor) -> bool:
    """True when every entry of ``x`` is 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def fit_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(mean, covariance, dequantized): the moments the density is fitted to. For binary data
    these are the moments of x + U[0,1)^D, averaged over the noise: m + 1/2 and S + I/12."""
    mean, cov = moments(x)
    dequantize = is_binary(x)
    if dequantize:
        mean = mean + 0.5
        cov = cov + _UNIFORM_VARIANCE * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return mean, cov, dequantize


# ----- PCA ---------------------------------------------------------------------------------------
def _build_pca(x_train: torch.Tensor, ctx: Context) -> tuple[PCA, None]:
    return PCA(x_train.shape[1], ctx.options["components"]), None


def _fit_pca(model: PCA, x_train: torch.Tensor, ctx: Context) -> dict[str, Any]:
    model.fit(x_train)
    return {
        "n_train": x_train.shape[0],
        "explained_variance_ratio": float(model.explained_variance_ratio.sum()),
    }


def _evaluate_pca(
    model: PCA, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    with torch.no_grad():
        test, test_se = mean_and_se(model.reconstruction_error(x_test))
        train, _ = mean_and_se(model.reconstruction_error(x_train))
    return {
        "test_reconstruction_error": test,
        "test_reconstruction_error_se": test_se,
        "train_reconstruction_error": train,
        "reconstruction_error_definition": "squared error summed over pixels, mean over images",
        "explained_variance_ratio": float(model.explained_variance_ratio.sum()),
        "log_likelihood_method": "none",
        "log_likelihood_note": "PCA is a projection, not a density: see ppca",
    }


def _components_figure(weights: torch.Tensor, ctx: Context, title: str, caption: str) -> Figure:
    """The first columns of an (H*W, K) loading matrix as images."""
    assert ctx.image_shape is not None
    path = viz.filters_grid(weights, ctx.image_shape, ctx.out_dir / "components.png", title)
    return Figure(path, "Components", caption)


def _reconstructions_figure(
    x: torch.Tensor, reconstructed: torch.Tensor, ctx: Context, caption: str, name: str
) -> Figure:
    assert ctx.image_shape is not None
    path = viz.labelled_rows(
        [("data", x), ("recon.", reconstructed)],
        ctx.image_shape,
        ctx.out_dir / "reconstructions.png",
        title=f"{name}: test images and their reconstructions",
    )
    return Figure(path, "Reconstructions", caption)


def _figures_pca(model: PCA, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    if ctx.image_shape is None:
        return []
    with torch.no_grad():
        recon = model.reconstruct(x_test[:10])
    cumulative = model.explained_variance_ratio.cumsum(0).tolist()
    curve = viz.plot_curves(
        [
            {"component": k + 1, "cumulative explained variance": v}
            for k, v in enumerate(cumulative)
        ],
        ["cumulative explained variance"],
        ctx.out_dir / "explained_variance.png",
        x_key="component",
        labels={"cumulative explained variance": "PCA: variance kept by the first k components"},
        units={"cumulative explained variance": "fraction of the training variance"},
        xlabel="number of components k",
    )
    k = model.n_components
    return [
        _components_figure(
            model.components.T,
            ctx,
            f"PCA: principal components (first {min(k, viz.MAX_FILTERS)})",
            "Rows of the projection, largest variance first, each rescaled to [0, 1].",
        ),
        _reconstructions_figure(
            x_test[:10],
            recon,
            ctx,
            f"Orthogonal projections onto the {k} principal components.",
            "PCA",
        ),
        Figure(
            curve,
            "Explained variance",
            f"Fraction of the training variance kept by the first k components "
            f"({cumulative[-1]:.3f} at k = {k}).",
        ),
    ]


# ----- PPCA and FA -------------------------------------------------------------------------------
def _build_ppca(x_train: torch.Tensor, ctx: Context) -> tuple[ProbabilisticPCA, None]:
    o = ctx.options
    return ProbabilisticPCA(x_train.shape[1], o["components"], min_noise=o["min_noise"]), None


def _build_fa(x_train: torch.Tensor, ctx: Context) -> tuple[FactorAnalysis, None]:
    o = ctx.options
    return FactorAnalysis(x_train.shape[1], o["components"], min_noise=o["min_noise"]), None


#: The two fitted linear-Gaussian densities (``ppca`` and ``fa`` share their functions).
Density = ProbabilisticPCA | FactorAnalysis


def _fit_density(model: Density, x_train: torch.Tensor, ctx: Context) -> dict[str, Any]:
    mean, cov, dequantized = fit_statistics(x_train)
    o = ctx.options
    if isinstance(model, ProbabilisticPCA):
        model.fit_moments(mean, cov, method=o["method"], seed=ctx.seed())
    else:
        model.fit_moments(mean, cov, max_iter=o["max_iter"], tol=o["tol"])
    result = model.fit_result
    assert result is not None
    return {
        "n_train": x_train.shape[0],
        "dequantized": dequantized,
        "method": result.method,
        "n_iter": result.n_iter,
        "converged": result.converged,
        "fit_seconds": round(result.seconds, 3),
        "train_log_likelihood": result.log_likelihood[-1],
    }


def _evaluate_density(
    model: Density, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    dequantized = is_binary(x_train) and is_binary(x_test)
    with torch.no_grad():
        if dequantized:
            test_ll = model.log_prob_dequantized(x_test)
            train_ll = model.log_prob_dequantized(x_train)
            # reconstruct the centres of the bins, and move back to the data's scale
            errors = ((model.reconstruct(x_test + 0.5) - 0.5 - x_test) ** 2).sum(-1)
        else:
            test_ll, train_ll = model.log_prob(x_test), model.log_prob(x_train)
            errors = model.reconstruction_error(x_test)
    test, test_se = mean_and_se(test_ll)
    metrics: dict[str, Any] = {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "train_log_likelihood": mean_and_se(train_ll)[0],
        "log_likelihood_method": "dequantized" if dequantized else "exact",
    }
    if dequantized:
        metrics["log_likelihood_note"] = (
            "E_u log p(x + u), u ~ U[0,1)^D, in closed form: a lower bound on the discrete "
            "log-likelihood of the binary images"
        )
    else:
        metrics["log_likelihood_note"] = (
            "density of continuous grey levels: not comparable with the discrete likelihoods "
            "of binarized data"
        )
    metrics["test_reconstruction_error"], metrics["test_reconstruction_error_se"] = mean_and_se(
        errors
    )
    noise = model.noise_variance.detach()
    metrics["mean_noise_variance"] = float(noise.mean())
    metrics["noise_variances_at_floor"] = int((noise <= model.min_noise * (1 + 1e-6)).sum())
    return metrics


def _figures_density(model: Density, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    if ctx.image_shape is None:
        return []
    name = "PPCA" if isinstance(model, ProbabilisticPCA) else "FA"
    shift = 0.5 if is_binary(x_test) else 0.0  # binary data are modelled as x + U[0,1)
    with torch.no_grad():
        recon = model.reconstruct(x_test[:10] + shift) - shift
        samples = model.sample(64, generator=ctx.generator)
        means = model.sample(64, generator=ctx.generator, noise=False) - shift
    if shift:
        samples = samples.floor().clamp(0, 1)  # the binary image whose unit cube holds x + u
    out = ctx.out_dir
    figures = [
        _components_figure(
            model.W,
            ctx,
            f"{name}: columns of W (first {min(model.n_components, viz.MAX_FILTERS)})",
            "Factor loadings, each rescaled to [0, 1] (their order and rotation are arbitrary "
            "for FA).",
        ),
        _reconstructions_figure(
            x_test[:10],
            recon,
            ctx,
            "Posterior means E[W z + mu | x] of the noise-free image.",
            name,
        ),
        Figure(
            viz.samples_beside_data(
                samples, x_test, ctx.image_shape, out / "samples.png", title=f"{name} samples"
            ),
            "Samples",
            "Left: 64 test images. Right: draws x = W z + mu + eps"
            + (
                ", mapped to the binary image whose unit cube holds them."
                if shift
                else ", shown clipped to [0, 1]."
            ),
        ),
        Figure(
            viz.image_grid(
                means,
                ctx.image_shape,
                out / "sample_means.png",
                title=f"{name}: W z + mu (noise left out)",
            ),
            "Noise-free samples",
            "The same kind of draw without the pixel noise eps: the K-dimensional part.",
        ),
    ]
    if not model.isotropic:
        figures.append(
            Figure(
                viz.image_grid(
                    model.noise_variance.detach().sqrt()[None],
                    ctx.image_shape,
                    out / "noise.png",
                    normalize=True,
                    title="FA: noise standard deviations sqrt(psi)",
                ),
                "Noise",
                "Per-pixel noise standard deviation of FA, rescaled to [0, 1].",
            )
        )
    result = model.fit_result
    if result is not None and len(result.log_likelihood) > 1:
        history = [
            {"iteration": i, "train log-likelihood": v} for i, v in enumerate(result.log_likelihood)
        ]
        figures.append(
            Figure(
                viz.plot_curves(
                    history,
                    ["train log-likelihood"],
                    out / "em.png",
                    x_key="iteration",
                    labels={"train log-likelihood": f"{name}: EM, training log-likelihood"},
                    units={"train log-likelihood": "nats per image (mean)"},
                    xlabel="EM iteration",
                ),
                "EM",
                f"Mean training log-likelihood per example over {result.n_iter} EM iterations "
                "(it never decreases).",
            )
        )
    return figures


register(
    Recipe(
        name="pca",
        summary="principal component analysis (projection; reconstruction error)",
        build=_build_pca,
        evaluate=_evaluate_pca,
        figures=_figures_pca,
        fit=_fit_pca,
        options=_COMMON_OPTIONS,
        demo={"data": "digits", "options": {"components": 10}},
    )
)

register(
    Recipe(
        name="ppca",
        summary="probabilistic PCA (closed form or EM; exact Gaussian likelihood)",
        build=_build_ppca,
        evaluate=_evaluate_density,
        figures=_figures_density,
        fit=_fit_density,
        options=(
            *_DENSITY_OPTIONS,
            Option("method", str, "closed-form", "fitting method", choices=("closed-form", "em")),
        ),
        demo={"data": "digits", "options": {"components": 10, "binarize": "stochastic"}},
    )
)

register(
    Recipe(
        name="fa",
        summary="factor analysis by EM (diagonal noise; exact Gaussian likelihood)",
        build=_build_fa,
        evaluate=_evaluate_density,
        figures=_figures_density,
        fit=_fit_density,
        options=(
            *_DENSITY_OPTIONS,
            Option("max_iter", int, 1000, "most EM iterations"),
            Option(
                "tol",
                float,
                1e-6,
                "stop when the gain per iteration (nats/example) is below",
                check=Real(0),
            ),
        ),
        demo={"data": "digits", "options": {"components": 10, "binarize": "stochastic"}},
    )
)
