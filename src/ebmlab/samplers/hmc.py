"""Hamiltonian Monte Carlo: leapfrog trajectories with a Metropolis-Hastings correction.

Augment x with a momentum p ~ N(0, m I) and simulate the Hamiltonian H(x, p) = E(x) + |p|^2 / 2m
with ``n_leapfrog`` leapfrog steps of size eps (half step in p, full step in x, half step in p).
The leapfrog map is volume-preserving and reversible, so the end point is accepted with
probability min(1, exp(H_start - H_end)). A trajectory whose energy error H_end - H_start exceeds
``divergence_threshold`` (or is NaN) is flagged as divergent (as in Stan): it signals a step too
large for the curvature, and is rejected.

References: Duane et al. (1987); Neal, "MCMC using Hamiltonian dynamics" (2011); Betancourt,
"A conceptual introduction to Hamiltonian Monte Carlo" (2017, arXiv:1701.02434).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..validation import Boolean, check_in_range, check_positive_int
from .base import (
    Kernel,
    Rng,
    State,
    Step,
    check_step_size,
    check_target_accept,
    current_state,
    energy_and_grad,
    mh_transition,
)


def kinetic_energy(p: torch.Tensor, mass: float) -> torch.Tensor:
    return 0.5 * (p * p).reshape(p.shape[0], -1).sum(-1) / mass


def leapfrog(
    x: torch.Tensor,
    p: torch.Tensor,
    grad: torch.Tensor,
    energy_fn: Any,
    step_size: float,
    n_steps: int,
    mass: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_steps`` leapfrog steps from (x, p) with grad E(x) given; returns (x, p, E, grad) at the
    end (one energy-and-gradient evaluation per step)."""
    p = p - 0.5 * step_size * grad
    energy = None
    for i in range(n_steps):
        x = x + (step_size / mass) * p
        energy, grad = energy_and_grad(energy_fn, x)
        p = p - (step_size if i < n_steps - 1 else 0.5 * step_size) * grad
    return x, p, energy, grad


class HMC(Kernel):
    """Hamiltonian Monte Carlo.

    Args:
        step_size: leapfrog step eps (> 0); the runner tunes it during burn-in when ``adapt``.
        n_leapfrog: leapfrog steps per trajectory.
        mass: scalar mass m (momentum variance).
        target_accept: acceptance rate aimed at by adaptation (0.65, Beskos et al. 2013).
        divergence_threshold: energy error above which a trajectory is flagged divergent.
        jitter: draw each trajectory's step size uniformly in eps * [1 - jitter, 1 + jitter]
            (avoids periodic orbits); 0 keeps it fixed.
        adapt: let the runner tune ``step_size`` during burn-in.
    """

    adaptive = True

    def __init__(
        self,
        step_size: float,
        n_leapfrog: int = 10,
        mass: float = 1.0,
        target_accept: float = 0.65,
        divergence_threshold: float = 1000.0,
        jitter: float = 0.0,
        adapt: bool = True,
    ) -> None:
        self.step_size = check_step_size(step_size)
        check_positive_int(n_leapfrog, "n_leapfrog")
        self.n_leapfrog = int(n_leapfrog)
        self.mass = check_step_size(mass, "mass")
        self.target_accept = check_target_accept(target_accept)
        self.divergence_threshold = check_step_size(divergence_threshold, "divergence_threshold")
        self.jitter = float(check_in_range(jitter, "jitter", 0.0, 1.0, "left"))
        self.adapt = Boolean().check(adapt, "adapt")

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        cur = current_state(x, energy_fn, state, need_grad=True)
        eps = self.step_size
        if self.jitter > 0:
            u = float(torch.rand((), generator=generator, device=x.device))
            eps *= 1.0 + self.jitter * (2.0 * u - 1.0)
        p0 = math.sqrt(self.mass) * torch.randn(
            x.shape, generator=generator, device=x.device, dtype=x.dtype
        )
        x1, p1, energy1, grad1 = leapfrog(
            x, p0, cur.grad, energy_fn, eps, self.n_leapfrog, self.mass
        )
        # mh_transition accepts with exp(E0 - E1 + log_hastings): the kinetic terms go there
        log_hastings = kinetic_energy(p0, self.mass) - kinetic_energy(p1, self.mass)
        x_new, info = mh_transition(
            x, cur.energy, x1, energy1, log_hastings, generator, cur.grad, grad1
        )
        energy_error = energy1 - cur.energy - log_hastings
        info.diverging = torch.isnan(energy_error) | (energy_error > self.divergence_threshold)
        return x_new, info
