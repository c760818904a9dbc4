"""Training deep Boltzmann machines: variational learning with persistent chains, and the
greedy pretraining of RBMs with tied copies of a layer.

``VariationalPCD`` (Salakhutdinov & Hinton 2009, Algorithm 1). The gradient of the mean-field
lower bound on the log-likelihood is, for each weight matrix and bias,

    dW_l = <mu_l mu_{l+1}^T>_data - <h_l h_{l+1}^T>_model,   db_l = <mu_l>_data - <h_l>_model

(mu_0 = v): the data term takes the mean-field posterior means (``DeepBoltzmannMachine.
mean_field``) in place of the intractable posterior, and the model term comes from persistent
Gibbs chains ("fantasy particles", stochastic approximation = PCD, Tieleman 2008) advanced
``k`` sweeps per update. Each pair of neighbouring layers holds exactly one odd layer, and odd
layers are independent given the even ones, so the model statistics use p(h_odd | h_even) in
place of the sampled odd states (Rao-Blackwellized, same expectation, less noise). The
persistent chains are one buffer (n_chains, all units), so checkpoints carry them and a resumed
run continues the same chains. Gradients are written by hand (one matmul per weight matrix for
both phases) and handed to autograd with ``inject_gradient``.

Centering (Montavon & Mueller 2012; Melchior, Fischer & Wiskott 2016), optional. The centered
energy -sum (h_l - m_l)^T b'_l - sum (h_l - m_l)^T W_l (h_{l+1} - m_{l+1}) is the plain DBM with
b_l = b'_l - W_l m_{l+1} - W_{l-1}^T m_{l-1}. With the offsets m fixed, SGD in centered
coordinates is SGD in plain ones with the gradient

    gW_l = gW_l(plain) - m_l gb_{l+1}^T - gb_l m_{l+1}^T,
    gb_l = gb_l(plain) - gW_l m_{l+1} - gW_{l-1}^T m_{l-1}

(g: loss gradients; the raw bias gradients on the right). The offsets are moving averages
(rate ``offset_rate``) of the data mean (visible) and of the mean-field means (hidden).

``TiedCopiesCD``: greedy pretraining (Salakhutdinov & Hinton 2009, section 3.1). The bottom RBM
is trained with two tied copies of the visible layer, so that p(h | v) = sigmoid(c + 2 W^T v)
(bottom-up input doubled, as the missing top-down input will be replaced by the layer above),
the top RBM with two tied copies of its hidden layer (top-down input doubled), the middle ones
with both. An RBM whose visible layer has r_v tied copies and hidden layer r_h copies is a proper
RBM (energy -b^T s - c^T t - s^T W t with s, t the sums of the copies); its free energy given the
copies' sum s is -b^T s - r_h sum_j softplus(c_j + (s^T W)_j), data clamp every copy to v
(s = r_v v), and CD-k samples each copy independently. ``ebmlab.training.greedy.dbm_stages``
trains them, and ``DeepBoltzmannMachine.init_from_rbms`` composes the trained RBMs into the DBM
(biases of a shared layer averaged: each RBM's bias goes with the doubled input, the DBM's with
half of each).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..models.dbm import DeepBoltzmannMachine, Layers
from ..models.rbm import BernoulliRBM
from ..samplers import bernoulli_draw as bernoulli
from ..validation import Boolean, Integral, OneOf, Real, as_tensor, check_binary, validate
from .base import Objective
from .contrastive import inject_gradient


def copies_for_layer(l: int, n_layers: int) -> tuple[int, int]:
    """(visible copies, hidden copies) of the RBM between layers l and l+1 of an L-layer DBM
    pretrained with tied copies: the bottom RBM doubles its hidden layer, the top one its visible
    layer, the ones between both (each inner layer gets input from two sides in the DBM)."""
    if n_layers == 1:
        return 1, 1
    return (1 if l == n_layers - 1 else 2), (1 if l == 0 else 2)


def _weights_only_decay(
    model: nn.Module, weights: list[nn.Parameter], lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Weight decay on the weight matrices only: biases are not decayed (Hinton's guide)."""
    ids = {id(p) for p in weights}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return [
        {"params": list(weights), "lr": lr, "weight_decay": weight_decay},
        {"params": rest, "lr": lr, "weight_decay": 0.0},
    ]


