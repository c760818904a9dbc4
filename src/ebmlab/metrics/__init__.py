"""Sample-quality metrics that need only samples, so that every family can be scored alike.

``frechet_distance(samples, dataset)``: the Frechet distance in the features of a classifier
trained on the dataset's labels (the "Frechet digit distance"); ``frechet_baselines`` gives the
floor (training images) and two baselines at the same sample size.
"""

from .frechet import (
    FeatureClassifier,
    FrechetResult,
    feature_classifier,
    feature_statistics,
    frechet_baselines,
    frechet_distance,
    frechet_distance_features,
    frechet_metrics,
    gaussian_frechet_distance,
)

__all__ = [
    "FeatureClassifier",
    "FrechetResult",
    "feature_classifier",
    "feature_statistics",
    "frechet_baselines",
    "frechet_distance",
    "frechet_distance_features",
    "frechet_metrics",
    "gaussian_frechet_distance",
]
