"""What the samplers read off a model: structural protocols, never model classes.

Samplers sit below the models in the import graph: a model is recognised by the methods it has,
so a new class with the same methods is sampled the same way. The sign convention is ebmlab's
p(x) ∝ exp(-E(x)); beta is an inverse temperature (p_beta ∝ exp(-beta E)).

* Energy: ``energy(x) -> (batch,)``, or any callable with that signature (``EnergyFn``); a model
  with hidden units offers ``free_energy(v)`` and, to be tempered, ``TemperedFreeEnergy``
  (summing hidden units out does not commute with tempering, so beta F(v) would be wrong).
* Gradients: a target with ``EnergyWithGradient`` (``energy_and_grad(x) -> (E, dE/dx)``, e.g.
  a closed form) gives the gradient-based kernels (Langevin, MALA, HMC, the discrete gradient
  samplers) its gradient directly; any other target is differentiated by autograd.
* Binary models (the Gibbs kernels, ``gibbs.py``): ``spin_values`` ((0, 1) or (-1, 1)) and
  optionally ``SiteConditionals`` (exact single-site logits), ``BlockSweep`` (one exact sweep at
  inverse temperature beta) or ``BipartiteGibbs`` (an RBM's v -> h -> v sweep).
* States: a chain's state is what the target's energy takes, (n_chains, width), the width read
  off the model (``n_visible`` when it is sampled through ``free_energy``, else ``n_units``,
  ``n_visible`` or ``dim``), its dtype that of the model's parameters and buffers, and its
  values the ``spin_values`` for the kernels that move binary states (``base.state_spec``;
  ``base.check_start`` checks starting states against it, once, where chains start). The
  model is the target itself, or the object its energy method is bound to (``model.energy``,
  a ``SweepTarget`` over a model's method).
* ``SweepTarget`` turns a model's own sweep (e.g. a sequential sweep with clamped units, which
  no generic kernel knows about) into a ``BlockSweep`` target, so that the samplers' annealing
  and tempering can drive it.

References: PEP 544 (structural subtyping); Cabezas et al., BlackJAX (2024) for kernels that
see only log densities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

EnergyFn = Callable[[Tensor], Tensor]
#: the ``generator`` argument of every drawing function (None: torch's default generator)
Rng = torch.Generator | None


@runtime_checkable
class TemperedFreeEnergy(Protocol):
    def tempered_free_energy(self, v: Tensor, beta: float | Tensor) -> Tensor: ...


@runtime_checkable
class EnergyWithGradient(Protocol):
    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class SiteConditionals(Protocol):
    def conditional_logits(self, x: Tensor, i: int) -> Tensor: ...


@runtime_checkable
class BlockSweep(Protocol):
    def block_gibbs(self, x: Tensor, generator: Rng, beta: float | Tensor) -> Tensor: ...


@runtime_checkable
class BipartiteGibbs(Protocol):
    def gibbs_vhv(
        self, v: Tensor, generator: Rng, beta: float | Tensor
    ) -> tuple[Tensor, Tensor]: ...


@dataclass
class SweepTarget:
    """A binary target given by its energy and its own exact sweep at inverse temperature beta.

    ``block_gibbs(x, generator, beta) -> x'`` must leave exp(-beta E) invariant; beta may be
    ``math.inf`` (temperature 0, the greedy limit) when the sweep handles it.
    """

    energy: EnergyFn
    block_gibbs: Callable[[Tensor, Rng, float | Tensor], Tensor]
    spin_values: tuple[float, float] | None = None
