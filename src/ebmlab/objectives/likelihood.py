"""Maximum likelihood for models with a tractable normalized density (``log_prob``).

The loss is the average negative log-likelihood in nats. Families with exact likelihoods
(Gaussian baselines, PPCA, flows, autoregressive models) train with it.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Objective


class MaximumLikelihood(Objective):
    """loss = -mean log p(x) over the minibatch."""

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        nll = -model.log_prob(batch).mean()
        return nll, {}
