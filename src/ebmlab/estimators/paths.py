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
* Fully visible binary models: f_beta(x) = f_0(x)^(1 - beta) exp(-beta E(x)) from uniform states
  (f_0 = 1) or from a base-rate model of the data, one transition per beta: a sweep of
  ``ebmlab.samplers.Gibbs`` (exact conditionals when the model has them) by default, or any
  binary kernel (the gradient-informed ones of ``ebmlab.samplers.discrete_gradient`` for neural
  energies).

References: Neal, "Annealed importance sampling" (2001); Salakhutdinov & Murray, "On the
quantitative analysis of deep belief networks" (ICML 2008); Salakhutdinov & Hinton, "Deep
Boltzmann machines" (AISTATS 2009).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from ..samplers import Gibbs, Target, UniformSource, bernoulli_draw
from ..samplers.base import ChainState, energy_and_grad, state_spec
from ..samplers.gibbs import energy_conditional_logits
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


#: The midpoint form of ``_hidden_log_ratio`` is used while its worst-case error over all hidden
#: units of one run is below this many nats per step (14,500 steps: at most 1.5e-3 nats in all,
#: against standard errors of 0.01-0.1).
MIDPOINT_TOLERANCE = 1e-7
#: max |sigmoid''(x)| / 24 = 1 / (144 sqrt(3)): the midpoint rule's error constant.
_MIDPOINT_CONSTANT = 1.0 / (144.0 * math.sqrt(3.0))


