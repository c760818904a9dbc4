"""MCMC samplers: kernels with ``step(x, energy_fn, generator) -> (x_new, info)`` acting on a
batch of chains (one chain per row), one runner ``sample(...)``, diagnostics, and every chain the
models and objectives run (Langevin, annealed Langevin, Gibbs sweeps, annealing, tempering).

Kernels: ``MetropolisHastings``, ``Gibbs``, ``Langevin`` (unadjusted), ``MALA``, ``SGLD``,
``HMC``, ``SimulatedAnnealing``, ``ParallelTempering``, and for binary states the
gradient-informed ``GibbsWithGradients`` and ``DiscreteLangevin`` (DMALA; DULA with
``adjusted=False``), see ``ebmlab.samplers.discrete_gradient``. The Langevin convention is stated in
``ebmlab.samplers.langevin``, the temperature schedules in ``ebmlab.samplers.annealing``, the
replica-exchange swap in ``ebmlab.samplers.tempering``, and what a model must offer to be
sampled in ``ebmlab.samplers.protocols``. Elementary samplers (Bernoulli draws, inverse CDF,
Box-Muller, a Gaussian from the central limit theorem, importance sampling) live in
``ebmlab.samplers.elementary``; exact transition matrices of the kernels on small discrete
targets (stationary distribution, detailed balance, ergodicity, mixing) in
``ebmlab.samplers.finite``.
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
from .discrete_gradient import DiscreteLangevin, GibbsWithGradients, proposal_matrix
from .elementary import (
    ImportanceResult,
    UniformSource,
    bernoulli_draw,
    box_muller,
    clt_gaussian,
    effective_sample_size_weights,
    gaussian,
    importance_sampling,
    inverse_cdf_categorical,
)
from .finite import (
    GibbsAsMH,
    acceptance_matrix,
    communicating_classes,
    detailed_balance_violation,
    distance_to_stationarity,
    flip_proposal_matrix,
    gibbs_as_metropolis_hastings,
    gibbs_matrix,
    gibbs_site_matrix,
    is_aperiodic,
    is_ergodic,
    is_irreducible,
    metropolis_hastings_matrix,
    mixing_time,
    period,
    probability_flow,
    satisfies_detailed_balance,
    stationary_distribution,
    target_log_probs,
    target_probs,
    total_variation,
    transition_matrix,
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
    "DiscreteLangevin",
    "DualAveraging",
    "Gibbs",
    "GibbsAsMH",
    "GibbsWithGradients",
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
    "UniformSource",
    "acceptance_matrix",
    "annealed_langevin",
    "autocorrelation",
    "autocovariance",
    "bernoulli_draw",
    "box_muller",
    "clt_gaussian",
    "communicating_classes",
    "cooling_steps",
    "default_kernel",
    "detailed_balance_violation",
    "distance_to_stationarity",
    "effective_sample_size",
    "effective_sample_size_weights",
    "energy_gradient",
    "flip_proposal_matrix",
    "gaussian",
    "gelman_rubin",
    "geometric_betas",
    "geometric_ladder",
    "geometric_schedule",
    "gibbs_as_metropolis_hastings",
    "gibbs_matrix",
    "gibbs_site_matrix",
    "importance_sampling",
    "initial_states",
    "inverse_cdf_categorical",
    "is_aperiodic",
    "is_ergodic",
    "is_irreducible",
    "langevin_chain",
    "linear_ladder",
    "make_generator",
    "make_kernel",
    "metropolis_hastings_matrix",
    "mixing_time",
    "period",
    "probability_flow",
    "proposal_matrix",
    "replica_exchange",
    "sample",
    "satisfies_detailed_balance",
    "split_rhat",
    "stationary_distribution",
    "target_log_probs",
    "target_probs",
    "total_variation",
    "transition_matrix",
]
