"""Parallel tempering (replica exchange) and its swap move, shared by every tempered chain.

Parallel tempering (Swendsen & Wang 1986; Geyer 1991) runs K replicas at inverse temperatures
1 = beta_1 > ... > beta_K, all in one batch, and after each sweep proposes to exchange the states
of neighbouring replicas (k, k+1), alternating even and odd pairs (Okabe et al. 2001). The swap
is a Metropolis move on the joint chain: with p_beta(x) ∝ exp(-E_beta(x)),

    log r = E_{beta_k}(x_k) + E_{beta_{k+1}}(x_{k+1}) - E_{beta_k}(x_{k+1}) - E_{beta_{k+1}}(x_k),

which is (beta_k - beta_{k+1}) (E(x_k) - E(x_{k+1})) when the tempered energy is beta E(x)
(fully visible models; an RBM's joint energy E(v, h)), and is accepted with probability
min(1, exp(log r)) in log space (``base.metropolis_accept``; a NaN ratio never swaps). Hot
replicas cross energy barriers and pass their states down, so the beta = 1 chain mixes between
modes that trap a single chain. For an RBM sampled through its free energy the tempered free
energy is used (the model's ``tempered_free_energy``), not beta F(v).

The swap pieces (``swap_pairs``, ``linear_swap_log_ratio``, ``replica_exchange``) act on states
laid out replica-major, (K, n, ...): the ``ParallelTempering`` kernel and the contrastive-
divergence objective with tempered persistent chains both call them. The kernel's own state
stacks the replicas in one batch, rows [k n, (k+1) n) being the n chains at beta_k; ``init(x0)``
builds it from x0 (n, ...) and ``observe(x)`` returns the beta = 1 rows (the runner calls both).
The swap acceptance rate of every pair is reported (``swap_accept``).

References: Swendsen & Wang, PRL 57 (1986); Geyer (1991); Okabe et al., Chem. Phys. Lett. 335
(2001) for alternating even/odd swaps; Earl & Deem, PCCP 7 (2005), a review.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_in_range, check_positive_int
from .annealing import geometric_ladder
from .base import (
    Info,
    Kernel,
    Rng,
    State,
    Step,
    Target,
    Wrapper,
    as_target,
    check_kernel,
    metropolis_accept,
)


def geometric_betas(n_temps: int, beta_min: float) -> Tensor:
    """K inverse temperatures from 1 down to beta_min with a constant ratio, float64."""
    check_positive_int(n_temps, "n_temps")
    check_in_range(beta_min, "beta_min", 0.0, 1.0, "right")
    if n_temps == 1:
        return torch.ones(1, dtype=torch.float64)
    return geometric_ladder(1.0, beta_min, n_temps)


def swap_pairs(n_temps: int, parity: int, device: torch.device | str | None = None) -> Tensor:
    """The lower replica k of every pair (k, k+1) proposed in a round: k = parity, parity + 2,
    ... (even pairs on even rounds, odd pairs on odd rounds)."""
    return torch.arange(parity % 2, n_temps - 1, 2, device=device)


def linear_swap_log_ratio(betas: Tensor, energy: Tensor, lower: Tensor) -> Tensor:
    """log r = (beta_k - beta_{k+1}) (E(x_k) - E(x_{k+1})) for every pair in ``lower`` and every
    chain: ``betas`` (K,), ``energy`` (K, n) at beta = 1; returns (P, n)."""
    return (betas[lower] - betas[lower + 1])[:, None] * (energy[lower] - energy[lower + 1])


@torch.no_grad()
def replica_exchange(
    replicas: Sequence[Tensor], log_ratio: Tensor, lower: Tensor, generator: Rng
) -> tuple[list[Tensor], Tensor]:
    """Accept each proposed swap with probability min(1, exp(log r)) and exchange replicas k and
    k+1 of the accepted chains in every tensor of ``replicas`` (each (K, n, ...): the same
    chains' layers, e.g. an RBM's v and h). Returns the new tensors and ``accepted`` (P, n)."""
    accepted = metropolis_accept(log_ratio, generator)[0]
    swapped = []
    for x in replicas:
        keep = accepted.reshape(accepted.shape + (1,) * (x.dim() - 2))
        lo, hi = x[lower], x[lower + 1]
        x = x.clone()
        x[lower], x[lower + 1] = torch.where(keep, hi, lo), torch.where(keep, lo, hi)
        swapped.append(x)
    return swapped, accepted


class ParallelTempering(Wrapper):
    """Replica exchange between neighbouring temperatures.

    Args:
        kernel: base kernel run at every temperature (one batched call per step).
        betas: inverse temperatures (any order; one must be 1); None: ``n_temps`` geometric
            values from 1 to ``beta_min``.
        n_temps, beta_min: the geometric ladder (an integer >= 1 and a number in (0, 1];
            checked even when ``betas`` is given).
    """

    def __init__(
        self,
        kernel: Kernel,
        betas: Sequence[float] | Tensor | None = None,
        n_temps: int = 8,
        beta_min: float = 0.1,
    ) -> None:
        self.kernel = check_kernel(kernel, "kernel")
        check_positive_int(n_temps, "n_temps")
        check_in_range(beta_min, "beta_min", 0.0, 1.0, "right")
        if betas is None:
            betas = geometric_betas(n_temps, beta_min)
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() == 0:
            raise ValueError("betas: the temperature ladder is empty")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas > 1).any():
            raise ValueError("betas: inverse temperatures must lie in (0, 1]")
        betas = torch.sort(betas, descending=True).values
        if betas[0] != 1.0:
            raise ValueError(
                f"betas: the ladder must contain beta = 1 (the target), got max {float(betas[0])}"
            )
        if betas.numel() > 1 and (betas[1:] == betas[:-1]).any():
            raise ValueError("betas: inverse temperatures must be distinct")
        self.betas = betas
        self._t = 0

    @property
    def n_temps(self) -> int:
        return self.betas.numel()

    def init(self, x0: Tensor) -> Tensor:
        return x0.repeat((self.n_temps,) + (1,) * (x0.dim() - 1))

    def observe(self, x: Tensor) -> Tensor:
        return x[: x.shape[0] // self.n_temps]

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        n_temps = self.n_temps
        if x.shape[0] % n_temps:
            raise ValueError(
                f"x: parallel tempering stacks {n_temps} replicas of every chain, so the number "
                f"of rows must be a multiple of {n_temps}; build the state with kernel.init(x0)"
            )
        n = x.shape[0] // n_temps
        target = as_target(energy_fn)
        betas = self.betas.to(device=x.device, dtype=x.dtype)
        x, info = self.kernel.step(x, Target(target, betas.repeat_interleave(n)), generator)

        lower = swap_pairs(n_temps, self._t, x.device)
        self._t += 1
        swap_accept = torch.full((n_temps - 1,), float("nan"), dtype=torch.float64)
        if lower.numel() > 0:
            replicas = x.reshape(n_temps, n, *x.shape[1:])
            log_ratio = self._log_ratio(replicas, target, betas, lower)
            (replicas,), accepted = replica_exchange([replicas], log_ratio, lower, generator)
            x = replicas.reshape(x.shape)
            swap_accept[lower.cpu()] = accepted.to(torch.float64).mean(1).cpu()

        cold = slice(0, n)
        out = Info(
            accept_prob=info.accept_prob[cold],
            accepted=info.accepted[cold],
            nonfinite=info.nonfinite.reshape(n_temps, n).any(0),
            diverging=None if info.diverging is None else info.diverging.reshape(n_temps, n).any(0),
            extras={"swap_accept": swap_accept},
        )
        return x, out

    @staticmethod
    @torch.no_grad()
    def _log_ratio(replicas: Tensor, target: Target, betas: Tensor, lower: Tensor) -> Tensor:
        """log r of every proposed pair, (P, n); ``replicas`` (K, n, ...)."""
        n_temps, n = replicas.shape[:2]
        if target.linear_in_beta:
            energy = target.energy_at(replicas.reshape(n_temps * n, *replicas.shape[2:]), 1.0)
            return linear_swap_log_ratio(betas, energy.reshape(n_temps, n), lower)
        x_lo = replicas[lower].reshape(-1, *replicas.shape[2:])
        x_hi = replicas[lower + 1].reshape(-1, *replicas.shape[2:])
        b_lo = betas[lower].repeat_interleave(n)
        b_hi = betas[lower + 1].repeat_interleave(n)
        own = target.energy_at(x_lo, b_lo) + target.energy_at(x_hi, b_hi)
        crossed = target.energy_at(x_lo, b_hi) + target.energy_at(x_hi, b_lo)
        return (own - crossed).reshape(lower.numel(), n)
