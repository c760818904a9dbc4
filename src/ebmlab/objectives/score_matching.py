"""Score matching: fit the score s(x) = grad_x log p(x) = -grad_x E(x), never touching Z.

Hyvarinen (2005): the Fisher divergence 1/2 E_data |s_theta(x) - grad log p_data(x)|^2 equals,
up to a constant, after integrating by parts (lecture 003),

    J(theta) = E_data[ 1/2 |s(x)|^2 + tr(grad_x s(x)) ] = E_data[ 1/2 |grad E|^2 - Laplacian E ].

  * ``ExactScoreMatching``: J with the Hessian trace by autograd, one backward pass per input
    dimension: for low dimension (2-D densities, 8x8 digits at a push).
  * ``SlicedScoreMatching`` (Song, Garg, Shi & Ermon 2019): tr(grad s) = E_v[v^T (grad s) v] for
    any v with E[v v^T] = I, so J = E_data E_v[1/2 (v^T s)^2 + v^T (grad s) v]; each v costs one
    extra backward pass (v^T grad_x (v^T s)). With ``variance_reduction`` (their SSM-VR) the
    first term is replaced by its closed-form expectation 1/2 |s|^2. Projections are Rademacher
    (+-1) or Gaussian.
  * ``DenoisingScoreMatching`` (Vincent 2011): for x~ = x + sigma z, matching the score of the
    smoothed density q_sigma is equivalent to regressing on the conditional score,
    J_DSM = E 1/2 |s(x~) + z / sigma|^2 (grad log q(x~ | x) = -(x~ - x) / sigma^2 = -z / sigma).
    The model then learns the data smoothed by N(0, sigma^2 I), not the data itself.
  * ``NoiseConditionalScoreMatching`` (NCSN, Song & Ermon 2019): DSM at every level of a
    geometric ladder sigma_1 > ... > sigma_L with a noise-conditional energy E(x, sigma) (the
    model's ``sigmas``), each example at a level drawn uniformly, weighted by
    lambda(sigma) = sigma^2: loss = E 1/2 |sigma s(x~, sigma) + z|^2. Samples come from annealed
    Langevin dynamics (``annealed_langevin``, re-exported here; the model's ``sample`` uses it).

  * ``NoiseAugmentedScoreMatching``: Hyvarinen's J on the joint density of (x~, u) with
    u = log sigma ~ N(m, tau^2) and x~ = x + sigma z, a density on R^(D+1) whose x-slices are the
    data smoothed at every noise level. The model is a noise-conditional energy g(x, u)
    (``noise_scaling="none"``) differentiated in x and in u; its density at a small level
    sigma_L, exp(-g(x, log sigma_L)), is the estimate. The idea (score matching on a
    noise- or temperature-augmented space, whose slices at high noise connect the modes) is
    that of Qin & Risteski (2023), "Fit like you sample": the u-component of the score ties
    each level's mode weights to the next, so they are learned where the modes overlap and
    carried down to sigma_L.

Score matching is blind to the relative weights of well separated modes (the score of a mixture
is that of the nearest component far from the others); DSM with a large sigma and the NCSN
ladder fill the gaps between modes with noisy data, which is what lets them weigh modes, but
only at the noisy levels: the augmented objective above is the one that carries the weights
down to the clean density.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import nn

from ..models.neural import annealed_langevin, geometric_sigmas
from ..validation import AnyOf, Integral, OneOf, Real, check_choice, validate
from .guards import StepCounter, check_energy

Projection = Literal["rademacher", "gaussian"]
PROJECTIONS = ("rademacher", "gaussian")
#: a noise level
SIGMA = Real(0, closed="neither")
#: the noise annealing shared by the objectives that smooth the data
ANNEALING = {"sigma_start": SIGMA | None, "anneal_steps": Integral(0)}

#: |E| above which a score-matching run is declared diverged (E is only fixed up to a constant).
DEFAULT_ENERGY_BOUND = 1e6


def _is_noise_conditional(model: nn.Module) -> bool:
    return bool(getattr(model, "noise_conditional", False))


def energy_and_score(
    model: nn.Module, x: torch.Tensor, sigma: torch.Tensor | float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_leaf, E(x), s(x) = -grad_x E(x)) with the graph kept for second derivatives and for
    the parameter gradient."""
    x_leaf = x.detach().requires_grad_(True)
    if sigma is not None and _is_noise_conditional(model):
        energy = model.energy(x_leaf, sigma)
    else:
        energy = model.energy(x_leaf)
    (grad,) = torch.autograd.grad(energy.sum(), x_leaf, create_graph=True)
    return x_leaf, energy, -grad


