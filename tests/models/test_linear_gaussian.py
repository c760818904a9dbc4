"""PCA, probabilistic PCA and factor analysis: closed forms against dense linear algebra and
scikit-learn, EM invariants, sampling moments, dequantization, bad input, the recipes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.decomposition import FactorAnalysis as SklearnFA

import ebmlab
from ebmlab.app.families.linear import fit_statistics, is_binary
from ebmlab.models.linear_gaussian import (
    PCA,
    ConvergenceWarning,
    FactorAnalysis,
    LinearGaussian,
    ProbabilisticPCA,
    moments,
)

F64 = torch.float64


def low_rank_data(
    n: int = 2000, d: int = 8, k: int = 3, seed: int = 0, offset: float = 3.0, isotropic=False
) -> torch.Tensor:
    """x = A z + noise + offset: K strong factors; noise standard deviations rising from 0.3 to
    1.2 across the dimensions (or 0.5 everywhere when ``isotropic``)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, k, generator=g, dtype=F64) * torch.linspace(3.0, 1.0, k, dtype=F64)
    noise_sd = torch.full((d,), 0.5, dtype=F64) if isotropic else torch.linspace(0.3, 1.2, d)
    z = torch.randn(n, k, generator=g, dtype=F64)
    return z @ a.T + torch.randn(n, d, generator=g, dtype=F64) * noise_sd + offset


def random_density(
    d: int = 6, k: int = 2, seed: int = 0, isotropic: bool = False
) -> LinearGaussian:
    g = torch.Generator().manual_seed(seed)
    model = (ProbabilisticPCA if isotropic else FactorAnalysis)(d, k).double()
    with torch.no_grad():
        model.mean.copy_(torch.randn(d, generator=g, dtype=F64))
        model.W.copy_(torch.randn(d, k, generator=g, dtype=F64))
        model.log_noise.copy_(torch.randn(model.log_noise.shape, generator=g, dtype=F64) * 0.5)
    return model


def mean_log_prob(model: LinearGaussian, x: torch.Tensor) -> float:
    return float(model.log_prob(x).detach().mean())


def dense_gaussian(model: LinearGaussian) -> torch.distributions.MultivariateNormal:
    return torch.distributions.MultivariateNormal(
        model.mean.detach(), covariance_matrix=model.covariance().detach()
    )


# ----- the density: Woodbury against dense linear algebra ---------------------------------------
@pytest.mark.parametrize("isotropic", [True, False])
def test_woodbury_log_prob_matches_dense(isotropic: bool) -> None:
    model = random_density(isotropic=isotropic)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(5), dtype=F64) * 3
    torch.testing.assert_close(
        model.log_prob(x).detach(), dense_gaussian(model).log_prob(x), rtol=0, atol=1e-10
    )
    torch.testing.assert_close(model.energy(x), -model.log_prob(x), rtol=0, atol=0)


def test_log_prob_is_normalized() -> None:
    """exp(log p) integrates to 1 (2-D grid, 1 factor): energy is a normalized -log density."""
    model = random_density(d=2, k=1, seed=3)
    c = model.covariance().detach()
    half_width = 8 * c.diagonal().sqrt()
    axes = [
        torch.linspace(float(m - h), float(m + h), 801, dtype=F64)
        for m, h in zip(model.mean.detach(), half_width)
    ]
    grid = torch.cartesian_prod(*axes)
    cell = float((axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0]))
    total = float(torch.exp(-model.energy(grid)).detach().sum()) * cell
    assert abs(total - 1) < 1e-6


def test_posterior_matches_dense_formulas() -> None:
    """E[z|x] = W^T C^{-1} (x - mu) and Cov[z|x] = I - W^T C^{-1} W (Gaussian conditioning)."""
    model = random_density(d=7, k=3, seed=1)
    x = torch.randn(20, 7, generator=torch.Generator().manual_seed(2), dtype=F64)
    w, c_inv = model.W.detach(), torch.linalg.inv(model.covariance().detach())
    expected = (x - model.mean.detach()) @ c_inv @ w
    torch.testing.assert_close(model.transform(x).detach(), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        model.posterior_covariance().detach(), torch.eye(3, dtype=F64) - w.T @ c_inv @ w
    )
    recon = model.reconstruct(x).detach()
    torch.testing.assert_close(recon, expected @ w.T + model.mean.detach())
    torch.testing.assert_close(
        model.reconstruction_error(x).detach(), ((x - recon) ** 2).sum(-1), rtol=1e-12, atol=0
    )


