"""Where dataset files live, their published checksums, and the errors for missing or bad files.

Layout: ``<data_dir>/<dataset>/<original file name>``, e.g.
``<data_dir>/mnist/train-images-idx3-ubyte.gz``. The data directory is the ``data_dir`` argument,
else the environment variable ``EBMLAB_DATA``, else ``~/.cache/ebmlab``.

SHA-256 sums: MNIST and Fashion-MNIST as published (they match the MD5 sums of LeCun et al. and
Zalando Research, and TensorFlow Datasets' ``url_checksums``); binarized MNIST (Larochelle &
Murray 2011) is stored as our own bit-packed ``.npz`` (see ``download.py``), so besides the
file's SHA-256 we accept any ``.npz`` whose *array contents* hash to the published arrays (a
freshly converted file has different zip timestamps, hence a different file hash).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

ENV_DATA_DIR = "EBMLAB_DATA"
ENV_OFFLINE = "EBMLAB_OFFLINE"
DEFAULT_DATA_DIR = "~/.cache/ebmlab"

# (dataset folder, file name) -> SHA-256 of the file, as published.
SHA256: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte.gz"): (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    ("mnist", "train-labels-idx1-ubyte.gz"): (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    ("mnist", "t10k-images-idx3-ubyte.gz"): (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
    ("fashion-mnist", "train-images-idx3-ubyte.gz"): (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"): (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
    ("binarized-mnist", "binarized_mnist.npz"): (
        "df14a884cb4aa7ac6692463fb31798a687c4e762c73c23a8ae3114fbec4e6093"
    ),
}

# SHA-256 of the raw bytes of the packed arrays train, valid, test (uint8, (N, 98), C order)
# concatenated in that order: identifies binarized MNIST whatever the zip container looks like.
BINARIZED_MNIST_CONTENT_SHA256 = "c462f82a020638a4d5d8d44e4c83242ee0145ee1d125869d0e030c35011837e6"
BINARIZED_MNIST_KEYS = ("train", "valid", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file exists but its SHA-256 is not the published one (truncated or corrupt)."""


def resolve_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$EBMLAB_DATA``, else ``~/.cache/ebmlab``."""
    if path is None:
        path = os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return Path(path).expanduser()


def offline() -> bool:
    """True when ``EBMLAB_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def npz_content_sha256(path: Path) -> str:
    """SHA-256 of the binarized-MNIST arrays in ``path`` (``BINARIZED_MNIST_CONTENT_SHA256``)."""
    digest = hashlib.sha256()
    # open the file ourselves: np.load leaks its handle when a truncated zip fails to parse
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
        for key in BINARIZED_MNIST_KEYS:
            digest.update(np.ascontiguousarray(z[key]).tobytes())
    return digest.hexdigest()


# Files verified in this process, keyed by (resolved path, size, mtime in ns): a changed file is
# hashed again, an unchanged one is not (hashing MNIST costs ~0.1 s per load otherwise).
_verified: set[tuple[str, int, int]] = set()


def file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def verify(path: Path, dataset: str, filename: str) -> None:
    """Raise ``ChecksumError`` unless ``path`` has the published SHA-256 of ``dataset/filename``."""
    key = file_key(path)
    if key in _verified:
        return
    expected = SHA256[(dataset, filename)]
    actual = sha256_file(path)
    if actual != expected and not _same_npz_content(path, dataset):
        raise ChecksumError(
            f"{path}: checksum mismatch for {dataset}/{filename} (truncated or corrupt file): "
            f"expected SHA-256 {expected}, got {actual} ({key[1]} bytes). Delete the file to "
            "download it again, or replace it with a good copy."
        )
    _verified.add(key)


def _same_npz_content(path: Path, dataset: str) -> bool:
    if dataset != "binarized-mnist":
        return False
    try:
        return npz_content_sha256(path) == BINARIZED_MNIST_CONTENT_SHA256
    except Exception:  # a truncated zip raises one of several errors; any of them means "bad"
        return False
