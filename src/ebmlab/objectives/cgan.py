"""The conditional GAN's objective: the GAN's losses with the class given to both players.

Mirza & Osindero (2014). With D = sigmoid(logit) on (image, class) pairs,

    discriminator:  L_D = -E_{(x, y)}[log D(x, y)] - E_{z, y}[log(1 - D(G(z, y), y))]
    generator:      L_G = -E_{z, y}[log D(G(z, y), y)]       (non-saturating)

The labels travel with the images through the one training loop as one-hot columns: each row of
the training data is [x, e_y] (D pixels, then K columns, exactly one of them 1), the layout the
Boltzmann machine with label units uses. The generated half of a minibatch takes the classes of
its data half, so D sees the same classes, in the same proportions, on both sides, and the
generator is trained on the data's class frequencies. Everything else (one backward pass for both
players, their two optimizer groups, the update phases, the R1 penalty on the images) is
``ebmlab.objectives.gan.GANObjective``'s.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.cgan import ConditionalGAN
from .gan import GANObjective, check_data_range


class ConditionalGANObjective(GANObjective):
    """``GANObjective`` for a ``ConditionalGAN`` trained on rows [x, e_y] (same arguments)."""

    @staticmethod
    def _check_model(model: nn.Module) -> ConditionalGAN:  # type: ignore[override]
        if not isinstance(model, ConditionalGAN):
            raise TypeError(
                "model: ConditionalGANObjective trains a ConditionalGAN, got "
                f"{type(model).__name__}"
            )
        return model

    def split_batch(
        self, model: nn.Module, batch: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Rows [x, e_y] -> the images x (batch, D) and the one-hot labels (batch, K)."""
        cgan = self._check_model(model)
        rows = batch.flatten(1)
        return rows[:, : cgan.dim], (rows[:, cgan.dim :],)

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        cgan = self._check_model(model)
        rows = x_train.flatten(1)
        width = cgan.dim + cgan.n_classes
        if rows.shape[1] != width:
            raise ValueError(
                f"x_train: expected rows [x, one-hot label] of {cgan.dim} + {cgan.n_classes} = "
                f"{width} columns, got {rows.shape[1]}"
            )
        labels = rows[:, cgan.dim :]
        if not bool(((labels == 0) | (labels == 1)).all() and (labels.sum(1) == 1).all()):
            raise ValueError("x_train: the label columns must be one-hot (exactly one 1 per row)")
        check_data_range(cgan.output, rows[:, : cgan.dim])


def labelled_rows(x: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The training rows [x, e_y] of images (N, D) and their classes (N,)."""
    if labels.dim() != 1 or labels.shape[0] != x.shape[0]:
        raise ValueError(
            f"labels: expected one class per image, shape ({x.shape[0]},), got "
            f"{tuple(labels.shape)}"
        )
    one_hot = torch.nn.functional.one_hot(labels.long().to(x.device), n_classes)
    return torch.cat([x.flatten(1), one_hot.to(x.dtype)], 1)


__all__ = ["ConditionalGANObjective", "labelled_rows"]