def _hidden_log_ratio(
    hidden_in: torch.Tensor,
    p_hidden: torch.Tensor | None,
    beta: float,
    beta_prev: float,
    hidden_bound: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_j softplus(beta a_j) - softplus(beta_prev a_j) in float64, from a = ``hidden_in``,
    p_hidden = sigmoid(beta a) and a bound |a_j| <= hidden_bound; ``out``: a scratch tensor of
    a's shape (the step then allocates only the (n_runs,) result).

    The two softplus values are large and nearly equal, so their difference is never taken
    directly in float32. Small steps (most of a long schedule) use the midpoint rule,
    softplus(x1) - softplus(x0) = (x1 - x0) sigmoid((x0 + x1) / 2) + e with
    |e| <= |x1 - x0|^3 max|sigmoid''| / 24, while the bound on the summed e is below
    ``MIDPOINT_TOLERANCE`` (a float32 model only: that is the order of its own rounding of
    the exact form; float64 models keep the exact form): one sigmoid and one product pass.
    Larger steps take
    -log1p(sigmoid(x1) expm1(x0 - x1)), exact and computed by float32 to full relative precision,
    while |x0 - x1| <= 5 (expm1 stays far from -1); larger jumps (very short schedules) take the
    direct difference in float64.
    """
    delta = beta_prev - beta
    jump = abs(delta) * hidden_bound
    small = hidden_in.shape[-1] * _MIDPOINT_CONSTANT * jump**3 <= MIDPOINT_TOLERANCE
    if small and hidden_in.dtype != torch.float64:
        mid = torch.mul(hidden_in, 0.5 * (beta + beta_prev), out=out).sigmoid_()
        return mid.mul_(hidden_in).sum(-1, dtype=torch.float64).mul_(-delta)
    if p_hidden is not None and jump <= 5.0:
        terms = torch.mul(hidden_in, delta, out=out).expm1_()
        return terms.mul_(p_hidden).log1p_().sum(-1, dtype=torch.float64).neg_()
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
    matmuls (v W for the weight and h, h W^T for v: each transition needs both, one after the
    other), one matvec (v (b - b_A)), everything else elementwise in buffers the path keeps
    (``step`` allocates nothing but the (n_runs,) float64 increment). Folding the matvec into
    the first matmul as an extra column of W measured slower (a 501-wide product costs more
    than a 500-wide one and a matvec)."""

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

    def _buffers(self, n_runs: int) -> dict[str, Any]:
        """Scratch tensors for ``n_runs`` runs, made at the first step and reused; the two
        visible buffers alternate, so a step never writes into the state it was given."""
        buffers = self.__dict__.get("_scratch")
        if buffers is None or buffers["n_runs"] != n_runs:
            W = self.W

            def empty(*shape: int) -> torch.Tensor:
                return torch.empty(shape, dtype=W.dtype, device=W.device)

            h = self.c.shape[0]
            buffers = {
                "n_runs": n_runs,
                "hidden_in": empty(n_runs, h),
                "p_hidden": empty(n_runs, h),
                "terms": empty(n_runs, h),
                "h": empty(n_runs, h),
                "bias": empty(W.shape[0]),
                "p_visible": empty(n_runs, W.shape[0]),
                "v": (empty(n_runs, W.shape[0]), empty(n_runs, W.shape[0])),
            }
            self._scratch = buffers
        return buffers

    def step(
        self,
        v: torch.Tensor,
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The increment log f_beta(v) - log f_beta_prev(v) (float64) and, with ``transition``,
        h ~ p_beta(h | v), v' ~ p_beta(v | h). The state returned lives in a buffer of the path
        that the step after next overwrites (``anneal`` keeps only the latest)."""
        buf = self._buffers(v.shape[0])
        hidden_in = torch.addmm(self.c, v, self.W, out=buf["hidden_in"])
        p_hidden = torch.mul(hidden_in, beta, out=buf["p_hidden"]).sigmoid_()
        # float32 is enough for the visible term: it is multiplied by beta - beta_prev
        increment = torch.mv(v, self.bias_gap).to(torch.float64).mul_(beta - beta_prev)
        increment += _hidden_log_ratio(
            hidden_in, p_hidden, beta, beta_prev, self.hidden_bound, out=buf["terms"]
        )
        if transition:
            source = buf.get("source")
            if source is None or source.generator is not generator:
                source = buf["source"] = UniformSource(generator)
            h = source.bernoulli(p_hidden, buf["h"])
            # visible input (1 - beta) b_A + beta (b + W h) = b_A + beta (b - b_A) + beta W h
            bias = torch.add(self.b_base_model, self.bias_gap, alpha=beta, out=buf["bias"])
            p_visible = torch.addmm(bias, h, self.W.T, alpha=beta, out=buf["p_visible"])
            first, second = buf["v"]
            v = source.bernoulli(p_visible.sigmoid_(), second if v is first else first)
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
        source = self.__dict__.get("_source")
        if source is None or source.generator is not generator:
            source = self._source = UniformSource(generator)
        for l in self.odd:
            layers[l] = source.bernoulli(probs[l], torch.empty_like(probs[l]))
        visible_in = self.model.layer_input(layers, 0).mul_(beta).add_(self.b_a, alpha=1.0 - beta)
        p = visible_in.sigmoid_()
        layers[0] = source.bernoulli(p, torch.empty_like(p))
        for l in self.even_hidden:
            p = self.model.layer_input(layers, l).mul_(beta).sigmoid_()
            layers[l] = source.bernoulli(p, torch.empty_like(p))
        return layers


class FullyVisiblePath:
    """f_beta(x) = f_0(x)^(1 - beta) exp(-beta E(x)) for a fully visible binary model, one
    transition of ``kernel`` per intermediate beta (module docstring).

    The base f_0 is uniform (log Z_0 = n log 2) unless ``data`` or ``base_bias`` is given: then it
    is the independent-Bernoulli base-rate model, log f_0(x) = b_A^T u(x) with u(x) =
    (x - lo) / (hi - lo) the 0/1 indicator of the high value and log Z_0 = sum_i softplus(b_A,i)
    (b_A from ``data`` as for the RBM path, ``base_rate_bias``). On images a base at the data
    marginals starts the annealing near the model and needs far fewer betas. ``kernel`` defaults
    to one sweep of ``Gibbs`` (systematic when the model has exact conditionals); any binary
    kernel works, e.g. ``GibbsWithGradients`` or ``DiscreteLangevin`` for a neural energy: it
    moves the path itself, whose ``energy(x) = -log f_beta(x)`` at the current beta (and, when
    the model has them, tempered ``conditional_logits`` plus the base's (1 - beta) b_A,i). A
    kernel that reads the gradient (``uses_gradient``) is handed E and grad E of x_{k-1}, which
    the weight increment needs anyway.
    """

    def __init__(
        self,
        model: Any,
        kernel: Any = None,
        data: torch.Tensor | None = None,
        base_bias: torch.Tensor | None = None,
    ) -> None:
        self.model = model
        self.spins = spin_values(model)
        self.spin_values = self.spins
        self.n_units = int(model.n_units)
        self.device = model_device(model)
        self.b_base: torch.Tensor | None = None
        if data is None and base_bias is None:
            self.log_z_base = self.n_units * math.log(2.0)
        else:
            zeros = torch.zeros(self.n_units, dtype=torch.float64, device=self.device)
            self.b_base = _base_visible_bias(zeros, data, base_bias)
            self.log_z_base = float(F.softplus(self.b_base).sum())
        if kernel is None:
            kernel = Gibbs(scan="systematic" if hasattr(model, "conditional_logits") else "auto")
        self.kernel = kernel
        # the annealed density is over every unit: a model that also sums its hidden units out
        # (a Boltzmann machine's free_energy) is tempered through its full-state energy
        self.target = model.energy if hasattr(model, "free_energy") else model
        self.beta = 1.0

    def sample_base(self, n_runs: int, generator: torch.Generator) -> torch.Tensor:
        if self.b_base is None:
            u = torch.rand(n_runs, self.n_units, generator=generator, device=self.device)
            return torch.where(u < 0.5, self.spins[1], self.spins[0])
        dtype = state_spec(self.model).dtype or torch.get_default_dtype()
        p0 = torch.sigmoid(self.b_base).to(dtype).expand(n_runs, -1)
        lo, hi = self.spins
        return lo + (hi - lo) * bernoulli_draw(p0, generator)

    def from_samples(self, x: Any) -> torch.Tensor:
        """States of every unit (n_runs, n_units) in the model's spin values, on its device (and
        in its dtype when it has one)."""
        dtype = state_spec(self.model).dtype
        return _binary_start(x, self.n_units, self.device, dtype, self.spins)

    def _base_log_f(self, x: torch.Tensor) -> torch.Tensor:
        """log f_0(x) = b_A^T u(x) in x's dtype (0 for the uniform base)."""
        if self.b_base is None:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        lo, hi = self.spins
        return ((x - lo) / (hi - lo)) @ self.b_base.to(x.dtype)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """-log f_beta(x) = beta E(x) - (1 - beta) log f_0(x) at the path's current beta."""
        tempered = Target(self.target, self.beta)(x)
        if self.b_base is None:
            return tempered
        return tempered - (1.0 - self.beta) * self._base_log_f(x)

    def conditional_logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """logit p_beta(x_i = hi | rest): the tempered model's plus (1 - beta) b_A,i."""
        if hasattr(self.model, "conditional_logits"):
            logits = self.beta * self.model.conditional_logits(x, i)
        else:
            logits = energy_conditional_logits(Target(self.target, self.beta), x, i, self.spins)
        if self.b_base is not None:
            logits = logits + (1.0 - self.beta) * self.b_base[i].to(logits.dtype)
        return logits

    def step(
        self,
        x: torch.Tensor,
        beta_prev: float,
        beta: float,
        generator: torch.Generator,
        transition: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        needs_grad = transition and getattr(self.kernel, "uses_gradient", False)
        if needs_grad:
            energy, grad = energy_and_grad(Target(self.target), x)
        else:
            energy, grad = self.model.energy(x), None
        # log f_beta - log f_beta_prev = (beta - beta_prev) (-E(x) - log f_0(x))
        increment = -(beta - beta_prev) * (energy + self._base_log_f(x)).to(torch.float64)
        if transition:
            self.beta = beta
            state = None
            if grad is not None:
                base = self._base_log_f(x)
                state = ChainState(x, beta * energy - (1.0 - beta) * base, beta * grad)
                if self.b_base is not None:
                    lo, hi = self.spins
                    state.grad = state.grad - (1.0 - beta) * (self.b_base / (hi - lo)).to(x.dtype)
            x, _ = self.kernel.step(x, Target(self), generator, state)
        return increment, x


def annealing_path(
    model: Any,
    data: torch.Tensor | None = None,
    base_bias: torch.Tensor | None = None,
    kernel: Any = None,
) -> AnnealingPath:
    """The path AIS takes for ``model``: the model's own (``model.annealing_path(data=...,
    base_bias=...)``) when it has one, else one of this module's, told apart by attributes
    (``ebmlab.estimators.kinds``). ``data`` and ``base_bias`` set the base-rate model of binary
    visible units (Bernoulli RBMs, DBMs) and are ignored by the other paths (a fully visible
    model anneals from uniform states here; ``FullyVisiblePath(model, kernel, data)`` takes a
    base-rate base). ``kernel``: the transition of a fully visible model's path (default: a
    Gibbs sweep)."""
    check_ais_model(model)
    own = getattr(model, "annealing_path", None)
    if callable(own):
        return own(data=data, base_bias=base_bias)
    if is_gaussian_rbm(model):
        return GaussianRBMPath(model)
    if is_bernoulli_rbm(model):
        return BernoulliRBMPath(model, data, base_bias)
    if is_dbm(model):
        return DBMPath(model, data, base_bias)
    return FullyVisiblePath(model, kernel=kernel)


def check_ais_model(model: Any) -> Any:
    """``model`` if AIS has a path for it (its own ``annealing_path``, a Bernoulli or
    Gaussian-Bernoulli RBM, a DBM, a fully visible binary model), else a TypeError naming
    ``model``: checked from attributes alone, before anything is computed."""
    if callable(getattr(model, "annealing_path", None)):
        return model
    if is_rbm(model) and not (is_gaussian_rbm(model) or is_bernoulli_rbm(model)):
        raise TypeError(
            f"model: AIS is implemented for Bernoulli and Gaussian-Bernoulli RBMs, DBMs and fully "
            f"visible binary models; got {type(model).__name__}"
        )
    if not (is_rbm(model) or is_dbm(model) or is_fully_visible(model)):
        raise TypeError(
            f"model: AIS needs a Bernoulli or Gaussian-Bernoulli RBM, a DBM, a fully visible "
            f"binary model (n_units, energy, spin_values) or an annealing_path method; got "
            f"{type(model).__name__}"
        )
    return model
