"""What the estimators are given, checked once at entry: data rows and the model's parameters.

* ``check_data(model, x, name)``: rows the model scores, (n, width) with n >= 1, finite, on the
  model's device and in its dtype, binary for a binary model. The model's own ``check_visible``
  decides when it has one (a Bernoulli RBM or DBM refuses grey levels, a Gaussian RBM does not);
  otherwise the width is the one its chains are described by (``ebmlab.samplers.base.state_spec``:
  ``n_visible`` for a model scored through its free energy, else ``n_units``, ``n_visible`` or
  ``dim``) and the values are checked against the spins of a binary model
  (``ebmlab.estimators.kinds``: 0/1 for Bernoulli RBMs and DBMs, ``spin_values`` for fully
  visible ones).
* ``check_base_rate_data(x, n_visible)``: the data a base-rate model is fitted to (AIS): binary
  data or probabilities (mean-field activities of a lower layer) in [0, 1].
* ``check_parameters(model)``: every floating parameter and buffer finite, naming those that are
  not (a NaN weight makes every enumerated or annealed quantity NaN).
"""

from __future__ import annotations

from typing import Any

import torch

from ..samplers.base import state_spec
from ..validation import (
    as_tensor,
    check_finite_parameters,
    check_nonempty,
    check_spin_values,
    check_unit_interval,
)
from . import kinds


def binary_values(model: Any) -> tuple[float, float] | None:
    """The two values of a unit of a binary model, None for a model with real-valued units."""
    if kinds.is_gaussian_rbm(model):
        return None
    if kinds.is_bernoulli_rbm(model) or kinds.is_dbm(model):
        return (0.0, 1.0)
    if kinds.is_fully_visible(model):
        return kinds.spin_values(model)
    return None


def check_data(model: Any, x: Any, name: str = "x") -> torch.Tensor:
    """Rows of data for ``model`` (see the module docstring); the checked tensor."""
    check_visible = getattr(model, "check_visible", None)
    if callable(check_visible):
        x = check_visible(x, name)
    else:
        spec = state_spec(model)
        device = kinds.model_device(model) if hasattr(model, "parameters") else None
        x = as_tensor(x, name, dim=2, n_features=spec.width, device=device, dtype=spec.dtype)
        spins = binary_values(model)
        if spins is not None:
            check_spin_values(x, name, spins)
    return check_nonempty(x, name)


def check_base_rate_data(x: Any, n_visible: int | None = None, name: str = "data") -> torch.Tensor:
    """(n, n_visible) rows in [0, 1] with n >= 1, any width when ``n_visible`` is None (a float64
    tensor stays float64 for the base rates)."""
    x = as_tensor(x, name, dim=2, n_features=n_visible)
    return check_unit_interval(check_nonempty(x, name), name)


def check_parameters(model: Any) -> Any:
    """``model`` if its floating parameters and buffers are finite, else a ValueError."""
    return check_finite_parameters(model, "model")
