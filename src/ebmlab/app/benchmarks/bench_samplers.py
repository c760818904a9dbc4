"""Sampler benchmarks: Langevin throughput, AIS wall time, and AIS accuracy against exact log Z.

Cases:

* ``langevin``: chains x steps per second of unadjusted Langevin on the 8gaussians energy (FFJORD's
  mixture: 8 Gaussians of std 0.5 / 1.414 on a circle of radius 4 / 1.414), 10,000 chains x 1,000
  steps (quick: 100 steps), gradient by autograd; through ``ebmlab.samplers.sample`` and through
  the bare kernel loop, beside a hand-written loop with the closed-form gradient, and torchebm's
  and ebmkit's Langevin samplers when installed (``pip install torchebm ebmkit``; ebmkit
  installs the module ``ebm``). Implementations are timed in turn, five rounds, best round
  kept, with the rounds' spread (one thread: CPU time). Beside them: the autograd gradient
  alone at the states of a run (what every eager implementation computes per step; each
  record's ``seconds_over_autograd_gradient`` is its time over that floor), and
  ``ebmlab.samplers.sample`` given the energy's closed-form gradient (``EnergyWithGradient``).
* ``ais``: wall time of ``ebmlab.estimators.ais`` with 14,500 betas x 100 runs on a 784 x 500 RBM
  (quick: 1,450 betas), and the fractions of the float32 matmul throughput it reaches, counting
  2 matmuls of 2 * 100 * 784 * 500 flops per beta, of the square matmul peak and of the
  same-shape (100 x 784) @ (784 x 500) product, both timed in each of three rounds between the
  AIS runs and the best of each kept (``ebmlab.app.bench.interleaved``; one thread: CPU time).
* ``ais-accuracy``: a 784 x 20 RBM trained briefly with CD-1 on MNIST (stochastically binarized;
  random bits of MNIST's mean density when the data is missing): exact log Z by enumeration
  against forward AIS (base rate from the data) and reverse AIS started from exact samples, with
  the test log-likelihood in nats.

Run ``python benchmarks/bench_samplers.py [--quick] [langevin|ais|ais-accuracy ...]`` or
``ebmlab bench samplers``; one JSON line per result.
"""

from __future__ import annotations

import importlib.util
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from ebmlab.app.bench import clock_for, interleaved
from ebmlab.app.benchmarks.common import machine_info
from ebmlab.estimators import ais, exact_log_z, exact_sample, log_likelihood, reverse_ais
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.samplers import Langevin, sample

CENTERS = (
    torch.tensor(
        [
            [1, 0],
            [-1, 0],
            [0, 1],
            [0, -1],
            [0.7071, 0.7071],
            [0.7071, -0.7071],
            [-0.7071, 0.7071],
            [-0.7071, -0.7071],
        ]
    )
    * 4.0
    / 1.414
)
STD = 0.5 / 1.414


_CENTERS_ON: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _centers(x: torch.Tensor) -> torch.Tensor:
    """The centers on x's device and dtype, copied there once (no host-to-device copy per call,
    which a CUDA graph could not capture)."""
    key = (x.device, x.dtype)
    if key not in _CENTERS_ON:
        _CENTERS_ON[key] = CENTERS.to(x)
    return _CENTERS_ON[key]


def eight_gaussians_energy(x: torch.Tensor) -> torch.Tensor:
    """-log of the 8gaussians density up to a constant: -logsumexp_k -|x - mu_k|^2 / 2 s^2."""
    d2 = ((x[:, None, :] - _centers(x)) ** 2).sum(-1)
    return -torch.logsumexp(-d2 / (2 * STD**2), dim=1)


def eight_gaussians_grad(x: torch.Tensor) -> torch.Tensor:
    """Closed-form gradient: sum_k r_k (x - mu_k) / s^2 with responsibilities r_k."""
    diff = x[:, None, :] - _centers(x)
    r = torch.softmax(-(diff**2).sum(-1) / (2 * STD**2), dim=1)
    return (r[..., None] * diff).sum(1) / STD**2


