"""Estimator entry points refuse what they cannot use, by name and before any work: models AIS
has no path for, log Z arguments that do not fit together, enumeration ranges and seeds; and
a single-run AIS result is scored with a warning, not blamed on an argument nobody passed."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from estimator_models import random_rbm

from ebmlab.estimators import (
    AISWarning,
    ais,
    enumerate_states,
    exact_log_z,
    exact_sample,
    log_likelihood,
    pseudo_log_likelihood,
    reverse_ais,
)
from ebmlab.models import VAE
from ebmlab.validation import InvalidArgumentError


def _refused(name: str, start: str, error: type[Exception] = InvalidArgumentError):
    return pytest.raises(error, match="^" + re.escape(f"{name}: {start}"))


@pytest.fixture(scope="module")
def rbm():
    return random_rbm(4, 3, sigma=0.5, seed=7)


@pytest.fixture(scope="module")
def rows():
    return (torch.rand(6, 4, generator=torch.Generator().manual_seed(5)) < 0.5).float()


@pytest.fixture(scope="module")
def ais_result(rbm):
    return ais(rbm, n_betas=30, n_runs=8, seed=0, progress=False, ess_warn_fraction=0.0)


# ----- AIS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["rbm", None, 3])
def test_ais_names_a_model_it_has_no_path_for(model):
    with _refused("model", "AIS needs a Bernoulli or Gaussian-Bernoulli RBM", TypeError):
        ais(model, n_betas=10, n_runs=2, progress=False)
    with _refused("model", "AIS needs a Bernoulli or Gaussian-Bernoulli RBM", TypeError):
        reverse_ais(model, torch.zeros(2, 4), n_betas=10, progress=False)


@pytest.mark.parametrize("generator", [2.5, True, np.random.default_rng(0)])
def test_ais_generator_is_a_generator_or_a_seed(rbm, generator):
    with _refused("generator", "expected a torch.Generator, an integer seed or None"):
        ais(rbm, n_betas=10, n_runs=2, generator=generator, progress=False)


def test_a_single_run_log_likelihood_warns_instead_of_blaming_log_z_se(rbm, rows):
    single = ais(rbm, n_betas=20, n_runs=1, seed=0, progress=False)
    assert math.isnan(single.log_z_se)
    with pytest.warns(AISWarning, match=r"^log_z: the AISResult has no standard error"):
        result = log_likelihood(rbm, rows, single)
    assert math.isnan(result.log_z_se) and result.method == "ais"
    assert math.isfinite(result.se) and result.se > 0  # the sampling error of the rows
    assert result.estimate().se == result.se


# ----- log_likelihood ----------------------------------------------------------------------------
def test_log_likelihood_points_a_model_without_an_energy_elsewhere(rows):
    vae = VAE(4, hidden=(4,), latent=2)
    with _refused(
        "model", "log_likelihood needs a model with free_energy(x) or energy(x)", TypeError
    ):
        log_likelihood(vae, rows, 0.0)


@pytest.mark.parametrize("log_z", [None, "1.0", float("nan"), float("inf"), True])
def test_log_z_must_be_a_finite_number_or_an_ais_result(rbm, rows, log_z):
    with _refused("log_z", "expected a finite number or an AISResult"):
        log_likelihood(rbm, rows, log_z)


def test_a_one_element_tensor_log_z_is_a_number(rbm, rows):
    log_z = exact_log_z(rbm)
    tensor = log_likelihood(rbm, rows, torch.tensor(log_z))
    assert tensor.mean == pytest.approx(log_likelihood(rbm, rows, log_z).mean)


def test_an_explicit_log_z_se_with_an_ais_result_is_refused(rbm, rows, ais_result):
    with _refused("log_z_se", "expected None when log_z is an AISResult"):
        log_likelihood(rbm, rows, ais_result, log_z_se=5.0)


@pytest.mark.parametrize("log_z_se", [-1.0, float("nan"), "0.1", True])
def test_log_z_se_is_a_non_negative_number(rbm, rows, log_z_se):
    with _refused("log_z_se", "expected a non-negative number"):
        log_likelihood(rbm, rows, 1.0, log_z_se)


def test_method_exact_with_an_estimated_log_z_is_refused(rbm, rows, ais_result):
    with _refused("method", "expected ais for a log Z estimated by AIS"):
        log_likelihood(rbm, rows, ais_result, method="exact")
    with _refused("method", "expected ais for a log Z estimated by AIS"):
        log_likelihood(rbm, rows, 1.0, 0.3, method="exact")


@pytest.mark.parametrize("method", ["elbo", "iwae-5", "dequantized", "ais-lower-bound"])
def test_method_names_how_log_z_was_obtained_not_a_bound(rbm, rows, method):
    with _refused("method", "expected exact or ais"):
        log_likelihood(rbm, rows, exact_log_z(rbm), method=method)


# ----- enumeration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name, start",
    [
        ({"n_units": -1}, "n_units", "expected an integer in [0, 62]"),
        ({"n_units": 2.0}, "n_units", "expected an integer in [0, 62]"),
        ({"n_units": True}, "n_units", "expected an integer in [0, 62]"),
        ({"n_units": 3, "start": -1}, "start", "expected an integer in [0, 2**n_units] = [0, 8]"),
        ({"n_units": 3, "start": 9}, "start", "expected an integer in [0, 2**n_units] = [0, 8]"),
        ({"n_units": 3, "stop": 100}, "stop", "expected an integer in [start, 2**n_units]"),
        (
            {"n_units": 3, "start": 4, "stop": 2},
            "stop",
            "expected an integer in [start, 2**n_units]",
        ),
        (
            {"n_units": 3, "spin_values": (0, 2)},
            "spin_values",
            "expected (0.0, 1.0) or (-1.0, 1.0)",
        ),
        ({"n_units": 3, "spin_values": None}, "spin_values", "expected (0.0, 1.0) or (-1.0, 1.0)"),
    ],
)
def test_enumerate_states_checks_its_range(kwargs, name, start):
    with _refused(name, start):
        enumerate_states(**kwargs)


def test_enumerate_states_in_range():
    assert enumerate_states(3, 2, 8).shape == (6, 3)
    assert enumerate_states(3, 8).shape == (0, 3)  # start == stop: no state
    assert enumerate_states(2, spin_values=[-1, 1]).unique().tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("max_units", [True, 0, 2.5])
def test_exact_log_z_max_units_is_a_positive_integer(rbm, max_units):
    with _refused("max_units", "expected a positive integer"):
        exact_log_z(rbm, max_units=max_units)


# ----- draws ------------------------------------------------------------------------------------
def test_exact_sample_takes_a_seed_and_refuses_other_generators(rbm):
    assert torch.equal(
        exact_sample(rbm, 5, 3), exact_sample(rbm, 5, torch.Generator().manual_seed(3))
    )
    with _refused("generator", "expected a torch.Generator, an integer seed or None"):
        exact_sample(rbm, 5, generator=np.random.default_rng(0))
    with _refused("n", "expected a positive integer"):
        exact_sample(rbm, 0)


def test_pseudo_log_likelihood_takes_a_seed_and_refuses_other_generators(rbm, rows):
    seeded = pseudo_log_likelihood(rbm, rows, n_bits=1, generator=4)
    drawn = pseudo_log_likelihood(rbm, rows, n_bits=1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(seeded, drawn)
    with _refused("generator", "expected a torch.Generator, an integer seed or None"):
        pseudo_log_likelihood(rbm, rows, n_bits=1, generator=1.5)
    with _refused("n_bits", "expected a positive integer"):
        pseudo_log_likelihood(rbm, rows, n_bits=True)
