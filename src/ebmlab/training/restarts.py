"""Automatic restarts after a divergence: resume from the last good checkpoint with a new seed
and a lower learning rate (and the objective's own remedies).

A restart is a resume: the same ``train(..., resume=True)`` path that ``--resume`` takes, with a
changed config, so the restarted run keeps its step count, schedule position and optimizer state
from the last good checkpoint. A divergence before the first checkpoint restarts the run from the
model's initial state instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..models.base import Model
from ..objectives.base import Objective
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .errors import TrainingDiverged
from .logging import METRICS_NAME
from .loop import EpochCallback, TrainResult, train

RESTARTS_NAME = "restarts.json"


def train_with_restarts(
    model: Model,
    objective: Objective,
    x_train: Any,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    max_restarts: int = 2,
    lr_factor: float = 0.5,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    epoch_callback: EpochCallback | None = None,
    stage: str | None = None,
    checkpoint_name: str = CHECKPOINT_NAME,
) -> TrainResult:
    """``train`` that, on ``TrainingDiverged``, restarts from the last good checkpoint with seed +
    1000 and ``lr_factor`` x the learning rate, after calling the objective's ``apply_remedies``
    where it has one (CD with Langevin: twice the Langevin steps, a larger L2 energy penalty).

    The attempt's ``metrics.jsonl`` is copied to ``metrics-attempt<k>.jsonl`` before the restart
    (the restart then drops the records after the checkpoint), and ``restarts.json`` lists what
    changed. Raises the last ``TrainingDiverged`` after ``max_restarts`` restarts.
    """
    out = Path(out_dir)
    path = out / checkpoint_name
    log: list[dict[str, Any]] = []
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    kwargs = {"meta": meta, "epoch_callback": epoch_callback, "stage": stage}
    for attempt in range(max_restarts + 1):
        try:
            return train(
                model,
                objective,
                x_train,
                config,
                out,
                resume=resume,
                checkpoint_name=checkpoint_name,
                **kwargs,
            )
        except TrainingDiverged as error:
            if attempt == max_restarts:
                raise
            resume = path.exists()
            if not resume:
                model.load_state_dict(initial)
            changes: dict[str, Any] = {
                "attempt": attempt + 1,
                "diverged_at_step": error.step,
                "quantity": error.quantity,
                "resumed_from_checkpoint": resume,
            }
            remedies = getattr(objective, "apply_remedies", None)
            if callable(remedies):
                changes.update(remedies(attempt + 1))
            config = replace(config, seed=config.seed + 1000, lr=config.lr * lr_factor)
            changes.update({"seed": config.seed, "lr": config.lr})
            log.append(changes)
            _record_attempt(out, attempt, log)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _record_attempt(out: Path, attempt: int, log: list[dict[str, Any]]) -> None:
    (out / RESTARTS_NAME).write_text(json.dumps(log, indent=2) + "\n")
    metrics = out / METRICS_NAME
    if metrics.exists():
        (out / f"metrics-attempt{attempt}.jsonl").write_text(metrics.read_text())
