"""Simulated annealing and the temperature schedules of ebmlab (one vocabulary for all of them).

Simulated annealing (Kirkpatrick, Gelatt & Vecchi 1983; lecture 001) runs a kernel on the
tempered target p_T(x) ∝ exp(-E(x) / T) while T is lowered: hot, the chains cross energy
barriers; cold, they settle into low minima. It is an optimizer, not a sampler of p (at constant
T = 1 it is the plain kernel). Inverse temperature beta = 1 / T; T = 0 is beta = inf, the greedy
limit, meaningful only for a target whose own sweep handles it (``protocols.SweepTarget``, e.g.
a Hopfield network's deterministic update); energy-based kernels need T > 0.

Schedules, all computed in float64 (whoever uses them casts):

* ``geometric_schedule(t0, alpha, n, t_min)``: exponential (geometric) cooling
  T_k = max(t0 alpha^k, t_min), k = 0..n-1 (the lecture's T <- alpha T). Each T_k is computed as
  the Python float ``t0 * alpha**k``, the formula ``SimulatedAnnealing`` uses step by step.
* ``cooling_steps(t_start, t_end, alpha, past_end)``: the number of levels of that schedule down
  to t_end: every level >= t_end (``past_end=False``), or up to and including the first level
  <= t_end (``past_end=True``).
* ``geometric_ladder(start, stop, n)``: n values with a constant ratio from start to stop, by
  linear interpolation in log space (inverse temperatures of parallel tempering, the noise
  ladders of annealed Langevin dynamics).
* ``linear_ladder(start, stop, n)``: n evenly spaced values (the inverse temperatures of CD with
  parallel tempering, which may reach beta = 0).

The annealed-importance-sampling schedules of the estimators are not these: they interpolate
between two distributions, not temperatures of one.

References: Kirkpatrick, Gelatt & Vecchi, "Optimization by simulated annealing" (Science, 1983);
Geman & Geman (1984) for logarithmic cooling and its guarantees (geometric cooling has none but
is what practice uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_in_range, check_positive_int
from .base import (
    Kernel,
    Rng,
    State,
    Step,
    Target,
    Wrapper,
    check_kernel,
    check_start,
    check_step_size,
)


def geometric_schedule(t0: float, alpha: float, n: int, t_min: float = 0.0) -> Tensor:
    """Temperatures T_k = max(t0 alpha^k, t_min), k = 0..n-1, in float64."""
    if not (t0 >= 0 and alpha > 0 and n >= 1):
        raise ValueError(
            f"t0, alpha, n: expected t0 >= 0, alpha > 0 and n >= 1, got {t0}, {alpha}, {n}"
        )
    return torch.tensor([cooled(t0, alpha, k, t_min) for k in range(n)], dtype=torch.float64)


def cooled(t0: float, alpha: float, k: int, t_min: float = 0.0) -> float:
    """T_k = max(t0 alpha^k, t_min) in float64 (alpha^k underflows gracefully to the floor)."""
    return max(t0 * alpha**k, t_min)


def cooling_steps(t_start: float, t_end: float, alpha: float, past_end: bool = False) -> int:
    """Levels of T_k = t_start alpha^k down to ``t_end`` (0 < t_end <= t_start, 0 < alpha < 1):
    floor(log(t_end / t_start) / log alpha) + 1 of them are >= t_end; ``past_end`` takes the
    ceiling instead, adding the first level below t_end unless one lands on it exactly."""
    if not (0 < t_end <= t_start and 0 < alpha < 1):
        raise ValueError(
            f"t_start, t_end, alpha: expected 0 < t_end <= t_start and 0 < alpha < 1, got "
            f"{t_start}, {t_end}, {alpha}"
        )
    levels = math.log(t_end / t_start) / math.log(alpha)
    return (math.ceil(levels) if past_end else math.floor(levels)) + 1


def geometric_ladder(start: float, stop: float, n: int) -> Tensor:
    """n >= 2 values from ``start`` to ``stop`` (both > 0) with a constant ratio, float64:
    exp(log start + s_k (log stop - log start)) with s = linspace(0, 1, n)."""
    if not (start > 0 and stop > 0 and n >= 2):
        raise ValueError(
            f"start, stop, n: expected start, stop > 0 and n >= 2, got {start}, {stop}, {n}"
        )
    s = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return torch.exp(math.log(start) + s * (math.log(stop) - math.log(start)))


def linear_ladder(start: float, stop: float, n: int) -> Tensor:
    """n >= 1 evenly spaced values from ``start`` to ``stop``, float64."""
    if n < 1:
        raise ValueError(f"n: expected at least one value, got {n}")
    return torch.linspace(start, stop, n, dtype=torch.float64)


def inverse_temperature(temperature: float) -> float:
    """beta = 1 / T, with T = 0 mapped to beta = inf (the greedy limit)."""
    return math.inf if temperature == 0 else 1.0 / temperature


def _check_temperatures(schedule: Sequence[float] | Tensor) -> Tensor:
    temps = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if temps.numel() == 0:
        raise ValueError("schedule: the temperature schedule is empty")
    if not torch.isfinite(temps).all() or (temps < 0).any():
        raise ValueError("schedule: temperatures must be finite and >= 0")
    return temps


class SimulatedAnnealing(Wrapper):
    """Run ``kernel`` at temperature T_t, lowering T at every step.

    Args:
        kernel: the base kernel (e.g. ``MetropolisHastings()``, ``Gibbs()``, ``Langevin(...)``).
        schedule: temperatures T_0, T_1, ... (float64, >= 0); after the last one T stays there.
            None: geometric T_t = max(t0 alpha^t, t_min).
        t0, alpha, t_min: the geometric schedule (t0 > 0, 0 < alpha <= 1, t_min > 0).

    As a kernel (for ``sample``), ``t`` (the step counter) lives on the kernel and ``reset()``
    sets it back to 0; ``anneal`` runs a whole schedule from t = 0.
    """

    def __init__(
        self,
        kernel: Kernel,
        schedule: Sequence[float] | Tensor | None = None,
        t0: float = 10.0,
        alpha: float = 0.99,
        t_min: float = 1e-2,
    ) -> None:
        self.kernel = check_kernel(kernel, "kernel")
        self.schedule = _check_temperatures(schedule) if schedule is not None else None
        self.t0 = check_step_size(t0, "t0")
        self.alpha = float(check_in_range(alpha, "alpha", 0.0, 1.0, "right"))
        self.t_min = check_step_size(t_min, "t_min")
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def temperature(self, t: int) -> float:
        if self.schedule is not None:
            return float(self.schedule[min(t, self.schedule.numel() - 1)])
        return cooled(self.t0, self.alpha, t, self.t_min)

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        temperature = self.temperature(self.t)
        self.t += 1
        # no cached state: energies change with the temperature
        target = Target(energy_fn, inverse_temperature(temperature))
        x_new, info = self.kernel.step(x, target, generator)
        info.state = None
        info.extras["temperature"] = torch.full((1,), temperature, dtype=torch.float64)
        return x_new, info

    def anneal(
        self,
        x: Tensor,
        target: Any,
        generator: Rng = None,
        n_steps: int | None = None,
        n_average: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """Run ``n_steps`` steps (an integer >= 1; default: one per temperature of the schedule)
        from ``x``, from t = 0. Returns the final states and the mean of the last ``n_average``
        states. ``x`` is checked against the target first (``base.check_start``)."""
        x = check_start(x, target, self, name="x")
        if n_steps is None:
            if self.schedule is None:
                raise ValueError("n_steps: a geometric schedule without an end needs n_steps")
            n_steps = self.schedule.numel()
        check_positive_int(n_steps, "n_steps")
        check_positive_int(n_average, "n_average")
        if n_average > n_steps:
            raise ValueError(f"n_average: expected 1..{n_steps} (the steps run), got {n_average}")
        self.reset()
        total = torch.zeros_like(x)
        for t in range(n_steps):
            x, _ = self.step(x, target, generator)
            if t >= n_steps - n_average:
                total += x
        return x, total / n_average
