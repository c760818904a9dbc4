"""Every kernel leaves its target invariant: one parametrized suite over all of them.

Each entry of ``CASES`` builds a kernel and names a small exact target:

* ``gaussian``: a correlated 2-D Gaussian (correlation 0.85). Chains start at exact draws; means
  and covariances must match within 5 standard errors computed from the effective sample size.
  The moments are compared in the target's principal axes scaled to unit variance, so the
  stiff direction is tested at its own precision. Unadjusted kernels (ULA, SGLD) do not leave
  the Gaussian invariant but N(mu, S(eps)) with the closed form S(eps) = (P - eps P^2 / 2)^-1
  (``sampler_targets.ula_stationary_cov``): ULA is tested against S(eps) itself, SGLD (whose
  eps_t changes) against the target with a tolerance widened by its largest bias over the kept
  steps.
* ``binary``: a 5-unit Boltzmann machine given only by its energy, and ``rbm``: a 5 x 3
  Bernoulli RBM sampled through its free energy (or block Gibbs). The histogram of the 32 states
  must pass a chi-square test (p > 1e-6) against exact enumeration.

Simulated annealing joins at constant T = 1, where it is the plain kernel; parallel tempering is
checked on its beta = 1 chains. A new kernel joins by adding one entry; the last test fails when
a kernel exported by ``ebmlab.samplers`` has none, or when an entry cannot be built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from sampler_targets import (
    COV,
    MEAN,
    TinyBoltzmann,
    assert_moments,
    chi_square_p,
    exact_probs,
    gaussian_energy,
    start_states,
    state_index,
    tiny_rbm,
    ula_stationary_cov,
)

import ebmlab.samplers as samplers
from ebmlab.samplers import (
    HMC,
    MALA,
    SGLD,
    DiscreteLangevin,
    Gibbs,
    GibbsWithGradients,
    Kernel,
    Langevin,
    MetropolisHastings,
    ParallelTempering,
    SimulatedAnnealing,
    sample,
)


@dataclass(frozen=True)
class Case:
    """One suite entry: how to build the kernel, on which target, for how long.

    ``cov`` gives the covariance the kernel is expected to leave invariant (default: the
    target's); ``slack`` a (d, d) widening of the covariance tolerance for a known bias."""

    name: str
    build: Callable[[], Kernel]
    target: str
    n_steps: int
    burn_in: int
    thin: int = 1
    cov: Callable[[Kernel], torch.Tensor] | None = None
    slack: Callable[[Kernel, int], torch.Tensor] | None = None


def ula_cov(kernel: Langevin) -> torch.Tensor:
    return ula_stationary_cov(kernel.step_size, kernel.temperature)


def sgld_slack(kernel: SGLD, burn_in: int) -> torch.Tensor:
    """In the principal axes of the target (variances s_k = 1 / lambda_k), ULA at step eps has
    variances 1 / (1 - eps lambda_k / 2) and no covariances: the bias grows with eps, so the
    first kept step (the largest eps_t) bounds it."""
    eps_max = kernel.a * (kernel.b + burn_in) ** (-kernel.gamma)
    lam = 1 / torch.linalg.eigvalsh(COV.double())  # eigenvalues of P, in the order eigh uses
    return torch.diag(1 / (1 - eps_max * lam / 2) - 1)


CASES = [
    Case("mh-gaussian", lambda: MetropolisHastings("gaussian", scale=1.0), "gaussian", 1500, 200),
    Case("mh-uniform", lambda: MetropolisHastings("uniform", scale=1.5), "gaussian", 1500, 200),
    Case("mala", lambda: MALA(step_size=0.2), "gaussian", 800, 200),
    Case("hmc", lambda: HMC(step_size=0.2, n_leapfrog=8), "gaussian", 300, 200),
    Case("ula", lambda: Langevin(step_size=0.1), "gaussian", 1000, 100, cov=ula_cov),
    Case(
        "ula-tempered",
        lambda: Langevin(step_size=0.05, noise_scale=0.5),  # T = 2.5
        "gaussian",
        1000,
        100,
        cov=ula_cov,
    ),
    Case("sgld", lambda: SGLD(a=0.1, b=10.0), "gaussian", 1500, 100, slack=sgld_slack),
    Case(
        "pt-mala",
        lambda: ParallelTempering(MALA(step_size=0.3, adapt=False), betas=[1.0, 0.5]),
        "gaussian",
        800,
        100,
    ),
    Case(
        "anneal-at-t1-mh",
        lambda: SimulatedAnnealing(MetropolisHastings(scale=1.0), schedule=[1.0]),
        "gaussian",
        1500,
        200,
    ),
    Case("gibbs-systematic", lambda: Gibbs(scan="systematic"), "binary", 200, 50, thin=5),
    Case("gibbs-random", lambda: Gibbs(scan="random"), "binary", 200, 50, thin=5),
    Case("mh-flip", lambda: MetropolisHastings("flip"), "binary", 1000, 250, thin=25),
    Case("mh-flip2", lambda: MetropolisHastings("flip", n_flips=2), "binary", 1000, 250, thin=25),
    Case(
        "pt-gibbs",
        lambda: ParallelTempering(Gibbs(), betas=[1.0, 0.5, 0.25]),
        "binary",
        200,
        50,
        thin=5,
    ),
    Case(
        "anneal-at-t1-gibbs",
        lambda: SimulatedAnnealing(Gibbs(scan="systematic"), schedule=[1.0]),
        "binary",
        200,
        50,
        thin=5,
    ),
    Case("gwg", lambda: GibbsWithGradients(), "binary", 1000, 250, thin=25),
    Case("gwg-3-draws", lambda: GibbsWithGradients(n_flips=3), "binary", 1000, 250, thin=25),
    Case("dmala", lambda: DiscreteLangevin(step_size=0.5), "binary", 600, 150, thin=15),
    Case("gwg-free-energy-rbm", lambda: GibbsWithGradients(), "rbm", 1000, 250, thin=25),
    Case("dmala-free-energy-rbm", lambda: DiscreteLangevin(1.0), "rbm", 600, 150, thin=15),
    Case("gibbs-block-rbm", lambda: Gibbs(), "rbm", 200, 40, thin=5),
    Case(
        "pt-block-gibbs-rbm",
        lambda: ParallelTempering(Gibbs(), betas=[1.0, 0.6, 0.3]),
        "rbm",
        200,
        40,
        thin=5,
    ),
    Case(
        "pt-mh-free-energy-rbm",
        lambda: ParallelTempering(MetropolisHastings("flip"), betas=[1.0, 0.5]),
        "rbm",
        200,
        40,
        thin=5,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_kernel_leaves_its_target_invariant(case: Case) -> None:
    kernel = case.build()
    if case.target == "gaussian":
        result = sample(
            kernel,
            gaussian_energy,
            start_states(32, 0),
            case.n_steps,
            burn_in=case.burn_in,
            thin=case.thin,
            seed=1,
            progress=False,
        )
        cov = COV.double() if case.cov is None else case.cov(kernel)
        slack = 0.0 if case.slack is None else case.slack(kernel, case.burn_in)
        assert torch.isfinite(result.samples).all()
        assert_moments(result.samples, MEAN, cov, slack=slack)
        return
    model = TinyBoltzmann() if case.target == "binary" else tiny_rbm()
    x0 = (torch.rand(400, 5, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    result = sample(
        kernel,
        model,
        x0,
        case.n_steps,
        burn_in=case.burn_in,
        thin=case.thin,
        seed=1,
        progress=False,
    )
    counts = torch.bincount(state_index(result.samples).flatten(), minlength=32)
    energy = model.energy if case.target == "binary" else model.free_energy
    assert chi_square_p(counts, exact_probs(energy)) > 1e-6


def _kernel_types(kernel: Kernel) -> set[type]:
    inner = getattr(kernel, "kernel", None)
    return {type(kernel)} | (_kernel_types(inner) if isinstance(inner, Kernel) else set())


def test_every_entry_builds_and_every_exported_kernel_has_one() -> None:
    covered: set[type] = set()
    for case in CASES:
        kernel = case.build()  # an entry that cannot be built fails here, by name
        assert isinstance(kernel, Kernel), case.name
        assert case.target in ("gaussian", "binary", "rbm"), case.name
        covered |= _kernel_types(kernel)
    exported = {
        obj
        for name in samplers.__all__
        if inspect.isclass(obj := getattr(samplers, name))
        and issubclass(obj, Kernel)
        and obj is not Kernel
    }
    missing = sorted(cls.__name__ for cls in exported - covered)
    assert not missing, f"kernels without an entry in the invariance suite: {missing}"