class VariationalPCD(Objective):
    """Mean-field data term and persistent-chain model term for a ``DeepBoltzmannMachine``.

    Args:
        n_chains: persistent Gibbs chains (fantasy particles; the paper: 100).
        k: Gibbs sweeps of the chains per update (the authors' code: 5).
        mean_field_iters: at most this many mean-field rounds per minibatch.
        mean_field_tol: stop the rounds early once no mean moves by more than this (0: never).
        centering: centered gradient (see the module docstring).
        offset_rate: moving-average rate of the centering offsets.
        init_visible_bias: in ``setup``, set the visible biases from the data marginals.
        binary_data: require binary data (False accepts probabilities in [0, 1]).
        seed: seeds the initial chains in ``setup``.
    """

    @validate(
        n_chains=Integral(1),
        k=Integral(1),
        mean_field_iters=Integral(1),
        mean_field_tol=Real(0),
        centering=Boolean(),
        offset_rate=Real(0, 1),
        init_visible_bias=Boolean(),
        binary_data=Boolean(),
        seed=Integral(),
    )
    def __init__(
        self,
        n_chains: int = 100,
        k: int = 5,
        mean_field_iters: int = 10,
        mean_field_tol: float = 0.0,
        centering: bool = False,
        offset_rate: float = 0.01,
        init_visible_bias: bool = True,
        binary_data: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_chains = n_chains
        self.k = k
        self.mean_field_iters = mean_field_iters
        self.mean_field_tol = float(mean_field_tol)
        self.centering = centering
        self.offset_rate = offset_rate
        self.init_visible_bias = init_visible_bias
        self.binary_data = binary_data
        self.seed = seed
        self.register_buffer("chains", torch.empty(0))  # (n_chains, n_total) all layers
        self.register_buffer("offsets", torch.empty(0))  # (n_total,) centering offsets m

    # ----- setup --------------------------------------------------------------------------------
    @staticmethod
    def _check_model(model: nn.Module) -> DeepBoltzmannMachine:
        if not isinstance(model, DeepBoltzmannMachine):
            raise TypeError(
                f"model: VariationalPCD trains a DeepBoltzmannMachine, got {type(model).__name__}"
            )
        return model

    def check_data(
        self, model: DeepBoltzmannMachine, x: torch.Tensor, name: str = "x_train"
    ) -> torch.Tensor:
        x = model.check_visible(x, name, binary=False)
        if self.binary_data:
            return check_binary(x, name)
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name}: a Bernoulli model needs values in [0, 1]")
        return x

    @torch.no_grad()
    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Validate the data, set the visible biases from the data marginals, start the chains
        (visible units from the data marginal, hidden ones sampled from the recognition pass)
        and the offsets (data mean, then 1/2)."""
        model = self._check_model(model)
        x_train = self.check_data(model, x_train)
        if self.init_visible_bias:
            model.init_visible_from_data(x_train)
        generator = torch.Generator(device=x_train.device).manual_seed(self.seed)
        self._init_state(model, x_train, generator)

    def _init_state(
        self, model: DeepBoltzmannMachine, x: torch.Tensor, generator: torch.Generator
    ) -> None:
        marginal = x.mean(0).expand(self.n_chains, -1).contiguous()
        v = bernoulli(marginal, generator)
        hidden = [bernoulli(mu, generator) for mu in model.recognition(v)]
        self.chains = model.join([v, *hidden])
        offsets = [x.mean(0)] + [torch.full((n,), 0.5).to(x) for n in model.layer_sizes[1:]]
        self.offsets = torch.cat(offsets)

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        return _weights_only_decay(model, list(model.weights), lr, weight_decay)

    # ----- phases -------------------------------------------------------------------------------
    @torch.no_grad()
    def data_states(self, model: DeepBoltzmannMachine, v: torch.Tensor) -> Layers:
        """[v, mu_1, ..., mu_L]: the mean-field posterior means of the minibatch."""
        means = model.mean_field(v, self.mean_field_iters, self.mean_field_tol)
        return [v, *means]

    @torch.no_grad()
    def model_states(
        self, model: DeepBoltzmannMachine, v0: torch.Tensor, generator: torch.Generator
    ) -> Layers:
        """Advance the persistent chains ``k`` sweeps; returns their layers with every odd layer
        replaced by p(h_odd = 1 | even layers) (Rao-Blackwellized statistics)."""
        if self.chains.numel() == 0:  # setup was not called
            self._init_state(model, v0, generator)
        layers = model.sample_states(self.n_chains, self.k, generator, model.split(self.chains))
        self.chains = model.join(layers)
        for l in range(1, model.n_layers + 1, 2):
            layers[l] = torch.sigmoid(model.layer_input(layers, l))
        return layers

    def _update_offsets(self, model: DeepBoltzmannMachine, data: Layers) -> Layers:
        if self.offsets.numel() == 0:
            self.offsets = torch.cat(
                [data[0].mean(0)] + [torch.full_like(b, 0.5) for b in model.biases[1:]]
            )
        means = torch.cat([h.mean(0) for h in data])
        self.offsets.lerp_(means, self.offset_rate)
        return list(torch.split(self.offsets, model.layer_sizes))

    @torch.no_grad()
    def gradients(
        self, model: DeepBoltzmannMachine, data: Layers, negative: Layers
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(loss value, loss gradients in the order [*weights, *biases]) from the data-phase and
        model-phase states of every layer.

        Plain gradients: gW_l = <h_l h_{l+1}^T>_model - <h_l h_{l+1}^T>_data, gb_l likewise;
        the loss value sum_theta theta . g = mean E(data) - mean E(model) (E is linear in the
        parameters). With ``centering`` the gradients are mapped as in the module docstring."""
        n_pos, n_neg = data[0].shape[0], negative[0].shape[0]
        ref = data[0]
        # row weights -1/n_pos (data) and +1/n_neg (chains): each statistic is one weighted sum
        row = torch.cat(
            [
                torch.full((n_pos,), -1.0 / n_pos, dtype=ref.dtype, device=ref.device),
                torch.full((n_neg,), 1.0 / n_neg, dtype=ref.dtype, device=ref.device),
            ]
        )
        stacked = [torch.cat([d, m]) for d, m in zip(data, negative)]
        grad_b = [row @ s for s in stacked]
        grad_w = [stacked[l].T @ (row[:, None] * stacked[l + 1]) for l in range(model.n_layers)]
        value = sum((W * g).sum() for W, g in zip(model.weights, grad_w)) + sum(
            (b * g).sum() for b, g in zip(model.biases, grad_b)
        )
        if self.centering:
            m = self._update_offsets(model, data)
            grad_w = [
                g - torch.outer(m[l], grad_b[l + 1]) - torch.outer(grad_b[l], m[l + 1])
                for l, g in enumerate(grad_w)
            ]
            centered_b = []
            for l, g in enumerate(grad_b):
                if l < model.n_layers:
                    g = g - grad_w[l] @ m[l + 1]
                if l > 0:
                    g = g - grad_w[l - 1].T @ m[l - 1]
                centered_b.append(g)
            grad_b = centered_b
        return value.detach(), [*grad_w, *grad_b]

    # ----- loss ---------------------------------------------------------------------------------
    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        model = self._check_model(model)
        if batch.dim() != 2 or batch.shape[1] != model.n_visible:
            raise ValueError(
                f"batch: expected shape (batch, {model.n_visible}), got {tuple(batch.shape)}"
            )
        data = self.data_states(model, batch)
        negative = self.model_states(model, batch, generator)
        value, grads = self.gradients(model, data, negative)
        params = [*model.weights, *model.biases]
        return inject_gradient(value, params, grads), {}

    @torch.no_grad()
    def negative_samples(self, model: DeepBoltzmannMachine) -> torch.Tensor:
        """The chains' visible states, (n_chains, n_visible) (empty before the first step)."""
        return model.split(self.chains)[0] if self.chains.numel() else self.chains


