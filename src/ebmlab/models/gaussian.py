"""Diagonal Gaussian: the simplest normalized energy model, a baseline and a test bed.

E(x) = 1/2 sum_i ((x_i - mu_i) / sigma_i)^2, log Z = sum_i log sigma_i + D/2 log(2 pi).
Because log Z is known in closed form, its maximum-likelihood fit is exact and deterministic,
which the training-loop tests (resume, data parallelism) rely on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import as_tensor
from .base import Model


class DiagonalGaussian(Model):
    """N(mu, diag(sigma^2)) over ``dim`` variables, parametrized by ``mu`` and ``log_sigma``."""

    likelihood_kind = "exact"

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim: expected a positive integer, got {dim}")
        self.dim = dim
        self.mu = nn.Parameter(torch.zeros(dim))
        self.log_sigma = nn.Parameter(torch.zeros(dim))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mu) * torch.exp(-self.log_sigma)
        return 0.5 * (z * z).sum(-1)

    def log_partition(self) -> torch.Tensor:
        return self.log_sigma.sum() + 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized log density in nats, shape (batch,)."""
        x = as_tensor(x, "x", dim=2, n_features=self.dim, device=self.mu.device,
                      dtype=self.mu.dtype)
        return -self.energy(x) - self.log_partition()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(n, self.dim, generator=generator, device=self.mu.device)
        return self.mu + noise * torch.exp(self.log_sigma)
