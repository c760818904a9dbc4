"""Small exact targets and statistical checks shared by the sampler tests.

A correlated 2-D Gaussian (closed-form moments), a 5-unit binary Boltzmann machine without
conditionals and a 5 x 3 Bernoulli RBM (exact state probabilities by enumeration of 32 states),
and the two checks: moments within k ESS-based standard errors, and a chi-square p-value of a
state histogram against the exact probabilities.
"""

from __future__ import annotations

import itertools
import math

import torch
from scipy.stats import chi2

from ebmlab.models.rbm import BernoulliRBM
from ebmlab.samplers import effective_sample_size, gaussian

MEAN = torch.tensor([1.0, -1.0])
COV = torch.tensor([[2.0, 1.2], [1.2, 1.0]])  # correlation 0.85, eigenvalues 2.8 and 0.2
PRECISION = torch.linalg.inv(COV)


def gaussian_energy(x: torch.Tensor) -> torch.Tensor:
    d = x - MEAN.to(x.dtype)
    return 0.5 * ((d @ PRECISION.to(x.dtype)) * d).sum(-1)


def start_states(n: int, seed: int) -> torch.Tensor:
    """Exact draws of the Gaussian target: chains that start in equilibrium."""
    return gaussian(MEAN, COV, n, torch.Generator().manual_seed(seed))


def ula_stationary_cov(step: float, temperature: float = 1.0) -> torch.Tensor:
    """Closed form: x' = (I - eps P) x + s xi has stationary covariance S with
    S = A S A + s^2 I, A = I - eps P, i.e. S = T (P - eps P^2 / 2)^-1, T = s^2 / (2 eps)."""
    p = PRECISION.double()
    return temperature * torch.linalg.inv(p - step * p @ p / 2)


def assert_moments(
    samples: torch.Tensor,
    mean: torch.Tensor,
    cov: torch.Tensor,
    k: float = 5.0,
    slack: float | torch.Tensor = 0.0,
) -> None:
    """First and second moments within k ESS-based standard errors, in the principal axes of
    ``cov`` scaled to unit variance: y = D^-1/2 V^T (x - mean) with cov = V D V^T must have
    E[y] = 0 and E[y y^T] = I. Each axis is tested at its own precision, so a bias along a
    stiff (low-variance) direction is not hidden by the error bars of a slow one.

    ``samples``: (draws, chains, d). ``slack``: a widening of the second-moment tolerance in
    those coordinates, a number or a (d, d) tensor (for a kernel with a known bias bound)."""
    var, axes = torch.linalg.eigh(cov.double())
    y = ((samples.double() - mean.double()) @ axes / var.sqrt()).transpose(0, 1)  # chain-major
    d = y.shape[-1]
    slack = torch.as_tensor(slack, dtype=torch.float64).expand(d, d)
    for i in range(d):
        ess = float(effective_sample_size(y[..., i]))
        assert abs(float(y[..., i].mean())) < k / math.sqrt(ess), (i, ess)
    for i, j in itertools.combinations_with_replacement(range(d), 2):
        prod = y[..., i] * y[..., j]
        ess = float(effective_sample_size(prod))
        se = float(prod.std()) / math.sqrt(ess)
        error = abs(float(prod.mean()) - float(i == j))
        assert error < k * se + float(slack[i, j]), (i, j, ess, error, se)


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> float:
    """Pearson chi-square p-value, bins with expected count < min_expected merged into one."""
    counts, probs = counts.double(), probs.double()
    expected = counts.sum() * probs
    small = expected < min_expected
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, counts.numel() - 1))


class TinyBoltzmann(torch.nn.Module):
    """E(s) = -s^T W s / 2 - b^T s on {0,1}^5, no conditionals: Gibbs works from energies."""

    spin_values = (0.0, 1.0)
    n_units = 5

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1_000_003)  # far from the samplers' seeds
        W = torch.randn(5, 5, generator=g) * 1.5
        self.register_buffer("W", (W + W.T) / 2 * (1 - torch.eye(5)))
        self.register_buffer("b", torch.randn(5, generator=g))

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((s @ self.W) * s).sum(-1) - s @ self.b


def tiny_rbm() -> BernoulliRBM:
    rbm = BernoulliRBM(5, 3, init_std=2.0, seed=1_000_003)
    with torch.no_grad():
        rbm.b.copy_(torch.tensor([-1.0, 0.5, 0.0, 1.0, -0.5]))
        rbm.c.copy_(torch.tensor([0.5, -1.0, 0.0]))
    return rbm


def all_states(n_units: int) -> torch.Tensor:
    """Every {0,1} state, unit i = bit i of the row index (as ``state_index`` reads them)."""
    index = torch.arange(2**n_units)
    return ((index[:, None] >> torch.arange(n_units)) & 1).float()


def state_index(states: torch.Tensor) -> torch.Tensor:
    return (states * 2 ** torch.arange(states.shape[-1])).sum(-1).long()


@torch.no_grad()
def exact_probs(energy) -> torch.Tensor:
    """p(s) ∝ exp(-E(s)) over the 32 states of 5 binary units, float64."""
    return torch.softmax(-energy(all_states(5)).double(), 0)
