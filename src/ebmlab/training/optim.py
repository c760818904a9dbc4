"""The optimizer and its per-step hyperparameters (learning-rate schedule, momentum warm-up)."""

from __future__ import annotations

from typing import Any

import torch

from .config import TrainConfig


def make_optimizer(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over the objective's parameter groups."""
    fused = _fusable(groups)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum_at(0), fused=fused)
    return torch.optim.Adam(groups, lr=config.lr, fused=fused)


def _fusable(groups: list[dict[str, Any]]) -> bool | None:
    """True when every parameter can take the fused optimizer kernels (one kernel for all
    tensors instead of one per tensor: the update costs less than the loop around it)."""
    params = [p for group in groups for p in group["params"]]
    ok = bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )
    return True if ok else None


def set_hyperparameters(
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    step: int,
    total: int,
    epoch: int,
    seconds: float = 0.0,
) -> float:
    """Apply the schedule's learning rate (and SGD momentum) for ``step``, ``seconds`` into
    training; returns the lr."""
    factor = config.lr_factor(step, total, seconds)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
        if config.optimizer == "sgd":
            group["momentum"] = config.momentum_at(epoch)
    return optimizer.param_groups[0]["lr"]
