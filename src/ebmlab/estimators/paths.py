"""Annealing paths for AIS: from a base model with a known normalizer to the model (beta = 1).

A path is a family of unnormalized densities f_beta, 0 <= beta <= 1, with f_0 the base model
(exact ``log_z_base``, exact samples from ``sample_base``) and f_1 the model. For one step
beta_prev -> beta of the schedule, ``step`` returns the log-weight increment
log f_beta(x) - log f_beta_prev(x) of every run (float64) and, when ``transition`` is set, the
state after one Markov transition that leaves f_beta invariant; both come out of one pass, so an
RBM's hidden pre-activations serve the weight and the Gibbs draw. ``ebmlab.estimators.ais`` runs
one loop over any such path.

Paths here (``annealing_path`` picks one; a model with an ``annealing_path(data, base_bias)``
method supplies its own, and that method is asked first):

* Bernoulli RBMs (Salakhutdinov & Murray 2008):
  f_beta(v) = exp((1 - beta) b_A^T v + beta b^T v) prod_j (1 + exp(beta (c_j + v^T W_j))), from
  the base-rate model A (W = 0, c = 0, b_A = logit of the smoothed data marginal, or the RBM's own
  visible biases without data; log Z_A = sum_i softplus(b_A,i) + H log 2). Transition: h ~
  p_beta(h | v), then v ~ p_beta(v | h) with visible logits (1 - beta) b_A + beta (b + W h). The
  top RBM of a deep belief net is such an RBM.
* Gaussian-Bernoulli RBMs: f_beta(v) = exp(-sum_i (v_i - b_i)^2 / (2 sigma_i^2)) prod_j
  (1 + exp(beta a_j(v))), a_j = c_j + (v / sigma^2)^T W_j; beta = 0 is N(b, sigma^2) times 2^H.
  Transition: h_j ~ sigmoid(beta a_j), v ~ N(b + beta W h, sigma^2).
* Deep Boltzmann machines (Salakhutdinov & Hinton 2009, section 4), the odd layers summed out,
  the state being the even layers x = (v, h_2, ...):
  log f_beta(x) = (1 - beta) b_A^T v + beta (b_0^T v + sum_{l even > 0} b_l^T h_l)
  + sum_{l odd} sum_j softplus(beta a_lj), a_l = b_l + W_{l-1}^T h_{l-1} + W_l h_{l+1}; at
  beta = 0 v follows the base-rate model and every hidden unit is uniform. Transition: one Gibbs
  sweep of the tempered model (odd layers given the even ones, then the even ones).
* Fully visible binary models: f_beta(x) = exp(-beta E(x)) from uniform states, one Gibbs sweep
  of ``ebmlab.samplers.Gibbs`` at each beta (exact conditionals when the model has them).

References: Neal, "Annealed importance sampling" (2001); Salakhutdinov & Murray, "On the
quantitative analysis of deep belief networks" (ICML 2008); Salakhutdinov & Hinton, "Deep
Boltzmann machines" (AISTATS 2009).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from ..samplers import Gibbs, Target, bernoulli_draw
from ..samplers.base import state_spec
from ..validation import as_tensor, check_nonempty, check_spin_values
from .inputs import check_base_rate_data, check_data
from .kinds import (
    is_bernoulli_rbm,
    is_dbm,
    is_fully_visible,
    is_gaussian_rbm,
    is_rbm,
    model_device,
    spin_values,
)


class AnnealingPath(Protocol):
    """f_0 (the base model) -> f_1 (the model); see the module docstring."""

    #: log Z of the base model f_0, exactly.
    log_z_base: float

    def sample_base(self, n_runs: int, generator: torch.Generator) -> Any:
        """``n_runs`` exact samples of f_0 (the state of forward AIS at beta = 0)."""
        ...

    def from_samples(self, x: Any) -> Any:
        """The state of reverse AIS at beta = 1 from samples of the model (one run per row)."""
        ...

    def step(
        self, x: Any, beta_prev: float, beta: float, generator: torch.Generator, transition: bool
    ) -> tuple[torch.Tensor, Any]:
        """(log f_beta(x) - log f_beta_prev(x) per run in float64, the state after one
        transition leaving f_beta invariant when ``transition``, else ``x``)."""
        ...


# ----- base-rate model ---------------------------------------------------------------------------
#: Salakhutdinov & Murray's smoothing of the base rates: pseudo-counts per batch of 100 examples.
PSEUDOCOUNT = 5.0


def base_rate_bias(
    data: torch.Tensor, n_batches: int | None = None, pseudocount: float = PSEUDOCOUNT
) -> torch.Tensor:
    """Visible biases of the base-rate model: logit of the smoothed data marginal,
    p = (on-count + pseudocount * n_batches) / (N + pseudocount * n_batches)
    (Salakhutdinov & Murray's code; n_batches defaults to N / 100, their batch size)."""
    return _base_rate_bias(check_base_rate_data(data), n_batches, pseudocount)


def _base_rate_bias(data: torch.Tensor, n_batches: int | None, pseudocount: float) -> torch.Tensor:
    """``base_rate_bias`` of checked data."""
    n = data.shape[0]
    n_batches = n_batches or max(1, math.ceil(n / 100))
    extra = pseudocount * n_batches
    p = (data.to(torch.float64).sum(0) + extra) / (n + extra)
    # a unit on in every example would get p = 1 and an infinite bias: keep it finite
    p = p.clamp(1e-6, 1.0 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


def _base_visible_bias(
    own_bias: torch.Tensor, data: torch.Tensor | None, base_bias: torch.Tensor | None
) -> torch.Tensor:
    """b_A in float64: ``base_bias``, else the base rate of ``data``, else the model's own visible
    biases (then only the weights and the hidden biases are annealed)."""
    n_visible, device = own_bias.shape[0], own_bias.device
    if base_bias is not None:
        b_base = torch.as_tensor(base_bias, dtype=torch.float64, device=device).flatten()
    elif data is not None:
        checked = check_base_rate_data(data, n_visible)
        b_base = _base_rate_bias(checked, None, PSEUDOCOUNT).to(device)
    else:
        b_base = own_bias.detach().to(torch.float64)
    if b_base.shape != (n_visible,) or not torch.isfinite(b_base).all():
        raise ValueError(f"base_bias: expected {n_visible} finite visible biases")
    return b_base


def _base_rate_log_z(b_base: torch.Tensor, n_hidden: int) -> float:
    """log Z_A = sum_i softplus(b_A,i) + n_hidden log 2 (independent visibles, uniform hiddens)."""
    return float(F.softplus(b_base).sum()) + n_hidden * math.log(2.0)


def _hidden_log_ratio(
    hidden_in: torch.Tensor,
    p_hidden: torch.Tensor | None,
    beta: float,
    beta_prev: float,
    hidden_bound: float,
) -> torch.Tensor:
    """sum_j softplus(beta a_j) - softplus(beta_prev a_j) in float64, from a = ``hidden_in``,
    p_hidden = sigmoid(beta a) and a bound |a_j| <= hidden_bound.

    The two softplus values are large and nearly equal, so their difference is taken in a form
    that float32 computes to full relative precision:
    softplus(x1) - softplus(x0) = -log1p(sigmoid(x1) expm1(x0 - x1)). It is used while
    |x0 - x1| <= 5 (expm1 stays far from -1); larger jumps (very short schedules) take the
    direct difference in float64.
    """
    delta = beta_prev - beta
    if p_hidden is not None and abs(delta) * hidden_bound <= 5.0:
        return -torch.log1p(p_hidden * torch.expm1(delta * hidden_in)).sum(-1, dtype=torch.float64)
    hidden64 = hidden_in.to(torch.float64)
    return (F.softplus(beta * hidden64) - F.softplus(beta_prev * hidden64)).sum(-1)


def _binary_start(
    x: Any,
    n_units: int,
    device: torch.device,
    dtype: torch.dtype | None,
    spins: tuple[float, float] = (0.0, 1.0),
    name: str = "v_init",
) -> torch.Tensor:
    """Binary states (n_runs, n_units), n_runs >= 1, in ``spins``, as a floating tensor on
    ``device`` (in ``dtype`` when given)."""
    x = as_tensor(x, name, dim=2, n_features=n_units, device=device, dtype=dtype)
    return check_spin_values(check_nonempty(x, name), name, spins)


# ----- paths -------------------------------------------------------------------------------------
class _VisibleStart:
    """Reverse AIS of an RBM starts from visible vectors, checked by the model when it can
    (``inputs.check_data``: binary for a Bernoulli RBM, finite for a Gaussian one)."""

    model: Any

    def from_samples(self, x: Any) -> torch.Tensor:
        return check_data(self.model, x, "v_init")


class BernoulliRBMPath(_VisibleStart):
    """Salakhutdinov & Murray's path for a Bernoulli RBM (module docstring). Per step: two
    matmuls (v W for the weight and h, h W^T for v), everything else elementwise."""

    def __init__(
        self, model: Any, data: torch.Tensor | None = None, base_bias: torch.Tensor | None = None
    ) -> None:
        self.model = model
        self.W, self.b, self.c = model.W.detach(), model.b.detach(), model.c.detach()
        self.b_base = _base_visible_bias(self.b, data, base_bias)
        self.log_z_base = _base_rate_log_z(self.b_base, model.n_hidden)
        self.b_base_model = self.b_base.to(self.W.dtype)
        # log f_beta - log f_beta_prev has (beta - beta_prev) v^T (b - b_A)
        self.bias_gap = self.b - self.b_base_model
        # |c_j + v^T W_j| <= |c_j| + sum_i |W_ij| for binary v: decides the form of the hidden term
        self.hidden_bound = float((self.c.abs() + self.W.abs().sum(0)).max())

    def sample_base(self, n_runs: int, generator: torch.Generator) -> torch.Tensor:
        p0 = torch.sigmoid(self.b_base).to(self.W.dtype).expand(n_runs, -1)
        return bernoulli_draw(p0, generator)

    def step(
        self,
        v: torch.Tensor,
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_in = torch.addmm(self.c, v, self.W)
        p_hidden = torch.sigmoid(beta * hidden_in)
        # float32 is enough for the visible term: it is multiplied by beta - beta_prev
        increment = (beta - beta_prev) * (v @ self.bias_gap).to(torch.float64)
        increment += _hidden_log_ratio(hidden_in, p_hidden, beta, beta_prev, self.hidden_bound)
        if transition:
            h = bernoulli_draw(p_hidden, generator)
            visible_in = torch.addmm(self.b, h, self.W.T).mul_(beta)
            visible_in.add_(self.b_base_model, alpha=1.0 - beta)
            v = bernoulli_draw(torch.sigmoid(visible_in), generator)
        return increment, v


class GaussianRBMPath(_VisibleStart):
    """From N(b, diag sigma^2) x uniform hidden units to a Gaussian-Bernoulli RBM (module
    docstring). The hidden inputs of Gaussian visibles are unbounded, so the softplus differences
    are taken in float64 directly."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.W, self.b, self.c = model.W.detach(), model.b.detach(), model.c.detach()
        self.precision, self.sigma = model.precision().detach(), model.sigma().detach()
        log_sigma = self.sigma.log().to(torch.float64)
        # log Z_0: the Gaussian normalizer times 2^H (hidden biases annealed too)
        self.log_z_base = float((log_sigma + 0.5 * math.log(2 * math.pi)).sum()) + (
            model.n_hidden * math.log(2.0)
        )

    def _gaussian(self, mean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.sigma * noise

    def sample_base(self, n_runs: int, generator: torch.Generator) -> torch.Tensor:
        return self._gaussian(self.b.expand(n_runs, -1), generator)

    def step(
        self,
        v: torch.Tensor,
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_in = torch.addmm(self.c, v * self.precision, self.W)
        increment = _hidden_log_ratio(hidden_in, None, beta, beta_prev, math.inf)
        if transition:
            h = bernoulli_draw(torch.sigmoid(beta * hidden_in), generator)
            v = self._gaussian(torch.addmm(self.b, h, self.W.T, alpha=beta), generator)
        return increment, v


def _odd_input_bound(W: list[torch.Tensor], b: list[torch.Tensor], l: int) -> float:
    """max_j |a_lj| over binary neighbours: |b_lj| + sum_i |W_{l-1,ij}| + sum_m |W_{l,jm}|."""
    bound = b[l].abs() + W[l - 1].abs().sum(0)
    if l < len(W):
        bound = bound + W[l].abs().sum(1)
    return float(bound.max())


class DBMPath:
    """A DBM with its odd layers summed out (module docstring); the state is the list of layers,
    of which only the even ones carry information between steps."""

    def __init__(
        self, model: Any, data: torch.Tensor | None = None, base_bias: torch.Tensor | None = None
    ) -> None:
        self.model = model
        W = [w.detach() for w in model.weights]
        self.b = [b.detach() for b in model.biases]
        L = len(W)
        self.odd, self.even_hidden = list(range(1, L + 1, 2)), list(range(2, L + 1, 2))
        self.b_base = _base_visible_bias(self.b[0], data, base_bias)
        self.log_z_base = _base_rate_log_z(self.b_base, sum(model.layer_sizes[1:]))
        self.b_a = self.b_base.to(W[0].dtype)
        # log f_beta - log f_beta_prev has (beta - beta_prev) v^T (b_0 - b_A)
        self.bias_gap = self.b[0] - self.b_a
        self.bounds = {l: _odd_input_bound(W, self.b, l) for l in self.odd}

    def sample_base(self, n_runs: int, generator: torch.Generator) -> list[torch.Tensor]:
        v = bernoulli_draw(torch.sigmoid(self.b_a).expand(n_runs, -1), generator)
        layers = [v]
        for size in self.model.layer_sizes[1:]:  # uniform hidden units
            layers.append(bernoulli_draw(v.new_full((n_runs, size), 0.5), generator))
        return layers

    def from_samples(self, x: Any) -> list[torch.Tensor]:
        """Every layer of each run, concatenated (n_runs, sum of layer sizes) or as a list; with
        one hidden layer (odd, summed out) the visible units alone are the whole state."""
        sizes = self.model.layer_sizes
        if isinstance(x, list | tuple):
            x = torch.cat([torch.as_tensor(h) for h in x], 1)
        x = torch.as_tensor(x)
        if len(sizes) == 2 and x.dim() == 2 and x.shape[1] == sizes[0]:
            x = torch.cat([x, x.new_zeros(x.shape[0], sizes[1])], 1)
        states = _binary_start(x, sum(sizes), self.b_a.device, self.b_a.dtype)
        return list(torch.split(states, sizes, dim=1))

    def step(
        self,
        layers: list[torch.Tensor],
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        linear = layers[0] @ self.bias_gap
        for l in self.even_hidden:
            linear = linear + layers[l] @ self.b[l]
        # float32 is enough for the linear term: it is multiplied by beta - beta_prev
        increment = (beta - beta_prev) * linear.to(torch.float64)
        probs = {}
        for l in self.odd:
            a = self.model.layer_input(layers, l)
            probs[l] = torch.sigmoid(beta * a)
            increment += _hidden_log_ratio(a, probs[l], beta, beta_prev, self.bounds[l])
        if transition:
            layers = self._sweep(layers, probs, beta, generator)
        return increment, layers

    def _sweep(
        self,
        layers: list[torch.Tensor],
        probs: dict[int, torch.Tensor],
        beta: float,
        generator: torch.Generator,
    ) -> list[torch.Tensor]:
        """One Gibbs sweep of f_beta: odd layers (their probabilities already computed), then v
        with the base rate mixed in, then the even hidden layers."""
        layers = list(layers)
        for l in self.odd:
            layers[l] = bernoulli_draw(probs[l], generator)
        visible_in = self.model.layer_input(layers, 0).mul_(beta).add_(self.b_a, alpha=1.0 - beta)
        layers[0] = bernoulli_draw(torch.sigmoid(visible_in), generator)
        for l in self.even_hidden:
            a = self.model.layer_input(layers, l)
            layers[l] = bernoulli_draw(torch.sigmoid(beta * a), generator)
        return layers


class FullyVisiblePath:
    """exp(-beta E(x)) from uniform states, one Gibbs sweep per intermediate beta."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.spins = spin_values(model)
        self.n_units = int(model.n_units)
        self.log_z_base = self.n_units * math.log(2.0)
        self.kernel = Gibbs(scan="systematic" if hasattr(model, "conditional_logits") else "auto")
        # the annealed density is over every unit: a model that also sums its hidden units out
        # (a Boltzmann machine's free_energy) is tempered through its full-state energy
        self.target = model.energy if hasattr(model, "free_energy") else model
        self.device = model_device(model)

    def sample_base(self, n_runs: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(n_runs, self.n_units, generator=generator, device=self.device)
        return torch.where(u < 0.5, self.spins[1], self.spins[0])

    def from_samples(self, x: Any) -> torch.Tensor:
        """States of every unit (n_runs, n_units) in the model's spin values, on its device (and
        in its dtype when it has one)."""
        dtype = state_spec(self.model).dtype
        return _binary_start(x, self.n_units, self.device, dtype, self.spins)

    def step(
        self,
        x: torch.Tensor,
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        increment = -(beta - beta_prev) * self.model.energy(x).to(torch.float64)
        if transition:
            x, _ = self.kernel.step(x, Target(self.target, beta), generator)
        return increment, x


def annealing_path(
    model: Any, data: torch.Tensor | None = None, base_bias: torch.Tensor | None = None
) -> AnnealingPath:
    """The path AIS takes for ``model``: the model's own (``model.annealing_path(data=...,
    base_bias=...)``) when it has one, else one of this module's, told apart by attributes
    (``ebmlab.estimators.kinds``). ``data`` and ``base_bias`` set the base-rate model of binary
    visible units (Bernoulli RBMs, DBMs) and are ignored by the other paths."""
    own = getattr(model, "annealing_path", None)
    if callable(own):
        return own(data=data, base_bias=base_bias)
    if is_gaussian_rbm(model):
        return GaussianRBMPath(model)
    if is_bernoulli_rbm(model):
        return BernoulliRBMPath(model, data, base_bias)
    if is_rbm(model):
        raise TypeError(
            f"model: AIS is implemented for Bernoulli and Gaussian-Bernoulli RBMs, DBMs and fully "
            f"visible binary models; got {type(model).__name__}"
        )
    if is_dbm(model):
        return DBMPath(model, data, base_bias)
    if is_fully_visible(model):
        return FullyVisiblePath(model)
    raise TypeError(
        f"model: AIS needs a Bernoulli or Gaussian-Bernoulli RBM, a DBM, a fully visible binary "
        f"model (n_units, energy, spin_values) or an annealing_path method; got "
        f"{type(model).__name__}"
    )
