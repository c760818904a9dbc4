"""MCMC diagnostics: autocorrelation, effective sample size, split R-hat.

Plain functions on arrays laid out (chain, draw, ...) (NumPyro's convention), numpy or torch,
computed in float64 on the input's device; they return float64 tensors of shape (...).

* ``autocovariance``/``autocorrelation``: per chain along the draw axis, by FFT with zero padding,
  the biased estimator gamma_k = (1/n) sum_t (x_t - xbar)(x_{t+k} - xbar).
* ``effective_sample_size``: Stan's multi-chain estimator (Gelman et al., BDA3, section 11.5;
  Vehtari et al. 2021). With W the mean within-chain variance, B/n the variance of the chain
  means and var+ = (n-1)/n W + B/n,

      rho_k = 1 - (W - mean_chains gamma_k) / var+,

  summed in pairs P_m = rho_{2m} + rho_{2m+1} with Geyer's (1992) initial monotone sequence:
  the sum stops at the first negative pair and every pair is capped by the smallest one before
  it (P_0 included, as in Stan; NumPyro leaves P_0 out of that cap); then
  tau = -1 + 2 sum_m P_m, floored at 1 / log10(N) with N = chains x draws (Stan's guard for
  antithetic chains, Vehtari et al. 2021: without it a lag-1 correlation near -1 gives tau <= 0),
  and ESS = N / tau (above N, up to N log10 N, for anti-correlated chains).
* ``split_rhat``: split every chain into two halves (dropping the middle draw of an odd count),
  then R-hat = sqrt(var+ / W) over the 2m half-chains (Gelman et al., BDA3, eq. 11.4).

Constant inputs (W = 0) give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_float64(x: Any, name: str = "x", min_draws: int = 1) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    x = torch.as_tensor(x).to(torch.float64)
    if x.dim() < 2:
        raise ValueError(
            f"{name}: expected an array laid out (chain, draw, ...), got shape {tuple(x.shape)}"
        )
    if x.shape[1] < min_draws:
        raise ValueError(f"{name}: expected at least {min_draws} draws per chain, got {x.shape[1]}")
    return x


def autocovariance(x: Any, max_lag: int | None = None) -> torch.Tensor:
    """Biased autocovariance gamma_k of every chain along axis 1, lags 0..max_lag (default all):
    shape (chain, lags, ...)."""
    x = _as_float64(x)
    n = x.shape[1]
    centered = x - x.mean(dim=1, keepdim=True)
    size = 1 << (2 * n - 1).bit_length()  # zero padding to >= 2n avoids circular wrap-around
    spectrum = torch.fft.rfft(centered, n=size, dim=1)
    acov = torch.fft.irfft(spectrum * spectrum.conj(), n=size, dim=1)[:, :n] / n
    return acov if max_lag is None else acov[:, : max_lag + 1]


def autocorrelation(x: Any, max_lag: int | None = None) -> torch.Tensor:
    """Autocorrelation rho_k = gamma_k / gamma_0 per chain, shape (chain, lags, ...)."""
    acov = autocovariance(x, max_lag)
    return acov / acov[:, :1]


def _variance_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, var+) of a (chain, draw, ...) array."""
    n_chains, n = x.shape[:2]
    within = x.var(dim=1, correction=1).mean(dim=0)
    between_over_n = (
        x.mean(dim=1).var(dim=0, correction=1) if n_chains > 1 else torch.zeros_like(within)
    )
    return within, (n - 1) / n * within + between_over_n


def effective_sample_size(x: Any) -> torch.Tensor:
    """Multi-chain ESS with Geyer's initial monotone sequence; shape x.shape[2:].

    Needs at least 4 draws per chain (else NaN)."""
    x = _as_float64(x)
    n_chains, n = x.shape[:2]
    if n < 4:
        return torch.full(x.shape[2:], float("nan"), dtype=torch.float64, device=x.device)
    gamma = autocovariance(x).mean(dim=0)  # (draw, ...)
    within, var_plus = _variance_stats(x)
    rho = 1.0 - (within - gamma) / var_plus
    rho[0] = 1.0
    n_pairs = n // 2
    pairs = rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]
    # initial positive sequence: pairs from the first negative one on are dropped (zeroed) ...
    positive = torch.cumprod((pairs[1:] >= 0).to(torch.float64), dim=0)
    sequence = torch.cat([pairs[:1], pairs[1:] * positive])
    # ... and initial monotone sequence: each pair capped by the smallest before it
    sequence = torch.cummin(sequence, dim=0).values
    total = n_chains * n
    # antithetic chains: tau -> 0 or below; Stan floors it at 1 / log10(N)
    tau = torch.clamp(-1.0 + 2.0 * sequence.sum(dim=0), min=1.0 / np.log10(total))
    ess = total / tau
    return torch.where(within > 0, ess, torch.nan)


def split_rhat(x: Any) -> torch.Tensor:
    """Split R-hat, shape x.shape[2:]; NaN with fewer than 4 draws per chain."""
    x = _as_float64(x)
    n = x.shape[1]
    if n < 4:
        return torch.full(x.shape[2:], float("nan"), dtype=torch.float64, device=x.device)
    half = n // 2
    halves = torch.cat([x[:, :half], x[:, n - half :]], dim=0)
    within, var_plus = _variance_stats(halves)
    return torch.where(within > 0, torch.sqrt(var_plus / within), torch.nan)


def gelman_rubin(x: Any) -> torch.Tensor:
    """R-hat without splitting (needs at least 2 chains), shape x.shape[2:]."""
    x = _as_float64(x, min_draws=2)
    if x.shape[0] < 2:
        raise ValueError("x: R-hat without splitting needs at least 2 chains")
    within, var_plus = _variance_stats(x)
    return torch.where(within > 0, torch.sqrt(var_plus / within), torch.nan)
