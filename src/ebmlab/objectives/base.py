"""The objective protocol used by the one training loop (``ebmlab.training.train``).

An objective turns a minibatch (and the model's own samples) into a scalar surrogate loss whose
gradient is the learning signal. For contrastive methods the loss is
mean F(data) - mean F(samples) with the samples detached: its gradient is the usual positive
minus negative phase statistics. Objectives are ``nn.Module``s so that their state (persistent
chains, replay buffers, running averages) lives in buffers and goes into checkpoints with the
model, as safetensors tensors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..models.base import record_config

#: Every objective class, by name; checkpoints name the objective and ``ebmlab.io`` rebuilds it.
OBJECTIVE_CLASSES: dict[str, type[Objective]] = {}


def model_param_group(model: nn.Module, lr: float, weight_decay: float) -> dict[str, Any]:
    """One optimizer group with every trainable parameter of ``model``."""
    return {
        "params": [p for p in model.parameters() if p.requires_grad],
        "lr": lr,
        "weight_decay": weight_decay,
    }


class Objective(nn.Module):
    """Base class. Subclasses implement ``loss``.

    Hooks the training loop calls:
      * ``setup(model, x_train)`` once before training (e.g. initialise biases from data marginals,
        allocate persistent chains); must be deterministic given the model and data.
      * ``loss(model, batch, generator) -> (loss, metrics)``; ``metrics`` are floats for logging.
      * ``param_groups(model, lr, weight_decay)`` optimizer parameter groups (default: one group;
        override to exclude biases from weight decay).
      * ``after_step(model, step)`` after each optimizer step (e.g. re-centering).

    ``loss_bound``: the loop stops the run (``TrainingDiverged``) when the loss is NaN or infinite,
    or finite but larger than this in size: a runaway loss that no healthy run of the family
    reaches (1e8 by default; objectives with bounded-scale losses, such as the GAN's and NCE's
    logistic losses, set lower bounds).

    ``requires``: what the objective needs of the model, checked by the loop before setup:
    "log_prob" (a normalized density), "energy" (an energy E(x) of the data alone, not of
    visible and latent units), or None (the objective checks the model itself).
    """

    config: dict[str, Any]
    loss_bound: ClassVar[float] = 1e8
    requires: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record_config(cls, OBJECTIVE_CLASSES)

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Called once before the first step of a fresh run (not on resume)."""

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        return [model_param_group(model, lr, weight_decay)]

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step."""
