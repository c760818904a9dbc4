"""Gradient-informed samplers for binary states: Gibbs-with-gradients and the discrete Langevin
proposal (DULA, DMALA).

Both read the energy's gradient at a binary state as if the state were continuous. For binary
units with values (lo, hi), flipping unit i moves x_i by delta_i = lo + hi - 2 x_i (+1 or -1 for
{0, 1}; +-2 for {-1, +1}), so the first-order Taylor estimate of the energy change of that flip is

    d_i(x) = grad_i E(x) delta_i  ~  E(x with x_i flipped) - E(x).

For {0, 1} states delta_i = 1 - 2 x_i, so d_i = -(2 x_i - 1) dE/dx_i. Grathwohl et al. write the
model as log p(x) = f(x) - log Z and use d~_i(x) = -(2 x_i - 1) df/dx_i, the estimated change of
f when unit i flips; with f = -E, d~ = -d, and their proposal softmax(d~ / 2) is softmax(-d / 2)
here: flips that lower the energy are favoured. For an energy linear in each unit (a Boltzmann
machine's E = -1/2 x^T W x - b^T x with zero diagonal, an RBM's free energy is not) the estimate
is exact.

Gibbs-with-gradients (GWG; Grathwohl, Swersky, Hashemi, Duvenaud & Maddison, ICML 2021, "Oops I
took a gradient", Algorithm 1) proposes one flip,

    q(i | x) = softmax_i(-d(x) / 2),       x' = x with x_i flipped,

and accepts with min(1, exp(E(x) - E(x')) q(i | x') / q(i | x)) (flipping i again takes x' back
to x). The 1/2 is the paper's choice (the locally balanced weight sqrt(p(x') / p(x)) of Zanella
2020, estimated to first order). ``n_flips = m > 1`` is the paper code's multi-flip variant: m
indices are drawn i.i.d. from q(. | x) and the units drawn at least once are flipped; the same
draws from q(. | x') flip the same units back, so the acceptance ratio uses the product of the m
draws' probabilities under q(. | x') over that under q(. | x) (the ordered draws are the
auxiliary variable of the move; the ratio is exact for it).

Discrete Langevin proposal (DLP; Zhang, Liu & Liu, ICML 2022, "A Langevin-like sampler for
discrete distributions", eq. 3) with step size alpha: every coordinate at once,

    q(x'_i | x) ∝ exp(-1/2 grad_i E(x) (x'_i - x_i) - (x'_i - x_i)^2 / (2 alpha)),

a product of independent flips for binary units: unit i flips (x'_i - x_i = delta_i) with
probability sigmoid(l_i), l_i = -d_i / 2 - delta_i^2 / (2 alpha), and keeps its value (weight 1)
otherwise. DULA uses the move as it is (no correction: a bias that vanishes as alpha -> 0 for
energies quadratic in x, since then d_i(x) - d_i(x') = 2 (E(x') - E(x)) and the small-alpha jump
process satisfies detailed balance; it persists for other energies). DMALA accepts with
min(1, exp(E(x) - E(x')) q(x | x') / q(x' | x)), the reverse proposal using the gradient at x' and
the same set of flipped units. Zhang et al. use alpha = 0.1-0.2 on deep EBMs of binary images
(their code's default 0.2 for DMALA, 0.1 for DULA in its EBM script).

Targets come through ``Target(energy_fn, beta)`` (tempered targets: the gradient is that of
beta E, per-chain betas allowed); any energy with autograd works, on (n_chains, ...) binary states
(all units of a row are flattened into one vector of sites). ``info.state`` caches the energy and
gradient of the new state, so each step costs one energy-and-gradient evaluation (of the
proposal), plus one for the very first state. A proposal whose energy or gradient is not finite
is rejected (``info.nonfinite``); a non-finite gradient at the current state is an error.

References: Grathwohl et al. (2021); Zhang, Liu & Liu (2022); Zanella, "Informed proposals for
local MCMC in discrete spaces" (JASA 2020).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..validation import check_positive_int
from .base import (
    ChainState,
    Kernel,
    Rng,
    State,
    Step,
    Target,
    as_target,
    check_current_energy,
    check_spin_choice,
    check_step_size,
    current_state,
    energy_and_grad,
    full_info,
    mh_transition,
    where_rows,
)
from .elementary import bernoulli_draw
from .metropolis import infer_spin_values


def _check_spins(spin_values: Any) -> tuple[float, float] | None:
    return check_spin_choice(spin_values)


def flip_displacement(x: Tensor, spin_values: tuple[float, float]) -> Tensor:
    """delta = lo + hi - 2 x: what flipping each unit adds to it (flat (n, sites))."""
    lo, hi = spin_values
    return (lo + hi) - 2.0 * x


def flip_energy_estimate(grad: Tensor, x: Tensor, spin_values: tuple[float, float]) -> Tensor:
    """d_i = grad_i E(x) delta_i, the first-order estimate of E(x with unit i flipped) - E(x)."""
    return grad * flip_displacement(x, spin_values)


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def flip_units(x: Tensor, flipped: Tensor, spin_values: tuple[float, float]) -> Tensor:
    """x with the units where ``flipped`` ((n, sites) bool) is true flipped: s -> lo + hi - s."""
    lo, hi = spin_values
    flat = _flat(x)
    return torch.where(flipped, (lo + hi) - flat, flat).reshape(x.shape)


def _check_gradient(grad: Tensor) -> None:
    bad = ~torch.isfinite(_flat(grad)).all(dim=1)
    if bad.any():
        chains = torch.nonzero(bad).flatten()[:10].tolist()
        raise ValueError(
            f"energy_fn: non-finite gradient at the current state of {int(bad.sum())} chain(s) "
            f"(e.g. chains {chains}); gradient-informed proposals need a finite dE/dx"
        )


class _GradientKernel(Kernel):
    """Shared part: binary states, their spins, the cached energy and gradient."""

    discrete = True
    #: the kernel reads grad_x E (the AIS path then hands it the gradient it already has)
    uses_gradient = True

    def _spins(self, target: Target, x: Tensor) -> tuple[float, float]:
        spins = self.spin_values or target.spin_values
        return tuple(spins) if spins is not None else infer_spin_values(x)  # type: ignore

    def _start(
        self, x: Tensor, energy_fn: Any, state: State
    ) -> tuple[Target, tuple[float, float], ChainState]:
        """The target, its spins and the current state with its (finite) gradient."""
        target = as_target(energy_fn)
        current = current_state(x, target, state, need_grad=True)
        assert current.grad is not None
        _check_gradient(current.grad)
        return target, self._spins(target, x), current

    @staticmethod
    def _proposal_state(target: Target, x_prop: Tensor) -> tuple[Tensor, Tensor]:
        """E and grad E at the proposals; a row whose gradient is not finite gets a NaN energy
        (a rejection, counted as non-finite)."""
        energy, grad = energy_and_grad(target, x_prop)
        finite = torch.isfinite(_flat(grad)).all(dim=1)
        energy = torch.where(finite, energy, torch.full_like(energy, float("nan")))
        grad = torch.where(finite.reshape(-1, *([1] * (grad.dim() - 1))), grad, 0.0)
        return energy, grad

    @staticmethod
    def _accept(
        x: Tensor,
        current: ChainState,
        x_prop: Tensor,
        energy_prop: Tensor,
        grad_prop: Tensor,
        log_hastings: Tensor,
        generator: Rng,
    ) -> Step:
        """The Metropolis-Hastings half, log_hastings = log q(x | x') - log q(x' | x)."""
        assert current.energy is not None
        log_hastings = log_hastings.to(current.energy.dtype)
        return mh_transition(
            x, current.energy, x_prop, energy_prop, log_hastings, generator, current.grad, grad_prop
        )


class GibbsWithGradients(_GradientKernel):
    """Gibbs-with-gradients (Grathwohl et al. 2021) for binary states (module docstring).

    One step: draw ``n_flips`` sites i.i.d. from q(i | x) = softmax(-d(x) / 2), flip the units
    drawn at least once, accept by Metropolis-Hastings with the reverse proposal q(. | x').

    Args:
        n_flips: draws per proposal (1: the paper's single-flip sampler).
        spin_values: (0.0, 1.0) or (-1.0, 1.0); None takes the target's or reads the states.
    """

    def __init__(self, n_flips: int = 1, spin_values: tuple[float, float] | None = None) -> None:
        self.n_flips = check_positive_int(n_flips, "n_flips")
        self.spin_values = _check_spins(spin_values)

    def log_proposal(self, x: Tensor, grad: Tensor, spins: tuple[float, float]) -> Tensor:
        """log q(i | x) for every site, (n, sites)."""
        d = flip_energy_estimate(_flat(grad), _flat(x), spins)
        return torch.log_softmax(-0.5 * d, dim=1)

    @torch.no_grad()
    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        target, spins, current = self._start(x, energy_fn, state)
        assert current.grad is not None
        log_q = self.log_proposal(x, current.grad, spins)
        sites = torch.multinomial(log_q.exp(), self.n_flips, replacement=True, generator=generator)
        flipped = torch.zeros_like(_flat(x), dtype=torch.bool).scatter_(1, sites, True)
        x_prop = flip_units(x, flipped, spins)
        energy_prop, grad_prop = self._proposal_state(target, x_prop)
        log_q_rev = self.log_proposal(x_prop, grad_prop, spins)
        log_hastings = (log_q_rev.gather(1, sites) - log_q.gather(1, sites)).sum(1)
        return self._accept(x, current, x_prop, energy_prop, grad_prop, log_hastings, generator)


class DiscreteLangevin(_GradientKernel):
    """The discrete Langevin proposal (Zhang, Liu & Liu 2022) for binary states: DMALA with the
    Metropolis-Hastings correction (``adjusted=True``), DULA without (module docstring).

    Args:
        step_size: alpha > 0; each unit flips with probability
            sigmoid(-d_i / 2 - delta_i^2 / (2 alpha)), so a larger alpha flips more units.
        adjusted: correct by Metropolis-Hastings (DMALA); False: DULA, always moves (biased).
        spin_values: (0.0, 1.0) or (-1.0, 1.0); None takes the target's or reads the states.
    """

    def __init__(
        self,
        step_size: float = 0.2,
        adjusted: bool = True,
        spin_values: tuple[float, float] | None = None,
    ) -> None:
        if not isinstance(adjusted, bool):
            raise TypeError(f"adjusted: expected True (DMALA) or False (DULA), got {adjusted!r}")
        self.step_size = check_step_size(step_size, "step_size")
        self.adjusted = adjusted
        self.spin_values = _check_spins(spin_values)

    def flip_logits(self, x: Tensor, grad: Tensor, spins: tuple[float, float]) -> Tensor:
        """l_i = -d_i / 2 - delta_i^2 / (2 alpha): logit of flipping unit i, (n, sites)."""
        delta = flip_displacement(_flat(x), spins)
        return -0.5 * _flat(grad) * delta - delta.square() / (2.0 * self.step_size)

    @staticmethod
    def log_proposal(logits: Tensor, flipped: Tensor) -> Tensor:
        """log q(x' | x) = sum_i [flip_i log sigmoid(l_i) + (1 - flip_i) log sigmoid(-l_i)]."""
        return torch.where(flipped, F.logsigmoid(logits), F.logsigmoid(-logits)).sum(1)

    @torch.no_grad()
    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        target, spins, current = self._start(x, energy_fn, state)
        assert current.grad is not None
        logits = self.flip_logits(x, current.grad, spins)
        flipped = bernoulli_draw(torch.sigmoid(logits), generator) > 0
        x_prop = flip_units(x, flipped, spins)
        energy_prop, grad_prop = self._proposal_state(target, x_prop)
        if not self.adjusted:
            return self._unadjusted(x, current, x_prop, energy_prop, grad_prop)
        log_hastings = self.log_proposal(
            self.flip_logits(x_prop, grad_prop, spins), flipped
        ) - self.log_proposal(logits, flipped)
        return self._accept(x, current, x_prop, energy_prop, grad_prop, log_hastings, generator)

    @staticmethod
    def _unadjusted(
        x: Tensor, current: ChainState, x_prop: Tensor, energy_prop: Tensor, grad_prop: Tensor
    ) -> Step:
        """DULA: every chain moves, except where the proposal's energy is not finite."""
        bad = ~torch.isfinite(energy_prop)
        moved = ~bad
        x_new = where_rows(moved, x_prop, x)
        assert current.grad is not None
        energy_new = torch.where(moved, energy_prop, current.energy)
        grad_new = where_rows(moved, grad_prop, current.grad)
        info = full_info(x_new, ChainState(x_new, check_current_energy(energy_new), grad_new))
        if bad.any():
            info.accepted = moved
            info.accept_prob = moved.to(x.dtype)
            info.nonfinite = bad
        return x_new, info


class DULA(DiscreteLangevin):
    """The unadjusted discrete Langevin kernel, ``DiscreteLangevin(step_size, adjusted=False)``
    (biased; default alpha 0.1 as in Zhang et al.'s EBM script)."""

    def __init__(
        self, step_size: float = 0.1, spin_values: tuple[float, float] | None = None
    ) -> None:
        super().__init__(step_size, adjusted=False, spin_values=spin_values)


# ----- exact proposals on small state spaces (tests, documentation) ------------------------------
def proposal_matrix(kernel: Kernel, target: Any, states: Tensor) -> Tensor:
    """Q[a, b] = q(states[b] | states[a]) of a single-flip ``GibbsWithGradients`` or of a
    ``DiscreteLangevin`` kernel, over every state in ``states`` (K, d) (all 2^d binary states,
    e.g. ``ebmlab.estimators.enumerate_states``), in float64. With
    ``finite.metropolis_hastings_matrix(log p, Q)`` it gives the exact transition matrix of
    GWG / DMALA; Q itself is DULA's transition matrix."""
    target = as_target(target)
    states = states.to(torch.get_default_dtype())
    spins = tuple(kernel.spin_values or target.spin_values or infer_spin_values(states))
    _, grad = energy_and_grad(target, states)
    states64, grad64 = states.to(torch.float64), grad.to(torch.float64)
    flips = _flat(states)[:, None, :] != _flat(states)[None, :, :]  # (K, K, d): units that differ
    if isinstance(kernel, GibbsWithGradients):
        if kernel.n_flips != 1:
            raise ValueError("kernel: the exact proposal is implemented for n_flips=1")
        log_q = kernel.log_proposal(states64, grad64, spins)  # type: ignore[arg-type]
        one = flips.sum(-1) == 1
        site = flips.to(torch.int64).argmax(-1)
        return torch.where(one, log_q.gather(1, site).exp(), torch.zeros((), dtype=torch.float64))
    if isinstance(kernel, DiscreteLangevin):
        logits = kernel.flip_logits(states64, grad64, spins)  # type: ignore[arg-type]
        log_q = torch.where(flips, F.logsigmoid(logits)[:, None, :], F.logsigmoid(-logits)[:, None])
        return log_q.sum(-1).exp()
    raise TypeError(
        f"kernel: expected GibbsWithGradients or DiscreteLangevin, got {type(kernel).__name__}"
    )


__all__ = [
    "DULA",
    "DiscreteLangevin",
    "GibbsWithGradients",
    "flip_energy_estimate",
    "proposal_matrix",
]
