"""Binarization of grey-level images in [0, 1] for Bernoulli models.

- ``"threshold"``: pixel > 0.5 becomes 1 (a pixel exactly 0.5, e.g. 8/16 in digits, becomes 0).
- ``"stochastic"``: each pixel becomes 1 with probability equal to its intensity, drawn once with
  a fixed seed per dataset and split, the convention of Salakhutdinov & Murray (2008), "On the
  quantitative analysis of deep belief networks", ICML: every call returns the same binary data.
"""

from __future__ import annotations

import hashlib

import torch

from ..validation import check_choice

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


def binarize(
    x: torch.Tensor, method: str | None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Binarize ``x`` (values in [0, 1]) by ``method``; ``"stochastic"`` needs a ``generator``."""
    check_binarization(method)
    if method is None:
        return x.to(torch.float32)
    if method == "threshold":
        return binarize_threshold(x)
    if generator is None:
        raise ValueError("generator: stochastic binarization needs a torch.Generator")
    return binarize_stochastic(x, generator)
