"""Divergence guards shared by objectives: ``TrainingDiverged``, the energy bound check, and a
step counter kept in the objective's checkpointed state.

``TrainingDiverged`` is defined here, the lowest layer that raises it (an objective that sees its
energies explode), and re-exported by ``ebmlab.training``, whose loop raises it for a non-finite
loss or parameter and whose restarts catch it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .base import Objective


class TrainingDiverged(RuntimeError):
    """Raised when the loss, a parameter or an energy becomes NaN, infinite or out of bounds;
    says where (the step) and what (the quantity).

    The checkpoint on disk is then the last good one, so the run can be resumed (with a lower
    learning rate or another seed) or restarted automatically (``train_with_restarts``).
    """

    def __init__(self, message: str, step: int, quantity: str) -> None:
        super().__init__(message)
        self.step = step
        self.quantity = quantity
        #: the last good checkpoint on disk, set by the training loop (None: none was written)
        self.checkpoint: Path | None = None
        #: the automatic restarts the run had made, all spent (set by ``train_with_restarts``)
        self.restarts = 0


def check_energy(energy: torch.Tensor, bound: float, step: int, what: str) -> None:
    """Raise ``TrainingDiverged`` when an energy is non-finite or exceeds ``bound`` in size."""
    finite = torch.isfinite(energy)
    if bool(finite.all()) and float(energy.abs().max()) <= bound:
        return
    if not bool(finite.all()):
        detail = f"{int((~finite).sum())} non-finite energies"
    else:
        detail = f"|E| reached {float(energy.abs().max()):.4g} > energy_bound {bound:.4g}"
    raise TrainingDiverged(
        f"training diverged at step {step}: the energies of the {what} exploded ({detail}); "
        "remedies: restart from the last good checkpoint with a new seed, more Langevin steps, "
        "a lower learning rate, a larger L2 energy penalty (alpha)",
        step,
        f"energy of the {what}",
    )


class StepCounter(Objective):
    """An objective that counts optimizer steps in a buffer (checkpointed), so that a
    divergence it detects can be reported with the step of the training loop."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    @property
    def current_step(self) -> int:
        """The step the loss being computed belongs to (1-based, as the training loop counts)."""
        return int(self.steps_done) + 1

    def after_step(self, model: nn.Module, step: int) -> None:
        # counted here rather than copied from ``step``: a restart from a checkpoint as a fresh
        # run (``train_with_restarts``) goes on counting from the checkpoint's step
        self.steps_done += 1

    @property
    def fresh(self) -> bool:
        """True before the first optimizer step (``setup`` of a restart keeps learned state)."""
        return int(self.steps_done) == 0
