"""Per-example likelihoods and bounds: chunking, the DBM's mean-field and importance-weighted
bounds against exact log p(v) by enumeration."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_models import all_binary, random_dbm

from ebmlab.estimators import (
    dequantized_log_likelihoods,
    exact_log_likelihoods,
    importance_log_p,
    per_example,
    variational_bounds,
)


class RecordingModel:
    """Returns row sums and records the chunk sizes it was called with."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return x.sum(-1)

    def discrete_log_likelihood_bound(self, x, generator, n_samples):
        self.sizes.append(x.shape[0])
        return x.sum(-1) + n_samples + torch.rand(x.shape[0], generator=generator)


def test_chunked_likelihoods_equal_one_pass():
    x = torch.arange(23 * 3, dtype=torch.float64).reshape(23, 3)
    model = RecordingModel()
    torch.testing.assert_close(exact_log_likelihoods(model, x, chunk=5), x.sum(-1))
    assert model.sizes == [5, 5, 5, 5, 3]
    model.sizes.clear()
    bound = dequantized_log_likelihoods(model, x, torch.Generator().manual_seed(0), 4, chunk=10)
    assert model.sizes == [10, 10, 3]
    noise = torch.rand(23, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bound, x.sum(-1) + 4 + noise.double())
    with pytest.raises(ValueError, match="chunk"):
        per_example(model.log_prob, x, chunk=0)


def test_variational_bounds_are_the_mean_field_bound_below_exact():
    dbm = random_dbm([5, 3, 2], scale=1.0, seed=2)
    v = all_binary(5)
    log_z = dbm.log_z()
    bounds = variational_bounds(dbm, v, log_z, n_iters=100, chunk=7)
    with torch.no_grad():
        torch.testing.assert_close(bounds, dbm.variational_bound(v, log_z, n_iters=100))
        exact = -dbm.free_energy(v) - log_z
    assert (bounds <= exact + 1e-9).all()


def test_importance_bound_brackets_and_converges():
    dbm = random_dbm([5, 3, 2], scale=1.0, seed=2)
    v = all_binary(5)
    log_z = dbm.log_z()
    with torch.no_grad():
        exact = -dbm.free_energy(v) - log_z
        mf = dbm.variational_bound(v, log_z, n_iters=100, tol=1e-10)
    g = torch.Generator().manual_seed(0)
    one = torch.stack([importance_log_p(dbm, v, log_z, 1, g) for _ in range(400)])
    # E[log w] with one sample: at least the mean-field bound (the odd layer is exact)
    se = one.std(0) / math.sqrt(one.shape[0])
    assert (one.mean(0) >= mf - 5 * se - 1e-9).all()
    many = importance_log_p(dbm, v, log_z, 4000, g)
    assert (many <= exact + 0.02).all() and (many >= exact - 0.05).all()
    with pytest.raises(ValueError, match="n_samples"):
        importance_log_p(dbm, v, log_z, 0, g)
