"""Shared pieces of every MCMC kernel: the info record, targets, energies, gradients, MH acceptance.

A kernel is a small object holding its settings, with

    step(x, energy_fn, generator, state=None) -> (x_new, info)

acting on a batch of chains (one chain per row of ``x``). ``energy_fn`` maps a batch (n, ...) to
energies of shape (n,) with p(x) ∝ exp(-E(x)), or is a model offering the structural protocols
of ``protocols.py`` (tempered free energies, exact conditionals for the Gibbs kernels).
``info.state`` caches the energy (and gradient) of ``x_new``; passing it back as ``state`` on the
next call saves an energy evaluation. A cached state is only used when it belongs to the very
tensor passed in (``state.x is x``), so a stale cache can never be used by mistake.

Non-finite energies (the convention follows BlackJAX's ``mcmc/proposal.py``): a proposal whose
energy is NaN or -inf is rejected, never accepted, and counted in ``info.nonfinite``; the
runner reports the total. A non-finite energy of the *current* state is an error (the chain
has nowhere to stay), raised with the offending chain indices.

References: Metropolis et al. (1953); Hastings (1970); Neal, "MCMC using Hamiltonian dynamics"
(2011) for the log-space acceptance; Cabezas et al., BlackJAX (2024) for the kernel layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..validation import (
    InstanceOf,
    Real,
    SequenceOf,
    as_generator,
    as_tensor,
    check_in_range,
    check_positive,
    check_spin_values,
)
from .elementary import bernoulli_draw as bernoulli_draw  # re-exported: the one Bernoulli draw
from .protocols import (
    BipartiteGibbs,
    BlockSweep,
    EnergyFn,
    EnergyWithGradient,
    Rng,
    SiteConditionals,
    TemperedFreeEnergy,
)


@dataclass
class ChainState:
    """Cached quantities of a batch of states: the tensor itself, its energies and gradients."""

    x: torch.Tensor
    energy: torch.Tensor | None = None
    grad: torch.Tensor | None = None


@dataclass
class Info:
    """What one kernel step reports, per chain (shape (n_chains,) unless said otherwise).

    Attributes:
        accept_prob: Metropolis-Hastings acceptance probability min(1, r) (1 for Gibbs / ULA).
        accepted: whether the chain moved to its proposal.
        nonfinite: whether the proposal was rejected because its energy (or state) was NaN/-inf.
        diverging: HMC only: the energy error of the trajectory exceeded the threshold.
        state: cached energy / gradient of ``x_new`` for the next call.
        extras: kernel-specific statistics (e.g. ``swap_accept`` of parallel tempering, one value
            per neighbouring temperature pair, NaN where a pair was not proposed this step).
    """

    accept_prob: torch.Tensor
    accepted: torch.Tensor
    nonfinite: torch.Tensor
    diverging: torch.Tensor | None = None
    state: ChainState | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


#: the optional cached state passed to ``Kernel.step``, and what a step returns
State = ChainState | None
Step = tuple[Tensor, Info]


def check_step_size(value: float, name: str = "step_size") -> float:
    """Step sizes must be finite and strictly positive numbers (not bools, not strings)."""
    return float(check_positive(value, name))


def check_target_accept(value: float) -> float:
    """The acceptance rate that step-size adaptation aims at: a number in (0, 1)."""
    return float(check_in_range(value, "target_accept", 0.0, 1.0, "neither"))


def check_kernel(value: Any, name: str = "kernel") -> Kernel:
    """``value`` if it is a sampler kernel (a ``Kernel``), else ``InvalidArgumentError``."""
    kernels = "an ebmlab sampler kernel (e.g. MALA(step_size=0.1) or Gibbs())"
    return InstanceOf(Kernel, description=kernels).check(value, name)


#: The two values of a binary unit a kernel or an enumeration may be told to use.
SPIN_VALUES = SequenceOf(Real(), 2).where(
    lambda v: tuple(float(u) for u in v) in ((0.0, 1.0), (-1.0, 1.0)),
    "(0.0, 1.0) or (-1.0, 1.0)",
)


def check_spin_choice(
    spin_values: Any, name: str = "spin_values", optional: bool = True
) -> tuple[float, float] | None:
    """``spin_values`` as a tuple of floats, (0.0, 1.0) or (-1.0, 1.0); None passes when
    ``optional`` (the target's or the states' values are used then)."""
    constraint = (SPIN_VALUES | None) if optional else SPIN_VALUES
    constraint.check(spin_values, name)
    if spin_values is None:
        return None
    return tuple(float(v) for v in spin_values)  # type: ignore[return-value]


# ----- starting states --------------------------------------------------------------------------
_WIDTHS = ("n_units", "n_visible", "dim")
_SPINS = ((0.0, 1.0), (-1.0, 1.0))


@dataclass(frozen=True)
class StateSpec:
    """What a target says about the states its chains move (``state_spec``).

    Attributes:
        owner: the model the states belong to (None for a plain energy function).
        width: the number of units of a state, (n_chains, width); None when unknown.
        dtype: the one floating dtype of the owner's parameters and buffers; None when the
            owner has none or several.
        spin_values: the two values of a binary unit, (0, 1) or (-1, 1); None when unknown.
        visible: the states are the owner's visible layer, its hidden units summed out by
            ``free_energy`` (then ``owner.check_visible``, when it exists, checks them).
    """

    owner: Any
    width: int | None
    dtype: torch.dtype | None
    spin_values: tuple[float, float] | None
    visible: bool


def _declares_states(obj: Any) -> bool:
    return hasattr(obj, "parameters") or any(hasattr(obj, name) for name in _WIDTHS)


def _positive_int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def owner_dtype(owner: Any) -> torch.dtype | None:
    """The floating dtype shared by every floating parameter and buffer of ``owner`` (None when
    it has none, or several: then no dtype is unambiguous)."""
    tensors = list(owner.parameters()) if hasattr(owner, "parameters") else []
    if hasattr(owner, "buffers"):
        tensors += list(owner.buffers())
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def state_spec(source: Any) -> StateSpec:
    """Read a target's states off it (a model, a bound energy method, a ``SweepTarget`` or a
    ``Target``): the owner is the source itself when it is a model (it has parameters or one of
    ``n_units``, ``n_visible``, ``dim``), else the object its energy method is bound to. The
    width is ``n_visible`` when the energy is the owner's ``free_energy`` (hidden units summed
    out), else the first of ``n_units``, ``n_visible``, ``dim``. Nothing is evaluated."""
    if isinstance(source, Target):
        source = source.source
    energy = getattr(source, "free_energy", None) or getattr(source, "energy", None) or source
    owner = source if _declares_states(source) else getattr(energy, "__self__", None)
    if owner is not None and not _declares_states(owner):
        owner = None
    visible = owner is not None and getattr(energy, "__name__", "") == "free_energy"
    width = None
    if owner is not None:
        names = ("n_visible",) if visible else _WIDTHS
        width = next((w for n in names if (w := _positive_int(getattr(owner, n, None)))), None)
    spins = getattr(source, "spin_values", None)
    if spins is None and owner is not None:
        spins = getattr(owner, "spin_values", None)
    spins = tuple(float(v) for v in spins) if spins is not None else None
    dtype = owner_dtype(owner) if owner is not None else None
    return StateSpec(owner, width, dtype, spins, visible)  # type: ignore[arg-type]


def check_start(
    x: Any, target: Any, kernel: Kernel | None = None, name: str = "x0", matrix: bool = False
) -> torch.Tensor:
    """Starting states of chains on ``target``, checked once where the chains start (the runner
    ``sample``, ``langevin_chain``, ``annealed_langevin``, ``SimulatedAnnealing.anneal``; never
    per step), against what ``state_spec`` reads off the target:

    * a tensor (n_chains, ...) with n_chains >= 1; (n_chains, dim) with ``matrix``, and
      (n_chains, width) when the target declares its width;
    * the owner's dtype when it has exactly one (float64 states of a float32 model become
      float32); integer and bool states become floating (the owner's or torch's default);
    * finite;
    * for a kernel that moves binary states (``kernel.discrete``: Gibbs, bit-flip
      Metropolis-Hastings, and the wrappers around them): every entry one of the kernel's or the
      target's ``spin_values``; without spin values, the owner's ``check_visible`` when the
      states are its visible layer (a Bernoulli RBM refuses grey levels, a Gaussian one does
      not), else {0, 1} or {-1, +1}.

    Continuous kernels (Langevin, MALA, HMC, random-walk MH) get the first three only.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of shape (n_chains, dim), got {type(x).__name__}"
        )
    if x.dim() < 2 or x.shape[0] < 1 or (matrix and x.dim() != 2):
        hint = "; flatten images to vectors" if matrix and x.dim() > 2 else ""
        raise ValueError(
            f"{name}: expected shape (n_chains, dim) with n_chains >= 1, got shape "
            f"{tuple(x.shape)}{hint}"
        )
    spec = state_spec(target)
    if spec.width is not None and (x.dim() != 2 or x.shape[1] != spec.width):
        raise ValueError(
            f"{name}: expected shape (n_chains, {spec.width}), the {spec.width} "
            f"{'visible units' if spec.visible else 'units'} of {type(spec.owner).__name__}, "
            f"got shape {tuple(x.shape)}"
        )
    if x.is_complex():
        raise TypeError(f"{name}: expected real states, got dtype {x.dtype}")
    x = as_tensor(x, name, dtype=spec.dtype)  # integer/bool -> floating; finite
    if kernel is None or not kernel.discrete:
        return x
    spins = kernel.spin_values or spec.spin_values
    if spins is not None:
        return check_spin_values(x, name, tuple(spins))  # type: ignore[arg-type]
    check_visible = getattr(spec.owner, "check_visible", None)
    if spec.visible and callable(check_visible):
        return check_visible(x, name)
    if not any(((x == lo) | (x == hi)).all() for lo, hi in _SPINS):
        bad = x[(x != 0) & (x != 1) & (x != -1)]
        example = f" (e.g. {bad.flatten()[0].item():.4g})" if bad.numel() else ""
        raise ValueError(
            f"{name}: {type(kernel).__name__} moves binary states: expected values in {{0, 1}} "
            f"or {{-1, 1}}{example}; pass spin_values to the kernel for other targets"
        )
    return x


