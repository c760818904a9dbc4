"""Checkpoints: tensors in safetensors, everything else in JSON, nothing pickled.

One file holds a whole checkpoint. The safetensors header's metadata carries one JSON document
(key ``"ebmlab"``) with the model's class and constructor arguments, the ebmlab version, and any
run information the caller adds (dataset, seed, step, metrics, optimizer hyperparameters, the
objective's class and arguments). Tensors are stored under prefixes:

    model.<name>       model parameters and buffers
    objective.<name>   objective state (persistent chains, replay buffers, running averages)
    optimizer.<i>.<k>  optimizer state per parameter index
    rng.<name>         random generator states (so a resumed run repeats an uninterrupted one)

The JSON also records a SHA-256 digest over every tensor's name, dtype, shape and bytes; ``load``
recomputes it, so a truncated, corrupted or edited file is refused with a clear error. Writes go
to a temporary file in the same folder, which is renamed over the target only once complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .models.base import MODEL_CLASSES, Model
from .objectives.base import OBJECTIVE_CLASSES, Objective

FORMAT = "ebmlab-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, tampered with, or names an unknown class."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model, its metadata, and the remaining tensors."""

    model: Model
    meta: dict[str, Any]
    objective: Objective | None = None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors stored under ``prefix.`` with the prefix stripped."""
        return tensor_group(self.tensors, prefix)


def tensor_group(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors stored under ``prefix.``, with the prefix stripped."""
    start = prefix + "."
    return {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        sha.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return sha.hexdigest()


def optimizer_state_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state_dict into tensors and a JSON-safe remainder."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(
    tensors: dict[str, torch.Tensor], info: dict[str, Any]
) -> dict[str, Any]:
    """Inverse of ``optimizer_state_to_tensors``: a state_dict for ``Optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entry in info.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": info["param_groups"]}


def _module_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.{name}": t.detach().cpu().contiguous()
        for name, t in module.state_dict().items()
        if isinstance(t, torch.Tensor)
    }


def save(
    model: Model,
    path: str | os.PathLike[str],
    *,
    objective: Objective | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generators: dict[str, torch.Generator | torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        model: an ``ebmlab.models.Model`` (its class and ``config`` are recorded).
        path: target file (conventionally ``*.safetensors``).
        objective: training objective whose state (chains, buffers) should be kept.
        optimizer: optimizer whose state should be kept (for resuming).
        generators: named ``torch.Generator``s (or their ``get_state()`` tensors) to keep.
        meta: JSON-safe run information (dataset, seed, step, metrics, ...).
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"model: expected an ebmlab.models.Model, got {type(model).__name__}; only ebmlab "
            "models can be rebuilt from a checkpoint without pickle"
        )
    from . import __version__

    tensors = _module_tensors(model, "model")
    document: dict[str, Any] = {
        "format": FORMAT,
        "ebmlab_version": __version__,
        "model_class": type(model).__name__,
        "model_config": model.config,
        "meta": meta or {},
    }
    if objective is not None:
        tensors.update(_module_tensors(objective, "objective"))
        document["objective_class"] = type(objective).__name__
        document["objective_config"] = getattr(objective, "config", {})
    if optimizer is not None:
        opt_tensors, opt_info = optimizer_state_to_tensors(optimizer)
        tensors.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
        document["optimizer"] = {"class": type(optimizer).__name__, **opt_info}
    for name, generator in (generators or {}).items():
        state = generator.get_state() if isinstance(generator, torch.Generator) else generator
        tensors[f"rng.{name}"] = state.cpu()
    document["sha256"] = _digest(tensors)
    try:
        header = json.dumps(document, allow_nan=True)
    except TypeError as error:
        raise TypeError(f"meta: checkpoint metadata must be JSON-serializable ({error})") from error
    payload = st_save(tensors, metadata={"ebmlab": header})

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        # mkstemp creates the file private (0600); give it the permissions a plain open would
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint file; returns (JSON document, tensors)."""
    source = Path(path)
    if source.is_dir():
        source = source / "checkpoint.safetensors"
    if not source.exists():
        raise CheckpointError(f"checkpoint {source}: file not found")
    data = source.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        document = json.loads(header["__metadata__"]["ebmlab"])
    except (SafetensorError, ValueError, KeyError, TypeError, OverflowError) as error:
        raise CheckpointError(
            f"checkpoint {source}: not a readable ebmlab checkpoint (truncated or corrupted: "
            f"{error})"
        ) from error
    if document.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {source}: unknown format {document.get('format')!r}, expected {FORMAT!r}"
        )
    if _digest(tensors) != document.get("sha256"):
        raise CheckpointError(
            f"checkpoint {source}: tensor data does not match the recorded SHA-256 digest "
            "(the file was modified or corrupted)"
        )
    return document, tensors


def load_module_state(module: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Load ``tensors`` into ``module``: parameters are copied (shapes must match), buffers are
    replaced (their shape may differ, e.g. persistent chains allocated during training)."""
    own = dict(module.named_parameters())
    for name, value in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if name in own:
            if own[name].shape != value.shape:
                raise CheckpointError(
                    f"{what}: parameter {name} has shape {tuple(value.shape)} in the checkpoint "
                    f"but {tuple(own[name].shape)} in the rebuilt model"
                )
            with torch.no_grad():
                own[name].copy_(value)
        elif leaf in owner._buffers:
            owner._buffers[leaf] = value.to(
                owner._buffers[leaf].device if owner._buffers[leaf] is not None else "cpu"
            )
        else:
            raise CheckpointError(f"{what}: the checkpoint has {name!r}, which the model lacks")


def _build(registry: dict[str, Any], name: str, config: dict[str, Any], what: str) -> Any:
    if name not in registry:
        # every model and objective class lives in the library's own packages: importing them
        # fills the registries (nothing of the application layer is needed to rebuild a model)
        from . import models, objectives  # noqa: F401

    if name not in registry:
        raise CheckpointError(
            f"{what}: unknown class {name!r}; known: {', '.join(sorted(registry))}"
        )
    try:
        return registry[name](**config)
    except TypeError as error:
        raise CheckpointError(f"{what}: cannot rebuild {name} from {config}: {error}") from error


def load_checkpoint(path: str | os.PathLike[str], device: str | None = None) -> Checkpoint:
    """Read a checkpoint and rebuild its model (and objective, if one was saved)."""
    document, tensors = read_checkpoint(path)
    model = _build(MODEL_CLASSES, document["model_class"], document["model_config"], str(path))
    ckpt = Checkpoint(model=model, meta=document, tensors=tensors)
    load_module_state(model, ckpt.group("model"), f"checkpoint {path}")
    if "objective_class" in document:
        objective = _build(
            OBJECTIVE_CLASSES, document["objective_class"], document["objective_config"], str(path)
        )
        load_module_state(objective, ckpt.group("objective"), f"checkpoint {path} (objective)")
        ckpt.objective = objective
    if device is not None:
        model.to(device)
        if ckpt.objective is not None:
            ckpt.objective.to(device)
    return ckpt


def load(path: str | os.PathLike[str], device: str | None = None) -> Model:
    """Rebuild a model from a checkpoint written by ``save`` (or a run directory)."""
    return load_checkpoint(path, device).model
