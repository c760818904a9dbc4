"""MCMC samplers: kernels with ``step(x, energy_fn, generator) -> (x_new, info)`` acting on a
batch of chains (one chain per row), one runner ``sample(...)``, diagnostics, and every chain the
models and objectives run (Langevin, annealed Langevin, Gibbs sweeps, annealing, tempering).

Kernels: ``MetropolisHastings``, ``Gibbs``, ``Langevin`` (unadjusted), ``MALA``, ``SGLD``,
``HMC``, ``SimulatedAnnealing``, ``ParallelTempering``. The Langevin convention is stated in
``ebmlab.samplers.langevin``, the temperature schedules in ``ebmlab.samplers.annealing``, the
replica-exchange swap in ``ebmlab.samplers.tempering``, and what a model must offer to be
sampled in ``ebmlab.samplers.protocols``. Elementary samplers (Bernoulli draws, inverse CDF,
Box-Muller, importance sampling) live in ``ebmlab.samplers.elementary``.
"""

from .adaptation import DualAveraging
from .annealing import (
    SimulatedAnnealing,
    cooling_steps,
    geometric_ladder,
    geometric_schedule,
    linear_ladder,
)
from .base import ChainState, Info, Kernel, Target, make_generator
from .diagnostics import (
    autocorrelation,
    autocovariance,
    effective_sample_size,
    gelman_rubin,
    split_rhat,
)
from .elementary import (
    ImportanceResult,
    bernoulli_draw,
    box_muller,
    effective_sample_size_weights,
    gaussian,
    importance_sampling,
    inverse_cdf_categorical,
)
from .gibbs import Gibbs
from .hmc import HMC
from .langevin import (
    MALA,
    SGLD,
    Langevin,
    MinibatchGradient,
    annealed_langevin,
    energy_gradient,
    langevin_chain,
)
from .metropolis import MetropolisHastings
from .protocols import SweepTarget
from .runner import SampleResult, default_kernel, initial_states, make_kernel, sample
from .tempering import ParallelTempering, geometric_betas, replica_exchange

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
    "SweepTarget",
    "Target",
    "annealed_langevin",
    "autocorrelation",
    "autocovariance",
    "bernoulli_draw",
    "box_muller",
    "cooling_steps",
    "default_kernel",
    "effective_sample_size",
    "effective_sample_size_weights",
    "energy_gradient",
    "gaussian",
    "gelman_rubin",
    "geometric_betas",
    "geometric_ladder",
    "geometric_schedule",
    "importance_sampling",
    "initial_states",
    "inverse_cdf_categorical",
    "langevin_chain",
    "linear_ladder",
    "make_generator",
    "make_kernel",
    "replica_exchange",
    "sample",
    "split_rhat",
]
