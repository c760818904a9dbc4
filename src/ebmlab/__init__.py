"""ebmlab: energy-based and deep generative models in PyTorch.

Sign convention: ``energy(x)`` is -log of the unnormalized density, p(x) = exp(-E(x)) / Z.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .io import load, save

__all__ = ["__version__", "load", "save"]
