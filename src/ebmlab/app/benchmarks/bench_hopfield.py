"""Hopfield recall throughput: N = 784 units, 1,000 probes at once, beside the matmul peak.

The network stores 39 random patterns (load 0.05, pseudo-inverse rule); the probes are stored
patterns with 10% of their bits flipped. Cases, each in unit updates per second (one unit update
= one unit of one probe visited once):

* ``sync_sweep``: one synchronous sweep (one (1000 x 784) @ (784 x 784) product and a compare);
  its GFLOP/s (2 B N^2 flops per sweep) as a fraction of the float32 matmul peak measured in the
  same run (best of 1024^3 and 2048^3 products) and of a same-shape product;
* ``sync_recall``: ``recall(mode="sync")`` to convergence (finished probes drop out);
* ``async_sweep_noisy`` / ``async_sweep_settled``: one random-order asynchronous sweep from the
  noisy probes (many flips) and from fixed points (none), the vectorised single-unit dynamics;
* ``async_recall``: ``recall(mode="async")`` to convergence;
* ``gibbs_sweep``: one Gibbs sweep at T = 1 (every unit resampled).

Run ``python benchmarks/bench_hopfield.py [--quick]`` or ``ebmlab bench hopfield``; one JSON line
per result. On a machine with CUDA the cases run on the GPU as well.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from ebmlab.app.benchmarks.common import machine_info


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_seconds(fn: Callable[[], Any], device: str, repeat: int) -> float:
    fn()  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _matmul_flops(m: int, k: int, n: int, device: str, repeat: int = 3) -> float:
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    return 2 * m * k * n / _best_seconds(lambda: torch.mm(a, b), device, repeat)


def _cases(
    net: Any, probes: torch.Tensor, settled: torch.Tensor, order: torch.Tensor, device: str
) -> dict[str, tuple[Callable[[], Any], Callable[[], float]]]:
    """name -> (function to time, number of unit updates it performed)."""
    tol = net._tie_tolerance()
    n_probes, n_units = probes.shape
    generator = torch.Generator(device=device).manual_seed(1)
    # sweeps actually run per probe (finished probes drop out), counted once outside the timing
    sweeps = {
        mode: int(net.recall(probes, mode=mode, seed=0, return_info=True)[1].sweeps.sum())
        for mode in ("sync", "async")
    }

    def recall(mode: str) -> None:
        net.recall(probes, mode=mode, seed=0)

    one_sweep = n_probes * n_units
    return {
        "sync_sweep": (lambda: net.sweep_sync(probes, tol), lambda: one_sweep),
        "sync_recall": (lambda: recall("sync"), lambda: sweeps["sync"] * n_units),
        "async_sweep_noisy": (lambda: net.sweep_async(probes, order, tol=tol), lambda: one_sweep),
        "async_sweep_settled": (
            lambda: net.sweep_async(settled, order, tol=tol),
            lambda: one_sweep,
        ),
        "async_recall": (lambda: recall("async"), lambda: sweeps["async"] * n_units),
        "gibbs_sweep": (
            lambda: net.sweep_async(probes, order, None, 1.0, generator, tol),
            lambda: one_sweep,
        ),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every case on every available device; print and return one record per result."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from ebmlab.models.hopfield import Hopfield, flip_bits

    n_units, n_probes, repeat = 784, 1000, 2 if quick else 5
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    records = []
    for device in devices:
        peak = max(_matmul_flops(s, s, s, device) for s in (1024, 2048))
        shape_peak = _matmul_flops(n_probes, n_units, n_units, device)
        g = torch.Generator().manual_seed(0)
        patterns = torch.where(torch.rand(39, n_units, generator=g) < 0.5, -1.0, 1.0)
        net = Hopfield(n_units, rule="pseudoinverse").store(patterns).to(device)
        targets = patterns[torch.randint(39, (n_probes,), generator=g)]
        probes = flip_bits(targets, 0.1, g).to(device)
        order = torch.randperm(n_units, generator=g).to(device)
        cases = _cases(net, probes, targets.to(device), order, device)
        for name, (fn, updates) in cases.items():
            seconds = _best_seconds(fn, device, repeat)
            record: dict[str, Any] = {
                "benchmark": "hopfield",
                "case": name,
                "n_units": n_units,
                "n_probes": n_probes,
                "device": device,
                "seconds": round(seconds, 5),
                "unit_updates_per_second": round(updates() / seconds, 1),
            }
            if name == "sync_sweep":
                gflops = 2 * n_probes * n_units**2 / seconds / 1e9
                record.update(
                    {
                        "gflops": round(gflops, 2),
                        "fraction_of_matmul_peak": round(gflops * 1e9 / peak, 4),
                        "fraction_of_same_shape_matmul": round(gflops * 1e9 / shape_peak, 4),
                    }
                )
            if name.endswith("recall"):
                record["mean_sweeps_per_probe"] = round(updates() / n_units / n_probes, 3)
            record.update(
                {
                    "matmul_peak_gflops": round(peak / 1e9, 1),
                    "same_shape_matmul_gflops": round(shape_peak / 1e9, 1),
                    **machine_info(device),
                }
            )
            print(json.dumps(record), flush=True)
            records.append(record)
    return records


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
