"""Tests of ebmlab.data: image datasets (offline, from the shared data folder beside the checkout)
and 2-D toy densities."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import ebmlab.data as data
from ebmlab.data import download, files, images
from ebmlab.data.toy2d_density import mixture_families, mixture_log_density
from ebmlab.data.toy2d_grid import grid_log_density


def _shared_data() -> Path:
    """The offline copies of the datasets: $EBMLAB_TEST_DATA (set by conftest.py to the shared
    data folder beside the checkout) or ./shared/data."""
    candidates = [os.environ.get("EBMLAB_TEST_DATA"), "shared/data"]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "SHA256SUMS").is_file():
            return Path(candidate).resolve()
    return Path("shared/data")


SHARED_DATA = _shared_data()
TOY = [
    "8gaussians",
    "rings",
    "circles",
    "moons",
    "checkerboard",
    "pinwheel",
    "swissroll",
    "2spirals",
]
MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "SHA256SUMS").is_file(), reason="offline copies of the datasets not found"
)


@pytest.fixture(autouse=True)
def offline_shared_data(monkeypatch):
    monkeypatch.setenv("EBMLAB_DATA", str(SHARED_DATA))
    monkeypatch.setenv("EBMLAB_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the tensors here are small; on shared CI cores intra-op threads only add contention
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----- registry and argument checking -----------------------------------------------------------


def test_registry_shapes_and_kinds():
    listing = data.list_datasets()
    assert set(listing) == set(data.DATASETS) and set(TOY) <= set(listing)
    assert all(isinstance(text, str) and text and "\n" not in text for text in listing.values())
    assert data.image_shape("digits") == (8, 8)
    for name in ("mnist", "fashion-mnist", "binarized-mnist"):
        assert data.image_shape(name) == (28, 28)
        assert not data.is_toy2d(name)
    for name in TOY:
        assert data.image_shape(name) is None
        assert data.is_toy2d(name)


def test_unknown_names_list_the_valid_ones():
    for call in (
        lambda: data.load("cifar"),
        lambda: data.image_shape("cifar"),
        lambda: data.is_toy2d("cifar"),
        lambda: data.toy2d("cifar", 3),
        lambda: data.toy2d_log_density("cifar", torch.zeros(1, 2)),
    ):
        with pytest.raises(ValueError) as info:
            call()
        for name in ("digits", "mnist", "fashion-mnist", "binarized-mnist", "8gaussians"):
            assert name in str(info.value)
    with pytest.raises(ValueError, match="train, test, valid, train-50k"):
        data.load("mnist", split="validation")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        data.load("digits", split="valid")
    with pytest.raises(ValueError, match="binarize"):
        data.load("digits", binarize="otsu")
    with pytest.raises(ValueError, match=r"toy2d\('moons'"):
        data.load("moons")
    with pytest.raises(ValueError, match="2spirals"):
        data.toy2d("mnist", 3)


def test_data_dir_resolution(monkeypatch, tmp_path):
    assert data.resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("EBMLAB_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("EBMLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "ebmlab"


# ----- digits -----------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_disjoint():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_train, y_train = data.load("digits", "train")
    x_test, y_test = data.load("digits", "test")
    assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    train, test = data.digits_split_indices("train"), data.digits_split_indices("test")
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    np.testing.assert_array_equal(x_test.numpy(), bunch.data[test].astype(np.float32) / 16)
    np.testing.assert_array_equal(y_train.numpy(), bunch.target[train])
    assert np.bincount(bunch.target).tolist() == DIGITS_COUNTS
    expected_test = [round(0.2 * c) for c in DIGITS_COUNTS]
    assert torch.bincount(y_test, minlength=10).tolist() == expected_test
    # pinned: the split is a fixed hash of the index, the same in every version and process
    assert test[:8].tolist() == [1, 3, 8, 9, 14, 17, 25, 33]
    assert hashlib.sha256(test.astype(np.int64).tobytes()).hexdigest() == DIGITS_TEST_SHA256


DIGITS_TEST_SHA256 = "e7708a23e116db6a5a2eeb6e2175747f6a3a53d05de07ad0679873e67b1babd1"


def test_returned_tensors_do_not_alias_the_cache():
    x, y = data.load("digits", "test")
    x.fill_(7.0)
    y.fill_(-1)
    x2, y2 = data.load("digits", "test")
    assert float(x2.max()) == 1.0 and int(y2.min()) == 0


# ----- MNIST, Fashion-MNIST, binarized MNIST ----------------------------------------------------


@needs_data
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_datasets_shapes_ranges_and_counts(name, split):
    x, y = data.load(name, split)
    n = 60_000 if split == "train" else 10_000
    assert x.shape == (n, 784) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    levels = x[:100] * 255
    assert torch.equal(levels, levels.round())  # pixels are k / 255
    counts = torch.bincount(y, minlength=10).tolist()
    expected = MNIST_COUNTS[split] if name == "mnist" else [n // 10] * 10
    assert counts == expected


@needs_data
def test_valid_split_is_the_tail_of_train():
    x, y = data.load("mnist", "train")
    xv, yv = data.load("mnist", "valid")
    xh, yh = data.load("mnist", "train-50k")
    assert xv.shape == (10_000, 784) and xh.shape == (50_000, 784)
    assert torch.equal(xv, x[50_000:]) and torch.equal(yv, y[50_000:])
    assert torch.equal(xh, x[:50_000]) and torch.equal(yh, y[:50_000])


@needs_data
def test_binarized_mnist():
    sizes = {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split, n in sizes.items():
        x, y = data.load("binarized-mnist", split)
        assert y is None
        assert x.shape == (n, 784) and x.dtype == torch.float32
        assert bool(((x == 0) | (x == 1)).all())
        # about 13% of MNIST pixels are on (mean intensity 0.13)
        assert 0.12 < float(x.mean()) < 0.14
    x, _ = data.load("binarized-mnist", "test")
    for method in ("threshold", "stochastic"):
        assert torch.equal(data.load("binarized-mnist", "test", binarize=method)[0], x)


@needs_data
def test_checksum_table_matches_the_published_sums():
    published = {}
    for line in (SHARED_DATA / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        dataset, filename = Path(path).parts[-2:]
        published[(dataset, filename)] = digest
    assert published == files.SHA256
    for (dataset, filename), digest in published.items():
        data_file = SHARED_DATA / dataset / filename
        files.verify(data_file, dataset, filename)  # hashes the file (or hits the cache)
        assert files.file_key(data_file) in files._verified
        if data_file.stat().st_size < 100_000:
            assert files.sha256_file(data_file) == digest


@needs_data
def test_truncated_file_raises_checksum_error(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz", folder)
    good = (SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:-100])
    with pytest.raises(data.ChecksumError) as info:
        data.load("mnist", "test", data_dir=tmp_path)
    message = str(info.value)
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in message
    assert files.SHA256[("mnist", "t10k-labels-idx1-ubyte.gz")] in message
    assert hashlib.sha256(good[:-100]).hexdigest() in message
    assert isinstance(info.value, ValueError)


@needs_data
def test_corrupt_binarized_npz_raises_checksum_error(tmp_path):
    folder = tmp_path / "binarized-mnist"
    folder.mkdir()
    good = (SHARED_DATA / "binarized-mnist" / "binarized_mnist.npz").read_bytes()
    (folder / "binarized_mnist.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(
        data.ChecksumError, match=files.SHA256[("binarized-mnist", "binarized_mnist.npz")]
    ):
        data.load("binarized-mnist", data_dir=tmp_path)


def test_missing_file_offline_names_the_path(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("fashion-mnist", "test", data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "fashion-mnist" / name) in message
    assert "EBMLAB_DATA" in message and "EBMLAB_OFFLINE" in message


@needs_data
def test_download_is_atomic_and_verified(monkeypatch, tmp_path):
    """Download through file:// mirrors: a bad mirror leaves nothing behind, a good one works."""
    monkeypatch.delenv("EBMLAB_OFFLINE")
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = (SHARED_DATA / "mnist" / name).read_bytes()
        (bad / name).write_bytes(raw[: len(raw) // 2])
    shutil.copytree(SHARED_DATA / "mnist", good)
    root = tmp_path / "data"
    monkeypatch.setitem(download.MIRRORS, "mnist", [bad.as_uri() + "/"])
    with pytest.raises(data.DatasetNotFoundError, match="checksum mismatch"):
        data.load("mnist", "test", data_dir=root)
    assert list((root / "mnist").iterdir()) == []  # no partial or temporary file stays
    gone = (tmp_path / "gone").as_uri() + "/"  # unreachable: skipped after the first failure
    monkeypatch.setitem(download.MIRRORS, "mnist", [gone, bad.as_uri() + "/", good.as_uri() + "/"])
    x, _ = data.load("mnist", "test", data_dir=root)
    assert x.shape == (10_000, 784)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def _amat(bits: np.ndarray) -> bytes:
    rows = np.empty((bits.shape[0], 2 * 784), dtype=np.uint8)
    rows[:, ::2] = bits + ord("0")
    rows[:, 1::2] = ord(" ")
    rows[:, -1] = ord("\n")
    return rows.tobytes()


def test_amat_conversion_pipeline(monkeypatch, tmp_path):
    """Synthetic .amat files go through download, checksum, conversion and atomic write."""
    monkeypatch.delenv("EBMLAB_OFFLINE")
    rng = np.random.default_rng(0)
    source = tmp_path / "source"
    source.mkdir()
    arrays, amat_files = {}, {}
    for split, n in (("train", 5), ("valid", 2), ("test", 3)):
        arrays[split] = rng.integers(0, 2, size=(n, 784), dtype=np.uint8)
        raw = _amat(arrays[split])
        name = f"binarized_mnist_{split}.amat"
        (source / name).write_bytes(raw)
        amat_files[split] = (name, len(raw), hashlib.sha256(raw).hexdigest())
    content = hashlib.sha256(
        b"".join(np.packbits(arrays[k], axis=1).tobytes() for k in ("train", "valid", "test"))
    ).hexdigest()
    monkeypatch.setattr(download, "AMAT_FILES", amat_files)
    monkeypatch.setattr(download, "BINARIZED_MNIST_CONTENT_SHA256", content)
    monkeypatch.setattr(files, "BINARIZED_MNIST_CONTENT_SHA256", content)
    monkeypatch.setitem(download.MIRRORS, "binarized-mnist", [source.as_uri() + "/"])
    x, y = data.load("binarized-mnist", "valid", data_dir=tmp_path / "data")
    assert y is None
    np.testing.assert_array_equal(x.numpy(), arrays["valid"].astype(np.float32))
    assert [p.name for p in (tmp_path / "data" / "binarized-mnist").iterdir()] == [
        "binarized_mnist.npz"
    ]
    with pytest.raises(ValueError, match="784"):
        download.amat_to_bits(b"0 1\n", "x.amat")


@pytest.mark.slow
@needs_data
def test_binarized_mnist_from_the_original_amat_files(monkeypatch, tmp_path):
    """Our arrays written as Larochelle's .amat text have the published SHA-256 (README claim)."""
    monkeypatch.delenv("EBMLAB_OFFLINE")
    with np.load(SHARED_DATA / "binarized-mnist" / "binarized_mnist.npz") as z:
        for split in ("train", "valid", "test"):
            raw = _amat(np.unpackbits(z[split], axis=1, count=784))
            name, size, digest = download.AMAT_FILES[split]
            assert len(raw) == size and hashlib.sha256(raw).hexdigest() == digest
            (tmp_path / name).write_bytes(raw)
    monkeypatch.setitem(download.MIRRORS, "binarized-mnist", [tmp_path.as_uri() + "/"])
    x, _ = data.load("binarized-mnist", "test", data_dir=tmp_path / "data")
    assert torch.equal(x, data.load("binarized-mnist", "test")[0])


# ----- binarization -----------------------------------------------------------------------------


@needs_data
def test_stochastic_binarization_is_fixed_and_unbiased():
    x, _ = data.load("mnist", "test")
    b1, _ = data.load("mnist", "test", binarize="stochastic")
    images._BITS_CACHE.clear()  # drawn again from the seed, not read from the cache
    b2, _ = data.load("mnist", "test", binarize="stochastic")
    assert b1.dtype == torch.float32 and torch.equal(b1, b2)
    assert bool(((b1 == 0) | (b1 == 1)).all())
    assert bool((b1[x == 0] == 0).all()) and bool((b1[x == 1] == 1).all())
    # E[b] = x: per intensity band, the fraction of ones matches the mean intensity within 5 SE
    for lo, hi in [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0)]:
        band = (x > lo) & (x <= hi)
        p = x[band].double()
        se = math.sqrt(float((p * (1 - p)).sum())) / p.numel()
        assert abs(float(b1[band].double().mean() - p.mean())) < 5 * se
    # a different split has a different seed
    assert data.stochastic_seed("mnist", "test") != data.stochastic_seed("mnist", "train")


@needs_data
def test_stochastic_valid_is_binarized_like_train():
    b_train, _ = data.load("fashion-mnist", "train", binarize="stochastic")
    b_valid, _ = data.load("fashion-mnist", "valid", binarize="stochastic")
    assert torch.equal(b_valid, b_train[50_000:])


def test_threshold_and_digits_binarization():
    x, _ = data.load("digits", "train")
    t, _ = data.load("digits", "train", binarize="threshold")
    assert torch.equal(t, (x > 0.5).float())
    s1, _ = data.load("digits", "train", binarize="stochastic")
    s2, _ = data.load("digits", "train", binarize="stochastic")
    assert torch.equal(s1, s2)
    se = math.sqrt(float((x * (1 - x)).double().sum())) / x.numel()
    assert abs(float(s1.double().mean() - x.double().mean())) < 5 * se
    g = torch.Generator().manual_seed(0)
    assert torch.equal(data.binarize(x, "threshold"), t)
    assert data.binarize(x, "stochastic", g).shape == x.shape
    with pytest.raises(ValueError, match="generator"):
        data.binarize(x, "stochastic")


def test_idx_reader_rejects_bad_files(tmp_path):
    from ebmlab.data.idx import read_idx_gz

    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    assert read_idx_gz(path).tolist() == [1, 2, 3]
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3]))
    with pytest.raises(ValueError, match="shape"):
        read_idx_gz(path)
    with gzip.open(path, "wb") as f:
        f.write(bytes([1, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    with pytest.raises(ValueError, match="magic"):
        read_idx_gz(path)


# ----- toy 2-D densities ------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOY)
def test_toy2d_sampling_is_seeded(name):
    x = data.toy2d(name, 1000, seed=3)
    assert x.shape == (1000, 2) and x.dtype == torch.float32
    assert torch.equal(x, data.toy2d(name, 1000, seed=3))
    assert not torch.equal(x, data.toy2d(name, 1000, seed=4))
    assert torch.equal(x, data.toy2d(name, 1000, torch.Generator().manual_seed(3)))
    assert bool((x.abs() < 4.5).all())


def test_toy2d_argument_checks():
    with pytest.raises(ValueError, match="n:"):
        data.toy2d("moons", -1)
    with pytest.raises(TypeError, match="seed"):
        data.toy2d("moons", 3, seed=1.5)
    with pytest.raises(ValueError, match="x:"):
        data.toy2d_log_density("moons", torch.zeros(3, 3))
    with pytest.raises(ValueError, match="n:"):
        data.toy2d_grid("moons", n=0)


@pytest.fixture(scope="module")
def grids():
    return {name: data.toy2d_grid(name) for name in TOY}


@pytest.mark.parametrize("name", TOY)
def test_toy2d_density_integrates_to_one(name, grids):
    """The mass outside [-4.5, 4.5]^2 is below 1e-5 for every set (Gaussian tail bounds: the
    nearest mode is >= 4.7 noise stds from the border), and the midpoint rule on cells of 0.05
    (< noise std / 1.6) is exact to far better, so |mass - 1| < 1e-4 has a 10x margin."""
    grid = grids[name]
    mass = float(torch.exp(grid.log_density).sum() * grid.cell_area)
    assert abs(mass - 1) < 1e-4
    assert float(grid.log_normalizer(grid.log_density)) == pytest.approx(math.log(mass), abs=1e-12)


@pytest.mark.parametrize("name", TOY)
def test_toy2d_samples_agree_with_density(name, grids):
    """Samples follow the density: (1) the mean of -log p(samples) estimates the entropy
    H = -int p log p (from the grid) within 5 standard errors, (2) a chi-square test of the
    counts in 1 x 1 bins against the grid's bin probabilities passes at level 1e-4."""
    n = 5000 if name == "2spirals" else 20000
    x = data.toy2d(name, n, seed=11)
    log_p = data.toy2d_log_density(name, x.double())
    assert bool(torch.isfinite(log_p).all())
    grid = grids[name]
    p = torch.exp(grid.log_density)
    support = p > 0
    entropy = float(-(p[support] * grid.log_density[support]).sum() * grid.cell_area)
    se = float(log_p.std()) / math.sqrt(n)
    # grid quadrature of the entropy is exact to ~1e-6; checkerboard's -log p is constant (se 0)
    assert abs(float(-log_p.mean()) - entropy) <= 5 * se + 1e-5

    cells_per_bin = 20  # 1 x 1 bins of 20 x 20 grid cells
    bins = grid.n // cells_per_bin
    prob = (
        p.reshape(bins, cells_per_bin, bins, cells_per_bin).sum((1, 3)) * grid.cell_area
    ).flatten()
    index = torch.floor(x.double() + 4.5).clamp(0, bins - 1).to(torch.int64)
    counts = torch.bincount(index[:, 1] * bins + index[:, 0], minlength=bins * bins).double()
    keep = prob * n >= 5  # pool the sparse bins (and the outside mass) into one
    expected = torch.cat([prob[keep] * n, (1 - prob[keep].sum()).reshape(1) * n])
    observed = torch.cat([counts[keep], (n - counts[keep].sum()).reshape(1)])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, df=len(expected) - 1) > 1e-4


def test_8gaussians_matches_the_explicit_mixture():
    x = data.toy2d("8gaussians", 500, seed=0).double()
    s = 1 / math.sqrt(2)
    units = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    means = torch.tensor(units, dtype=torch.float64) * 4 / 1.414
    components = torch.distributions.MultivariateNormal(
        means, covariance_matrix=torch.eye(2, dtype=torch.float64) * (0.5 / 1.414) ** 2
    )
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(8, dtype=torch.float64)), components
    )
    torch.testing.assert_close(data.toy2d_log_density("8gaussians", x), mixture.log_prob(x))


