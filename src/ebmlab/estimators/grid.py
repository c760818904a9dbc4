"""Log-likelihoods of 2-D densities normalized on a grid.

For a model with an energy E(x) on the plane (a neural energy, or a flow with E = -log q), the
normalizer is Z = sum_cells exp(-E(c)) * cell_area over a fine grid that covers the data
(``ebmlab.data.toy2d_grid``). With log Z in hand the test log-likelihood is exact up to the grid's
quadrature error, and KL(p_data || p_model) follows from the data density on the same grid.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .. import data
from ..samplers.base import state_spec
from ..stats import mean_and_se
from ..validation import as_tensor, check_nonempty
from .bounds import per_example

#: Cells per side of the normalization grid: 360 x 360 cells of side 0.025 on [-4.5, 4.5]^2 (a
#: multiple of 18, so the checkerboard's edges fall on cell edges).
GRID_SIZE = 360


class HasEnergy(Protocol):
    """Anything with an energy E(x) -> (batch,): a neural energy, a flow (-log q), a test's
    closed-form density."""

    def energy(self, x: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def energies(model: HasEnergy, x: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    """E(x) in chunks of ``chunk`` rows (at least one), without building a graph."""
    return per_example(model.energy, x, chunk)


def grid_log_likelihood(
    model: HasEnergy, name: str, x_test: torch.Tensor, grid_size: int = GRID_SIZE
) -> dict[str, Any]:
    """Normalize exp(-E) on the grid of toy dataset ``name``; the test log-likelihood in nats
    (with its standard error), KL(p_data || p_model) and the grid's log Z. ``x_test``: points of
    the plane, (n, 2) with n >= 1, finite (converted to the model's dtype when it has one)."""
    dtype = state_spec(model).dtype
    x_test = as_tensor(x_test, "x_test", dim=2, n_features=2, dtype=dtype)
    check_nonempty(x_test, "x_test")
    grid = data.toy2d_grid(name, n=grid_size)
    neg_energy = -energies(model, grid.points.to(x_test.device)).double()
    log_z = float(grid.log_normalizer(neg_energy))
    test, test_se = mean_and_se(-energies(model, x_test).double() - log_z)
    return {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "log_likelihood_method": "grid",
        "kl": float(grid.kl_from_data(neg_energy.cpu())),
        "log_z_grid": log_z,
        "grid": f"{grid_size}x{grid_size} on [-4.5, 4.5]^2",
    }
