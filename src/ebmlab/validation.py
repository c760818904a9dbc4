"""Input validation shared across the library: errors name the argument and what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_tensor(
    x: Any,
    name: str,
    *,
    dim: int | None = None,
    n_features: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Convert ``x`` to a tensor and check its shape and that it is finite.

    ``dim`` is the number of dimensions expected and ``n_features`` the size of the last one.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name}: expected an array or tensor, got {type(x).__name__}"
            ) from error
    if dim is not None and x.dim() != dim:
        expected = "(batch, features)" if dim == 2 else f"{dim} dimensions"
        raise ValueError(f"{name}: expected shape {expected}, got shape {tuple(x.shape)}")
    if n_features is not None and x.shape[-1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} features in the last dimension, got {x.shape[-1]} "
            f"(shape {tuple(x.shape)})"
        )
    if dtype is not None or not x.is_floating_point():
        x = x.to(dtype or torch.get_default_dtype())
    if device is not None:
        x = x.to(device)
    # the sum is finite when every entry is (NaN and Inf propagate) and costs a twentieth of an
    # elementwise isfinite; a sum that overflows only sends us to the exact count
    if x.numel() and not torch.isfinite(x.sum()):
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{name}: contains {bad} NaN or infinite values")
    return x


def check_binary(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise unless every entry of ``x`` is 0 or 1."""
    if not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)]
        raise ValueError(
            f"{name}: a Bernoulli model needs binary data (0/1), found {bad.numel()} other values "
            f"(e.g. {bad.flatten()[0].item():.4g}); binarize first, e.g. "
            "ebmlab.data.load(..., binarize='stochastic')"
        )
    return x


def check_positive(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return value
