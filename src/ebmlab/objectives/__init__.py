"""Training objectives: maximum likelihood, contrastive divergence (CD-k, PCD, PT), score
matching, NCE."""

from .base import OBJECTIVE_CLASSES, Objective
from .likelihood import MaximumLikelihood

__all__ = ["OBJECTIVE_CLASSES", "MaximumLikelihood", "Objective"]
