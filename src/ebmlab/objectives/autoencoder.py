"""Objectives of the RBM-pretrained deep autoencoder (Hinton & Salakhutdinov 2006).

``GaussianHiddenCD`` trains the top RBM of the stack, whose code units are linear with
unit-variance Gaussian noise (``ebmlab.models.autoencoder.GaussianHiddenRBM``; the paper's code
``rbmhidlinear.m``). ``ReconstructionObjective`` fine-tunes the unrolled network on
cross-entropy (logistic outputs on pixel intensities in [0, 1]) or squared error. The greedy
pretraining that comes before fine-tuning is a sequence of training stages
(``ebmlab.training.greedy.autoencoder_stages``), not part of either objective.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..models.autoencoder import DeepAutoencoder, GaussianHiddenRBM
from ..samplers.base import bernoulli_draw
from ..validation import check_positive_int
from .base import Objective

Loss = Literal["cross_entropy", "squared_error"]


class GaussianHiddenCD(Objective):
    """CD-k for ``GaussianHiddenRBM``.

    Per update: h ~ N(c + W^T v0, I), v_k = p(v = 1 | h) (mean field; sampled with
    ``sample_visible``), then k - 1 further sweeps; the loss mean F(v0) - mean F(v_k), v_k
    detached, has the gradient <v a^T>_model - <v a^T>_data for W (a = c + W^T v).

    Args:
        k: Gibbs sweeps per update.
        sample_visible: sample binary visible states instead of using probabilities.
        init_visible_bias: in ``setup``, set the visible biases from the data marginals.
    """

    def __init__(
        self, k: int = 1, sample_visible: bool = False, init_visible_bias: bool = True
    ) -> None:
        super().__init__()
        check_positive_int(k, "k")
        self.k = k
        self.sample_visible = sample_visible
        self.init_visible_bias = init_visible_bias

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        rbm = _model(model, GaussianHiddenRBM, "GaussianHiddenCD")
        x_train = rbm.check_visible(x_train, "x_train")
        if self.init_visible_bias:
            rbm.init_visible_from_data(x_train)

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Weight decay on W only (as for the logistic RBMs)."""
        rbm = _model(model, GaussianHiddenRBM, "GaussianHiddenCD")
        return [
            {"params": [rbm.W], "lr": lr, "weight_decay": weight_decay},
            {"params": [rbm.b, rbm.c], "lr": lr, "weight_decay": 0.0},
        ]

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        rbm = _model(model, GaussianHiddenRBM, "GaussianHiddenCD")
        with torch.no_grad():
            v = p = batch
            for _ in range(self.k):
                p = rbm.p_v_given_h(rbm.sample_h(v, generator))
                v = bernoulli_draw(p, generator) if self.sample_visible else p
            recon = (p - batch).square().sum(-1).mean()
        loss = rbm.free_energy(batch).mean() - rbm.free_energy(v).mean()
        return loss, {"reconstruction_error": float(recon)}


class ReconstructionObjective(Objective):
    """Fine-tuning loss of a ``DeepAutoencoder``.

    Args:
        loss: "cross_entropy" (logistic outputs, the paper's choice for MNIST) or
            "squared_error", summed over pixels and averaged over the minibatch.
    """

    def __init__(self, loss: Loss = "cross_entropy") -> None:
        super().__init__()
        if loss not in ("cross_entropy", "squared_error"):
            raise ValueError(f"loss: expected 'cross_entropy' or 'squared_error', got {loss!r}")
        self.loss_name = loss

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        _model(model, DeepAutoencoder, "ReconstructionObjective").check_input(x_train, "x_train")

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        net = _model(model, DeepAutoencoder, "ReconstructionObjective")
        logits = net.decode_logits(net.encode(batch))
        squared = (torch.sigmoid(logits) - batch).square().sum(-1).mean()
        if self.loss_name == "squared_error":
            return squared, {}
        loss = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum") / len(batch)
        return loss, {"squared_error": float(squared.detach())}


def _model(model: nn.Module, cls: type, objective: str) -> Any:
    if not isinstance(model, cls):
        raise TypeError(f"model: {objective} trains a {cls.__name__}, got {type(model).__name__}")
    return model
