"""Benchmark discovery and the shared machine-limit measurement.

Benchmarks ship inside the package, in ``ebmlab/app/benchmarks/bench_<name>.py``, so that
``ebmlab bench`` works from an installed wheel, and only those run unless a folder is named
(``ebmlab bench --folder DIR``): a checkout's files are never imported by accident. Each
defines ``run(quick: bool) -> list[dict]`` and prints one JSON line per result when run as a
script (``python -m ebmlab.app.benchmarks.bench_rbm``). Speed is reported beside the machine's
own float32 matmul throughput, measured in the same run by ``matmul_peak``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

SHIPPED = Path(__file__).resolve().parent / "benchmarks"


def available(folder: str | Path | None = None) -> dict[str, Path]:
    """Benchmark name -> file, for every ``bench_<name>.py`` that ships with ebmlab, or in
    ``folder`` when one is named (nothing is ever picked up from the current directory)."""
    where = Path(folder) if folder is not None else SHIPPED
    if not where.is_dir():
        raise ValueError(f"--folder: {where} is not a directory")
    return {path.stem.removeprefix("bench_"): path for path in sorted(where.glob("bench_*.py"))}


def _module(path: Path) -> ModuleType:
    if path.parent == SHIPPED:
        return importlib.import_module(f"ebmlab.app.benchmarks.{path.stem}")
    spec = importlib.util.spec_from_file_location(f"ebmlab_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(
    name: str, quick: bool = False, folder: str | Path | None = None
) -> list[dict[str, Any]]:
    """Run benchmark ``name`` (shipped, or from ``folder``) and return its result records."""
    found = available(folder)
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


@dataclass
class Measured:
    """Seconds of the measured code and, from the same rounds, the matmul references."""

    seconds: float
    peak_flops: float
    shape_flops: float

    def ratios(self, flops: float) -> dict[str, float]:
        """The measured code's FLOP/s as fractions of the matmul peak and of the same-shape
        matmul, with both references in GFLOP/s."""
        rate = flops / self.seconds
        return {
            "gflops": round(rate / 1e9, 2),
            "fraction_of_matmul_peak": round(rate / self.peak_flops, 4),
            "fraction_of_same_shape_matmul": round(rate / self.shape_flops, 4),
            "matmul_peak_gflops": round(self.peak_flops / 1e9, 1),
            "same_shape_matmul_gflops": round(self.shape_flops / 1e9, 1),
        }


def interleaved(
    fn: Callable[[], Any],
    shape: tuple[int, int, int],
    rounds: int = 3,
    device: str = "cpu",
    peak_size: int = 1024,
    warmup: bool = True,
) -> Measured:
    """Time ``fn`` against two references in the same rounds: a square float32 matmul of
    ``peak_size`` (the machine's peak) and an (m x k) @ (k x n) matmul of ``shape`` (what the
    measured code's own products can reach). Each round times all three one after the other and
    the best of the rounds is kept for each, so a load that comes and goes slows all three alike
    instead of moving the ratios. ``warmup``: one untimed call of ``fn`` first (leave it out for
    code that runs for many seconds)."""
    m, k, n = shape
    square = [torch.randn(peak_size, peak_size, device=device) for _ in range(2)]
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def peak() -> None:
        torch.mm(*square)
        sync()

    def same_shape() -> None:
        torch.mm(a, b)
        sync()

    if warmup:
        fn()  # allocations, first-call overheads
    best = {"fn": float("inf"), "peak": float("inf"), "shape": float("inf")}
    for _ in range(max(rounds, 1)):
        start = time.perf_counter()
        fn()
        sync()
        best["fn"] = min(best["fn"], time.perf_counter() - start)
        best["peak"] = min(best["peak"], timeit(peak, repeat=1, min_seconds=0.1))
        best["shape"] = min(best["shape"], timeit(same_shape, repeat=1, min_seconds=0.1))
    return Measured(best["fn"], 2.0 * peak_size**3 / best["peak"], 2.0 * m * k * n / best["shape"])
