"""Cross-entropy of a classifier: the fine-tuning objective of the DBN classifier.

For logits z = f(x) of K classes and the label y,

    L(x, y) = -log softmax(z)_y = logsumexp(z) - z_y,     dL/dz = softmax(z) - e_y,

averaged over the minibatch; backpropagation carries dL/dz through every layer of the network
(``ebmlab.models.classifier.DBNClassifier``). The labels travel with the inputs through the one
training loop as one-hot columns: each row of the training data is [x, e_y] (D inputs, then K
columns, exactly one of them 1), the layout of the Boltzmann machine with label units and of
the conditional GAN (``labelled_rows``). The greedy pretraining that may come before
fine-tuning is a sequence of training stages (``ebmlab.training.greedy.classifier_stages``),
not part of this objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..models.classifier import DBNClassifier, check_labels
from .base import Objective
from .cgan import labelled_rows


def classifier_rows(x: torch.Tensor, y: Any, n_classes: int) -> torch.Tensor:
    """The training rows [x, e_y] of inputs (N, D) and their classes (N,), the labels checked to
    be integers in [0, n_classes)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x: expected a tensor of shape (N, D), got {type(x).__name__}")
    return labelled_rows(x, check_labels(y, n_classes, x.shape[0]), n_classes)


class CrossEntropyClassification(Objective):
    """Mean cross-entropy -log p(y | x) of a ``DBNClassifier`` on rows [x, e_y].

    The loop records the loss (nats per example) and ``minibatch_error``, the fraction of the
    minibatch misclassified (before the update)."""

    @staticmethod
    def _check_model(model: nn.Module) -> DBNClassifier:
        if not isinstance(model, DBNClassifier):
            raise TypeError(
                f"model: CrossEntropyClassification trains a DBNClassifier, got "
                f"{type(model).__name__}"
            )
        return model

    def split_rows(self, model: nn.Module, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [x, e_y] -> the inputs x (N, D) and the classes y (N,)."""
        net = self._check_model(model)
        width = net.n_visible + net.n_classes
        if rows.dim() != 2 or rows.shape[1] != width:
            raise ValueError(
                f"x_train: expected rows [x, one-hot label] of {net.n_visible} + "
                f"{net.n_classes} = {width} columns, got shape {tuple(rows.shape)}"
            )
        return rows[:, : net.n_visible], rows[:, net.n_visible :].argmax(1)

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        net = self._check_model(model)
        self.split_rows(net, x_train)
        labels = x_train[:, net.n_visible :]
        if not bool(((labels == 0) | (labels == 1)).all() and (labels.sum(1) == 1).all()):
            raise ValueError(
                "x_train: the label columns must be one-hot (exactly one 1 per row); build the "
                "rows with ebmlab.objectives.classification.classifier_rows(x, y, n_classes)"
            )

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = self.split_rows(model, batch)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        error = (logits.detach().argmax(1) != y).to(logits.dtype).mean()
        return loss, {"minibatch_error": float(error)}


__all__ = ["CrossEntropyClassification", "classifier_rows"]
