"""One suite for every annealing path: forward and reverse AIS against exact log Z.

Each entry builds a small model; forward AIS from the base model and reverse AIS from exact
samples must both land within 5 reported standard errors of the exact log Z (plus 0.01 nats for
the Jensen gap of a finite schedule). A new path joins by adding an entry here, and
``test_every_path_is_in_the_suite`` fails until it does. Entries are built inside the tests, so
an entry that cannot be built is an error, never a skip.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from estimator_models import TinyBoltzmann, random_dbm, random_grbm, random_rbm

from ebmlab import models
from ebmlab.estimators import (
    ais,
    annealing_path,
    exact_log_z,
    exact_sample,
    paths,
    reverse_ais,
)
from ebmlab.estimators.binary_energy import BinaryEnergy
from ebmlab.samplers import DiscreteLangevin, GibbsWithGradients

N_BETAS, N_RUNS = 500, 200


def dbn_top() -> Any:
    dbn = models.DeepBeliefNet([10, 8, 6], init_std=0.8, seed=21)
    with torch.no_grad():
        dbn.top.b.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(22))
    return dbn.top


def hopfield() -> Any:
    patterns = torch.where(
        torch.rand(3, 10, generator=torch.Generator().manual_seed(23)) < 0.5, 1.0, -1.0
    )
    return models.Hopfield(10).store(patterns)


def boltzmann_machine() -> Any:
    bm = models.BoltzmannMachine(6, n_hidden=3, init_std=0.8, seed=24)
    with torch.no_grad():
        bm.theta.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(25))
    return bm


def energy_network(kernel: Any) -> Any:
    """A small MLP energy on 9 bits, annealed with a gradient-informed kernel."""
    network = models.MLPEnergy(9, hidden=12, depth=1, activation="softplus")
    with torch.no_grad():
        generator = torch.Generator().manual_seed(26)
        for p in network.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return BinaryEnergy(network, kernel=kernel)


CASES: dict[str, Callable[[], Any]] = {
    "bernoulli-rbm": lambda: random_rbm(10, 6, sigma=1.0, seed=11),
    "dbn-top-rbm": dbn_top,
    "gaussian-rbm": lambda: random_grbm(4, 5, scale=0.5, seed=12),
    "ising": lambda: models.Ising(3, coupling=0.4, field=0.1, boundary="periodic"),
    "boltzmann-machine": boltzmann_machine,
    "tiny-boltzmann": lambda: TinyBoltzmann(8, seed=3, scale=0.7),
    "hopfield": hopfield,
    "dbm-2-layers": lambda: random_dbm([6, 4, 3], scale=0.7, seed=13),
    "dbm-3-layers": lambda: random_dbm([5, 4, 3, 3], scale=0.7, seed=14),
    "energy-network-dmala": lambda: energy_network(DiscreteLangevin(step_size=0.5)),
    "energy-network-gwg": lambda: energy_network(GibbsWithGradients()),
}


def _close(result: Any, exact: float) -> bool:
    return abs(result.log_z - exact) < 5 * result.log_z_se + 0.01


@pytest.mark.parametrize("case", list(CASES))
def test_forward_ais_matches_exact_log_z(case):
    model = CASES[case]()
    exact = exact_log_z(model)
    result = ais(model, n_betas=N_BETAS, n_runs=N_RUNS, seed=0)
    assert result.direction == "forward" and result.n_runs == N_RUNS
    assert _close(result, exact), (result.log_z, result.log_z_se, exact)


@pytest.mark.parametrize("case", list(CASES))
def test_reverse_ais_from_exact_samples_matches_exact_log_z(case):
    model = CASES[case]()
    exact = exact_log_z(model)
    start = exact_sample(model, N_RUNS, torch.Generator().manual_seed(1))
    result = reverse_ais(model, start, n_betas=N_BETAS, seed=2)
    assert result.direction == "reverse" and result.n_runs == N_RUNS
    assert _close(result, exact), (result.log_z, result.log_z_se, exact)


def test_every_path_is_in_the_suite():
    defined = {
        cls
        for _, cls in inspect.getmembers(paths, inspect.isclass)
        if cls.__module__ == paths.__name__
        and hasattr(cls, "step")
        and cls is not paths.AnnealingPath
    }
    covered = {type(annealing_path(build())) for build in CASES.values()}
    assert defined == covered, defined ^ covered
