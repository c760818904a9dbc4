"""Langevin samplers: unadjusted (ULA), Metropolis-adjusted (MALA), stochastic-gradient (SGLD).

THE LANGEVIN CONVENTION OF EBMLAB (stated here once; the README repeats it):

    x <- x - eps * grad E(x) + sqrt(2 eps) * xi,        xi ~ N(0, I)

is the Euler-Maruyama step of the Langevin diffusion whose stationary law is p(x) ∝ exp(-E(x)).
EBM papers (IGEBM, JEM, ...) instead write a step size and a noise scale separately,

    x <- x - step_size * grad E(x) + noise_scale * xi,

which is the same update with eps = step_size run at temperature

    T = noise_scale^2 / (2 step_size):   it samples exp(-E(x) / T), not exp(-E(x)).

``Langevin(step_size=eps)`` takes the first form (noise_scale = sqrt(2 eps), T = 1);
``Langevin(step_size=a, noise_scale=s)`` the second, and reports ``temperature``. For example,
JEM's step 1.0 with noise 0.01 samples exp(-E / 5e-5): training with such a sampler fits a
tempered energy, the mix-up this convention guards against. Welling & Teh (2011) write
theta <- theta + (e/2) grad log p + N(0, e): their e is 2 eps here.

ULA has an O(eps) bias (for a Gaussian target with precision P its stationary covariance is
(P - eps P^2 / 2)^-1, see the tests); MALA (Roberts & Tweedie 1996) removes it with an MH step
using the proposal density q(x' | x) = N(x - eps grad E(x), 2 eps I); SGLD (Welling & Teh 2011)
uses minibatch gradients and a decreasing step eps_t = a (b + t)^(-gamma) with gamma in (0.5, 1],
so that sum eps_t = inf and sum eps_t^2 < inf (lecture 001 part 3).

A step whose new state is not finite (NaN gradient, overflow) is rejected: the chain stays put and
``info.nonfinite`` counts it.

Chains for energy models (what ``EnergyNetwork.sample`` and the contrastive objectives run):

* ``langevin_chain``: n ULA steps with the options EBM training uses: entries of grad E clamped
  (IGEBM), states clamped to a box (images in [0, 1]), and a mask of the entries that move
  (inpainting).
* ``annealed_langevin``: annealed Langevin dynamics for noise-conditional energies E(x, sigma)
  (Song & Ermon 2019, Algorithm 1): for sigma_1 > ... > sigma_L, T steps at level i of
  x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) xi with alpha_i = eps sigma_i^2 / sigma_L^2
  and s = -grad_x E, i.e. ULA with step alpha_i / 2 at temperature 1; optionally a final
  denoising step x + sigma_L^2 s(x, sigma_L) (Tweedie's formula).

References: Roberts & Tweedie, Bernoulli 2 (1996); Welling & Teh, ICML (2011); Du & Mordatch,
"Implicit generation and modeling with energy-based models" (2019); Song & Ermon, "Generative
modeling by estimating gradients of the data distribution" (2019); Jolicoeur-Martineau et al.,
"Adversarial score matching and improved sampling for image generation" (ICLR 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import (
    Boolean,
    IsCallable,
    Real,
    check_in_range,
    check_nonnegative_int,
    check_positive,
)
from .base import (
    EnergyFn,
    Info,
    Kernel,
    Rng,
    State,
    Step,
    check_start,
    check_step_size,
    check_target_accept,
    current_state,
    energy_and_grad,
    full_info,
    mh_transition,
    where_rows,
)

GradFn = Callable[[Tensor, int, Rng], Tensor]


def _finite_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x).reshape(x.shape[0], -1).all(dim=1)


def langevin_move(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator | None,
    host_check: bool = True,
) -> tuple[torch.Tensor, Info]:
    """x - step_size * grad + noise_scale * xi, with non-finite results rejected.

    ``host_check=False`` rejects the non-finite rows on the device (``torch.where`` on every
    step, no host synchronization: safe inside a CUDA graph), and the info then reports every
    move as accepted."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_new = torch.add(x, grad, alpha=-step_size).add_(noise, alpha=noise_scale)
    info = full_info(x)
    if not host_check:
        return where_rows(_finite_rows(x_new), x_new, x), info
    # one reduction: a NaN or inf anywhere makes the sum non-finite (a finite overflow of the
    # sum only sends us through the exact per-row check below)
    if not bool(torch.isfinite(x_new.sum())):  # rare: find and reject the failed chains
        ok = _finite_rows(x_new)
        x_new = where_rows(ok, x_new, x)
        info.accepted = ok
        info.accept_prob = ok.to(x.dtype)
        info.nonfinite = ~ok
    return x_new, info


