"""Training precision: ``ebmlab.training.train`` in float32 and in bfloat16
(``precision="bfloat16"``: the forward pass under ``torch.autocast``, parameters and optimizer state
in float32), same model, data, batches and seed, in the same run.

Cases: the PixelCNN of ``ebmlab train pixelcnn --preset paper`` (gated, 32 feature maps,
7 layers, batch 64, Adam), convolution-bound; Burda et al.'s 784-200-200-50 VAE (batch 100,
Adam), matmul-bound at small sizes. Data: stochastically binarized MNIST (random bits of the
same density when the files are missing), 3,200 images (quick: 640), one epoch per timing, the
best of 3 (quick: 1) after a warm-up epoch. Reported: images per second of each precision and
``speedup`` = float32 seconds / bfloat16 seconds, beside the final loss of each (the same run
in both arithmetics should end at nearly the same loss). bfloat16 pays off on CPUs with
AVX-512 BF16 or AMX (``lscpu | grep bf16``) and on recent GPUs; elsewhere it can be slower.
Run ``ebmlab bench precision [--quick]``; one JSON line per result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import torch

from ebmlab.app.benchmarks.common import binarized_mnist, machine_info

D = 784


Case = Callable[[], tuple[Any, Any, int]]


def _pixelcnn(channels: int, n_layers: int, first_kernel: int, batch: int) -> Case:
    """A gated PixelCNN on 28 x 28 images with its likelihood objective and batch size, built
    from the same seed at every call (the same initial network for every precision)."""

    def make() -> tuple[Any, Any, int]:
        from ebmlab.models.autoregressive import PixelCNN
        from ebmlab.objectives.likelihood import MaximumLikelihood

        torch.manual_seed(0)
        model = PixelCNN((28, 28), channels=channels, n_layers=n_layers, first_kernel=first_kernel)
        return model, MaximumLikelihood(), batch

    return make


def _vae(hidden: list[int], latent: int, batch: int) -> Case:
    """A Bernoulli VAE on 784 pixels with its ELBO objective and batch size (seeded)."""

    def make() -> tuple[Any, Any, int]:
        from ebmlab.models.vae import VAE
        from ebmlab.objectives.vae import VariationalBound

        return VAE(D, hidden=hidden, latent=latent, seed=0), VariationalBound(), batch

    return make


CASES: dict[str, Case] = {
    "pixelcnn-gated-32x7-batch64": _pixelcnn(32, 7, 7, 64),
    "vae-784-200-200-50-batch100": _vae([200, 200], 50, 100),
}
#: The same two kinds of network at toy sizes (the dry run of the GPU check).
TINY_CASES: dict[str, Case] = {
    "pixelcnn-tiny": _pixelcnn(4, 2, 3, 8),
    "vae-tiny": _vae([8], 2, 8),
}


def _epoch(make: Case, x: torch.Tensor, precision: str, device: str) -> Callable[[], float]:
    """One epoch of ``ebmlab.training.train`` per call, the same model trained on across calls;
    returns the epoch's mean loss."""
    from ebmlab.training import TrainConfig, train

    model, objective, batch = make()
    config = TrainConfig(
        epochs=1,
        batch_size=batch,
        lr=1e-3,
        seed=0,
        progress=False,
        precision=precision,
        device=device,
    )

    def epoch() -> float:
        result = train(model, objective, x, config)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return float(result.history[-1]["loss"])

    return epoch


def measure(
    cases: dict[str, Case],
    x: torch.Tensor,
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    device: str = "cpu",
    repeat: int = 3,
) -> list[dict[str, Any]]:
    """Best-of-``repeat`` epoch times of each case at each precision (after a warm-up epoch),
    the same initial network for every precision; one record per (case, precision), with the
    speedup over float32 and the final loss."""
    records = []
    for case, make in cases.items():
        seconds: dict[str, float] = {}
        losses: dict[str, float] = {}
        for precision in precisions:
            epoch = _epoch(make, x, precision, device)
            epoch()  # warm-up (and the model's first epoch)
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                losses[precision] = epoch()
                best = min(best, time.perf_counter() - start)
            seconds[precision] = best
        for precision in precisions:
            record = {
                "benchmark": "precision",
                "case": case,
                "impl": f"ebmlab-train-{precision}",
                "precision": precision,
                "examples": len(x),
                "seconds": round(seconds[precision], 4),
                "examples_per_second": round(len(x) / seconds[precision], 1),
                "final_loss": round(losses[precision], 3),
                "speedup_over_float32": round(seconds["float32"] / seconds[precision], 3),
            }
            records.append(record)
    return records


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time one epoch per case and precision on the CPU; one record per (case, precision)."""
    records = measure(
        CASES, binarized_mnist("train", 640 if quick else 3200), repeat=1 if quick else 3
    )
    records = [{**record, **machine_info()} for record in records]
    if __name__ == "__main__":
        for record in records:
            print(json.dumps(record), flush=True)
    return records


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
