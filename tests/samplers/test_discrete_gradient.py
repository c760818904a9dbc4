"""Gibbs-with-gradients and the discrete Langevin kernels against exact enumeration.

Targets: a random quadratic energy on 6 bits (E = -x^T W x / 2 - b^T x, W with a diagonal, so
the first-order flip estimates are not exact) and the free energy of a 6 x 4 Bernoulli RBM (not
quadratic). The corrected kernels (GWG, its 3-draw variant, DMALA) must pass a chi-square test of
the 64 state frequencies against exp(-E) for every seed of a fixed set; one step from a fixed
state must follow the exact transition row (``proposal_matrix`` with the MH acceptance); DULA's
exact stationary distribution must approach the target as alpha shrinks on the quadratic energy,
and its chains must follow that (biased) distribution.
"""

from __future__ import annotations

import math

import pytest
import torch
from sampler_targets import chi_square_p

from ebmlab.estimators import enumerate_states
from ebmlab.models import BernoulliRBM
from ebmlab.samplers import (
    DiscreteLangevin,
    GibbsWithGradients,
    Target,
    make_kernel,
    metropolis_hastings_matrix,
    proposal_matrix,
    sample,
    stationary_distribution,
    target_log_probs,
    total_variation,
)
from ebmlab.samplers.discrete_gradient import DULA, flip_energy_estimate

D = 6
STATES = enumerate_states(D).float()
SEEDS = (0, 1, 2)


class Quadratic(torch.nn.Module):
    """E(x) = -x^T W x / 2 - b^T x on {0,1}^6 with a random symmetric W (diagonal included)."""

    spin_values = (0.0, 1.0)
    n_units = D

    def __init__(self, seed: int = 5, scale: float = 1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(D, D, generator=g) * scale
        self.register_buffer("W", (W + W.T) / 2)
        self.register_buffer("b", torch.randn(D, generator=g))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ self.W) * x).sum(-1) - x @ self.b


def rbm() -> BernoulliRBM:
    return BernoulliRBM(D, 4, init_std=1.5, seed=7)


def index(x: torch.Tensor) -> torch.Tensor:
    """Row of ``STATES`` of each state (``enumerate_states`` order: unit i is bit i)."""
    return (x * 2 ** torch.arange(D)).sum(-1).long()


def target_probs(model) -> torch.Tensor:
    return target_log_probs(model, STATES).exp()


def frequencies_p(kernel, model, seed: int, n_steps: int = 400, thin: int = 10) -> float:
    x0 = (torch.rand(300, D, generator=torch.Generator().manual_seed(100 + seed)) < 0.5).float()
    result = sample(kernel, model, x0, n_steps, burn_in=100, thin=thin, seed=seed, progress=False)
    counts = torch.bincount(index(result.samples).flatten(), minlength=2**D)
    return chi_square_p(counts, target_probs(model))


def test_states_are_indexed_as_enumerated():
    assert torch.equal(index(STATES), torch.arange(2**D))


