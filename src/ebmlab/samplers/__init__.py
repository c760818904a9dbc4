"""MCMC samplers: kernels with ``step(x, energy_fn, generator) -> (x_new, info)`` acting on a
batch of chains (one chain per row), one runner ``sample(...)``, and diagnostics.

Kernels: ``MetropolisHastings``, ``Gibbs``, ``Langevin`` (unadjusted), ``MALA``, ``SGLD``,
``HMC``, ``SimulatedAnnealing``, ``ParallelTempering``. The Langevin convention is stated in
``ebmlab.samplers.langevin``. Elementary samplers (inverse CDF, Box-Muller, importance sampling)
live in ``ebmlab.samplers.elementary``.
"""

from .adaptation import DualAveraging
from .base import ChainState, Info, Kernel, Target
from .diagnostics import (
    autocorrelation,
    autocovariance,
    effective_sample_size,
    gelman_rubin,
    split_rhat,
)
from .elementary import (
    ImportanceResult,
    box_muller,
    effective_sample_size_weights,
    gaussian,
    importance_sampling,
    inverse_cdf_categorical,
)
from .gibbs import Gibbs
from .hmc import HMC
from .langevin import MALA, SGLD, Langevin, MinibatchGradient
from .metropolis import MetropolisHastings
from .runner import SampleResult, default_kernel, initial_states, make_kernel, sample
from .tempering import ParallelTempering, SimulatedAnnealing, geometric_betas, geometric_schedule

__all__ = [
    "HMC",
    "MALA",
    "SGLD",
    "ChainState",
    "DualAveraging",
    "Gibbs",
    "ImportanceResult",
    "Info",
    "Kernel",
    "Langevin",
    "MetropolisHastings",
    "MinibatchGradient",
    "ParallelTempering",
    "SampleResult",
    "SimulatedAnnealing",
    "Target",
    "autocorrelation",
    "autocovariance",
    "box_muller",
    "default_kernel",
    "effective_sample_size",
    "effective_sample_size_weights",
    "gaussian",
    "gelman_rubin",
    "geometric_betas",
    "geometric_schedule",
    "importance_sampling",
    "initial_states",
    "inverse_cdf_categorical",
    "make_kernel",
    "sample",
    "split_rhat",
]
