"""Binarization of grey-level images in [0, 1] for Bernoulli models.

- ``"threshold"``: pixel > 0.5 becomes 1 (a pixel exactly 0.5, e.g. 8/16 in digits, becomes 0).
- ``"stochastic"``: each pixel becomes 1 with probability equal to its intensity, drawn once with
  a fixed seed per dataset and split, the convention of Salakhutdinov & Murray (2008), "On the
  quantitative analysis of deep belief networks", ICML: every call returns the same binary data.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from ..validation import as_generator, as_tensor, check_choice, check_unit_interval

BINARIZATIONS = (None, "threshold", "stochastic")


def check_binarization(binarize: str | None) -> None:
    check_choice(binarize, "binarize", BINARIZATIONS)


def binarize_threshold(x: torch.Tensor) -> torch.Tensor:
    """1 where ``x > 0.5``, else 0, as float32."""
    return (x > 0.5).to(torch.float32)


def binarize_stochastic(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Bernoulli(x) elementwise, as float32: 1 where u < x for u ~ Uniform[0, 1)."""
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32, device=x.device)
    return (u < x).to(torch.float32)


def stochastic_seed(name: str, split: str) -> int:
    """The fixed seed of the stochastic binarization of ``name``/``split`` (stable across runs)."""
    digest = hashlib.sha256(f"ebmlab/binarize/{name}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def check_pixels(x: Any, name: str = "x") -> torch.Tensor:
    """``x`` (an array or tensor) as a floating tensor of grey levels in [0, 1]: NaN and
    infinities refused, and values outside [0, 1] with a hint for 0-255 pixel bytes."""
    x = as_tensor(x, name)
    try:
        return check_unit_interval(x, name)
    except ValueError as error:
        if x.numel() and float(x.max()) > 1:
            raise ValueError(f"{error}; 0-255 pixels (uint8 images): divide by 255") from None
        raise


def binarize(x: Any, method: str | None, generator: Any = None) -> torch.Tensor:
    """Binarize ``x`` (an array or tensor of grey levels in [0, 1], checked: NaN and values
    outside [0, 1] are refused) by ``method``; ``"stochastic"`` needs a ``generator``, a
    ``torch.Generator`` or an integer seed (a new generator on ``x``'s device)."""
    check_binarization(method)
    x = check_pixels(x, "x")
    if method is None:
        return x.to(torch.float32)
    if method == "threshold":
        return binarize_threshold(x)
    generator = as_generator(generator, x.device, "generator")
    if generator is None:
        raise ValueError(
            "generator: stochastic binarization needs a torch.Generator or an integer seed"
        )
    return binarize_stochastic(x, generator)
