"""What an AISResult reports besides log Z: its standard error, the +-3 se bounds and the ESS,
checked against their definitions on fixed log weights (forward and reverse), and the standard
error checked against the spread of log Z over independent runs of AIS (coverage over seeds).

Definitions (``AISResult``): with weights w_1..w_n (mean m, sample standard deviation s, ddof=1)
the standard error of the mean is s / sqrt(n) and, by the delta method, that of log m is
s / (sqrt(n) m); the bounds are log(m -/+ 3 s / sqrt(n)) (-inf when m - 3 s / sqrt(n) <= 0),
shifted by log Z_A; ESS = (sum w)^2 / sum w^2. Forward AIS: log Z = log Z_A + log m. Reverse
AIS: the weights estimate Z_A / Z, so log Z = log Z_A - log m and the bounds swap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from estimator_models import random_rbm

from ebmlab.estimators import ais, exact_log_z, exact_sample, reverse_ais

LOG_Z_BASE = 1.25
ONE_STEP = [0.0, 1.0]


class _FixedPath:
    """An annealing path whose only step gives run i the log weight ``log_weights[i]``; the state
    of a run is its index."""

    def __init__(self, log_weights: torch.Tensor, log_z_base: float) -> None:
        self.log_weights = log_weights
        self.log_z_base = log_z_base

    def sample_base(self, n_runs: int, generator: torch.Generator) -> torch.Tensor:
        assert n_runs == self.log_weights.numel()
        return torch.arange(n_runs)

    def from_samples(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.int64)

    def step(self, x, beta_prev, beta, generator, transition):
        return self.log_weights[x].clone(), x


class FixedWeights(torch.nn.Module):
    """A model whose AIS (any direction, schedule [0, 1]) has the given log weights."""

    def __init__(self, log_weights, log_z_base: float = LOG_Z_BASE) -> None:
        super().__init__()
        self.fixed = torch.as_tensor(log_weights, dtype=torch.float64)
        self.log_z_base = log_z_base

    def annealing_path(self, data=None, base_bias=None) -> _FixedPath:
        return _FixedPath(self.fixed, self.log_z_base)


def run(log_weights, direction: str):
    model = FixedWeights(log_weights)
    if direction == "forward":
        return ais(model, betas=ONE_STEP, n_runs=len(log_weights), progress=False)
    return reverse_ais(model, torch.arange(len(log_weights)), betas=ONE_STEP, progress=False)


def reference(w: np.ndarray, direction: str) -> dict[str, float]:
    """The reported quantities from their definitions, numpy float64 (``w`` relative weights)."""
    n, mean = w.size, w.mean()
    se_mean = w.std(ddof=1) / math.sqrt(n)
    log_low = math.log(mean - 3 * se_mean) if mean - 3 * se_mean > 0 else -math.inf
    log_high = math.log(mean + 3 * se_mean)
    ess = w.sum() ** 2 / (w**2).sum()
    common = {"log_z_se": se_mean / mean, "ess": ess, "ess_fraction": ess / n}
    if direction == "forward":
        bounds = {"log_z_low": LOG_Z_BASE + log_low, "log_z_high": LOG_Z_BASE + log_high}
        return {"log_z": LOG_Z_BASE + math.log(mean), **bounds, **common}
    bounds = {"log_z_low": LOG_Z_BASE - log_high, "log_z_high": LOG_Z_BASE - log_low}
    return {"log_z": LOG_Z_BASE - math.log(mean), **bounds, **common}


def assert_matches(result, expected: dict[str, float], shift: float = 0.0) -> None:
    """``result`` against ``expected`` (computed for log weights lower by ``shift``)."""
    sign = 1.0 if result.direction == "forward" else -1.0
    for key, value in expected.items():
        if key in ("log_z", "log_z_low", "log_z_high"):
            value = value + sign * shift
        if math.isinf(value):
            assert getattr(result, key) == value, key
        else:
            assert getattr(result, key) == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_summary_of_weights_1_1_2_4_in_closed_form(direction):
    # w = (1, 1, 2, 4): mean 2, sample variance (1 + 1 + 0 + 4) / 3 = 2, so the se of the mean
    # is sqrt(2) / sqrt(4) and that of log mean sqrt(2) / 4; 2 - 3 sqrt(2) / 2 < 0, so the far
    # bound is infinite; ESS = 8^2 / (1 + 1 + 4 + 16) = 32 / 11
    result = run(np.log([1.0, 1.0, 2.0, 4.0]), direction)
    se_mean = math.sqrt(2.0) / 2
    near, far = LOG_Z_BASE + math.log(2 + 3 * se_mean), -math.inf
    if direction == "forward":
        expected = {"log_z": LOG_Z_BASE + math.log(2.0), "log_z_low": far, "log_z_high": near}
    else:
        expected = {
            "log_z": LOG_Z_BASE - math.log(2.0),
            "log_z_low": 2 * LOG_Z_BASE - near,
            "log_z_high": -far,
        }
    expected |= {"log_z_se": math.sqrt(2.0) / 4, "ess": 32 / 11, "ess_fraction": 8 / 11}
    assert_matches(result, expected)
    assert result.direction == direction and result.n_runs == 4 and result.n_betas == 1
    assert result.log_z_base == LOG_Z_BASE
    torch.testing.assert_close(result.log_weights, torch.log(torch.tensor([1.0, 1, 2, 4]).double()))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("shift", [0.0, 800.0, -800.0])  # exp(+-800) over/underflows float64
def test_summary_matches_its_definition_on_random_weights(direction, shift):
    rng = np.random.default_rng(12)
    log_w = rng.normal(0.0, 0.4, size=30)  # mean - 3 se > 0: both bounds finite
    expected = reference(np.exp(log_w), direction)
    assert math.isfinite(expected["log_z_low"]) and math.isfinite(expected["log_z_high"])
    result = run(log_w + shift, direction)
    assert_matches(result, expected, shift)
    assert result.log_z_low < result.log_z < result.log_z_high


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_summary_of_equal_weights_and_of_a_single_run(direction):
    equal = run(np.full(7, -3.0), direction)
    sign = 1.0 if direction == "forward" else -1.0
    assert equal.log_z == pytest.approx(LOG_Z_BASE - 3.0 * sign, abs=1e-12)
    assert equal.log_z_se == 0.0 and equal.ess == pytest.approx(7.0, rel=1e-12)
    assert equal.log_z_low == pytest.approx(equal.log_z, abs=1e-12)
    assert equal.log_z_high == pytest.approx(equal.log_z, abs=1e-12)
    single = run(np.array([0.5]), direction)  # no standard error from one run
    assert single.log_z == pytest.approx(LOG_Z_BASE + 0.5 * sign, abs=1e-12)
    assert math.isnan(single.log_z_se) and single.ess == pytest.approx(1.0)


# ----- coverage: the standard error describes the spread of log Z over independent AIS runs ------
N_SEEDS = 60
N_RUNS = 50
N_BETAS = 200


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_log_z_se_covers_exact_log_z_over_seeds(direction):
    # a 6 x 4 RBM whose 200-beta AIS has even weights (ESS ~ 48 of 50 runs), so log Z is nearly
    # normal around log Z (bias ~ se^2 / 2, a few 1e-4 nats against se ~ 0.03): the error is
    # within 1 se in 68.3% of the seeds and within 2 se in 95.4%, and the mean se matches the
    # standard deviation of log Z over the seeds
    rbm = random_rbm(6, 4, sigma=1.0, seed=7)
    exact = exact_log_z(rbm)
    log_z, se = np.empty(N_SEEDS), np.empty(N_SEEDS)
    for seed in range(N_SEEDS):
        if direction == "forward":
            result = ais(rbm, n_betas=N_BETAS, n_runs=N_RUNS, seed=seed, progress=False)
        else:
            v = exact_sample(rbm, N_RUNS, torch.Generator().manual_seed(10_000 + seed))
            result = reverse_ais(rbm, v, n_betas=N_BETAS, seed=seed, progress=False)
        log_z[seed], se[seed] = result.log_z, result.log_z_se
    z = np.abs(log_z - exact) / se
    for k, lo_only in ((1.0, False), (2.0, True)):
        p = math.erf(k / math.sqrt(2))
        binomial_se = math.sqrt(p * (1 - p) / N_SEEDS)
        coverage = float(np.mean(z < k))
        # 4 binomial standard errors; an se sqrt(50) too large covers every seed within 1 se,
        # one too small misses most of them
        assert coverage > p - 4 * binomial_se, (k, coverage)
        if not lo_only:
            assert coverage < p + 4 * binomial_se, (k, coverage)
    # the spread over seeds (relative se of a standard deviation from 60 values: ~9%)
    ratio = se.mean() / log_z.std(ddof=1)
    assert 0.6 < ratio < 1.6, ratio
