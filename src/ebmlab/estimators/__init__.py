"""Estimators: exact log Z by enumeration, one annealed-importance-sampling engine (forward and
reverse) over annealing paths, log-likelihoods and bounds, each result tagged with its method.

A model joins AIS by matching one of the paths of ``ebmlab.estimators.paths`` (told apart by
attributes, ``ebmlab.estimators.kinds``) or by supplying ``annealing_path(data, base_bias)``
returning an object with the ``AnnealingPath`` protocol.

Every estimator checks what it is given once, at entry (``ebmlab.estimators.inputs``): data rows
(binary for binary models, finite, of the model's width, at least one), reverse-AIS starting
states, base-rate data (in [0, 1]) and the model's parameters (finite, named when they are not).
"""

from .ais import AISResult, AISWarning, ais, ais_schedule, anneal, check_betas, reverse_ais
from .bounds import (
    dequantized_log_likelihoods,
    exact_log_likelihoods,
    importance_log_p,
    per_example,
    variational_bounds,
)
from .exact import MAX_EXACT_UNITS, enumerate_states, exact_log_probs, exact_log_z, exact_sample
from .likelihood import METHODS, Estimate, LogLikelihood, check_method, log_likelihood
from .paths import (
    AnnealingPath,
    BernoulliRBMPath,
    DBMPath,
    FullyVisiblePath,
    GaussianRBMPath,
    annealing_path,
    base_rate_bias,
)
from .pseudo_likelihood import pseudo_log_likelihood

__all__ = [
    "MAX_EXACT_UNITS",
    "METHODS",
    "AISResult",
    "AISWarning",
    "AnnealingPath",
    "BernoulliRBMPath",
    "DBMPath",
    "Estimate",
    "FullyVisiblePath",
    "GaussianRBMPath",
    "LogLikelihood",
    "ais",
    "ais_schedule",
    "anneal",
    "annealing_path",
    "base_rate_bias",
    "check_betas",
    "check_method",
    "dequantized_log_likelihoods",
    "enumerate_states",
    "exact_log_likelihoods",
    "exact_log_probs",
    "exact_log_z",
    "exact_sample",
    "importance_log_p",
    "log_likelihood",
    "per_example",
    "pseudo_log_likelihood",
    "reverse_ais",
    "variational_bounds",
]