class TiedCopiesCD(Objective):
    """CD-k for a ``BernoulliRBM`` whose visible layer has ``visible_copies`` tied copies and
    hidden layer ``hidden_copies`` (1 or 2 each): the pretraining modules of a DBM.

    The surrogate loss is mean F(s_data) - mean F(s_neg), s the sum of the visible copies and
    F(s) = -b^T s - r_h sum_j softplus(c_j + (s^T W)_j); data (binary, or probabilities used as
    mean-field states) clamp every visible copy.
    """

    @validate(
        visible_copies=OneOf(1, 2),
        hidden_copies=OneOf(1, 2),
        k=Integral(1),
        init_visible_bias=Boolean(),
    )
    def __init__(
        self,
        visible_copies: int = 2,
        hidden_copies: int = 1,
        k: int = 1,
        init_visible_bias: bool = True,
    ) -> None:
        super().__init__()
        self.visible_copies = visible_copies
        self.hidden_copies = hidden_copies
        self.k = k
        self.init_visible_bias = init_visible_bias

    @staticmethod
    def _check_model(model: nn.Module) -> BernoulliRBM:
        if not isinstance(model, BernoulliRBM):
            raise TypeError(f"model: TiedCopiesCD trains a BernoulliRBM, got {type(model)}")
        return model

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        model = self._check_model(model)
        x = as_tensor(x_train, "x_train", dim=2, n_features=model.n_visible)
        if x.min() < 0 or x.max() > 1:
            raise ValueError("x_train: a Bernoulli model needs values in [0, 1]")
        if self.init_visible_bias:
            model.init_visible_from_data(x.to(model.W))

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        return _weights_only_decay(model, [model.W], lr, weight_decay)

    def free_energy(self, model: BernoulliRBM, s: torch.Tensor) -> torch.Tensor:
        """F(s) = -b^T s - r_h sum_j softplus(c_j + (s^T W)_j), s the sum of the visible copies."""
        return -(s @ model.b) - self.hidden_copies * F.softplus(model.hidden_logits(s)).sum(-1)

    def p_h(self, model: BernoulliRBM, x: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | every visible copy = x) = sigmoid(c + r_v W^T x): the features passed up."""
        return torch.sigmoid(model.hidden_logits(self.visible_copies * x))

    @torch.no_grad()
    def _copies(
        self, logits: torch.Tensor, copies: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Sum of ``copies`` independent Bernoulli(sigmoid(logits)) draws."""
        p = torch.sigmoid(logits)
        total = bernoulli(p, generator)
        for _ in range(copies - 1):
            total = total + bernoulli(p, generator)
        return total

    @torch.no_grad()
    def negative_phase(
        self, model: BernoulliRBM, x: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Sum of the visible copies after k sweeps from the data (hidden copies first)."""
        s = self.visible_copies * x
        for _ in range(self.k):
            t = self._copies(model.hidden_logits(s), self.hidden_copies, generator)
            s = self._copies(model.visible_logits(t), self.visible_copies, generator)
        return s

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        model = self._check_model(model)
        s_neg = self.negative_phase(model, batch, generator)
        s_data = self.visible_copies * batch
        loss = self.free_energy(model, s_data).mean() - self.free_energy(model, s_neg).mean()
        return loss, {}