def hessian_trace_of_energy(x_leaf: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """tr(grad_x s(x)) per row (= -Laplacian E), one backward pass per coordinate."""
    trace = torch.zeros(x_leaf.shape[0], device=x_leaf.device, dtype=x_leaf.dtype)
    for i in range(x_leaf.shape[1]):
        (row,) = torch.autograd.grad(score[:, i].sum(), x_leaf, create_graph=True)
        trace = trace + row[:, i]
    return trace


def random_projections(
    shape: tuple[int, ...], kind: Projection, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """Directions v with E[v v^T] = I: Rademacher (+-1) or standard Gaussian."""
    check_choice(kind, "projection", PROJECTIONS)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=generator.device)
        return (2.0 * bits - 1.0).to(like)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(
        like.device
    )


def annealed_noise_level(
    sigma_start: float | None, anneal_steps: int, step: int, sigma_end: float = 0.0
) -> float:
    """Noise level of a continuation schedule: geometric from ``sigma_start`` down to
    ``sigma_end`` over ``anneal_steps`` updates (to 1% of ``sigma_start`` and then 0 when
    ``sigma_end`` is 0); ``sigma_end`` when there is no schedule."""
    if sigma_start is None or anneal_steps == 0 or step >= anneal_steps:
        return sigma_end
    floor = sigma_end if sigma_end > 0 else 0.01 * sigma_start
    progress = step / anneal_steps
    return math.exp(math.log(sigma_start) + progress * (math.log(floor) - math.log(sigma_start)))


def _perturb(batch: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    if sigma == 0.0:
        return batch
    z = torch.randn(batch.shape, generator=generator, device=generator.device, dtype=batch.dtype)
    return batch + sigma * z.to(batch.device)


def _loss_and_terms(
    norm: torch.Tensor, trace: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """J = mean(1/2 |s|^2 + tr(grad s)) per row, with both terms as metrics."""
    loss = (norm + trace).mean()
    return loss, {
        "score_norm": float(norm.detach().mean()),
        "hessian_trace": float(trace.detach().mean()),
    }


class _NoiseAnnealing(StepCounter):
    """Holds a noise-annealing schedule (``annealed_noise_level``) and the divergence bound."""

    def __init__(self, sigma_start: float | None, anneal_steps: int, energy_bound: float) -> None:
        super().__init__()
        self.sigma_start = None if sigma_start is None else float(sigma_start)
        self.anneal_steps = anneal_steps
        self.energy_bound = float(energy_bound)

    @property
    def final_sigma(self) -> float:
        """The level the schedule ends at (0: the data themselves)."""
        return 0.0

    def current_sigma(self) -> float:
        """The noise level of the next update (geometric annealing)."""
        return annealed_noise_level(
            self.sigma_start, self.anneal_steps, int(self.steps_done), self.final_sigma
        )


class ExactScoreMatching(_NoiseAnnealing):
    """Hyvarinen's J = mean[1/2 |grad E|^2 - Laplacian E], Hessian trace by autograd.

    Noise annealing (``sigma_start``, ``anneal_steps``; off by default): for the first
    ``anneal_steps`` updates the data are perturbed by N(0, sigma_t^2 I), sigma_t decreasing
    geometrically from ``sigma_start`` to 1% of it, then not at all: J then matches the score of
    the smoothed data, whose filled gaps fix the relative weights of separated modes, and ends
    as plain score matching, which keeps them (see ``DenoisingScoreMatching``).

    Args:
        max_dim: refuse inputs with more coordinates (cost grows with the dimension; use
            ``SlicedScoreMatching``).
        sigma_start, anneal_steps: the noise annealing.
        energy_bound: |E| of the data beyond which training is declared diverged.
    """

    requires: ClassVar[str | None] = "energy"

    @validate(max_dim=Integral(1), **ANNEALING)
    def __init__(
        self,
        max_dim: int = 64,
        sigma_start: float | None = None,
        anneal_steps: int = 0,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
    ) -> None:
        super().__init__(sigma_start, anneal_steps, energy_bound)
        self.max_dim = int(max_dim)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.shape[1] > self.max_dim:
            raise ValueError(
                f"batch: exact score matching needs one backward pass per coordinate and is "
                f"limited to max_dim={self.max_dim}; got {batch.shape[1]} coordinates (use "
                "sliced score matching, objective 'ssm')"
            )
        x_leaf, energy, score = energy_and_score(
            model, _perturb(batch, self.current_sigma(), generator)
        )
        check_energy(energy.detach(), self.energy_bound, self.current_step, "data")
        return _loss_and_terms(0.5 * score.square().sum(-1), hessian_trace_of_energy(x_leaf, score))


class SlicedScoreMatching(_NoiseAnnealing):
    """Sliced score matching (Song et al. 2019).

    Args:
        n_projections: directions v per example.
        projection: "rademacher" or "gaussian".
        variance_reduction: use 1/2 |s|^2 in place of 1/2 (v^T s)^2 (SSM-VR).
        sigma_start, anneal_steps: noise annealing, as in ``ExactScoreMatching``.
        energy_bound: |E| of the data beyond which training is declared diverged.
    """

    requires: ClassVar[str | None] = "energy"

    @validate(n_projections=Integral(1), projection=OneOf(*PROJECTIONS), **ANNEALING)
    def __init__(
        self,
        n_projections: int = 1,
        projection: Projection = "rademacher",
        variance_reduction: bool = True,
        sigma_start: float | None = None,
        anneal_steps: int = 0,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
    ) -> None:
        super().__init__(sigma_start, anneal_steps, energy_bound)
        self.n_projections = n_projections
        self.projection: Projection = projection
        self.variance_reduction = bool(variance_reduction)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x = _perturb(batch.flatten(1), self.current_sigma(), generator)
        x = x.repeat(self.n_projections, 1)
        v = random_projections(tuple(x.shape), self.projection, generator, x)
        x_leaf, energy, score = energy_and_score(model, x)
        check_energy(energy.detach(), self.energy_bound, self.current_step, "data")
        projected = (v * score).sum(-1)
        (grad_projected,) = torch.autograd.grad(projected.sum(), x_leaf, create_graph=True)
        curvature = (v * grad_projected).sum(-1)  # v^T (grad s) v
        if self.variance_reduction:
            first = 0.5 * score.square().sum(-1)
        else:
            first = 0.5 * projected.square()
        return _loss_and_terms(first, curvature)


def denoising_target(noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """grad_x~ log N(x~; x, sigma^2 I) = -(x~ - x) / sigma^2 = -z / sigma."""
    return -noise / sigma


class DenoisingScoreMatching(_NoiseAnnealing):
    """Vincent's DSM at one noise level: mean 1/2 |s(x + sigma z) + z / sigma|^2.

    Noise annealing (``sigma_start``, ``anneal_steps``): the level starts at ``sigma_start`` and
    decreases geometrically to ``sigma`` over the first ``anneal_steps`` updates (a continuation
    method). DSM at a small sigma cannot tell how heavy separated modes are (nothing constrains
    the energy in the empty gaps between them); at a large sigma the smoothed data fill the gaps
    and the mode weights are learned, and the smaller levels then sharpen the modes without a
    force that would undo those weights. While annealing, the loss is weighted by
    (sigma_t / sigma)^2 (the NCSN weighting, rescaled so that the final loss is J_DSM).

    Args:
        sigma: the (final) noise level; the model learns the data convolved with N(0, sigma^2 I).
        sigma_start: the first level of the annealing (None: no annealing).
        anneal_steps: updates over which the level decreases from ``sigma_start`` to ``sigma``.
        energy_bound: |E| beyond which training is declared diverged.
    """

    requires: ClassVar[str | None] = "energy"

    @validate(sigma=SIGMA, **ANNEALING)
    def __init__(
        self,
        sigma: float = 0.1,
        sigma_start: float | None = None,
        anneal_steps: int = 0,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
    ) -> None:
        start = AnyOf(None, Real(sigma), description=f"None or a level >= sigma ({sigma})")
        start.check(sigma_start, "sigma_start")
        super().__init__(sigma_start, anneal_steps, energy_bound)
        self.sigma = float(sigma)

    @property
    def final_sigma(self) -> float:
        return self.sigma

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        sigma = self.current_sigma()
        z = torch.randn(
            batch.shape, generator=generator, device=generator.device, dtype=batch.dtype
        ).to(batch.device)
        noisy = batch + sigma * z
        _, energy, score = energy_and_score(model, noisy, sigma)
        check_energy(energy.detach(), self.energy_bound, self.current_step, "noisy data")
        residual = score - denoising_target(z, sigma)
        weight = (sigma / self.sigma) ** 2
        loss = 0.5 * weight * residual.square().sum(-1).mean()
        return loss, {"sigma": sigma}


class NoiseConditionalScoreMatching(StepCounter):
    """Multi-level DSM over the model's noise ladder (NCSN), lambda(sigma) = sigma^2.

    The model must be noise-conditional (built with ``sigmas``, e.g.
    ``MLPEnergy(2, sigmas=geometric_sigmas(1.0, 0.01, 10))``).

    Args:
        energy_bound: |E| beyond which training is declared diverged.
    """

    requires: ClassVar[str | None] = "energy"

    def __init__(self, energy_bound: float = DEFAULT_ENERGY_BOUND) -> None:
        super().__init__()
        self.energy_bound = float(energy_bound)

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        if not _is_noise_conditional(model):
            raise ValueError(
                "model: noise-conditional score matching needs a model built with "
                "a noise ladder (sigmas=geometric_sigmas(...))"
            )

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        sigmas = model.sigmas.to(batch)
        level = torch.randint(
            0, sigmas.numel(), (batch.shape[0],), generator=generator, device=generator.device
        ).to(batch.device)
        sigma = sigmas[level]
        z = torch.randn(
            batch.shape, generator=generator, device=generator.device, dtype=batch.dtype
        ).to(batch.device)
        noisy = batch + sigma.unsqueeze(-1) * z
        _, energy, score = energy_and_score(model, noisy, sigma)
        check_energy(energy.detach(), self.energy_bound, self.current_step, "noisy data")
        # lambda(sigma) = sigma^2: 1/2 sigma^2 |s + z / sigma|^2 = 1/2 |sigma s + z|^2
        residual = sigma.unsqueeze(-1) * score + z
        loss = 0.5 * residual.square().sum(-1).mean()
        return loss, {}


class NoiseAugmentedScoreMatching(StepCounter):
    """Exact score matching on (x + sigma z, log sigma) with log sigma ~ N(mean, std^2).

    J = E[1/2 |grad_(x,u) g|^2 - Laplacian_(x,u) g] over the joint samples, with the model's
    noise-conditional energy g(x, u) = E(x, sigma = e^u) (the model must be built with ``sigmas``
    and ``noise_scaling="none"``; its finest level is where its density is read). The joint
    density is smooth and decays in every direction of R^(D+1), so Hyvarinen's integration by
    parts holds with no boundary term. One backward pass per coordinate: low dimension only.

    Args:
        log_sigma_mean, log_sigma_std: the Gaussian over u = log sigma (e.g. mean log 0.1 and
            std 1 put 95% of the levels in [0.014, 0.74]).
        max_dim: refuse data of more coordinates (the Hessian trace costs D + 1 passes).
        energy_bound: |E| of the augmented data beyond which training is declared diverged.
    """

    requires: ClassVar[str | None] = "energy"

    @validate(log_sigma_mean=Real(), log_sigma_std=Real(0, closed="neither"), max_dim=Integral(1))
    def __init__(
        self,
        log_sigma_mean: float = math.log(0.1),
        log_sigma_std: float = 1.0,
        max_dim: int = 64,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
    ) -> None:
        super().__init__()
        self.log_sigma_mean = float(log_sigma_mean)
        self.log_sigma_std = float(log_sigma_std)
        self.max_dim = int(max_dim)
        self.energy_bound = float(energy_bound)

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        if not _is_noise_conditional(model) or getattr(model, "noise_scaling", "") != "none":
            raise ValueError(
                "model: noise-augmented score matching needs a noise-conditional energy with "
                "noise_scaling='none' (e.g. MLPEnergy(2, sigmas=[0.02], noise_scaling='none'))"
            )
        if x_train.shape[1] > self.max_dim:
            raise ValueError(
                f"x_train: exact score matching on the augmented space needs D + 1 backward "
                f"passes and is limited to max_dim={self.max_dim}; got {x_train.shape[1]}"
            )

    def augmented_batch(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, D + 1) joint samples: columns x + e^u z, then u."""
        shape = (batch.shape[0], batch.shape[1] + 1)
        normal = torch.randn(
            shape, generator=generator, device=generator.device, dtype=batch.dtype
        ).to(batch.device)
        u = self.log_sigma_mean + self.log_sigma_std * normal[:, -1:]
        return torch.cat([batch + u.exp() * normal[:, :-1], u], dim=1)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.augmented_batch(batch, generator).requires_grad_(True)
        energy = model.energy(z[:, :-1], z[:, -1].exp())
        check_energy(energy.detach(), self.energy_bound, self.current_step, "augmented data")
        (grad,) = torch.autograd.grad(energy.sum(), z, create_graph=True)
        score = -grad
        return _loss_and_terms(0.5 * score.square().sum(-1), hessian_trace_of_energy(z, score))


__all__ = [
    "DenoisingScoreMatching",
    "ExactScoreMatching",
    "NoiseAugmentedScoreMatching",
    "NoiseConditionalScoreMatching",
    "SlicedScoreMatching",
    "annealed_langevin",
    "annealed_noise_level",
    "denoising_target",
    "energy_and_score",
    "geometric_sigmas",
    "hessian_trace_of_energy",
    "random_projections",
]
