"""The Helmholtz free energy F[q] = U[q] - T H[q] over a small model's states: the Boltzmann
distribution minimizes it, F_min = -T log Z_T, F[q] - F_min = T KL(q || p_T), by enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab.estimators import enumerate_states, exact_log_z
from ebmlab.models import (
    BoltzmannMachine,
    FreeEnergyTerms,
    Hopfield,
    Ising,
    boltzmann_distribution,
    helmholtz_free_energy,
    minimum_free_energy,
    state_energies,
)

TEMPERATURES = (0.3, 1.0, 2.5)


def hopfield() -> Hopfield:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    return Hopfield(4).double().set_weights((a + a.T) / 2, torch.randn(4, generator=g).double())


def boltzmann_machine() -> BoltzmannMachine:
    bm = BoltzmannMachine(3, 2, seed=0).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bm.W.copy_(torch.randn(5, 5, generator=g, dtype=torch.float64))
        bm.theta.copy_(torch.randn(5, generator=g, dtype=torch.float64))
    return bm


MODELS = {
    "hopfield": hopfield,
    "boltzmann": boltzmann_machine,
    "ising": lambda: Ising(2, coupling=0.7, field=0.2, boundary="free"),
}


def kl(q: torch.Tensor, p: torch.Tensor) -> float:
    support = q > 0
    return float((q[support] * (q[support] / p[support]).log()).sum())


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_boltzmann_distribution_minimizes_the_free_energy(name, temperature):
    model = MODELS[name]()
    states, energies = state_energies(model)
    p = boltzmann_distribution(model, temperature)
    f_min = minimum_free_energy(model, temperature)
    # F_min = -T log Z_T, with log Z_T by brute force over the enumerated states
    log_z = float(torch.logsumexp(-energies / temperature, 0))
    assert f_min == pytest.approx(-temperature * log_z, abs=1e-10)
    assert float(helmholtz_free_energy(model, p, temperature)) == pytest.approx(f_min, abs=1e-10)
    # stationarity of the Lagrangian: E(s) + T log p(s) is the same constant, -T log Z, everywhere
    torch.testing.assert_close(
        energies + temperature * p.log(), torch.full_like(p, f_min), rtol=0, atol=1e-10
    )
    # any other q has a larger F, and the gap is T KL(q || p_T) exactly
    g = torch.Generator().manual_seed(2)
    k = states.shape[0]
    others = [
        torch.distributions.Dirichlet(torch.full((k,), alpha, dtype=torch.float64)).sample()
        for alpha in (0.1, 1.0, 10.0)
        for _ in range(30)
    ]
    others += [torch.eye(k, dtype=torch.float64)[i] for i in range(k)]  # point masses
    others += [torch.full((k,), 1.0 / k, dtype=torch.float64)]  # uniform
    for eps in (1e-3, 1e-2, 1e-1):  # small perturbations of p_T
        noise = torch.rand(k, generator=g, dtype=torch.float64)
        others.append((p + eps * noise) / (1 + eps * noise.sum()))
    for q in others:
        f = helmholtz_free_energy(model, q, temperature).free_energy
        gap = temperature * kl(q, p)
        assert f == pytest.approx(f_min + gap, abs=1e-9)
        assert f > f_min


def test_minimum_free_energy_is_minus_t_log_z_of_the_estimator():
    """At T = 1 F_min is -log Z from ebmlab.estimators.exact_log_z; at T != 1 the same
    estimator runs on the model seen at temperature T."""
    for name, build in MODELS.items():
        model = build()
        assert minimum_free_energy(model) == pytest.approx(-exact_log_z(model), abs=1e-9), name
    bm = boltzmann_machine()
    hot = BoltzmannMachine(3, 2, temperature=2.5).double()
    with torch.no_grad():  # the same weights at temperature 2.5: energy(s) = E(s) / 2.5
        hot.W.copy_(bm.W)
        hot.theta.copy_(bm.theta)
    assert minimum_free_energy(bm, 2.5) == pytest.approx(-2.5 * exact_log_z(hot), abs=1e-9)


def test_parts_of_the_free_energy():
    model = hopfield()
    _, energies = state_energies(model)
    k = energies.numel()
    uniform = helmholtz_free_energy(model, torch.full((k,), 1.0 / k), 2.0)
    assert isinstance(uniform, FreeEnergyTerms)
    assert uniform.entropy == pytest.approx(math.log(k))
    assert uniform.internal_energy == pytest.approx(float(energies.mean()))
    assert uniform.free_energy == pytest.approx(uniform.internal_energy - 2.0 * math.log(k))
    assert uniform.temperature == 2.0 and float(uniform) == uniform.free_energy
    point = helmholtz_free_energy(model, torch.eye(k)[3], 2.0)
    assert point.entropy == 0.0 and point.free_energy == pytest.approx(float(energies[3]))


def test_temperature_limits():
    """T -> 0: F_min -> the ground-state energy (within T log K); T large: p_T -> uniform."""
    model = hopfield()
    _, energies = state_energies(model)
    k = energies.numel()
    for t in (0.1, 0.01, 0.001):
        f = minimum_free_energy(model, t)
        assert float(energies.min()) - t * math.log(k) <= f <= float(energies.min())
    # p_T(s) K = exp(-E(s)/T) K / Z_T lies within exp(+-(max E - min E) / T)
    spread = float(energies.max() - energies.min())
    for t in (10.0, 1e3, 1e6):
        ratio = (boltzmann_distribution(model, t) * k).log().abs().max().item()
        assert ratio <= spread / t


def test_states_of_probability_zero():
    """One-hot label units: states with two labels on have infinite energy, probability 0 under
    p_T and an infinite free energy for any q that puts mass on them."""
    bm = BoltzmannMachine(2, 1, n_labels=2, seed=0).double()
    states, energies = state_energies(bm)
    impossible = states[:, 2:4].sum(1) != 1
    assert torch.isinf(energies[impossible]).all() and torch.isfinite(energies[~impossible]).all()
    p = boltzmann_distribution(bm)
    assert (p[impossible] == 0).all()
    assert float(helmholtz_free_energy(bm, p)) == pytest.approx(-exact_log_z(bm), abs=1e-10)
    q = torch.full((states.shape[0],), 1.0 / states.shape[0])
    assert helmholtz_free_energy(bm, q).free_energy == math.inf


def test_free_energy_of_a_visible_vector_is_a_minimum_free_energy():
    """F(v) = -log sum_h exp(-E(v, h)) of a machine with hidden units is F_min at T = 1 of the
    hidden units' system with v clamped (given here by its energies)."""
    bm = boltzmann_machine()
    hidden = enumerate_states(2)
    for v in enumerate_states(3):
        joint = torch.cat([v.expand(4, 3), hidden], 1)
        with torch.no_grad():
            energies = bm.energy(joint)
            expected = float(bm.free_energy(v[None])[0])
        assert minimum_free_energy(energies) == pytest.approx(expected, abs=1e-10)
        q = boltzmann_distribution(energies)
        with torch.no_grad():
            posterior = torch.softmax(-energies, 0)
        torch.testing.assert_close(q, posterior)


