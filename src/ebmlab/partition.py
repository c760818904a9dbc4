"""Partition functions and test log-likelihoods: exact enumeration, AIS, reverse AIS.

Exact: ``exact_log_z`` sums exp(-E) over every state with a chunked log-sum-exp in float64:
  * RBMs (models with ``free_energy``, ``free_energy_hidden``, ``n_visible``, ``n_hidden``):
    log Z = logsumexp_v -F(v) = logsumexp_h -F(h), over the smaller layer (<= 25 units);
  * fully visible binary models (``n_units``, ``energy(states)``, ``spin_values`` of (0, 1) or
    (-1, 1)): Ising, Hopfield, Boltzmann machines (with hidden units: ``n_units`` counts all of
    them and ``energy`` takes full states).

AIS (Neal 2001) with the RBM protocol of Salakhutdinov & Murray (2008): intermediate models
f_k(v) = exp((1 - beta_k) b_A^T v + beta_k b_B^T v) prod_j (1 + exp(beta_k (c_j + v^T W_j))),
from the base-rate model A (W = 0, c = 0, b_A = logit of the smoothed data marginal, or the
RBM's own visible biases when no data is given; its
normalizer log Z_A = sum_i softplus(b_A,i) + H log 2 is closed form) to the RBM B (beta = 1),
with one block-Gibbs transition per beta leaving f_k invariant (h ~ p_k(h | v), then
v ~ p_k(v | h) with visible logits (1 - beta_k) b_A + beta_k (b_B + W h)). Each run's log
weight sum_k [log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})] is accumulated in float64; all runs are
one batch. The default schedule is theirs: beta from 0 to 0.5 in steps of 1e-3, 0.5 to 0.9 in
steps of 1e-4, 0.9 to 1 in steps of 1e-5 (14,500 steps); other lengths scale the three pieces.

Which side each estimate errs on (Jensen's inequality, E[w] = Z_B / Z_A):
  * forward AIS: E[log Z_hat] <= log Z, a stochastic LOWER bound on log Z, so the test
    log-likelihood -F(x) - log Z_hat is stochastically OVERESTIMATED (too optimistic);
  * reverse AIS (Burda, Grosse & Salakhutdinov 2015, section 4): anneal from B back to A starting
    from samples of B; E[w_rev] = Z_A / Z_B, so log Z_A - log mean(w_rev) is a stochastic UPPER
    bound on log Z (a conservative log-likelihood) when the starting samples are exact. Exact
    samples exist for small RBMs (``exact_sample``); with approximate ones (long Gibbs chains,
    or data as in PyDeep's tutorial) the bound is only approximate.
Run both to get a bracket. Either estimate is only as good as its weights: the effective sample
size (sum w)^2 / sum w^2 is reported, and an ``AISWarning`` is raised when it is below
``ess_warn_fraction`` of the runs (a badly mixed AIS can be wrong by many nats with a small
standard error).

References: Neal, "Annealed importance sampling" (2001); Salakhutdinov & Murray, "On the
quantitative analysis of deep belief networks" (ICML 2008); Burda, Grosse & Salakhutdinov,
"Accurate and conservative estimates of MRF log-likelihood using reverse annealing" (AISTATS 2015).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from .samplers.base import Target, _is_bernoulli_rbm, bernoulli_draw
from .samplers.elementary import effective_sample_size_weights, inverse_cdf_categorical
from .samplers.gibbs import Gibbs

#: Largest number of binary units ``exact_log_z`` enumerates (2^25 = 33.5 million states).
MAX_EXACT_UNITS = 25
#: Elements per enumeration chunk (32 MB in float64).
_CHUNK_ELEMENTS = 1 << 22
#: The Salakhutdinov & Murray (2008) schedule: (end of piece, number of steps in it).
_SM_PIECES = ((0.5, 500), (0.9, 4000), (1.0, 10000))


class AISWarning(UserWarning):
    """The importance weights of AIS are too uneven for its estimate to be trusted."""


# ----- protocols --------------------------------------------------------------------------------
def is_rbm(model: Any) -> bool:
    return all(
        hasattr(model, a) for a in ("free_energy", "free_energy_hidden", "n_visible", "n_hidden")
    )


def is_fully_visible(model: Any) -> bool:
    return all(hasattr(model, a) for a in ("n_units", "energy", "spin_values"))


def _spin_values(model: Any) -> tuple[float, float]:
    spins = tuple(float(v) for v in model.spin_values)
    if spins not in ((0.0, 1.0), (-1.0, 1.0)):
        raise ValueError(f"model.spin_values: expected (0.0, 1.0) or (-1.0, 1.0), got {spins}")
    return spins


# ----- exact enumeration ------------------------------------------------------------------------
def enumerate_states(
    n_units: int,
    start: int = 0,
    stop: int | None = None,
    spin_values: tuple[float, float] = (0.0, 1.0),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """States number ``start``..``stop``-1 of {lo, hi}^n_units; unit i is bit i of the index."""
    stop = 1 << n_units if stop is None else stop
    index = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = (index[:, None] >> torch.arange(n_units, device=device)) & 1
    lo, hi = spin_values
    return (lo + (hi - lo) * bits).to(dtype)


def _float64_copy(model: Any) -> Any:
    return copy.deepcopy(model).to(torch.float64)


def _log_z_terms(model: Any) -> tuple[int, tuple[float, float], Any, torch.device, int]:
    """(units enumerated, spin values, state -> -energy, device, width of the intermediates)."""
    if is_rbm(model):
        m64 = _float64_copy(model)
        device = next(iter(m64.parameters())).device
        # visible units can be enumerated only when they are binary (Bernoulli RBMs)
        if _is_bernoulli_rbm(model) and model.n_visible <= model.n_hidden:
            return (
                model.n_visible,
                (0.0, 1.0),
                lambda v: -m64.free_energy(v),
                device,
                max(model.n_visible, model.n_hidden),
            )
        return (
            model.n_hidden,
            (0.0, 1.0),
            lambda h: -m64.free_energy_hidden(h),
            device,
            max(model.n_visible, model.n_hidden),
        )
    if is_fully_visible(model):
        m64 = _float64_copy(model)
        device = next(iter(list(m64.parameters()) + list(m64.buffers())), torch.zeros(())).device
        n = int(model.n_units)
        return n, _spin_values(model), lambda s: -m64.energy(s), device, 4 * n
    raise TypeError(
        f"model: exact_log_z needs an RBM (free_energy, free_energy_hidden, n_visible, n_hidden) "
        f"or a fully visible binary model (n_units, energy, spin_values); got "
        f"{type(model).__name__}"
    )


def _check_size(n: int, max_units: int) -> None:
    if n > max_units:
        raise ValueError(
            f"model: exact enumeration needs 2^{n} states, above the limit of 2^{max_units}; "
            "use ebmlab.partition.ais for larger models"
        )


def _negative_energies(model: Any, max_units: int) -> Iterator[torch.Tensor]:
    """-E (or -F) of every state of the enumerated layer, chunk by chunk, in float64."""
    n, spins, neg_energy, device, width = _log_z_terms(model)
    _check_size(n, max_units)
    chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    total = 1 << n
    for start in range(0, total, chunk):
        yield neg_energy(
            enumerate_states(n, start, min(start + chunk, total), spins, device=device)
        )


@torch.no_grad()
def exact_log_z(model: Any, max_units: int = MAX_EXACT_UNITS) -> float:
    """log Z by enumerating every state (RBMs: every state of the smaller layer), in float64,
    with a chunked log-sum-exp. Up to ``max_units`` (25) enumerated units."""
    partial = [torch.logsumexp(values, 0) for values in _negative_energies(model, max_units)]
    return float(torch.logsumexp(torch.stack(partial), 0))


@torch.no_grad()
def exact_log_probs(model: Any, max_units: int = 20) -> torch.Tensor:
    """log p of every state (fully visible models) or of every state of the enumerated layer
    (RBMs: the marginal of the smaller layer), indexed as in ``enumerate_states``; float64."""
    log_p = torch.cat(list(_negative_energies(model, max_units)))
    return log_p - torch.logsumexp(log_p, 0)


@torch.no_grad()
def exact_sample(model: Any, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` exact samples by enumeration: fully visible models directly; Bernoulli RBMs by
    drawing h from its exact marginal (2^n_hidden states) and then v ~ p(v | h)."""
    if is_rbm(model):
        if not _is_bernoulli_rbm(model):
            raise TypeError("model: exact_sample supports Bernoulli RBMs and fully visible models")
        log_p = exact_log_probs(_HiddenView(model), max_units=MAX_EXACT_UNITS)
        index = inverse_cdf_categorical(torch.exp(log_p - log_p.max()), n, generator)
        h = enumerate_states(
            model.n_hidden,
            dtype=model.W.dtype,
            device=model.W.device,
            start=0,
            stop=1 << model.n_hidden,
        )[index.to(model.W.device)]
        return bernoulli_draw(torch.sigmoid(torch.addmm(model.b, h, model.W.T)), generator)
    log_p = exact_log_probs(model)
    index = inverse_cdf_categorical(torch.exp(log_p - log_p.max()), n, generator)
    dtype = getattr(model, "dtype", torch.get_default_dtype())
    return enumerate_states(int(model.n_units), spin_values=_spin_values(model), dtype=dtype)[index]


