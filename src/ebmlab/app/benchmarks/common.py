"""What every benchmark record says about the machine it ran on."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def machine_info(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Threads, load average (timings on a loaded machine are rough) and the processor (the GPU's
    name for ``device="cuda"``)."""
    name = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "threads": torch.get_num_threads() if threads is None else threads,
        "load_average": round(os.getloadavg()[0], 2),
        "machine": name,
    }


def binarized_mnist(split: str, n: int) -> torch.Tensor:
    """The first ``n`` images of MNIST's ``split``, stochastically binarized; offline without
    the files, random bits of the same shape and density (the timings do not depend on them)."""
    try:
        from ebmlab.data import load

        x, _ = load("mnist", split, binarize="stochastic")
    except Exception:  # offline without the files: same shape, same density
        g = torch.Generator().manual_seed(0)
        x = (torch.rand(60000 if split == "train" else 10000, 784, generator=g) < 0.13).float()
    return x[:n]
