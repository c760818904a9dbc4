"""Gaussian-Bernoulli RBM: real-valued visible units, binary hidden units.

The parametrization of Cho, Ilin & Raiko, "Improved learning of Gaussian-Bernoulli restricted
Boltzmann machines" (ICANN 2011), with sigma_i the standard deviation of visible unit i:

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - sum_ij (v_i / sigma_i^2) W_ij h_j

    p(h_j = 1 | v) = sigmoid(c_j + sum_i W_ij v_i / sigma_i^2)
    p(v | h)       = N(b + W h, diag(sigma^2))

Summing h out gives F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v /
sigma^2)^T W_j); integrating v out (complete the square in v, m = W h) gives

    F_h(h) = -c^T h - sum_i [((b_i + m_i)^2 - b_i^2) / (2 sigma_i^2) + log sqrt(2 pi) sigma_i]

so log Z = logsumexp_h(-F_h(h)) is exact by enumeration of h for small hidden layers. The model
is always normalizable: for each h the density in v is a Gaussian.

The variances are either unit (``learn_sigma=False``: the usual choice on standardized data,
Hinton's practical guide section 13.2) or learned through ``log_sigma``, which keeps sigma
positive; ``min_sigma`` floors sigma because the gradient noise of W grows like 1/sigma and a pixel
that is constant in the data (MNIST's border) would otherwise drive sigma to 0 and the weights to
infinity.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..samplers import bernoulli_draw as bernoulli
from ..validation import Boolean, Integral, Real, as_tensor, check_nonempty, validate
from .base import GibbsSampled, Model, init_bipartite


class GaussianBernoulliRBM(GibbsSampled, Model):
    """RBM with ``n_visible`` Gaussian visible units and ``n_hidden`` binary hidden units.

    Args:
        n_visible: number of visible units D.
        n_hidden: number of hidden units H.
        learn_sigma: learn one standard deviation per visible unit (else all are 1).
        min_sigma: floor on each sigma (data units), see the module docstring.
        init_std: standard deviation of the initial weights.
        seed: seed for the initial weights.
    """

    likelihood_kind = "ais"

    @validate(
        n_visible=Integral(1),
        n_hidden=Integral(1),
        learn_sigma=Boolean(),
        min_sigma=Real(0, closed="neither"),
        init_std=Real(0),
        seed=Integral() | None,
    )
    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        learn_sigma: bool = True,
        min_sigma: float = 0.05,
        init_std: float = 0.01,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        init_bipartite(self, n_visible, n_hidden, init_std, seed)
        self.learn_sigma = learn_sigma
        self.min_log_sigma = math.log(min_sigma)
        if learn_sigma:
            self.log_sigma = nn.Parameter(torch.zeros(n_visible))
        else:
            self.register_buffer("log_sigma", torch.zeros(n_visible))

    # ----- checks and variances -----------------------------------------------------------------
    def check_visible(self, v: torch.Tensor, name: str = "v") -> torch.Tensor:
        """Validate a batch of visible vectors: shape (batch, n_visible), finite."""
        return as_tensor(
            v, name, dim=2, n_features=self.n_visible, device=self.W.device, dtype=self.W.dtype
        )

    def sigma_log(self) -> torch.Tensor:
        """log sigma after the floor (the clamp stops the gradient below the floor on purpose)."""
        if not self.learn_sigma:
            return self.log_sigma
        return self.log_sigma.clamp(min=self.min_log_sigma)

    def sigma(self) -> torch.Tensor:
        return self.sigma_log().exp()

    def precision(self) -> torch.Tensor:
        """1 / sigma^2, shape (n_visible,)."""
        return torch.exp(-2.0 * self.sigma_log())

    @torch.no_grad()
    def init_visible_from_data(self, x: torch.Tensor) -> None:
        """b = data mean and (if learned) sigma = data std, floored: the visible units alone then
        match the data marginals (Hinton's guide, section 8). ``x``: at least one row, two when
        sigma is learned."""
        x = check_nonempty(self.check_visible(x, "x"), "x", 2 if self.learn_sigma else 1)
        self.b.copy_(x.mean(0))
        if self.learn_sigma:
            self.log_sigma.copy_(x.std(0).clamp(min=math.exp(self.min_log_sigma)).log())

    # ----- energies -----------------------------------------------------------------------------
    def _quadratic(self, v: torch.Tensor) -> torch.Tensor:
        return ((v - self.b).square() * (0.5 * self.precision())).sum(-1)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h), shape (batch,)."""
        return self._quadratic(v) - h @ self.c - (((v * self.precision()) @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v/sigma^2)^T W_j)."""
        return self._quadratic(v) - F.softplus(self.hidden_logits(v)).sum(-1)

    def free_energy_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """F_h(h) = -log integral exp(-E(v, h)) dv (see the module docstring), shape (batch,)."""
        mean = self.mean_v_given_h(h)
        half_precision = 0.5 * self.precision()
        gain = ((mean.square() - self.b.square()) * half_precision).sum(-1)
        log_norm = (self.sigma_log() + 0.5 * math.log(2 * math.pi)).sum()
        return -(h @ self.c) - gain - log_norm

    # ----- conditionals -------------------------------------------------------------------------
    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.c, v * self.precision(), self.W)

    def p_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v), shape (batch, n_hidden)."""
        return torch.sigmoid(self.hidden_logits(v))

    def mean_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """E[v | h] = b + W h, shape (batch, n_visible)."""
        return torch.addmm(self.b, h, self.W.T)

    @torch.no_grad()
    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli(self.p_h_given_v(v), generator)

    @torch.no_grad()
    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.mean_v_given_h(h)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.sigma() * noise

    @torch.no_grad()
    def gibbs_vhv(
        self, v: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs sweep v -> h -> v; returns (v', h). Only ``beta = 1`` is supported."""
        if beta != 1.0:
            raise ValueError("beta: tempered Gibbs is not defined for GaussianBernoulliRBM")
        h = self.sample_h(v, generator)
        return self.sample_v(h, generator), h

    # ----- generation (``GibbsSampled.sample``): block-Gibbs chains over the visible rows -------
    def start_chains(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """v ~ N(b, sigma^2), the model with the weights switched off."""
        noise = torch.randn(
            (n, self.n_visible), generator=generator, device=self.W.device, dtype=self.W.dtype
        )
        return self.b + self.sigma() * noise

    def chains_output(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The last sweep's h ~ p(h | v), then E[v | h]."""
        return self.mean_v_given_h(self.sample_h(state, generator))

    # ----- scores -------------------------------------------------------------------------------
    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v): the hidden representation of ``v``."""
        return self.p_h_given_v(self.check_visible(v))

    @torch.no_grad()
    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Squared error of the mean-field reconstruction E[v | h = p(h | v)], per example."""
        v = self.check_visible(v)
        return (self.mean_v_given_h(self.p_h_given_v(v)) - v).square().sum(-1)
