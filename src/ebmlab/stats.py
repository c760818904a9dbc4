"""Small statistics shared by the evaluators: means with their standard errors."""

from __future__ import annotations

import math

import torch


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of ``values`` and its standard error (sample std / sqrt(n); 0 for a single value),
    computed in float64."""
    values = values.detach().double().flatten()
    if values.numel() == 0:
        raise ValueError("values: expected at least one value")
    se = float(values.std(correction=1) / math.sqrt(values.numel())) if values.numel() > 1 else 0.0
    return float(values.mean()), se
