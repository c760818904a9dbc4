"""Noise contrastive estimation: learn an energy (and its log Z) by telling data from noise.

NCE (Gutmann & Hyvarinen 2010). With a noise density q that can be sampled and evaluated, nu
noise samples per data point, and the model log p(x) = -E(x) - c where c (an estimate of log Z)
is a learned parameter, the classifier with logit

    G(x) = log p(x) - log q(x) - log nu

has the form of the Bayes-optimal data-vs-noise discriminator (lecture 003). Maximizing

    V = E_data[log sigmoid(G(x))] + nu E_q[log sigmoid(-G(y))]

is consistent: at the optimum p = p_data, and c is the true log Z (the model self-normalizes).
``NoiseContrastiveEstimation`` uses a fixed Gaussian noise fitted to the data's mean and
covariance in ``setup``; ``c`` is ``log_z``, a parameter of the objective (checkpointed with it).

Flow contrastive estimation (Gao, Nijkamp, Kingma, Xu, Dai & Wu 2020). The better q matches the
data, the more informative the classification; FCE makes q a normalizing flow trained adversarially:
the EBM maximizes V, the flow minimizes it (it seeks the noise the EBM finds hardest to reject, and
so moves toward the data). How this fits the one training loop (``ebmlab.training.train``, one loss,
one optimizer): a gradient-reversal layer. Every flow-dependent tensor in V (log q at the data, the
reparameterized flow samples y = f^-1(z) and their log q) passes through ``reverse_gradient``
(identity forward, -grad backward), so one backward pass of loss = -V gives the EBM and c the
gradient of -V and the flow the gradient of +V: simultaneous gradient descent-ascent. The flow's
parameters are a separate optimizer group (its own learning rate ``flow_lr_ratio`` x lr, no weight
decay), so its optimizer state, the lr schedule, gradient clipping, data parallelism and checkpoints
all come from the loop. ``setup`` first fits the flow to the data by a few maximum-likelihood steps
(``flow_pretrain_steps``; deterministic, seeded), so that the contrast is informative from the
start. Gao et al. alternate the two updates and pick which to update from the classification
accuracy; simultaneous updates with a slower flow (``flow_lr_ratio`` < 1) are the simpler variant
used here.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..models.flows import RealNVP
from ..validation import Integral, Real, validate
from .base import model_param_group
from .guards import StepCounter, check_energy

#: |E| above which an NCE run is declared diverged.
DEFAULT_ENERGY_BOUND = 1e6


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    """Identity whose backward pass negates the gradient (Ganin & Lempitsky 2015)."""
    return _ReverseGradient.apply(x)


def nce_value(
    log_p_data: torch.Tensor,
    log_q_data: torch.Tensor,
    log_p_noise: torch.Tensor,
    log_q_noise: torch.Tensor,
    noise_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V = mean log sigmoid(G(x)) + nu mean log sigmoid(-G(y)), G = log p - log q - log nu;
    also returns the classification accuracy (data with G > 0, noise with G < 0)."""
    log_nu = math.log(noise_ratio)
    logit_data = log_p_data - log_q_data - log_nu
    logit_noise = log_p_noise - log_q_noise - log_nu
    value = F.logsigmoid(logit_data).mean() + noise_ratio * F.logsigmoid(-logit_noise).mean()
    with torch.no_grad():
        correct = (logit_data > 0).sum() + (logit_noise < 0).sum()
        accuracy = correct / (logit_data.numel() + logit_noise.numel())
    return value, accuracy


def _n_noise(batch_size: int, noise_ratio: float) -> int:
    return max(1, round(noise_ratio * batch_size))


#: noise samples per data point
NOISE_RATIO = Real(0, closed="neither", description="a positive number of noise samples per point")


