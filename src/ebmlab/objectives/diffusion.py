"""Training objectives of the diffusion models: the DDPM's simplified loss (Ho, Jain & Abbeel
2020, eq. 14, Algorithm 1) and the Bernoulli diffusion's bound.

    L_simple = E_{x, t, eps} || eps - eps_theta(sqrt(abar_t) y_0 + sqrt(1 - abar_t) eps, t) ||^2,

t uniform on 1..T, eps ~ N(0, I), y_0 = 2x - 1: each L_{t-1} of the variational bound with its
weight beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) dropped, which Ho et al. found gives better
samples. The loss is the mean over pixels (the per-pixel mean squared error); the timesteps and
the noise come from the loop's generator, so a resumed run repeats them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..models.diffusion import DDPM, BernoulliDiffusion, bernoulli_kl
from ..validation import Real, validate
from .base import Objective


class DiffusionLoss(Objective):
    """loss = mean over the minibatch and pixels of (eps - eps_theta(y_t, t))^2."""

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(model, DDPM):
            raise TypeError(f"DiffusionLoss trains a DDPM, got {type(model).__name__}")
        y0 = model.scale(model.check_images(batch, "batch"))
        t = torch.randint(
            1, model.n_steps + 1, (y0.shape[0],), generator=generator, device=generator.device
        ).to(y0.device)
        noise = torch.randn(y0.shape, generator=generator, device=generator.device).to(y0)
        predicted = model.predict_noise(model.q_sample(y0, t, noise), t)
        return ((predicted - noise) ** 2).mean(), {}


class BernoulliDiffusionLoss(Objective):
    """The variational bound of a ``BernoulliDiffusion``, one timestep per image, plus a small
    cross-entropy on p~(x_0 | x_t) (the hybrid loss of Austin et al. 2021, eq. 5):

        loss = mean over images of [L_T + T l_t + aux_weight (-log p~(x_0 | x_t))],

    t uniform on 1..T, l_t = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t >= 2 and
    -log p~(x_0 | x_1) for t = 1; E_t[T l_t] is the sum of the bound's terms, so without the
    auxiliary term the loss is an unbiased estimate of the bound in nats per image. Reports
    ``bound`` (that estimate) beside the loss."""

    @validate(aux_weight=Real(0))
    def __init__(self, aux_weight: float = 0.01) -> None:
        super().__init__()
        self.aux_weight = float(aux_weight)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(model, BernoulliDiffusion):
            raise TypeError(
                f"BernoulliDiffusionLoss trains a BernoulliDiffusion, got {type(model).__name__}"
            )
        x0 = model.check_images(batch, "batch")
        t = torch.randint(
            1, model.n_steps + 1, (x0.shape[0],), generator=generator, device=generator.device
        ).to(x0.device)
        xt = model.q_sample(x0, t, generator)
        logits = model.predict_logits(xt, t)
        cross_entropy = (F.softplus(logits) - logits * x0).sum(-1)
        kl = bernoulli_kl(model.q_posterior(x0, xt, t), model.p_probs(xt, t, logits)).sum(-1)
        step = torch.where(t == 1, cross_entropy, kl)
        bound = model.prior_kl(x0) + model.n_steps * step
        loss = (bound + self.aux_weight * cross_entropy).mean()
        return loss, {"bound": float(bound.detach().mean())}
