"""Checkpoints: tensors in safetensors, everything else in JSON, nothing pickled.

One file holds a whole checkpoint. The safetensors header's metadata carries one JSON document
(key ``"ebmlab"``) with the model's class and constructor arguments, the ebmlab version, and any
run information the caller adds (dataset, seed, step, metrics, optimizer hyperparameters, the
objective's class and arguments). Tensors are stored under prefixes:

    model.<name>       model parameters and buffers
    objective.<name>   objective state (persistent chains, replay buffers, running averages)
    optimizer.<i>.<k>  optimizer state per parameter index
    rng.<name>         random generator states (so a resumed run repeats an uninterrupted one)

Integrity. The document records a SHA-256 digest (``checkpoint_digest``) over

    FORMAT | canonical JSON of the document without its digest | every tensor's name, dtype,
    shape and bytes, in name order

where the canonical JSON has sorted keys and no whitespace, so re-serializing a header changes
nothing while any edit of a value (a constructor argument, ``meta.train_state.epoch``, an
optimizer's ``base_lr``) or of a tensor byte is refused. The digest is not a signature: it tells
a corrupted or edited file from the written one, not a trusted writer from a hostile one.

Nothing in a file is trusted before it is checked, so that a hostile file is refused with a
``CheckpointError`` before anything is built or allocated from it:

1. the header: at most ``MAX_HEADER_BYTES``, UTF-8, JSON nested at most ``MAX_DEPTH`` levels
   (measured without parsing, so no recursion);
2. the document: an object with the required keys of the required types, registered classes,
   constructor arguments that bind to the class's constructor signature;
3. the tensors: names under the four prefixes, generator states as byte vectors, the digest;
4. the model: built first on the ``meta`` device (no memory), its parameter shapes compared with
   the stored ones and its size with the stored size; only then is the real model built and
   loaded. The meta build runs under an allocation budget that refuses, before it runs, the
   first tensor operation taking the constructor past ``ALLOCATION_FACTOR`` times the stored
   elements plus ``ALLOCATION_SLACK`` (or past ``TENSOR_OPS_FACTOR`` times the stored tensors
   plus ``TENSOR_OPS_SLACK`` allocating operations). A constructor that computes from tensor
   data, which the meta device cannot run, is built for real under the same budget, which is
   then its size check. What a constructor does in plain Python before its first tensor
   operation is not bounded.

Files of the previous format (``ebmlab-checkpoint-1``, whose digest covered the tensors only)
still load, with a ``LegacyCheckpointWarning``, since their metadata cannot be verified;
``upgrade`` rewrites one in the current format. Writes go to a temporary file in the same folder,
which is renamed over the target only once complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from .models.base import MODEL_CLASSES, Model
from .objectives.base import OBJECTIVE_CLASSES, Objective
from .validation import InstanceOf, resolve_device

FORMAT = "ebmlab-checkpoint-2"
#: Formats still read (with a ``LegacyCheckpointWarning``): their digest covers the tensors only.
LEGACY_FORMATS = ("ebmlab-checkpoint-1",)
#: Largest safetensors header (tensor table and metadata) read, in bytes.
MAX_HEADER_BYTES = 8 * 2**20
#: Deepest nesting of JSON arrays and objects read, in the header and in the document.
MAX_DEPTH = 32
#: A rebuilt module may allocate ALLOCATION_FACTOR * (stored elements) + ALLOCATION_SLACK
#: tensor elements in all while its constructor runs, and hold as many in its state.
ALLOCATION_FACTOR = 16
ALLOCATION_SLACK = 2**24
#: A constructor may run at most TENSOR_OPS_FACTOR * (stored tensors) + TENSOR_OPS_SLACK
#: allocating tensor operations (so that recorded arguments asking for a million layers are
#: refused before they are built, on the meta device too).
TENSOR_OPS_FACTOR = 64
TENSOR_OPS_SLACK = 4096

_PREFIXES = ("model", "objective", "optimizer", "rng")
_REQUIRED: dict[str, type] = {
    "format": str,
    "ebmlab_version": str,
    "model_class": str,
    "model_config": dict,
    "meta": dict,
    "sha256": str,
}
_OPTIONAL: dict[str, type] = {"objective_class": str, "objective_config": dict, "optimizer": dict}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TYPE_NAMES = {str: "a string", dict: "a JSON object", list: "a JSON array", int: "an integer"}


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, tampered with, or names an unknown class."""


