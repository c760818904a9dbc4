"""Maximum likelihood for models with a tractable normalized density (``log_prob``).

The loss is the average negative log-likelihood in nats. Families with exact likelihoods
(Gaussian baselines, PPCA, flows, autoregressive models) train with it; image flows on integer
pixels train with its dequantized form (Theis et al. 2016; Dinh et al. 2017): the continuous
density of x + u, u ~ U[0, 1)^D, lower-bounds the discrete likelihood of x.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ..models.image_flows import ImageRealNVP
from .base import Objective


class MaximumLikelihood(Objective):
    """loss = -mean log p(x) over the minibatch."""

    requires: ClassVar[str | None] = "log_prob"

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        nll = -model.log_prob(batch).mean()
        return nll, {}


class DequantizedMaximumLikelihood(Objective):
    """loss = -mean [log p((x_int + u) / K) - D log K], a fresh u ~ U[0, 1)^D per minibatch drawn
    from the loop's generator: maximizes the dequantization bound on the discrete likelihood.
    Reports the loss in bits per dimension."""

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(model, ImageRealNVP):
            raise TypeError(
                f"DequantizedMaximumLikelihood trains an ImageRealNVP, got {type(model).__name__}"
            )
        bound = model.discrete_log_likelihood_bound(batch, generator)
        loss = -bound.mean()
        bits = float(loss.detach()) / (model.dim * math.log(2))
        return loss, {"bits_per_dim": bits}
