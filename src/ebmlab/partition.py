"""Partition functions and test log-likelihoods: the public names of ``ebmlab.estimators``.

Kept so that ``ebmlab.partition.exact_log_z(model)``, ``ebmlab.partition.ais(model, n_betas,
n_runs, seed)``, ``reverse_ais``, ``log_likelihood`` and the rest keep working; new code imports
from ``ebmlab.estimators`` (exact enumeration, the one AIS engine and its annealing paths,
log-likelihood results and bounds).
"""

from __future__ import annotations

from .estimators import (
    MAX_EXACT_UNITS,
    AISResult,
    AISWarning,
    LogLikelihood,
    ais,
    ais_schedule,
    base_rate_bias,
    enumerate_states,
    exact_log_probs,
    exact_log_z,
    exact_sample,
    log_likelihood,
    reverse_ais,
)

__all__ = [
    "MAX_EXACT_UNITS",
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
