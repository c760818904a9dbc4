"""Random-walk Metropolis-Hastings for continuous and binary states.

Propose x' ~ q(x' | x) and accept with probability

    alpha = min(1, p(x') q(x | x') / (p(x) q(x' | x))) = min(1, exp(E(x) - E(x')))

for the symmetric proposals used here (no partition function involved). Computed in log space;
a NaN energy is a rejection (``base.mh_transition``).

Proposals:
  * ``"gaussian"``: x' = x + scale * N(0, I);
  * ``"uniform"``: x' = x + scale * U(-1, 1)^d;
  * ``"flip"``: flip m distinct, uniformly chosen sites of a binary state, {0, 1} or {-1, +1}
    (``spin_values``; inferred from the states when not given), with m uniform in
    1..``n_flips``. The reverse move flips the same sites with the same probability, so the
    proposal is symmetric. (Always flipping exactly an even number of sites would preserve the
    parity of the state and never reach half of the state space; drawing m avoids that.)
  * a callable ``proposal(x, generator) -> x'`` (assumed symmetric) or
    ``-> (x', log q(x | x') - log q(x' | x))``.

References: Metropolis et al. (1953); Hastings (1970); lecture 001 part 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..validation import OneOf, check_positive_int
from .base import (
    Kernel,
    Rng,
    State,
    Step,
    check_spin_choice,
    check_step_size,
    current_state,
    evaluate_energy,
    mh_transition,
)

ProposalFn = Callable[[torch.Tensor, torch.Generator | None], Any]

_PROPOSALS = OneOf(
    "gaussian",
    "uniform",
    "flip",
    description="one of gaussian, uniform, flip or a callable proposal(x, generator)",
)


def infer_spin_values(x: torch.Tensor) -> tuple[float, float]:
    """(0, 1) or (-1, 1), read from the states; an error when the states are neither."""
    if ((x == 0) | (x == 1)).all() and (x == 0).any():
        return (0.0, 1.0)
    if ((x == -1) | (x == 1)).all() and (x == -1).any():
        return (-1.0, 1.0)
    if (x == 1).all():
        raise ValueError(
            "x: every state is 1, so {0,1} and {-1,+1} cannot be told apart; "
            "pass spin_values=(0.0, 1.0) or (-1.0, 1.0)"
        )
    raise ValueError("x: a flip proposal needs binary states in {0, 1} or {-1, +1}")


def flip_sites(
    x: torch.Tensor,
    n_flips: int,
    spin_values: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Flip m distinct random sites per chain, m uniform in 1..n_flips: s -> lo + hi - s."""
    n, d = x.shape[0], x[0].numel()
    flat = x.reshape(n, d)
    if n_flips == 1:
        sites = torch.randint(d, (n, 1), generator=generator, device=x.device)
        active = None
    else:
        # the k smallest of d uniforms are a uniformly random k-subset; keep its first m
        keys = torch.rand(n, d, generator=generator, device=x.device)
        sites = keys.topk(n_flips, dim=1, largest=False).indices
        m = torch.randint(1, n_flips + 1, (n, 1), generator=generator, device=x.device)
        active = torch.arange(n_flips, device=x.device) < m
    lo, hi = spin_values
    old = flat.gather(1, sites)
    new = lo + hi - old if active is None else torch.where(active, lo + hi - old, old)
    flipped = flat.clone()
    flipped.scatter_(1, sites, new)
    return flipped.reshape(x.shape)


class MetropolisHastings(Kernel):
    """Random-walk Metropolis-Hastings.

    Args:
        proposal: "gaussian", "uniform", "flip", or a callable (see the module docstring).
        scale: proposal scale for the continuous proposals.
        n_flips: largest number of sites flipped per proposal ("flip"); each proposal flips a
            uniformly drawn number 1..n_flips of them.
        spin_values: binary state values for "flip": (0.0, 1.0) or (-1.0, 1.0); None infers them.
    """

    def __init__(
        self,
        proposal: str | ProposalFn = "gaussian",
        scale: float = 0.5,
        n_flips: int = 1,
        spin_values: tuple[float, float] | None = None,
    ) -> None:
        if isinstance(proposal, str) or not callable(proposal):
            _PROPOSALS.check(proposal, "proposal")
        check_positive_int(n_flips, "n_flips")
        self.proposal = proposal
        self.scale = check_step_size(scale, "scale")
        self.n_flips = int(n_flips)
        self.spin_values = check_spin_choice(spin_values)

    def propose(
        self, x: torch.Tensor, generator: torch.Generator | None, energy_fn: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Return (x', log q(x | x') - log q(x' | x))."""
        if callable(self.proposal):
            out = self.proposal(x, generator)
            return out if isinstance(out, tuple) else (out, 0.0)
        if self.proposal == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return x + self.scale * noise, 0.0
        if self.proposal == "uniform":
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return x + self.scale * (2.0 * u - 1.0), 0.0
        spins = self.spin_values or getattr(energy_fn, "spin_values", None)
        spins = tuple(spins) if spins is not None else infer_spin_values(x)
        if x[0].numel() < self.n_flips:
            raise ValueError(f"n_flips: {self.n_flips} exceeds the {x[0].numel()} sites")
        return flip_sites(x, self.n_flips, spins, generator), 0.0

    @property
    def discrete(self) -> bool:  # type: ignore[override]
        """Bit flips move binary states; the continuous proposals (and callables) do not."""
        return self.proposal == "flip"

    @torch.no_grad()
    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        current = current_state(x, energy_fn, state, need_grad=False)
        x_prop, log_hastings = self.propose(x, generator, energy_fn)
        energy_prop = evaluate_energy(energy_fn, x_prop)
        return mh_transition(x, current.energy, x_prop, energy_prop, log_hastings, generator)
