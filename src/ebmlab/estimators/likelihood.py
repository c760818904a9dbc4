"""Test log-likelihoods in nats, and estimates tagged with how they were obtained.

``log_likelihood(model, x, log_z)`` is the mean of log p(x) = -F(x) - log Z over the rows of ``x``
(F: ``free_energy`` when the model has hidden units to sum out, else ``energy``), with a standard
error that adds the uncertainty of log Z to the sampling error of the mean:
se = sqrt(var(-F) / n + log_z_se^2).

``Estimate`` is the form every family reports its score in, whatever produced it; ``method`` is one
of ``METHODS`` or ``iwae-K``:

* ``exact``: an exact log-likelihood (enumerated log Z, autoregressive or flow densities);
* ``ais``: -F(x) - log Z with log Z from AIS (a stochastic overestimate, see ``ais``);
* ``ais-lower-bound``: a variational or importance-weighted bound with an AIS log Z (DBN, DBM);
* ``elbo``, ``iwae-K``: the evidence lower bound and the K-sample importance-weighted bound
  (Burda, Grosse & Salakhutdinov 2016);
* ``dequantized``: the uniform-dequantization bound on a discrete likelihood (Theis et al. 2016).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from ..validation import NoneValue, OneOf, Real, check_in_range, check_positive_int
from .ais import AISResult, AISWarning
from .inputs import check_data
from .kinds import model_device

#: Method tags an ``Estimate`` may carry (besides ``iwae-K`` for a positive integer K).
METHODS = ("exact", "ais", "ais-lower-bound", "elbo", "dequantized")


def check_method(method: str) -> str:
    """``method`` if it names how a log-likelihood was obtained, else a ValueError."""
    if method in METHODS or re.fullmatch(r"iwae-[1-9][0-9]*", str(method)):
        return method
    raise ValueError(f"method: expected one of {METHODS} or 'iwae-K', got {method!r}")


@dataclass(frozen=True)
class Estimate:
    """A log-likelihood in nats per example: ``mean`` with its standard error ``se`` over ``n``
    examples, obtained by ``method``; ``extras``: anything else worth reporting beside it."""

    mean: float
    se: float
    method: str
    n: int
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_method(self.method)
        if not self.se >= 0:
            raise ValueError(f"se: expected a standard error >= 0, got {self.se}")

    @classmethod
    def from_values(
        cls, values: torch.Tensor, method: str, log_z_se: float = 0.0, **extras: Any
    ) -> Estimate:
        """Mean of per-example ``values`` (float64); se = sqrt(var / n + log_z_se^2)."""
        values = values.detach().to(torch.float64).flatten()
        n = values.numel()
        if n == 0:
            raise ValueError("values: expected at least one value")
        var = float(values.var(correction=1)) if n > 1 else 0.0
        return cls(float(values.mean()), math.sqrt(var / n + log_z_se**2), method, n, extras)

    def summary(self, prefix: str = "test_") -> dict[str, Any]:
        """The keys the recipes report: ``{prefix}log_likelihood``, its ``_se``, the method."""
        return {
            f"{prefix}log_likelihood": self.mean,
            f"{prefix}log_likelihood_se": self.se,
            "log_likelihood_method": self.method,
            **self.extras,
        }


@dataclass
class LogLikelihood:
    """Average log-likelihood in nats per example with its standard error.

    ``se`` combines the sampling error of the mean of -F(x) over examples and the uncertainty of
    log Z: se = sqrt(var(-F) / n + log_z_se^2). ``method``: how log Z was obtained ("exact" or
    "ais").
    """

    mean: float
    se: float
    n: int
    log_z: float
    log_z_se: float
    method: str = "exact"

    def summary(self) -> dict[str, float]:
        return {
            "log_likelihood": self.mean,
            "log_likelihood_se": self.se,
            "n": self.n,
            "log_z": self.log_z,
            "log_z_se": self.log_z_se,
        }

    def estimate(self) -> Estimate:
        """The same number as a tagged ``Estimate`` (log Z and its se among the extras)."""
        extras = {"log_z": self.log_z, "log_z_se": self.log_z_se}
        return Estimate(self.mean, self.se, self.method, self.n, extras)


#: How the log Z of ``log_likelihood`` was obtained (the other methods tag bounds, which
#: ``log_likelihood`` does not compute).
_LOG_Z_METHODS = OneOf(
    "exact", "ais", description="exact or ais (how log Z was obtained: exact_log_z or ais)"
)
_ESTIMATED = OneOf(
    "ais", description="ais for a log Z estimated by AIS (an AISResult or a log_z_se > 0)"
)
_LOG_Z = Real(description="a finite number or an AISResult")
_NO_SE = NoneValue(description="None when log_z is an AISResult (its own standard error is used)")


def _energy_function(model: Any) -> Any:
    """The free energy (hidden units summed out) or the energy that scores ``model``'s rows."""
    for name in ("free_energy", "energy"):
        energy = getattr(model, name, None)
        if callable(energy):
            return energy
    hint = (
        " (score it with its own log_prob or bounds)"
        if callable(getattr(model, "log_prob", None))
        else ""
    )
    raise TypeError(
        "model: log_likelihood needs a model with free_energy(x) or energy(x); got "
        f"{type(model).__name__}{hint}"
    )