def _contrast_param_groups(
    model: nn.Module, log_z: nn.Parameter, lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """The model's group and log Z's (never decayed: it is an offset, not a weight)."""
    return [
        model_param_group(model, lr, weight_decay),
        {"params": [log_z], "lr": lr, "weight_decay": 0.0},
    ]


class NoiseContrastiveEstimation(StepCounter):
    """NCE against a Gaussian fitted to the data (mean and full covariance).

    Args:
        noise_ratio: nu, noise samples per data point.
        noise_inflation: the noise covariance is the data covariance times this factor (a wider
            noise covers the tails of the data).
        energy_bound: |E| beyond which training is declared diverged.

    The loss is logistic, so a loss above ``loss_bound`` = 1e4 (logits of that size) stops the
    run as diverged.
    """

    requires: ClassVar[str | None] = "energy"

    loss_bound = 1e4

    @validate(noise_ratio=NOISE_RATIO, noise_inflation=Real(0, closed="neither"))
    def __init__(
        self,
        noise_ratio: float = 4.0,
        noise_inflation: float = 1.0,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
    ) -> None:
        super().__init__()
        self.noise_ratio = float(noise_ratio)
        self.noise_inflation = float(noise_inflation)
        self.energy_bound = float(energy_bound)
        self.log_z = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_mean", torch.zeros(0))
        self.register_buffer("noise_cholesky", torch.zeros(0))

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Fit the Gaussian noise to the data; start log Z at the log-mean-exp of -E under it
        (the importance-sampling estimate, so the classifier starts near balance)."""
        x = x_train.detach().flatten(1).double()
        mean = x.mean(0)
        centered = x - mean
        cov = centered.T @ centered / max(x.shape[0] - 1, 1) * self.noise_inflation
        # jitter: image pixels that never change have zero variance and would make cov singular
        cov = cov + 1e-4 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self.noise_mean = mean.to(x_train)
        self.noise_cholesky = torch.linalg.cholesky(cov).to(x_train)
        if not self.fresh:  # a restart from a checkpoint keeps the learned log Z
            return
        with torch.no_grad():
            g = torch.Generator(device=x.device).manual_seed(0)
            y = self.sample_noise(1000, g)
            log_w = -model.energy(y) - self.log_noise(y)
            self.log_z.fill_(float(torch.logsumexp(log_w, 0) - math.log(y.shape[0])))

    def sample_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.noise_mean.numel() == 0:
            raise RuntimeError("NoiseContrastiveEstimation.setup(model, x_train) must run first")
        device = generator.device if generator is not None else self.noise_mean.device
        z = torch.randn(
            n,
            self.noise_mean.numel(),
            generator=generator,
            device=device,
            dtype=self.noise_mean.dtype,
        )
        return self.noise_mean + z.to(self.noise_mean.device) @ self.noise_cholesky.T

    def log_noise(self, y: torch.Tensor) -> torch.Tensor:
        """log N(y; mean, L L^T)."""
        diff = (y - self.noise_mean).T
        u = torch.linalg.solve_triangular(self.noise_cholesky, diff, upper=False)
        log_det = torch.log(torch.diagonal(self.noise_cholesky)).sum()
        d = y.shape[1]
        return -0.5 * u.square().sum(0) - log_det - 0.5 * d * math.log(2 * math.pi)

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        return _contrast_param_groups(model, self.log_z, lr, weight_decay)

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch.flatten(1)
        y = self.sample_noise(_n_noise(x.shape[0], self.noise_ratio), generator)
        energy_data, energy_noise = model.energy(x), model.energy(y)
        check_energy(energy_data.detach(), self.energy_bound, self.current_step, "data")
        value, accuracy = nce_value(
            -energy_data - self.log_z,
            self.log_noise(x),
            -energy_noise - self.log_z,
            self.log_noise(y),
            self.noise_ratio,
        )
        return -value, {"accuracy": float(accuracy), "log_z": float(self.log_z.detach())}


class FlowContrastiveEstimation(StepCounter):
    """Flow contrastive estimation (Gao et al. 2020): NCE against a RealNVP noise trained
    adversarially through a gradient-reversal layer (see the module docstring).

    Args:
        dim: data dimension (the flow is built here so that checkpoints can rebuild it).
        noise_ratio: nu, flow samples per data point.
        flow_layers, flow_hidden: the RealNVP noise (couplings, conditioner width).
        flow_lr_ratio: the flow's learning rate as a fraction of the EBM's.
        flow_pretrain_steps: maximum-likelihood steps fitting the flow to the data in ``setup``.
        flow_pretrain_lr: Adam learning rate of that pretraining.
        energy_bound: |E| beyond which training is declared diverged.
        seed: seeds the flow's initialization and pretraining.
    """

    requires: ClassVar[str | None] = "energy"

    @validate(
        noise_ratio=NOISE_RATIO,
        flow_layers=Integral(1),
        flow_hidden=Integral(1),
        flow_lr_ratio=Real(0, closed="neither"),
        flow_pretrain_steps=Integral(0),
        flow_pretrain_lr=Real(0, closed="neither"),
        seed=Integral(),
    )
    def __init__(
        self,
        dim: int,
        noise_ratio: float = 1.0,
        flow_layers: int = 6,
        flow_hidden: int = 64,
        flow_lr_ratio: float = 0.2,
        flow_pretrain_steps: int = 300,
        flow_pretrain_lr: float = 3e-3,
        energy_bound: float = DEFAULT_ENERGY_BOUND,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.noise_ratio = float(noise_ratio)
        self.flow_lr_ratio = float(flow_lr_ratio)
        self.flow_pretrain_steps = flow_pretrain_steps
        self.flow_pretrain_lr = float(flow_pretrain_lr)
        self.energy_bound = float(energy_bound)
        self.seed = int(seed)
        state = torch.random.get_rng_state()
        try:  # a seeded flow initialization without touching the global stream
            torch.manual_seed(self.seed)
            self.flow = RealNVP(dim, n_layers=flow_layers, hidden=flow_hidden)
        finally:
            torch.random.set_rng_state(state)
        self.log_z = nn.Parameter(torch.zeros(()))

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        """Standardize and pretrain the flow on the data by maximum likelihood, then start
        log Z at the importance-sampling estimate under the flow."""
        x = x_train.detach().flatten(1)
        self.flow.to(x.device)
        if not self.fresh:  # a restart from a checkpoint keeps the adversarially trained flow
            return
        self.flow.standardize(x)
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        optimizer = torch.optim.Adam(self.flow.parameters(), lr=self.flow_pretrain_lr)
        batch = min(256, x.shape[0])
        for _ in range(self.flow_pretrain_steps):
            index = torch.randint(0, x.shape[0], (batch,), generator=g).to(x.device)
            optimizer.zero_grad(set_to_none=True)
            (-self.flow.log_prob(x[index]).mean()).backward()
            optimizer.step()
        with torch.no_grad():
            g_device = torch.Generator(device=x.device).manual_seed(self.seed)
            y, log_q = self.flow.sample_and_log_prob(1000, g_device)
            log_w = -model.energy(y) - log_q
            self.log_z.fill_(float(torch.logsumexp(log_w, 0) - math.log(y.shape[0])))

    def param_groups(
        self, model: nn.Module, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        flow = list(self.flow.parameters())
        return [
            *_contrast_param_groups(model, self.log_z, lr, weight_decay),
            {"params": flow, "lr": lr * self.flow_lr_ratio, "weight_decay": 0.0},
        ]

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch.flatten(1)
        n = _n_noise(x.shape[0], self.noise_ratio)
        z = torch.randn(
            n, x.shape[1], generator=generator, device=generator.device, dtype=x.dtype
        ).to(x.device)
        y, inverse_ladj = self.flow.inverse(z)
        log_q_noise = reverse_gradient(
            -0.5 * z.square().sum(-1) - 0.5 * x.shape[1] * math.log(2 * math.pi) - inverse_ladj
        )
        y = reverse_gradient(y)
        log_q_data = reverse_gradient(self.flow.log_prob(x))
        energy_data, energy_noise = model.energy(x), model.energy(y)
        check_energy(energy_data.detach(), self.energy_bound, self.current_step, "data")
        value, accuracy = nce_value(
            -energy_data - self.log_z,
            log_q_data,
            -energy_noise - self.log_z,
            log_q_noise,
            self.noise_ratio,
        )
        return -value, {
            "accuracy": float(accuracy),
            "log_z": float(self.log_z.detach()),
            "flow_nll": float(-log_q_data.detach().mean()),
        }


__all__ = [
    "FlowContrastiveEstimation",
    "NoiseContrastiveEstimation",
    "nce_value",
    "reverse_gradient",
]
