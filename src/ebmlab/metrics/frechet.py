"""Frechet distance between Gaussians fitted to features, and the Frechet digit distance.

For two Gaussians N(mu1, S1) and N(mu2, S2),

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}),

the squared 2-Wasserstein distance between them (Dowson & Landau 1982; Olkin & Pukelsheim
1982). The FID of Heusel et al. (2017) fits the Gaussians to Inception features of real and
generated images; Parzen-window likelihoods, the older GAN score, are unreliable (Theis, van den
Oord & Bethge 2016). Here, as REFERENCES.md (GAN evaluation) recommends for MNIST-like data, the
features are the penultimate layer of a classifier trained on the same dataset's labels: the
"Frechet digit distance" (FDD). It needs only samples, so it scores every family alike.

Numerics. S1 S2 is not symmetric, but it is similar to the symmetric positive semi-definite
matrix M = S1^{1/2} S2 S1^{1/2} (S1^{-1/2} M S1^{1/2} = S1 S2 when S1 is invertible, and by
continuity the spectra agree otherwise), so Tr (S1 S2)^{1/2} = sum_i sqrt(lambda_i(M)). Two
symmetric eigendecompositions in float64; eigenvalues that rounding pushes below zero are set to
zero. No general matrix square root (scipy's ``sqrtm`` returns complex parts on singular
covariances, which feature covariances of small sample sets are).

Bias. The plug-in FD of n samples is biased upwards by O(d / n) (d the feature dimension):
compare distances only at equal sample sizes. ``frechet_distance`` uses as many samples as given
against the whole test split; ``frechet_baselines`` scores the training set (the floor a perfect
model reaches), independent Bernoulli pixels with the training marginals, and uniform noise at the
same n.

The classifier (``FeatureClassifier``, an MLP) is trained once per dataset with a fixed seed and
cached as a safetensors checkpoint under ``$EBMLAB_CACHE`` (default ``~/.cache/ebmlab``), in
``frechet/<dataset>-mlp-v<version>.safetensors``. Half of every training minibatch is
stochastically binarized, so that grey-level and binary images (the binary families) get
meaningful features from the same network.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..models.base import Model
from ..training.logging import progress_bar
from ..validation import Integral, SequenceOf, as_tensor, validate

#: Bumped whenever the classifier's architecture or training recipe changes (new cache files).
CLASSIFIER_VERSION = 1
ENV_CACHE = "EBMLAB_CACHE"

#: Per dataset: hidden widths of the classifier (the last is the feature dimension) and epochs.
CLASSIFIER_SETTINGS: dict[str, dict[str, Any]] = {
    "digits": {"hidden": [128, 64], "epochs": 60},
    "mnist": {"hidden": [256, 128], "epochs": 10},
    "fashion-mnist": {"hidden": [256, 128], "epochs": 10},
}
#: Datasets without labels that share another dataset's classifier (same images).
CLASSIFIER_ALIAS = {"binarized-mnist": "mnist"}


# ----- the closed form ----------------------------------------------------------------------------
def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Principal square root of a symmetric PSD matrix (negative rounding eigenvalues -> 0)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    root = eigenvalues.clamp_min(0.0).sqrt()  # rounding can leave -1e-16 where 0 is meant
    return (eigenvectors * root) @ eigenvectors.T


def trace_sqrt_product(cov1: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """Tr (S1 S2)^{1/2} = sum of sqrt(eigenvalues of S1^{1/2} S2 S1^{1/2}), in float64."""
    root1 = _symmetric_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    middle = 0.5 * (middle + middle.T)  # exactly symmetric for eigh
    return torch.linalg.eigvalsh(middle).clamp_min(0.0).sqrt().sum()


def _check_gaussian(mean: Any, cov: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    mean_t = as_tensor(mean, f"{name} mean", dim=1, dtype=torch.float64)
    d = mean_t.shape[0]
    cov_t = as_tensor(cov, f"{name} covariance", dim=2, dtype=torch.float64)
    if cov_t.shape != (d, d):
        raise ValueError(
            f"{name} covariance: expected shape ({d}, {d}) to match the mean, got "
            f"{tuple(cov_t.shape)}"
        )
    if not torch.allclose(cov_t, cov_t.T, rtol=1e-6, atol=1e-10):
        raise ValueError(f"{name} covariance: expected a symmetric matrix")
    return mean_t, cov_t.cpu()


def gaussian_frechet_distance(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """FD between N(mean1, cov1) and N(mean2, cov2): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^½).

    Args:
        mean1, mean2: (d,) means.
        cov1, cov2: (d, d) symmetric positive semi-definite covariances.

    Returns:
        The distance (a squared 2-Wasserstein distance, >= 0), computed in float64.

    >>> gaussian_frechet_distance([0.0], [[4.0]], [1.0], [[1.0]])  # (0-1)^2 + (2-1)^2
    2.0
    """
    m1, s1 = _check_gaussian(mean1, cov1, "mean1/cov1")
    m2, s2 = _check_gaussian(mean2, cov2, "mean2/cov2")
    if m1.shape != m2.shape:
        raise ValueError(f"mean2: expected dimension {m1.shape[0]} like mean1, got {m2.shape[0]}")
    mean_term = (m1.cpu() - m2.cpu()).square().sum()
    value = mean_term + torch.trace(s1) + torch.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)  # a rounding residue of -1e-13 for equal Gaussians -> 0


def feature_statistics(features: Any, name: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (float64) of an (n, d) feature matrix, n >= 2."""
    f = as_tensor(features, name, dim=2, dtype=torch.float64)
    if f.shape[0] < 2:
        raise ValueError(f"{name}: expected at least 2 rows to fit a Gaussian, got {f.shape[0]}")
    mean = f.mean(0)
    centered = f - mean
    return mean, centered.T @ centered / (f.shape[0] - 1)