class Langevin(Kernel):
    """Unadjusted Langevin algorithm (ULA); see the module docstring for the convention.

    Args:
        step_size: eps (> 0), the gradient step.
        noise_scale: standard deviation of the added noise; None means sqrt(2 step_size), i.e.
            temperature 1. Otherwise the chain samples exp(-E / T) with
            T = noise_scale^2 / (2 step_size).
    """

    def __init__(self, step_size: float, noise_scale: float | None = None) -> None:
        self.step_size = check_step_size(step_size)
        if noise_scale is None:
            noise_scale = math.sqrt(2.0 * self.step_size)
        self.noise_scale = float(check_in_range(noise_scale, "noise_scale", 0.0))

    @property
    def temperature(self) -> float:
        """T = noise_scale^2 / (2 step_size): the chain samples exp(-E(x) / T)."""
        return self.noise_scale**2 / (2.0 * self.step_size)

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        # ULA needs only the gradient at x: no cached state (the energy is not used)
        _, grad = energy_and_grad(energy_fn, x)
        return langevin_move(x, grad, self.step_size, self.noise_scale, generator)


def mala_log_proposal(
    x_to: torch.Tensor, x_from: torch.Tensor, grad_from: torch.Tensor, step_size: float
) -> torch.Tensor:
    """log q(x_to | x_from) up to a constant: -|x_to - x_from + eps grad E(x_from)|^2 / (4 eps)."""
    diff = (x_to - x_from + step_size * grad_from).reshape(x_to.shape[0], -1)
    return -(diff * diff).sum(-1) / (4.0 * step_size)


class MALA(Kernel):
    """Metropolis-adjusted Langevin: the ULA step as proposal, corrected by MH.

    Args:
        step_size: eps (> 0); the runner tunes it during burn-in when ``adapt`` is true.
        target_accept: acceptance rate aimed at by adaptation (0.574, Roberts & Rosenthal 1998).
        adapt: let the runner tune ``step_size`` during burn-in.
    """

    adaptive = True

    def __init__(self, step_size: float, target_accept: float = 0.574, adapt: bool = True) -> None:
        self.step_size = check_step_size(step_size)
        self.target_accept = check_target_accept(target_accept)
        self.adapt = Boolean().check(adapt, "adapt")

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        eps = self.step_size
        cur = current_state(x, energy_fn, state, need_grad=True)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_prop = x - eps * cur.grad + math.sqrt(2.0 * eps) * noise
        energy_prop, grad_prop = energy_and_grad(energy_fn, x_prop)
        log_hastings = mala_log_proposal(x, x_prop, grad_prop, eps) - mala_log_proposal(
            x_prop, x, cur.grad, eps
        )
        # a NaN gradient gives a NaN ratio: rejected and counted like a NaN energy
        return mh_transition(
            x, cur.energy, x_prop, energy_prop, log_hastings, generator, cur.grad, grad_prop
        )


#: SGLD's decay exponent: sum eps_t diverges and sum eps_t^2 converges.
_GAMMA = Real(
    0.5,
    1.0,
    "right",
    description="a number in (0.5, 1] (so that sum eps_t = inf and sum eps_t^2 < inf)",
)


def sgld_step_size(t: int | torch.Tensor, a: float, b: float, gamma: float) -> float:
    """eps_t = a (b + t)^(-gamma), in float64."""
    return float(a * (b + float(t)) ** (-gamma))


