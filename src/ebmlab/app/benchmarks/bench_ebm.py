"""Training time per 1,000 steps of every neural-EBM objective on 8gaussians, beside the
equivalent losses and samplers of torchebm and ebmkit when they are installed (the optional
``bench`` extras; a peer that is not installed is skipped).

Every library trains the same energy network (an MLP 2 -> 128 -> 128 -> 128 -> 1 with SiLU,
the recipe's default) with Adam on minibatches of 256 points, with matched settings: CD with 20
Langevin steps (step 0.002, noise sqrt(2 * 0.002)) and a 10,000-chain replay buffer with 5%
reinitialization; exact and sliced (1 Rademacher projection) score matching; DSM at
sigma = 0.05; NCE with 4 noise samples per data point. Steps are timed on one thread,
interleaved across libraries (best of 3 rounds), so that changes of machine load hit every
library alike. One JSON line per (library, objective):

    PYTHONPATH=src python benchmarks/bench_ebm.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

BATCH, HIDDEN, DEPTH = 256, 128, 3
STEP_SIZE, LANGEVIN_STEPS, BUFFER, SIGMA, NU = 0.002, 20, 10_000, 0.05, 4


def _mlp() -> nn.Sequential:
    layers: list[nn.Module] = []
    width = 2
    for _ in range(DEPTH):
        layers += [nn.Linear(width, HIDDEN), nn.SiLU()]
        width = HIDDEN
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


Step = Callable[[torch.Tensor], None]


def _time_steps(step: Step, data: torch.Tensor, n_steps: int, seed: int = 0) -> float:
    """Seconds per 1,000 optimizer steps of ``step`` on random minibatches."""
    g = torch.Generator().manual_seed(seed)
    batches = [data[torch.randint(0, data.shape[0], (BATCH,), generator=g)] for _ in range(n_steps)]
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    return (time.perf_counter() - start) / n_steps * 1000


# ----- ebmlab -----------------------------------------------------------------------------------
def _ebmlab_objectives() -> dict[str, Callable[[], Any]]:
    from ebmlab.objectives.contrastive_langevin import ContrastiveLangevin
    from ebmlab.objectives.nce import FlowContrastiveEstimation, NoiseContrastiveEstimation
    from ebmlab.objectives.score_matching import (
        DenoisingScoreMatching,
        ExactScoreMatching,
        NoiseAugmentedScoreMatching,
        NoiseConditionalScoreMatching,
        SlicedScoreMatching,
    )

    return {
        "cd": lambda: ContrastiveLangevin(
            n_steps=LANGEVIN_STEPS, step_size=STEP_SIZE, buffer_size=BUFFER, alpha=0.01
        ),
        "sm": ExactScoreMatching,
        "ssm": SlicedScoreMatching,
        "dsm": lambda: DenoisingScoreMatching(sigma=SIGMA),
        "ncsn": NoiseConditionalScoreMatching,
        "nsm": NoiseAugmentedScoreMatching,
        "nce": lambda: NoiseContrastiveEstimation(noise_ratio=NU),
        "fce": lambda: FlowContrastiveEstimation(2, flow_pretrain_steps=0),
    }


def bench_ebmlab(data: torch.Tensor) -> dict[str, Step]:
    from ebmlab.models.neural import MLPEnergy, geometric_sigmas

    steps: dict[str, Step] = {}
    for name, make in _ebmlab_objectives().items():
        torch.manual_seed(0)
        sigmas = geometric_sigmas(2.0, 0.02, 10) if name in ("ncsn", "nsm") else None
        scaling = "none" if name == "nsm" else "inverse"
        model = MLPEnergy(2, hidden=HIDDEN, depth=DEPTH, sigmas=sigmas, noise_scaling=scaling)
        objective = make()
        objective.setup(model, data)
        optimizer = torch.optim.Adam(objective.param_groups(model, 1e-3, 0.0), lr=1e-3)
        generator = torch.Generator().manual_seed(1)

        def step(
            batch: torch.Tensor,
            model=model,
            objective=objective,
            optimizer=optimizer,
            generator=generator,
        ) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss, _ = objective.loss(model, batch, generator)
            loss.backward()
            optimizer.step()
            objective.after_step(model, 0)

        steps[name] = step
    return steps


# ----- torchebm ---------------------------------------------------------------------------------
def bench_torchebm(data: torch.Tensor) -> dict[str, Step]:
    from torchebm.core import BaseModel
    from torchebm.losses import (
        ContrastiveDivergence,
        DenoisingScoreMatching,
        ScoreMatching,
        SlicedScoreMatching,
    )
    from torchebm.samplers import LangevinDynamics

    class Energy(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).squeeze(-1)

    def losses(model: Energy) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        # torchebm's Langevin adds sqrt(2 step) * noise_scale * xi: noise_scale 1 is T = 1
        sampler = LangevinDynamics(model, step_size=STEP_SIZE, noise_scale=1.0)
        cd = ContrastiveDivergence(
            model=model,
            sampler=sampler,
            k_steps=LANGEVIN_STEPS,
            persistent=True,
            buffer_size=BUFFER,
            new_sample_ratio=0.05,
            energy_reg_weight=0.01,
            init_steps=0,
        )
        return {
            "cd": lambda x: cd(x)[0],
            "sm": ScoreMatching(model=model, hessian_method="exact"),
            "ssm": SlicedScoreMatching(model=model, n_projections=1),
            "dsm": DenoisingScoreMatching(model=model, noise_scale=SIGMA),
        }

    steps: dict[str, Step] = {}
    for name in ("cd", "sm", "ssm", "dsm"):
        torch.manual_seed(0)
        model = Energy()
        loss_fn = losses(model)[name]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(batch: torch.Tensor, loss_fn=loss_fn, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(batch).backward()
            optimizer.step()

        steps[name] = step
    return steps


# ----- ebmkit (imported as ``ebm``) -------------------------------------------------------------
def bench_ebmkit(data: torch.Tensor) -> dict[str, Step]:
    import ebm

    def losses() -> dict[str, nn.Module]:
        sampler = ebm.LangevinDynamics(step_size=STEP_SIZE, steps=LANGEVIN_STEPS)
        buffer = ebm.ReplayBuffer(
            BUFFER, (2,), reinit_prob=0.05, init_fn=lambda shape: 6.6 * torch.rand(shape) - 3.3
        )
        mean, cov = data.mean(0), torch.cov(data.T)
        noise = torch.distributions.MultivariateNormal(mean, cov)
        return {
            "cd": ebm.ContrastiveDivergence(sampler, buffer=buffer, energy_reg=0.01),
            "sm": ebm.ExactScoreMatching(),
            "ssm": ebm.SlicedScoreMatching(n_projections=1),
            "dsm": ebm.DenoisingScoreMatching(sigma=SIGMA),
            "ncsn": ebm.MultiSigmaDenoisingScoreMatching(ebm.geometric_sigmas(2.0, 0.02, 10)),
            "nce": ebm.NoiseContrastiveEstimation(noise, noise_ratio=NU),
        }

    steps: dict[str, Step] = {}
    for name in ("cd", "sm", "ssm", "dsm", "ncsn", "nce"):
        torch.manual_seed(0)
        net = _mlp()
        if name == "ncsn":  # a noise-conditional energy: sigma as an extra input
            net[0] = nn.Linear(3, HIDDEN)

            def energy(x: torch.Tensor, sigma: torch.Tensor, net=net) -> torch.Tensor:
                column = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
                return net(torch.cat([x, torch.log(column)], 1)).squeeze(-1)
        else:

            def energy(x: torch.Tensor, net=net) -> torch.Tensor:
                return net(x).squeeze(-1)

        loss_fn = losses()[name]
        optimizer = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=1e-3)

        def step(batch: torch.Tensor, loss_fn=loss_fn, optimizer=optimizer, energy=energy) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(energy, batch).loss.backward()
            optimizer.step()

        steps[name] = step
    return steps


PEERS: dict[str, Callable[[torch.Tensor], dict[str, Step]]] = {
    "torchebm": bench_torchebm,
    "ebmkit": bench_ebmkit,
}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Seconds per 1,000 training steps, per library and objective (peers when installed)."""
    from ebmlab import data as datasets

    data = datasets.toy2d("8gaussians", 20_000, seed=0)
    n_steps = 30 if quick else 300
    # one thread: on a shared 2-core machine, spinning OpenMP threads make timings erratic
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = _run_all(data, n_steps)
    finally:
        torch.set_num_threads(threads)
    ours = {
        r["objective"]: r["seconds_per_1000_steps"] for r in results if r.get("library") == "ebmlab"
    }
    for record in results:
        record.update(
            {
                "benchmark": "ebm",
                "data": "8gaussians",
                "batch_size": BATCH,
                "network": f"MLP 2-{HIDDEN}x{DEPTH}-1 SiLU",
                "threads": 1,
                "steps_timed": n_steps,
            }
        )
        peer_time = record.get("seconds_per_1000_steps")
        if record.get("library") != "ebmlab" and peer_time and record["objective"] in ours:
            record["ebmlab_speedup"] = round(peer_time / ours[record["objective"]], 2)
    return results


