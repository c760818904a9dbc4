"""A grid on which 2-D models are normalized and compared with the toy data, in nats.

A model known up to its normalizer, p_model(x) = exp(-E(x)) / Z, is normalized by the midpoint
rule on an n x n grid of cells: Z ~ sum_cells exp(-E(center)) * cell_area. With the data's exact
density on the same cells (``toy2d_log_density``), KL(p_data || p_model) is a sum over cells, and
a test log-likelihood is mean(-E(x_test)) - log Z.

Default: [-4.5, 4.5]^2 with n = 180 (cells of side 0.05). Every toy set puts less than 1e-4 of
its mass outside that square (8gaussians ~6e-7, pinwheel ~4e-6, the others less), and the noise
scales (std >= 0.08) are larger than a cell, so midpoint sums of the data density are exact to
that accuracy. n a multiple of 18 (with bound 4.5) puts the checkerboard's square edges on cell
edges, so its sum is exact too.

On the grid the curve mixtures are separable, sum_j w_j k(x - c_j0) k(y - c_j1), so their
density on all n^2 cells is one (n x m) @ (m x n) product instead of n^2 m kernel evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..validation import check_positive, check_positive_int
from .toy2d_density import (
    TINY,
    _mixture_log_density_logspace,
    check_toy2d_name,
    mixture_families,
    toy2d_log_density,
)

DEFAULT_GRID_BOUND = 4.5
DEFAULT_GRID_SIZE = 180


@dataclass(frozen=True)
class Grid2D:
    """Cell centers of an n x n grid on [lo, hi]^2.

    ``points[i * n + j] = (xs[j], ys[i])``, so ``values.reshape(n, n)`` is an image whose row i
    is y = ys[i] (increasing). ``log_density`` (float64) is the data's exact log density on the
    points when the grid was built for a toy set, else None.
    """

    points: torch.Tensor
    cell_area: float
    bounds: tuple[float, float]
    n: int
    log_density: torch.Tensor | None = None

    def log_normalizer(self, log_unnormalized: torch.Tensor) -> torch.Tensor:
        """log Z = log sum_cells exp(log_unnormalized) * cell_area (float64 scalar).

        ``log_unnormalized`` holds -E(points) of the model, shape (n * n,).
        """
        values = log_unnormalized.to(torch.float64).flatten()
        return torch.logsumexp(values, 0) + math.log(self.cell_area)

    def kl_from_data(self, log_unnormalized: torch.Tensor) -> torch.Tensor:
        """KL(p_data || p_model) in nats, p_model = exp(log_unnormalized) normalized on the grid.

        Cells where p_data is 0 (outside the checkerboard) contribute 0.
        """
        if self.log_density is None:
            raise ValueError("log_density: build the grid with a toy set name to compare with data")
        values = log_unnormalized.to(torch.float64).flatten()
        log_q = values - self.log_normalizer(values)
        log_p = self.log_density.to(log_q.device)
        support = torch.isfinite(log_p)
        p = torch.exp(log_p[support])
        return (p * (log_p[support] - log_q[support])).sum() * self.cell_area


def toy2d_grid(
    name: str | None = None,
    n: int = DEFAULT_GRID_SIZE,
    bound: float = DEFAULT_GRID_BOUND,
    dtype: torch.dtype = torch.float32,
) -> Grid2D:
    """An n x n grid of cell centers on [-bound, bound]^2 (default 180 x 180 on [-4.5, 4.5]^2).

    With ``name`` (a toy set), the data's exact log density on the points is attached.
    """
    if name is not None:
        check_toy2d_name(name)
    check_positive_int(n, "n")
    check_positive(bound, "bound")
    h = 2 * bound / n
    centers = -bound + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    ys, xs = torch.meshgrid(centers, centers, indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten()], dim=-1)
    log_density = None if name is None else grid_log_density(name, centers)
    return Grid2D(points.to(dtype), h * h, (-float(bound), float(bound)), n, log_density)


def grid_log_density(name: str, centers: torch.Tensor) -> torch.Tensor:
    """Data log density on the grid of cell centers ``centers`` x ``centers`` (flattened, y-major).

    Uses the separable form for mixtures; equal to ``toy2d_log_density`` on the same points.
    """
    families = mixture_families(name)
    if families is None:
        ys, xs = torch.meshgrid(centers, centers, indexing="ij")
        return toy2d_log_density(name, torch.stack([xs.flatten(), ys.flatten()], dim=-1))
    total = torch.zeros(centers.shape[0], centers.shape[0], dtype=torch.float64)
    for f in families:
        kx = f.kernel.density(centers[:, None] - f.centers[:, 0])  # (n, m)
        ky = f.kernel.density(centers[:, None] - f.centers[:, 1])
        total += ky @ (f.log_weights.exp()[:, None] * kx.T)  # [i, j] at (xs[j], ys[i])
    log_p = torch.log(total).flatten()
    tiny = torch.nonzero(total.flatten() < TINY).flatten()
    if tiny.numel():
        i, j = tiny // centers.shape[0], tiny % centers.shape[0]
        points = torch.stack([centers[j], centers[i]], dim=-1)
        log_p[tiny] = _mixture_log_density_logspace(families, points)
    return log_p
