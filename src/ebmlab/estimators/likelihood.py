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
from dataclasses import dataclass, field
from typing import Any

import torch

from ..validation import check_positive_int
from .ais import AISResult
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


@torch.no_grad()
def log_likelihood(
    model: Any,
    x: torch.Tensor,
    log_z: float | AISResult,
    log_z_se: float = 0.0,
    batch_size: int = 10000,
    method: str | None = None,
) -> LogLikelihood:
    """Mean of log p(x) = -F(x) - log Z over the rows of ``x`` (F: ``free_energy`` if the model
    has one, else ``energy``), in nats, with its standard error. ``log_z`` may be an
    ``AISResult`` (its standard error is then used). ``method`` defaults to "ais" when log Z has
    a standard error (or is an ``AISResult``), else "exact". ``x`` is checked first
    (``inputs.check_data``): (n_examples, width) with n_examples >= 1, finite, binary for a
    binary model (the model's own ``check_visible`` when it has one)."""
    if isinstance(log_z, AISResult):
        log_z, log_z_se = log_z.log_z, log_z.log_z_se
        method = method or "ais"
    log_z, log_z_se = float(log_z), float(log_z_se)
    if not math.isfinite(log_z):
        raise ValueError(f"log_z: expected a finite number, got {log_z}")
    if not log_z_se >= 0:
        raise ValueError(f"log_z_se: expected a standard error >= 0, got {log_z_se}")
    method = check_method(method or ("ais" if log_z_se > 0 else "exact"))
    check_positive_int(batch_size, "batch_size")
    x = check_data(model, x, "x")
    energy_fn = model.free_energy if hasattr(model, "free_energy") else model.energy
    device = model_device(model)
    dtype = getattr(model, "dtype", torch.get_default_dtype())
    neg_f = torch.cat(
        [
            -energy_fn(x[i : i + batch_size].to(device=device, dtype=dtype)).to(torch.float64)
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    est = Estimate.from_values(neg_f, method, log_z_se)
    return LogLikelihood(est.mean - log_z, est.se, est.n, log_z, log_z_se, method)
