"""Fully factorized baselines: the floor that every other family is compared against.

Diagonal Gaussian: E(x) = 1/2 sum_i ((x_i - mu_i) / sigma_i)^2,
log Z = sum_i log sigma_i + D/2 log(2 pi). Because log Z is known in closed form, its
maximum-likelihood fit is exact and deterministic, which the training-loop tests (resume, data
parallelism) rely on.

Independent Bernoulli: E(v) = -a^T v, log Z = sum_i softplus(a_i). Its maximum-likelihood fit
is the (smoothed) pixel marginal; it is also the base-rate model that AIS starts from
(Salakhutdinov & Murray 2008).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import (
    Integral,
    as_generator,
    as_tensor,
    check_binary,
    check_in_range,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model


class DiagonalGaussian(Model):
    """N(mu, diag(sigma^2)) over ``dim`` variables, parametrized by ``mu`` and ``log_sigma``."""

    likelihood_kind = "exact"

    @validate(dim=Integral(1))
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mu = nn.Parameter(torch.zeros(dim))
        self.log_sigma = nn.Parameter(torch.zeros(dim))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), shape (batch,). Does not check its input (it runs inside training and
        sampling loops); ``log_prob`` does."""
        z = (x - self.mu) * torch.exp(-self.log_sigma)
        return 0.5 * (z * z).sum(-1)

    def log_partition(self) -> torch.Tensor:
        return self.log_sigma.sum() + 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized log density in nats, shape (batch,)."""
        x = as_tensor(
            x, "x", dim=2, n_features=self.dim, device=self.mu.device, dtype=self.mu.dtype
        )
        return -self.energy(check_nonempty(x, "x")) - self.log_partition()

    @torch.no_grad()
    def sample(self, n: int, generator: int | torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws, shape (n, dim); ``generator``: a torch.Generator or a seed."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.mu.device)
        noise = torch.randn(n, self.dim, generator=generator, device=self.mu.device)
        return self.mu + noise * torch.exp(self.log_sigma)


class IndependentBernoulli(Model):
    """Product of Bernoullis over ``n_visible`` binary units with logits ``a``."""

    likelihood_kind = "exact"

    @validate(n_visible=Integral(1))
    def __init__(self, n_visible: int) -> None:
        super().__init__()
        self.n_visible = n_visible
        self.a = nn.Parameter(torch.zeros(n_visible))

    @torch.no_grad()
    def fit(self, v: torch.Tensor, pseudocount: float = 1.0) -> IndependentBernoulli:
        """Set the logits to the smoothed marginals (count + pseudocount) / (N + 2 pseudocount);
        the pseudocount keeps pixels that are never on from getting a log-probability of -inf."""
        check_in_range(pseudocount, "pseudocount", 0)
        v = check_binary(as_tensor(v, "v", dim=2, n_features=self.n_visible), "v")
        check_nonempty(v, "v")
        p = (v.sum(0) + pseudocount) / (v.shape[0] + 2 * pseudocount)
        self.a.copy_(torch.logit(p).to(self.a))
        return self

    def energy(self, v: torch.Tensor) -> torch.Tensor:
        """E(v) = -a^T v, shape (batch,). Does not check its input (it runs inside training and
        sampling loops); ``log_prob`` does."""
        return -(v @ self.a)

    def log_partition(self) -> torch.Tensor:
        return F.softplus(self.a).sum()

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """Normalized log probability in nats, shape (batch,)."""
        v = as_tensor(
            v, "v", dim=2, n_features=self.n_visible, device=self.a.device, dtype=self.a.dtype
        )
        v = check_nonempty(check_binary(v, "v"), "v")
        return -self.energy(v) - self.log_partition()

    @torch.no_grad()
    def sample(self, n: int, generator: int | torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws, shape (n, n_visible); ``generator``: a torch.Generator or a seed."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.a.device)
        u = torch.rand(n, self.n_visible, generator=generator, device=self.a.device)
        return (u < torch.sigmoid(self.a)).to(self.a.dtype)
