"""A neural energy on binary states seen as a fully visible binary model, for exact enumeration
and AIS.

``BinaryEnergy(network, kernel)`` wraps any module with ``energy(x) -> (batch,)`` (or a plain
energy module) on {0, 1}^n (or {-1, +1}^n) states: it has what ``ebmlab.estimators.kinds`` reads
off a fully visible model (``n_units``, ``energy``, ``spin_values``), so ``exact_log_z`` enumerates
it when n is small, and an ``annealing_path(data, base_bias)`` method, so that ``ais`` and
``reverse_ais`` anneal it along ``FullyVisiblePath`` with ``kernel`` as the transition (e.g.
``DiscreteLangevin`` or ``GibbsWithGradients``, which need only the energy's gradient) from the
base-rate model of ``data`` (uniform states without data). It holds no parameters of its own:
the network's are its parameters, so the estimators' parameter checks and devices are the
network's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..samplers.base import state_spec
from ..validation import check_positive_int
from .paths import FullyVisiblePath


class BinaryEnergy(nn.Module):
    """``network``'s energy on binary states as a fully visible binary model.

    Args:
        network: a module with ``energy(x)`` (or whose call is the energy), x of shape
            (batch, n_units).
        kernel: the AIS transition (default: a Gibbs sweep from energies, slow for large n).
        n_units: the number of units (default: what the network declares, e.g. ``dim``).
        spin_values: (0.0, 1.0) or (-1.0, 1.0).
    """

    def __init__(
        self,
        network: nn.Module,
        kernel: Any = None,
        n_units: int | None = None,
        spin_values: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        width = n_units if n_units is not None else state_spec(network).width
        if width is None:
            raise ValueError("n_units: the network declares no width (n_units or dim); pass it")
        spins = tuple(float(v) for v in spin_values)
        if spins not in ((0.0, 1.0), (-1.0, 1.0)):
            raise ValueError(f"spin_values: expected (0.0, 1.0) or (-1.0, 1.0), got {spin_values}")
        self.network = network
        self.kernel = kernel
        self.n_units = check_positive_int(width, "n_units")
        self.spin_values = spins

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) of the network, (batch,)."""
        energy = getattr(self.network, "energy", None)
        return energy(x) if callable(energy) else self.network(x)

    def annealing_path(
        self, data: torch.Tensor | None = None, base_bias: torch.Tensor | None = None
    ) -> FullyVisiblePath:
        """The AIS path: from the base-rate model of ``data`` (or ``base_bias``; uniform
        without either) to exp(-E), one ``kernel`` transition per beta."""
        return FullyVisiblePath(self, kernel=self.kernel, data=data, base_bias=base_bias)


__all__ = ["BinaryEnergy"]
