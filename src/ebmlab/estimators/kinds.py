"""Which kind of energy model an estimator is looking at, told from its attributes alone.

The estimators never import model classes: a model is recognised by what it has, so a new class
with the same attributes is handled the same way (and the estimators sit below the models in the
import graph only through these attribute names).

* RBM: ``free_energy``, ``free_energy_hidden``, ``n_visible``, ``n_hidden`` (hidden units summed
  out of ``free_energy``, visible ones out of ``free_energy_hidden``).
* Bernoulli RBM: an RBM with weights ``W``, biases ``b``, ``c`` and Bernoulli conditionals on both
  sides (``p_h_given_v``, ``p_v_given_h``); no visible variances.
* Gaussian-Bernoulli RBM: an RBM with ``W``, ``precision()``, ``sigma()`` and ``mean_v_given_h``.
* Deep Boltzmann machine: ``layer_sizes``, ``weights``, ``biases``, ``layer_input`` and
  ``free_energy_even`` (the odd layers summed out).
* Fully visible binary model: ``n_units``, ``energy(states)`` and ``spin_values`` of (0, 1) or
  (-1, 1) (Ising, Hopfield, Boltzmann machines; hidden units count in ``n_units``).
"""

from __future__ import annotations

from typing import Any

import torch

_RBM = ("free_energy", "free_energy_hidden", "n_visible", "n_hidden")
_BERNOULLI = ("W", "b", "c", "p_h_given_v", "p_v_given_h")
_GAUSSIAN = ("W", "precision", "sigma", "mean_v_given_h")
_DBM = ("layer_sizes", "weights", "biases", "layer_input", "free_energy_even")
_FULLY_VISIBLE = ("n_units", "energy", "spin_values")


def _has(model: Any, names: tuple[str, ...]) -> bool:
    return all(hasattr(model, name) for name in names)


def is_rbm(model: Any) -> bool:
    """A restricted Boltzmann machine of any unit types (both free energies available)."""
    return _has(model, _RBM)


def is_gaussian_rbm(model: Any) -> bool:
    """An RBM with Gaussian visible units N(b + W h, diag sigma^2) and binary hidden units."""
    return is_rbm(model) and _has(model, _GAUSSIAN)


def is_bernoulli_rbm(model: Any) -> bool:
    """An RBM with binary units on both sides."""
    return is_rbm(model) and _has(model, _BERNOULLI) and not is_gaussian_rbm(model)


def is_dbm(model: Any) -> bool:
    """A binary deep Boltzmann machine (layers h_0 = v, h_1, ..., h_L)."""
    return _has(model, _DBM)


def is_fully_visible(model: Any) -> bool:
    """A binary model whose energy takes every unit's state."""
    return _has(model, _FULLY_VISIBLE)


def spin_values(model: Any) -> tuple[float, float]:
    """The two values a unit of a fully visible model takes, (0, 1) or (-1, 1)."""
    spins = tuple(float(v) for v in model.spin_values)
    if spins not in ((0.0, 1.0), (-1.0, 1.0)):
        raise ValueError(f"model.spin_values: expected (0.0, 1.0) or (-1.0, 1.0), got {spins}")
    return spins


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without tensors)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")
