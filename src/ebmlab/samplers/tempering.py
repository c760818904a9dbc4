"""Tempering: simulated annealing and parallel tempering (replica exchange).

Both run a base kernel on the tempered target p_beta(x) ∝ exp(-beta E(x)) (beta = 1 / T; for an
RBM target the tempered *free* energy, see ``base.tempered_rbm_free_energy``).

* Simulated annealing (Kirkpatrick, Gelatt & Vecchi 1983) lowers T along a schedule, geometric
  T_k = T_0 alpha^k (floored at ``t_min``) or given; it is an optimizer, not a sampler of p.
* Parallel tempering (Swendsen & Wang 1986; Geyer 1991) runs K replicas at inverse temperatures
  1 = beta_1 > ... > beta_K, all in one batch, and after each sweep proposes to exchange the states
  of neighbouring replicas (k, k+1), alternating even and odd pairs (Okabe et al. 2001), with
  probability min(1, exp((beta_k - beta_{k+1}) (E(x_k) - E(x_{k+1})))). Hot replicas cross energy
  barriers and pass their states down, so the beta = 1 chain mixes between modes that trap a
  single chain. The swap acceptance rate of every pair is reported (``swap_accept``).

The state of ``ParallelTempering`` stacks the replicas temperature-major: rows [k n, (k+1) n) are
the n chains at beta_k. ``init(x0)`` builds it from x0 (n, ...) and ``observe(x)`` returns the
beta = 1 rows; the runner calls both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .base import ChainState, Info, Kernel, Target, as_target, check_step_size


def geometric_schedule(t0: float, alpha: float, n: int, t_min: float = 0.0) -> torch.Tensor:
    """Temperatures T_k = max(t0 alpha^k, t_min), k = 0..n-1, in float64."""
    if n < 1:
        raise ValueError(f"n: expected a schedule with at least one temperature, got {n}")
    k = torch.arange(n, dtype=torch.float64)
    return torch.clamp(t0 * alpha**k, min=t_min)


def _check_temperatures(schedule: Sequence[float] | torch.Tensor) -> torch.Tensor:
    temps = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if temps.numel() == 0:
        raise ValueError("schedule: the temperature schedule is empty")
    if not torch.isfinite(temps).all() or (temps <= 0).any():
        raise ValueError("schedule: temperatures must be finite and > 0")
    return temps


class SimulatedAnnealing(Kernel):
    """Run ``kernel`` at temperature T_t, lowering T at every step.

    Args:
        kernel: the base kernel (e.g. ``MetropolisHastings()``, ``Gibbs()``, ``Langevin(...)``).
        schedule: temperatures T_0, T_1, ... (float64); after the last one T stays there.
            None: geometric T_t = max(t0 alpha^t, t_min).
        t0, alpha, t_min: the geometric schedule (t0 > 0, 0 < alpha <= 1, t_min > 0).

    ``t`` (the step counter) lives on the kernel; ``reset()`` sets it back to 0.
    """

    def __init__(
        self,
        kernel: Kernel,
        schedule: Sequence[float] | torch.Tensor | None = None,
        t0: float = 10.0,
        alpha: float = 0.99,
        t_min: float = 1e-2,
    ) -> None:
        self.kernel = kernel
        self.schedule = _check_temperatures(schedule) if schedule is not None else None
        self.t0 = check_step_size(t0, "t0")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha: expected 0 < alpha <= 1, got {alpha}")
        self.alpha = float(alpha)
        self.t_min = check_step_size(t_min, "t_min")
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def temperature(self, t: int) -> float:
        if self.schedule is not None:
            return float(self.schedule[min(t, self.schedule.numel() - 1)])
        # float64 arithmetic: alpha**t underflows gracefully to the floor
        return max(self.t0 * self.alpha**t, self.t_min)

    def step(
        self,
        x: torch.Tensor,
        energy_fn: Any,
        generator: torch.Generator | None = None,
        state: ChainState | None = None,
    ) -> tuple[torch.Tensor, Info]:
        temperature = self.temperature(self.t)
        self.t += 1
        # no cached state: energies change with the temperature
        x_new, info = self.kernel.step(x, Target(energy_fn, 1.0 / temperature), generator)
        info.state = None
        info.extras["temperature"] = torch.full((1,), temperature, dtype=torch.float64)
        return x_new, info


def geometric_betas(n_temps: int, beta_min: float) -> torch.Tensor:
    """beta_k = beta_min^(k / (K - 1)), k = 0..K-1: from 1 down to beta_min, float64."""
    if n_temps < 1:
        raise ValueError(f"n_temps: expected at least one temperature, got {n_temps}")
    if not 0.0 < beta_min <= 1.0:
        raise ValueError(f"beta_min: expected 0 < beta_min <= 1, got {beta_min}")
    if n_temps == 1:
        return torch.ones(1, dtype=torch.float64)
    k = torch.arange(n_temps, dtype=torch.float64)
    return torch.exp(k / (n_temps - 1) * math.log(beta_min))


class ParallelTempering(Kernel):
    """Replica exchange between neighbouring temperatures.

    Args:
        kernel: base kernel run at every temperature (one batched call per step).
        betas: inverse temperatures (any order; one must be 1); None: ``n_temps`` geometric
            values from 1 to ``beta_min``.
        n_temps, beta_min: the geometric ladder.
    """

    def __init__(
        self,
        kernel: Kernel,
        betas: Sequence[float] | torch.Tensor | None = None,
        n_temps: int = 8,
        beta_min: float = 0.1,
    ) -> None:
        self.kernel = kernel
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

    def init(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.repeat((self.n_temps,) + (1,) * (x0.dim() - 1))

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        return x[: x.shape[0] // self.n_temps]

    def step(
        self,
        x: torch.Tensor,
        energy_fn: Any,
        generator: torch.Generator | None = None,
        state: ChainState | None = None,
    ) -> tuple[torch.Tensor, Info]:
        n_temps = self.n_temps
        if x.shape[0] % n_temps:
            raise ValueError(
                f"x: parallel tempering stacks {n_temps} replicas of every chain, so the number "
                f"of rows must be a multiple of {n_temps}; build the state with kernel.init(x0)"
            )
        n = x.shape[0] // n_temps
        target = as_target(energy_fn)
        betas = self.betas.to(device=x.device, dtype=x.dtype)
        beta_rows = betas.repeat_interleave(n)
        x, info = self.kernel.step(x, Target(target, beta_rows), generator)

        parity = self._t % 2
        self._t += 1
        swap_accept = torch.full((n_temps - 1,), float("nan"), dtype=torch.float64)
        lower = torch.arange(parity, n_temps - 1, 2, device=x.device)
        if lower.numel() > 0:
            x, accepted = self._swap(x, target, betas, lower, n, generator)
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

    @torch.no_grad()
    def _swap(
        self,
        x: torch.Tensor,
        target: Target,
        betas: torch.Tensor,
        lower: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Propose exchanging replicas k and k+1 for every k in ``lower``; returns (x, accepted)
        with accepted of shape (len(lower), n)."""
        chain = torch.arange(n, device=x.device)
        rows_lo = lower[:, None] * n + chain  # (P, n) rows of replica k
        rows_hi = rows_lo + n  # rows of replica k + 1
        b_lo, b_hi = betas[lower][:, None], betas[lower + 1][:, None]
        if target.linear_in_beta:
            energy = target.energy_at(x, 1.0)
            e_lo, e_hi = energy[rows_lo], energy[rows_hi]
            log_ratio = (b_lo - b_hi) * (e_lo - e_hi)
        else:
            x_lo, x_hi = x[rows_lo.flatten()], x[rows_hi.flatten()]
            b_lo_rows, b_hi_rows = b_lo.expand_as(rows_lo).flatten(), b_hi.expand_as(rows_lo)
            b_hi_rows = b_hi_rows.flatten()
            own = target.energy_at(x_lo, b_lo_rows) + target.energy_at(x_hi, b_hi_rows)
            crossed = target.energy_at(x_lo, b_hi_rows) + target.energy_at(x_hi, b_lo_rows)
            log_ratio = (own - crossed).reshape(rows_lo.shape)
        # a NaN ratio (NaN energy) never swaps
        log_ratio = torch.nan_to_num(log_ratio, nan=-float("inf"))
        u = 1.0 - torch.rand(
            log_ratio.shape, generator=generator, device=x.device, dtype=x.dtype
        )  # (0, 1]: log(u) finite
        accepted = torch.log(u) < log_ratio
        perm = torch.arange(x.shape[0], device=x.device)
        perm[rows_lo[accepted]] = rows_hi[accepted]
        perm[rows_hi[accepted]] = rows_lo[accepted]
        return x[perm], accepted