@pytest.mark.parametrize(
    "name,radii,std", [("rings", (3, 2.25, 1.5, 0.75), 0.08), ("circles", (3, 1.5), 0.24)]
)
def test_ring_closed_form_matches_angle_quadrature(name, radii, std):
    """The Bessel closed form equals the average over the angle (trapezoid rule on a periodic
    integrand, exact to machine precision with 4096 nodes)."""
    x = torch.cat([data.toy2d(name, 200, seed=1).double(), torch.tensor([[0.0, 0.0], [4.0, 1.0]])])
    angle = torch.arange(4096, dtype=torch.float64) * 2 * math.pi / 4096
    per_ring = []
    for radius in radii:
        c = radius * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
        d2 = ((x[:, None, :] - c) ** 2).sum(-1)
        log_k = -d2 / (2 * std**2) - math.log(2 * math.pi * std**2)
        per_ring.append(torch.logsumexp(log_k, 1) - math.log(4096))
    expected = torch.logsumexp(torch.stack(per_ring, -1), -1) - math.log(len(radii))
    torch.testing.assert_close(data.toy2d_log_density(name, x), expected, rtol=0, atol=1e-10)


def test_checkerboard_support():
    x = data.toy2d("checkerboard", 4000, seed=0)
    assert bool((data.toy2d_log_density("checkerboard", x) == -math.log(32)).all())
    # columns and rows of side 2: a point is on the board when column + row is even
    off = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [3.0, -3.0], [4.5, 0.0], [0.5, 5.0]])
    assert bool(torch.isneginf(data.toy2d_log_density("checkerboard", off)).all())
    on = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [3.0, 3.0], [-3.0, -3.0], [-3.0, 1.0]])
    assert bool((data.toy2d_log_density("checkerboard", on) == -math.log(32)).all())


