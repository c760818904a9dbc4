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
