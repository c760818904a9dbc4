"""Variational objectives for ``ebmlab.models.VAE``: the negative ELBO or the negative IWAE bound.

* ``bound="elbo"`` (Kingma & Welling 2014): loss = -mean_x [ (1/k) sum_i log p(x | z_i)
  - beta KL(q(z|x) || p(z)) ], with the KL in closed form and k reparameterized draws. This is
  the "VAE, k samples" of Burda et al. (2016), Table 1.
* ``bound="iwae"`` (Burda, Grosse & Salakhutdinov 2016): loss = -mean_x log (1/k) sum_i w_i,
  log w_i = log p(x | z_i) + beta (log p(z_i) - log q(z_i | x)). Its reparameterized gradient is
  the importance-weighted average of the per-draw ELBO gradients.

Dynamic binarization (Burda et al. 2016, section 5): with ``dynamic_binarization`` the training
data are grey levels in [0, 1] and every minibatch is binarized afresh, x_d ~ Bernoulli(grey_d),
with the data layer's stochastic binarization (``ebmlab.data.binarize``) and the loop's
generator; so every epoch sees new binary images and the model fits the distribution of the
binarizations rather than one fixed draw of them.

Warm-up (Bowman et al. 2016; Sønderby et al. 2016, "Ladder variational autoencoders"): beta rises
linearly from 0 to 1 over the first ``warmup_epochs`` passes through the training data, so the
decoder learns to use z before the KL term pulls q towards the prior. With beta < 1 the loss is
not a bound on log p(x); the logged ``elbo`` is always the beta = 1 value.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from ..data.binarize import binarize_stochastic
from ..models.vae import VAE, gaussian_kl_to_standard_normal
from ..validation import Boolean, Integral, OneOf, Real, validate
from .base import Objective

BOUNDS = ("elbo", "iwae")


class VariationalBound(Objective):
    """Negative ELBO or negative IWAE-k bound, averaged over the minibatch (nats per example).

    Args:
        bound: ``"elbo"`` or ``"iwae"``.
        k: reparameterized draws per example (ELBO: averaged; IWAE: importance-weighted).
        warmup_epochs: passes over the training data during which beta rises from 0 to 1
            (0: no warm-up).
        init_output_bias: set the decoder's output bias from the training data's marginals in
            ``setup`` (Burda et al.'s initialization).
        dynamic_binarization: the training data are grey levels in [0, 1]; every minibatch is
            binarized afresh by Bernoulli draws (Bernoulli decoder only).

    Metrics: ``elbo`` (beta = 1), ``kl`` (closed form), ``reconstruction`` (E_q log p(x|z)),
    ``iwae`` (with ``bound="iwae"``), ``beta`` (with warm-up).
    """

    @validate(
        bound=OneOf(*BOUNDS),
        k=Integral(1),
        warmup_epochs=Real(0),
        init_output_bias=Boolean(),
        dynamic_binarization=Boolean(),
    )
    def __init__(
        self,
        bound: str = "elbo",
        k: int = 1,
        warmup_epochs: float = 0.0,
        init_output_bias: bool = True,
        dynamic_binarization: bool = False,
    ) -> None:
        super().__init__()
        self.bound = bound
        self.k = k
        self.warmup_epochs = float(warmup_epochs)
        self.init_output_bias = init_output_bias
        self.dynamic_binarization = dynamic_binarization
        # examples seen so far and the training-set size: beta's schedule, saved in checkpoints
        self.register_buffer("examples_seen", torch.zeros((), dtype=torch.float64))
        self.register_buffer("n_train", torch.zeros((), dtype=torch.float64))
        self._last_batch = 0

    def setup(self, model: nn.Module, x_train: torch.Tensor) -> None:
        if not isinstance(model, VAE):
            raise TypeError(f"model: VariationalBound trains a VAE, got {type(model).__name__}")
        if self.dynamic_binarization and model.likelihood != "bernoulli":
            raise ValueError(
                "dynamic_binarization: binarizes the data for a Bernoulli decoder; the model's "
                f"likelihood is {model.likelihood!r}"
            )
        # once here; minibatches are not re-checked
        model.check_data(x_train, "x_train", binary=not self.dynamic_binarization)
        self.n_train.fill_(x_train.shape[0])
        if self.init_output_bias:
            model.set_output_bias(x_train)

    def beta(self) -> float:
        """Weight of the KL (prior-ratio) term: linear from 0 to 1 over the warm-up."""
        if self.warmup_epochs == 0 or float(self.n_train) == 0:
            return 1.0
        return min(1.0, float(self.examples_seen) / (self.warmup_epochs * float(self.n_train)))

    def loss(
        self, model: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, VAE)
        if self.dynamic_binarization:
            batch = binarize_stochastic(batch, generator).to(batch.dtype)
        beta = self.beta()
        draws = model.importance_draws(batch, self.k, generator, check=False)
        reconstruction = draws.log_px_given_z.mean(0)
        kl = gaussian_kl_to_standard_normal(draws.mu, draws.log_var)
        metrics = {
            "elbo": float((reconstruction - kl).mean().detach()),
            "kl": float(kl.mean().detach()),
            "reconstruction": float(reconstruction.mean().detach()),
        }
        if self.bound == "elbo":
            loss = -(reconstruction - beta * kl).mean()
        else:
            log_w = draws.log_px_given_z + beta * draws.log_prior_ratio
            iwae = torch.logsumexp(log_w, 0) - math.log(self.k)
            loss = -iwae.mean()
            unannealed = torch.logsumexp(draws.log_weights.detach(), 0) - math.log(self.k)
            metrics["iwae"] = float(unannealed.mean())
        if self.warmup_epochs:
            metrics["beta"] = beta
        self._last_batch = batch.shape[0]
        return loss, metrics

    def after_step(self, model: nn.Module, step: int) -> None:
        # under data parallelism every process sees a slice of the global minibatch
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.examples_seen += self._last_batch * world
