"""The CycleGAN objective: two adversarial games and the cycle-consistency loss, in one loop.

Zhu et al. (2017), section 3. With G: X -> Y, F: Y -> X and discriminators D_X, D_Y,

    L(G, F, D_X, D_Y) = L_GAN(G, D_Y, X, Y) + L_GAN(F, D_X, Y, X) + lambda L_cyc(G, F)
                        [+ lambda_id L_identity(G, F)],
    L_cyc      = E_x ||F(G(x)) - x||_1 + E_y ||G(F(y)) - y||_1,
    L_identity = E_y ||G(y) - y||_1 + E_x ||F(x) - x||_1     (section 5.2, for colour-keeping
                                                               tasks; off by default),

with the L1 norms taken as means over pixels (so lambda = 10 as in the paper). The generators
minimize L, the discriminators maximize the adversarial terms. ``gan_loss`` chooses their form:

  * ``lsgan`` (the paper's choice, Mao et al. 2017): D minimizes
    (1/2) [E (D(y) - 1)^2 + E D(G(x))^2] (the 1/2 of the authors' code slows D against G),
    G minimizes E (D(G(x)) - 1)^2;
  * ``non-saturating``: the logistic losses of ``ebmlab.objectives.gan``.

D outputs one logit per patch (PatchGAN) and every loss averages over patches too.

The data: each row of the training data holds one image of each domain, [x, y] (D + D columns),
drawn from unrelated examples (``ebmlab.data.domains``). Every term above is a sum of a function
of the x's and a function of the y's, so which x shares a row with which y never enters the
loss: the rows only decide which images share a minibatch. The players split as in the GAN
objective (``ebmlab.objectives.gan``): the discriminators' losses see the translations detached,
the generators' see the discriminators through ``frozen_call``, so one backward pass gives each
group the gradient of its own loss, and the two groups (D_X and D_Y, G and F) have their own
learning rates. The paper's buffer of 50 earlier translations shown to D is not used: D sees the
current minibatch's translations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models.cyclegan import CycleGAN
from ..validation import OneOf, Real, check_choice, validate
from .gan import (
    AdversarialObjective,
    check_data_range,
    discriminator_loss,
    frozen_call,
    generator_loss,
)

GAN_LOSSES = ("lsgan", "non-saturating")


def least_squares_discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor
) -> torch.Tensor:
    """LSGAN's discriminator loss E (D(real) - 1)^2 + E D(fake)^2 (Mao et al. 2017), means
    over examples and patches."""
    return (logits_real - 1).square().mean() + logits_fake.square().mean()


def least_squares_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN's generator loss E (D(fake) - 1)^2."""
    return (logits_fake - 1).square().mean()


