"""The datasets ebmlab knows, with a one-line description each (``ebmlab list`` prints these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: ``kind`` is "image" (``load``) or "toy2d" (``toy2d``, ``toy2d_log_density``)."""

    name: str
    kind: str
    description: str
    image_shape: tuple[int, int] | None = None
    splits: tuple[str, ...] = ()


_MNIST_SPLITS = ("train", "test", "valid", "train-50k")

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "digits",
            "image",
            "scikit-learn's 8x8 handwritten digits (1797, bundled), fixed stratified split "
            "train 1438 / test 359",
            (8, 8),
            ("train", "test"),
        ),
        DatasetInfo(
            "mnist",
            "image",
            "MNIST 28x28 handwritten digits, train 60000 / test 10000 "
            "(valid = last 10000 of train)",
            (28, 28),
            _MNIST_SPLITS,
        ),
        DatasetInfo(
            "fashion-mnist",
            "image",
            "Fashion-MNIST 28x28 clothing images, train 60000 / test 10000 "
            "(valid = last 10000 of train)",
            (28, 28),
            _MNIST_SPLITS,
        ),
        DatasetInfo(
            "binarized-mnist",
            "image",
            "MNIST with the fixed binarization of Larochelle & Murray 2011, "
            "train 50000 / valid 10000 / test 10000, no labels",
            (28, 28),
            ("train", "valid", "test"),
        ),
        DatasetInfo(
            "8gaussians", "toy2d", "2-D: 8 Gaussians (std 0.35) on a circle of radius 2.83"
        ),
        DatasetInfo("rings", "toy2d", "2-D: 4 concentric rings, radii 0.75 to 3, noise std 0.08"),
        DatasetInfo(
            "circles", "toy2d", "2-D: 2 concentric circles, radii 1.5 and 3, noise std 0.24"
        ),
        DatasetInfo("moons", "toy2d", "2-D: two interleaved half circles, noise std 0.2"),
        DatasetInfo("checkerboard", "toy2d", "2-D: uniform on 8 squares of a 4x4 checkerboard"),
        DatasetInfo("pinwheel", "toy2d", "2-D: 5 curved arms of a pinwheel"),
        DatasetInfo("swissroll", "toy2d", "2-D: swiss roll spiral, noise std 0.2"),
        DatasetInfo("2spirals", "toy2d", "2-D: two interleaved spirals"),
    )
}


def list_datasets() -> dict[str, str]:
    """Dataset name -> one-line description, images first, then the 2-D toy densities."""
    return {name: info.description for name, info in DATASETS.items()}


def dataset_info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of ``name``; raises ``ValueError`` listing the valid names."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]


def image_shape(name: str) -> tuple[int, int] | None:
    """(H, W) of the images of ``name``, or None for a 2-D toy density."""
    return dataset_info(name).image_shape


def is_toy2d(name: str) -> bool:
    """True if ``name`` is a 2-D toy density (sampled with ``toy2d``), False for image datasets."""
    return dataset_info(name).kind == "toy2d"


def toy2d_names() -> tuple[str, ...]:
    return tuple(name for name, info in DATASETS.items() if info.kind == "toy2d")
