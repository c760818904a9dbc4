"""The Gaussian of the central limit theorem (standardized sums of Bernoulli(1/2) draws) beside
Box-Muller: its lattice, its moments within standard errors, and normality tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ebmlab.samplers import UniformSource, bernoulli_draw, clt_gaussian, elementary, gaussian
from ebmlab.samplers.elementary import CLT_TERMS

N_DRAWS = 40_000
N_TERMS = 256


@pytest.fixture(scope="module")
def draws() -> torch.Tensor:
    return clt_gaussian(N_DRAWS, N_TERMS, torch.Generator().manual_seed(0), dtype=torch.float64)


def test_clt_draws_are_standardized_bernoulli_sums(draws):
    """z = (sum of m Bernoulli(1/2) draws - m/2) / sqrt(m/4): the same stream of the one
    Bernoulli draw, values on the lattice (2k - m) / sqrt(m)."""
    m = 16
    z = clt_gaussian(7, m, torch.Generator().manual_seed(3), dtype=torch.float64)
    bits = bernoulli_draw(torch.full((7, m), 0.5), torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, (bits.sum(1).double() - m / 2) / math.sqrt(m / 4))
    k = draws * math.sqrt(N_TERMS) / 2 + N_TERMS / 2
    torch.testing.assert_close(k, k.round())
    assert draws.abs().max() <= math.sqrt(N_TERMS)
    # the fixture's draws span three chunks of 2^22 / 256 rows; n = 0 is empty
    assert draws.numel() > 2 * (elementary._CLT_CHUNK // N_TERMS)
    assert clt_gaussian(0).shape == (0,)
    default = clt_gaussian(5, generator=torch.Generator().manual_seed(1))
    assert default.dtype == torch.float32
    assert (default.abs() <= math.sqrt(CLT_TERMS)).all()


def test_clt_moments_within_standard_errors(draws):
    """Mean 0 and variance 1 exactly (a standardized Binomial(m, 1/2)); standard errors
    1 / sqrt(n) for the mean and sqrt((mu_4 - 1) / n) for the variance, mu_4 = 3 - 2 / m."""
    n = draws.numel()
    mean, var = float(draws.mean()), float(draws.var())
    assert abs(mean) < 4 / math.sqrt(n)
    mu4 = 3 - 2 / N_TERMS
    assert abs(var - 1) < 4 * math.sqrt((mu4 - 1) / n)
    skew = float(((draws - draws.mean()) ** 3).mean() / draws.var() ** 1.5)
    assert abs(skew) < 4 * math.sqrt(6 / n)


def test_clt_normality(draws):
    """Chi-square against N(0, 1) over 20 bins whose edges fall halfway between lattice points
    (the continuity correction), and D'Agostino-Pearson's skewness-kurtosis test."""
    m = N_TERMS
    quantiles = stats.norm.ppf(np.linspace(0, 1, 21)[1:-1])
    edges_k = np.unique(np.round(quantiles * math.sqrt(m) / 2 + m / 2)) - 0.5
    edges_z = (2 * edges_k - m) / math.sqrt(m)
    probs = np.diff(np.concatenate([[0.0], stats.norm.cdf(edges_z), [1.0]]))
    k = (draws * math.sqrt(m) / 2 + m / 2).round().numpy()
    counts = np.bincount(np.searchsorted(edges_k, k), minlength=probs.size)
    expected = draws.numel() * probs
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(statistic, probs.size - 1) > 1e-4
    assert stats.normaltest(draws.numpy()).pvalue > 1e-4
    # the same test sees a mis-scaled draw: 1.05 z, variance 1.1 instead of 1
    wide = np.bincount(np.searchsorted(edges_z, 1.05 * draws.numpy()), minlength=probs.size)
    assert stats.chi2.sf(float(((wide - expected) ** 2 / expected).sum()), probs.size - 1) < 1e-6


def test_clt_is_coarse_for_few_terms():
    """Four terms: five values only, so a normality test rejects it (the CLT is a limit)."""
    z = clt_gaussian(20_000, 4, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert z.unique().numel() == 5
    assert stats.kstest(z.numpy(), "norm").pvalue < 1e-6


@pytest.mark.parametrize("method", ["box-muller", "clt"])
def test_gaussian_with_either_standard_normal(method):
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    n = 20_000
    x = gaussian(mean, cov, n, torch.Generator().manual_seed(4), method=method)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert ((x.mean(0) - mean).abs() < 4 * se_mean).all()
    sample_cov = torch.cov(x.T)
    # var of a sample covariance entry: (S_ii S_jj + S_ij^2) / n for a Gaussian
    se_cov = torch.sqrt((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n)
    assert ((sample_cov - cov).abs() < 4 * se_cov).all()


def test_bad_input():
    with pytest.raises(ValueError, match="n_terms"):
        clt_gaussian(3, 0)
    with pytest.raises(ValueError, match="n: expected"):
        clt_gaussian(-1)
    with pytest.raises(ValueError, match="method"):
        gaussian(torch.zeros(2), torch.eye(2), 3, method="polar")


# ----- the uniform stream of long loops ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_source_is_reproducible_uniform_and_on_the_rand_grid(dtype):
    n = 200_000
    draws = [
        UniformSource(torch.Generator().manual_seed(5)).fill_(torch.empty(n, dtype=dtype))
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    u = draws[0].double()
    assert u.min() >= 0 and u.max() < 1
    # mean 1/2 and variance 1/12, within 5 standard errors (Var u = 1/12, Var u^2 = 4/45)
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.square().mean() - 1 / 3) < 5 * math.sqrt(4 / 45 / n)
    # decile counts: chi-square with 9 degrees of freedom, far below its 0.999 quantile (27.9)
    counts = torch.bincount((u * 10).long(), minlength=10).double()
    assert float(((counts - n / 10) ** 2 / (n / 10)).sum()) < 27.9
    bits = 24 if dtype == torch.float32 else 53
    assert torch.equal(u * 2**bits, (u * 2**bits).floor())  # multiples of 2^-bits, like rand


def test_uniform_source_bernoulli_matches_p_and_falls_back_to_the_generator():
    source = UniformSource(torch.Generator().manual_seed(6))
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).expand(40_000, 5).contiguous()
    x = source.bernoulli(p, torch.empty_like(p))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    se = torch.sqrt(p[0] * (1 - p[0]) / 40_000)
    assert ((x.mean(0) - p[0]).abs() <= 5 * se + 1e-12).all()
    # a non-contiguous buffer is filled by the torch generator itself
    out = torch.empty(10, 6)[:, ::2]
    assert not out.is_contiguous()
    assert ((source.fill_(out) >= 0) & (out < 1)).all()
    with pytest.raises(ValueError, match="out"):
        source.bernoulli(p, torch.empty(3))