class _HiddenView:
    """An RBM seen through its hidden layer: enumerates h with F(h) (free_energy_hidden)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.n_units = model.n_hidden
        self.spin_values = (0.0, 1.0)

    def energy(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.free_energy_hidden(h)

    def to(self, dtype: torch.dtype) -> _HiddenView:
        self.model = self.model.to(dtype)
        return self

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()


# ----- AIS schedules and base model -------------------------------------------------------------
def ais_schedule(n_betas: int = 14500) -> torch.Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_n = 1 (n_betas + 1 values, float64): the
    Salakhutdinov & Murray pieces (steps 1e-3 to 0.5, 1e-4 to 0.9, 1e-5 to 1) scaled to
    ``n_betas`` steps; n_betas = 14500 gives exactly theirs."""
    if int(n_betas) != n_betas or n_betas < 1:
        raise ValueError(f"n_betas: expected a positive number of annealing steps, got {n_betas}")
    n_betas = int(n_betas)
    if n_betas < len(_SM_PIECES):
        return torch.linspace(0.0, 1.0, n_betas + 1, dtype=torch.float64)
    total = sum(count for _, count in _SM_PIECES)
    counts = [max(1, round(n_betas * count / total)) for _, count in _SM_PIECES[:-1]]
    counts.append(n_betas - sum(counts))
    pieces, start = [], 0.0
    for (end, _), count in zip(_SM_PIECES, counts):
        pieces.append(torch.linspace(start, end, count + 1, dtype=torch.float64)[:-1])
        start = end
    return torch.cat([*pieces, torch.ones(1, dtype=torch.float64)])