class LegacyCheckpointWarning(UserWarning):
    """A checkpoint of an earlier format was read: its metadata is not covered by its digest."""


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


# ----- digests ------------------------------------------------------------------------------------
def canonical_json(document: Mapping[str, Any]) -> bytes:
    """``document`` as canonical JSON: sorted keys, no whitespace, ASCII, NaN spelt ``NaN``."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    ).encode("ascii")


def _hash_tensors(sha: Any, tensors: Mapping[str, torch.Tensor], *, legacy: bool) -> None:
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        label = f"{name}|{t.dtype}|{tuple(t.shape)}|"
        sha.update((label if legacy else f"{len(name)}:{label}").encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def checkpoint_digest(document: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over ``FORMAT``, the canonical JSON of ``document`` (its ``"sha256"`` entry
    left out) and every tensor's name, dtype, shape and bytes: what ``save`` records and
    ``read_checkpoint`` recomputes."""
    body = canonical_json({k: v for k, v in document.items() if k != "sha256"})
    sha = hashlib.sha256()
    sha.update(f"{FORMAT}\n{len(body)}\n".encode())
    sha.update(body)
    _hash_tensors(sha, tensors, legacy=False)
    return sha.hexdigest()


def _legacy_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """The digest of ``ebmlab-checkpoint-1``: the tensors only."""
    sha = hashlib.sha256()
    _hash_tensors(sha, tensors, legacy=True)
    return sha.hexdigest()


# ----- optimizer state ----------------------------------------------------------------------------
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
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
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


# ----- writing ------------------------------------------------------------------------------------
_OPTIMIZER = InstanceOf(torch.optim.Optimizer, description="a torch.optim.Optimizer") | None
_OBJECTIVE = InstanceOf(Objective, description="an ebmlab objective (ebmlab.objectives)") | None
_GENERATORS = (
    InstanceOf(Mapping, description="a dict of names to torch.Generators (or their get_state())")
    | None
)
_GENERATOR_STATE = InstanceOf(
    (torch.Generator, torch.Tensor), description="a torch.Generator or its get_state() tensor"
)
_GENERATOR_NAME = InstanceOf(str, description="str keys (the names of the generators)")


def _check_path_type(path: Any, what: str) -> None:
    """Refuse a ``path`` that is not a path at all (None, a number, an open file)."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path: expected {what} (str or os.PathLike), got {type(path).__name__}")


def _check_target(path: Any) -> None:
    """Refuse a ``path`` that cannot name the checkpoint file (a directory, not a path), before
    anything is written: the atomic write would otherwise fail on its temporary file."""
    _check_path_type(path, "a file path")
    if Path(path).is_dir():
        raise IsADirectoryError(
            f"path: {os.fspath(path)} is a directory; give a file name such as "
            f"{Path(path) / 'model.safetensors'}"
        )


def _write_atomically(payload: bytes, path: str | os.PathLike[str]) -> Path:
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


def _payload(document: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of a checkpoint, its digest recorded; refuses a document that
    ``read_checkpoint`` would refuse (too deep, too large, malformed)."""
    try:
        text = json.dumps(document, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"meta: checkpoint metadata must be JSON-serializable ({error})") from error
    except RecursionError as error:
        raise ValueError(
            f"meta: checkpoint metadata nests deeper than {MAX_DEPTH} levels"
        ) from error
    # what a reader will see (JSON turns tuples into lists and keys into strings): the digest
    # and the checks are those of the round-tripped document
    _check_depth(text, "meta: checkpoint metadata", ValueError)
    seen = json.loads(text)
    seen["sha256"] = checkpoint_digest(seen, tensors)
    try:
        _check_document(seen, "checkpoint metadata")
    except CheckpointError as error:
        raise ValueError(f"cannot write a checkpoint: {error}") from error
    payload = st_save(tensors, metadata={"ebmlab": json.dumps(seen, allow_nan=True)})
    size = int.from_bytes(payload[:8], "little")
    if size > MAX_HEADER_BYTES:
        raise ValueError(
            f"meta: the checkpoint header would be {size} bytes, more than the "
            f"{MAX_HEADER_BYTES} a reader accepts; keep large data in tensors"
        )
    return payload


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
        meta: JSON-safe run information (dataset, seed, step, metrics, ...); the whole document
            nests at most ``MAX_DEPTH`` levels (``meta`` itself is the second).
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"model: expected an ebmlab.models.Model, got {type(model).__name__}; only ebmlab "
            "models can be rebuilt from a checkpoint without pickle"
        )
    _check_target(path)
    _OBJECTIVE.check(objective, "objective")
    _OPTIMIZER.check(optimizer, "optimizer")
    _GENERATORS.check(generators, "generators")
    for name, generator in (generators or {}).items():
        _GENERATOR_NAME.check(name, "generators")
        _GENERATOR_STATE.check(generator, f"generators[{name!r}]")
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
    return _write_atomically(_payload(document, tensors), path)


