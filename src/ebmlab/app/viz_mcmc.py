"""MCMC plots: trace plots and autocorrelation plots of sampler output.

Both take draws laid out as ``ebmlab.samplers.sample`` returns them, (n_draws, n_chains, dim),
and write a PNG through ``ebmlab.app.viz.save_figure`` (laid out, every title fitted to its
axes). Matplotlib is used through its object API with the Agg canvas: no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..samplers.diagnostics import autocorrelation, effective_sample_size, split_rhat


def _check_draws(samples: torch.Tensor) -> torch.Tensor:
    samples = torch.as_tensor(samples)
    if samples.dim() != 3 or samples.shape[0] < 2:
        raise ValueError(
            f"samples: expected shape (n_draws >= 2, n_chains, dim), got {tuple(samples.shape)}"
        )
    return samples.detach().to("cpu", torch.float64)


def _dims(dims: Sequence[int] | None, dim: int, limit: int = 4) -> list[int]:
    dims = list(range(min(dim, limit))) if dims is None else list(dims)
    for d in dims:
        if not 0 <= d < dim:
            raise ValueError(f"dims: index {d} out of range for dim {dim}")
    return dims


def _save(fig: Figure, path: str | Path) -> Path:
    """Lay out, fit the titles to their axes and write the PNG (``ebmlab.app.viz.save_figure``)."""
    from .viz import save_figure  # viz imports this module at its end

    FigureCanvasAgg(fig)
    return save_figure(fig, path)


def plot_trace(
    samples: torch.Tensor,
    path: str | Path,
    dims: Sequence[int] | None = None,
    max_chains: int = 8,
    title: str | None = None,
) -> Path:
    """Trace plot: one panel per dimension (first four by default), one line per chain (first
    ``max_chains``), with the ESS and split R-hat of that dimension (all chains) in the title."""
    x = _check_draws(samples)
    dims = _dims(dims, x.shape[2])
    chains = x.transpose(0, 1)  # (chain, draw, dim)
    ess, rhat = effective_sample_size(chains), split_rhat(chains)
    fig = Figure(figsize=(8, 1.8 * len(dims) + 0.6))
    axes = fig.subplots(len(dims), 1, sharex=True, squeeze=False)[:, 0]
    for ax, d in zip(axes, dims):
        for c in range(min(max_chains, x.shape[1])):
            ax.plot(x[:, c, d].numpy(), lw=0.6, alpha=0.8)
        ax.set_ylabel(f"x[{d}]")
        ax.set_title(
            f"dim {d}: ESS {float(ess[d]):.0f}, split R-hat {float(rhat[d]):.3f}", fontsize=9
        )
    axes[-1].set_xlabel("draw")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_autocorrelation(
    samples: torch.Tensor,
    path: str | Path,
    dims: Sequence[int] | None = None,
    max_lag: int = 100,
    title: str | None = None,
) -> Path:
    """Autocorrelation rho_k against lag k, averaged over chains, one line per dimension."""
    x = _check_draws(samples)
    dims = _dims(dims, x.shape[2])
    max_lag = min(max_lag, x.shape[0] - 1)
    rho = autocorrelation(x.transpose(0, 1), max_lag=max_lag).mean(0)  # (lags, dim)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for d in dims:
        ax.plot(rho[:, d].numpy(), label=f"x[{d}]")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xlabel("lag")
    ax.set_ylabel("autocorrelation")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


__all__ = ["plot_autocorrelation", "plot_trace"]
