"""Class-level scores of generated images, with the classifier of the Frechet digit distance.

``class_accuracy``: the fraction of images that the classifier trained on the dataset's real
labels (``ebmlab.metrics.frechet.feature_classifier``) assigns to the class they were generated
for, overall and per class: the test of a class-conditional generator. ``per_class_frechet``:
the Frechet distance (``frechet_distance_features``) between the samples of each class and the
reference images of that class, in the same classifier's features. The classes of the samples
are the requested ones (a conditional model) or the classifier's own labels (an unconditional
model, whose samples are grouped by what they look like); ``draw_per_class`` draws an
unconditional model's samples until every class has as many as the reference has, so that both
kinds of model are compared at equal sample sizes (the plug-in distance is biased upwards by
O(d / n)).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from ..validation import as_tensor
from .frechet import (
    FeatureClassifier,
    classifier_features,
    feature_classifier,
    frechet_distance_features,
)


def predict_classes(classifier: FeatureClassifier, images: Any) -> torch.Tensor:
    """The classifier's class of each (n, D) image (long, on the CPU)."""
    x = as_tensor(images, "images", dim=2, n_features=classifier.n_inputs, dtype=torch.float32)
    with torch.no_grad():
        return torch.cat([classifier(part).argmax(1) for part in x.cpu().split(4096)])


def _labels(labels: Any, n: int, name: str) -> torch.Tensor:
    y = torch.as_tensor(labels).cpu()
    if y.dim() != 1 or y.shape[0] != n or y.is_floating_point():
        raise ValueError(
            f"{name}: expected {n} integer class labels, got {tuple(y.shape)} {y.dtype}"
        )
    return y.long()


def class_accuracy(
    images: Any,
    labels: Any,
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """How often the dataset's classifier assigns each image its requested class.

    Returns ``accuracy`` (over all images), ``per_class`` (class -> accuracy over the images
    requested as that class), ``n`` and ``classifier_accuracy`` (the classifier's own test
    accuracy on real images, the ceiling of the score).
    """
    classifier, accuracy = feature_classifier(dataset, data_dir, cache)
    predicted = predict_classes(classifier, images)
    y = _labels(labels, predicted.shape[0], "labels")
    hits = (predicted == y).double()
    per_class = {int(k): float(hits[y == k].mean()) for k in torch.unique(y)}
    return {
        "accuracy": float(hits.mean()),
        "per_class": per_class,
        "n": int(y.shape[0]),
        "classifier_accuracy": accuracy,
    }


def per_class_frechet(
    samples: Any,
    sample_labels: Any,
    reference: Any,
    reference_labels: Any,
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[int, float]:
    """Class -> Frechet distance between the samples of that class and the reference images of
    that class, in the features of the dataset's classifier (classes with fewer than 2 samples
    or references are left out). ``progress``: progress bars of the classifier's training (on
    first use) and of the feature passes, on a terminal."""
    classifier, _ = feature_classifier(dataset, data_dir, cache, progress)
    x = as_tensor(samples, "samples", dim=2, n_features=classifier.n_inputs, dtype=torch.float32)
    ref = as_tensor(
        reference, "reference", dim=2, n_features=classifier.n_inputs, dtype=torch.float32
    )
    y = _labels(sample_labels, x.shape[0], "sample_labels")
    y_ref = _labels(reference_labels, ref.shape[0], "reference_labels")
    features, ref_features = (
        classifier_features(classifier, x, progress, "images to score"),
        classifier_features(classifier, ref, progress, "reference images"),
    )
    distances = {}
    for k in torch.unique(y_ref).tolist():
        mine, theirs = features[y == k], ref_features[y_ref == k]
        if mine.shape[0] >= 2 and theirs.shape[0] >= 2:
            distances[int(k)] = frechet_distance_features(mine, theirs)
    return distances


def draw_per_class(
    draw: Callable[[int], torch.Tensor],
    counts: dict[int, int],
    dataset: str,
    *,
    chunk: int = 5000,
    max_draws: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Samples of an unconditional model grouped by the classifier's labels: ``draw(m)`` returns
    m samples; chunks are drawn until every class k has ``counts[k]`` samples labelled k (or
    ``max_draws`` samples were drawn, default 5 x the total count), and the first ``counts[k]``
    of each class are kept. Returns (samples, their classes, samples drawn); a class the model
    rarely makes is short of its count. ``progress``: a progress bar of the classifier's
    training on first use, on a terminal."""
    if not counts or min(counts.values()) < 1:
        raise ValueError(f"counts: expected a positive count for every class, got {counts}")
    classifier, _ = feature_classifier(dataset, data_dir, cache, progress)
    total = sum(counts.values())
    limit = max_draws if max_draws is not None else 5 * total
    kept: dict[int, list[torch.Tensor]] = {k: [] for k in counts}
    have = dict.fromkeys(counts, 0)
    drawn = 0
    while drawn < limit and any(have[k] < counts[k] for k in counts):
        images = draw(min(chunk, limit - drawn)).detach().cpu().float()
        drawn += images.shape[0]
        predicted = predict_classes(classifier, images)
        for k in counts:
            take = images[predicted == k][: counts[k] - have[k]]
            kept[k].append(take)
            have[k] += take.shape[0]
    samples = torch.cat([torch.cat(kept[k]) for k in counts])
    labels = torch.cat([torch.full((have[k],), k, dtype=torch.long) for k in counts])
    return samples, labels, drawn


__all__ = ["class_accuracy", "draw_per_class", "per_class_frechet", "predict_classes"]