def test_state_energies_follow_enumerate_states():
    model = hopfield()
    states, energies = state_energies(model)
    torch.testing.assert_close(states, enumerate_states(4, spin_values=(-1.0, 1.0)))
    with torch.no_grad():
        torch.testing.assert_close(energies, model.energy(states))
    assert energies.dtype == torch.float64


def test_bad_input():
    model = hopfield()
    with pytest.raises(ValueError, match=r"q: expected a distribution over the 16 states"):
        helmholtz_free_energy(model, torch.ones(4) / 4)
    with pytest.raises(ValueError, match="non-negative"):
        helmholtz_free_energy(model, torch.cat([torch.tensor([-0.5, 1.5]), torch.zeros(14)]))
    with pytest.raises(ValueError, match="summing to 1"):
        helmholtz_free_energy(model, torch.full((16,), 0.1))
    with pytest.raises(ValueError, match="temperature"):
        boltzmann_distribution(model, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        minimum_free_energy(model, -1.0)
    with pytest.raises(TypeError, match="fully visible"):
        minimum_free_energy(object())
    with pytest.raises(ValueError, match="above the limit"):
        state_energies(Hopfield(21))
    with pytest.raises(ValueError, match="energies"):
        minimum_free_energy(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="energies"):
        boltzmann_distribution(torch.zeros(2, 2))