class SGLD(Kernel):
    """Stochastic-gradient Langevin dynamics (Welling & Teh 2011) in ebmlab's convention:
    x <- x - eps_t g_t + sqrt(2 eps_t) xi, eps_t = a (b + t)^(-gamma), g_t an unbiased estimate
    of grad E(x) (e.g. from a minibatch).

    Args:
        a, b, gamma: step-size schedule; a > 0, b > 0, gamma in (0.5, 1] (sum eps_t diverges,
            sum eps_t^2 converges).
        grad_fn: optional ``grad_fn(x, t, generator) -> estimate of grad E(x)``, e.g. a
            ``MinibatchGradient``; without it the gradient of ``energy_fn`` is taken by autograd
            (then the energy itself may draw a minibatch).

    ``t`` (the step counter) lives on the kernel and advances with every step; ``reset()`` sets
    it back to 0.
    """

    def __init__(
        self, a: float, b: float = 1.0, gamma: float = 0.55, grad_fn: GradFn | None = None
    ) -> None:
        self.a = check_step_size(a, "a")
        self.b = check_step_size(b, "b")
        _GAMMA.check(gamma, "gamma")
        self.gamma = float(gamma)
        if grad_fn is not None:
            IsCallable(description="a callable grad_fn(x, t, generator)").check(grad_fn, "grad_fn")
        self.grad_fn = grad_fn
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    @property
    def step_size(self) -> float:
        """The step size eps_t of the next step."""
        return sgld_step_size(self.t, self.a, self.b, self.gamma)

    def step(self, x: Tensor, energy_fn: Any, generator: Rng = None, state: State = None) -> Step:
        eps = self.step_size
        if self.grad_fn is not None:
            grad = self.grad_fn(x, self.t, generator)
            if grad.shape != x.shape:
                raise ValueError(
                    f"grad_fn: expected shape {tuple(x.shape)}, got {tuple(grad.shape)}"
                )
        else:
            _, grad = energy_and_grad(energy_fn, x)
        self.t += 1
        x_new, info = langevin_move(x, grad, eps, math.sqrt(2.0 * eps), generator)
        info.extras["step_size"] = torch.full((1,), eps, dtype=torch.float64)
        return x_new, info


