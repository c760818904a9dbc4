"""Restricted Boltzmann machines with binary units.

Bernoulli-Bernoulli RBM (Smolensky 1986; Hinton 2002), lecture 002 and lecture 001 part 2:

    E(v, h) = -b^T v - c^T h - v^T W h,   v in {0,1}^D, h in {0,1}^H

Summing the hidden units out gives the free energy (each h_j adds log(1 + e^{c_j + v^T W_j})):

    F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + (v^T W)_j)

and the conditionals factorize: p(h_j = 1 | v) = sigmoid(c_j + (v^T W)_j),
p(v_i = 1 | h) = sigmoid(b_i + (W h)_i).

Beyond sampling, the model gives pattern completion with clamped pixels (Gibbs sampling over the
free pixels only), the mean-field reconstruction error, and the exact pseudo-likelihood
(Besag 1975): log p(v_i | v_{-i}) = log sigmoid(F(v with v_i flipped) - F(v)), for every feature,
reported per example (summed over features) and per feature (averaged), unlike scikit-learn's
``score_samples`` which draws one feature per example at random and multiplies by D.

Parameters: ``W`` (n_visible x n_hidden), ``b`` (visible bias), ``c`` (hidden bias).

References: Hinton, "A practical guide to training restricted Boltzmann machines" (2010);
Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks" (ICML 2008).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from ..samplers import bernoulli_draw
from ..validation import (
    as_generator,
    as_tensor,
    check_binary,
    check_known_mask,
    check_nonempty,
    check_nonnegative_int,
    check_unit_interval,
)
from .base import Bipartite, GibbsSampled, Model, marginal_logits

#: Elements of the (batch, D, H) tensor the pseudo-likelihood builds at once (about 32 MB float32).
_PSEUDO_LIKELIHOOD_CHUNK = 8_000_000


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log prod_d Bernoulli(x_d; sigmoid(l_d)) = sum_d x_d l_d - softplus(l_d) over the last
    dimension (``x`` broadcasts against ``logits``). Two reductions instead of the fused binary
    cross-entropy, which runs log-sigmoid per entry and is twice as slow on CPU."""
    return (logits * x).sum(-1) - F.softplus(logits).sum(-1)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(sigmoid(a)) = softplus(a) - a sigmoid(a), elementwise (from log mu = -softplus(-a) and
    log(1 - mu) = -softplus(a)); exact at saturation, where the mu log mu form gives 0 * inf."""
    return F.softplus(logits) - logits * torch.sigmoid(logits)


class BernoulliRBM(Bipartite, GibbsSampled, Model):
    """Binary RBM with ``n_visible`` visible and ``n_hidden`` hidden units.

    Args:
        n_visible: number of visible units D.
        n_hidden: number of hidden units H.
        init_std: standard deviation of the initial weights (Hinton's practical guide: 0.01).
        seed: seed for the initial weights (None: from torch's global generator).
    """

    likelihood_kind = "ais"

    # ----- checks -------------------------------------------------------------------------------
    def check_visible(self, v: torch.Tensor, name: str = "v", binary: bool = True) -> torch.Tensor:
        """Validate a batch of visible vectors: shape (batch, n_visible), finite, binary."""
        v = as_tensor(
            v, name, dim=2, n_features=self.n_visible, device=self.W.device, dtype=self.W.dtype
        )
        return check_binary(v, name) if binary else v

    def check_hidden(self, h: torch.Tensor, name: str = "h") -> torch.Tensor:
        """Validate a batch of hidden vectors: shape (batch, n_hidden), finite."""
        return as_tensor(
            h, name, dim=2, n_features=self.n_hidden, device=self.W.device, dtype=self.W.dtype
        )

    @torch.no_grad()
    def init_visible_from_data(self, x: torch.Tensor) -> None:
        """b_i = log(p_i / (1 - p_i)) with p_i the data marginal (Hinton's guide, section 8): the
        visible units alone then reproduce the pixel frequencies. ``x``: at least one row of
        binary data or probabilities in [0, 1]."""
        x = check_nonempty(self.check_visible(x, "x", binary=False), "x")
        self.b.copy_(marginal_logits(check_unit_interval(x, "x")))

    # ----- energies -----------------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) for a batch of joint states; returns shape (batch,)."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j), shape (batch,)."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(-1)

    def tempered_free_energy(self, v: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
        """F_beta(v) = -log sum_h exp(-beta E(v, h)) = -beta b^T v - sum_j softplus(beta (c_j +
        (v^T W)_j)), shape (batch,): what parallel tempering needs. Not beta F(v): summing the
        hidden units out does not commute with tempering. ``beta``: a scalar or one per row."""
        beta = torch.as_tensor(beta, dtype=v.dtype, device=v.device)
        beta_col = beta.reshape(-1, 1) if beta.dim() else beta
        beta_row = beta.reshape(-1) if beta.dim() else beta
        return -beta_row * (v @ self.b) - F.softplus(beta_col * self.hidden_logits(v)).sum(-1)

    def free_energy_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Free energy with the visible units summed out: -c^T h - sum_i softplus(b_i + (W h)_i)."""
        return -(h @ self.c) - F.softplus(h @ self.W.T + self.b).sum(-1)

    # ----- conditionals -------------------------------------------------------------------------
    def p_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v), shape (batch, n_hidden)."""
        return torch.sigmoid(self.hidden_logits(v))

    def p_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """p(v_i = 1 | h), shape (batch, n_visible)."""
        return torch.sigmoid(self.visible_logits(h))

    @torch.no_grad()
    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli_draw(self.p_h_given_v(v), generator)

    @torch.no_grad()
    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli_draw(self.p_v_given_h(h), generator)

    @torch.no_grad()
    def gibbs_vhv(
        self, v: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs sweep v -> h -> v at inverse temperature ``beta``; returns (v', h)."""
        h = bernoulli_draw(torch.sigmoid(beta * self.hidden_logits(v)), generator)
        v = bernoulli_draw(torch.sigmoid(beta * self.visible_logits(h)), generator)
        return v, h

    # ----- generation (``GibbsSampled.sample``): block-Gibbs chains over the visible rows ------
    def start_chains(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform noise: each visible unit on with probability 1/2."""
        p = torch.full((n, self.n_visible), 0.5, device=self.W.device, dtype=self.W.dtype)
        return bernoulli_draw(p, generator)

    def chains_output(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The last sweep's h ~ p(h | v), then the mean-field p(v = 1 | h)."""
        return self.p_v_given_h(self.sample_h(state, generator))

    @torch.no_grad()
    def complete(
        self,
        v: torch.Tensor,
        mask: torch.Tensor,
        n_steps: int = 200,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """Pattern completion: Gibbs sampling over the free pixels with the known ones clamped.

        Args:
            v: (batch, n_visible) binary patterns, at least one; only the entries where ``mask``
                is True are read.
            mask: bool, (n_visible,) or (batch, n_visible); True marks a known (clamped) pixel.
            n_steps: block-Gibbs sweeps (a non-negative integer); the free pixels start from
                uniform noise.
            generator: a ``torch.Generator``, an integer seed or None.

        Returns:
            (batch, n_visible): the clamped pixels unchanged and, in the free pixels, p(v_i = 1 | h)
            of the last sweep (the mean-field completion).
        """
        known = check_nonempty(self.check_visible(v, "v", binary=False), "v")
        mask = check_known_mask(mask, known)
        n_steps = check_nonnegative_int(n_steps, "n_steps")
        generator = as_generator(generator, self.device)
        check_binary(known[mask.expand_as(known)], "v (known pixels)")
        noise = bernoulli_draw(torch.full_like(known, 0.5), generator)
        state = torch.where(mask, known, noise)
        p_v = state
        for _ in range(n_steps):
            h = self.sample_h(state, generator)
            p_v = self.p_v_given_h(h)
            state = torch.where(mask, known, bernoulli_draw(p_v, generator))
        return torch.where(mask, known, p_v)

    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v): the hidden representation of ``v``."""
        return self.p_h_given_v(self.check_visible(v, binary=False))

    # ----- scores -------------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Squared error of the mean-field reconstruction p(v | h = p(h | v)), summed over
        features: shape (batch,). A training monitor only; it is not the likelihood."""
        v = self.check_visible(v, binary=False)
        return (self.p_v_given_h(self.p_h_given_v(v)) - v).square().sum(-1)

    def _check_bits(self, bits: Any, batch: int) -> torch.Tensor:
        """Feature indices (batch, k): integers in 0..n_visible-1, as int64 on the model's
        device."""
        index = as_tensor(bits, "bits", dim=2)  # named errors for what is not a 2-d array
        if isinstance(bits, torch.Tensor):
            dtype = bits.dtype
        elif isinstance(bits, np.ndarray):
            dtype = torch.from_numpy(np.ascontiguousarray(bits)).dtype
        else:
            dtype = torch.as_tensor(bits).dtype
        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            raise TypeError(f"bits: expected integer feature indices, got {dtype}")
        if index.shape[0] != batch or index.shape[1] == 0:
            raise ValueError(
                f"bits: expected feature indices of shape ({batch}, k) with k >= 1, got "
                f"{tuple(index.shape)}"
            )
        if index.numel() and (index.min() < 0 or index.max() >= self.n_visible):
            raise ValueError(
                f"bits: expected feature indices in 0..{self.n_visible - 1}, got values from "
                f"{int(index.min())} to {int(index.max())}"
            )
        return index.to(device=self.W.device, dtype=torch.int64)

    def log_conditionals(self, v: torch.Tensor, bits: Any = None) -> torch.Tensor:
        """log p(v_i | v_{-i}) for every example and feature, exactly: shape (batch, n_visible);
        with ``bits`` (batch, k) integer feature indices in 0..n_visible-1, only those of each
        row: shape (batch, k). ``v``: binary rows, at least one.

        Flipping v_i by s_i = 1 - 2 v_i moves each hidden input a_j = c_j + (v^T W)_j to
        a_j + s_i W_ij, so F(v^(i)) - F(v) = -s_i b_i - sum_j [softplus(a_j + s_i W_ij) -
        softplus(a_j)] and p(v_i | v_{-i}) = sigmoid(F(v^(i)) - F(v)): O(H) per feature.
        """
        v = check_nonempty(self.check_visible(v), "v")
        if bits is not None:
            bits = self._check_bits(bits, v.shape[0])
        a = self.hidden_logits(v)
        s = 1.0 - 2.0 * v
        if bits is not None:
            s = s.gather(1, bits)  # (batch, k)
        rows = max(1, _PSEUDO_LIKELIHOOD_CHUNK // (s.shape[1] * self.n_hidden))
        out = []
        for start in range(0, v.shape[0], rows):
            a_k, s_k = a[start : start + rows], s[start : start + rows]
            W, b = self.W, self.b  # every feature; else each row's own: (rows, k, H), (rows, k)
            if bits is not None:
                W, b = W[bits[start : start + rows]], b[bits[start : start + rows]]
            flipped = F.softplus(a_k[:, None, :] + s_k[:, :, None] * W)  # (rows, k, H)
            delta = -s_k * b - (flipped.sum(-1) - F.softplus(a_k).sum(-1, keepdim=True))
            out.append(F.logsigmoid(delta))
        return torch.cat(out)

    def pseudo_log_likelihood(
        self, v: torch.Tensor, per: Literal["example", "feature"] = "example"
    ) -> torch.Tensor:
        """Exact pseudo-log-likelihood of each example, shape (batch,).

        ``per="example"``: sum_i log p(v_i | v_{-i}) in nats per example (the quantity
        scikit-learn's ``score_samples`` estimates from one random feature);
        ``per="feature"``: the same averaged over the D features, nats per feature.
        ``v``: binary rows, at least one (an empty batch is an error, not an empty result).
        """
        if per not in ("example", "feature"):
            raise ValueError(f"per: expected 'example' or 'feature', got {per!r}")
        log_cond = self.log_conditionals(v)
        return log_cond.sum(-1) if per == "example" else log_cond.mean(-1)
