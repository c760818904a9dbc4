"""Log-likelihoods in nats: -F(x) - log Z against exact per-example values, the combined standard
error, and the method tags."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_models import random_rbm

from ebmlab.estimators import (
    Estimate,
    LogLikelihood,
    ais,
    check_method,
    exact_log_z,
    exact_sample,
    log_likelihood,
)
from ebmlab.models.rbm import BernoulliRBM


def test_log_likelihood_matches_exact_and_combines_errors():
    rbm = random_rbm(5, 4, sigma=1.0, seed=2)
    x = exact_sample(rbm, 50, torch.Generator().manual_seed(1))
    log_z = exact_log_z(rbm)
    m = BernoulliRBM(5, 4).double()
    m.load_state_dict(rbm.state_dict())
    with torch.no_grad():
        per_example = -m.free_energy(x.double()) - log_z
    result = log_likelihood(rbm, x, log_z, log_z_se=0.3)
    assert result.mean == pytest.approx(float(per_example.mean()), abs=1e-5)
    var = float(per_example.var(correction=1))
    assert result.se == pytest.approx(math.sqrt(var / 50 + 0.09), rel=1e-5)
    assert result.method == "ais"  # a log Z with a standard error came from an estimate
    assert log_likelihood(rbm, x, log_z).method == "exact"
    aisr = ais(rbm, n_betas=200, n_runs=100, seed=0)
    from_ais = log_likelihood(rbm, x, aisr)
    assert from_ais.log_z == aisr.log_z and from_ais.log_z_se == aisr.log_z_se
    assert from_ais.method == "ais"
    with pytest.raises(ValueError, match="log_z"):
        log_likelihood(rbm, x, float("nan"))
    with pytest.raises(ValueError, match="x"):
        log_likelihood(rbm, x[0], log_z)
    with pytest.raises(ValueError, match="method"):
        log_likelihood(rbm, x, log_z, method="guess")


def test_batches_do_not_change_the_result():
    rbm = random_rbm(6, 3, sigma=1.0, seed=4)
    x = exact_sample(rbm, 37, torch.Generator().manual_seed(2))
    whole = log_likelihood(rbm, x, 3.0)
    pieces = log_likelihood(rbm, x, 3.0, batch_size=5)
    assert pieces.mean == pytest.approx(whole.mean, abs=1e-6)
    assert pieces.se == pytest.approx(whole.se, rel=1e-5)


def test_estimate_from_values_and_its_summary():
    values = torch.tensor([-3.0, -1.0, -2.0, -6.0])
    est = Estimate.from_values(values, "iwae-500", log_z_se=0.5, k=500)
    assert est.mean == pytest.approx(-3.0) and est.n == 4
    # var = (0 + 4 + 1 + 9) / 3
    assert est.se == pytest.approx(math.sqrt(14 / 3 / 4 + 0.25))
    assert est.summary() == {
        "test_log_likelihood": -3.0,
        "test_log_likelihood_se": est.se,
        "log_likelihood_method": "iwae-500",
        "k": 500,
    }
    assert Estimate.from_values(torch.tensor([2.0]), "exact").se == 0.0
    with pytest.raises(ValueError, match="values"):
        Estimate.from_values(torch.tensor([]), "exact")


def test_method_tags():
    for method in ("exact", "ais", "ais-lower-bound", "elbo", "dequantized", "iwae-5000"):
        assert check_method(method) == method
    for method in ("iwae", "iwae-0", "iwae-k", "reverse", ""):
        with pytest.raises(ValueError, match="method"):
            check_method(method)
    with pytest.raises(ValueError, match="se"):
        Estimate(0.0, -1.0, "exact", 1)
    ll = LogLikelihood(-10.0, 0.2, 5, 3.0, 0.1, "ais")
    assert ll.estimate() == Estimate(-10.0, 0.2, "ais", 5, {"log_z": 3.0, "log_z_se": 0.1})
