"""Neural energy-based models: E(x; theta) given by a network, p(x) = exp(-E(x)) / Z.

Lecture 001 (part 3) and lecture 003: any network R^D -> R is a valid energy; Z is intractable,
so training needs samples (contrastive divergence with Langevin MCMC), the score -grad_x E alone
(score matching) or a classifier against noise (NCE). This module holds the networks; their
``sample`` runs the Langevin chains of ``ebmlab.samplers.langevin`` from noise, and the
objectives are in ``ebmlab.objectives``.

  * ``MLPEnergy(dim, hidden, depth, activation)``: vectors and 2-D densities. Smooth activations
    only (SiLU, softplus, tanh, GELU), so that grad_x E and the Hessian trace of exact score
    matching exist and are not piecewise constant.
  * ``ConvEnergy(image_shape, channels)``: a small CNN for 8x8 digits or 28x28 MNIST, with
    images given flattened (N, H*W) in [0, 1] as everywhere in ebmlab.
  * ``QuadraticEnergy(dim)``: E(x) = 1/2 (x - mu)^T P (x - mu), a Gaussian with a closed-form
    log Z; the reference case of the score-matching and NCE tests.

Noise-conditional energies (NCSN, Song & Ermon 2019). Built with a noise ladder ``sigmas``
(sigma_1 > ... > sigma_L), a network takes log sigma as an extra input and its output is divided
by sigma, E(x, sigma) = g(x, log sigma) / sigma, so that the sigma^2-weighted denoising loss
1/2 |sigma s(x~) + z|^2 asks g for O(1) gradients at every level (Song & Ermon 2020 scale the
score by 1/sigma in the same way). Without ``sigma`` such a model is the density at the
finest level, exp(-E(x, sigma_L)): the data smoothed by N(0, sigma_L^2 I).

Sampling (``sample``): Langevin dynamics from uniform noise on the data box. The Langevin
convention is ebmlab's (``ebmlab.samplers.langevin``): x <- x - eps grad E + noise_scale xi,
with noise_scale = sqrt(2 eps) for temperature 1; EBM papers' (step, noise) pairs set both.
Noise-conditional models use annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): at
level i, T steps with alpha_i = eps sigma_i^2 / sigma_L^2 of x <- x + alpha_i / 2 s(x, sigma_i) +
sqrt(alpha_i) xi, which is ebmlab's step with eps_i = alpha_i / 2; a final denoising step
x + sigma_L^2 s(x, sigma_L) (Tweedie's formula) is optional.

References: Du & Mordatch (2019), "Implicit generation and modeling with energy-based models";
Song & Ermon (2019), "Generative modeling by estimating gradients of the data distribution";
Song & Ermon (2020), "Improved techniques for training score-based generative models";
Grathwohl et al. (2020), "Your classifier is secretly an energy based model" (JEM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..samplers.annealing import geometric_ladder
from ..samplers.langevin import annealed_langevin, energy_gradient, langevin_chain
from ..validation import (
    Boolean,
    ImageShape,
    Integral,
    OneOf,
    Real,
    SequenceOf,
    as_generator,
    as_tensor,
    check_known_mask,
    check_nonempty,
    check_positive,
    check_positive_int,
    validate,
)
from .base import Model
from .flows import activation_layer

#: Activations whose second derivative exists everywhere (score matching needs the Hessian).
SMOOTH_ACTIVATIONS = ("silu", "softplus", "tanh", "gelu")


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> list[float]:
    """sigma_1 = sigma_max > ... > sigma_L = sigma_min, geometric (computed in float64)."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got "
            f"{sigma_min}, {sigma_max}"
        )
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
        raise ValueError(f"n_levels: expected an integer >= 2, got {n_levels!r}")
    return [float(s) for s in geometric_ladder(sigma_max, sigma_min, n_levels)]


#: How a noise-conditional energy depends on sigma (see ``EnergyNetwork``).
NOISE_SCALINGS = ("inverse", "none")

#: ``data_range``: two finite numbers, the low end first.
DATA_RANGE = SequenceOf(Real(), 2).where(
    lambda value: value[0] < value[1], "[low, high] (two finite numbers, low < high)"
)


