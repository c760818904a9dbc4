"""Image datasets as flat float32 tensors in [0, 1]: digits, MNIST, Fashion-MNIST, binarized MNIST.

- digits: scikit-learn's bundled copy of the UCI optical digits (Alpaydin & Kaynak 1998), 1797
  images of 8x8 pixels with values 0..16 (divided by 16). Split: stratified, 20% of each class
  (rounded) to test, chosen by a fixed hash of the image index, so the split never depends on a
  random number generator's version: train 1438 / test 359. No validation split.
- mnist (LeCun et al. 1998), fashion-mnist (Xiao et al. 2017): pixels / 255. Splits "train" (all
  60000), "test" (10000), "valid" (the last 10000 of train: it overlaps "train") and "train-50k"
  (the first 50000 of train, disjoint from "valid").
- binarized-mnist: the fixed binarization of Larochelle & Murray (2011), train 50000 / valid 10000
  / test 10000, no labels (``y`` is None). Already binary, so ``binarize`` has no effect on it.

Decoded uint8 arrays are cached per process (``functools.lru_cache``); every call returns new
tensors, so a caller cannot corrupt the cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..validation import Constraint
from .binarize import binarize_stochastic, binarize_threshold, check_binarization, stochastic_seed
from .download import ensure_files
from .files import BINARIZED_MNIST_KEYS, file_key, resolve_data_dir
from .idx import read_idx_gz
from .registry import dataset_info

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# split -> (file split it is cut from, slice of that file's rows)
_MNIST_SPLITS = {
    "train": ("train", slice(None)),
    "test": ("test", slice(None)),
    "valid": ("train", slice(50_000, None)),
    "train-50k": ("train", slice(0, 50_000)),
}
DIGITS_TEST_FRACTION = 0.2

FileKey = tuple[tuple[str, int, int], ...]


class _FolderPath(Constraint):
    """A folder given as a path (``str`` or ``os.PathLike``) or None (the default folder)."""

    def accepts(self, value: object) -> bool:
        return value is None or isinstance(value, str | os.PathLike)

    def _describe(self) -> str:
        return "a folder path (str or os.PathLike) or None"


def load(
    name: str,
    split: str = "train",
    binarize: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load an image dataset as ``(x, y)``.

    Args:
        name: "digits", "mnist", "fashion-mnist" or "binarized-mnist".
        split: "train" or "test"; also "valid" and "train-50k" for the MNISTs (see module doc);
            "train", "valid", "test" for binarized-mnist.
        binarize: None (grey levels), "threshold" (> 0.5) or "stochastic" (Bernoulli(pixel) with
            a fixed seed per dataset and split: every call returns the same binarization).
        data_dir: folder holding ``<dataset>/<file>``; default ``$EBMLAB_DATA`` or
            ``~/.cache/ebmlab``. Missing files are downloaded unless ``EBMLAB_OFFLINE=1``.

    Returns:
        x: float32 (N, D) in [0, 1] (D = 64 or 784), y: int64 (N,) class labels, or None for
        binarized-mnist.

    Raises:
        ValueError: unknown name, split or binarization (the message lists the valid ones).
        DatasetNotFoundError: a file is missing and could not be downloaded.
        ChecksumError: a file is truncated or corrupt.
    """
    info = dataset_info(name)
    if info.kind != "image":
        raise ValueError(
            f"name: {name!r} is a 2-D toy density, not an image dataset: sample it with "
            f"ebmlab.data.toy2d({name!r}, n, seed)"
        )
    if split not in info.splits:
        raise ValueError(
            f"split: {name} has no split {split!r}; valid splits: {', '.join(info.splits)}"
        )
    check_binarization(binarize)
    _FolderPath().check(data_dir, "data_dir")
    root = resolve_data_dir(data_dir)
    if name == "digits":
        return _load_digits(split, binarize)
    if name == "binarized-mnist":
        return _load_binarized_mnist(split, root)
    return _load_idx(name, split, binarize, root)


def _to_float(pixels: np.ndarray, max_value: float) -> torch.Tensor:
    # astype copies, so the returned tensor never aliases the cached read-only array
    return torch.from_numpy(pixels.astype(np.float32)).div_(max_value)


