"""Training objectives: maximum likelihood, contrastive divergence (CD-k, PCD, parallel
tempering) for RBMs, Boltzmann learning, contrastive divergence with Langevin MCMC for neural
energies, score matching (exact, sliced, denoising, noise-conditional) and noise contrastive
estimation (Gaussian noise, flow contrastive estimation); the DBM's variational PCD, the VAE's
ELBO/IWAE bounds and the GAN's two-player objective."""

from .base import OBJECTIVE_CLASSES, Objective
from .boltzmann import BoltzmannLearning
from .contrastive import ContrastiveDivergence, ParallelTemperingCD, PersistentContrastiveDivergence
from .contrastive_langevin import ContrastiveLangevin
from .dbm import TiedCopiesCD, VariationalPCD
from .gan import GANObjective
from .likelihood import MaximumLikelihood
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
    "BoltzmannLearning",
    "ContrastiveDivergence",
    "ContrastiveLangevin",
    "DenoisingScoreMatching",
    "ExactScoreMatching",
    "FlowContrastiveEstimation",
    "GANObjective",
    "MaximumLikelihood",
    "NoiseAugmentedScoreMatching",
    "NoiseConditionalScoreMatching",
    "NoiseContrastiveEstimation",
    "Objective",
    "ParallelTemperingCD",
    "PersistentContrastiveDivergence",
    "SlicedScoreMatching",
    "TiedCopiesCD",
    "VariationalBound",
    "VariationalPCD",
]
