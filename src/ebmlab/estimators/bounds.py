"""Per-example log-likelihoods and bounds on them, in nats, computed in chunks of examples.

* ``exact_log_likelihoods``: log p(x) of models with an exact ``log_prob`` (autoregressive
  models, flows), method "exact".
* ``dequantized_log_likelihoods``: E_u[log p((x_int + u) / K)] - D log K, a Jensen lower bound on
  the discrete log-likelihood of a density model of dequantized images, ``n_samples`` draws of
  u ~ U[0, 1)^D (Theis, van den Oord & Bethge 2016), method "dequantized".
* ``variational_bounds``: a DBM's mean-field bound log p(v) >= -F_q(v) - log Z (Salakhutdinov &
  Hinton 2009), method "ais-lower-bound" with an AIS log Z.
* ``importance_log_p``: a DBM's importance-weighted bound. With the odd layers summed out,
  p(v) Z = sum_{even h} exp(-F_even(v, h)), estimated with K samples of the even hidden layers
  from the mean-field q; E[log mean_s w_s] <= log p(v) (Jensen), and with K = 1 it is already at
  least the mean-field bound in expectation (the odd layers are exact).

References: Salakhutdinov & Hinton, "Deep Boltzmann machines" (AISTATS 2009); Burda, Grosse &
Salakhutdinov, "Importance weighted autoencoders" (ICLR 2016); Theis, van den Oord & Bethge, "A
note on the evaluation of generative models" (ICLR 2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

from ..samplers import bernoulli_draw
from ..validation import check_nonempty, check_positive_int
from .inputs import check_data

#: Examples per forward pass (bounds the memory of 28 x 28 image models).
EVAL_CHUNK = 500


@torch.no_grad()
def per_example(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = EVAL_CHUNK
) -> torch.Tensor:
    """``fn`` applied to ``x`` (at least one row) in chunks of ``chunk`` rows, the results
    concatenated."""
    check_positive_int(chunk, "chunk")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    check_nonempty(x, "x")
    return torch.cat([fn(part) for part in x.split(chunk)])


def exact_log_likelihoods(model: Any, x: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """log p(x) per example (nats), from the model's exact ``log_prob``; ``x`` is checked first
    (``inputs.check_data``), and the model's ``log_prob`` checks what is particular to it."""
    return per_example(model.log_prob, check_data(model, x, "x"), chunk)


def dequantized_log_likelihoods(
    model: Any,
    x: torch.Tensor,
    generator: torch.Generator,
    n_samples: int = 1,
    chunk: int = EVAL_CHUNK,
) -> torch.Tensor:
    """Per-image bound E_u[log p((x_int + u) / K)] - D log K (nats), ``n_samples`` draws of u,
    from the model's ``discrete_log_likelihood_bound`` (which checks the K-level grid); ``x`` is
    checked first (``inputs.check_data``)."""
    check_positive_int(n_samples, "n_samples")
    x = check_data(model, x, "x")
    return per_example(
        lambda part: model.discrete_log_likelihood_bound(part, generator, n_samples), x, chunk
    )


def variational_bounds(
    model: Any, x: torch.Tensor, log_z: float, n_iters: int = 50, chunk: int = 1000
) -> torch.Tensor:
    """A DBM's mean-field bound -F_q(v) - log Z per example (float64); ``x`` is checked first
    (``inputs.check_data``: binary rows of the visible width)."""
    x = check_data(model, x, "x")
    return per_example(lambda part: model.variational_bound(part, log_z, n_iters=n_iters), x, chunk)


@torch.no_grad()
def importance_log_p(
    model: Any,
    v: torch.Tensor,
    log_z: float,
    n_samples: int = 100,
    generator: torch.Generator | None = None,
    n_iters: int = 50,
    tol: float = 1e-6,
) -> torch.Tensor:
    """log p_hat(v) = log mean_s exp(-F_even(v, h_s) - log q(h_s)) - log Z per example
    (float64) for a DBM, h_s the even hidden layers drawn from the mean-field q(h | v): a
    stochastic lower bound on log p(v) (Jensen), at least the mean-field bound in expectation."""
    v = check_data(model, v, "v")
    check_positive_int(n_samples, "n_samples")
    means, logits = model.mean_field_logits(v, n_iters, tol)
    even = list(range(2, model.n_layers + 1, 2))
    visible_input = v @ model.weights[0]  # computed once for all samples
    log_w = []
    for _ in range(n_samples):
        layers: list[Any] = [v] + [None] * model.n_layers
        log_q = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
        for l in even:
            h = bernoulli_draw(means[l - 1], generator)
            layers[l] = h
            # log q(h) = sum_j h_j log mu_j + (1 - h_j) log(1 - mu_j), from the logits
            a = logits[l - 1]
            log_q += (h * a - F.softplus(a)).sum(-1).to(torch.float64)
        log_w.append(-model.free_energy_even(layers, visible_input).to(torch.float64) - log_q)
    return torch.logsumexp(torch.stack(log_w), 0) - math.log(n_samples) - float(log_z)
