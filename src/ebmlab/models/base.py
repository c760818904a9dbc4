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

from ..validation import (
    Integral,
    Real,
    as_generator,
    check_nonempty,
    check_nonnegative_int,
    check_positive_int,
    validate,
)

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


# ----- pieces shared by the RBM-like models -------------------------------------------------------
def init_bipartite(
    module: nn.Module, n_visible: int, n_hidden: int, init_std: float, seed: int | None
) -> None:
    """Give ``module`` a (n_visible, n_hidden) weight matrix ``W`` ~ N(0, init_std^2), drawn from
    ``seed`` (None: torch's global generator), and zero biases ``b`` (visible), ``c`` (hidden)."""
    generator = as_generator(seed, "cpu", "seed")
    module.n_visible = n_visible
    module.n_hidden = n_hidden
    module.W = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
    module.b = nn.Parameter(torch.zeros(n_visible))
    module.c = nn.Parameter(torch.zeros(n_hidden))


class Bipartite(nn.Module):
    """Visible units v and hidden units h joined by a weight matrix W (n_visible, n_hidden), with
    visible biases b and hidden biases c, and no connection within a layer: the RBM and its
    variants. Gives the constructor and the two layers' total inputs; a subclass (which also
    derives from ``Model``) says what the units are."""

    n_visible: int
    n_hidden: int
    W: nn.Parameter
    b: nn.Parameter
    c: nn.Parameter

    @validate(n_visible=Integral(1), n_hidden=Integral(1), init_std=Real(0), seed=Integral() | None)
    def __init__(
        self, n_visible: int, n_hidden: int, init_std: float = 0.01, seed: int | None = None
    ) -> None:
        super().__init__()
        init_bipartite(self, n_visible, n_hidden, init_std, seed)

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        """c + W^T v, the hidden units' total input, shape (batch, n_hidden)."""
        return torch.addmm(self.c, v, self.W)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        """b + W h, the visible units' total input, shape (batch, n_visible)."""
        return torch.addmm(self.b, h, self.W.T)


def marginal_logits(x: torch.Tensor) -> torch.Tensor:
    """log(p_i / (1 - p_i)) of the per-column means p_i of ``x`` (Hinton's practical guide, section
    8: visible biases that alone reproduce the pixel frequencies). p is clamped to [1e-3, 1 - 1e-3]
    so that pixels always off (or on) in the data get finite logits, +-6.9."""
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    return torch.log(p) - torch.log1p(-p)


class GibbsSampled:
    """``sample(n, n_steps, generator, v0)`` for models sampled by Markov chains over a state,
    written once: argument checks, then ``start_chains`` (or ``chains_from`` the visible rows
    ``v0``), ``run_chains`` for ``n_steps`` sweeps, and ``chains_output`` of the final state.

    A model supplies ``check_visible(v, name)``, ``start_chains`` and ``chains_output``. The
    default state is the visible rows, started at ``v0`` and swept by ``gibbs_vhv(v, generator)
    -> (v', h)`` (an RBM); a model whose state is something else (a DBN's top layer, a DBM's
    every layer) overrides ``chains_from`` and ``run_chains`` too.
    """

    def check_visible(self, v: Any, name: str = "v") -> torch.Tensor:
        raise NotImplementedError

    def start_chains(self, n: int, generator: torch.Generator | None) -> Any:
        """The state of ``n`` fresh chains."""
        raise NotImplementedError

    def chains_from(self, v0: torch.Tensor, generator: torch.Generator | None) -> Any:
        """The state of one chain per (checked) visible row of ``v0``: the rows themselves."""
        return v0

    def run_chains(self, state: Any, n_steps: int, generator: torch.Generator | None) -> Any:
        """The state after ``n_steps`` sweeps: here ``n_steps - 1`` block-Gibbs sweeps of the
        visible rows (``chains_output`` makes the last one)."""
        for _ in range(max(n_steps - 1, 0)):
            state, _ = self.gibbs_vhv(state, generator)  # type: ignore[attr-defined]
        return state

    def chains_output(self, state: Any, generator: torch.Generator | None) -> torch.Tensor:
        """What ``sample`` returns for the final state, shape (n, n_visible)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_steps: int = 1000,
        generator: torch.Generator | int | None = None,
        v0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` chains (or one per row of ``v0``, which then sets where they start) run for
        ``n_steps`` sweeps; returns the model's visible output of the last sweep, (n, n_visible).
        ``generator``: a ``torch.Generator``, an integer seed or None."""
        n_steps = check_nonnegative_int(n_steps, "n_steps")
        generator = as_generator(generator, self.device)  # type: ignore[attr-defined]
        if v0 is None:
            state = self.start_chains(check_positive_int(n, "n"), generator)
        else:
            state = self.chains_from(check_nonempty(self.check_visible(v0, "v0"), "v0"), generator)
        return self.chains_output(self.run_chains(state, n_steps, generator), generator)
