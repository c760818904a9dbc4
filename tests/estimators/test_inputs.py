"""What the estimators are given is checked once, at entry: data rows (binary for binary models,
finite, of the model's width, 2-D, non-empty) and the model's parameters (finite), with errors
that name the argument. Valid input gives the same numbers as before the checks."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_models import TinyBoltzmann, all_binary, random_dbm, random_grbm, random_rbm

import ebmlab.partition
from ebmlab import data
from ebmlab.estimators import (
    ais,
    dequantized_log_likelihoods,
    exact_log_likelihoods,
    exact_log_probs,
    exact_log_z,
    exact_sample,
    importance_log_p,
    log_likelihood,
    per_example,
    reverse_ais,
    variational_bounds,
)
from ebmlab.estimators.grid import energies, grid_log_likelihood
from ebmlab.models.baselines import IndependentBernoulli
from ebmlab.models.ising import Ising


def _binary_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def _bad_rows(x: torch.Tensor) -> dict[str, tuple[torch.Tensor, str]]:
    """Each wrong version of the binary rows ``x`` and the words its error must contain."""
    return {
        "grey levels": (x * 0.5, "binary"),
        "scaled": (x * 5, "binary"),
        "nan": (x * float("nan"), "NaN"),
        "width": (x[:, :-1], f"{x.shape[1]} features"),
        "1-D": (x[0], "shape"),
        "empty": (x[:0], "at least one row"),
    }


# ----- data rows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", list(_bad_rows(torch.zeros(1, 2))))
@pytest.mark.parametrize(
    "score", [log_likelihood, ebmlab.partition.log_likelihood], ids=["estimators", "partition"]
)
def test_log_likelihood_refuses_what_a_bernoulli_rbm_cannot_score(score, bad):
    rbm = random_rbm(6, 4, sigma=0.5, seed=1)
    x, words = _bad_rows(_binary_rows(20, 6))[bad]
    with pytest.raises(ValueError, match=rf"^x: .*{words}"):
        score(rbm, x, exact_log_z(rbm))


def test_log_likelihood_of_valid_rows_is_unchanged_by_the_checks():
    """float64, integer and bool copies of the same binary rows score exactly as the float32 rows
    do, and the score is the mean of -F(x) - log Z."""
    rbm = random_rbm(6, 4, sigma=0.5, seed=1)
    x = _binary_rows(20, 6)
    log_z = exact_log_z(rbm)
    with torch.no_grad():
        expected = float((-rbm.free_energy(x)).double().mean()) - log_z
    for rows in (x, x.double(), x.long(), x.bool(), x.numpy()):
        assert log_likelihood(rbm, rows, log_z).mean == pytest.approx(expected, abs=1e-9)


def test_log_likelihood_checks_other_models_by_their_units():
    # a Gaussian RBM scores real-valued rows (finite, of its width) ...
    grbm = random_grbm(3, 2, scale=0.5, seed=1)
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = log_likelihood(grbm, x, exact_log_z(grbm))
    with torch.no_grad():
        expected = float((-grbm.free_energy(x)).mean()) - exact_log_z(grbm)
    assert result.mean == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="x: contains 30 NaN"):
        log_likelihood(grbm, x * float("nan"), 0.0)
    with pytest.raises(ValueError, match="x: expected 3 features"):
        log_likelihood(grbm, x[:, :2], 0.0)
    # ... an Ising model wants spins -1/+1, not 0/1
    ising = Ising(2, coupling=0.3)
    spins = 2 * _binary_rows(8, 4) - 1
    log_likelihood(ising, spins, exact_log_z(ising))
    with pytest.raises(ValueError, match=r"x: expected binary states in \{-1, 1\}"):
        log_likelihood(ising, (spins + 1) / 2, exact_log_z(ising))
    with pytest.raises(ValueError, match="x: expected 4 features"):
        log_likelihood(ising, spins[:, :3], 0.0)


def test_bounds_refuse_empty_non_finite_and_mis_sized_rows():
    model = IndependentBernoulli(6)
    x = _binary_rows(9, 6)
    torch.testing.assert_close(exact_log_likelihoods(model, x), model.log_prob(x))
    for bound in (
        lambda rows: exact_log_likelihoods(model, rows),
        lambda rows: dequantized_log_likelihoods(model, rows, torch.Generator()),
    ):
        with pytest.raises(ValueError, match="x: expected at least one row"):
            bound(x[:0])
        with pytest.raises(ValueError, match="x: contains"):
            bound(x * float("inf"))
        with pytest.raises(ValueError, match="x: expected 6 features"):
            bound(x[:, :4])
    with pytest.raises(ValueError, match="x: expected at least one row"):
        per_example(model.log_prob, x[:0])


def test_dbm_bounds_refuse_grey_levels_by_name():
    dbm = random_dbm([5, 3, 2], seed=2)
    v = all_binary(5)
    log_z = exact_log_z(dbm)
    assert variational_bounds(dbm, v, log_z).shape == (32,)
    for bad, words in ((v * 0.5, "binary"), (v[:0], "at least one row"), (v[:, :4], "5 features")):
        with pytest.raises(ValueError, match=f"x: .*{words}"):
            variational_bounds(dbm, bad, log_z)
        with pytest.raises(ValueError, match=f"v: .*{words}"):
            importance_log_p(dbm, bad, log_z, 2, torch.Generator().manual_seed(0))


def test_grid_log_likelihood_checks_the_test_points():
    class Gaussian2D(torch.nn.Module):
        def energy(self, x):
            return 0.5 * (x * x).sum(-1)

    x = data.toy2d("8gaussians", 50, seed=0)
    scores = grid_log_likelihood(Gaussian2D(), "8gaussians", x, grid_size=36)
    assert math.isfinite(scores["test_log_likelihood"])
    for bad, words in (
        (torch.cat([x, x[:, :1]], 1), "2 features"),
        (x * float("nan"), "NaN"),
        (x[:0], "at least one row"),
        (x[0], "shape"),
    ):
        with pytest.raises(ValueError, match=f"x_test: .*{words}"):
            grid_log_likelihood(Gaussian2D(), "8gaussians", bad, grid_size=36)
    with pytest.raises(ValueError, match="x: expected at least one row"):
        energies(Gaussian2D(), x[:0])


# ----- AIS: base-rate data and reverse-AIS starting states ---------------------------------------
def test_ais_base_rate_data_is_binary_or_probabilities_of_the_visible_width():
    """Probabilities are a valid base rate (a DBN fits its top RBM's base rate to mean-field
    activities): grey levels give the same weights as the explicit logit of their smoothed
    mean; anything outside [0, 1], non-finite, mis-sized or empty is refused by name."""
    rbm = random_rbm(6, 4, sigma=0.5, seed=1)
    grey = torch.rand(30, 6, generator=torch.Generator().manual_seed(3))
    p = (grey.double().sum(0) + 5.0) / (30 + 5.0)  # one batch of 100: pseudocount 5
    forward = ais(rbm, n_betas=20, n_runs=10, seed=0, data=grey, ess_warn_fraction=0.0)
    explicit = ais(
        rbm, n_betas=20, n_runs=10, seed=0, base_bias=torch.log(p / (1 - p)), ess_warn_fraction=0
    )
    torch.testing.assert_close(forward.log_weights, explicit.log_weights)
    for bad, words in (
        (grey * 5, r"values in \[0, 1\]"),
        (grey * float("nan"), "NaN"),
        (grey[:, :5], "6 features"),
        (grey[:0], "at least one row"),
        (grey[0], "shape"),
    ):
        with pytest.raises(ValueError, match=f"data: .*{words}"):
            ais(rbm, n_betas=10, n_runs=4, data=bad)
        with pytest.raises(ValueError, match=f"data: .*{words}"):
            reverse_ais(rbm, _binary_rows(4, 6), n_betas=10, data=bad)


@pytest.mark.parametrize("kind", ["rbm", "grbm", "dbm", "fully-visible"])
def test_reverse_ais_starting_states_are_checked_against_the_model(kind):
    if kind == "rbm":
        model, good = random_rbm(6, 4, sigma=0.5, seed=1), _binary_rows(5, 6)
        bad = {"binary": good * 0.5, "6 features": good[:, :5]}
    elif kind == "grbm":
        model = random_grbm(3, 2, scale=0.5, seed=1)
        good = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        bad = {"NaN": good * float("nan"), "3 features": good[:, :2]}
    elif kind == "dbm":
        model, good = random_dbm([5, 3, 2], seed=2), _binary_rows(5, 10)
        bad = {"binary": good * 0.5, "10 features": good[:, :9]}
    else:
        model, good = TinyBoltzmann(5, seed=1), _binary_rows(5, 5)
        bad = {"binary": good * 3 - 1, "5 features": good[:, :4], "NaN": good * float("nan")}
    bad["at least one row"] = good[:0]
    result = reverse_ais(model, good, n_betas=10, seed=0, ess_warn_fraction=0.0)
    assert result.n_runs == 5 and torch.isfinite(result.log_weights).all()
    for words, states in bad.items():
        with pytest.raises(ValueError, match=f"v_init: .*{words}"):
            reverse_ais(model, states, n_betas=10, seed=0)


def test_fully_visible_reverse_ais_takes_its_spins_and_its_dtype():
    """Before the check, 0/1 states of a -1/+1 model annealed silently; float64 states of a
    float32 model now anneal exactly as their float32 copies."""
    ising = Ising(2, coupling=0.3)
    spins = 2 * _binary_rows(6, 4) - 1
    with pytest.raises(ValueError, match=r"v_init: expected binary states in \{-1, 1\}"):
        reverse_ais(ising, (spins + 1) / 2, n_betas=10, seed=0)
    bm = TinyBoltzmann(5, seed=1)
    x = _binary_rows(6, 5)
    as_float = reverse_ais(bm, x, n_betas=30, seed=0, ess_warn_fraction=0.0)
    as_double = reverse_ais(bm, x.double(), n_betas=30, seed=0, ess_warn_fraction=0.0)
    torch.testing.assert_close(as_double.log_weights, as_float.log_weights, rtol=0, atol=0)


# ----- non-finite parameters ---------------------------------------------------------------------
def _spoiled(model: torch.nn.Module, name: str, value: float) -> torch.nn.Module:
    with torch.no_grad():
        getattr(model, name).view(-1)[0] = value
    return model


@pytest.mark.parametrize(
    "estimate",
    [
        exact_log_z,
        exact_log_probs,
        lambda m: exact_sample(m, 3, torch.Generator().manual_seed(0)),
        lambda m: ais(m, n_betas=10, n_runs=4, seed=0),
        ebmlab.partition.exact_log_z,
    ],
    ids=["exact_log_z", "exact_log_probs", "exact_sample", "ais", "partition.exact_log_z"],
)
@pytest.mark.parametrize("name, value", [("W", float("nan")), ("b", float("inf"))])
def test_non_finite_parameters_are_named(estimate, name, value):
    rbm = _spoiled(random_rbm(5, 3, sigma=0.5, seed=1), name, value)
    with pytest.raises(ValueError, match=rf"model: expected finite parameters.* {name} \(1 of"):
        estimate(rbm)


def test_non_finite_parameters_of_other_models_are_named():
    bm = _spoiled(TinyBoltzmann(5, seed=1), "W", float("nan"))
    with pytest.raises(ValueError, match=r"model: .*W \(1 of 25 values\)"):
        exact_log_z(bm)
    dbm = random_dbm([3, 2, 2], seed=2)
    with torch.no_grad():
        dbm.biases[2][0] = float("nan")
    with pytest.raises(ValueError, match=r"model: .*biases\.2 \(1 of 2 values\)"):
        exact_log_z(dbm)
    with pytest.raises(ValueError, match=r"model: .*biases\.2"):
        exact_sample(dbm, 2)