@torch.no_grad()
def log_likelihood(
    model: Any,
    x: torch.Tensor,
    log_z: float | AISResult,
    log_z_se: float | None = None,
    batch_size: int = 10000,
    method: str | None = None,
) -> LogLikelihood:
    """Mean of log p(x) = -F(x) - log Z over the rows of ``x`` (F: ``free_energy`` if the model
    has one, else ``energy``), in nats, with its standard error. ``x`` is checked first
    (``inputs.check_data``): (n_examples, width) with n_examples >= 1, finite, binary for a
    binary model (the model's own ``check_visible`` when it has one).

    Args:
        model: a model with ``free_energy(x)`` or ``energy(x)`` (models without one, such as a
            VAE or a flow, report their own ``log_prob`` or bounds).
        x: the rows to score.
        log_z: log Z: a finite number (``exact_log_z``, or an estimate with ``log_z_se``) or an
            ``AISResult``, whose log Z and standard error are used. A single-run AIS result has
            no standard error (NaN): an ``AISWarning`` says so and ``se`` is then the sampling
            error of the mean over ``x`` alone (``log_z_se`` stays NaN).
        log_z_se: the standard error of a number ``log_z`` (None: 0, an exact log Z); leave it
            None with an ``AISResult``.
        batch_size: rows per free-energy call.
        method: how log Z was obtained, "exact" or "ais"; default "ais" for an ``AISResult`` or
            a ``log_z_se`` > 0, else "exact". "exact" with an estimated log Z is refused.
    """
    energy_fn = _energy_function(model)
    if isinstance(log_z, AISResult):
        _NO_SE.check(log_z_se, "log_z_se")
        result = log_z
        log_z, log_z_se = result.log_z, result.log_z_se
        method = _ESTIMATED.check("ais" if method is None else method, "method")
        _LOG_Z.check(log_z, "log_z")
        combined_se = log_z_se
        if math.isnan(log_z_se):
            warnings.warn(
                f"log_z: the AISResult has no standard error (it comes from {result.n_runs} "
                "run); the standard error of the log-likelihood leaves out the uncertainty of "
                "log Z. Run ais with n_runs >= 2 for one",
                AISWarning,
                stacklevel=3,
            )
            combined_se = 0.0
    else:
        if isinstance(log_z, torch.Tensor) and log_z.numel() == 1:
            log_z = log_z.item()
        log_z = float(_LOG_Z.check(log_z, "log_z"))
        log_z_se = 0.0 if log_z_se is None else float(check_in_range(log_z_se, "log_z_se", 0.0))
        method = _LOG_Z_METHODS.check(
            method if method is not None else ("ais" if log_z_se > 0 else "exact"), "method"
        )
        if log_z_se > 0:
            _ESTIMATED.check(method, "method")
        combined_se = log_z_se
    check_positive_int(batch_size, "batch_size")
    x = check_data(model, x, "x")
    device = model_device(model)
    dtype = getattr(model, "dtype", torch.get_default_dtype())
    neg_f = torch.cat(
        [
            -energy_fn(x[i : i + batch_size].to(device=device, dtype=dtype)).to(torch.float64)
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    est = Estimate.from_values(neg_f, method, combined_se)
    return LogLikelihood(est.mean - log_z, est.se, est.n, log_z, log_z_se, method)
