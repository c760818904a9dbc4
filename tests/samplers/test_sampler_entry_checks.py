"""Sampler entry points refuse wrong argument types by name: kernel settings (bools and strings
are not numbers, flags are bools, wrapped kernels are kernels), the runner's counts and seeds,
an energy that cannot be differentiated, and too few draws for the diagnostics."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sampler_targets import gaussian_energy

from ebmlab.samplers import (
    HMC,
    MALA,
    SGLD,
    DiscreteLangevin,
    Gibbs,
    Langevin,
    MetropolisHastings,
    ParallelTempering,
    SimulatedAnnealing,
    sample,
)
from ebmlab.validation import InvalidArgumentError

X0 = torch.zeros(3, 2)


def _refused(name: str, start: str):
    return pytest.raises(InvalidArgumentError, match="^" + re.escape(f"{name}: {start}"))


def _run(kernel=None, x0=X0, n_steps=8, **options):
    options.setdefault("progress", False)
    return sample(kernel or MALA(0.1), gaussian_energy, x0, n_steps, **options)


# ----- kernel settings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: Langevin(step_size=v), "step_size"),
        (lambda v: MALA(step_size=v), "step_size"),
        (lambda v: HMC(step_size=v), "step_size"),
        (lambda v: HMC(0.1, mass=v), "mass"),
        (lambda v: MetropolisHastings(scale=v), "scale"),
        (lambda v: SGLD(a=v), "a"),
        (lambda v: SimulatedAnnealing(MALA(0.1), t0=v), "t0"),
    ],
)
@pytest.mark.parametrize("value", [True, "0.1", 0.0, float("inf")])
def test_step_sizes_must_be_positive_numbers(make, name, value):
    with _refused(name, "expected a positive number"):
        make(value)


def test_numpy_step_sizes_are_numbers():
    assert Langevin(step_size=np.float32(0.25)).step_size == pytest.approx(0.25)


@pytest.mark.parametrize(
    "make, name, start",
    [
        (lambda: Langevin(0.1, noise_scale="a"), "noise_scale", "expected a non-negative number"),
        (lambda: Langevin(0.1, noise_scale=True), "noise_scale", "expected a non-negative number"),
        (lambda: MALA(0.1, adapt="no"), "adapt", "expected True or False"),
        (lambda: HMC(0.1, adapt=1), "adapt", "expected True or False"),
        (lambda: HMC(0.1, jitter="a"), "jitter", "expected a number in [0, 1)"),
        (lambda: HMC(0.1, jitter=1.0), "jitter", "expected a number in [0, 1)"),
        (lambda: MALA(0.1, target_accept=True), "target_accept", "expected a number in (0, 1)"),
        (lambda: SGLD(0.1, gamma="0.6"), "gamma", "expected a number in (0.5, 1]"),
        (lambda: SGLD(0.1, grad_fn=3), "grad_fn", "expected a callable"),
        (lambda: Gibbs(scan="diagonal"), "scan", "expected one of"),
        (lambda: MetropolisHastings("bogus"), "proposal", "expected one of gaussian"),
        (lambda: MetropolisHastings(3), "proposal", "expected one of gaussian"),
    ],
)
def test_kernel_settings_are_checked_by_name(make, name, start):
    with _refused(name, start):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda v: Gibbs(spin_values=v),
        lambda v: MetropolisHastings("flip", spin_values=v),
        lambda v: DiscreteLangevin(spin_values=v),
    ],
)
@pytest.mark.parametrize("value", [5, (0, 2), (False, True), "01"])
def test_spin_values_are_one_of_the_two_pairs(make, value):
    with _refused("spin_values", "expected (0.0, 1.0) or (-1.0, 1.0)"):
        make(value)


def test_spin_values_given_as_a_list_are_kept_as_a_tuple():
    assert Gibbs(spin_values=[-1, 1]).spin_values == (-1.0, 1.0)


@pytest.mark.parametrize("value", [2.5, True, 0, "4"])
def test_parallel_tempering_needs_a_whole_number_of_temperatures(value):
    with _refused("n_temps", "expected a positive integer"):
        ParallelTempering(MALA(0.1), n_temps=value)


@pytest.mark.parametrize("wrapper", [ParallelTempering, SimulatedAnnealing])
@pytest.mark.parametrize("kernel", ["mala", MALA, None])
def test_wrappers_need_a_kernel_when_built(wrapper, kernel):
    with _refused("kernel", "expected an ebmlab sampler kernel"):
        wrapper(kernel)


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_anneal_needs_a_positive_number_of_steps(value):
    annealer = SimulatedAnnealing(MetropolisHastings(), schedule=[1.0, 0.5])
    with _refused("n_steps", "expected a positive integer"):
        annealer.anneal(X0, gaussian_energy, n_steps=value)


# ----- the runner ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, name, start",
    [
        ({"n_steps": True}, "n_steps", "expected a positive integer"),
        ({"n_steps": 2.0}, "n_steps", "expected a positive integer"),
        ({"burn_in": True}, "burn_in", "expected a non-negative integer"),
        ({"burn_in": -1}, "burn_in", "expected a non-negative integer"),
        ({"thin": True}, "thin", "expected a positive integer"),
        ({"thin": 1.5}, "thin", "expected a positive integer"),
    ],
)
def test_runner_counts_are_integers_not_bools(options, name, start):
    with _refused(name, start):
        _run(**options)


@pytest.mark.parametrize("seed", [2.5, True, "a", np.random.default_rng(0)])
def test_runner_seed_must_be_an_integer_or_a_generator(seed):
    with _refused("seed", "expected a torch.Generator, an integer seed or None"):
        _run(seed=seed)


@pytest.mark.parametrize("generator", [2.5, True, np.random.default_rng(0)])
def test_runner_generator_must_be_a_generator_or_a_seed(generator):
    with _refused("generator", "expected a torch.Generator, an integer seed or None"):
        _run(generator=generator)


def test_an_integer_generator_is_a_seed():
    a = _run(generator=3).samples
    b = _run(generator=torch.Generator().manual_seed(3)).samples
    assert torch.equal(a, b)


def test_runner_refuses_a_kernel_of_another_type():
    with _refused("kernel", "expected an ebmlab sampler kernel"):
        sample("mala", gaussian_energy, X0, 5, progress=False)


def test_a_non_differentiable_energy_is_named():
    def through_numpy(x):
        return torch.from_numpy((x.detach().numpy() ** 2).sum(-1))

    with pytest.raises(TypeError, match=r"^energy_fn: the energy must be differentiable"):
        sample(MALA(0.1), through_numpy, X0, 3, progress=False)


def test_too_few_draws_for_the_diagnostics_warn_and_skip_them():
    with pytest.warns(UserWarning, match=r"^sample: ESS and R-hat need at least 4 kept draws"):
        result = _run(n_steps=3)
    assert torch.isnan(result.ess).all() and torch.isnan(result.rhat).all()
    result = _run(n_steps=3, diagnostics=False)  # no warning when they are not asked for
    assert result.samples.shape == (3, 3, 2)
