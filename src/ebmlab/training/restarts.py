"""Automatic restarts after a divergence: resume from the last good checkpoint with a new seed
and a lower learning rate (and the objective's own remedies).

A restart is a resume: the same ``train(..., resume=True)`` path that ``--resume`` takes, with a
changed config, so the restarted run keeps its step count, schedule position and optimizer state
from the last good checkpoint (the objective's ``setup`` runs only for a new run, so chains,
offsets and biases are those saved). A divergence before the first checkpoint restarts the run
from the model's initial state instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
#: The key under which checkpoints record the restarts made so far.
RESTARTS_KEY = "restarts"
_RESTART_FIELDS = {
    "attempt",
    "diverged_at_step",
    "quantity",
    "resumed_from_checkpoint",
    "seed",
    "lr",
}


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
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """``train`` that, on ``TrainingDiverged``, restarts from the last good checkpoint with seed +
    1000 and ``lr_factor`` x the learning rate, after calling the objective's ``apply_remedies``
    where it has one (CD with Langevin: twice the Langevin steps, a larger L2 energy penalty).

    Every checkpoint records the restarts made so far (``meta["restarts"]``), and a resumed run
    applies them again before it continues: the settings, remedies and restart budget
    (``max_restarts`` counts over the whole run) are those of the run the checkpoint describes,
    so a run killed at any point and resumed ends as the uninterrupted run does. The attempt's
    ``metrics.jsonl`` is copied to ``metrics-attempt<k>.jsonl`` before a restart (the restart
    then drops the records after the checkpoint), and ``restarts.json`` lists what changed.
    Raises the last ``TrainingDiverged`` once ``max_restarts`` restarts are spent. ``log``
    receives one line per restart (what diverged, where it restarts from, what changed).
    """
    out = Path(out_dir)
    path = out / checkpoint_name
    made = recorded_restarts(path) if resume and path.exists() else []
    for changes in made:
        config = _apply(changes, objective, config)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    while True:
        try:
            return train(
                model,
                objective,
                x_train,
                config,
                out,
                resume=resume,
                meta={**(meta or {}), RESTARTS_KEY: made},
                epoch_callback=epoch_callback,
                stage=stage,
                checkpoint_name=checkpoint_name,
            )
        except TrainingDiverged as error:
            if len(made) >= max_restarts:
                error.restarts = len(made)
                raise
            resume = error.checkpoint is not None
            if not resume:
                model.load_state_dict(initial)
            attempt = len(made) + 1
            changes: dict[str, Any] = {
                "attempt": attempt,
                "diverged_at_step": error.step,
                "quantity": error.quantity,
                "resumed_from_checkpoint": resume,
                "seed": config.seed + 1000,
                "lr": config.lr * lr_factor,
            }
            config = _apply(changes, objective, config)
            made = [*made, changes]
            _record_attempt(out, attempt - 1, made)
            if log is not None:
                start = "the last good checkpoint" if resume else "the initial state"
                log(
                    f"restart {attempt} of {max_restarts} after {error.quantity} diverged at step "
                    f"{error.step}: from {start} with lr {config.lr:.4g}, seed {config.seed}"
                    + "".join(f", {k} {v}" for k, v in changes.items() if k not in _RESTART_FIELDS)
                )


def recorded_restarts(path: Path) -> list[dict[str, Any]]:
    """The restarts the run whose checkpoint is ``path`` has made (oldest first)."""
    from .. import io

    document, _ = io.read_checkpoint(path)
    return list(document.get("meta", {}).get(RESTARTS_KEY, []))


def _apply(changes: dict[str, Any], objective: Objective, config: TrainConfig) -> TrainConfig:
    """One restart's changes: the objective's remedies for that attempt, the new seed and lr."""
    remedies = getattr(objective, "apply_remedies", None)
    if callable(remedies):
        changes.update(remedies(changes["attempt"]))
    return replace(config, seed=int(changes["seed"]), lr=float(changes["lr"]))


def _record_attempt(out: Path, attempt: int, log: list[dict[str, Any]]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    (out / RESTARTS_NAME).write_text(json.dumps(log, indent=2) + "\n")
    metrics = out / METRICS_NAME
    if metrics.exists():
        (out / f"metrics-attempt{attempt}.jsonl").write_text(metrics.read_text())