class EnergyNetwork(Model):
    """Shared part of the neural energies: noise conditioning, energy, score, Langevin sampling.

    Subclasses implement ``network(x, log_sigma) -> (batch,)`` (``log_sigma`` is None unless the
    model is noise-conditional).

    Args (sampling defaults, kept in the checkpoint):
        sigmas: decreasing noise ladder for a noise-conditional model (NCSN), or None.
        langevin_step: eps of ``sample`` (for noise-conditional models, eps at sigma_L).
        langevin_noise: noise scale of ``sample``; None for sqrt(2 eps) (temperature 1).
        langevin_steps: default number of Langevin steps of ``sample`` (in total, split evenly
            over the levels of a noise-conditional model).
        data_range: (lo, hi): ``sample`` starts from uniform noise on [lo, hi]^D.
        clamp: keep samples in ``data_range`` (images).
        noise_scaling: how a noise-conditional energy uses sigma: "inverse" for
            E(x, sigma) = g(x, log sigma) / sigma (NCSN's parametrization, scores of size
            1/sigma), "none" for E(x, sigma) = g(x, log sigma), a smooth function of
            (x, log sigma) jointly (noise-augmented score matching differentiates it in log sigma).
        bernoulli_base: for binary data, add a fixed independent-Bernoulli base to the energy,
            E(x) = g(x) - b^T x with b the ``base_logits`` buffer (set it to the logits of the
            data marginals, ``ebmlab.estimators.base_rate_bias``): exp(-E) is then the base
            distribution times exp(-g), and g starts near a constant (Grathwohl et al. 2021 and
            Zhang et al. 2022 train their binary-image EBMs this way).
    """

    @validate(
        langevin_step=Real(0, closed="neither"),
        langevin_noise=Real(0) | None,
        langevin_steps=Integral(1),
        data_range=DATA_RANGE,
        clamp=Boolean(),
        noise_scaling=OneOf(*NOISE_SCALINGS),
        bernoulli_base=Boolean(),
    )
    def __init__(
        self,
        sigmas: Sequence[float] | None = None,
        langevin_step: float = 0.01,
        langevin_noise: float | None = None,
        langevin_steps: int = 200,
        data_range: Sequence[float] = (-4.5, 4.5),
        clamp: bool = False,
        noise_scaling: str = "inverse",
        bernoulli_base: bool = False,
    ) -> None:
        super().__init__()
        self.noise_scaling = noise_scaling
        if sigmas is not None:
            ladder = torch.as_tensor(list(sigmas), dtype=torch.float64)
            if (
                ladder.numel() < 1
                or not bool(torch.isfinite(ladder).all())
                or not bool((ladder > 0).all())
                or not bool((ladder[:-1] > ladder[1:]).all())
            ):
                raise ValueError(
                    f"sigmas: expected positive, strictly decreasing noise levels, "
                    f"got {list(sigmas)}"
                )
        else:
            ladder = torch.zeros(0, dtype=torch.float64)
        self.register_buffer("sigmas", ladder.to(torch.get_default_dtype()))
        lo, hi = (float(v) for v in data_range)
        self.langevin_step = float(langevin_step)
        self.langevin_noise = None if langevin_noise is None else float(langevin_noise)
        self.langevin_steps = langevin_steps
        self.data_range = (lo, hi)
        self.clamp = bool(clamp)
        self.bernoulli_base = bool(bernoulli_base)
        self.dim = 0  # set by subclasses, which then call _register_base

    def _register_base(self) -> None:
        """The ``base_logits`` buffer (dim,) of a model with a Bernoulli base (zeros until set)."""
        if self.bernoulli_base:
            self.register_buffer("base_logits", torch.zeros(self.dim))

    # ----- energy ---------------------------------------------------------------------------
    @property
    def noise_conditional(self) -> bool:
        return self.sigmas.numel() > 0

    def network(self, x: torch.Tensor, log_sigma: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _sigma_column(self, sigma: float | torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        if sigma is None:
            sigma = self.sigmas[-1]
        level = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
        if level.dim() == 0:
            level = level.expand(x.shape[0])
        if level.shape != (x.shape[0],):
            raise ValueError(
                f"sigma: expected a number or a tensor of shape ({x.shape[0]},), "
                f"got shape {tuple(level.shape)}"
            )
        return level

    def energy(
        self, x: torch.Tensor, sigma: float | torch.Tensor | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """E(x) (batch,), divided by ``temperature``. Noise-conditional models: E(x, sigma) =
        g(x, log sigma) / sigma (or g(x, log sigma) with ``noise_scaling="none"``), with
        sigma = sigma_L (the finest level) when not given. It runs at every step of training and
        sampling, so it checks only the shape of ``x`` (not its values)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (batch, {self.dim}), got {tuple(x.shape)}")
        if self.noise_conditional:
            level = self._sigma_column(sigma, x)
            value = self.network(x, torch.log(level))
            if self.noise_scaling == "inverse":
                value = value / level
        else:
            if sigma is not None:
                raise ValueError(
                    "sigma: this model is not noise-conditional (built without sigmas)"
                )
            value = self.network(x, None)
        if self.bernoulli_base:
            value = value - x @ self.base_logits
        return value / temperature

    def score(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """s(x) = -grad_x E(x) (detached)."""
        return -energy_gradient(lambda y: self.energy(y, sigma), x)

    # ----- sampling -------------------------------------------------------------------------
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points uniform on the data box [lo, hi]^D: where ``sample`` starts (``generator``: a
        torch.Generator or a seed)."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        lo, hi = self.data_range
        u = torch.rand(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return lo + (hi - lo) * u

    def _run(
        self,
        x: torch.Tensor,
        n_steps: int,
        generator: torch.Generator | None,
        temperature: float,
        update_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        clamp = self.data_range if self.clamp else None
        was_training = self.training
        self.eval()
        try:
            if self.noise_conditional:
                # no clamp along the way: at level sigma the chains sample the data plus
                # N(0, sigma^2) noise, which leaves the data box; only the result is clamped
                each = max(1, n_steps // self.sigmas.numel())
                x = annealed_langevin(
                    lambda y, s: self.energy(y, s, temperature),
                    x,
                    self.sigmas,
                    each,
                    self.langevin_step,
                    generator,
                    update_mask=update_mask,
                )
                return x if clamp is None else x.clamp(*clamp)
            return langevin_chain(
                lambda y: self.energy(y, temperature=temperature),
                x,
                n_steps,
                self.langevin_step,
                self.langevin_noise,
                generator,
                clamp=clamp,
                update_mask=update_mask,
            )
        finally:
            self.train(was_training)

    def sample(
        self,
        n: int,
        n_steps: int | None = None,
        generator: int | torch.Generator | None = None,
        x0: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n samples by Langevin dynamics from uniform noise on the data box (or from the rows of
        ``x0``); annealed Langevin for noise-conditional models. ``n_steps`` defaults to
        ``langevin_steps``; ``generator``: a torch.Generator or a seed."""
        n_steps = self.langevin_steps if n_steps is None else check_positive_int(n_steps, "n_steps")
        check_positive(temperature, "temperature")
        generator = as_generator(generator, self.device)
        if x0 is None:
            x = self.noise(check_positive_int(n, "n"), generator)
        else:
            x = as_tensor(
                x0, "x0", dim=2, n_features=self.dim, device=self.device, dtype=self.dtype
            )
            check_nonempty(x, "x0")
        return self._run(x, n_steps, generator, temperature, None).detach()

    def inpaint(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        n_steps: int | None = None,
        generator: int | torch.Generator | None = None,
    ) -> torch.Tensor:
        """Fill the entries of ``x`` where ``known`` is False by Langevin dynamics on
        p(x_unknown | x_known) ∝ exp(-E(x)), starting them from uniform noise. ``known``: a bool
        mask of shape (D,) or that of ``x`` (True = known entry); ``generator``: a
        torch.Generator or a seed."""
        x = as_tensor(x, "x", dim=2, n_features=self.dim, device=self.device, dtype=self.dtype)
        check_nonempty(x, "x")
        known = check_known_mask(known, x, "known")
        n_steps = self.langevin_steps if n_steps is None else check_positive_int(n_steps, "n_steps")
        generator = as_generator(generator, self.device)
        start = torch.where(known, x, self.noise(x.shape[0], generator))
        return self._run(start, n_steps, generator, 1.0, ~known).detach()


class MLPEnergy(EnergyNetwork):
    """E(x) = MLP(x): ``depth`` hidden layers of width ``hidden``, smooth ``activation``.

    Args:
        dim: input dimension.
        hidden, depth: width and number of hidden layers.
        activation: one of ``SMOOTH_ACTIVATIONS``.
        **sampling: the settings of ``EnergyNetwork`` (sigmas, langevin_step, langevin_noise,
            langevin_steps, data_range, clamp, noise_scaling), with its defaults.
    """

    @validate(dim=Integral(1), hidden=Integral(1), depth=Integral(1))
    def __init__(
        self, dim: int, hidden: int = 128, depth: int = 2, activation: str = "silu", **sampling: Any
    ) -> None:
        super().__init__(**sampling)
        self.dim = dim
        if activation not in SMOOTH_ACTIVATIONS:
            raise ValueError(
                f"activation: expected a smooth activation, one of "
                f"{', '.join(SMOOTH_ACTIVATIONS)}, got {activation!r}"
            )
        n_in = dim + (1 if self.noise_conditional else 0)
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), activation_layer(activation)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self._register_base()

    def network(self, x: torch.Tensor, log_sigma: torch.Tensor | None) -> torch.Tensor:
        if log_sigma is not None:
            x = torch.cat([x, log_sigma.unsqueeze(-1)], dim=-1)
        return self.net(x).squeeze(-1)


#: ConvEnergy's sampling defaults: IGEBM's step 1 with noise 0.01 (temperature 5e-5), 60 steps,
#: images clamped to [0, 1].
CONV_SAMPLING: dict[str, Any] = {
    "langevin_step": 1.0,
    "langevin_noise": 0.01,
    "langevin_steps": 60,
    "data_range": (0.0, 1.0),
    "clamp": True,
}


class ConvEnergy(EnergyNetwork):
    """A small CNN energy for (N, H*W) images in [0, 1].

    Layers: a 3x3 convolution with ``channels[0]`` filters, then one stride-2 3x3 convolution
    per entry of ``channels`` (halving the resolution), each followed by ``activation``; a
    linear layer on the flattened features gives E. Inputs are mapped to [-1, 1] first.

    Args:
        image_shape: (H, W).
        channels: filters of the stride-2 layers, e.g. (32, 64).
        activation: one of ``SMOOTH_ACTIVATIONS``.
        **sampling: the settings of ``EnergyNetwork``, with the defaults of ``CONV_SAMPLING``.
    """

    @validate(
        image_shape=ImageShape(),
        channels=SequenceOf(Integral(1)).where(
            lambda value: len(value) > 0, "a non-empty list of positive integers"
        ),
    )
    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        activation: str = "silu",
        **sampling: Any,
    ) -> None:
        super().__init__(**{**CONV_SAMPLING, **sampling})
        h, w = (int(v) for v in image_shape)
        channels = [int(c) for c in channels]
        if activation not in SMOOTH_ACTIVATIONS:
            raise ValueError(
                f"activation: expected a smooth activation, one of "
                f"{', '.join(SMOOTH_ACTIVATIONS)}, got {activation!r}"
            )
        self.image_shape = (h, w)
        self.dim = h * w
        n_in = 2 if self.noise_conditional else 1
        layers: list[nn.Module] = [
            nn.Conv2d(n_in, channels[0], 3, padding=1),
            activation_layer(activation),
        ]
        previous = channels[0]
        for c in channels:
            layers += [nn.Conv2d(previous, c, 3, stride=2, padding=1), activation_layer(activation)]
            previous = c
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_features = self.features(torch.zeros(1, n_in, h, w)).numel()
        self.head = nn.Linear(n_features, 1)
        self._register_base()

    def network(self, x: torch.Tensor, log_sigma: torch.Tensor | None) -> torch.Tensor:
        h, w = self.image_shape
        images = (2.0 * x - 1.0).reshape(-1, 1, h, w)
        if log_sigma is not None:
            plane = log_sigma.reshape(-1, 1, 1, 1).expand(-1, 1, h, w)
            images = torch.cat([images, plane], dim=1)
        return self.head(self.features(images).flatten(1)).squeeze(-1)


class QuadraticEnergy(Model):
    """E(x) = 1/2 (x - mean)^T P (x - mean) with P = L L^T, L lower triangular with a positive
    diagonal (softplus of ``raw_diag``): the Gaussian N(mean, P^-1), log Z = D/2 log 2 pi -
    1/2 log det P. Sampling is exact."""

    likelihood_kind = "exact"

    @validate(dim=Integral(1))
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mean = nn.Parameter(torch.zeros(dim))
        self.lower = nn.Parameter(torch.zeros(dim, dim))
        # softplus(0.5413) = 1: the model starts at N(0, I)
        self.raw_diag = nn.Parameter(torch.full((dim,), 0.5413))

    def cholesky(self) -> torch.Tensor:
        """L with P = L L^T."""
        strict = torch.tril(self.lower, diagonal=-1)
        return strict + torch.diag(nn.functional.softplus(self.raw_diag))

    def precision(self) -> torch.Tensor:
        chol = self.cholesky()
        return chol @ chol.T

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), shape (batch,). Does not check its input (it runs inside training and
        sampling loops); ``log_prob`` does."""
        u = (x - self.mean) @ self.cholesky()
        return 0.5 * (u * u).sum(-1)

    def log_partition(self) -> torch.Tensor:
        """log Z = D/2 log(2 pi) - sum log diag(L)."""
        diag = nn.functional.softplus(self.raw_diag)
        return 0.5 * self.dim * math.log(2 * math.pi) - torch.log(diag).sum()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized log density in nats of (batch, dim) rows, shape (batch,)."""
        x = as_tensor(
            x, "x", dim=2, n_features=self.dim, device=self.mean.device, dtype=self.mean.dtype
        )
        return -self.energy(check_nonempty(x, "x")) - self.log_partition()

    @torch.no_grad()
    def sample(
        self, n: int, generator: int | torch.Generator | None = None, **_: object
    ) -> torch.Tensor:
        """``n`` exact draws x = mean + L^-T z, shape (n, dim); ``generator``: a torch.Generator
        or a seed. Other keyword arguments (a sampler's ``n_steps``) are ignored."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.mean.device)
        z = torch.randn(
            n, self.dim, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        chol = self.cholesky()
        return self.mean + torch.linalg.solve_triangular(chol.T, z.T, upper=True).T
