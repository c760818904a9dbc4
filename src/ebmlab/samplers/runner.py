"""The chain runner: one loop for every kernel (burn-in, adaptation, thinning, diagnostics).

    result = sample(kernel, target, x0, n_steps, burn_in=0, thin=1, seed=None, progress=True)

runs ``burn_in`` steps (tuning the step size of adaptive kernels, MALA and HMC, by dual
averaging) and then ``n_steps`` steps, keeping every ``thin``-th state: ``result.samples`` has
shape (n_steps // thin, n_chains, dim). The kernel knows one step, the runner owns the rest
(NumPyro's ``MCMC`` / BlackJAX's layout). The kernel passed in is copied, never modified:
``result.kernel`` holds the tuned copy.

``target`` is an energy callable (x -> E(x), shape (n_chains,)) or a model: ``free_energy`` for
models with hidden units, else ``energy``; binary models also give Gibbs kernels their exact
conditionals (see ``gibbs.py``). ``x0`` is checked against the target once, before the first
step (``base.check_start``): its width, finite values, the model's dtype (float64 or integer
states of a float32 model are converted), and for Gibbs and bit-flip kernels binary values.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..validation import as_generator, check_nonnegative_int, check_positive_int
from .adaptation import DualAveraging
from .base import (
    Kernel,
    Target,
    as_target,
    check_current_energy,
    check_kernel,
    check_start,
    evaluate_energy,
    make_generator,
    state_spec,
)
from .diagnostics import effective_sample_size, split_rhat

#: Kept draws per chain that ESS and split R-hat need (split R-hat: two halves of two draws).
MIN_DIAGNOSTIC_DRAWS = 4


@dataclass
class SampleResult:
    """Draws and diagnostics of one ``sample`` run.

    Attributes:
        samples: (n_draws, n_chains, dim) kept states.
        acceptance_rate: fraction of accepted proposals over the kept steps and all chains.
        ess: (dim,) effective sample size per dimension, all chains together (float64, NaN when
            a dimension is constant, or when the diagnostics were skipped: ``diagnostics=False``,
            or fewer than ``MIN_DIAGNOSTIC_DRAWS`` (4) kept draws, which ``sample`` warns about).
        rhat: (dim,) split R-hat per dimension (NaN as for ``ess``).
        n_nonfinite: proposals rejected because their energy was NaN/-inf, all steps included.
        n_divergent: divergent HMC trajectories over the kept steps.
        step_size: the kernel's step size after adaptation (None for kernels without one).
        extras: kernel statistics averaged over the kept steps, e.g. ``swap_accept``
            (per neighbouring pair) for parallel tempering.
        final_state: the kernel's last full state (all replicas for parallel tempering).
        kernel: the (tuned) copy of the kernel that produced the draws.
    """

    samples: torch.Tensor
    acceptance_rate: float
    ess: torch.Tensor
    rhat: torch.Tensor
    n_nonfinite: int
    n_divergent: int
    step_size: float | None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    final_state: torch.Tensor | None = None
    kernel: Kernel | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary (for ``ebmlab sample --json``)."""

        def finite_or_none(v: torch.Tensor) -> float | None:
            v = v[torch.isfinite(v)]
            return None if v.numel() == 0 else float(v.min())

        out: dict[str, Any] = {
            "n_draws": int(self.samples.shape[0]),
            "n_chains": int(self.samples.shape[1]),
            "dim": int(self.samples[0, 0].numel()) if self.samples.numel() else 0,
            "acceptance_rate": self.acceptance_rate,
            "ess_min": finite_or_none(self.ess),
            "rhat_max": None
            if not torch.isfinite(self.rhat).any()
            else float(self.rhat[torch.isfinite(self.rhat)].max()),
            "n_nonfinite": self.n_nonfinite,
            "n_divergent": self.n_divergent,
            "step_size": self.step_size,
        }
        for key, value in self.extras.items():
            out[key] = [None if math.isnan(v) else v for v in value.flatten().tolist()]
        return out


def _needs_energy_check(kernel: Kernel) -> bool:
    from .annealing import SimulatedAnnealing
    from .gibbs import Gibbs
    from .tempering import ParallelTempering

    while isinstance(kernel, ParallelTempering | SimulatedAnnealing):
        kernel = kernel.kernel
    return not isinstance(kernel, Gibbs)