def _run_all(data: torch.Tensor, n_steps: int) -> list[dict[str, Any]]:
    """Build every library's training step, then time them interleaved (best of 3 rounds of
    n_steps / 3 steps each), so that a change of machine load hits all libraries alike."""
    libraries: dict[str, dict[str, Step]] = {"ebmlab": bench_ebmlab(data)}
    results: list[dict[str, Any]] = []
    for peer, bench in PEERS.items():
        module = "ebm" if peer == "ebmkit" else peer
        try:
            __import__(module)
        except ImportError:
            results.append({"library": peer, "skipped": "not installed"})
            continue
        try:
            libraries[peer] = bench(data)
        except Exception as error:  # a peer's API change must not hide our own numbers
            results.append({"library": peer, "error": f"{type(error).__name__}: {error}"})
    per_round = max(1, n_steps // 3)
    for objective in libraries["ebmlab"]:
        best: dict[str, float] = {}
        for round_ in range(3):
            for library, steps in libraries.items():
                if objective not in steps:
                    continue
                if round_ == 0:
                    _time_steps(steps[objective], data, 3, seed=99)  # warm-up
                seconds = _time_steps(steps[objective], data, per_round, seed=round_)
                best[library] = min(best.get(library, float("inf")), seconds)
        results += [
            {
                "library": library,
                "objective": objective,
                "seconds_per_1000_steps": round(seconds, 2),
            }
            for library, seconds in best.items()
        ]
    return results


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(json.dumps(result), flush=True)