def frechet_distance_features(features1: Any, features2: Any) -> float:
    """FD between Gaussians fitted (mean, covariance) to two (n, d) feature sets."""
    m1, s1 = feature_statistics(features1, "features1")
    m2, s2 = feature_statistics(features2, "features2")
    if m1.shape != m2.shape:
        raise ValueError(
            f"features2: expected {m1.shape[0]} features like features1, got {m2.shape[0]}"
        )
    return gaussian_frechet_distance(m1, s1, m2, s2)


# ----- the feature network ------------------------------------------------------------------------
class FeatureClassifier(Model):
    """MLP classifier whose penultimate layer gives the features of the Frechet digit distance.

    Args:
        n_inputs: pixels per image.
        hidden: widths of the hidden ReLU layers (the last is the feature dimension).
        n_classes: number of labels.
        seed: seed of the initial weights (PyTorch's default initialization, drawn from it).
    """

    @validate(
        n_inputs=Integral(1),
        hidden=SequenceOf(Integral(1)).where(bool, "a non-empty list of positive widths"),
        n_classes=Integral(2),
        seed=Integral(),
    )
    def __init__(
        self, n_inputs: int, hidden: list[int], n_classes: int = 10, seed: int = 0
    ) -> None:
        super().__init__()
        widths = [int(n_inputs), *[int(h) for h in hidden]]
        self.n_inputs = int(n_inputs)
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [_seeded_linear(a, b, generator), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = _seeded_linear(widths[-1], n_classes, generator)

    @property
    def feature_dim(self) -> int:
        return int(self.head.in_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (batch, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes)."""
        return self.head(self.body(x))


def _seeded_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear with PyTorch's default initialization drawn from ``generator``."""
    layer = nn.Linear(n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        # kaiming_uniform(a=sqrt(5)) of nn.Linear is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def cache_dir() -> Path:
    """Folder of cached classifiers: ``$EBMLAB_CACHE`` or ``~/.cache/ebmlab``."""
    root = os.environ.get(ENV_CACHE)
    return Path(root) if root else Path.home() / ".cache" / "ebmlab"


def _classifier_dataset(dataset: str) -> str:
    name = CLASSIFIER_ALIAS.get(dataset, dataset)
    if name not in CLASSIFIER_SETTINGS:
        valid = ", ".join(sorted([*CLASSIFIER_SETTINGS, *CLASSIFIER_ALIAS]))
        raise ValueError(
            f"dataset: no feature classifier for {dataset!r} (it needs class labels); "
            f"expected one of {valid}"
        )
    return name


def classifier_path(dataset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where the classifier for ``dataset`` is cached."""
    name = _classifier_dataset(dataset)
    base = Path(root) if root is not None else cache_dir()
    return base / "frechet" / f"{name}-mlp-v{CLASSIFIER_VERSION}.safetensors"


@torch.no_grad()
def _accuracy(model: FeatureClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    predictions = torch.cat([model(part).argmax(1) for part in x.split(4096)])
    return float((predictions == y).double().mean())


def train_feature_classifier(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FeatureClassifier, float]:
    """Train the classifier of ``dataset`` on its training split (Adam, lr 1e-3, batch 128; half
    of each batch stochastically binarized); returns it with its test accuracy (grey levels).
    ``progress``: a progress bar over the minibatches on a terminal."""
    from .. import data

    name = _classifier_dataset(dataset)
    settings = CLASSIFIER_SETTINGS[name]
    x, y = data.load(name, "train", data_dir=data_dir)
    x_test, y_test = data.load(name, "test", data_dir=data_dir)
    assert y is not None and y_test is not None
    model = FeatureClassifier(x.shape[1], settings["hidden"], int(y.max()) + 1, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    batch = 128
    steps = settings["epochs"] * -(-x.shape[0] // batch)
    description = f"Frechet feature classifier for {name} ({settings['epochs']} epochs)"
    bar = progress_bar(progress, steps, description)
    for _ in range(settings["epochs"]):
        order = torch.randperm(x.shape[0], generator=generator)
        for index in order.split(batch):
            xb = x[index]
            half = xb.shape[0] // 2
            binary = (torch.rand(xb[:half].shape, generator=generator) < xb[:half]).to(xb)
            xb = torch.cat([binary, xb[half:]])
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y[index]).backward()
            optimizer.step()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    model.eval()
    return model, _accuracy(model, x_test, y_test)


def feature_classifier(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[FeatureClassifier, float]:
    """The cached classifier of ``dataset`` and its test accuracy (trained and cached on first
    use, with a progress bar on a terminal unless ``progress`` is False; the file is written
    atomically, so concurrent first uses are safe)."""
    from .. import io

    path = classifier_path(dataset, cache)
    if path.exists():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", io.LegacyCheckpointWarning)
            checkpoint = io.load_checkpoint(path)
        if any(issubclass(w.category, io.LegacyCheckpointWarning) for w in caught):
            io.upgrade(path)  # a cache written by an earlier ebmlab: rewritten in today's format
        model = checkpoint.model
        assert isinstance(model, FeatureClassifier)
        model.eval()
        return model, float(checkpoint.meta["meta"]["test_accuracy"])
    model, accuracy = train_feature_classifier(dataset, data_dir, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.save(
        model,
        path,
        meta={
            "dataset": _classifier_dataset(dataset),
            "test_accuracy": accuracy,
            "version": CLASSIFIER_VERSION,
        },
    )
    return model, accuracy


#: Images per pass of the feature network.
FEATURE_CHUNK = 4096


@torch.no_grad()
def classifier_features(
    model: FeatureClassifier, images: torch.Tensor, progress: bool = True, label: str = "images"
) -> torch.Tensor:
    """Penultimate features of (n, D) images, float64, computed in chunks on the CPU, with a
    progress bar over the images on a terminal (``progress``; ``label`` names them)."""
    x = images.detach().to("cpu", torch.float32)
    bar = progress_bar(progress, x.shape[0], f"Frechet features of {x.shape[0]} {label}")
    parts = []
    for part in x.split(FEATURE_CHUNK):
        parts.append(model.features(part))
        if bar is not None:
            bar.update(part.shape[0])
    if bar is not None:
        bar.close()
    return torch.cat(parts).double()


# ----- the Frechet digit distance ----------------------------------------------------------------
@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance in a classifier's feature space, with what it was measured against."""

    distance: float
    dataset: str
    split: str
    n_samples: int
    n_reference: int
    feature_dim: int
    classifier_accuracy: float  # test accuracy of the feature classifier (grey levels)

    def as_dict(self, prefix: str = "frechet_") -> dict[str, Any]:
        return {
            f"{prefix}distance": self.distance,
            f"{prefix}n_samples": self.n_samples,
            f"{prefix}n_reference": self.n_reference,
            f"{prefix}feature_dim": self.feature_dim,
            f"{prefix}classifier_accuracy": self.classifier_accuracy,
        }


def _check_images(samples: Any, name: str, n_pixels: int) -> torch.Tensor:
    x = as_tensor(samples, name, dim=2, n_features=n_pixels, dtype=torch.float32)
    if x.shape[0] < 2:
        raise ValueError(f"{name}: expected at least 2 images to fit a Gaussian, got {x.shape[0]}")
    return x


def frechet_distance(
    samples: Any,
    dataset: str,
    split: str = "test",
    *,
    binarize: str | None = None,
    reference: Any | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FrechetResult:
    """Frechet distance between ``samples`` and a split of ``dataset`` in the classifier's
    penultimate features (the Frechet digit distance).

    Args:
        samples: (n, D) images in [0, 1] (grey levels or binary), n >= 2.
        dataset: "digits", "mnist", "fashion-mnist" or "binarized-mnist".
        split: the reference split (default "test").
        binarize: binarization of the reference images (None, "threshold", "stochastic"): match
            the data the model was trained on.
        reference: (m, D) reference images given directly (then ``split`` and ``binarize`` only
            label the result).
        data_dir: dataset folder (default ``$EBMLAB_DATA``).
        cache: classifier cache folder (default ``$EBMLAB_CACHE`` or ``~/.cache/ebmlab``).
        progress: progress bars (the classifier's training on first use, the feature passes)
            on a terminal; False: none.

    Returns:
        ``FrechetResult`` (distance, sample sizes, feature dimension, classifier accuracy).
    """
    from .. import data

    classifier, accuracy = feature_classifier(dataset, data_dir, cache, progress)
    x = _check_images(samples, "samples", classifier.n_inputs)
    if reference is None:
        reference, _ = data.load(dataset, split, binarize=binarize, data_dir=data_dir)
    ref = _check_images(reference, "reference", classifier.n_inputs)
    distance = frechet_distance_features(
        classifier_features(classifier, x, progress, "images to score"),
        classifier_features(classifier, ref, progress, "reference images"),
    )
    return FrechetResult(
        distance=distance,
        dataset=dataset,
        split=split,
        n_samples=int(x.shape[0]),
        n_reference=int(ref.shape[0]),
        feature_dim=classifier.feature_dim,
        classifier_accuracy=accuracy,
    )


def independent_bernoulli_samples(
    x_train: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """n binary images with independent pixels, each on with its training-set frequency (the
    product-of-marginals baseline)."""
    p = x_train.double().mean(0).float()
    return (torch.rand(n, p.numel(), generator=generator) < p).float()


def frechet_baselines(
    dataset: str,
    n: int | None = None,
    *,
    binarize: str | None = None,
    reference: Any | None = None,
    train: Any | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Distances to the reference (default: the test split) of n training images (the floor),
    of n independent-Bernoulli images and of n uniform-noise images.

    Args:
        dataset, binarize, data_dir, cache: as for ``frechet_distance``.
        n: sample size; default the reference size (capped by the training set). Use the same n
            for the model's samples, so that the O(d / n) bias is the same in every row.
        reference: reference images (default: the test split, binarized by ``binarize``).
        train: training images (default: the training split, binarized by ``binarize``).
        seed: seeds the choice of training images and the baseline draws.
        progress: progress bars on a terminal (see ``frechet_distance``).
    """
    from .. import data

    if train is None:
        train, _ = data.load(dataset, "train", binarize=binarize, data_dir=data_dir)
    if reference is None:
        reference, _ = data.load(dataset, "test", binarize=binarize, data_dir=data_dir)
    x_train = as_tensor(train, "train", dim=2, dtype=torch.float32).cpu()
    n = min(int(n if n is not None else len(reference)), x_train.shape[0])
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(x_train.shape[0], generator=generator)[:n]
    candidates = {
        "train": x_train[rows],
        "independent_bernoulli": independent_bernoulli_samples(x_train, n, generator),
        "uniform_noise": torch.rand(n, x_train.shape[1], generator=generator),
    }
    return {
        name: frechet_distance(
            images,
            dataset,
            binarize=binarize,
            reference=reference,
            data_dir=data_dir,
            cache=cache,
            progress=progress,
        ).distance
        for name, images in candidates.items()
    }


def frechet_metrics(
    samples: Any,
    dataset: str,
    reference: Any,
    train: Any,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The metrics a family's ``evaluate`` reports: the Frechet digit distance of ``samples`` to
    ``reference`` (the run's test images), with the training-set floor and the
    independent-Bernoulli and uniform-noise baselines at the same sample size (progress bars
    on a terminal unless ``progress`` is False)."""
    result = frechet_distance(
        samples,
        dataset,
        reference=reference,
        data_dir=data_dir,
        cache=cache,
        progress=progress,
    )
    base = frechet_baselines(
        dataset,
        result.n_samples,
        reference=reference,
        train=train,
        seed=seed,
        data_dir=data_dir,
        cache=cache,
        progress=progress,
    )
    return {
        "test_frechet_distance": result.distance,
        "test_frechet_distance_train_floor": base["train"],
        "test_frechet_distance_independent_bernoulli": base["independent_bernoulli"],
        "test_frechet_distance_uniform_noise": base["uniform_noise"],
        "frechet_n_samples": result.n_samples,
        "frechet_n_reference": result.n_reference,
        "frechet_feature_dim": result.feature_dim,
        "frechet_classifier_accuracy": result.classifier_accuracy,
    }


__all__ = [
    "CLASSIFIER_VERSION",
    "FeatureClassifier",
    "FrechetResult",
    "cache_dir",
    "classifier_features",
    "classifier_path",
    "feature_classifier",
    "feature_statistics",
    "frechet_baselines",
    "frechet_distance",
    "frechet_distance_features",
    "frechet_metrics",
    "gaussian_frechet_distance",
    "independent_bernoulli_samples",
    "trace_sqrt_product",
    "train_feature_classifier",
]