CORRECTED = {
    "gwg": GibbsWithGradients,
    "gwg-3-draws": lambda: GibbsWithGradients(n_flips=3),
    "dmala": lambda: DiscreteLangevin(step_size=0.5),
    "dmala-large-step": lambda: DiscreteLangevin(step_size=3.0),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("target", ["quadratic", "rbm"])
@pytest.mark.parametrize("name", list(CORRECTED))
def test_corrected_kernels_sample_the_exact_distribution(name, target, seed):
    model = Quadratic() if target == "quadratic" else rbm()
    assert frequencies_p(CORRECTED[name](), model, seed) > 1e-4


@pytest.mark.parametrize("name", ["gwg", "dmala"])
def test_one_step_follows_the_exact_transition_row(name):
    """From one fixed state, the next state of 20,000 chains against T[s, :] = Q alpha."""
    model = rbm()
    kernel = CORRECTED[name]()
    log_p = target_log_probs(model, STATES)
    T = metropolis_hastings_matrix(log_p, proposal_matrix(kernel, model, STATES))
    assert torch.allclose(T.sum(1), torch.ones(2**D, dtype=torch.float64))
    assert torch.allclose(stationary_distribution(T), log_p.exp(), atol=1e-10)
    start = 37
    x = STATES[start].expand(20_000, -1).clone()
    x_new, info = kernel.step(x, Target(model), torch.Generator().manual_seed(3))
    counts = torch.bincount(index(x_new), minlength=2**D)
    support = T[start] > 0
    assert counts[~support].sum() == 0  # never a move the exact kernel cannot make
    assert chi_square_p(counts[support], T[start][support]) > 1e-4
    # the reported acceptance probabilities average to the exact probability of moving
    moved = (
        1.0 - float(T[start, start]) + float(proposal_matrix(kernel, model, STATES)[start, start])
    )
    assert abs(float(info.accept_prob.double().mean()) - moved) < 0.02


def test_dula_bias_shrinks_with_the_step_size():
    """DULA's exact stationary distribution (its transition matrix is the proposal itself)
    approaches exp(-E) as alpha -> 0 on an energy quadratic in x."""
    model = Quadratic(scale=0.5)
    p = target_probs(model)
    bias = {}
    for alpha in (2.0, 0.5, 0.2, 0.1):
        T = proposal_matrix(DULA(alpha), model, STATES)
        bias[alpha] = float(total_variation(stationary_distribution(T), p))
    assert bias[2.0] > bias[0.5] > bias[0.2] > bias[0.1], bias
    assert bias[0.1] < 0.25 * bias[2.0], bias


def test_dula_bias_does_not_vanish_on_a_non_quadratic_energy():
    model = rbm()
    p = target_probs(model)
    T = proposal_matrix(DULA(0.05), model, STATES)
    assert float(total_variation(stationary_distribution(T), p)) > 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_dula_chains_follow_its_exact_stationary_distribution(seed):
    model = Quadratic(scale=0.5)
    kernel = DULA(0.5)
    pi = stationary_distribution(proposal_matrix(kernel, model, STATES))
    x0 = (torch.rand(300, D, generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    result = sample(kernel, model, x0, 400, burn_in=100, thin=10, seed=seed, progress=False)
    assert result.acceptance_rate == 1.0
    counts = torch.bincount(index(result.samples).flatten(), minlength=2**D)
    assert chi_square_p(counts, pi) > 1e-4


@pytest.mark.parametrize("name", ["gwg", "dmala"])
def test_tempered_target_per_chain_betas(name):
    """Chains at beta = 0.5 and beta = 1 side by side: each half samples exp(-beta E)."""
    model = Quadratic()
    betas = torch.cat([torch.full((300,), 0.5), torch.ones(300)])
    x0 = (torch.rand(600, D, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    kernel = CORRECTED[name]()
    result = sample(
        kernel, Target(model, betas), x0, 400, burn_in=100, thin=10, seed=5, progress=False
    )
    for half, beta in ((slice(0, 300), 0.5), (slice(300, 600), 1.0)):
        counts = torch.bincount(index(result.samples[:, half]).flatten(), minlength=2**D)
        probs = target_log_probs(Target(model, beta), STATES).exp()
        assert chi_square_p(counts, probs) > 1e-4, beta


@pytest.mark.parametrize("name", ["gwg", "dmala"])
def test_spin_states(name):
    """{-1, +1} units: flips move by +-2, the estimate and the proposal follow."""
    quadratic = Quadratic()

    def energy(s: torch.Tensor) -> torch.Tensor:
        return quadratic.energy((s + 1) / 2)

    # flips move a spin by 2: alpha 2 flips as often as alpha 0.5 on {0, 1} units
    kernel = GibbsWithGradients() if name == "gwg" else DiscreteLangevin(step_size=2.0)
    s0 = torch.where(
        torch.rand(300, D, generator=torch.Generator().manual_seed(6)) < 0.5, 1.0, -1.0
    )
    result = sample(kernel, energy, s0, 400, burn_in=100, thin=10, seed=7, progress=False)
    counts = torch.bincount(index((result.samples + 1) / 2).flatten(), minlength=2**D)
    assert chi_square_p(counts, target_probs(quadratic)) > 1e-4


def test_flip_estimate_is_exact_for_an_energy_linear_in_each_unit():
    model = Quadratic()
    with torch.no_grad():
        model.W.fill_diagonal_(0.0)
    x = STATES.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.energy(x).sum(), x)
    d = flip_energy_estimate(grad, STATES, (0.0, 1.0))
    for i in range(D):
        flipped = STATES.clone()
        flipped[:, i] = 1 - flipped[:, i]
        exact = model.energy(flipped) - model.energy(STATES)
        assert torch.allclose(d[:, i], exact, atol=1e-5)


def test_one_energy_and_gradient_per_step():
    model = Quadratic()
    calls = []

    def energy(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return model.energy(x)

    x0 = (torch.rand(10, D, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    for kernel in (GibbsWithGradients(), DiscreteLangevin()):
        calls.clear()
        sample(kernel, energy, x0, 20, seed=0, progress=False, diagnostics=False)
        # the runner's start check, the first state, then one proposal per step
        assert len(calls) == 2 + 20, (kernel, len(calls))


def test_acceptance_and_effective_sample_size_are_reported():
    model = rbm()
    x0 = (torch.rand(50, D, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    for kernel in (GibbsWithGradients(), DiscreteLangevin(0.5), DULA(0.2)):
        result = sample(kernel, model, x0, 200, burn_in=50, seed=1, progress=False)
        assert 0.0 < result.acceptance_rate <= 1.0
        assert torch.isfinite(result.ess).all() and (result.ess > 0).all()
        assert result.summary()["acceptance_rate"] == result.acceptance_rate


def test_proposals_with_non_finite_energy_are_rejected():
    model = Quadratic()

    def energy(x: torch.Tensor) -> torch.Tensor:  # infinite energy whenever unit 0 is on
        return model.energy(x) + torch.where(x[:, 0] > 0, math.inf, 0.0)

    x0 = torch.zeros(100, D)
    for kernel in (GibbsWithGradients(), DiscreteLangevin(1.0), DULA(1.0)):
        result = sample(kernel, energy, x0, 50, seed=0, progress=False, diagnostics=False)
        assert (result.samples[:, :, 0] == 0).all(), kernel


def test_non_finite_gradient_at_the_start_is_an_error():
    def energy(x: torch.Tensor) -> torch.Tensor:
        return (x * torch.tensor(float("nan"))).sum(-1).nan_to_num()

    with pytest.raises(ValueError, match="non-finite gradient"):
        GibbsWithGradients().step(torch.zeros(3, D), energy)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_step_size(bad):
    with pytest.raises(ValueError, match="step_size"):
        DiscreteLangevin(step_size=bad)
    with pytest.raises(ValueError, match="step_size"):
        DULA(step_size=bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_flips"):
        GibbsWithGradients(n_flips=0)
    with pytest.raises(ValueError, match="spin_values"):
        GibbsWithGradients(spin_values=(0.0, 2.0))
    with pytest.raises(TypeError, match="adjusted"):
        DiscreteLangevin(adjusted="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="binary"):
        sample(DiscreteLangevin(), Quadratic().energy, torch.full((4, D), 0.5), 2, progress=False)
    with pytest.raises(ValueError, match="n_flips=1"):
        proposal_matrix(GibbsWithGradients(n_flips=2), Quadratic(), STATES)


def test_kernels_by_name():
    assert isinstance(make_kernel("gwg"), GibbsWithGradients)
    dmala, dula = make_kernel("dmala", step_size=0.3), make_kernel("dula")
    assert dmala.adjusted and dmala.step_size == 0.3
    assert isinstance(dula, DiscreteLangevin) and not dula.adjusted