class EightGaussians:
    """The 8gaussians energy with its closed-form gradient (``EnergyWithGradient``): the
    samplers then skip autograd."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return eight_gaussians_energy(x)

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = x[:, None, :] - _centers(x)
        logits = (diff**2).sum(-1).mul_(-1 / (2 * STD**2))
        energy = -torch.logsumexp(logits, dim=1)
        r = logits.add_(energy[:, None]).exp_()  # the responsibilities
        return energy, (r[..., None] * diff).sum(1).div_(STD**2)


def _timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def _machine() -> dict[str, Any]:
    return {**machine_info(), "torch": torch.__version__, "python": platform.python_version()}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ----- Langevin ----------------------------------------------------------------------------------
def _langevin_cases(n_chains: int, n_steps: int, step: float) -> list[tuple[str, Callable]]:
    x0 = torch.randn(n_chains, 2, generator=torch.Generator().manual_seed(0))

    def runner(energy: Any = eight_gaussians_energy) -> None:
        sample(
            Langevin(step_size=step),
            energy,
            x0,
            n_steps,
            thin=n_steps,
            seed=0,
            progress=False,
            diagnostics=False,
        )

    def kernel_loop() -> None:
        kernel, g, x = Langevin(step_size=step), torch.Generator().manual_seed(0), x0
        for _ in range(n_steps):
            x, _ = kernel.step(x, eight_gaussians_energy, g)

    def hand_written() -> None:
        g, x, noise = torch.Generator().manual_seed(0), x0.clone(), math.sqrt(2 * step)
        for _ in range(n_steps):
            x = x - step * eight_gaussians_grad(x) + noise * torch.randn(x.shape, generator=g)

    # the states of one chain run (the cost of the energy depends on them: far from a center
    # its exponentials underflow into slow subnormal numbers), for the gradient-only case
    g, x, noise = torch.Generator().manual_seed(0), x0.clone(), math.sqrt(2 * step)
    trajectory = []
    for _ in range(n_steps):
        trajectory.append(x)
        x = x - step * eight_gaussians_grad(x) + noise * torch.randn(x.shape, generator=g)

    def gradient_only() -> None:
        # what every eager sampler here does per step: the energy's autograd gradient, at the
        # states of a run (no update, no noise)
        for state in trajectory:
            x = state.detach().requires_grad_(True)
            torch.autograd.grad(eight_gaussians_energy(x).sum(), x)

    cases = [
        ("autograd gradient alone", gradient_only),
        ("ebmlab.sample", runner),
        ("ebmlab.sample, closed-form gradient", lambda: runner(EightGaussians())),
        ("ebmlab kernel loop", kernel_loop),
        ("hand-written closed-form gradient", hand_written),
    ]
    if _installed("torchebm"):
        cases.append(("torchebm", _torchebm_case(x0, n_steps, step)))
    if _installed("ebm"):
        cases.append(("ebmkit", _ebmkit_case(x0, n_steps, step)))
    return cases


def _torchebm_case(x0: torch.Tensor, n_steps: int, step: float) -> Callable[[], None]:
    from torchebm.core import BaseModel  # type: ignore[import-not-found]
    from torchebm.samplers import LangevinDynamics  # type: ignore[import-not-found]

    class Energy(BaseModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return eight_gaussians_energy(x)

    # torchebm's noise is noise_scale * sqrt(2 step_size) * xi: noise_scale = 1 samples exp(-E)
    sampler = LangevinDynamics(Energy(), step_size=step, noise_scale=1.0)
    g = torch.Generator().manual_seed(0)
    return lambda: sampler.sample(x=x0.clone(), n_steps=n_steps, generator=g)


def _ebmkit_case(x0: torch.Tensor, n_steps: int, step: float) -> Callable[[], None]:
    import ebm  # type: ignore[import-not-found]  # the ebmkit distribution installs "ebm"

    sampler = ebm.LangevinDynamics(step_size=step, steps=n_steps)  # noise sqrt(2 eps)
    return lambda: sampler.sample(eight_gaussians_energy, x0.clone(), steps=n_steps)


def bench_langevin(quick: bool = False, rounds: int = 5) -> list[dict[str, Any]]:
    """Implementations are timed in turn, ``rounds`` times (interleaved, so that a busy machine
    slows them alike); each record keeps the best round."""
    n_chains, n_steps, step = 10_000, 100 if quick else 1000, 0.01
    cases = _langevin_cases(n_chains, n_steps, step)
    clock_name, clock = clock_for("cpu")
    times: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for _ in range(rounds):
        for name, fn in cases:
            if name in errors:
                continue
            try:
                seconds = _timed(fn, clock)
            except Exception as error:  # a peer whose API changed is reported, not fatal
                errors[name] = f"{type(error).__name__}: {error}"
                continue
            times.setdefault(name, []).append(seconds)
    best = {name: min(values) for name, values in times.items()}
    records = []
    for name, _ in cases:
        record: dict[str, Any] = {
            "benchmark": "langevin-8gaussians",
            "implementation": name,
            "chains": n_chains,
            "steps": n_steps,
            "rounds": rounds,
        }
        if name in errors:
            record["error"] = errors[name]
        else:
            record.update(
                seconds=round(best[name], 3),
                chain_steps_per_second=round(n_chains * n_steps / best[name]),
                # the rounds' spread: slowest over fastest round, minus 1
                spread=round(max(times[name]) / best[name] - 1.0, 4),
                clock=clock_name,
            )
            floor = best.get("autograd gradient alone")
            if floor is not None:  # > 1: the time spent beyond the autograd gradient
                record["seconds_over_autograd_gradient"] = round(best[name] / floor, 3)
        records.append({**record, **_machine()})
    return records


# ----- AIS ---------------------------------------------------------------------------------------
def bench_ais(quick: bool = False, rounds: int = 3) -> list[dict[str, Any]]:
    n_betas, n_runs, d, h = (1450 if quick else 14500), 100, 784, 500
    rbm = BernoulliRBM(d, h, init_std=0.05, seed=0)
    results = []
    # the matmul references are timed in every round beside the AIS run (ebmlab.app.bench)
    timing = interleaved(
        lambda: results.append(ais(rbm, n_betas=n_betas, n_runs=n_runs, seed=0, progress=False)),
        (n_runs, d, h),
        rounds=rounds,
        warmup=False,
    )
    result = results[-1]
    flops = n_betas * 2 * (2 * n_runs * d * h)
    return [
        {
            "benchmark": "ais-784x500",
            "n_betas": n_betas,
            "n_runs": n_runs,
            "seconds": round(timing.seconds, 2),
            "microseconds_per_beta": round(timing.seconds / n_betas * 1e6, 1),
            "rounds": rounds,
            **timing.ratios(flops),
            "log_z": round(result.log_z, 3),
            "log_z_se": round(result.log_z_se, 4),
            "ess": round(result.ess, 1),
            **_machine(),
        }
    ]


def _mnist(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from ebmlab.data import load

        x, _ = load("mnist", "train", binarize="stochastic")
        x_test, _ = load("mnist", "test", binarize="stochastic")
        return x[:n], x_test, "mnist (stochastic binarization)"
    except Exception:  # no data here: random bits with a digit-like mean density
        g = torch.Generator().manual_seed(0)
        p = torch.rand(784, generator=g) * 0.3
        return (
            (torch.rand(n, 784, generator=g) < p).float(),
            (torch.rand(2000, 784, generator=g) < p).float(),
            "random bits (no MNIST)",
        )


def _train_cd1(x: torch.Tensor, n_hidden: int, epochs: int, seed: int) -> BernoulliRBM:
    rbm = BernoulliRBM(784, n_hidden, init_std=0.01, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        p = x.mean(0).clamp(1e-3, 1 - 1e-3)  # visible biases at the data log-odds
        rbm.b.copy_(torch.log(p / (1 - p)))
        for _ in range(epochs):
            for batch in x[torch.randperm(x.shape[0], generator=g)].split(100):
                ph0 = rbm.p_h_given_v(batch)
                v1, _ = rbm.gibbs_vhv(batch, g)
                ph1 = rbm.p_h_given_v(v1)
                lr = 0.05 / batch.shape[0]
                rbm.W += lr * (batch.T @ ph0 - v1.T @ ph1)
                rbm.b += lr * (batch - v1).sum(0)
                rbm.c += lr * (ph0 - ph1).sum(0)
    return rbm


def bench_ais_accuracy(quick: bool = False) -> list[dict[str, Any]]:
    n_hidden = 16 if quick else 20
    x, x_test, source = _mnist(10_000 if quick else 60_000)
    rbm = _train_cd1(x, n_hidden, epochs=2 if quick else 5, seed=0)
    n_betas = 1450 if quick else 14500
    start = time.perf_counter()
    exact = exact_log_z(rbm)
    exact_seconds = time.perf_counter() - start
    forward = ais(rbm, n_betas=n_betas, n_runs=100, seed=0, data=x)
    v0 = exact_sample(rbm, 100, torch.Generator().manual_seed(1))
    reverse = reverse_ais(rbm, v0, n_betas=n_betas, seed=1, data=x)
    records = []
    for method, log_z, se, seconds in (
        ("exact", exact, 0.0, exact_seconds),
        ("ais", forward.log_z, forward.log_z_se, forward.seconds),
        ("reverse-ais", reverse.log_z, reverse.log_z_se, reverse.seconds),
    ):
        ll = log_likelihood(rbm, x_test, log_z, se)
        records.append(
            {
                "benchmark": f"ais-accuracy-784x{n_hidden}",
                "data": source,
                "method": method,
                "n_betas": n_betas,
                "log_z": round(log_z, 3),
                "log_z_se": round(se, 3),
                "error_vs_exact": round(log_z - exact, 3),
                "test_log_likelihood": round(ll.mean, 2),
                "test_ll_se": round(ll.se, 2),
                "seconds": round(seconds, 2),
                "ess": None
                if method == "exact"
                else round((forward if method == "ais" else reverse).ess, 1),
            }
        )
    return records


BENCHMARKS = {"langevin": bench_langevin, "ais": bench_ais, "ais-accuracy": bench_ais_accuracy}


def run(quick: bool = False, which: list[str] | None = None) -> list[dict[str, Any]]:
    records = []
    for name in which or list(BENCHMARKS):
        for record in BENCHMARKS[name](quick):
            print(json.dumps(record), flush=True)
            records.append(record)
    return records


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    unknown = [a for a in args if a not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    run(quick="--quick" in sys.argv, which=args or None)
