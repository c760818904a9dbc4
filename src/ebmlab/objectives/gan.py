"""The GAN objective: minimax discriminator loss, non-saturating (or minimax) generator loss.

Goodfellow et al. (2014), Algorithm 1 and section 3. With D = sigmoid(logit),

    discriminator:  L_D = -E_data[log D(x)] - E_z[log(1 - D(G(z)))] = -V(D, G)
    generator:      L_G = -E_z[log D(G(z))]            (non-saturating; the paper's practice)
               or   L_G =  E_z[log(1 - D(G(z)))]       (minimax; saturates when D wins early)

all through softplus: -log D = softplus(-logit), -log(1 - D) = softplus(logit). At the optimal
discriminator D* = p_data / (p_data + p_g) (logit log p_data - log p_g), L_D = log 4 - 2 JSD;
for any D, L_D >= log 4 - 2 JSD, so (log 4 - L_D) / 2 is a lower bound on JSD(p_data || p_g),
logged as ``jsd_lower_bound``.

How the two players fit the one training loop (``ebmlab.training.train``: one loss, one backward,
one optimizer step per minibatch). Gradient reversal, which flow contrastive estimation uses
(``objectives/nce.py``), gives the second player the gradient of +V: that is the minimax
generator loss only, and the non-saturating loss is not -V. Here instead the loss is the sum
L_D + L_G where each term reaches only its own player's parameters:

  * L_D sees the samples G(z).detach(), so it gives no gradient to G;
  * L_G sees the discriminator with detached parameters (``torch.func.functional_call``), so the
    gradient flows through D into G(z) and on to G's parameters, and D's get none from it.

One backward pass then leaves each player the gradient of its own loss. The two players are two
optimizer parameter groups: D at lr, G at lr x ``generator_lr_ratio`` (separate learning rates,
the two time-scale rule of Heusel et al. 2017), both with Adam's beta1 = ``beta1`` (0.5 in
DCGAN). So the loop's optimizer state, schedule, gradient clipping (of the joint norm), NaN guard,
data parallelism, checkpoints and bit-exact resume all apply unchanged. The rejected alternative,
the objective stepping a private generator optimizer in ``after_step``, would keep optimizer
state that the loop's checkpoints do not hold (a resumed run would differ), skip the schedule,
clipping and the data-parallel gradient average, and ``after_step`` sees neither the batch nor
the sampling generator.

Update order (``d_steps``): 0 (default) updates both players simultaneously from the same
minibatch; k >= 1 is Algorithm 1: k discriminator-only steps, then one generator-only step (the
idle player's parameters get no gradient, ``None``, which Adam and SGD skip, moments included).
The phase is counted in a checkpointed buffer. Every step logs the same metrics (the idle
player's loss under ``no_grad``), so per-epoch averages are over every step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from ..models.gan import GAN
from ..validation import Integral, OneOf, Real, check_choice, validate
from .guards import StepCounter

GENERATOR_LOSSES = ("non-saturating", "minimax")


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """-V = mean softplus(-logit(x)) + mean softplus(logit(G(z))), i.e. the binary
    cross-entropy of data (label 1) against samples (label 0)."""
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def generator_loss(logits_fake: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """-mean log D(G(z)) (non-saturating) or mean log(1 - D(G(z))) (minimax)."""
    check_choice(kind, "kind", GENERATOR_LOSSES)
    if kind == "minimax":
        return -F.softplus(logits_fake).mean()
    return F.softplus(-logits_fake).mean()


def r1_penalty(logits_real: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mean ||grad_x logit(x)||^2 over data x (R1, Mescheder, Geiger & Nowozin 2018), with a graph
    so that its gradient reaches D's parameters."""
    (grad,) = torch.autograd.grad(logits_real.sum(), x, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def optimal_logit(log_p_data: torch.Tensor, log_p_model: torch.Tensor) -> torch.Tensor:
    """Logit of the optimal discriminator D* = p_data / (p_data + p_g): log p_data - log p_g."""
    return log_p_data - log_p_model


def jsd_lower_bound(d_loss: float) -> float:
    """(log 4 - L_D) / 2 <= JSD(p_data || p_g), with equality at the optimal discriminator."""
    return 0.5 * (math.log(4.0) - d_loss)


def check_data_range(output: str, x: torch.Tensor, name: str = "x_train") -> None:
    """A generator with sigmoid output makes values in [0, 1]: refuse data outside it."""
    if output == "sigmoid" and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name}: a GAN with sigmoid output generates values in [0, 1], but the data "
            f"range is [{float(x.min()):.3g}, {float(x.max()):.3g}]; use output='identity'"
        )