def _to_labels(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(labels.astype(np.int64))


# ----- digits -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.uint8)
    y = bunch.target.astype(np.uint8)
    test = []
    for c in range(10):
        members = np.flatnonzero(y == c)
        order = sorted(members, key=_digits_rank)
        test.extend(order[: round(DIGITS_TEST_FRACTION * len(members))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    for a in (x, y):
        a.flags.writeable = False
    return x, y, {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _digits_rank(index: int) -> bytes:
    return hashlib.sha256(f"ebmlab/digits-split/{index}".encode()).digest()


def digits_split_indices(split: str) -> np.ndarray:
    """Indices into ``sklearn.datasets.load_digits()`` of the digits ``split`` (sorted)."""
    splits = _digits()[2]
    if split not in splits:
        raise ValueError(f"split: digits has no split {split!r}; valid splits: train, test")
    return splits[split].copy()


def _load_digits(split: str, binarize: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, index = _digits()
    pixels = _to_float(x[index[split]], 16.0)
    if binarize == "stochastic":
        pixels = _stochastic(("digits", split, ()), pixels)
    elif binarize == "threshold":
        pixels = binarize_threshold(pixels)
    return pixels, _to_labels(y[index[split]])


# ----- MNIST and Fashion-MNIST ------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _decode_idx(key: tuple[str, int, int]) -> np.ndarray:
    """The decoded IDX file ``key[0]`` (the size and mtime in the key invalidate on change)."""
    return read_idx_gz(Path(key[0]))


def _idx_file_split(
    name: str, file_split: str, root: Path
) -> tuple[np.ndarray, np.ndarray, FileKey]:
    images_path, labels_path = ensure_files(name, list(_IDX_FILES[file_split]), root)
    keys = (file_key(images_path), file_key(labels_path))
    images, labels = _decode_idx(keys[0]), _decode_idx(keys[1])
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path}: {images.shape[0]} images, but {labels_path} has "
            f"{labels.shape[0]} labels"
        )
    return images.reshape(images.shape[0], -1), labels, keys


def _load_idx(
    name: str, split: str, binarize: str | None, root: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    file_split, rows = _MNIST_SPLITS[split]
    images, labels, keys = _idx_file_split(name, file_split, root)
    if binarize == "stochastic":
        # binarize the whole file split with its seed, then cut: "valid" is then exactly the
        # binarized rows of "train" it overlaps
        bits = _stochastic_bits((name, file_split, keys), images, 255.0)
        x = torch.from_numpy(bits[rows].astype(np.float32))
    else:
        x = _to_float(images[rows], 255.0)
        if binarize == "threshold":
            x = binarize_threshold(x)
    return x, _to_labels(labels[rows])


# ----- stochastic binarization cache ------------------------------------------------------------

_BITS_CACHE: dict[tuple[str, str, FileKey], np.ndarray] = {}
_BITS_CACHE_SIZE = 4  # a few splits of MNIST-sized data (47 MB each as uint8)


def _stochastic_bits(
    key: tuple[str, str, FileKey], pixels: np.ndarray, max_value: float
) -> np.ndarray:
    """Bernoulli(pixels / max_value) drawn with the fixed seed of (name, split), cached."""
    if key not in _BITS_CACHE:
        if len(_BITS_CACHE) >= _BITS_CACHE_SIZE:
            _BITS_CACHE.pop(next(iter(_BITS_CACHE)))
        generator = torch.Generator().manual_seed(stochastic_seed(key[0], key[1]))
        bits = binarize_stochastic(_to_float(pixels, max_value), generator).to(torch.uint8)
        array = bits.numpy()
        array.flags.writeable = False
        _BITS_CACHE[key] = array
    return _BITS_CACHE[key]


def _stochastic(key: tuple[str, str, FileKey], pixels: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(stochastic_seed(key[0], key[1]))
    return binarize_stochastic(pixels, generator)


# ----- binarized MNIST --------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _decode_binarized_mnist(key: tuple[str, int, int]) -> dict[str, np.ndarray]:
    with open(key[0], "rb") as f, np.load(f, allow_pickle=False) as z:
        arrays = {k: np.unpackbits(z[k], axis=1, count=784) for k in BINARIZED_MNIST_KEYS}
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _load_binarized_mnist(split: str, root: Path) -> tuple[torch.Tensor, None]:
    (path,) = ensure_files("binarized-mnist", ["binarized_mnist.npz"], root)
    bits = _decode_binarized_mnist(file_key(path))[split]
    return _to_float(bits, 1.0), None
