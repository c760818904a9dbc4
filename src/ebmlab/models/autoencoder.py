"""Deep autoencoder pretrained as a stack of RBMs, then fine-tuned by backpropagation.

Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural networks" (Science
2006); lecture 002 ("Deep Autoencoders"), lecture 000. A stack of RBMs with sizes
``layer_sizes = [D, n_1, ..., n_L]`` is trained greedily (``ebmlab.models.dbn.fit_greedy``), each
on the hidden activities of the one below, then "unrolled": the encoder uses each RBM's W and
hidden biases c (z_k = sigmoid(c_k + z_{k-1} W_k)), the decoder the transposed weights and the
visible biases b in reverse order, and the whole network is fine-tuned to reconstruct its input
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
(``GaussianHiddenCD``; the paper's code ``rbmhidlinear.m`` does the same, with a learning rate 100
times smaller than for the logistic layers).

The autoencoder has no likelihood. Its ``energy(x)`` is the summed squared reconstruction error,
the energy-based reading of an autoencoder (LeCun et al. 2006, "A tutorial on energy-based
learning"): an unnormalized score, not -log p(x) + const.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..objectives.base import Objective
from ..validation import as_tensor
from .base import Model
from .dbn import check_layer_sizes, fit_greedy
from .rbm import BernoulliRBM, bernoulli

Loss = Literal["cross_entropy", "squared_error"]


def _check_unit_interval(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name}: logistic units model values in [0, 1]; found "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}] (scale pixels to [0, 1])"
        )
    return x


# ----- the linear code layer ---------------------------------------------------------------------
class GaussianHiddenRBM(Model):
    """RBM with ``n_visible`` logistic visible units and ``n_hidden`` linear Gaussian hidden
    units of unit variance (the code layer of Hinton & Salakhutdinov's autoencoder).

    Args:
        n_visible: visible units D.
        n_hidden: hidden (code) units H.
        init_std: standard deviation of the initial weights.
        seed: seed for the initial weights (None: torch's global generator).
    """

    def __init__(
        self, n_visible: int, n_hidden: int, init_std: float = 0.01, seed: int | None = None
    ) -> None:
        super().__init__()
        check_layer_sizes([n_visible, n_hidden], "n_visible, n_hidden")
        if not init_std >= 0:
            raise ValueError(f"init_std: expected a non-negative number, got {init_std}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def check_visible(self, v: Any, name: str = "v") -> torch.Tensor:
        """Shape (batch, n_visible), finite, values in [0, 1]."""
        v = as_tensor(
            v, name, dim=2, n_features=self.n_visible, device=self.W.device, dtype=self.W.dtype
        )
        return _check_unit_interval(v, name)

    @torch.no_grad()
    def init_visible_from_data(self, x: torch.Tensor) -> None:
        """b_i = logit of the data marginal (as ``BernoulliRBM``)."""
        x = self.check_visible(x, "x")
        # keep the logits finite for pixels that are always off (or on) in the data: +-6.9
        p = x.mean(0).clamp(1e-3, 1 - 1e-3)
        self.b.copy_(torch.log(p) - torch.log1p(-p))

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

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v] = c + W^T v (named as in ``BernoulliRBM``: the hidden units' total input)."""
        return torch.addmm(self.c, v, self.W)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, h, self.W.T)

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


class GaussianHiddenCD(Objective):
    """CD-k for ``GaussianHiddenRBM`` (Hinton & Salakhutdinov's ``rbmhidlinear.m``).

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
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected a positive integer, got {k!r}")
        self.k = k
        self.sample_visible = sample_visible
        self.init_visible_bias = init_visible_bias

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        if not isinstance(model, GaussianHiddenRBM):
            raise TypeError(
                f"model: GaussianHiddenCD trains a GaussianHiddenRBM, got {type(model).__name__}"
            )
        x_train = model.check_visible(x_train, "x_train")
        if self.init_visible_bias:
            model.init_visible_from_data(x_train)

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Weight decay on W only (as for the logistic RBMs)."""
        return [
            {"params": [model.W], "lr": lr, "weight_decay": weight_decay},
            {"params": [model.b, model.c], "lr": lr, "weight_decay": 0.0},
        ]

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, GaussianHiddenRBM)
        with torch.no_grad():
            v = batch
            for _ in range(self.k):
                p = model.p_v_given_h(model.sample_h(v, generator))
                v = bernoulli(p, generator) if self.sample_visible else p
            recon = (p - batch).square().sum(-1).mean()
        loss = model.free_energy(batch).mean() - model.free_energy(v).mean()
        return loss, {"reconstruction_error": float(recon)}


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

    def __init__(
        self,
        layer_sizes: list[int],
        linear_code: bool = True,
        init_std: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        sizes = check_layer_sizes(layer_sizes)
        if init_std is not None and not init_std >= 0:
            raise ValueError(f"init_std: expected a non-negative number or None, got {init_std}")
        self.layer_sizes = sizes
        self.linear_code = bool(linear_code)
        pairs = list(itertools.pairwise(sizes))
        self.encoder = nn.ModuleList(_linear(a, b) for a, b in pairs)
        self.decoder = nn.ModuleList(_linear(b, a) for a, b in reversed(pairs))
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
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
        """``squared_error`` on validated input, in batches, without gradients."""
        x = self.check_input(x)
        return torch.cat(
            [self.squared_error(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The codes of ``x`` (validated), shape (batch, code_size)."""
        return self.encode(self.check_input(x))

    # ----- pretraining --------------------------------------------------------------------------
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

    def pretrain(
        self,
        x: torch.Tensor,
        epochs: int = 50,
        lr: float = 0.1,
        code_lr: float = 0.001,
        batch_size: int = 100,
        method: Literal["cd", "pcd"] = "cd",
        weight_decay: float = 2e-4,
        seed: int = 0,
        progress: bool = True,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> list[Any]:
        """Greedy RBM pretraining with the paper's settings (CD-1, SGD with momentum 0.5 then
        0.9 after 5 epochs, weight decay 2e-4 on W, lr 0.1, and ``code_lr`` for the linear code
        layer), then ``init_from_rbms``. Returns the per-layer ``TrainResult``s."""
        from ..objectives.contrastive import ContrastiveDivergence
        from ..training import TrainConfig

        x = self.check_input(x)
        rbms = self.rbm_stack(seed=seed)
        objectives: list[Objective] = [
            GaussianHiddenCD()
            if isinstance(rbm, GaussianHiddenRBM)
            else ContrastiveDivergence(method=method, binary_data=False, seed=seed + i)
            for i, rbm in enumerate(rbms)
        ]
        configs = [
            TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                lr=code_lr if isinstance(rbm, GaussianHiddenRBM) else lr,
                optimizer="sgd",
                momentum=0.9,
                initial_momentum=0.5,
                momentum_warmup_epochs=5,
                weight_decay=weight_decay,
                seed=seed + i,
                device=str(x.device),
                progress=progress,
            )
            for i, rbm in enumerate(rbms)
        ]
        results = fit_greedy(rbms, x, configs, objectives, "probabilities", out_dir, seed)
        self.to(x.device)
        self.init_from_rbms(rbms)
        return results


class ReconstructionObjective(Objective):
    """Fine-tuning loss of a ``DeepAutoencoder``, with optional RBM pretraining in ``setup``.

    ``setup`` (called by the training loop once, before the first step of a fresh run; never on
    resume, when the checkpoint already holds the pretrained weights) runs
    ``DeepAutoencoder.pretrain`` when ``pretrain_epochs`` > 0; with 0 the network starts from its
    random initialisation.

    Args:
        loss: "cross_entropy" (logistic outputs, the paper's choice for MNIST) or
            "squared_error", summed over pixels and averaged over the minibatch.
        pretrain_epochs: epochs per RBM (0: no pretraining).
        pretrain_lr, pretrain_code_lr, pretrain_batch_size, pretrain_method: RBM settings.
        seed: seeds the pretraining.
        progress: progress bars during pretraining.
    """

    def __init__(
        self,
        loss: Loss = "cross_entropy",
        pretrain_epochs: int = 0,
        pretrain_lr: float = 0.1,
        pretrain_code_lr: float = 0.001,
        pretrain_batch_size: int = 100,
        pretrain_method: Literal["cd", "pcd"] = "cd",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if loss not in ("cross_entropy", "squared_error"):
            raise ValueError(f"loss: expected 'cross_entropy' or 'squared_error', got {loss!r}")
        if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int):
            raise ValueError(f"pretrain_epochs: expected an integer, got {pretrain_epochs!r}")
        if pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs: expected >= 0, got {pretrain_epochs}")
        self.loss_name = loss
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_code_lr = pretrain_code_lr
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_method = pretrain_method
        self.seed = seed
        self.progress = progress

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        if not isinstance(model, DeepAutoencoder):
            raise TypeError(
                f"model: ReconstructionObjective trains a DeepAutoencoder, got "
                f"{type(model).__name__}"
            )
        x_train = model.check_input(x_train, "x_train")
        if self.pretrain_epochs > 0:
            model.pretrain(
                x_train,
                epochs=self.pretrain_epochs,
                lr=self.pretrain_lr,
                code_lr=self.pretrain_code_lr,
                batch_size=self.pretrain_batch_size,
                method=self.pretrain_method,
                seed=self.seed,
                progress=self.progress,
            )

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, DeepAutoencoder)
        logits = model.decode_logits(model.encode(batch))
        squared = (torch.sigmoid(logits) - batch).square().sum(-1).mean()
        if self.loss_name == "squared_error":
            return squared, {}
        loss = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum") / len(batch)
        return loss, {"squared_error": float(squared.detach())}
