"""Sample-quality metrics that need only samples, so that every family can be scored alike.

``frechet_distance(samples, dataset)``: the Frechet distance in the features of a classifier
trained on the dataset's labels (the "Frechet digit distance"); ``frechet_baselines`` gives the
floor (training images) and two baselines at the same sample size. ``class_accuracy`` and
``per_class_frechet`` score class-conditional samples with the same classifier.
"""

from . import conditional, frechet
from .conditional import *  # noqa: F403  (every public name of conditional)
from .frechet import *  # noqa: F403  (every public name of frechet)

__all__ = [*frechet.__all__, *conditional.__all__]
