"""AIS of a neural energy on binary states: ``BinaryEnergy`` and ``FullyVisiblePath`` with a
gradient-informed kernel and an independent-Bernoulli base, against exact enumeration."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ebmlab import models
from ebmlab.estimators import (
    AISWarning,
    FullyVisiblePath,
    ais,
    base_rate_bias,
    enumerate_states,
    exact_log_z,
    exact_sample,
    log_likelihood,
    reverse_ais,
)
from ebmlab.estimators.binary_energy import BinaryEnergy
from ebmlab.samplers import DiscreteLangevin, Gibbs, GibbsWithGradients, Target
from ebmlab.samplers.gibbs import energy_conditional_logits

D = 10


def network(seed: int = 31, scale: float = 1.0) -> models.MLPEnergy:
    net = models.MLPEnergy(D, hidden=16, depth=1, activation="softplus")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=generator))
    return net


def data() -> torch.Tensor:
    """Rows whose marginals differ from one half (so the base is not uniform)."""
    g = torch.Generator().manual_seed(32)
    return (torch.rand(400, D, generator=g) < torch.linspace(0.1, 0.8, D)).float()


KERNELS = {"dmala": lambda: DiscreteLangevin(step_size=0.5), "gwg": GibbsWithGradients}


@pytest.mark.parametrize("name", list(KERNELS))
def test_forward_and_reverse_ais_from_the_base_rate_model_bracket_exact_log_z(name):
    view = BinaryEnergy(network(), kernel=KERNELS[name]())
    exact = exact_log_z(view)
    forward = ais(view, n_betas=400, n_runs=200, seed=0, data=data(), progress=False)
    start = exact_sample(view, 200, torch.Generator().manual_seed(1))
    reverse = reverse_ais(view, start, n_betas=400, seed=2, data=data(), progress=False)
    for result in (forward, reverse):
        assert abs(result.log_z - exact) < 5 * result.log_z_se + 0.01, (result.summary(), exact)
    # the log-likelihood of the data follows: -E(x) - log Z, with log Z's se added
    ll = log_likelihood(view, data(), forward)
    exact_ll = log_likelihood(view, data(), exact)
    assert abs(ll.mean - exact_ll.mean) < 5 * forward.log_z_se + 0.01
    assert ll.method == "ais" and ll.se > exact_ll.se


def test_short_schedules_err_on_the_documented_sides():
    """Forward AIS underestimates log Z on average (so the log-likelihood is optimistic), reverse
    AIS from exact samples overestimates it: a 3-beta schedule makes both gaps large."""
    view = BinaryEnergy(network(scale=2.0), kernel=GibbsWithGradients())
    exact = exact_log_z(view)
    start = exact_sample(view, 20, torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AISWarning)  # such weights are expected to be uneven
        forward = [ais(view, n_betas=3, n_runs=20, seed=s, progress=False).log_z for s in range(20)]
        reverse = [
            reverse_ais(view, start, n_betas=3, seed=s, progress=False).log_z for s in range(20)
        ]
    assert sum(forward) / 20 < exact - 0.1
    assert sum(reverse) / 20 > exact + 0.1


def test_base_rate_base_is_normalized_and_matches_the_data_marginals():
    view = BinaryEnergy(network())
    path = view.annealing_path(data=data())
    states = enumerate_states(D).float()
    assert math.isclose(
        float(torch.logsumexp(path._base_log_f(states).double(), 0)), path.log_z_base, rel_tol=1e-6
    )
    draws = path.sample_base(20_000, torch.Generator().manual_seed(4))
    expected = torch.sigmoid(base_rate_bias(data())).float()
    assert torch.allclose(draws.mean(0), expected, atol=0.02)
    uniform = view.annealing_path()
    assert math.isclose(uniform.log_z_base, D * math.log(2.0))


def test_path_energy_and_conditionals_at_an_intermediate_beta():
    """-log f_beta = beta E - (1 - beta) log f_0, and the conditional logits of a model with
    exact ones (Ising) equal the energy differences of that tilted density."""
    ising = models.Ising(3, coupling=0.4, field=0.1, boundary="periodic")
    g = torch.Generator().manual_seed(5)
    base = torch.randn(9, generator=g, dtype=torch.float64)
    path = FullyVisiblePath(ising, base_bias=base)
    path.beta = 0.3
    x = torch.where(torch.rand(7, 9, generator=g) < 0.5, 1.0, -1.0)
    u = (x + 1) / 2
    expected = 0.3 * ising.energy(x) - 0.7 * (u @ base.float())
    assert torch.allclose(path.energy(x), expected, atol=1e-5)
    for i in range(9):
        direct = energy_conditional_logits(Target(path), x, i, (-1.0, 1.0))
        assert torch.allclose(path.conditional_logits(x, i), direct, atol=1e-4)


def test_ising_with_a_base_and_gibbs_sweeps_matches_exact_log_z():
    ising = models.Ising(3, coupling=0.4, field=0.1, boundary="periodic")
    path_model = BinaryEnergy(ising, kernel=Gibbs(scan="systematic"), spin_values=(-1.0, 1.0))
    exact = exact_log_z(ising)
    g = torch.Generator().manual_seed(6)
    rows = torch.where(torch.rand(300, 9, generator=g) < 0.7, 1.0, -1.0)
    result = ais(path_model, n_betas=300, n_runs=200, seed=7, data=(rows + 1) / 2, progress=False)
    assert abs(result.log_z - exact) < 5 * result.log_z_se + 0.01


def test_binary_energy_checks_its_arguments():
    with pytest.raises(ValueError, match="n_units"):
        BinaryEnergy(torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="spin_values"):
        BinaryEnergy(network(), spin_values=(0.0, 2.0))
    view = BinaryEnergy(network())
    assert view.n_units == D and list(view.parameters())
    with pytest.raises(ValueError, match=r"binary|values"):
        reverse_ais(view, torch.full((3, D), 0.5), n_betas=5, progress=False)
