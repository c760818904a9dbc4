"""Maximum-likelihood learning for general Boltzmann machines, as lecture 001 (part 2) gives it.

    dL/dW_ij = <s_i s_j>_clamped - <s_i s_j>_free   (divided by the temperature T)

Clamped phase: for every training vector the visible units (and the label units, when the data
carries them as extra columns) are fixed and Gibbs sampling runs over the hidden units from a
random start; after ``clamped_burn_in`` sweeps the next ``clamped_samples`` states are kept (K
samples per vector). Free phase: ``n_chains`` persistent chains over all units advance
``free_sweeps`` sweeps per update (Tieleman's persistent chains: they carry over between updates,
so no new burn-in is needed). The loss is mean E(s_clamped) - mean E(s_free) over those states,
detached, whose gradient is exactly the difference above with the sign of a loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.boltzmann import BoltzmannMachine
from ..validation import Integral, as_tensor, check_binary, validate
from .base import Objective


class BoltzmannLearning(Objective):
    """Clamped-phase minus free-phase learning for ``BoltzmannMachine``.

    Args:
        n_chains: persistent free-phase chains.
        free_sweeps: Gibbs sweeps of the free chains per update.
        clamped_burn_in: sweeps over the hidden units before the clamped statistics are taken.
        clamped_samples: clamped-phase samples kept per training vector.
        seed: seeds the initial free chains in ``setup``.
    """

    @validate(
        n_chains=Integral(1),
        free_sweeps=Integral(1),
        clamped_burn_in=Integral(0),
        clamped_samples=Integral(1),
        seed=Integral(),
    )
    def __init__(
        self,
        n_chains: int = 100,
        free_sweeps: int = 1,
        clamped_burn_in: int = 5,
        clamped_samples: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_chains = n_chains
        self.free_sweeps = free_sweeps
        self.clamped_burn_in = clamped_burn_in
        self.clamped_samples = clamped_samples
        self.seed = seed
        self.register_buffer("chains", torch.empty(0))  # (n_chains, n_units) free-phase states

    def _check(self, model: nn.Module, x: torch.Tensor, name: str) -> int:
        if not isinstance(model, BoltzmannMachine):
            raise TypeError(
                f"model: BoltzmannLearning trains a BoltzmannMachine, got {type(model).__name__}"
            )
        allowed = (model.n_visible, model.n_visible + model.n_labels)
        if x.dim() != 2 or x.shape[1] not in allowed:
            raise ValueError(
                f"{name}: expected shape (batch, {allowed[0]}) or (batch, "
                f"{allowed[1]}) with one-hot labels, got {tuple(x.shape)}"
            )
        return x.shape[1]

    @torch.no_grad()
    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Validate the data and start the free chains from random states."""
        n_columns = self._check(model, x_train, "x_train")
        x_train = as_tensor(x_train, "x_train", dim=2)
        check_binary(x_train, "x_train")
        if n_columns > model.n_visible and not (x_train[:, model.n_visible :].sum(-1) == 1).all():
            raise ValueError("x_train: the label columns must be one-hot (exactly one 1 per row)")
        generator = torch.Generator(device=model.W.device).manual_seed(self.seed)
        self.chains = model.random_states(self.n_chains, generator)

    @torch.no_grad()
    def clamped_states(
        self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Clamped-phase samples, (batch * clamped_samples, n_units)."""
        n_clamped = batch.shape[1]
        s = model.random_states(batch.shape[0], generator)
        s[:, :n_clamped] = batch
        kept = []
        for sweep in range(self.clamped_burn_in + self.clamped_samples):
            s = model.gibbs_sweep(s, generator, clamp=n_clamped)
            if sweep >= self.clamped_burn_in:
                kept.append(s)
        return torch.cat(kept)

    @torch.no_grad()
    def free_states(self, model: BoltzmannMachine, generator: torch.Generator) -> torch.Tensor:
        """Advance the persistent chains ``free_sweeps`` sweeps and return them."""
        if self.chains.numel() == 0:
            self.chains = model.random_states(self.n_chains, generator)
        s = self.chains
        for _ in range(self.free_sweeps):
            s = model.gibbs_sweep(s, generator)
        self.chains = s
        return s

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        self._check(model, batch, "batch")
        positive = self.clamped_states(model, batch, generator)
        negative = self.free_states(model, generator)
        loss = model.energy(positive).mean() - model.energy(negative).mean()
        return loss, {}

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Weight decay on the couplings only."""
        return [
            {"params": [model.W], "lr": lr, "weight_decay": weight_decay},
            {"params": [model.theta], "lr": lr, "weight_decay": 0.0},
        ]
