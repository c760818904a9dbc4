"""Annealed importance sampling (Neal 2001): one loop over a schedule, for every annealing path.

Forward AIS draws ``n_runs`` exact samples of the base model f_0 (all runs are one batch) and,
for k = 1..K, adds log f_k(x_{k-1}) - log f_{k-1}(x_{k-1}) to each run's log weight (float64),
then moves x_{k-1} -> x_k with a transition leaving f_k invariant (none after the last step). The
mean weight estimates Z / Z_0. The path (``ebmlab.estimators.paths``) says what f_k, the base
model and the transition are; ``ais`` and ``reverse_ais`` work for any of them. The default
schedule is Salakhutdinov & Murray's: beta from 0 to 0.5 in steps of 1e-3, 0.5 to 0.9 in steps of
1e-4, 0.9 to 1 in steps of 1e-5 (14,500 steps); other lengths scale the three pieces.

Which side each estimate errs on (Jensen's inequality, E[w] = Z_B / Z_A):
  * forward AIS: E[log Z_hat] <= log Z, a stochastic LOWER bound on log Z, so the test
    log-likelihood -F(x) - log Z_hat is stochastically OVERESTIMATED (too optimistic);
  * reverse AIS (Burda, Grosse & Salakhutdinov 2015, section 4): anneal from the model back to
    the base starting from samples of the model; E[w_rev] = Z_A / Z_B, so
    log Z_A - log mean(w_rev) is a stochastic UPPER bound on log Z when the starting samples are
    exact (``exact_sample`` for small models); with approximate ones (long Gibbs chains, or data
    as in PyDeep's tutorial) it is only approximately one.
Run both to get a bracket. Either estimate is only as good as its weights: the effective sample
size (sum w)^2 / sum w^2 is reported, and an ``AISWarning`` is raised when it is below
``ess_warn_fraction`` of the runs (a badly mixed AIS can be wrong by many nats with a small
standard error).

References: Neal, "Annealed importance sampling" (2001); Salakhutdinov & Murray, "On the
quantitative analysis of deep belief networks" (ICML 2008); Burda, Grosse & Salakhutdinov,
"Accurate and conservative estimates of MRF log-likelihood using reverse annealing" (AISTATS 2015).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..samplers import effective_sample_size_weights, make_generator
from ..validation import Integral, Real, as_generator, check_params, check_positive_int
from .inputs import check_parameters
from .kinds import model_device
from .paths import AnnealingPath, annealing_path, base_rate_bias, check_ais_model

#: The Salakhutdinov & Murray (2008) schedule: (end of piece, number of steps in it).
_SM_PIECES = ((0.5, 500), (0.9, 4000), (1.0, 10000))


class AISWarning(UserWarning):
    """The importance weights of AIS are too uneven for its estimate to be trusted."""


# ----- schedules ---------------------------------------------------------------------------------
def ais_schedule(n_betas: int = 14500) -> torch.Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_n = 1 (n_betas + 1 values, float64): the
    Salakhutdinov & Murray pieces (steps 1e-3 to 0.5, 1e-4 to 0.9, 1e-5 to 1) scaled to
    ``n_betas`` steps; n_betas = 14500 gives exactly theirs."""
    if isinstance(n_betas, bool) or int(n_betas) != n_betas or n_betas < 1:
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


def check_betas(betas: Any) -> torch.Tensor:
    """An explicit schedule as float64, checked: from 0 to 1, non-decreasing, >= 2 values."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.dim() != 1:
        raise ValueError(
            f"betas: expected a 1-D schedule from 0 to 1, got shape {tuple(betas.shape)}"
        )
    if betas.numel() < 2:
        raise ValueError(
            f"betas: expected a schedule from 0 to 1 with at least 2 values, got {betas.numel()}"
        )
    finite = torch.isfinite(betas)
    if not finite.all():
        first = int((~finite).nonzero()[0])
        raise ValueError(
            f"betas: expected finite values, found {int((~finite).sum())} NaN or infinite "
            f"(the first at index {first}: {float(betas[first])})"
        )
    if betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError(
            f"betas: the schedule must start at 0 and end at 1, got {float(betas[0]):g} to "
            f"{float(betas[-1]):g}"
        )
    if (betas[1:] < betas[:-1]).any():
        raise ValueError("betas: the schedule must be non-decreasing")
    return betas


def _schedule(n_betas: int, betas: Any) -> torch.Tensor:
    return check_betas(betas) if betas is not None else ais_schedule(n_betas)


# ----- result ------------------------------------------------------------------------------------
@dataclass
class AISResult:
    """An AIS (or reverse AIS) estimate of log Z.

    Attributes:
        log_z: the estimate.
        log_z_se: its standard error (delta method: sd(w) / (sqrt(n) mean(w))); NaN from a
            single run, which has no spread to estimate it from (``log_likelihood`` then warns
            and reports the sampling error of the data alone).
        log_z_low, log_z_high: log of (mean w -/+ 3 standard errors), shifted by log Z_A
            (log_z_low is -inf when mean - 3 se <= 0; both NaN from a single run).
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
    """The estimate from the log weights; warns (``AISWarning``) on a low ESS."""
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
    seconds = time.perf_counter() - start
    return AISResult(
        log_z, se, low, high, ess, ess / n, log_w, log_z_base, n_betas, n, direction, seconds
    )