def adversarial_losses(
    kind: str,
) -> tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]
]:
    """(discriminator loss, generator loss) of ``kind`` in ``GAN_LOSSES``, as functions of the
    logits; the least-squares discriminator loss is halved (the authors' practice)."""
    check_choice(kind, "kind", GAN_LOSSES)
    if kind == "lsgan":
        return (
            lambda real, fake: 0.5 * least_squares_discriminator_loss(real, fake),
            least_squares_generator_loss,
        )
    return discriminator_loss, generator_loss


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over examples and pixels."""
    return (a - b).abs().mean()


def cycle_consistency_loss(
    x: torch.Tensor, x_cycled: torch.Tensor, y: torch.Tensor, y_cycled: torch.Tensor
) -> torch.Tensor:
    """L_cyc = E ||F(G(x)) - x||_1 + E ||G(F(y)) - y||_1 (means over pixels): zero exactly when
    F undoes G on the x's and G undoes F on the y's."""
    return l1(x_cycled, x) + l1(y_cycled, y)


class CycleGANObjective(AdversarialObjective):
    """CycleGAN training for the one loop, on rows [x, y] (see the module docstring).

    Args:
        cycle_weight: lambda, the weight of the cycle-consistency loss (10 in the paper).
        identity_weight: the weight of the identity loss (0: none; 0.5 lambda in the paper's
            painting <-> photo experiments).
        gan_loss: ``lsgan`` (default, the paper's) or ``non-saturating``.
        generator_lr_ratio: the generators' learning rate as a multiple of the loop's lr.
        d_steps: 0 for simultaneous updates; k >= 1 for k discriminator steps per generator step.
        beta1: Adam's first-moment decay of all four networks (0.5 in the paper).
    """

    @validate(cycle_weight=Real(0), identity_weight=Real(0), gan_loss=OneOf(*GAN_LOSSES))
    def __init__(
        self,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.0,
        gan_loss: str = "lsgan",
        generator_lr_ratio: float = 1.0,
        d_steps: int = 0,
        beta1: float = 0.5,
    ) -> None:
        super().__init__(generator_lr_ratio, d_steps, beta1)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.gan_loss = gan_loss

    @staticmethod
    def _check_model(model: nn.Module) -> CycleGAN:
        if not isinstance(model, CycleGAN):
            raise TypeError(
                f"model: CycleGANObjective trains a CycleGAN, got {type(model).__name__}"
            )
        return model

    def players(self, model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        cycle = self._check_model(model)
        discriminators = [p for net in cycle.discriminators for p in net.parameters()]
        generators = [p for net in cycle.generators for p in net.parameters()]
        return discriminators, generators

    def split_batch(
        self, model: nn.Module, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [x, y] -> the images of domain X and those of domain Y, (batch, D) each."""
        cycle = self._check_model(model)
        rows = batch.flatten(1)
        return rows[:, : cycle.dim], rows[:, cycle.dim :]

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        cycle = self._check_model(model)
        rows = x_train.flatten(1)
        if rows.shape[1] != 2 * cycle.dim:
            raise ValueError(
                f"x_train: expected rows [x, y] of one image of each domain, 2 x {cycle.dim} = "
                f"{2 * cycle.dim} columns, got {rows.shape[1]}"
            )
        check_data_range(cycle.output, rows)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cycle = self._check_model(model)
        x, y = self.split_batch(cycle, batch)
        d_form, g_form = adversarial_losses(self.gan_loss)
        phase = self.phase()
        with torch.set_grad_enabled(phase != "discriminator"):
            fake_y, fake_x = cycle.translate(x), cycle.translate_back(y)
        with torch.set_grad_enabled(phase != "generator"):
            real_y, real_x = cycle.discriminate_y(y), cycle.discriminate_x(x)
            d_loss_y = d_form(real_y, cycle.discriminate_y(fake_y.detach()))
            d_loss_x = d_form(real_x, cycle.discriminate_x(fake_x.detach()))
            d_loss = d_loss_y + d_loss_x
        with torch.set_grad_enabled(phase != "discriminator"):
            g_adv = g_form(frozen_call(cycle.discriminator_y, fake_y))
            f_adv = g_form(frozen_call(cycle.discriminator_x, fake_x))
            cyc = cycle_consistency_loss(
                x, cycle.translate_back(fake_y), y, cycle.translate(fake_x)
            )
            g_loss = g_adv + f_adv + self.cycle_weight * cyc
            identity = torch.zeros((), device=x.device)
            if self.identity_weight > 0:
                identity = l1(cycle.translate(y), y) + l1(cycle.translate_back(x), x)
                g_loss = g_loss + self.identity_weight * identity
        loss = self.combine(phase, d_loss, g_loss)
        metrics = {
            "d_loss_x": float(d_loss_x.detach()),
            "d_loss_y": float(d_loss_y.detach()),
            "g_adversarial": float(g_adv.detach()),
            "f_adversarial": float(f_adv.detach()),
            "cycle_loss": float(cyc.detach()),
            "identity_loss": float(identity.detach()),
        }
        return loss, metrics


__all__ = [
    "GAN_LOSSES",
    "CycleGANObjective",
    "adversarial_losses",
    "cycle_consistency_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
]
