"""Model families. Each is an ``nn.Module`` with ``energy`` (and ``free_energy`` with hidden units)."""

from .base import MODEL_CLASSES, Model
from .baselines import DiagonalGaussian, IndependentBernoulli
from .hopfield import Hopfield, ModernHopfield
from .ising import Ising
from .rbm import BernoulliRBM

__all__ = ["MODEL_CLASSES", "BernoulliRBM", "DiagonalGaussian", "Hopfield", "IndependentBernoulli", "Ising", "Model",
           "ModernHopfield"]
