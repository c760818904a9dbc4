"""A run's checkpoint: model, objective, optimizer and random-generator states, and the loop's
position (step, epoch, per-epoch history), in one ``ebmlab.io`` file written atomically.

Resuming reads all of it back, so a resumed run repeats, bit for bit on the same device, what the
uninterrupted run would have done. Every path that continues a run (``--resume``, automatic
restarts, stages skipped because they already finished) goes through ``restore``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..models.base import Model
from ..objectives.base import Objective
from .config import TrainConfig

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class RunState:
    """Where the loop stands: optimizer steps taken, epochs finished, per-epoch records, seconds
    spent training (what a time budget counts, across resumes)."""

    step: int = 0
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Restored:
    """What a checkpoint holds beyond the module weights (already loaded by ``restore``)."""

    state: RunState
    config: dict[str, Any]
    document: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if "optimizer" in self.document:
            group = io.tensor_group(self.tensors, "optimizer")
            optimizer.load_state_dict(
                io.optimizer_state_from_tensors(group, self.document["optimizer"])
            )
            # moments in their parameter's memory layout (checkpoints store them contiguous),
            # so a resumed step is the same arithmetic as the uninterrupted one
            for param, entry in optimizer.state.items():
                for key, value in entry.items():
                    if (
                        isinstance(value, torch.Tensor)
                        and value.dim() > 1  # not Adam's step count (a scalar, kept on the CPU)
                        and value.shape == param.shape
                        and value.stride() != param.stride()
                    ):
                        entry[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)

    def load_generator(self, generator: torch.Generator, rank: int) -> bool:
        """Set ``generator`` to the saved state of ``rank``'s sampling stream (False if none)."""
        rng = io.tensor_group(self.tensors, "rng")
        own = f"sampler{rank}"
        if own in rng:
            generator.set_state(rng[own])
        return own in rng


def restore(path: Path, model: Model, objective: Objective, what: str = "resume") -> Restored:
    """Load the model and objective states saved at ``path`` and return the rest."""
    if not path.exists():
        raise FileNotFoundError(f"{what}: no checkpoint at {path}")
    document, tensors = io.read_checkpoint(path)
    io.load_module_state(model, io.tensor_group(tensors, "model"), what)
    io.load_module_state(objective, io.tensor_group(tensors, "objective"), f"{what} (objective)")
    if document.get("model_class") != type(model).__name__:
        raise io.CheckpointError(
            f"{what}: {path} holds a {document.get('model_class')}, not a {type(model).__name__}"
        )
    state = RunState(
        io.document_field(document, "meta.train_state.step", int, 0),
        io.document_field(document, "meta.train_state.epoch", int, 0),
        io.document_field(document, "meta.train_state.history", list, []),
        io.document_field(document, "meta.train_state.seconds", float, 0.0),
    )
    config = io.document_field(document, "meta.train_config", dict, {})
    return Restored(state, dict(config), document, tensors)


def finished_epochs(path: Path) -> int | None:
    """Epochs finished by the run whose checkpoint is ``path`` (None: no checkpoint)."""
    if not path.exists():
        return None
    document, _ = io.read_checkpoint(path)
    return io.document_field(document, "meta.train_state.epoch", int, 0)


def save(
    path: Path,
    model: Model,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Tensor],
    config: TrainConfig,
    state: RunState,
    meta: dict[str, Any],
) -> None:
    """Write the checkpoint (atomically: a killed write leaves the previous one)."""
    run_meta = {**meta, "train_config": asdict(config)}
    run_meta.setdefault("seed", config.seed)
    run_meta["train_state"] = {
        "step": state.step,
        "epoch": state.epoch,
        "history": state.history,
        "seconds": state.seconds,
    }
    io.save(
        model, path, objective=objective, optimizer=optimizer, generators=generators, meta=run_meta
    )
