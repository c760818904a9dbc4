"""Model families. Each is an ``nn.Module`` with ``energy`` (and ``free_energy`` with hidden units).

Sign convention: ``energy(x)`` is -log of the unnormalized density, p(x) = exp(-E(x)) / Z.
"""

from .autoencoder import DeepAutoencoder, GaussianHiddenRBM
from .autoregressive import PixelCNN
from .base import MODEL_CLASSES, Model
from .baselines import DiagonalGaussian, IndependentBernoulli
from .boltzmann import BoltzmannMachine
from .cgan import ConditionalGAN
from .classifier import DBNClassifier
from .cyclegan import CycleGAN
from .dbm import DeepBoltzmannMachine
from .dbn import DeepBeliefNet
from .diffusion import DDPM, BernoulliDiffusion
from .flows import (
    AffineCoupling,
    ComposedTransform,
    ElementwiseAffine,
    Flow,
    Permutation,
    RealNVP,
    Transform,
)
from .free_energy import (
    FreeEnergyTerms,
    boltzmann_distribution,
    helmholtz_free_energy,
    minimum_free_energy,
    state_energies,
)
from .gan import GAN
from .gaussian_rbm import GaussianBernoulliRBM
from .hashing import HashingAutoencoder
from .hopfield import (
    Hopfield,
    ModernHopfield,
    amit_capacity,
    capacity_bounds,
    clock_updates,
    hebbian_bit_error_probability,
    hebbian_fixed_point_probability,
    mceliece_capacity,
    projection_capacity,
)
from .hopfield_hidden import HiddenHopfield
from .image_flows import ImageRealNVP
from .ising import Ising
from .linear_gaussian import PCA, FactorAnalysis, LinearGaussian, ProbabilisticPCA
from .neural import ConvEnergy, EnergyNetwork, MLPEnergy, QuadraticEnergy, geometric_sigmas
from .pixelrnn import PixelRNN
from .rbm import BernoulliRBM
from .vae import VAE

__all__ = [
    "DDPM",
    "GAN",
    "MODEL_CLASSES",
    "PCA",
    "VAE",
    "AffineCoupling",
    "BernoulliDiffusion",
    "BernoulliRBM",
    "BoltzmannMachine",
    "ComposedTransform",
    "ConditionalGAN",
    "ConvEnergy",
    "CycleGAN",
    "DBNClassifier",
    "DeepAutoencoder",
    "DeepBeliefNet",
    "DeepBoltzmannMachine",
    "DiagonalGaussian",
    "ElementwiseAffine",
    "EnergyNetwork",
    "FactorAnalysis",
    "Flow",
    "FreeEnergyTerms",
    "GaussianBernoulliRBM",
    "GaussianHiddenRBM",
    "HashingAutoencoder",
    "HiddenHopfield",
    "Hopfield",
    "ImageRealNVP",
    "IndependentBernoulli",
    "Ising",
    "LinearGaussian",
    "MLPEnergy",
    "Model",
    "ModernHopfield",
    "Permutation",
    "PixelCNN",
    "PixelRNN",
    "ProbabilisticPCA",
    "QuadraticEnergy",
    "RealNVP",
    "Transform",
    "amit_capacity",
    "boltzmann_distribution",
    "capacity_bounds",
    "clock_updates",
    "geometric_sigmas",
    "hebbian_bit_error_probability",
    "hebbian_fixed_point_probability",
    "helmholtz_free_energy",
    "mceliece_capacity",
    "minimum_free_energy",
    "projection_capacity",
    "state_energies",
]
