"""Find dataset files on disk, downloading missing ones from their canonical sources.

Every download goes to a temporary file in the destination folder, is checked against the
published SHA-256, and only then renamed into place with ``os.replace`` (atomic on POSIX and
Windows), so an interrupted or corrupt download never leaves a half-written file under the real
name. Set ``EBMLAB_OFFLINE=1`` to never touch the network (missing files then raise at once).

Sources: MNIST (LeCun, Cortes & Burges) from the PyTorch mirror, the CVDF mirror, then
yann.lecun.com; Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from Zalando's S3 bucket, then its
GitHub repository; binarized MNIST (Larochelle & Murray 2011) as the three ``.amat`` text files
from Hugo Larochelle's page, checked against the SHA-256 recorded by TensorFlow Datasets and
converted to our bit-packed ``binarized_mnist.npz`` (arrays ``train``, ``valid``, ``test``, each
``np.packbits(x, axis=1)`` of a (N, 784) 0/1 matrix).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .files import (
    BINARIZED_MNIST_CONTENT_SHA256,
    BINARIZED_MNIST_KEYS,
    ENV_DATA_DIR,
    ENV_OFFLINE,
    SHA256,
    ChecksumError,
    DatasetNotFoundError,
    npz_content_sha256,
    offline,
    verify,
)

TIMEOUT_S = 10.0  # per connection attempt and per read: fail fast when offline

# Base URLs tried in order; the file name is appended. Tests point these at file:// folders.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    "binarized-mnist": [
        "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
    ],
}

# Larochelle's originals: split -> (remote file name, size in bytes, SHA-256).
AMAT_FILES: dict[str, tuple[str, int, str]] = {
    "train": (
        "binarized_mnist_train.amat",
        78_400_000,
        "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    ),
    "valid": (
        "binarized_mnist_valid.amat",
        15_680_000,
        "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    ),
    "test": (
        "binarized_mnist_test.amat",
        15_680_000,
        "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
    ),
}
_AMAT_ROW_BYTES = 2 * 784  # 784 digits, each followed by a space (a newline after the last)


def ensure_files(dataset: str, filenames: list[str], root: Path) -> list[Path]:
    """Paths of ``root/dataset/<filename>``, downloading missing ones, all checksum-verified.

    Raises ``DatasetNotFoundError`` naming every missing file and where to put it, and
    ``ChecksumError`` for a file that exists but is truncated or corrupt.
    """
    paths = [root / dataset / name for name in filenames]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        if offline():
            raise _not_found(dataset, missing, root, f"downloading is disabled ({ENV_OFFLINE}=1)")
        failures: list[str] = []
        unreachable: set[str] = set()  # mirrors that failed to connect are not asked again
        for path in missing:
            try:
                _download(dataset, path, unreachable)
            except (OSError, ValueError) as error:  # network, HTTP, disk, checksum, format
                failures.append(f"{path.name}: {error}")
        still_missing = [p for p in missing if not p.is_file()]
        if still_missing:
            raise _not_found(
                dataset, still_missing, root, "download failed: " + "; ".join(failures)
            )
    for path in paths:
        verify(path, dataset, path.name)
    return paths


def _not_found(dataset: str, missing: list[Path], root: Path, reason: str) -> DatasetNotFoundError:
    lines = "\n".join(f"  {p}" for p in missing)
    return DatasetNotFoundError(
        f"{dataset}: missing file(s), put the original file(s) at exactly:\n{lines}\n"
        f"({reason}). The data folder is {root}; choose another with data_dir=... or the "
        f"{ENV_DATA_DIR} environment variable (layout <data folder>/{dataset}/<original name>)."
    )


def _download(dataset: str, path: Path, unreachable: set[str]) -> None:
    if dataset == "binarized-mnist":
        _download_binarized_mnist(path, unreachable)
        return
    expected = SHA256[(dataset, path.name)]
    errors = []
    for base in MIRRORS[dataset]:
        if base in unreachable:
            continue
        try:
            with _atomic_target(path) as tmp:
                _fetch(base + path.name, tmp, expected)
            return
        except (OSError, ValueError) as error:
            _note_unreachable(base, error, unreachable)
            errors.append(f"{base + path.name}: {error}")
    raise OSError(" | ".join(errors) or "no reachable mirror")


def _note_unreachable(base: str, error: Exception, unreachable: set[str]) -> None:
    """Remember ``base`` when it could not be reached at all (not for HTTP or checksum errors)."""
    connection = isinstance(error, urllib.error.URLError) and not isinstance(
        error, urllib.error.HTTPError
    )
    if connection or isinstance(error, TimeoutError | ConnectionError):
        unreachable.add(base)


def _fetch(url: str, dest: Path, expected_sha256: str) -> None:
    """Stream ``url`` into ``dest`` and check its SHA-256."""
    sys.stderr.write(f"ebmlab: downloading {url}\n")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as f:
        while chunk := response.read(1 << 20):
            f.write(chunk)
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise ChecksumError(
            f"{url}: checksum mismatch: expected SHA-256 {expected_sha256}, "
            f"got {digest.hexdigest()} ({dest.stat().st_size} bytes)"
        )


@contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def amat_to_bits(raw: bytes, name: str) -> np.ndarray:
    """Parse a Larochelle ``.amat`` text file (rows of 784 ``0``/``1`` separated by spaces)."""
    a = np.frombuffer(raw, dtype=np.uint8)
    if a.size == 0 or a.size % _AMAT_ROW_BYTES:
        raise ValueError(f"{name}: {a.size} bytes is not a whole number of 784-pixel rows")
    a = a.reshape(-1, _AMAT_ROW_BYTES)
    separators, digits = a[:, 1::2], a[:, ::2]
    if not ((separators[:, :-1] == ord(" ")).all() and (separators[:, -1] == ord("\n")).all()):
        raise ValueError(f"{name}: not in the .amat layout (784 space-separated digits per line)")
    bits = digits - ord("0")
    if bits.max() > 1:
        raise ValueError(f"{name}: found characters other than 0 and 1")
    return bits


def _download_binarized_mnist(path: Path, unreachable: set[str]) -> None:
    """Fetch the three .amat files, check them, convert to the bit-packed npz at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = {}
    for split in BINARIZED_MNIST_KEYS:
        remote, _size, sha = AMAT_FILES[split]
        errors = []
        for base in MIRRORS["binarized-mnist"]:
            if base in unreachable:
                continue
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{remote}.", suffix=".part")
            os.close(fd)
            tmp = Path(name)
            try:
                _fetch(base + remote, tmp, sha)
                packed[split] = np.packbits(amat_to_bits(tmp.read_bytes(), remote), axis=1)
                break
            except (OSError, ValueError) as error:
                _note_unreachable(base, error, unreachable)
                errors.append(f"{base + remote}: {error}")
            finally:
                tmp.unlink(missing_ok=True)
        if split not in packed:
            raise OSError(" | ".join(errors) or "no reachable mirror")
    with _atomic_target(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **packed)
        actual = npz_content_sha256(tmp)
        if actual != BINARIZED_MNIST_CONTENT_SHA256:  # cannot happen once the amat sums match
            raise ChecksumError(
                f"{path}: converted arrays have SHA-256 {actual}, "
                f"expected {BINARIZED_MNIST_CONTENT_SHA256}"
            )