def test_ppca_transform_is_tipping_bishop_posterior_mean() -> None:
    """PPCA: E[z|x] = (W^T W + sigma^2 I)^{-1} W^T (x - mu) (Tipping & Bishop 1999, eq. 6)."""
    model = random_density(d=6, k=2, seed=4, isotropic=True)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    w, sigma2 = model.W.detach(), model.noise_variance_scalar
    m = w.T @ w + sigma2 * torch.eye(2, dtype=F64)
    expected = torch.linalg.solve(m, w.T @ (x - model.mean.detach()).T).T
    torch.testing.assert_close(model.transform(x).detach(), expected)


def test_dequantized_log_prob_closed_form_and_monte_carlo() -> None:
    model = random_density(d=5, k=2, seed=2)
    x = (torch.rand(4, 5, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    dense = dense_gaussian(model)
    for width in (1.0, 0.25):
        # closed form with a dense inverse: log p(x + w/2) - w^2 tr(C^{-1}) / 24
        trace = torch.linalg.inv(model.covariance().detach()).trace()
        expected = dense.log_prob(x + width / 2) - width**2 * trace / 24
        bound = model.log_prob_dequantized(x, bin_width=width).detach()
        torch.testing.assert_close(bound, expected, rtol=0, atol=1e-10)
        # Monte Carlo over u ~ U[0, w)^D: agreement within 5 standard errors
        u = torch.rand(20000, *x.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
        draws = dense.log_prob(x + width * u)
        se = draws.std(0) / math.sqrt(draws.shape[0])
        assert ((draws.mean(0) - bound).abs() < 5 * se).all()


def test_float32_agrees_with_float64() -> None:
    model = random_density(d=30, k=4, seed=6)
    x = torch.randn(100, 30, generator=torch.Generator().manual_seed(0), dtype=F64)
    lp64 = model.log_prob(x).detach()
    lp32 = model.float().log_prob(x.float()).detach()
    assert lp32.dtype == torch.float32
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-5, atol=1e-4)


# ----- PPCA closed form against scikit-learn and dense Gaussians --------------------------------
def test_ppca_closed_form_matches_sklearn() -> None:
    x = low_rank_data()
    n = x.shape[0]
    model = ProbabilisticPCA(8, 3).double().fit(x)
    ours = model.log_prob(x).detach()
    torch.testing.assert_close(ours, dense_gaussian(model).log_prob(x), rtol=0, atol=1e-10)
    sk = SklearnPCA(3).fit(x.numpy())
    # scikit-learn estimates variances with 1/(N-1); the maximum-likelihood fit uses 1/N
    np.testing.assert_allclose(
        model.covariance().detach().numpy(), sk.get_covariance() * (n - 1) / n, atol=1e-12
    )
    np.testing.assert_allclose(model.noise_variance_scalar, sk.noise_variance_ * (n - 1) / n)
    # with scikit-learn's parameters, our density is its score_samples
    copy = ProbabilisticPCA(8, 3).double()
    with torch.no_grad():
        copy.mean.copy_(torch.from_numpy(sk.mean_))
        scale = np.sqrt(sk.explained_variance_ - sk.noise_variance_)
        copy.W.copy_(torch.from_numpy(sk.components_.T * scale))
        copy.log_noise.fill_(math.log(sk.noise_variance_))
    np.testing.assert_allclose(
        copy.log_prob(x).detach().numpy(), sk.score_samples(x.numpy()), rtol=0, atol=1e-9
    )
    # the fit's reported training log-likelihood is the mean log density of the data
    assert model.fit_result is not None
    assert abs(model.fit_result.log_likelihood[-1] - float(ours.mean())) < 1e-10


def test_ppca_closed_form_is_a_maximum() -> None:
    """Perturbing W or sigma^2 away from the closed form lowers the training likelihood."""
    x = low_rank_data(n=500, seed=3)
    model = ProbabilisticPCA(8, 3).double().fit(x)
    best = mean_log_prob(model, x)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        other = ProbabilisticPCA(8, 3).double()
        other.load_state_dict(model.state_dict())
        with torch.no_grad():
            other.W.add_(1e-3 * torch.randn(8, 3, generator=g, dtype=F64))
            other.log_noise.add_(1e-3 * torch.randn(1, generator=g, dtype=F64))
        assert mean_log_prob(other, x) < best


def test_ppca_em_converges_to_closed_form_and_never_decreases() -> None:
    x = low_rank_data(n=3000, seed=1, isotropic=True)
    closed = ProbabilisticPCA(8, 3).double().fit(x)
    em = ProbabilisticPCA(8, 3).double().fit(x, method="em", tol=1e-13, max_iter=20000, seed=4)
    assert em.fit_result is not None and em.fit_result.converged
    history = np.array(em.fit_result.log_likelihood)
    assert (np.diff(history) >= -1e-12).all()
    # near the maximum the mean log-likelihood moves by ~ (d lambda / lambda)^2 / 4 per variance
    # lambda, so at float64's resolution of it (~1e-15 relative) EM stops within ~1e-6 relative
    # error of the largest variances
    scale = float(closed.covariance().detach().diagonal().max())
    torch.testing.assert_close(em.covariance(), closed.covariance(), rtol=0, atol=3e-6 * scale)
    assert abs(history[-1] - closed.fit_result.log_likelihood[-1]) < 1e-10  # type: ignore[union-attr]


# ----- factor analysis ---------------------------------------------------------------------------
def test_fa_density_matches_sklearn_score_samples() -> None:
    x = low_rank_data(seed=2)
    sk = SklearnFA(3, svd_method="lapack", tol=1e-10, max_iter=5000).fit(x.numpy())
    copy = FactorAnalysis(8, 3).double()
    with torch.no_grad():
        copy.mean.copy_(torch.from_numpy(sk.mean_))
        copy.W.copy_(torch.from_numpy(sk.components_.T))
        copy.log_noise.copy_(torch.from_numpy(np.log(sk.noise_variance_)))
    np.testing.assert_allclose(
        copy.log_prob(x).detach().numpy(), sk.score_samples(x.numpy()), rtol=0, atol=1e-9
    )
    # our EM reaches the same maximum of the likelihood as scikit-learn's SVD iteration
    ours = FactorAnalysis(8, 3).double().fit(x, tol=1e-13, max_iter=20000)
    assert abs(mean_log_prob(ours, x) - sk.score(x.numpy())) < 1e-8
    np.testing.assert_allclose(ours.covariance().detach().numpy(), sk.get_covariance(), atol=2e-4)


def test_fa_em_never_decreases_even_at_the_noise_floor() -> None:
    x = low_rank_data(n=400, seed=5)
    x[:, 0] = 0.25  # a constant pixel: its noise variance goes to the floor
    with pytest.warns(ConvergenceWarning):  # tol=0: runs all max_iter iterations
        model = FactorAnalysis(8, 3, min_noise=1e-4).double().fit(x, tol=0.0, max_iter=300)
    assert model.fit_result is not None
    history = np.array(model.fit_result.log_likelihood)
    assert len(history) == 301
    assert (np.diff(history) >= -1e-9 * np.abs(history).max()).all()
    assert float(model.noise_variance[0].detach()) == pytest.approx(1e-4)
    assert torch.isfinite(model.log_prob(x)).all()


def test_fa_improves_on_its_ppca_start_and_fits_heteroscedastic_noise() -> None:
    x = low_rank_data(n=4000, seed=6)
    ppca = ProbabilisticPCA(8, 3).double().fit(x)
    fa = FactorAnalysis(8, 3).double().fit(x)
    assert mean_log_prob(fa, x) > mean_log_prob(ppca, x)
    # the generating noise standard deviations rise from 0.3 to 1.2; FA's psi follows them
    psi = fa.noise_variance.detach()
    assert psi[0] < psi[-1]


def test_em_warns_when_it_stops_early() -> None:
    x = low_rank_data(n=300)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model = FactorAnalysis(8, 3).double().fit(x, max_iter=2, tol=0.0)
    assert model.fit_result is not None and not model.fit_result.converged


# ----- sampling ----------------------------------------------------------------------------------
def test_sample_moments_match_the_model() -> None:
    model = random_density(d=4, k=2, seed=8)
    n = 40000
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    mean, c = model.mean.detach(), model.covariance().detach()
    se_mean = (c.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * se_mean).all()
    # Var of a Gaussian sample covariance entry: (C_ii C_jj + C_ij^2) / n
    se_cov = ((c.diagonal()[:, None] * c.diagonal()[None, :] + c**2) / n).sqrt()
    assert ((torch.cov(x.T) - c).abs() < 5 * se_cov).all()


def test_noise_free_samples_lie_in_the_factor_subspace() -> None:
    model = random_density(d=6, k=2, seed=9)
    x = model.sample(50, generator=torch.Generator().manual_seed(1), noise=False)
    centered = x - model.mean.detach()
    assert torch.linalg.matrix_rank(centered).item() == 2
    again = model.sample(50, generator=torch.Generator().manual_seed(1), noise=False)
    assert torch.equal(x, again)


# ----- PCA ---------------------------------------------------------------------------------------
def test_pca_matches_sklearn() -> None:
    x = low_rank_data(seed=7)
    ours = PCA(8, 3).double().fit(x)
    sk = SklearnPCA(3, svd_solver="full").fit(x.numpy())
    np.testing.assert_allclose(ours.explained_variance.numpy(), sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(
        ours.explained_variance_ratio.numpy(), sk.explained_variance_ratio_, rtol=1e-10
    )
    signs = np.sign((ours.components.numpy() * sk.components_).sum(1))  # sign is arbitrary
    np.testing.assert_allclose(ours.components.numpy() * signs[:, None], sk.components_, atol=1e-9)
    np.testing.assert_allclose(
        ours.transform(x).numpy() * signs, sk.transform(x.numpy()), atol=1e-8
    )
    recon = sk.inverse_transform(sk.transform(x.numpy()))
    np.testing.assert_allclose(ours.reconstruct(x).numpy(), recon, atol=1e-9)
    # the mean squared residual is the variance of the discarded directions (1/N)
    eigenvalues = torch.linalg.eigvalsh(moments(x)[1]).flip(0)
    assert float(ours.reconstruction_error(x).mean()) == pytest.approx(
        float(eigenvalues[3:].sum()), rel=1e-10
    )


def test_pca_with_all_components_reconstructs_exactly() -> None:
    x = low_rank_data(n=50, d=5)
    model = PCA(5, 5).double().fit(x)
    torch.testing.assert_close(model.reconstruct(x), x)
    torch.testing.assert_close(
        model.components @ model.components.T, torch.eye(5, dtype=F64), rtol=0, atol=1e-12
    )


def test_ppca_handles_rank_deficient_data() -> None:
    """N < D: the discarded eigenvalues are 0, so sigma^2 sits on its floor, finitely."""
    x = low_rank_data(n=5, d=8)
    model = ProbabilisticPCA(8, 4, min_noise=1e-5).double().fit(x)
    assert model.noise_variance_scalar == pytest.approx(1e-5)
    assert torch.isfinite(model.log_prob(x)).all()


# ----- save / load, bad input --------------------------------------------------------------------
@pytest.mark.parametrize("cls", [PCA, ProbabilisticPCA, FactorAnalysis])
def test_save_load_round_trip(cls: type, tmp_path: Path) -> None:
    x = low_rank_data(n=200).float()
    model = cls(8, 3).fit(x)
    path = ebmlab.save(model, tmp_path / "m.safetensors")
    loaded = ebmlab.load(path)
    assert type(loaded) is cls and loaded.config == model.config
    torch.testing.assert_close(loaded.transform(x), model.transform(x), rtol=0, atol=0)
    if cls is not PCA:
        torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [PCA, ProbabilisticPCA, FactorAnalysis])
def test_bad_input_is_rejected_with_clear_errors(cls: type) -> None:
    with pytest.raises(ValueError, match="n_components"):
        cls(4, 5)
    with pytest.raises(ValueError, match="n_components"):
        cls(4, 0)
    with pytest.raises(ValueError, match="n_visible"):
        cls(0, 1)
    model = cls(4, 2)
    with pytest.raises(ValueError, match="x: expected 4 features"):
        model.fit(torch.zeros(10, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, features\)"):
        model.fit(torch.zeros(10))
    bad = torch.randn(10, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x: contains 1 NaN"):
        model.fit(bad)
    with pytest.raises(ValueError, match="at least 2 examples"):
        model.fit(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="x: expected 4 features"):
        model.transform(torch.zeros(3, 5))


def test_density_specific_bad_input() -> None:
    with pytest.raises(ValueError, match=r"n_components.*< n_visible"):
        ProbabilisticPCA(4, 4)  # sigma^2 needs a discarded direction
    with pytest.raises(ValueError, match="min_noise"):
        FactorAnalysis(4, 2, min_noise=0.0)
    model = ProbabilisticPCA(4, 2)
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match="method"):
        model.fit(x, method="svd")
    with pytest.raises(ValueError, match="max_iter"):
        model.fit(x, method="em", max_iter=0)
    with pytest.raises(ValueError, match="x: contains 1 NaN"):
        model.log_prob(torch.tensor([[0.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"covariance: expected shape \(4, 4\)"):
        model.fit_moments(torch.zeros(4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="bin_width"):
        model.log_prob_dequantized(x, bin_width=-1.0)


# ----- the recipes -------------------------------------------------------------------------------
def test_dequantized_statistics_are_the_moments_of_x_plus_uniform_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3000, 3, generator=g) < torch.tensor([0.2, 0.5, 0.9])).double()
    mean, cov, dequantized = fit_statistics(x)
    assert dequantized and is_binary(x) and not is_binary(x * 0.5)
    m, s = moments(x)
    torch.testing.assert_close(mean, m + 0.5)
    torch.testing.assert_close(cov, s + torch.eye(3, dtype=F64) / 12)


@pytest.mark.parametrize("binarize", [None, "stochastic"])
@pytest.mark.parametrize("name", ["pca", "ppca", "fa"])
def test_recipes_fit_evaluate_and_draw_on_digits(name: str, binarize: str | None, tmp_path: Path):
    from ebmlab import data
    from ebmlab.app.recipes import Context

    recipe = _registered()[name]
    x_train, _ = data.load("digits", "train", binarize=binarize)
    x_test, _ = data.load("digits", "test", binarize=binarize)
    options = {opt.name: opt.default for opt in recipe.options}
    options["components"] = 5
    ctx = Context(
        options=options,
        data_name="digits",
        image_shape=(8, 8),
        generator=torch.Generator().manual_seed(0),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        quick=True,
    )
    model, objective = recipe.build(x_train, ctx)
    assert objective is None and recipe.fit is not None
    fit_metrics = recipe.fit(model, x_train, ctx)
    metrics = recipe.evaluate(model, x_train, x_test, ctx)
    figures = recipe.figures(model, x_test, ctx)
    assert all(Path(f.path).is_file() for f in figures)
    assert math.isfinite(metrics["test_reconstruction_error"])
    if name == "pca":
        assert metrics["log_likelihood_method"] == "none"
        return
    assert fit_metrics["dequantized"] == (binarize is not None)
    expected = "dequantized" if binarize else "exact"
    assert metrics["log_likelihood_method"] == expected
    assert math.isfinite(metrics["test_log_likelihood"]) and metrics["test_log_likelihood_se"] > 0
    assert {"samples.png", "components.png", "reconstructions.png"} <= {
        Path(f.path).name for f in figures
    }
    if binarize:
        # a lower bound on a discrete log-likelihood is below 0
        assert metrics["test_log_likelihood"] < 0 and metrics["train_log_likelihood"] < 0


def _registered() -> dict:
    import ebmlab.app.families.linear  # noqa: F401  (registers the recipes until _load_builtin does)
    from ebmlab.app.recipes import RECIPES

    return RECIPES


# ----- MNIST: the published PCA figure -----------------------------------------------------------
@pytest.mark.slow
def test_pca_30_reconstruction_error_on_mnist_matches_hinton_salakhutdinov() -> None:
    from ebmlab import data

    if not os.environ.get("EBMLAB_DATA"):
        pytest.skip("MNIST not available (set EBMLAB_DATA)")
    x, _ = data.load("mnist", "train")
    x_test, _ = data.load("mnist", "test")
    error = float(PCA(784, 30).fit(x).reconstruction_error(x_test).mean())
    assert error == pytest.approx(13.87, abs=0.01)  # Hinton & Salakhutdinov 2006: 13.87
