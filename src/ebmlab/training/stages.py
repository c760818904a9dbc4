"""Training in stages: greedy pretraining of each layer, then joint training or fine-tuning, each
stage through the one loop with its own checkpoint, its records in the run's ``metrics.jsonl``
and ``--resume``.

A recipe describes its training as a generator of ``Stage``s. ``run_stages`` trains each stage as
it is yielded, so a later stage can be built from what an earlier one learned (the next layer's
data are the hidden activities of the layer below; the joint model is composed from the
pretrained layers). On resume a stage whose checkpoint says it finished is restored, not trained
again; the stage that was interrupted resumes from its last checkpoint; later stages start fresh.
The run's model is written to ``RUN/checkpoint.safetensors`` by the stage that trains it (or after
the last stage, when every stage trained a part of it, as the greedy layers of a DBN).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..models.base import Model
from ..objectives.base import Objective
from . import checkpoint
from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .logging import METRICS_NAME
from .loop import EpochCallback, TrainResult, train
from .restarts import train_with_restarts

#: Where the checkpoints of stages that train something other than the run's model go.
STAGES_DIR = "stages"


@dataclass
class Stage:
    """One stage of training.

    Attributes:
        name: short identifier ("layer1", "pretrain2", "train", "finetune"), unique in the run.
        module: the model this stage trains (the run's model or a part of it, e.g. one RBM).
        objective: its objective.
        data: its training data (e.g. the activities of the layer below).
        config: its loop settings.
        description: one line shown when the stage starts.
        settings: where the stage's settings come from when they are not the loop flags
            (``--epochs``, ``--lr``, ...), e.g. "--pretrain-epochs, --pretrain-lr"; empty when
            the loop flags apply.
        epoch_callback: passed to the loop (``train``): called after each epoch with
            (module, epoch), its metrics logged as ``eval_*`` entries of the epoch record.
    """

    name: str
    module: Model
    objective: Objective
    data: torch.Tensor
    config: TrainConfig
    description: str = ""
    settings: str = ""
    epoch_callback: EpochCallback | None = None


def stage_checkpoint(stage: Stage, model: Model | None) -> str:
    """The stage's checkpoint path inside the run directory."""
    if stage.module is model:
        return CHECKPOINT_NAME
    return f"{STAGES_DIR}/{stage.name}.safetensors"


def run_stages(
    model: Model | None,
    stages: Iterable[Stage],
    out_dir: str | Path | None,
    *,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    restarts: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[TrainResult | None]:
    """Train every stage in turn (see the module docstring); returns each stage's result (None
    for a stage restored from a finished checkpoint).

    ``model`` is the run's model (None when the stages train separate modules, as
    ``fit_greedy`` does). A run that does not resume starts clean: earlier stage checkpoints
    and metrics in ``out_dir`` are removed, so that a later ``--resume`` never picks up a
    stage of another run."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and not resume and _is_main():
        shutil.rmtree(out / STAGES_DIR, ignore_errors=True)
        (out / METRICS_NAME).unlink(missing_ok=True)
    results: list[TrainResult | None] = []
    names: list[str] = []
    trained_model = False
    for index, stage in enumerate(stages):
        if stage.name in names:
            raise ValueError(f"stages: the name {stage.name!r} is used twice")
        names.append(stage.name)
        trained_model |= stage.module is model
        name = stage_checkpoint(stage, model)
        if log is not None:
            log(_announce(index, stage))
        results.append(_run_stage(stage, out, name, resume, meta, restarts, log))
    if out is not None and model is not None and not trained_model and _is_main():
        io.save(model, out / CHECKPOINT_NAME, meta={**(meta or {}), "stages": names})
    return results


def _run_stage(
    stage: Stage,
    out: Path | None,
    name: str,
    resume: bool,
    meta: dict[str, Any] | None,
    restarts: int,
    log: Callable[[str], None] | None = None,
) -> TrainResult | None:
    path = out / name if out is not None else None
    done = checkpoint.finished_epochs(path) if (resume and path is not None) else None
    if done is not None and done >= stage.config.epochs:
        checkpoint.restore(path, stage.module, stage.objective, f"stage {stage.name}")
        stage.module.to(stage.data.device)
        return None
    stage_meta = {**(meta or {}), "stage": stage.name}
    common = {
        "meta": stage_meta,
        "stage": stage.name,
        "checkpoint_name": name,
        "epoch_callback": stage.epoch_callback,
    }
    started = time.perf_counter()
    if out is not None:  # also with no restarts left: a resume applies those recorded
        result = train_with_restarts(
            stage.module,
            stage.objective,
            stage.data,
            stage.config,
            out,
            max_restarts=restarts,
            resume=done is not None,
            log=log,
            **common,
        )
    else:
        result = train(
            stage.module,
            stage.objective,
            stage.data,
            stage.config,
            out,
            resume=done is not None,
            **common,
        )
    result.seconds = time.perf_counter() - started
    return result


def _announce(index: int, stage: Stage) -> str:
    text = f"stage {index + 1} {stage.name}: {stage.config.epochs} epochs"
    if stage.description:
        text += f", {stage.description}"
    if stage.settings:
        text += f" (settings from {stage.settings})"
    return text


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
