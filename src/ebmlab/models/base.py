"""Base class shared by every ebmlab model.

Sign convention, written down once for the whole library: a model's ``energy(x)`` is the negative
log of its unnormalized density, so p(x) = exp(-E(x)) / Z and lower energy means more probable.
Models with hidden units also give ``free_energy(v) = -log sum_h exp(-E(v, h))``.

``Model`` records the arguments its constructor was called with, so that a checkpoint can rebuild
the model from JSON (``ebmlab.io``) without pickling any Python object.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

#: Every concrete model class, by name. ``ebmlab.load`` only rebuilds classes listed here.
MODEL_CLASSES: dict[str, type[Model]] = {}


def _json_safe(value: Any, where: str) -> Any:
    if isinstance(value, np.generic) and isinstance(value.item(), bool | int | float | str):
        return value.item()  # a NumPy scalar is recorded as the Python number
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v, where) for k, v in value.items()}
    raise TypeError(
        f"{where}: constructor argument of type {type(value).__name__} cannot be stored in a "
        "checkpoint; pass plain numbers, strings, lists or dicts (tensors go in buffers)"
    )


def _recorded_arguments(
    obj: Any, signature: inspect.Signature, args: tuple[Any, ...], kw: dict[str, Any]
) -> dict[str, Any]:
    """The constructor's arguments by name, defaults included, as JSON-safe values."""
    bound = signature.bind(obj, *args, **kw)
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(
                    f"{type(obj).__name__}: positional *args cannot be stored in "
                    "a checkpoint; use named arguments"
                )
        else:
            arguments[name] = value
    return _json_safe(arguments, f"{type(obj).__name__}")


def record_config(cls: type, registry: dict[str, Any]) -> None:
    """Register ``cls`` by name and wrap its ``__init__`` so that instances record the arguments
    of the outermost constructor call in ``self.config`` (JSON-safe)."""
    registry[cls.__name__] = cls
    original_init = cls.__init__
    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kw: Any) -> None:
        # only the outermost constructor (the class actually built) records its arguments
        if getattr(self, "_recording_config", False):
            original_init(self, *args, **kw)
            return
        object.__setattr__(self, "_recording_config", True)
        try:
            original_init(self, *args, **kw)
        finally:
            object.__setattr__(self, "_recording_config", False)
        # recorded only once the constructor has accepted its arguments, so that an argument
        # error is the one reported
        object.__setattr__(self, "config", _recorded_arguments(self, signature, args, kw))

    cls.__init__ = init  # type: ignore[method-assign]


class Model(nn.Module):
    """An ``nn.Module`` that remembers its constructor arguments (``self.config``).

    Subclasses are registered by class name in ``MODEL_CLASSES`` so checkpoints can name them.
    ``likelihood_kind`` says how the model's test log-likelihood is obtained: ``exact``, ``ais``,
    ``elbo``, ``iwae-K`` or ``none``.
    """

    likelihood_kind: ClassVar[str] = "none"
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record_config(cls, MODEL_CLASSES)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.get_default_dtype()