def _check_betas(betas: Any) -> torch.Tensor:
    betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
    if betas.numel() < 2:
        raise ValueError(
            f"betas: expected a schedule from 0 to 1 with at least 2 values, got {betas.numel()}"
        )
    if not torch.isfinite(betas).all() or betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError("betas: the schedule must start at 0 and end at 1")
    if (betas[1:] < betas[:-1]).any():
        raise ValueError("betas: the schedule must be non-decreasing")
    return betas


def base_rate_bias(
    data: torch.Tensor, n_batches: int | None = None, pseudocount: float = 5.0
) -> torch.Tensor:
    """Visible biases of the base-rate model: logit of the smoothed data marginal,
    p = (on-count + pseudocount * n_batches) / (N + pseudocount * n_batches)
    (Salakhutdinov & Murray's code; n_batches defaults to N / 100, their batch size)."""
    data = torch.as_tensor(data)
    if data.dim() != 2 or data.shape[0] < 1:
        raise ValueError(f"data: expected shape (n_examples, n_visible), got {tuple(data.shape)}")
    if not torch.isfinite(data).all() or (data < 0).any() or (data > 1).any():
        raise ValueError("data: expected values in [0, 1]")
    n = data.shape[0]
    n_batches = n_batches or max(1, math.ceil(n / 100))
    extra = pseudocount * n_batches
    p = (data.to(torch.float64).sum(0) + extra) / (n + extra)
    # a unit on in every example would get p = 1 and an infinite bias: keep it finite
    p = p.clamp(1e-6, 1.0 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


# ----- AIS result -------------------------------------------------------------------------------
@dataclass
class AISResult:
    """An AIS (or reverse AIS) estimate of log Z.

    Attributes:
        log_z: the estimate.
        log_z_se: its standard error (delta method: sd(w) / (sqrt(n) mean(w))).
        log_z_low, log_z_high: log of (mean w -/+ 3 standard errors), shifted by log Z_A
            (log_z_low is -inf when mean - 3 se <= 0).
        ess: effective sample size of the weights, (sum w)^2 / sum w^2, in [1, n_runs].
        ess_fraction: ess / n_runs.
        log_weights: per-run log weights (float64).
        log_z_base: log Z of the base model.
        n_betas, n_runs: the schedule length (steps) and the number of runs.
        direction: "forward" (stochastic lower bound) or "reverse" (upper bound).
        seconds: wall time.
    """

    log_z: float
    log_z_se: float
    log_z_low: float
    log_z_high: float
    ess: float
    ess_fraction: float
    log_weights: torch.Tensor
    log_z_base: float
    n_betas: int
    n_runs: int
    direction: str
    seconds: float

    def summary(self) -> dict[str, Any]:
        keys = (
            "log_z",
            "log_z_se",
            "log_z_low",
            "log_z_high",
            "ess",
            "ess_fraction",
            "log_z_base",
            "n_betas",
            "n_runs",
            "direction",
            "seconds",
        )
        return {k: getattr(self, k) for k in keys}


def _weights_summary(log_w: torch.Tensor) -> tuple[float, float, float, float]:
    """(log mean w, se of log mean w, log(mean - 3 se), log(mean + 3 se)) in log space."""
    n = log_w.numel()
    shift = log_w.max()
    w = torch.exp(log_w - shift)
    mean = w.mean()
    log_mean = float(torch.log(mean) + shift)
    if n < 2:
        return log_mean, float("nan"), float("nan"), float("nan")
    se_mean = w.std(correction=1) / math.sqrt(n)
    low = mean - 3 * se_mean
    log_low = float(torch.log(low) + shift) if low > 0 else -float("inf")
    log_high = float(torch.log(mean + 3 * se_mean) + shift)
    return log_mean, float(se_mean / mean), log_low, log_high


def _finish(
    log_w: torch.Tensor,
    log_z_base: float,
    n_betas: int,
    direction: str,
    start: float,
    ess_warn_fraction: float,
) -> AISResult:
    if not torch.isfinite(log_w).all():
        raise FloatingPointError(
            f"AIS: {int((~torch.isfinite(log_w)).sum())} runs have non-finite log weights "
            "(model parameters NaN or overflowing?)"
        )
    n = log_w.numel()
    log_mean, se, log_low, log_high = _weights_summary(log_w)
    ess = effective_sample_size_weights(log_w)
    if direction == "forward":
        log_z, low, high = log_z_base + log_mean, log_z_base + log_low, log_z_base + log_high
    else:  # the weights estimate Z_A / Z_B
        log_z, low, high = log_z_base - log_mean, log_z_base - log_high, log_z_base - log_low
    if ess < ess_warn_fraction * n:
        warnings.warn(
            f"{direction} AIS: the effective sample size of the importance weights is {ess:.1f} "
            f"of {n} runs; log Z = {log_z:.2f} (se {se:.2f}) cannot be trusted. Use more betas "
            "(n_betas) or more runs.",
            AISWarning,
            stacklevel=3,
        )
    return AISResult(
        log_z,
        se,
        low,
        high,
        ess,
        ess / n,
        log_w,
        log_z_base,
        n_betas,
        n,
        direction,
        time.perf_counter() - start,
    )


# ----- AIS for RBMs -----------------------------------------------------------------------------
def _hidden_log_ratio(
    hidden_in: torch.Tensor,
    p_hidden: torch.Tensor | None,
    beta: float,
    beta_prev: float,
    hidden_bound: float,
) -> torch.Tensor:
    """sum_j softplus(beta a_j) - softplus(beta_prev a_j) in float64, from a = c + v^T W,
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


@torch.no_grad()
def _rbm_anneal(
    model: Any,
    v: torch.Tensor,
    betas: torch.Tensor,
    b_base: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Log weights sum_k [log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})] along ``betas`` (ascending
    for forward AIS, descending for reverse), one block-Gibbs transition per intermediate beta.

    log f_beta(v) = (1 - beta) v^T b_A + beta v^T b_B + sum_j softplus(beta (c_j + v^T W_j)); per
    step: two matmuls (v W for the weight and h, h W^T for v), everything else elementwise."""
    W, b, c = model.W, model.b, model.c
    b_base_model = b_base.to(W.dtype)
    bias_gap = b - b_base_model  # log f_k - log f_{k-1} has (beta_k - beta_{k-1}) v^T (b - b_A)
    # |c_j + v^T W_j| <= |c_j| + sum_i |W_ij| for binary v: decides the form of the hidden term
    hidden_bound = float((c.abs() + W.abs().sum(0)).max())
    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    beta_list = betas.tolist()
    last = len(beta_list) - 1
    for k in range(1, last + 1):
        beta, beta_prev = beta_list[k], beta_list[k - 1]
        hidden_in = torch.addmm(c, v, W)
        p_hidden = torch.sigmoid(beta * hidden_in)
        # float32 is enough for the visible term: it is multiplied by beta_k - beta_{k-1}
        log_w += (beta - beta_prev) * (v @ bias_gap).to(torch.float64)
        log_w += _hidden_log_ratio(hidden_in, p_hidden, beta, beta_prev, hidden_bound)
        if k < last:  # transition T_k, leaving f_k invariant
            h = bernoulli_draw(p_hidden, generator)
            visible_in = torch.addmm(b, h, W.T).mul_(beta).add_(b_base_model, alpha=1.0 - beta)
            v = bernoulli_draw(torch.sigmoid(visible_in), generator)
    return log_w


def _rbm_base(
    model: Any, data: torch.Tensor | None, base_bias: torch.Tensor | None
) -> tuple[torch.Tensor, float]:
    """(b_A in float64, log Z_A) of the base-rate model."""
    device = model.W.device
    if base_bias is not None:
        b_base = torch.as_tensor(base_bias, dtype=torch.float64, device=device).flatten()
    elif data is not None:
        data = torch.as_tensor(data)
        if data.dim() != 2 or data.shape[1] != model.n_visible:
            raise ValueError(
                f"data: expected shape (n_examples, {model.n_visible}), got {tuple(data.shape)}"
            )
        b_base = base_rate_bias(data).to(device)
    else:  # no data: the model's own visible biases, so only W and c are annealed
        b_base = model.b.detach().to(torch.float64)
    if b_base.shape != (model.n_visible,) or not torch.isfinite(b_base).all():
        raise ValueError(f"base_bias: expected {model.n_visible} finite visible biases")
    log_z_base = float(F.softplus(b_base).sum()) + model.n_hidden * math.log(2.0)
    return b_base, log_z_base


def _check_rbm_for_ais(model: Any) -> None:
    if not (_is_bernoulli_rbm(model) or _is_gaussian_rbm(model)):
        raise TypeError(
            f"model: AIS is implemented for Bernoulli and Gaussian-Bernoulli RBMs and fully "
            f"visible binary models; got {type(model).__name__}"
        )


def _is_gaussian_rbm(model: Any) -> bool:
    return all(hasattr(model, a) for a in ("precision", "sigma", "mean_v_given_h", "W"))


def _grbm_base_log_z(model: Any) -> float:
    """log Z of the W = 0 model: N(b, diag sigma^2) over v times 2^H (hidden biases annealed
    too, so the base hidden units are uniform)."""
    log_sigma = model.sigma().detach().log().to(torch.float64)
    return float((log_sigma + 0.5 * math.log(2 * math.pi)).sum()) + model.n_hidden * math.log(2.0)


@torch.no_grad()
def _grbm_anneal(
    model: Any, v: torch.Tensor, betas: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Log weights for a Gaussian-Bernoulli RBM on the path
    f_beta(v) = exp(-sum_i (v_i - b_i)^2 / (2 sigma_i^2)) prod_j (1 + exp(beta a_j(v))),
    a_j = c_j + (v / sigma^2)^T W_j: beta = 0 is N(b, sigma^2) times 2^H, beta = 1 the model.
    The transition at beta is block Gibbs: h_j ~ sigmoid(beta a_j), v ~ N(b + beta W h, sigma^2).
    The hidden inputs of Gaussian visibles are unbounded, so the softplus differences are taken
    in float64 directly."""
    W, b, c = model.W, model.b, model.c
    precision, sigma = model.precision(), model.sigma()
    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    beta_list = betas.tolist()
    last = len(beta_list) - 1
    for k in range(1, last + 1):
        beta, beta_prev = beta_list[k], beta_list[k - 1]
        hidden_in = torch.addmm(c, v * precision, W)
        log_w += _hidden_log_ratio(hidden_in, None, beta, beta_prev, math.inf)
        if k < last:
            h = bernoulli_draw(torch.sigmoid(beta * hidden_in), generator)
            mean = torch.addmm(b, h, W.T, alpha=beta)
            noise = torch.randn(mean.shape, generator=generator, device=v.device, dtype=v.dtype)
            v = mean + sigma * noise
    return log_w


def _make_generator(
    seed: int | None, generator: torch.Generator | None, device: torch.device
) -> torch.Generator:
    if generator is not None:
        return generator
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def _schedule(n_betas: int, betas: Any) -> torch.Tensor:
    return _check_betas(betas) if betas is not None else ais_schedule(n_betas)


def _model_device(model: Any) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def ais(
    model: Any,
    n_betas: int = 14500,
    n_runs: int = 100,
    seed: int | None = None,
    data: torch.Tensor | None = None,
    betas: Any = None,
    base_bias: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    ess_warn_fraction: float = 0.1,
) -> AISResult:
    """Annealed importance sampling estimate of log Z (a stochastic lower bound).

    Args:
        model: a Bernoulli RBM (Salakhutdinov & Murray protocol) or a fully visible binary model
            (base: uniform states; transitions: Gibbs sweeps at each beta).
        n_betas: annealing steps (the schedule has n_betas + 1 inverse temperatures).
        n_runs: independent runs, simulated as one batch.
        seed: seed of the generator (on the model's device).
        data: training data (n, n_visible) for the RBM base-rate model; None: b_A = the RBM's
            own visible biases b (the path then anneals only W and c).
        betas: an explicit schedule from 0 to 1 instead of ``n_betas``.
        base_bias: explicit base-model visible biases (overrides ``data``).
        ess_warn_fraction: warn (``AISWarning``) when ESS < this fraction of ``n_runs``.
    """
    start = time.perf_counter()
    if int(n_runs) != n_runs or n_runs < 1:
        raise ValueError(f"n_runs: expected a positive integer, got {n_runs}")
    schedule = _schedule(n_betas, betas)
    device = _model_device(model)
    generator = _make_generator(seed, generator, device)
    if is_rbm(model) and _is_gaussian_rbm(model):
        log_z_base = _grbm_base_log_z(model)
        mean = model.b.detach().expand(n_runs, -1)
        noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype)
        log_w = _grbm_anneal(model, mean + model.sigma().detach() * noise, schedule, generator)
    elif is_rbm(model):
        _check_rbm_for_ais(model)
        b_base, log_z_base = _rbm_base(model, data, base_bias)
        p0 = torch.sigmoid(b_base).to(model.W.dtype).expand(n_runs, -1)
        v = bernoulli_draw(p0, generator)
        log_w = _rbm_anneal(model, v, schedule, b_base, generator)
    elif is_fully_visible(model):
        spins = _spin_values(model)
        log_z_base = model.n_units * math.log(2.0)
        u = torch.rand(n_runs, model.n_units, generator=generator, device=device)
        x = torch.where(u < 0.5, spins[1], spins[0])
        log_w = _visible_anneal(model, x, schedule, generator)
    else:
        raise TypeError(
            f"model: AIS needs a Bernoulli RBM or a fully visible binary model "
            f"(n_units, energy, spin_values); got {type(model).__name__}"
        )
    return _finish(log_w, log_z_base, len(schedule) - 1, "forward", start, ess_warn_fraction)


def reverse_ais(
    model: Any,
    v_init: torch.Tensor,
    n_betas: int = 14500,
    seed: int | None = None,
    data: torch.Tensor | None = None,
    betas: Any = None,
    base_bias: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    ess_warn_fraction: float = 0.1,
) -> AISResult:
    """Reverse AIS: anneal from the model back to the base model, starting from ``v_init``
    (one run per row). With exact samples of the model (``exact_sample``) the estimate is a
    stochastic UPPER bound on log Z; with approximate samples (long Gibbs chains, or data)
    only an approximation of one. Same arguments as ``ais`` (use the same ``data``/``betas``
    for a bracket)."""
    start = time.perf_counter()
    schedule = _schedule(n_betas, betas).flip(0)
    device = _model_device(model)
    generator = _make_generator(seed, generator, device)
    if is_rbm(model) and _is_gaussian_rbm(model):
        v = model.check_visible(v_init, "v_init")
        log_w = _grbm_anneal(model, v, schedule, generator)
        log_z_base = _grbm_base_log_z(model)
    elif is_rbm(model):
        _check_rbm_for_ais(model)
        v = model.check_visible(v_init, "v_init") if hasattr(model, "check_visible") else v_init
        b_base, log_z_base = _rbm_base(model, data, base_bias)
        log_w = _rbm_anneal(model, v, schedule, b_base, generator)
    elif is_fully_visible(model):
        x = torch.as_tensor(v_init)
        if x.dim() != 2 or x.shape[1] != model.n_units:
            raise ValueError(
                f"v_init: expected shape (n_runs, {model.n_units}), got {tuple(x.shape)}"
            )
        log_z_base = model.n_units * math.log(2.0)
        log_w = _visible_anneal(model, x.to(device), schedule, generator)
    else:
        raise TypeError(
            f"model: reverse AIS needs a Bernoulli RBM or a fully visible binary "
            f"model; got {type(model).__name__}"
        )
    return _finish(log_w, log_z_base, len(schedule) - 1, "reverse", start, ess_warn_fraction)


@torch.no_grad()
def _visible_anneal(
    model: Any, x: torch.Tensor, betas: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Log weights on the path f_beta(x) = exp(-beta E(x)) (base: uniform states), with one
    Gibbs sweep (exact conditionals when the model has them) per intermediate beta."""
    kernel = Gibbs(scan="systematic" if hasattr(model, "conditional_logits") else "auto")
    log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    beta_list = betas.tolist()
    last = len(beta_list) - 1
    for k in range(1, last + 1):
        energy = model.energy(x).to(torch.float64)
        log_w -= (beta_list[k] - beta_list[k - 1]) * energy
        if k < last:
            x, _ = kernel.step(x, Target(model, beta_list[k]), generator)
    return log_w


# ----- log-likelihood ---------------------------------------------------------------------------
@dataclass
class LogLikelihood:
    """Average log-likelihood in nats per example with its standard error.

    ``se`` combines the sampling error of the mean of -F(x) over examples and the uncertainty of
    log Z: se = sqrt(var(-F) / n + log_z_se^2).
    """

    mean: float
    se: float
    n: int
    log_z: float
    log_z_se: float

    def summary(self) -> dict[str, float]:
        return {
            "log_likelihood": self.mean,
            "log_likelihood_se": self.se,
            "n": self.n,
            "log_z": self.log_z,
            "log_z_se": self.log_z_se,
        }


@torch.no_grad()
def log_likelihood(
    model: Any,
    x: torch.Tensor,
    log_z: float | AISResult,
    log_z_se: float = 0.0,
    batch_size: int = 10000,
) -> LogLikelihood:
    """Mean of log p(x) = -F(x) - log Z over the rows of ``x`` (F: ``free_energy`` if the model
    has one, else ``energy``), in nats, with its standard error. ``log_z`` may be an
    ``AISResult`` (its standard error is then used)."""
    if isinstance(log_z, AISResult):
        log_z, log_z_se = log_z.log_z, log_z.log_z_se
    log_z, log_z_se = float(log_z), float(log_z_se)
    if not math.isfinite(log_z):
        raise ValueError(f"log_z: expected a finite number, got {log_z}")
    if not log_z_se >= 0:
        raise ValueError(f"log_z_se: expected a standard error >= 0, got {log_z_se}")
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x: expected shape (n_examples, dim), got {tuple(x.shape)}")
    energy_fn = model.free_energy if hasattr(model, "free_energy") else model.energy
    device = _model_device(model)
    dtype = getattr(model, "dtype", torch.get_default_dtype())
    values = torch.cat(
        [
            -energy_fn(x[i : i + batch_size].to(device=device, dtype=dtype)).to(torch.float64)
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    n = values.numel()
    var = float(values.var(correction=1)) if n > 1 else 0.0
    return LogLikelihood(
        mean=float(values.mean()) - log_z,
        se=math.sqrt(var / n + log_z_se**2),
        n=n,
        log_z=log_z,
        log_z_se=log_z_se,
    )


__all__ = [
    "AISResult",
    "AISWarning",
    "LogLikelihood",
    "ais",
    "ais_schedule",
    "base_rate_bias",
    "enumerate_states",
    "exact_log_probs",
    "exact_log_z",
    "exact_sample",
    "log_likelihood",
    "reverse_ais",
]