# ----- the loop ----------------------------------------------------------------------------------
@torch.no_grad()
def anneal(
    path: AnnealingPath,
    x: Any,
    betas: torch.Tensor,
    generator: torch.Generator,
    progress: str | None = None,
) -> torch.Tensor:
    """Log weights sum_k [log f_k(x_{k-1}) - log f_{k-1}(x_{k-1})] of the runs in ``x`` along
    ``betas`` (ascending: forward AIS; descending: reverse), one transition per intermediate
    beta (none after the last). ``progress``: a label for a progress bar over the betas (shown
    only on a terminal)."""
    beta_list = betas.tolist()
    last = len(beta_list) - 1
    bar = _bar(progress, last)
    log_w = None
    for k in range(1, last + 1):
        increment, x = path.step(x, beta_list[k - 1], beta_list[k], generator, k < last)
        log_w = increment if log_w is None else log_w.add_(increment)
        if bar is not None and k % PROGRESS_EVERY == 0:
            bar.update(PROGRESS_EVERY)
    if bar is not None:
        bar.close()
    assert log_w is not None  # a checked schedule has at least one step
    return log_w


#: Betas between two updates of the progress bar.
PROGRESS_EVERY = 100


def _bar(label: str | None, total: int) -> Any:
    if label is None or total < 10 * PROGRESS_EVERY:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="beta", leave=False, disable=None)


#: the arguments ``ais`` and ``reverse_ais`` check before any work
_ARGUMENTS = {
    "seed": Integral() | None,
    "ess_warn_fraction": Real(0, 1),
}


def _prepare(
    model: Any,
    seed: int | None,
    generator: torch.Generator | None,
    data: torch.Tensor | None,
    base_bias: torch.Tensor | None,
    ess_warn_fraction: float,
) -> tuple[AnnealingPath, torch.Generator]:
    check_ais_model(model)  # before anything reads its parameters or device
    check_params(_ARGUMENTS, {"seed": seed, "ess_warn_fraction": ess_warn_fraction})
    check_parameters(model)  # once: a NaN weight would only show as NaN weights at the end
    device = model_device(model)
    generator = as_generator(generator, device, "generator")
    if generator is None:
        generator = make_generator(seed, device)
    return annealing_path(model, data, base_bias), generator


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
    progress: bool = True,
) -> AISResult:
    """Annealed importance sampling estimate of log Z (a stochastic lower bound).

    Args:
        model: a Bernoulli RBM (Salakhutdinov & Murray protocol), a Gaussian-Bernoulli RBM, a
            DBM (odd layers summed out), a fully visible binary model (uniform base, Gibbs
            sweeps at each beta), or any model with an ``annealing_path`` method.
        n_betas: annealing steps (the schedule has n_betas + 1 inverse temperatures).
        n_runs: independent runs, simulated as one batch; a standard error needs at least 2
            (one run gives ``log_z_se`` NaN).
        seed: seed of the generator (on the model's device).
        data: training data (n, n_visible) for the base-rate model of binary visible units,
            binary or probabilities in [0, 1] (a lower layer's mean-field activities); None:
            b_A = the model's own visible biases (the path then anneals only the rest).
        betas: an explicit schedule from 0 to 1 instead of ``n_betas``.
        base_bias: explicit base-model visible biases (overrides ``data``).
        generator: a ``torch.Generator`` (or an integer seed) to draw from (overrides
            ``seed``).
        ess_warn_fraction: warn (``AISWarning``) when ESS < this fraction of ``n_runs``, a
            number in [0, 1] (0: never warn).
        progress: a progress bar over the betas on a terminal (long schedules only).
    """
    start = time.perf_counter()
    check_positive_int(n_runs, "n_runs")
    schedule = _schedule(n_betas, betas)
    path, generator = _prepare(model, seed, generator, data, base_bias, ess_warn_fraction)
    label = f"AIS ({len(schedule) - 1} betas x {int(n_runs)} runs)" if progress else None
    log_w = anneal(path, path.sample_base(int(n_runs), generator), schedule, generator, label)
    return _finish(log_w, path.log_z_base, len(schedule) - 1, "forward", start, ess_warn_fraction)


def reverse_ais(
    model: Any,
    v_init: Any,
    n_betas: int = 14500,
    seed: int | None = None,
    data: torch.Tensor | None = None,
    betas: Any = None,
    base_bias: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    ess_warn_fraction: float = 0.1,
    progress: bool = True,
) -> AISResult:
    """Reverse AIS: anneal from the model back to the base model, starting from ``v_init``
    (one run per row; for a DBM every layer, concatenated, as ``exact_sample`` returns them).
    With exact samples of the model (``exact_sample``) the estimate is a stochastic UPPER bound
    on log Z; with approximate samples (long Gibbs chains, or data) only an approximation of
    one. ``v_init`` is checked against the model first (its width, finite values, binary for
    binary models, at least one run). Same arguments as ``ais`` (use the same
    ``data``/``betas`` for a bracket)."""
    start = time.perf_counter()
    schedule = _schedule(n_betas, betas).flip(0)
    path, generator = _prepare(model, seed, generator, data, base_bias, ess_warn_fraction)
    label = f"reverse AIS ({len(schedule) - 1} betas)" if progress else None
    log_w = anneal(path, path.from_samples(v_init), schedule, generator, label)
    return _finish(log_w, path.log_z_base, len(schedule) - 1, "reverse", start, ess_warn_fraction)


__all__ = [
    "AISResult",
    "AISWarning",
    "ais",
    "ais_schedule",
    "anneal",
    "base_rate_bias",
    "check_betas",
    "reverse_ais",
]