class MinibatchGradient:
    """Unbiased minibatch estimate of grad E(theta) for a Bayesian posterior,

        E(theta) = -log p(theta) - sum_{i=1}^N log p(x_i | theta),
        g(theta) = grad[-log p(theta) - (N / |B|) sum_{i in B} log p(x_i | theta)],

    with a fresh minibatch B (without replacement) at every call: the ``grad_fn`` of ``SGLD``.

    Args:
        log_prior: theta (n_chains, dim) -> (n_chains,).
        log_likelihood: (theta (n_chains, dim), batch (m, ...)) -> (n_chains,), the sum over
            the batch of log p(x_i | theta).
        data: (N, ...) tensor.
        batch_size: |B|.
    """

    def __init__(
        self,
        log_prior: Callable[[torch.Tensor], torch.Tensor],
        log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: torch.Tensor,
        batch_size: int,
    ) -> None:
        if not 1 <= batch_size <= data.shape[0]:
            raise ValueError(f"batch_size: expected 1..{data.shape[0]}, got {batch_size}")
        self.log_prior = log_prior
        self.log_likelihood = log_likelihood
        self.data = data
        self.batch_size = int(batch_size)

    def __call__(
        self, theta: torch.Tensor, t: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        n = self.data.shape[0]
        index = torch.randperm(
            n,
            generator=generator,
            device=generator.device if generator is not None else self.data.device,
        )[: self.batch_size]
        batch = self.data[index.to(self.data.device)]

        def energy(th: torch.Tensor) -> torch.Tensor:
            return -self.log_prior(th) - (n / self.batch_size) * self.log_likelihood(th, batch)

        return energy_and_grad(energy, theta)[1]


# ----- chains for energy models ------------------------------------------------------------------
def energy_gradient(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """grad_x E(x), row by row (autograd on the sum of independent rows), detached."""
    return energy_and_grad(energy_fn, x)[1]


def langevin_chain(
    energy_fn: EnergyFn,
    x: Tensor,
    n_steps: int,
    step_size: float,
    noise_scale: float | None = None,
    generator: Rng = None,
    *,
    clamp: tuple[float, float] | None = None,
    grad_clip: float | None = None,
    update_mask: Tensor | None = None,
) -> Tensor:
    """``n_steps`` unadjusted Langevin steps x <- x - eps grad E + noise_scale xi.

    Args:
        energy_fn: batch -> energies (batch,).
        x: starting points (chains, ...), checked once (``base.check_start``: finite, the
            model's width and dtype when ``energy_fn`` is a model's bound method).
        step_size: eps > 0.
        noise_scale: None for sqrt(2 eps) (temperature 1).
        clamp: keep x in [lo, hi] after each step (images in [0, 1]).
        grad_clip: clamp every gradient entry to [-grad_clip, grad_clip] (IGEBM), None: off.
        update_mask: boolean like ``x``; only True entries move (inpainting).
    """
    check_positive(step_size, "step_size")
    check_nonnegative_int(n_steps, "n_steps")
    if noise_scale is not None:
        check_in_range(noise_scale, "noise_scale", 0.0)
    noise = math.sqrt(2.0 * step_size) if noise_scale is None else float(noise_scale)
    x = check_start(x, energy_fn, name="x").detach()
    for _ in range(n_steps):
        grad = energy_gradient(energy_fn, x)
        if grad_clip is not None:
            grad = grad.clamp(-grad_clip, grad_clip)
        x_new = langevin_move(x, grad, step_size, noise, generator)[0]
        if clamp is not None:
            x_new = x_new.clamp(*clamp)
        x = x_new if update_mask is None else torch.where(update_mask, x_new, x)
    return x


def annealed_langevin(
    energy_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigmas: Sequence[float] | Tensor,
    n_steps_each: int,
    eps: float,
    generator: Rng = None,
    *,
    clamp: tuple[float, float] | None = None,
    denoise: bool = True,
    update_mask: Tensor | None = None,
) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1; see the module docstring).

    With ``update_mask`` (inpainting), only the True entries move; the others are held at their
    values in ``x`` plus fresh N(0, sigma_i^2) noise at level i, so that the chain sees the
    noise level the energy was trained for (Song & Ermon 2019, appendix on inpainting), and
    at their clean values after the last level.

    Args:
        energy_fn: (x, sigma (batch,)) -> energies (batch,).
        sigmas: the decreasing noise ladder sigma_1 > ... > sigma_L.
        n_steps_each: Langevin steps per level.
        eps: the step at the finest level; level i uses alpha_i = eps sigma_i^2 / sigma_L^2.
        denoise: finish with x <- x + sigma_L^2 s(x, sigma_L), removing the remaining
            N(0, sigma_L^2) noise (Tweedie's formula; Jolicoeur-Martineau et al. 2021).
    """
    ladder = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if ladder.numel() < 1 or not bool((ladder[:-1] > ladder[1:]).all()):
        raise ValueError("sigmas: expected a strictly decreasing noise ladder")
    sigma_last = float(ladder[-1])
    x = check_start(x, energy_fn, name="x").detach()
    anchor = x
    for sigma in ladder.tolist():
        alpha = eps * sigma**2 / sigma_last**2
        level = torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype)
        if update_mask is not None:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = torch.where(update_mask, x, anchor + sigma * noise)
        x = langevin_chain(
            lambda y, s=level: energy_fn(y, s),
            x,
            n_steps_each,
            alpha / 2.0,
            math.sqrt(alpha),
            generator,
            clamp=clamp,
            update_mask=update_mask,
        )
    if denoise:
        level = torch.full((x.shape[0],), sigma_last, device=x.device, dtype=x.dtype)
        x = x - sigma_last**2 * energy_gradient(lambda y: energy_fn(y, level), x)
        if clamp is not None:
            x = x.clamp(*clamp)
    return x if update_mask is None else torch.where(update_mask, x, anchor)
