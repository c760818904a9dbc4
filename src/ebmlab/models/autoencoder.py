"""Deep autoencoder pretrained as a stack of RBMs, then fine-tuned by backpropagation.

Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural networks" (Science
2006); lecture 002 ("Deep Autoencoders"), lecture 000. A stack of RBMs with sizes
``layer_sizes = [D, n_1, ..., n_L]`` is trained greedily
(``ebmlab.training.greedy.autoencoder_stages``), each on the hidden activities of the one
below, then "unrolled": the encoder uses each RBM's W and hidden biases c
(z_k = sigmoid(c_k + z_{k-1} W_k)), the decoder the transposed weights and the visible biases
b in reverse order, and the whole network is fine-tuned to reconstruct its input
(cross-entropy with logistic outputs on pixel intensities in [0, 1], or squared error). After
unrolling, encoder and decoder weights are separate parameters, as in the paper.

The code layer is linear, as in the paper: the top RBM has logistic visible units and linear
hidden units with unit-variance Gaussian noise (``GaussianHiddenRBM``), so the codes are not
squashed into (0, 1). Its energy, conditionals and free energy:

    E(v, h) = -b^T v - c^T h + |h|^2 / 2 - v^T W h,     v in {0,1}^D (or [0,1] as mean field),
    p(h | v) = N(c + W^T v, I),   p(v_i = 1 | h) = sigmoid(b_i + (W h)_i),
    F(v) = -b^T v - |c + W^T v|^2 / 2 - (H / 2) log(2 pi)   (the Gaussian integral over h),
    F(h) = -c^T h + |h|^2 / 2 - sum_i softplus(b_i + (W h)_i)   (v summed out).

It is trained by CD-1 with the conditionals above and mean-field visible reconstructions
(``ebmlab.objectives.GaussianHiddenCD``; the paper's code ``rbmhidlinear.m`` does the same,
with a learning rate 100 times smaller than for the logistic layers).

The autoencoder has no likelihood. Its ``energy(x)`` is the summed squared reconstruction error,
the energy-based reading of an autoencoder (LeCun et al. 2006, "A tutorial on energy-based
learning"): an unnormalized score, not -log p(x) + const.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..samplers import bernoulli_draw as bernoulli
from ..validation import (
    Boolean,
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Bipartite, Model, marginal_logits
from .dbn import check_layer_sizes
from .rbm import BernoulliRBM


def _check_unit_interval(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name}: logistic units model values in [0, 1]; found "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}] (scale pixels to [0, 1])"
        )
    return x


# ----- the linear code layer ---------------------------------------------------------------------
class GaussianHiddenRBM(Bipartite, Model):
    """RBM with ``n_visible`` logistic visible units and ``n_hidden`` linear Gaussian hidden
    units of unit variance (the code layer of Hinton & Salakhutdinov's autoencoder).

    Args:
        n_visible: visible units D.
        n_hidden: hidden (code) units H.
        init_std: standard deviation of the initial weights.
        seed: seed for the initial weights (None: torch's global generator).
    """

    def check_visible(self, v: Any, name: str = "v") -> torch.Tensor:
        """Shape (batch, n_visible), finite, values in [0, 1]."""
        v = as_tensor(
            v, name, dim=2, n_features=self.n_visible, device=self.W.device, dtype=self.W.dtype
        )
        return _check_unit_interval(v, name)

    @torch.no_grad()
    def init_visible_from_data(self, x: torch.Tensor) -> None:
        """b_i = logit of the data marginal (as ``BernoulliRBM``); ``x``: at least one row."""
        self.b.copy_(marginal_logits(check_nonempty(self.check_visible(x, "x"), "x")))

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -b^T v - c^T h + |h|^2 / 2 - v^T W h, shape (batch,)."""
        return -(v @ self.b) - (h @ self.c) + 0.5 * h.square().sum(-1) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -b^T v - |c + W^T v|^2 / 2 - (H / 2) log(2 pi), shape (batch,)."""
        mean = self.hidden_logits(v)
        const = 0.5 * self.n_hidden * math.log(2 * math.pi)
        return -(v @ self.b) - 0.5 * mean.square().sum(-1) - const

    def free_energy_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """F(h) = -c^T h + |h|^2 / 2 - sum_i softplus(b_i + (W h)_i), shape (batch,)."""
        return -(h @ self.c) + 0.5 * h.square().sum(-1) - F.softplus(self.visible_logits(h)).sum(-1)

    def mean_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v] = c + W^T v, shape (batch, n_hidden)."""
        return self.hidden_logits(v)

    def p_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """p(v_i = 1 | h), shape (batch, n_visible)."""
        return torch.sigmoid(self.visible_logits(h))

    @torch.no_grad()
    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ N(c + W^T v, I)."""
        mean = self.hidden_logits(v)
        return mean + torch.randn(mean.shape, generator=generator, device=v.device, dtype=v.dtype)

    @torch.no_grad()
    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return bernoulli(self.p_v_given_h(h), generator)

    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """The code E[h | v] of ``v``."""
        return self.mean_h_given_v(self.check_visible(v))


# ----- the autoencoder ---------------------------------------------------------------------------
def _linear(n_in: int, n_out: int) -> nn.Linear:
    # allocated without torch's default initialisation (and without drawing from the global
    # generator): every weight is set from a seeded generator in DeepAutoencoder.__init__
    return nn.utils.skip_init(nn.Linear, n_in, n_out)


class DeepAutoencoder(Model):
    """Encoder [D -> n_1 -> ... -> n_L] with logistic hidden layers and a linear code (with
    ``linear_code``), decoder [n_L -> ... -> D] with logistic layers and logistic outputs.

    Args:
        layer_sizes: units per layer, input first, code size last (at least two entries).
        linear_code: a linear code layer (Hinton & Salakhutdinov); False: logistic codes.
        init_std: standard deviation of the initial weights; None: Glorot-normal,
            sqrt(2 / (fan_in + fan_out)), the usual random initialisation without pretraining.
        seed: seeds the initial weights (None: torch's global generator).
    """

    @validate(linear_code=Boolean(), init_std=Real(0) | None, seed=Integral() | None)
    def __init__(
        self,
        layer_sizes: list[int],
        linear_code: bool = True,
        init_std: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        sizes = check_layer_sizes(layer_sizes)
        self.layer_sizes = sizes
        self.linear_code = bool(linear_code)
        pairs = list(itertools.pairwise(sizes))
        self.encoder = nn.ModuleList(_linear(a, b) for a, b in pairs)
        self.decoder = nn.ModuleList(_linear(b, a) for a, b in reversed(pairs))
        generator = as_generator(seed, "cpu", "seed")
        with torch.no_grad():
            for layer in [*self.encoder, *self.decoder]:
                fan_out, fan_in = layer.weight.shape
                std = math.sqrt(2.0 / (fan_in + fan_out)) if init_std is None else init_std
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.zero_()

    @property
    def n_visible(self) -> int:
        return self.layer_sizes[0]

    @property
    def code_size(self) -> int:
        return self.layer_sizes[-1]

    def check_input(self, x: Any, name: str = "x") -> torch.Tensor:
        """Shape (batch, n_visible), finite, values in [0, 1]."""
        x = as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        return _check_unit_interval(x, name)

    # ----- the network --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes, shape (batch, code_size): logistic layers, the last one linear with
        ``linear_code``."""
        h = x
        last = len(self.encoder) - 1
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i < last or not self.linear_code:
                h = torch.sigmoid(h)
        return h

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the reconstruction, shape (batch, n_visible)."""
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(h if i == 0 else torch.sigmoid(h))
        return h

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction sigmoid(decoder(encoder(x)))."""
        return self.decode(self.encode(x))

    # ----- scores -------------------------------------------------------------------------------
    def squared_error(self, x: torch.Tensor) -> torch.Tensor:
        """Summed squared reconstruction error per example, shape (batch,): the figure of
        Hinton & Salakhutdinov (3.00 on MNIST for 784-1000-500-250-30; PCA-30 13.87)."""
        return (self.forward(x) - x).square().sum(-1)

    def cross_entropy(self, x: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy -sum_i [x_i log r_i + (1 - x_i) log(1 - r_i)] per example,
        computed from the logits (stable), shape (batch,)."""
        logits = self.decode_logits(self.encode(x))
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """The summed squared reconstruction error, read as an (unnormalized) energy."""
        return self.squared_error(x)

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor, batch_size: int = 10_000) -> torch.Tensor:
        """``squared_error`` on validated input (at least one row), in batches of
        ``batch_size`` rows, without gradients."""
        x = check_nonempty(self.check_input(x), "x")
        check_positive_int(batch_size, "batch_size")
        return torch.cat(
            [self.squared_error(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The codes of ``x`` (validated), shape (batch, code_size)."""
        return self.encode(self.check_input(x))

    # ----- pretraining --------------------------------------------------------------------------
    @validate(init_std=Real(0), seed=Integral() | None)
    def rbm_stack(self, init_std: float = 0.01, seed: int | None = None) -> list[nn.Module]:
        """Fresh RBMs matching the layers: ``BernoulliRBM``s, and a ``GaussianHiddenRBM`` on top
        when the code is linear."""
        sizes = self.layer_sizes
        stack: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            top = i == len(sizes) - 2
            cls = GaussianHiddenRBM if (top and self.linear_code) else BernoulliRBM
            stack.append(cls(a, b, init_std=init_std, seed=None if seed is None else seed + i))
        return stack

    @torch.no_grad()
    def init_from_rbms(self, rbms: list[nn.Module]) -> None:
        """Unroll a trained stack: encoder layer k gets (W_k^T, c_k), decoder layer L+1-k gets
        (W_k, b_k)."""
        if len(rbms) != len(self.encoder):
            raise ValueError(f"rbms: expected {len(self.encoder)} RBMs, got {len(rbms)}")
        for k, rbm in enumerate(rbms):
            expected = (self.layer_sizes[k], self.layer_sizes[k + 1])
            if tuple(rbm.W.shape) != expected:
                raise ValueError(
                    f"rbms[{k}]: expected weights of shape {expected}, got {tuple(rbm.W.shape)}"
                )
            if self.linear_code and k == len(rbms) - 1 and not isinstance(rbm, GaussianHiddenRBM):
                raise TypeError(f"rbms[{k}]: a linear code needs a GaussianHiddenRBM on top")
            encoder, decoder = self.encoder[k], self.decoder[len(rbms) - 1 - k]
            encoder.weight.copy_(rbm.W.T)
            encoder.bias.copy_(rbm.c)
            decoder.weight.copy_(rbm.W)
            decoder.bias.copy_(rbm.b)
