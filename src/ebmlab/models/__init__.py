"""Model families. Each is an ``nn.Module`` with ``energy`` (and ``free_energy`` with hidden units)."""

from .base import MODEL_CLASSES, Model
from .gaussian import DiagonalGaussian
from .rbm import BernoulliRBM

__all__ = ["MODEL_CLASSES", "BernoulliRBM", "DiagonalGaussian", "Model"]