def frozen_call(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """module(*inputs) with the module's parameters treated as constants: gradients reach the
    inputs only (the generator's loss through a discriminator it does not train)."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, inputs)


def frozen_discriminate(
    model: nn.Module, x: torch.Tensor, *condition: torch.Tensor
) -> torch.Tensor:
    """D's logits on x (and on what conditions D, for a conditional GAN) with D's parameters
    treated as constants: gradients reach x only."""
    return frozen_call(model.discriminator, x, *condition).squeeze(-1)


class AdversarialObjective(StepCounter):
    """The part every adversarial objective shares: two optimizer groups, the discriminators'
    parameters at lr and the generators' at lr x ``generator_lr_ratio`` (both with Adam's beta1
    = ``beta1``), and the update phase of ``d_steps`` (see the module docstring). Subclasses
    name the players (``players``) and compute the summed loss (``loss``), each term reaching
    only its own player's parameters.
    """

    loss_bound = 1e3

    @validate(
        generator_lr_ratio=Real(0, closed="neither"),
        d_steps=Integral(0),
        beta1=Real(0, 1, closed="left"),
    )
    def __init__(
        self, generator_lr_ratio: float = 1.0, d_steps: int = 0, beta1: float = 0.5
    ) -> None:
        super().__init__()
        self.generator_lr_ratio = float(generator_lr_ratio)
        self.d_steps = d_steps
        self.beta1 = float(beta1)

    def players(self, model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(discriminator parameters, generator parameters) of ``model``."""
        raise NotImplementedError

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        discriminators, generators = self.players(model)
        betas = (self.beta1, 0.999)
        return [
            {"params": discriminators, "lr": lr, "weight_decay": weight_decay, "betas": betas},
            {
                "params": generators,
                "lr": lr * self.generator_lr_ratio,
                "weight_decay": weight_decay,
                "betas": betas,
            },
        ]

    def phase(self) -> str:
        """Who is updated at the coming step: ``both``, ``discriminator`` or ``generator``."""
        if self.d_steps == 0:
            return "both"
        position = int(self.steps_done) % (self.d_steps + 1)
        return "generator" if position == self.d_steps else "discriminator"

    @staticmethod
    def combine(phase: str, d_loss: torch.Tensor, g_loss: torch.Tensor) -> torch.Tensor:
        """The loss of the step: both players' losses summed, or the updated player's alone."""
        if phase == "both":
            return d_loss + g_loss
        return d_loss if phase == "discriminator" else g_loss


class GANObjective(AdversarialObjective):
    """GAN training for the one loop (see the module docstring for how the players are split).

    Args:
        generator_loss: ``non-saturating`` (default) or ``minimax``.
        generator_lr_ratio: the generator's learning rate as a multiple of the loop's lr.
        d_steps: 0 for simultaneous updates; k >= 1 for k discriminator steps per generator step.
        beta1: Adam's first-moment decay for both players (DCGAN: 0.5); ignored by SGD.

    The losses are logistic (a loss of size L means discriminator logits of size about L), so a
    loss above ``loss_bound`` = 1000 stops the run as diverged.

    A conditional GAN reuses the loss through ``split_batch``: what it returns besides the
    images (the labels) is passed on to the generator and the discriminator.
    """

    @validate(generator_loss=OneOf(*GENERATOR_LOSSES), r1_gamma=Real(0))
    def __init__(
        self,
        generator_loss: str = "non-saturating",
        generator_lr_ratio: float = 1.0,
        d_steps: int = 0,
        beta1: float = 0.5,
        r1_gamma: float = 0.0,
    ) -> None:
        super().__init__(generator_lr_ratio, d_steps, beta1)
        self.generator_loss = generator_loss
        self.r1_gamma = float(r1_gamma)

    @staticmethod
    def _check_model(model: nn.Module) -> GAN:
        if not isinstance(model, GAN):
            raise TypeError(f"model: GANObjective trains a GAN, got {type(model).__name__}")
        return model

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        gan = self._check_model(model)
        x = x_train.flatten(1)
        if x.shape[1] != gan.dim:
            raise ValueError(f"x_train: expected {gan.dim} features for this GAN, got {x.shape[1]}")
        check_data_range(gan.output, x)

    def players(self, model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        gan = self._check_model(model)
        return list(gan.discriminator.parameters()), list(gan.generator.parameters())

    def split_batch(
        self, model: nn.Module, batch: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The minibatch's images (batch, dim) and what conditions both players (none here)."""
        return batch.flatten(1), ()

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        gan = self._check_model(model)
        x, condition = self.split_batch(gan, batch)
        phase = self.phase()
        z = gan.sample_latent(x.shape[0], generator)
        with torch.set_grad_enabled(phase != "discriminator"):
            fake = gan.generate(z, *condition)
        penalty = torch.zeros((), device=x.device)
        with torch.set_grad_enabled(phase != "generator"):
            penalize = self.r1_gamma > 0 and phase != "generator"
            x_in = x.detach().requires_grad_(True) if penalize else x
            logits_real = gan.discriminate(x_in, *condition)
            logits_fake = gan.discriminate(fake.detach(), *condition)
            d_loss = discriminator_loss(logits_real, logits_fake)
            if penalize:
                penalty = self.r1_gamma / 2 * r1_penalty(logits_real, x_in)
        with torch.set_grad_enabled(phase != "discriminator"):
            logits = frozen_discriminate(gan, fake, *condition)
            g_loss = generator_loss(logits, self.generator_loss)
        loss = self.combine(phase, d_loss + penalty, g_loss)
        d = d_loss.detach()
        metrics = {
            "d_loss": float(d),
            "g_loss": float(g_loss.detach()),
            "d_real": float(torch.sigmoid(logits_real.detach()).mean()),
            "d_fake": float(torch.sigmoid(logits_fake.detach()).mean()),
            "jsd_lower_bound": jsd_lower_bound(float(d)),
            "r1_penalty": float(penalty.detach()),
        }
        return loss, metrics


__all__ = [
    "GENERATOR_LOSSES",
    "AdversarialObjective",
    "GANObjective",
    "check_data_range",
    "discriminator_loss",
    "frozen_call",
    "frozen_discriminate",
    "generator_loss",
    "jsd_lower_bound",
    "optimal_logit",
]