def row_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-chain mask (n,) so that it broadcasts against ``like`` (n, ...)."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))


def where_rows(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise select: a[i] where mask[i] else b[i]."""
    return torch.where(row_mask(mask, a), a, b)


def evaluate_energy(energy_fn: EnergyFn, x: torch.Tensor) -> torch.Tensor:
    """E(x) with a shape check: one energy per chain."""
    return _checked_energy(energy_fn(x), x)


def _checked_energy(energy: Any, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(energy, torch.Tensor) or energy.shape != (x.shape[0],):
        shape = tuple(energy.shape) if isinstance(energy, torch.Tensor) else type(energy).__name__
        raise ValueError(
            f"energy_fn: expected one energy per chain, shape ({x.shape[0]},), got {shape}"
        )
    return energy


def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) and dE/dx: from the target's own ``energy_and_grad`` when it has one
    (``protocols.EnergyWithGradient``: a closed form, no autograd graph; the shapes are checked),
    else by autograd on the sum of the energies (chains are independent, so the gradient of the
    sum with respect to row i is the gradient of E(x_i))."""
    if isinstance(energy_fn, EnergyWithGradient):
        energy, grad = energy_fn.energy_and_grad(x)
        if not isinstance(grad, torch.Tensor) or grad.shape != x.shape:
            shape = tuple(grad.shape) if isinstance(grad, torch.Tensor) else type(grad).__name__
            raise ValueError(
                f"energy_and_grad: expected a gradient of the states' shape {tuple(x.shape)}, "
                f"got {shape}"
            )
        return _checked_energy(energy, x).detach(), grad.detach()
    return autograd_energy_and_grad(energy_fn, x)


def autograd_energy_and_grad(
    energy_fn: EnergyFn, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) and dE/dx by autograd (``energy_and_grad`` without a supplied gradient)."""
    with torch.enable_grad():
        x_leaf = x.detach().requires_grad_(True)
        energy = evaluate_energy(energy_fn, x_leaf)
        grad = None
        if energy.requires_grad:
            (grad,) = torch.autograd.grad(energy.sum(), x_leaf, allow_unused=True)
    if grad is None:
        raise TypeError(
            "energy_fn: the energy must be differentiable in the states for a gradient-based "
            "kernel: compute it with torch operations on x (not through NumPy, .item() or "
            "detach()), or use a kernel without gradients (MetropolisHastings, Gibbs)"
        )
    return energy.detach(), grad


def check_current_energy(energy: torch.Tensor) -> torch.Tensor:
    """The current state of every chain must have a finite energy."""
    bad = ~torch.isfinite(energy)
    if bad.any():
        chains = torch.nonzero(bad).flatten()[:10].tolist()
        raise ValueError(
            f"energy_fn: non-finite energy at the current state of {int(bad.sum())} chain(s) "
            f"(e.g. chains {chains}); start the chains where the energy is finite"
        )
    return energy


def current_state(
    x: torch.Tensor, energy_fn: EnergyFn, state: ChainState | None, need_grad: bool
) -> ChainState:
    """The cached state of ``x`` if ``state`` belongs to it, else a freshly computed one."""
    if state is not None and state.x is x and state.energy is not None:
        if not need_grad or state.grad is not None:
            return state
    if need_grad:
        energy, grad = energy_and_grad(energy_fn, x)
    else:
        with torch.no_grad():
            energy, grad = evaluate_energy(energy_fn, x), None
    return ChainState(x, check_current_energy(energy), grad)


def uniform_open(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """U(0, 1] draws: 1 - U[0, 1), so that log(u) is finite."""
    return 1.0 - torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def metropolis_accept(
    log_ratio: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept each chain with probability min(1, exp(log_ratio)), in log space.

    ``log_ratio`` = log p(x') q(x | x') - log p(x) q(x' | x). NaN ratios (NaN proposal energies)
    are rejections. Returns (accepted, accept_prob, nonfinite).
    """
    nonfinite = torch.isnan(log_ratio)
    log_ratio = torch.where(nonfinite, torch.full_like(log_ratio, -float("inf")), log_ratio)
    log_u = torch.log(uniform_open(log_ratio.shape, generator, log_ratio))
    accepted = log_u < log_ratio
    accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
    return accepted, accept_prob, nonfinite


def mh_transition(
    x: torch.Tensor,
    energy: torch.Tensor,
    x_prop: torch.Tensor,
    energy_prop: torch.Tensor,
    log_hastings: torch.Tensor | float,
    generator: torch.Generator | None,
    grad: torch.Tensor | None = None,
    grad_prop: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Info]:
    """The accept/reject half of every MH-type kernel (random walk, MALA, HMC).

    A proposal with NaN or -inf energy is rejected (-inf would otherwise be accepted with
    probability one and then trap the chain) and counted as non-finite.
    """
    bad = torch.isnan(energy_prop) | (energy_prop == -float("inf"))
    log_ratio = energy - energy_prop + log_hastings
    log_ratio = torch.where(bad, torch.full_like(log_ratio, float("nan")), log_ratio)
    accepted, accept_prob, nonfinite = metropolis_accept(log_ratio, generator)
    x_new = where_rows(accepted, x_prop, x)
    energy_new = torch.where(accepted, energy_prop, energy)
    grad_new = None
    if grad is not None and grad_prop is not None:
        grad_new = where_rows(accepted, grad_prop, grad)
    state = ChainState(x_new, energy_new, grad_new)
    return x_new, Info(accept_prob, accepted, nonfinite, state=state)


def make_generator(
    seed: int | torch.Generator | None, device: torch.device | str
) -> torch.Generator:
    """A generator on ``device``: ``seed`` itself when it is one, seeded when it is an int, fresh
    entropy when None (the library never touches torch's global generator)."""
    made = as_generator(seed, device, "seed")
    if made is None:
        made = torch.Generator(device=device)
        made.seed()
    return made


def full_info(x: torch.Tensor, state: ChainState | None = None) -> Info:
    """Info of a move that is always accepted (Gibbs, ULA without failures). The per-chain
    fields are expanded scalars: no allocation per step."""
    n = x.shape[0]
    one = torch.ones((), device=x.device, dtype=x.dtype).expand(n)
    true = torch.ones((), dtype=torch.bool, device=x.device).expand(n)
    false = torch.zeros((), dtype=torch.bool, device=x.device).expand(n)
    return Info(one, true, false, state=state)


# ----- targets ---------------------------------------------------------------------------------
class Target:
    """An energy target at inverse temperature ``beta`` (a float or one value per chain).

    Wraps an energy callable, or a model (``free_energy`` for models with hidden units, else
    ``energy``). Calling it gives the tempered energy: beta E(x) for fully visible models and
    callables; a model with hidden units supplies ``tempered_free_energy(v, beta)`` (summing the
    hidden units out does not commute with tempering). When the model supplies exact conditionals
    (the protocols of ``gibbs.py``: ``conditional_logits(x, i)``, ``block_gibbs(x, generator,
    beta)`` or ``gibbs_vhv(v, generator, beta)``) they are forwarded, tempered, for Gibbs kernels.
    """

    def __init__(self, source: Any, beta: float | torch.Tensor = 1.0) -> None:
        if isinstance(source, Target):
            beta = source.beta * beta if isinstance(beta, torch.Tensor) else beta * source.beta
            source = source.source
        self.source = source
        self.beta = beta
        if hasattr(source, "free_energy"):
            self.base_energy: EnergyFn = source.free_energy
        elif hasattr(source, "energy"):
            self.base_energy = source.energy
        elif callable(source):
            self.base_energy = source
        else:
            raise TypeError(
                "target: expected an energy callable or a model with energy() / free_energy(), "
                f"got {type(source).__name__}"
            )
        self.spin_values = getattr(source, "spin_values", None)
        self.has_conditionals = isinstance(source, SiteConditionals)
        self.has_block_gibbs = isinstance(source, BlockSweep | BipartiteGibbs)

    def energy_at(self, x: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
        """Energy of x under the target tempered to ``beta`` (per-chain betas allowed)."""
        if isinstance(beta, float | int) and beta == 1.0:
            return self.base_energy(x)
        if isinstance(self.source, TemperedFreeEnergy):
            return self.source.tempered_free_energy(x, beta)
        if hasattr(self.source, "free_energy"):
            raise TypeError(
                f"target: tempering {type(self.source).__name__} needs its free energy at "
                "inverse temperature beta (summing hidden units out does not commute with "
                "tempering); give the model a tempered_free_energy(v, beta) method"
            )
        if isinstance(beta, torch.Tensor):
            beta = beta.reshape(-1)
        return beta * self.base_energy(x)

    @property
    def linear_in_beta(self) -> bool:
        """Whether the tempered energy is beta * E(x) (fully visible models, plain callables)."""
        return not hasattr(self.source, "free_energy")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_at(x, self.beta)

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tempered energy and its gradient: the source's own (``EnergyWithGradient``)
        scaled by beta where tempering is beta E, else by autograd."""
        if isinstance(self.source, EnergyWithGradient) and self.linear_in_beta:
            energy, grad = energy_and_grad(self.source, x)
            beta = self.beta
            if isinstance(beta, float | int):
                return (energy, grad) if beta == 1.0 else (beta * energy, beta * grad)
            beta = beta.reshape(-1)
            return beta * energy, row_mask(beta, grad) * grad
        return autograd_energy_and_grad(self, x)

    def conditional_logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """logit p(x_i = high value | rest) at this temperature (Boltzmann logits scale as beta)."""
        return self.beta * self.source.conditional_logits(x, i)

    def block_gibbs(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        beta = self.beta
        if isinstance(beta, torch.Tensor):
            beta = beta.reshape(-1, 1)
        if isinstance(self.source, BlockSweep):
            return self.source.block_gibbs(x, generator, beta)
        return self.source.gibbs_vhv(x, generator, beta)[0]


def as_target(target: Any) -> Target:
    return target if isinstance(target, Target) else Target(target)


class Kernel:
    """Base class: default hooks the runner uses. ``init`` maps x0 to the kernel's own state
    layout (parallel tempering stacks its replicas) and ``observe`` maps it back to the chains
    that are recorded."""

    #: kernels whose ``step_size`` the runner may tune during burn-in
    adaptive: bool = False
    #: kernels that move binary states (their starting states are checked against the spins)
    discrete: bool = False
    #: the binary values the kernel was told to use, (0, 1) or (-1, 1); None: the target's
    spin_values: tuple[float, float] | None = None

    def init(self, x0: torch.Tensor) -> torch.Tensor:
        return x0

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"


class Wrapper(Kernel):
    """A kernel that drives another one, ``self.kernel`` (simulated annealing, parallel
    tempering): its chains move the states the wrapped kernel moves."""

    kernel: Kernel

    @property
    def discrete(self) -> bool:  # type: ignore[override]
        """Whether the wrapped kernel moves binary states."""
        return self.kernel.discrete

    @property
    def spin_values(self) -> tuple[float, float] | None:  # type: ignore[override]
        """The wrapped kernel's spin values."""
        return self.kernel.spin_values