def sample(
    kernel: Kernel,
    target: Any,
    x0: torch.Tensor,
    n_steps: int,
    burn_in: int = 0,
    thin: int = 1,
    seed: int | None = None,
    progress: bool = True,
    generator: torch.Generator | None = None,
    diagnostics: bool = True,
) -> SampleResult:
    """Run ``kernel`` on ``target`` from ``x0`` and collect draws and diagnostics.

    Args:
        kernel: any ebmlab kernel, e.g. ``MALA(step_size=0.1)``.
        target: energy callable or model (see the module docstring).
        x0: (n_chains, dim) initial states, one chain per row (sets the device), checked once
            against the target (``base.check_start``: width, finite, the model's dtype, binary
            values for Gibbs and bit-flip kernels).
        n_steps: steps after burn-in; ``n_steps // thin`` draws are kept.
        burn_in: steps run first and discarded (step-size adaptation happens here).
        thin: keep every ``thin``-th state.
        seed: an integer seed of a ``torch.Generator`` on x0's device, or a generator (ignored
            when ``generator`` is given).
        progress: show a tqdm progress bar.
        generator: an explicit ``torch.Generator`` (or an integer seed) instead of ``seed``.
        diagnostics: compute ESS and R-hat (skip for very large draws). They need at least
            ``MIN_DIAGNOSTIC_DRAWS`` (4) kept draws, ``n_steps // thin``: with fewer they are
            skipped (NaN) with a warning; pass ``diagnostics=False`` for short runs.
    """
    check_kernel(kernel, "kernel")
    target = as_target(target)
    x0 = check_start(x0, target, kernel, name="x0", matrix=True)
    check_positive_int(n_steps, "n_steps")
    check_nonnegative_int(burn_in, "burn_in")
    check_positive_int(thin, "thin")
    if n_steps < thin:
        raise ValueError(f"n_steps: {n_steps} steps with thin={thin} keep no draw")
    kernel = copy.copy(kernel)
    for attribute in ("t", "_t"):  # annealing / SGLD / PT counters start afresh
        if hasattr(kernel, attribute):
            setattr(kernel, attribute, 0)
    generator = as_generator(generator, x0.device, "generator")
    if generator is None:
        generator = make_generator(seed, x0.device)

    if _needs_energy_check(kernel):
        with torch.no_grad():
            check_current_energy(evaluate_energy(target, x0))
    x = kernel.init(x0.detach().clone())
    adapter = None
    if kernel.adaptive and getattr(kernel, "adapt", False) and burn_in > 0:
        adapter = DualAveraging(kernel.step_size, kernel.target_accept)

    n_chains, dim = x0.shape
    n_draws = n_steps // thin
    samples = torch.empty((n_draws, n_chains, dim), dtype=x0.dtype, device=x0.device)
    accepted = torch.zeros((), dtype=torch.float64, device=x0.device)  # total over chains
    nonfinite = torch.zeros((), dtype=torch.int64, device=x0.device)
    divergent = torch.zeros((), dtype=torch.int64, device=x0.device)
    extras_sum: dict[str, torch.Tensor] = {}
    extras_count: dict[str, torch.Tensor] = {}

    state = None
    total = burn_in + n_steps
    bar = tqdm(total=total, disable=not progress, desc=type(kernel).__name__, leave=False)
    update_every = max(1, total // 100)
    for t in range(total):
        x, info = kernel.step(x, target, generator, state)
        state = info.state
        nonfinite += info.nonfinite.sum()
        kept = t >= burn_in
        if adapter is not None and not kept:
            kernel.step_size = adapter.update(float(info.accept_prob.mean()))
            if t == burn_in - 1:
                kernel.step_size = adapter.final_step_size
            state = info.state  # energies and gradients do not depend on the step size
        if kept:
            accepted += info.accepted.sum()
            if info.diverging is not None:
                divergent += info.diverging.sum()
            for key, value in info.extras.items():
                value = value.to(torch.float64)
                ok = ~torch.isnan(value)
                extras_sum[key] = extras_sum.get(key, 0) + torch.where(ok, value, 0.0)
                extras_count[key] = extras_count.get(key, 0) + ok
            k = t - burn_in + 1
            if k % thin == 0:
                samples[k // thin - 1] = kernel.observe(x)
        if progress and (t + 1) % update_every == 0:
            bar.update(update_every)
            if kept:
                rate = float(accepted) / (n_chains * (t - burn_in + 1))
                bar.set_postfix(accept=f"{rate:.3f}")
    bar.close()

    if diagnostics and n_draws < MIN_DIAGNOSTIC_DRAWS:
        warnings.warn(
            f"sample: ESS and R-hat need at least {MIN_DIAGNOSTIC_DRAWS} kept draws per chain, "
            f"got {n_draws} (n_steps={n_steps}, thin={thin}); they are skipped (NaN). Run more "
            "steps, or pass diagnostics=False",
            UserWarning,
            stacklevel=2,
        )
        diagnostics = False
    if diagnostics:
        chains = samples.transpose(0, 1)  # (chain, draw, dim), the diagnostics' layout
        ess, rhat = effective_sample_size(chains), split_rhat(chains)
    else:
        ess = rhat = torch.full((dim,), float("nan"), dtype=torch.float64)
    extras = {key: extras_sum[key] / torch.clamp(extras_count[key], min=1) for key in extras_sum}
    for key in extras:  # pairs never proposed stay NaN
        extras[key] = torch.where(extras_count[key] > 0, extras[key], float("nan"))
    return SampleResult(
        samples=samples,
        acceptance_rate=float(accepted) / (n_chains * n_steps),
        ess=ess,
        rhat=rhat,
        n_nonfinite=int(nonfinite),
        n_divergent=int(divergent),
        step_size=getattr(kernel, "step_size", None),
        extras=extras,
        final_state=x,
        kernel=kernel,
    )


# ----- helpers for front ends (the CLI): kernels by name, a default kernel, initial states -------
def _kernel_classes() -> dict[str, type[Kernel]]:
    from .discrete_gradient import DULA, DiscreteLangevin, GibbsWithGradients
    from .gibbs import Gibbs
    from .hmc import HMC
    from .langevin import MALA, SGLD, Langevin
    from .metropolis import MetropolisHastings

    return {
        "mh": MetropolisHastings,
        "gibbs": Gibbs,
        "langevin": Langevin,
        "ula": Langevin,
        "mala": MALA,
        "hmc": HMC,
        "sgld": SGLD,
        "gwg": GibbsWithGradients,
        "dmala": DiscreteLangevin,
        "dula": DULA,
    }


def make_kernel(name: str, base: str | None = None, **settings: Any) -> Kernel:
    """A kernel from its name and settings, e.g. ``make_kernel("mala", step_size=0.1)``.

    Names: mh, gibbs, langevin (= ula), mala, hmc, sgld, gwg (Gibbs-with-gradients), dmala and
    dula (the discrete Langevin proposal with and without its MH correction), and the wrappers
    pt (parallel tempering: ``betas`` or ``n_temps``/``beta_min``) and anneal (simulated annealing:
    ``schedule`` or ``t0``/``alpha``/``t_min``) around ``base`` (a name; its settings go in
    ``base_settings``)."""
    from .annealing import SimulatedAnnealing
    from .tempering import ParallelTempering

    classes = _kernel_classes()
    if name in ("pt", "anneal"):
        inner = make_kernel(base or "gibbs", **settings.pop("base_settings", {}))
        wrapper = ParallelTempering if name == "pt" else SimulatedAnnealing
        return wrapper(inner, **settings)
    if name not in classes:
        valid = ", ".join(sorted([*classes, "pt", "anneal"]))
        raise ValueError(f"kernel: unknown name {name!r}; valid names: {valid}")
    return classes[name](**settings)


def default_kernel(model: Any) -> Kernel:
    """Gibbs for binary models with exact conditionals (block Gibbs for RBMs), single-bit-flip
    Metropolis-Hastings for other binary models (``spin_values``), MALA otherwise."""
    from .gibbs import Gibbs
    from .langevin import MALA
    from .metropolis import MetropolisHastings

    target = as_target(model)
    if target.has_block_gibbs or target.has_conditionals:
        return Gibbs()
    if target.spin_values is not None:
        return MetropolisHastings("flip")
    return MALA(step_size=0.01)


def initial_states(
    model: Any, n_chains: int, generator: torch.Generator | None = None, dim: int | None = None
) -> torch.Tensor:
    """Random starting states, (n_chains, dim) on the model's device and in its dtype: uniform
    binary states for binary models (``spin_values``, or an RBM's visible layer), N(0, I)
    otherwise. ``dim`` is the width the target declares (``base.state_spec``: ``n_visible`` for a
    model sampled through its free energy, else ``n_units``, ``n_visible`` or ``dim``) unless
    given: the states ``sample`` accepts from ``check_start``."""
    spec = state_spec(model)
    dim = dim or spec.width
    if dim is None:
        raise ValueError("dim: the model has no n_units / n_visible / dim; pass dim")
    params = (
        list(model.parameters()) + list(model.buffers()) if hasattr(model, "parameters") else []
    )
    device = params[0].device if params else torch.device("cpu")
    dtype = next((p.dtype for p in params if p.is_floating_point()), torch.get_default_dtype())
    spins = spec.spin_values
    if spins is None and hasattr(model, "gibbs_vhv"):
        spins = (0.0, 1.0)
    if spins is not None:
        u = torch.rand(n_chains, dim, generator=generator, device=device)
        return torch.where(u < 0.5, spins[1], spins[0]).to(dtype)
    return torch.randn(n_chains, dim, generator=generator, device=device, dtype=dtype)


__all__ = ["SampleResult", "Target", "default_kernel", "initial_states", "make_kernel", "sample"]
