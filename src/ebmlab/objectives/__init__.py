"""Training objectives: maximum likelihood, contrastive divergence (CD-k, PCD, parallel
tempering) for RBMs, Boltzmann learning, contrastive divergence with Langevin MCMC for neural
energies, score matching (exact, sliced, denoising, noise-conditional) and noise contrastive
estimation (Gaussian noise, flow contrastive estimation); the DBM's variational PCD, the VAE's
ELBO/IWAE bounds, the GAN's two-player objective (and the conditional GAN's and CycleGAN's), the
autoencoder's reconstruction loss and the Gaussian-hidden RBM's CD, the DBN classifier's
cross-entropy, the image flow's dequantized likelihood, the DDPM's simplified denoising loss and
the Bernoulli diffusion's bound."""

from .autoencoder import GaussianHiddenCD, ReconstructionObjective
from .base import OBJECTIVE_CLASSES, Objective
from .boltzmann import BoltzmannLearning
from .cgan import ConditionalGANObjective
from .classification import CrossEntropyClassification
from .contrastive import ContrastiveDivergence, ParallelTemperingCD, PersistentContrastiveDivergence
from .contrastive_discrete import ContrastiveDiscrete
from .contrastive_langevin import ContrastiveLangevin
from .cyclegan import CycleGANObjective
from .dbm import TiedCopiesCD, VariationalPCD
from .diffusion import BernoulliDiffusionLoss, DiffusionLoss
from .gan import GANObjective
from .likelihood import DequantizedMaximumLikelihood, MaximumLikelihood
from .nce import FlowContrastiveEstimation, NoiseContrastiveEstimation
from .score_matching import (
    DenoisingScoreMatching,
    ExactScoreMatching,
    NoiseAugmentedScoreMatching,
    NoiseConditionalScoreMatching,
    SlicedScoreMatching,
)
from .vae import VariationalBound

__all__ = [
    "OBJECTIVE_CLASSES",
    "BernoulliDiffusionLoss",
    "BoltzmannLearning",
    "ConditionalGANObjective",
    "ContrastiveDiscrete",
    "ContrastiveDivergence",
    "ContrastiveLangevin",
    "CrossEntropyClassification",
    "CycleGANObjective",
    "DenoisingScoreMatching",
    "DequantizedMaximumLikelihood",
    "DiffusionLoss",
    "ExactScoreMatching",
    "FlowContrastiveEstimation",
    "GANObjective",
    "GaussianHiddenCD",
    "MaximumLikelihood",
    "NoiseAugmentedScoreMatching",
    "NoiseConditionalScoreMatching",
    "NoiseContrastiveEstimation",
    "Objective",
    "ParallelTemperingCD",
    "PersistentContrastiveDivergence",
    "ReconstructionObjective",
    "SlicedScoreMatching",
    "TiedCopiesCD",
    "VariationalBound",
    "VariationalPCD",
]
