"""Model families. Each is an ``nn.Module`` with ``energy`` (and ``free_energy`` with hidden units).

Sign convention: ``energy(x)`` is -log of the unnormalized density, p(x) = exp(-E(x)) / Z.
"""

from .base import MODEL_CLASSES, Model
from .baselines import DiagonalGaussian, IndependentBernoulli
from .boltzmann import BoltzmannMachine
from .flows import (
    AffineCoupling,
    ComposedTransform,
    ElementwiseAffine,
    Flow,
    Permutation,
    RealNVP,
    Transform,
)
from .gaussian_rbm import GaussianBernoulliRBM
from .hopfield import Hopfield, ModernHopfield
from .ising import Ising
from .linear_gaussian import PCA, FactorAnalysis, LinearGaussian, ProbabilisticPCA
from .neural import ConvEnergy, EnergyNetwork, MLPEnergy, QuadraticEnergy, geometric_sigmas
from .rbm import BernoulliRBM

__all__ = [
    "MODEL_CLASSES",
    "PCA",
    "AffineCoupling",
    "BernoulliRBM",
    "BoltzmannMachine",
    "ComposedTransform",
    "ConvEnergy",
    "DiagonalGaussian",
    "ElementwiseAffine",
    "EnergyNetwork",
    "FactorAnalysis",
    "Flow",
    "GaussianBernoulliRBM",
    "Hopfield",
    "IndependentBernoulli",
    "Ising",
    "LinearGaussian",
    "MLPEnergy",
    "Model",
    "ModernHopfield",
    "Permutation",
    "ProbabilisticPCA",
    "QuadraticEnergy",
    "RealNVP",
    "Transform",
    "geometric_sigmas",
]