# ----- reading: header and document ---------------------------------------------------------------
def _check_depth(text: str, what: str, error: type[Exception] = CheckpointError) -> None:
    """Refuse JSON text whose arrays and objects nest deeper than ``MAX_DEPTH``, counting the
    brackets outside strings (no parsing, so no recursion however deep the text)."""
    skeleton = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    if not skeleton.size:
        return
    step = np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64)
    step -= np.isin(skeleton, (ord("]"), ord("}")))
    depth = int(np.cumsum(step).max())
    if depth > MAX_DEPTH:
        raise error(f"{what}: JSON nested {depth} levels deep, more than the {MAX_DEPTH} allowed")


def _parse_json(text: str, what: str) -> Any:
    _check_depth(text, what)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{what}: not valid JSON ({error})") from error


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, float) else type(value).__name__


def _expect(value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"{what}: expected {_TYPE_NAMES[kind]}, got {_kind(value)}")


def _entry(node: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """``node[key]``, refused when missing or not of ``kind``."""
    if key not in node:
        raise CheckpointError(f"{what}.{key}: missing")
    _expect(node[key], kind, f"{what}.{key}")
    return node[key]


def _check_optimizer(info: dict[str, Any], what: str) -> None:
    _entry(info, "class", str, what)
    for i, group in enumerate(_entry(info, "param_groups", list, what)):
        _expect(group, dict, f"{what}.param_groups[{i}]")
        for j, index in enumerate(_entry(group, "params", list, f"{what}.param_groups[{i}]")):
            _expect(index, int, f"{what}.param_groups[{i}].params[{j}]")
    scalars = info.get("scalars", {})
    _expect(scalars, dict, f"{what}.scalars")
    for index, entry in scalars.items():
        if not index.isdecimal():
            raise CheckpointError(f"{what}.scalars: keys are parameter indices, got {index[:40]!r}")
        _expect(entry, dict, f"{what}.scalars[{index!r}]")


def _check_document(document: Any, what: str) -> None:
    """The document's structure: a known format, the required keys with the required types,
    nothing unknown."""
    _expect(document, dict, what)
    if "format" in document:
        _expect(document["format"], str, f"{what}: format")
        if document["format"] not in (FORMAT, *LEGACY_FORMATS):
            raise CheckpointError(
                f"{what}: unknown format {document['format'][:80]!r}, expected {FORMAT!r}"
            )
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        raise CheckpointError(f"{what}: missing {', '.join(missing)}")
    unknown = sorted(set(document) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        shown = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise CheckpointError(f"{what}: unknown entries {shown}")
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key in document:
            _expect(document[key], kind, f"{what}: {key}")
    if ("objective_class" in document) != ("objective_config" in document):
        raise CheckpointError(f"{what}: objective_class and objective_config go together")
    if not _HEX64.fullmatch(document["sha256"]):
        raise CheckpointError(f"{what}: sha256: expected 64 lowercase hex digits")
    if "optimizer" in document:
        _check_optimizer(document["optimizer"], f"{what}: optimizer")


def _registered(registry: dict[str, Any], name: str, what: str) -> type:
    if name not in registry:
        # every model and objective class lives in the library's own packages: importing them
        # fills the registries (nothing of the application layer is needed to rebuild a model)
        from . import models, objectives  # noqa: F401

    if name not in registry:
        raise CheckpointError(
            f"{what}: unknown class {name[:80]!r}; known: {', '.join(sorted(registry))}"
        )
    return registry[name]


def _check_arguments(cls: type, config: dict[str, Any], what: str) -> None:
    """``config`` binds to the constructor's signature: no unknown, no missing argument."""
    signature = inspect.signature(cls.__init__)
    try:
        signature.bind(None, **config)
    except TypeError as error:
        takes = ", ".join(list(signature.parameters)[1:])
        raise CheckpointError(
            f"{what}: the recorded arguments do not fit {cls.__name__} ({error}; it takes {takes})"
        ) from error


def _read_header(data: bytes, source: Path) -> tuple[dict[str, Any], str]:
    """The safetensors header (checked) and the ebmlab document's JSON text."""
    where = f"checkpoint {source}: not a readable ebmlab checkpoint (truncated or corrupted"
    if len(data) < 8:
        raise CheckpointError(f"{where}: {len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise CheckpointError(
            f"{where}: the header claims {size} bytes, the file has {len(data) - 8} after it)"
        )
    if size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"checkpoint {source}: header of {size} bytes, more than the {MAX_HEADER_BYTES} read"
        )
    try:
        text = data[8 : 8 + size].decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(
            f"checkpoint {source}: the header is not valid UTF-8 ({error})"
        ) from error
    header = _parse_json(text, f"checkpoint {source}: header")
    _expect(header, dict, f"checkpoint {source}: header")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or "ebmlab" not in metadata:
        raise CheckpointError(f"checkpoint {source}: no ebmlab metadata in the header")
    document = metadata["ebmlab"]
    _expect(document, str, f"checkpoint {source}: header __metadata__.ebmlab")
    return header, document


def _check_tensors(document: dict[str, Any], tensors: dict[str, torch.Tensor], what: str) -> None:
    for name, tensor in tensors.items():
        prefix, _, rest = name.partition(".")
        if prefix not in _PREFIXES or not rest:
            raise CheckpointError(
                f"{what}: tensor {name[:80]!r} is under none of the prefixes "
                f"{', '.join(p + '.' for p in _PREFIXES)}"
            )
        if prefix == "objective" and "objective_class" not in document:
            raise CheckpointError(f"{what}: tensor {name[:80]!r} but no objective_class")
        if prefix == "optimizer":
            index, _, key = rest.partition(".")
            if "optimizer" not in document or not index.isdecimal() or not key:
                raise CheckpointError(
                    f"{what}: tensor {name[:80]!r}: optimizer state is named "
                    "optimizer.<parameter index>.<key> and needs the optimizer entry"
                )
        if prefix == "rng" and (tensor.dtype != torch.uint8 or tensor.dim() != 1):
            raise CheckpointError(
                f"{what}: tensor {name[:80]!r}: a generator state is a 1-D uint8 tensor, got "
                f"{tensor.dtype} of shape {tuple(tensor.shape)}"
            )


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint file; returns (JSON document, tensors).

    Verified: the header (size, UTF-8, nesting), the document's structure, that its classes are
    registered and its recorded arguments bind to their constructors, the tensor names, and the
    SHA-256 digest over document and tensors. Every refusal is a ``CheckpointError``.
    """
    _check_path_type(path, "a checkpoint file or run directory path")
    source = Path(path)
    if source.is_dir():
        source = source / "checkpoint.safetensors"
    if not source.exists():
        raise CheckpointError(f"checkpoint {source}: file not found")
    data = source.read_bytes()
    _, text = _read_header(data, source)
    what = f"checkpoint {source}"
    document = _parse_json(text, f"{what}: metadata")
    _check_document(document, f"{what}: metadata")
    legacy = document["format"] in LEGACY_FORMATS
    model_cls = _registered(MODEL_CLASSES, document["model_class"], what)
    _check_arguments(model_cls, document["model_config"], f"{what}: model_config")
    if "objective_class" in document:
        objective_cls = _registered(OBJECTIVE_CLASSES, document["objective_class"], what)
        _check_arguments(objective_cls, document["objective_config"], f"{what}: objective_config")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as error:
        raise CheckpointError(
            f"{what}: not a readable ebmlab checkpoint (truncated or corrupted: {error})"
        ) from error
    _check_tensors(document, tensors, what)
    if legacy:
        if _legacy_digest(tensors) != document["sha256"]:
            raise CheckpointError(
                f"{what}: tensor data does not match the recorded SHA-256 digest (the file was "
                "modified or corrupted)"
            )
        warnings.warn(
            f"{what}: format {document['format']!r} has a digest of the tensors only, so its "
            f"metadata (constructor arguments, run state) cannot be verified; "
            f"ebmlab.io.upgrade rewrites it as {FORMAT!r}",
            LegacyCheckpointWarning,
            stacklevel=2,
        )
    elif checkpoint_digest(document, tensors) != document["sha256"]:
        raise CheckpointError(
            f"{what}: metadata or tensor data does not match the recorded SHA-256 digest (the "
            "file was modified or corrupted)"
        )
    return document, tensors


def document_field(document: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    """The entry at dotted ``key`` (``"meta.train_state.epoch"``) of a checkpoint document,
    ``default`` when absent, refused with a ``CheckpointError`` naming ``key`` when it (or an
    object on the way) has another type. ``kind`` is ``int``, ``float``, ``str``, ``list`` or
    ``dict``; an ``int`` is a ``float`` too, a boolean is neither."""
    node: Any = document
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping):
            raise CheckpointError(
                f"checkpoint metadata: {'.'.join(parts[:depth])}: expected a JSON object, got "
                f"{_kind(node)}"
            )
        if part not in node:
            return default
        node = node[part]
    kinds = (int, float) if kind is float else (kind,)
    if not isinstance(node, kinds) or (kind in (int, float) and isinstance(node, bool)):
        wanted = "a number" if kind is float else _TYPE_NAMES[kind]
        raise CheckpointError(f"checkpoint metadata: {key}: expected {wanted}, got {_kind(node)}")
    return node


def upgrade(path: str | os.PathLike[str]) -> Path:
    """Rewrite a checkpoint of a ``LEGACY_FORMATS`` format as ``FORMAT``, in place (atomically),
    keeping every tensor and entry: do this only for a file whose metadata is trusted, since the
    earlier digest could not vouch for it. A file already in ``FORMAT`` is left as it is."""
    source = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyCheckpointWarning)
        document, tensors = read_checkpoint(source)
    if source.is_dir():
        source = source / "checkpoint.safetensors"
    if document["format"] == FORMAT:
        return source
    document = {**document, "format": FORMAT}
    return _write_atomically(_payload(document, tensors), source)


# ----- rebuilding modules -------------------------------------------------------------------------
class _BudgetExceeded(Exception):
    """Raised inside a constructor by ``_ConstructionBudget``; reported as a CheckpointError."""


def _allocates(func: Any) -> bool:
    """Whether an aten operator returns new storage (not a view, nor an in-place result)."""
    return all(ret.alias_info is None for ret in func._schema.returns)


def _shapes(outputs: Any) -> list[tuple[int, ...]]:
    leaves, _ = tree_flatten(outputs)
    return [tuple(t.shape) for t in leaves if isinstance(t, torch.Tensor)]


class _ConstructionBudget(TorchDispatchMode):
    """Refuse, before it runs, the tensor operation that takes a constructor past ``elements``
    allocated elements in all, or past ``operations`` allocating operations.

    An operation's output shapes are worked out first on the ``meta`` device (free); operations
    the meta device cannot run (``nonzero``, ``item``: data-dependent ones, whose outputs are no
    larger than their inputs) are counted after they ran. On the meta device itself the count is
    the same: a tensor over the budget there would be refused in the real build anyway, and
    stopping at it keeps a constructor from going on to work in proportion to it.
    """

    def __init__(self, elements: int, operations: int) -> None:
        super().__init__()
        self.elements, self.operations = elements, operations
        self.used = self.ops = 0
        #: why the constructor was stopped, and the shape that stopped it
        self.refusal: tuple[str, tuple[int, ...] | None] | None = None

    def _charge(self, shapes: list[tuple[int, ...]]) -> None:
        self.ops += 1
        self.used += sum(math.prod(shape) for shape in shapes)
        if self.ops > self.operations:
            self.refusal = (f"more than {self.operations} allocating tensor operations", None)
        elif self.used > self.elements:
            self.refusal = (
                f"more than {self.elements} tensor elements",
                max(shapes, key=math.prod, default=None),
            )
        if self.refusal:
            raise _BudgetExceeded(self.refusal[0])

    def _predict(
        self, func: Any, args: Any, kwargs: dict[str, Any]
    ) -> list[tuple[int, ...]] | None:
        order = [a.name for a in func._schema.arguments]
        leaves, _ = tree_flatten((args, kwargs))
        if "size" in order and not any(isinstance(x, torch.Tensor) for x in leaves):
            at = order.index("size")
            size = args[at] if at < len(args) else kwargs.get("size")
            if isinstance(size, list | tuple) and all(isinstance(s, int) for s in size):
                return [tuple(size)]  # a factory: its size is its argument
        meta_args, meta_kwargs = tree_map(
            lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x, (args, kwargs)
        )
        if "device" in order:
            meta_kwargs["device"] = torch.device("meta")
        if "generator" in order:
            meta_kwargs["generator"] = None
        try:
            return _shapes(func(*meta_args, **meta_kwargs))
        except Exception:
            return None

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Any = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if self.refusal:
            raise _BudgetExceeded(self.refusal[0])
        if not _allocates(func):
            return func(*args, **kwargs)
        leaves, _ = tree_flatten((args, kwargs))
        tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
        device = kwargs.get("device")
        if (tensors and all(t.is_meta for t in tensors)) or (
            not tensors and device is not None and torch.device(device).type == "meta"
        ):
            out = func(*args, **kwargs)  # on the meta device: nothing is allocated
            self._charge(_shapes(out))
            return out
        if tensors and torch.Tag.pointwise in func.tags:
            predicted: list[tuple[int, ...]] | None = [
                tuple(torch.broadcast_shapes(*(t.shape for t in tensors)))
            ]
        else:
            predicted = self._predict(func, args, kwargs)
        if predicted is not None:
            self._charge(predicted)
        out = func(*args, **kwargs)
        if predicted is None:
            self._charge(_shapes(out))
        return out


def _closest(stored: dict[str, torch.Tensor], shape: tuple[int, ...]) -> str | None:
    """The one stored tensor whose shape differs from ``shape`` in exactly one dimension."""
    near = [
        name
        for name, t in stored.items()
        if t.dim() == len(shape) and sum(a != b for a, b in zip(t.shape, shape)) == 1
    ]
    return near[0] if len(near) == 1 else None


@contextlib.contextmanager
def _budget(
    cls: type, config: dict[str, Any], stored: dict[str, torch.Tensor], prefix: str, what: str
) -> Iterator[_ConstructionBudget]:
    """Run a constructor under the allocation budget of the ``stored`` tensors (see
    ``ALLOCATION_FACTOR``, ``TENSOR_OPS_FACTOR``)."""
    stored_elements = sum(t.numel() for t in stored.values())
    mode = _ConstructionBudget(
        ALLOCATION_FACTOR * stored_elements + ALLOCATION_SLACK,
        TENSOR_OPS_FACTOR * len(stored) + TENSOR_OPS_SLACK,
    )

    def refused() -> CheckpointError:
        assert mode.refusal is not None
        reason, shape = mode.refusal
        tail = (
            f"refused before allocating it: {reason} for the {stored_elements} elements in "
            f"{len(stored)} tensors stored"
        )
        if shape is None:
            return CheckpointError(
                f"{what}: building {cls.__name__} from the recorded arguments needs {tail}"
            )
        name = _closest(stored, shape)
        held = set(stored[name].shape) if name else {d for t in stored.values() for d in t.shape}
        given = f"{_shape(shape)}{_arguments_giving(config, set(shape) - held)}"
        if name is None:
            return CheckpointError(
                f"{what}: the recorded arguments of {cls.__name__} give a tensor of shape "
                f"{given}; {tail}"
            )
        return CheckpointError(
            f"{what}: {prefix}.{name}: the checkpoint stores {_shape(stored[name].shape)} but "
            f"the recorded arguments give {given}; {tail}"
        )

    try:
        with mode:
            yield mode
    except Exception as error:
        # however the constructor passed the refusal on, the budget's message is the one given
        if mode.refusal:
            raise refused() from error
        raise
    if mode.refusal:
        raise refused()


def _construct(cls: type, config: dict[str, Any], what: str) -> Any:
    try:
        return cls(**config)
    except (CheckpointError, _BudgetExceeded):
        raise
    except Exception as error:
        raise CheckpointError(
            f"{what}: cannot rebuild {cls.__name__} from the recorded arguments: {error}"
        ) from error


def _shape(shape: Any) -> str:
    return str(tuple(int(s) for s in shape))


def _arguments_giving(config: dict[str, Any], values: set[int]) -> str:
    """' (recorded n_hidden = 10000000)': the recorded integer arguments equal to ``values``."""
    named = [
        f"{key} = {value}"
        for key, value in config.items()
        if not isinstance(value, bool)
        and (
            (isinstance(value, int) and value in values)
            or (isinstance(value, list) and any(v in values for v in value if type(v) is int))
        )
    ]
    return f" (recorded {', '.join(named)})" if named else ""


def _meta_state(
    cls: type, config: dict[str, Any], stored: dict[str, torch.Tensor], what: str
) -> tuple[set[str], dict[str, tuple[int, ...]], set[str]] | None:
    """(parameter names, state shapes) of ``cls(**config)`` built on the meta device, or None
    when the constructor computes from tensor data, which the meta device does not hold."""
    with _budget(cls, config, stored, "model", what), warnings.catch_warnings():
        # the real build that follows gives the constructor's warnings
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                model = cls(**config)
        except _BudgetExceeded:
            raise
        except Exception:
            return None
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    shapes = {name: tuple(t.shape) for name, t in model.named_buffers(remove_duplicate=False)}
    shapes.update(
        {name: tuple(t.shape) for name, t in model.named_parameters(remove_duplicate=False)}
    )
    # buffers registered as None (filled during training) take whatever the checkpoint holds
    empty = {
        f"{owner}.{leaf}" if owner else leaf
        for owner, module in model.named_modules(remove_duplicate=False)
        for leaf, buffer in module._buffers.items()
        if buffer is None
    }
    return params, shapes, empty


def _check_meta_shapes(
    cls: type, config: dict[str, Any], stored: dict[str, torch.Tensor], what: str
) -> bool:
    """Compare the model ``config`` gives (built on the meta device) with the stored tensors:
    every parameter stored with its shape, no more state than the allocation budget. False when
    the model cannot be built on the meta device."""
    state = _meta_state(cls, config, stored, what)
    if state is None:
        return False
    params, shapes, empty = state
    for name in sorted(params):
        if name not in stored:
            raise CheckpointError(
                f"{what}: model.{name}: the recorded arguments give a parameter of shape "
                f"{_shape(shapes[name])} that the checkpoint does not store"
            )
        if tuple(stored[name].shape) != shapes[name]:
            extra = set(shapes[name]) - set(stored[name].shape)
            raise CheckpointError(
                f"{what}: model.{name}: the checkpoint stores {_shape(stored[name].shape)} but "
                f"the recorded arguments give {_shape(shapes[name])}"
                f"{_arguments_giving(config, extra)}"
            )
    for name in sorted(set(stored) - set(shapes) - empty):
        raise CheckpointError(f"{what}: the checkpoint has 'model.{name}', which the model lacks")
    stored_elements = sum(t.numel() for t in stored.values())
    limit = ALLOCATION_FACTOR * stored_elements + ALLOCATION_SLACK
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > limit:
        name = max(shapes, key=lambda n: math.prod(shapes[n]))
        held = _shape(stored[name].shape) if name in stored else "nothing"
        raise CheckpointError(
            f"{what}: model.{name}: the checkpoint stores {held} but the recorded arguments give "
            f"{_shape(shapes[name])}; the rebuilt model would hold {total} elements, more than "
            f"{limit} for the {stored_elements} stored"
        )
    return True


def load_module_state(module: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Load ``tensors`` into ``module``: parameters are copied (shapes must match), buffers are
    replaced (their shape may differ, e.g. persistent chains allocated during training)."""
    own = dict(module.named_parameters())
    for name, value in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        try:
            owner = module.get_submodule(owner_name) if owner_name else module
        except AttributeError:
            owner = None
        if name in own:
            if own[name].shape != value.shape:
                raise CheckpointError(
                    f"{what}: parameter {name} has shape {tuple(value.shape)} in the checkpoint "
                    f"but {tuple(own[name].shape)} in the rebuilt model"
                )
            with torch.no_grad():
                own[name].copy_(value)
        elif owner is not None and leaf in owner._buffers:
            owner._buffers[leaf] = value.to(
                owner._buffers[leaf].device if owner._buffers[leaf] is not None else "cpu"
            )
        else:
            raise CheckpointError(f"{what}: the checkpoint has {name!r}, which the model lacks")


def _rebuild(
    registry: dict[str, Any],
    name: str,
    config: dict[str, Any],
    stored: dict[str, torch.Tensor],
    prefix: str,
    what: str,
    *,
    check_shapes: bool,
) -> Any:
    """Build ``registry[name](**config)`` (whose arguments ``read_checkpoint`` has bound to
    the constructor), checked against the ``stored`` tensors (``prefix.<name>`` in the file)
    first. A constructor that ran on the meta device has had every allocation counted there,
    within the budget, so the real build repeats it unguarded; any other runs under the
    budget."""
    cls = _registered(registry, name, what)
    if check_shapes and _check_meta_shapes(cls, config, stored, what):
        return _construct(cls, config, what)
    with _budget(cls, config, stored, prefix, what):
        return _construct(cls, config, what)


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device | None = None
) -> Checkpoint:
    """Read a checkpoint (``read_checkpoint``) and rebuild its model, and its objective if one
    was saved: each is checked against the stored tensors before it is built (see the module
    docstring), then built and loaded; ``device`` (a device this machine has, or "auto") is
    checked before the file is read."""
    if device is not None:
        device = str(resolve_device(device))
    document, tensors = read_checkpoint(path)
    what = f"checkpoint {path}"
    stored = tensor_group(tensors, "model")
    model = _rebuild(
        MODEL_CLASSES,
        document["model_class"],
        document["model_config"],
        stored,
        "model",
        what,
        check_shapes=True,
    )
    ckpt = Checkpoint(model=model, meta=document, tensors=tensors)
    load_module_state(model, stored, what)
    if "objective_class" in document:
        objective = _rebuild(
            OBJECTIVE_CLASSES,
            document["objective_class"],
            document["objective_config"],
            ckpt.group("objective"),
            "objective",
            f"{what} (objective)",
            check_shapes=False,
        )
        load_module_state(objective, ckpt.group("objective"), f"{what} (objective)")
        ckpt.objective = objective
    if device is not None:
        model.to(device)
        if ckpt.objective is not None:
            ckpt.objective.to(device)
    return ckpt


def load(path: str | os.PathLike[str], device: str | torch.device | None = None) -> Model:
    """Rebuild a model from a checkpoint written by ``save`` (or a run directory)."""
    return load_checkpoint(path, device).model
