"""The Helmholtz free energy of a distribution over a small model's states, and the minimum
free-energy principle (lecture 001 part 2), by exact enumeration.

A system with energy E(s) at temperature T (Boltzmann's constant k = 1, as in the lecture) and
any distribution q over its states have

    U[q] = sum_s q(s) E(s)              internal energy,
    H[q] = -sum_s q(s) log q(s)         entropy (nats, 0 log 0 = 0),
    F[q] = U[q] - T H[q]                Helmholtz free energy.

Minimum free-energy principle: with the Boltzmann (Gibbs) distribution p_T(s) = exp(-E(s) / T)
/ Z_T and Z_T = sum_s exp(-E(s) / T),

    F[q] = -T log Z_T + T KL(q || p_T),

so F is minimized by q = p_T alone (KL >= 0, with equality iff q = p_T) and F_min = -T log Z_T.

E(s) is the model's ``energy`` (ebmlab's p ∝ exp(-energy): a ``BoltzmannMachine`` or an
``Ising`` model has already divided by its own temperature, so T = 1 is the model's own
distribution). The models are the fully visible binary ones (``n_units``, ``energy``,
``spin_values``: Hopfield, Ising, Boltzmann machines, whose hidden units count among their
units), and their states are every state of {lo, hi}^n_units in the order of
``ebmlab.estimators.enumerate_states`` (unit i = bit i of the state's index); log Z comes from
``ebmlab.estimators.exact_log_z`` at T = 1 and from the enumerated energies at other T. Any
finite system can be given instead by the energies of its
states, a tensor (K,).

The free energy of a visible vector in a model with hidden units, F(v) = -log sum_h exp(-E(v,
h)), is F_min at T = 1 of the system of the hidden units with v clamped: the variational free
energy min_q U[q] - H[q] over distributions q(h).

Example (two independent +-1 spins in a field: Z = (2 cosh 1)^2):

>>> import math, torch
>>> energies = torch.tensor([2.0, 0.0, 0.0, -2.0])  # E = -(s_1 + s_2)
>>> p = boltzmann_distribution(energies)
>>> round(minimum_free_energy(energies), 6) == round(-2 * math.log(2 * math.cosh(1.0)), 6)
True
>>> round(float(helmholtz_free_energy(energies, p)), 6) == round(minimum_free_energy(energies), 6)
True
>>> float(helmholtz_free_energy(energies, torch.full((4,), 0.25))) > minimum_free_energy(energies)
True

References: Callen, Thermodynamics and an Introduction to Thermostatistics (2nd ed., 1985),
ch. 16; MacKay, Information Theory, Inference, and Learning Algorithms (2003), ch. 31 and 33;
Hinton & Sejnowski (1983) for the lecture's use in Boltzmann machines.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..estimators import enumerate_states, exact_log_z, kinds
from ..validation import check_positive

#: The most units whose states are enumerated (2^20, about a million states).
MAX_FREE_ENERGY_UNITS = 20
#: How far a distribution's total may be from 1.
_TOTAL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class FreeEnergyTerms:
    """F[q] = U[q] - T H[q] and its parts; ``float(terms)`` is the free energy."""

    free_energy: float
    internal_energy: float
    entropy: float
    temperature: float

    def __float__(self) -> float:
        return self.free_energy


def _check_model(model: Any) -> None:
    if not kinds.is_fully_visible(model):
        raise TypeError(
            "model: expected a fully visible binary model (n_units, energy, spin_values) or "
            f"a tensor of state energies, got {type(model).__name__}"
        )
    if int(model.n_units) > MAX_FREE_ENERGY_UNITS:
        raise ValueError(
            f"model: enumerating 2^{model.n_units} states is above the limit of "
            f"2^{MAX_FREE_ENERGY_UNITS}"
        )


@torch.no_grad()
def state_energies(model: Any) -> tuple[Tensor, Tensor]:
    """(states (K, n_units), energies (K,)) of every state of a fully visible binary model, in
    ``enumerate_states`` order, float64. Energies may be +inf (states of probability zero)."""
    _check_model(model)
    model64 = copy.deepcopy(model).to(torch.float64)
    states = enumerate_states(
        int(model.n_units), spin_values=kinds.spin_values(model), device=kinds.model_device(model64)
    )
    return states, model64.energy(states).to(torch.float64)


def _energies(model: Any) -> Tensor:
    if isinstance(model, Tensor):
        energies = model.detach().to(torch.float64)
        if energies.dim() != 1 or energies.numel() == 0:
            raise ValueError(f"energies: expected shape (K,), got {tuple(energies.shape)}")
        if torch.isnan(energies).any() or (energies == -math.inf).any():
            raise ValueError("energies: expected finite values or +inf")
    else:
        energies = state_energies(model)[1]
    if not torch.isfinite(energies).any():
        raise ValueError("energies: every state has infinite energy")
    return energies


def _check_q(q: Any, n_states: int) -> Tensor:
    q = torch.as_tensor(q).detach()
    if q.shape != (n_states,):
        raise ValueError(
            f"q: expected a distribution over the {n_states} states, shape ({n_states},), got "
            f"{tuple(q.shape)}"
        )
    q = q.to(torch.float64)
    if not torch.isfinite(q).all() or (q < 0).any():
        raise ValueError("q: expected finite, non-negative probabilities")
    if abs(float(q.sum()) - 1.0) > _TOTAL_TOLERANCE:
        raise ValueError(f"q: expected probabilities summing to 1, got {float(q.sum()):.8g}")
    return q


def boltzmann_distribution(model: Any, temperature: float = 1.0) -> Tensor:
    """p_T(s) = exp(-E(s) / T) / Z_T over every state, float64 (K,)."""
    check_positive(temperature, "temperature")
    return torch.softmax(-_energies(model) / temperature, 0)


def helmholtz_free_energy(model: Any, q: Any, temperature: float = 1.0) -> FreeEnergyTerms:
    """F[q] = U[q] - T H[q] of a distribution ``q`` (K,) over the model's states.

    A state of infinite energy contributes nothing when q gives it probability 0, and makes F
    infinite otherwise.
    """
    check_positive(temperature, "temperature")
    energies = _energies(model)
    q = _check_q(q, energies.numel())
    support = q > 0
    internal = float((q[support] * energies[support]).sum())
    entropy = float(-(q[support] * q[support].log()).sum())
    return FreeEnergyTerms(internal - temperature * entropy, internal, entropy, temperature)


def minimum_free_energy(model: Any, temperature: float = 1.0) -> float:
    """F_min = -T log Z_T, the free energy of the Boltzmann distribution: ``exact_log_z`` of the
    model at T = 1, a log-sum-exp of -E / T over the enumerated states otherwise."""
    check_positive(temperature, "temperature")
    if temperature == 1.0 and not isinstance(model, Tensor):
        _check_model(model)
        return -exact_log_z(model, max_units=MAX_FREE_ENERGY_UNITS)
    return -temperature * float(torch.logsumexp(-_energies(model) / temperature, 0))