@pytest.mark.parametrize("name", ["moons", "swissroll", "2spirals"])
def test_curve_quadrature_is_converged(name):
    """Panels of one noise std versus four times finer panels: identical where the data are,
    and within 1e-3 nats anywhere in the grid square (far tails, log density down to -700)."""
    coarse, fine = mixture_families(name), mixture_families(name, 0.25)
    samples = data.toy2d(name, 500, seed=5).double()
    rel = torch.expm1(mixture_log_density(coarse, samples) - mixture_log_density(fine, samples))
    assert float(rel.abs().max()) < 1e-9
    corners = data.toy2d_grid(None, n=30).points.double()
    diff = mixture_log_density(coarse, corners) - mixture_log_density(fine, corners)
    assert float(diff.abs().max()) < 1e-3


@pytest.mark.parametrize("name", TOY)
def test_grid_fast_path_equals_pointwise_density(name):
    grid = data.toy2d_grid(name, n=36, dtype=torch.float64)
    pointwise = data.toy2d_log_density(name, grid.points)
    centers = grid.points[: grid.n, 0]
    torch.testing.assert_close(grid_log_density(name, centers), pointwise, rtol=1e-10, atol=1e-10)
    assert torch.equal(grid.points[grid.n + 2], torch.stack([centers[2], centers[1]]))


@pytest.mark.parametrize("name", [n for n in TOY if n != "checkerboard"])
def test_toy2d_log_density_is_differentiable_and_finite(name):
    x = data.toy2d(name, 4, seed=2).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: data.toy2d_log_density(name, z), (x,), atol=1e-5)
    far = torch.tensor([[0.0, 0.0], [30.0, -40.0], [1e3, 1e3]], dtype=torch.float64)
    assert bool(torch.isfinite(data.toy2d_log_density(name, far)).all())


def test_grid_kl_is_zero_for_the_data_and_positive_otherwise(grids):
    grid = grids["moons"]
    assert float(grid.kl_from_data(grid.log_density + 3.0)) == pytest.approx(0.0, abs=1e-10)
    wrong = grids["8gaussians"].log_density
    assert float(grid.kl_from_data(wrong)) > 1.0
    checker = grids["checkerboard"]
    assert float(checker.kl_from_data(torch.zeros(checker.n**2))) == pytest.approx(
        math.log(81 / 32),
        abs=1e-9,  # uniform on the 9 x 9 square vs uniform on area 32
    )
    with pytest.raises(ValueError, match="log_density"):
        data.toy2d_grid(None, n=18).kl_from_data(torch.zeros(18 * 18))
