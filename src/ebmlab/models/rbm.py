"""Restricted Boltzmann machines.

Bernoulli-Bernoulli RBM (Smolensky 1986; Hinton 2002), lecture 002 and lecture 001 part 2:

    E(v, h) = -b^T v - c^T h - v^T W h,   v in {0,1}^D, h in {0,1}^H

Summing the hidden units out gives the free energy (each h_j contributes log(1 + e^{c_j + v^T W_j})):

    F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + (v^T W)_j)

and the conditionals factorize: p(h_j = 1 | v) = sigmoid(c_j + (v^T W)_j),
p(v_i = 1 | h) = sigmoid(b_i + (W h)_i).

Parameters: ``W`` (n_visible x n_hidden), ``b`` (visible bias), ``c`` (hidden bias).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import as_tensor, check_binary
from .base import Model


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw Bernoulli(p) as ``rand < p`` (2-3x faster than ``torch.bernoulli`` on CPU)."""
    return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(
        p.dtype
    )


class BernoulliRBM(Model):
    """Binary RBM with ``n_visible`` visible and ``n_hidden`` hidden units.

    Args:
        n_visible: number of visible units D.
        n_hidden: number of hidden units H.
        init_std: standard deviation of the initial weights (Hinton's practical guide: 0.01).
        seed: seed for the initial weights (None: from torch's global generator).
    """

    likelihood_kind = "ais"

    def __init__(
        self, n_visible: int, n_hidden: int, init_std: float = 0.01, seed: int | None = None
    ) -> None:
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"n_visible and n_hidden: expected positive sizes, got {n_visible}, {n_hidden}"
            )
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    # ----- checks -------------------------------------------------------------------------------
    def check_visible(self, v: torch.Tensor, name: str = "v", binary: bool = True) -> torch.Tensor:
        """Validate a batch of visible vectors: shape (batch, n_visible), finite, binary."""
        v = as_tensor(v, name, dim=2, n_features=self.n_visible, device=self.W.device,
                      dtype=self.W.dtype)
        return check_binary(v, name) if binary else v

    # ----- energies -----------------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) for a batch of joint states; returns shape (batch,)."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j), shape (batch,)."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(-1)

    def free_energy_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Free energy with the visible units summed out: -c^T h - sum_i softplus(b_i + (W h)_i)."""
        return -(h @ self.c) - F.softplus(h @ self.W.T + self.b).sum(-1)

    # ----- conditionals -------------------------------------------------------------------------
    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.c, v, self.W)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, h, self.W.T)

    def p_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v), shape (batch, n_hidden)."""
        return torch.sigmoid(self.hidden_logits(v))

    def p_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """p(v_i = 1 | h), shape (batch, n_visible)."""
        return torch.sigmoid(self.visible_logits(h))

    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli(self.p_h_given_v(v), generator)

    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli(self.p_v_given_h(h), generator)

    def gibbs_vhv(
        self, v: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs sweep v -> h -> v at inverse temperature ``beta``; returns (v', h)."""
        h = bernoulli(torch.sigmoid(beta * self.hidden_logits(v)), generator)
        v = bernoulli(torch.sigmoid(beta * self.visible_logits(h)), generator)
        return v, h

    # ----- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_steps: int = 1000,
        generator: torch.Generator | None = None,
        v0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``n`` block-Gibbs chains for ``n_steps`` sweeps from uniform noise (or ``v0``);
        returns the mean-field visible probabilities of the last sweep, shape (n, n_visible)."""
        device = self.W.device
        if v0 is None:
            v = bernoulli(torch.full((n, self.n_visible), 0.5, device=device), generator)
        else:
            v = self.check_visible(v0, "v0")
        for _ in range(max(n_steps - 1, 0)):
            v, _ = self.gibbs_vhv(v, generator)
        h = self.sample_h(v, generator)
        return self.p_v_given_h(h)

    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v): the hidden representation of ``v``."""
        return self.p_h_given_v(self.check_visible(v, binary=False))
