"""Benchmark discovery and the shared machine-limit measurement.

Benchmarks ship inside the package, in ``ebmlab/app/benchmarks/bench_<name>.py``, so that
``ebmlab bench`` works from an installed wheel; each defines ``run(quick: bool) -> list[dict]``
and prints one JSON line per result when run as a script (``python -m
ebmlab.app.benchmarks.bench_rbm``).
Speed is reported beside the machine's own float32 matmul throughput, measured in the same run
by ``matmul_peak``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch


def _folders() -> list[Path]:
    return [Path(__file__).resolve().parent / "benchmarks"]


def available() -> dict[str, Path]:
    """Benchmark name -> file, for every ``bench_<name>.py`` found."""
    found: dict[str, Path] = {}
    for folder in _folders():
        for path in sorted(folder.glob("bench_*.py")):
            found.setdefault(path.stem.removeprefix("bench_"), path)
    return found


def _module(path: Path) -> ModuleType:
    return importlib.import_module(f"ebmlab.app.benchmarks.{path.stem}")


def run_benchmark(name: str, quick: bool = False) -> list[dict[str, Any]]:
    """Run benchmark ``name`` and return its result records."""
    found = available()
    if name not in found:
        valid = ", ".join(sorted(found)) or "(none installed)"
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {valid}")
    return list(_module(found[name]).run(quick=quick))


def timeit(fn: Any, repeat: int = 3, min_seconds: float = 0.2) -> float:
    """Best-of-``repeat`` seconds per call of ``fn`` (each timing loops for >= min_seconds)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def matmul_peak(
    m: int = 1024,
    k: int = 1024,
    n: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> float:
    """Measured matmul throughput in FLOP/s for an (m x k) @ (k x n) product."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)

    def step() -> None:
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return 2.0 * m * k * n / timeit(step)
