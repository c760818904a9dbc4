"""VAE speed: training throughput against a plain PyTorch loop, and IWAE evaluation throughput.

Model: Burda et al.'s 784-200-200-50 VAE (tanh, Bernoulli decoder), Adam at lr 1e-3, one
reparameterized draw per example, on stochastically binarized MNIST (random bits of the same
density when the files are missing). Training cases, same sizes, batch and optimizer, timed over
one epoch (60,000 examples; quick: 6,000), batch 100 and 20 (Burda et al.'s):

* ``plain-pytorch``: a hand-written VAE (two ``nn.Sequential``, BCE-with-logits + closed-form
  KL, ``torch.optim.Adam``) and its loop, as a tutorial writes it: the reference;
* ``ebmlab``: ``VariationalBound.loss`` + ``torch.optim.Adam`` in the same bare loop (the cost of
  the model and objective code);
* ``ebmlab-train-loop``: ``ebmlab.training.train`` for one epoch (adds shuffling, the NaN guard,
  metrics; no checkpoint); ``overhead`` = its seconds / plain-pytorch's - 1.

Evaluation: ``VAE.bounds`` (IWAE-K with ELBO and ESS, chunked logsumexp) on test images with
K = 5000 (quick: 500), against a plain one-shot IWAE that repeats each image K times. Reported as
images/s and (image, draw) pairs per second. Run ``python benchmarks/bench_vae.py [--quick]``
or ``ebmlab bench vae``; one JSON line per result.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ebmlab.app.benchmarks.common import binarized_mnist, machine_info

D, HIDDEN, LATENT, LR = 784, 200, 50, 1e-3


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----- training: each returns a function that runs one epoch -------------------------------------
class PlainVAE(nn.Module):
    """The tutorial VAE: encoder -> (mu, log_var), decoder -> logits."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(D, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh()
        )
        self.mu = nn.Linear(HIDDEN, LATENT)
        self.log_var = nn.Linear(HIDDEN, LATENT)
        self.dec = nn.Sequential(
            nn.Linear(LATENT, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, D),
        )

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1).sum()
        return (rec + kl) / x.shape[0]


def _batches(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return [x[order[i : i + batch]] for i in range(0, len(x), batch)]


def _plain(x: torch.Tensor, batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    model = PlainVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    batches = _batches(x, batch)

    def epoch() -> None:
        for v in batches:
            optimizer.zero_grad(set_to_none=True)
            model.loss(v).backward()
            optimizer.step()

    return epoch


def _ebmlab(x: torch.Tensor, batch: int) -> Callable[[], None]:
    from ebmlab.models.vae import VAE
    from ebmlab.objectives.vae import VariationalBound

    model = VAE(D, hidden=[HIDDEN, HIDDEN], latent=LATENT, seed=0)
    objective = VariationalBound()
    objective.setup(model, x)
    optimizer = torch.optim.Adam(objective.param_groups(model, LR, 0.0), lr=LR)
    generator = torch.Generator().manual_seed(0)
    batches = _batches(x, batch)

    def epoch() -> None:
        for step, v in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            loss, _ = objective.loss(model, v, generator)
            loss.backward()
            optimizer.step()
            objective.after_step(model, step)

    return epoch


def _ebmlab_loop(x: torch.Tensor, batch: int) -> Callable[[], None]:
    from ebmlab.models.vae import VAE
    from ebmlab.objectives.vae import VariationalBound
    from ebmlab.training import TrainConfig, train

    model = VAE(D, hidden=[HIDDEN, HIDDEN], latent=LATENT, seed=0)
    objective = VariationalBound()
    config = TrainConfig(
        epochs=1, batch_size=batch, lr=LR, progress=False, device="cpu", log_every_steps=10**9
    )
    return lambda: train(model, objective, x, config)


# ----- evaluation ---------------------------------------------------------------------------------
def _iwae_ebmlab(x: torch.Tensor, k: int) -> Callable[[], None]:
    from ebmlab.models.vae import VAE

    model = VAE(D, hidden=[HIDDEN, HIDDEN], latent=LATENT, seed=0)
    generator = torch.Generator().manual_seed(0)
    return lambda: model.bounds(x, k=k, generator=generator)


def _iwae_plain(x: torch.Tensor, k: int) -> Callable[[], None]:
    torch.manual_seed(0)
    model = PlainVAE()

    @torch.no_grad()
    def evaluate() -> None:
        for row in x:  # one image at a time: its k draws in one batch
            h = model.enc(row[None])
            mu, log_var = model.mu(h), model.log_var(h)
            eps = torch.randn(k, LATENT)
            z = mu + torch.exp(0.5 * log_var) * eps
            log_px = -F.binary_cross_entropy_with_logits(
                model.dec(z), row.expand(k, D), reduction="none"
            ).sum(1)
            log_pz = -0.5 * (z.square().sum(1) + LATENT * math.log(2 * math.pi))
            log_q = -0.5 * (eps.square().sum(1) + log_var.sum() + LATENT * math.log(2 * math.pi))
            torch.logsumexp(log_px + log_pz - log_q, 0)

    return evaluate


def _record(case: str, impl: str, examples: int, seconds: float, **extra: Any) -> dict[str, Any]:
    record = {
        "benchmark": "vae",
        "case": case,
        "implementation": impl,
        "examples": examples,
        "seconds": round(seconds, 4),
        "examples_per_second": round(examples / seconds, 1),
        **extra,
        **machine_info(),
    }
    if __name__ == "__main__":
        print(json.dumps(record), flush=True)
    return record


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure the training and evaluation cases; one record per result."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    warnings.filterwarnings("ignore")
    records = []
    x = binarized_mnist("train", 6000 if quick else 60000)
    repeat = 1 if quick else 2
    for batch in (100, 20):
        case = f"train-mnist-784-200-200-50-batch{batch}"
        seconds: dict[str, float] = {}
        for impl, make in (
            ("plain-pytorch", _plain),
            ("ebmlab", _ebmlab),
            ("ebmlab-train-loop", _ebmlab_loop),
        ):
            epoch = make(x, batch)
            epoch()  # warm-up
            seconds[impl] = min(_timed(epoch) for _ in range(repeat))
            extra = {}
            if impl != "plain-pytorch":
                extra["overhead"] = round(seconds[impl] / seconds["plain-pytorch"] - 1.0, 3)
            records.append(_record(case, impl, len(x), seconds[impl], **extra))
    k, n = (500, 20) if quick else (5000, 100)
    x_test = binarized_mnist("test", n)
    for impl, make in (("plain-pytorch", _iwae_plain), ("ebmlab", _iwae_ebmlab)):
        evaluate = make(x_test, k)
        evaluate()  # warm-up
        seconds_eval = min(_timed(evaluate) for _ in range(repeat))
        records.append(
            _record(
                f"iwae-{k}-mnist-784-200-200-50",
                impl,
                n,
                seconds_eval,
                draws_per_second=round(n * k / seconds_eval, 1),
                seconds_for_10000_images=round(seconds_eval * 10000 / n, 1),
            )
        )
    return records


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
