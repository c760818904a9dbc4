"""Gibbs sampling for binary states: single-site (systematic or random scan) and block updates.

Gibbs sampling draws one coordinate from its exact conditional p(s_i | s_-i) at a time; seen as
Metropolis-Hastings with that conditional as proposal, every move is accepted (lecture 001
part 3). For a binary unit with values (lo, hi),

    logit p(s_i = hi | s_-i) = E(s with s_i = lo) - E(s with s_i = hi).

What a binary model supplies (the structural protocols of ``protocols.py``):
  * ``spin_values``: (0.0, 1.0) or (-1.0, 1.0);
  * ``SiteConditionals``: ``conditional_logits(x, i) -> Tensor (batch,)``, the logit above for
    site ``i`` (an int) of every chain, at inverse temperature 1 (tempering multiplies it by
    beta); ``ebmlab.models.Ising`` implements it;
  * ``BlockSweep``: ``block_gibbs(x, generator, beta) -> x'``, one exact sweep at inverse
    temperature beta (bipartite graphs: a checkerboard lattice; a model's own sequential sweep,
    e.g. with clamped units, wrapped in a ``SweepTarget``);
  * ``BipartiteGibbs``: an RBM's ``gibbs_vhv(v, generator, beta) -> (v', h)``, the block sweep
    v -> h -> v.
A target without conditionals is handled from its energy by the formula above (two energy
evaluations per site: correct for any binary energy, just slower).

One ``step`` is one sweep: every site once in order (systematic), as many uniformly drawn sites
(random scan; the site drawn at each update is shared by all chains, each chain is still a valid
random-scan chain), or one block sweep.

References: Geman & Geman (1984); lecture 001 parts 2-3; Hinton (2002) for block Gibbs in RBMs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..validation import check_choice
from .base import (
    Info,
    Kernel,
    Rng,
    State,
    Step,
    Target,
    as_target,
    check_spin_choice,
    full_info,
)
from .elementary import bernoulli_draw
from .metropolis import infer_spin_values

_SCANS = ("auto", "systematic", "random", "block")


def energy_conditional_logits(
    target: Any, x: Tensor, i: int, spin_values: tuple[float, float]
) -> Tensor:
    """logit p(x_i = hi | rest) = E(x_i = lo) - E(x_i = hi), from two energy evaluations (two
    calls, not one stacked batch: a tempered target may carry one temperature per row)."""
    lo, hi = spin_values
    x_lo, x_hi = x.clone(), x.clone()
    x_lo[:, i] = lo
    x_hi[:, i] = hi
    return target(x_lo) - target(x_hi)


class Gibbs(Kernel):
    """Gibbs sampler for binary models.

    Args:
        scan: "systematic", "random", "block", or "auto" (block when the target offers it,
            else systematic).
        spin_values: (0.0, 1.0) or (-1.0, 1.0); None takes the target's ``spin_values`` or reads
            them from the states.
    """

    discrete = True

    def __init__(self, scan: str = "auto", spin_values: tuple[float, float] | None = None) -> None:
        self.scan = check_choice(scan, "scan", _SCANS)
        self.spin_values = check_spin_choice(spin_values)

    def _spins(self, target: Target, x: Tensor) -> tuple[float, float]:
        spins = self.spin_values or target.spin_values
        return tuple(spins) if spins is not None else infer_spin_values(x)

    @torch.no_grad()
    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        target = as_target(energy_fn)
        scan = self.scan
        if scan == "auto":
            scan = "block" if target.has_block_gibbs else "systematic"
        if scan == "block":
            if not target.has_block_gibbs:
                raise ValueError("scan='block' needs a target with block_gibbs or gibbs_vhv")
            return self._checked(target.block_gibbs(x, generator), x)
        if x.dim() != 2:
            raise ValueError(
                f"x: single-site Gibbs expects shape (n_chains, n_units), got {tuple(x.shape)}"
            )
        return self._site_sweep(x, target, generator, scan == "systematic")

    def _site_sweep(self, x: Tensor, target: Target, generator: Rng, systematic: bool) -> Step:
        lo, hi = self._spins(target, x)
        n_units = x.shape[1]
        if systematic:
            sites = range(n_units)
        else:
            sites = torch.randint(
                n_units, (n_units,), generator=generator, device=x.device
            ).tolist()
        x = x.clone()
        nonfinite = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for i in sites:
            if target.has_conditionals:
                logits = target.conditional_logits(x, i)
            else:
                logits = energy_conditional_logits(target, x, i, (lo, hi))
            bad = torch.isnan(logits)
            up = bernoulli_draw(torch.sigmoid(logits), generator) > 0
            new = torch.where(up, hi, lo).to(x.dtype)
            # a NaN conditional is a rejected update: the site keeps its value
            x[:, i] = torch.where(bad, x[:, i], new)
            nonfinite |= bad
        info = full_info(x)
        info.nonfinite = nonfinite
        return x, info

    @staticmethod
    def _checked(x_new: Tensor, x: Tensor) -> tuple[Tensor, Info]:
        if x_new.shape != x.shape:
            raise ValueError(
                f"block_gibbs: returned shape {tuple(x_new.shape)}, expected {tuple(x.shape)}"
            )
        return x_new, full_info(x_new)
