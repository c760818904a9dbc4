"""MCMC diagnostics: hand-computed values on small inputs, a naive reference, AR(1) closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebmlab.samplers import (
    autocorrelation,
    autocovariance,
    effective_sample_size,
    gelman_rubin,
    split_rhat,
)

# Case 1: two chains, four draws, anti-correlated. Worked by hand:
#   chain A = 1 2 3 4 (deviations -1.5 -0.5 0.5 1.5), chain B = 2 1 4 3 (-0.5 -1.5 1.5 0.5)
#   biased autocovariances (divide by 4):  A: 1.25, 0.3125, -0.375, -0.5625
#                                          B: 1.25, -0.1875, -0.375, -0.0625
#   mean over chains: 1.25, 0.0625, -0.375, -0.3125
#   W = 5/3 (unbiased variances), chain means equal so B/n = 0, var+ = 3/4 W = 1.25
#   rho_k = 1 - (W - gamma_k) / var+ -> rho = 1, -0.28333, -0.63333, -0.58333
#   pairs: P0 = 43/60, P1 = -1.21667 < 0 (dropped); tau = -1 + 2 * 43/60 = 13/30, below Stan's
#   floor 1 / log10(N) = 1 / log10(8) = 1.1073 for antithetic chains: ESS = 8 log10(8) = 7.2247
#   (the unfloored 2 * 4 / tau = 240/13 = 18.5 would claim more than twice the draws)
CASE1 = [[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]]
# Case 2: two chains with different means and strong positive autocorrelation.
#   A = 1 1 2 2, B = 3 3 4 4: both have deviations -.5 -.5 .5 .5 -> gamma = .25, .0625, -.125,
#   -.0625; W = 1/3; chain means 1.5, 3.5 -> B/n = 2; var+ = 1/4 + 2 = 9/4
#   rho = 1, 0.87963, 0.79630, 0.82407; P0 + P1 = 3.5 (P1 <= P0) -> tau = 6, ESS = 8 / 6
CASE2 = [[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]


def test_autocovariance_and_autocorrelation_by_hand():
    x = torch.tensor(CASE1)
    expected = torch.tensor([[1.25, 0.3125, -0.375, -0.5625], [1.25, -0.1875, -0.375, -0.0625]])
    torch.testing.assert_close(autocovariance(x), expected.double())
    torch.testing.assert_close(
        autocorrelation(x)[0], torch.tensor([1.0, 0.25, -0.3, -0.45]).double()
    )
    torch.testing.assert_close(autocovariance(x, max_lag=1), expected[:, :2].double())


def test_ess_by_hand():
    case1 = 8 * math.log10(8)
    assert float(effective_sample_size(torch.tensor(CASE1))) == pytest.approx(case1, rel=1e-12)
    assert float(effective_sample_size(torch.tensor(CASE2))) == pytest.approx(8 / 6, rel=1e-12)
    # numpy input and trailing dimensions: (chain, draw, 2)
    both = np.stack([np.array(CASE1), np.array(CASE2)], axis=-1)
    torch.testing.assert_close(
        effective_sample_size(both), torch.tensor([case1, 8 / 6], dtype=torch.float64)
    )


def test_split_rhat_by_hand():
    # halves 1 3 | 2 4 | 2 4 | 3 5: each variance 2 -> W = 2; half means 2 3 3 4 -> var 2/3 = B/n;
    # var+ = (1/2) 2 + 2/3 = 5/3; R-hat = sqrt(5/6)
    x = torch.tensor([[1.0, 3.0, 2.0, 4.0], [2.0, 4.0, 3.0, 5.0]])
    assert float(split_rhat(x)) == pytest.approx(math.sqrt(5 / 6), rel=1e-12)
    # odd length: the middle draw (9) is dropped; halves 1 2 | 3 4 | 2 1 | 4 3: W = 1/2,
    # means 1.5 3.5 1.5 3.5 -> var 4/3; var+ = 1/4 + 4/3 = 19/12; R-hat = sqrt(19/6)
    y = torch.tensor([[1.0, 2.0, 9.0, 3.0, 4.0], [2.0, 1.0, 9.0, 4.0, 3.0]])
    assert float(split_rhat(y)) == pytest.approx(math.sqrt(19 / 6), rel=1e-12)
    # unsplit: chains 1 3 2 4 and 2 4 3 5: W = 5/3 each, means 2.5 3.5 -> var 1/2,
    # var+ = 3/4 * 5/3 + 1/2 = 7/4, R-hat = sqrt(21/20)
    assert float(gelman_rubin(x)) == pytest.approx(math.sqrt(21 / 20), rel=1e-12)


def _naive_ess(x: np.ndarray) -> float:
    """Direct transcription of the formulas with loops (one scalar per draw)."""
    m, n = x.shape
    means = x.mean(1)
    gamma = np.zeros(n)
    for c in range(m):
        d = x[c] - means[c]
        for k in range(n):
            gamma[k] += np.dot(d[: n - k], d[k:]) / n / m
    within = np.mean([np.var(x[c], ddof=1) for c in range(m)])
    var_plus = (n - 1) / n * within + (np.var(means, ddof=1) if m > 1 else 0.0)
    rho = 1 - (within - gamma) / var_plus
    rho[0] = 1.0
    total, cap = 0.0, np.inf
    for t in range(n // 2):
        pair = rho[2 * t] + rho[2 * t + 1]
        if t > 0 and pair < 0:
            break
        cap = min(cap, pair)
        total += cap
    return m * n / max(-1 + 2 * total, 1 / np.log10(m * n))


@pytest.mark.parametrize("shape", [(1, 50), (3, 41), (4, 200)])
def test_ess_matches_naive_reference(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).cumsum(axis=1) * 0.3 + rng.standard_normal(shape)
    assert float(effective_sample_size(x)) == pytest.approx(_naive_ess(x), rel=1e-9)


def _ar1(phi: float, n_chains: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_chains, n, generator=g, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0] / math.sqrt(1 - phi**2)  # start in the stationary law
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_ess_of_ar1_matches_closed_form(phi):
    # AR(1): integrated autocorrelation time (1 + phi) / (1 - phi). The estimator's relative
    # sd is about sqrt(2 * (2 M + 1) / N) for window M ~ a few tau: ~5% here, tolerance 25%.
    x = _ar1(phi, 4, 5000, seed=1)
    expected = 4 * 5000 * (1 - phi) / (1 + phi)
    assert float(effective_sample_size(x)) == pytest.approx(expected, rel=0.25)


@pytest.mark.parametrize("phi", [-0.5, -0.999])
def test_ess_of_antithetic_chains_is_positive_and_capped(phi):
    # AR(1) with phi < 0: tau = (1 + phi) / (1 - phi) < 1, so the ESS exceeds the number of
    # draws; Stan floors tau at 1 / log10(N), so the ESS stays in (0, N log10 N]
    x = _ar1(phi, 4, 5000, seed=3)
    n = 4 * 5000
    ess = float(effective_sample_size(x))
    expected = n * (1 - phi) / (1 + phi)
    assert 0 < ess <= n * math.log10(n) * (1 + 1e-12)
    assert ess == pytest.approx(min(expected, n * math.log10(n)), rel=0.25)


def test_rhat_detects_unmixed_chains():
    x = _ar1(0.5, 4, 1000, seed=2)
    assert float(split_rhat(x)) == pytest.approx(1.0, abs=0.02)
    shifted = x + torch.tensor([0.0, 0.0, 3.0, 3.0], dtype=torch.float64)[:, None]
    assert float(split_rhat(shifted)) > 1.5
    trend = x + torch.linspace(0, 5, 1000, dtype=torch.float64)  # split halves see the drift
    assert float(split_rhat(trend)) > 1.3


def test_degenerate_inputs():
    const = torch.ones(2, 10)
    assert torch.isnan(effective_sample_size(const))
    assert torch.isnan(split_rhat(const))
    assert torch.isnan(effective_sample_size(torch.randn(2, 3)))  # fewer than 4 draws
    with pytest.raises(ValueError, match="chain, draw"):
        effective_sample_size(torch.randn(10))
    with pytest.raises(ValueError, match="2 chains"):
        gelman_rubin(torch.randn(1, 10))
