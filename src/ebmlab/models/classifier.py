"""A DBN classifier: the feed-forward network unrolled from a stack of RBMs, with a softmax output.

Hinton, Osindero & Teh (2006) fine-tune a 784-500-500-2000 deep belief net for MNIST (1.25% test
error); Erhan et al. (2010), "Why does unsupervised pre-training help deep learning?", compare
such networks with the same network started from random weights; lecture 002. With
``layer_sizes = [D, n_1, ..., n_L]`` and K classes the network is

    h^0 = x,   h^k = sigmoid(c_k + h^{k-1} W_k)   (k = 1..L),
    p(y | x) = softmax(b + h^L V)_y,

so each hidden layer computes exactly the up-pass p(h^k = 1 | h^{k-1}) of the k-th RBM of a
stack when it is initialized from that RBM's weights W_k and hidden biases c_k
(``init_from_rbms``; the RBMs' visible biases play no part in the classifier). The output layer
(V, b) is not pretrained. Without pretraining every weight is drawn at random
(Glorot-normal, std sqrt(2 / (fan_in + fan_out)), as ``DeepAutoencoder``) and the biases are zero.

Scores: the cross-entropy -log p(y | x) and the error rate (the fraction of examples whose most
probable class is not y). A classifier defines no density over x: it has no likelihood.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import (
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model
from .dbn import check_layer_sizes


def _linear(n_in: int, n_out: int) -> nn.Linear:
    # allocated without torch's default initialisation (no draw from the global generator),
    # on the default device (the meta device when a checkpoint's shapes are checked): every
    # weight is set from a seeded generator in DBNClassifier.__init__
    return nn.utils.skip_init(nn.Linear, n_in, n_out, device=torch.get_default_device())


def check_labels(y: Any, n_classes: int, n: int | None = None, name: str = "y") -> torch.Tensor:
    """Class labels as an int64 tensor of shape (n,), every entry an integer in [0, n_classes)."""
    if y is None:
        raise ValueError(f"{name}: expected class labels, got None (the data have no labels)")
    y = torch.as_tensor(y)
    if y.dim() != 1 or (n is not None and y.shape[0] != n):
        expected = f"({n},)" if n is not None else "(n,)"
        raise ValueError(
            f"{name}: expected one class per example, shape {expected}, got {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex():
        if not bool(torch.isfinite(y).all() and (y == y.round()).all()):
            raise ValueError(f"{name}: expected integer class labels, got {y.dtype} values")
    y = y.long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(
            f"{name}: expected class labels in 0..{n_classes - 1}, found labels from "
            f"{int(y.min())} to {int(y.max())}"
        )
    return y


class DBNClassifier(Model):
    """Sigmoid layers [D -> n_1 -> ... -> n_L], then a softmax over ``n_classes``.

    Args:
        layer_sizes: units per layer, input first (at least one entry; one entry: softmax
            regression on the input).
        n_classes: number of classes K (at least 2).
        init_std: standard deviation of the initial weights; None: Glorot-normal,
            sqrt(2 / (fan_in + fan_out)) per layer.
        seed: seeds the initial weights (None: torch's global generator).

    Attributes:
        hidden: ``nn.ModuleList`` of the sigmoid layers (``hidden[k]`` maps layer k to k+1).
        output: the softmax layer (n_L -> K).
    """

    @validate(n_classes=Integral(2), init_std=Real(0) | None, seed=Integral() | None)
    def __init__(
        self,
        layer_sizes: list[int],
        n_classes: int = 10,
        init_std: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        sizes = check_layer_sizes(layer_sizes, min_len=1)
        self.layer_sizes = sizes
        self.n_classes = n_classes
        self.hidden = nn.ModuleList(_linear(a, b) for a, b in itertools.pairwise(sizes))
        self.output = _linear(sizes[-1], n_classes)
        generator = as_generator(seed, "cpu", "seed")
        with torch.no_grad():
            for layer in [*self.hidden, self.output]:
                if layer.weight.is_meta:  # shapes only: nothing to draw
                    continue
                fan_out, fan_in = layer.weight.shape
                std = math.sqrt(2.0 / (fan_in + fan_out)) if init_std is None else init_std
                draw = torch.randn(layer.weight.shape, generator=generator, device="cpu")
                layer.weight.copy_(draw * std)
                layer.bias.zero_()

    @property
    def n_visible(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_layers(self) -> int:
        """Number of sigmoid (hidden) layers L."""
        return len(self.hidden)

    def check_input(self, x: Any, name: str = "x") -> torch.Tensor:
        """Shape (batch, n_visible), finite, in the model's dtype and on its device."""
        return as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )

    # ----- the network --------------------------------------------------------------------------
    def hidden_activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[h^1, ..., h^L], h^k = sigmoid(c_k + h^{k-1} W_k), each (batch, n_k)."""
        out, h = [], x
        for layer in self.hidden:
            h = torch.sigmoid(layer(h))
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits b + h^L V of the classes, shape (batch, n_classes)."""
        activities = self.hidden_activities(x)
        return self.output(activities[-1] if activities else x)

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y | x) for every class, shape (batch, n_classes)."""
        return F.log_softmax(self.forward(x), dim=-1)

    # ----- scores -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Any, batch_size: int = 10_000) -> torch.Tensor:
        """The most probable class of each example, int64 (batch,), in batches of
        ``batch_size`` rows."""
        x = self.check_input(x)
        check_positive_int(batch_size, "batch_size")
        parts = [
            self.forward(x[i : i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def cross_entropy(self, x: Any, y: Any, batch_size: int = 10_000) -> torch.Tensor:
        """-log p(y | x) per example, nats, shape (batch,), in batches of ``batch_size`` rows."""
        x = self.check_input(x)
        check_positive_int(batch_size, "batch_size")
        y = check_labels(y, self.n_classes, x.shape[0]).to(x.device)
        parts = [
            F.cross_entropy(
                self.forward(x[i : i + batch_size]), y[i : i + batch_size], reduction="none"
            )
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, device=x.device)

    @torch.no_grad()
    def errors(self, x: Any, y: Any) -> torch.Tensor:
        """1.0 where the most probable class is not the label, else 0.0, shape (batch,)."""
        x = self.check_input(x)
        y = check_labels(y, self.n_classes, x.shape[0]).to(x.device)
        return (self.predict(x) != y).to(self.dtype)

    def error_rate(self, x: Any, y: Any) -> float:
        """The fraction of misclassified examples among at least one row of ``x``."""
        x = check_nonempty(self.check_input(x), "x")
        return float(self.errors(x, y).mean())

    # ----- pretraining --------------------------------------------------------------------------
    @torch.no_grad()
    def init_from_rbms(self, rbms: Sequence[nn.Module]) -> None:
        """Unroll a trained stack: hidden layer k gets (W_k^T, c_k) of ``rbms[k]``, so that it
        computes that RBM's p(h = 1 | v); the output layer is left as it is."""
        if len(rbms) != self.n_layers:
            raise ValueError(f"rbms: expected {self.n_layers} RBMs, got {len(rbms)}")
        for k, rbm in enumerate(rbms):
            expected = (self.layer_sizes[k], self.layer_sizes[k + 1])
            W = getattr(rbm, "W", None)
            if W is None or getattr(rbm, "c", None) is None:
                raise TypeError(f"rbms[{k}]: expected an RBM with weights W and hidden biases c")
            if tuple(W.shape) != expected:
                raise ValueError(
                    f"rbms[{k}]: expected weights of shape {expected}, got {tuple(W.shape)}"
                )
            self.hidden[k].weight.copy_(W.T)
            self.hidden[k].bias.copy_(rbm.c)


__all__ = ["DBNClassifier", "check_labels"]
