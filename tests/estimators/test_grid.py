"""Grid normalization of 2-D energies: against the closed-form toy densities."""

import pytest
import torch

from ebmlab import data
from ebmlab.estimators.grid import grid_log_likelihood


def test_the_true_density_has_zero_kl_and_unit_normalizer():
    class TrueEnergy(torch.nn.Module):
        def energy(self, x):
            return -data.toy2d_log_density("8gaussians", x.double()).float()

    x_test = data.toy2d("8gaussians", 2000, seed=1)
    scores = grid_log_likelihood(TrueEnergy(), "8gaussians", x_test)
    # the model is the data density: KL vanishes up to the grid's midpoint error, and log Z = 0
    assert abs(scores["kl"]) < 1e-3
    assert abs(scores["log_z_grid"]) < 1e-3
    expected = float(data.toy2d_log_density("8gaussians", x_test.double()).mean())
    assert scores["test_log_likelihood"] == pytest.approx(expected, abs=1e-3)


def test_a_shifted_energy_moves_log_z_and_not_the_likelihood():
    """E + c has the same normalized density: log Z moves by -c, the log-likelihood stays."""

    class Shifted(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c

        def energy(self, x):
            return -data.toy2d_log_density("moons", x.double()).float() + self.c

    x_test = data.toy2d("moons", 1000, seed=2)
    base = grid_log_likelihood(Shifted(0.0), "moons", x_test)
    shifted = grid_log_likelihood(Shifted(3.0), "moons", x_test)
    assert shifted["log_z_grid"] == pytest.approx(base["log_z_grid"] - 3.0, abs=1e-4)
    assert shifted["test_log_likelihood"] == pytest.approx(base["test_log_likelihood"], abs=1e-4)
    assert shifted["kl"] == pytest.approx(base["kl"], abs=1e-4)
