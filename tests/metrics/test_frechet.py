"""Frechet distance: closed forms (identical, diagonal, commuting, 2x2 non-commuting, 1-D),
invariances, and the Frechet digit distance with its cached classifier on digits."""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab import data
from ebmlab.metrics import frechet
from ebmlab.metrics.frechet import (
    classifier_path,
    feature_classifier,
    frechet_baselines,
    frechet_distance,
    frechet_distance_features,
    gaussian_frechet_distance,
    independent_bernoulli_samples,
)


def _spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


# ----- closed forms -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_identical_gaussians_are_at_distance_zero(seed):
    cov = _spd(6, seed)
    mean = torch.randn(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert gaussian_frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_case_by_hand():
    # N(3, 9) vs N(1, 1): (3 - 1)^2 + (sqrt 9 - sqrt 1)^2 = 4 + 4
    assert gaussian_frechet_distance([3.0], [[9.0]], [1.0], [[1.0]]) == pytest.approx(8.0)
    assert gaussian_frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(2.0)


def test_diagonal_covariances_give_the_sum_of_squared_root_differences():
    a = torch.tensor([0.5, 1.0, 4.0, 9.0, 0.0], dtype=torch.float64)  # one zero variance
    b = torch.tensor([2.0, 1.0, 1.0, 0.25, 3.0], dtype=torch.float64)
    m1 = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    m2 = torch.tensor([1.0, 1.0, 0.0, 3.0, 5.0], dtype=torch.float64)
    expected = float((m1 - m2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    got = gaussian_frechet_distance(m1, torch.diag(a), m2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_commuting_covariances_give_the_sum_over_shared_eigenvalues(seed):
    q = _rotation(5, seed)
    g = torch.Generator().manual_seed(100 + seed)
    a = torch.rand(5, generator=g, dtype=torch.float64) * 3 + 0.1
    b = torch.rand(5, generator=g, dtype=torch.float64) * 3 + 0.1
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    s1, s2 = 0.5 * (s1 + s1.T), 0.5 * (s2 + s2.T)
    expected = float((a.sqrt() - b.sqrt()).square().sum())
    zero = torch.zeros(5, dtype=torch.float64)
    assert gaussian_frechet_distance(zero, s1, zero, s2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_non_commuting_2x2_closed_form(seed):
    # eigenvalues l1, l2 > 0 of S1 S2: Tr sqrt = sqrt(l1 + l2 + 2 sqrt(l1 l2))
    #                                          = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))
    s1, s2 = _spd(2, seed), _spd(2, seed + 50)
    trace_sqrt = math.sqrt(
        float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2)))
    )
    expected = float(torch.trace(s1) + torch.trace(s2)) - 2 * trace_sqrt
    zero = torch.zeros(2, dtype=torch.float64)
    assert gaussian_frechet_distance(zero, s1, zero, s2) == pytest.approx(expected, rel=1e-9)


def test_agrees_with_scipy_sqrtm_on_full_rank_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = _spd(8, 1), _spd(8, 2)
    m1, m2 = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    root = linalg.sqrtm((s1 @ s2).numpy())
    expected = 8.0 + float(torch.trace(s1) + torch.trace(s2)) - 2 * float(root.trace().real)
    assert gaussian_frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8)


def test_is_symmetric_and_its_square_root_is_a_metric():
    gaussians = [
        (torch.randn(4, generator=torch.Generator().manual_seed(s)).double(), _spd(4, s))
        for s in range(3)
    ]
    d = [[math.sqrt(gaussian_frechet_distance(*p, *q)) for q in gaussians] for p in gaussians]
    assert d[0][1] == pytest.approx(d[1][0], rel=1e-9)
    assert d[0][2] <= d[0][1] + d[1][2] + 1e-9  # W2 is a metric


def test_feature_distance_is_translation_invariant_and_scales_quadratically():
    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(300, 5, generator=g, dtype=torch.float64)
    f2 = 0.5 + 1.3 * torch.randn(300, 5, generator=g, dtype=torch.float64)
    base = frechet_distance_features(f1, f2)
    shift = torch.randn(5, generator=g, dtype=torch.float64) * 10
    assert frechet_distance_features(f1 + shift, f2 + shift) == pytest.approx(base, rel=1e-9)
    assert frechet_distance_features(3 * f1, 3 * f2) == pytest.approx(9 * base, rel=1e-9)
    assert frechet_distance_features(f1, f1) == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs_are_named():
    eye = torch.eye(2)
    with pytest.raises(ValueError, match="mean2"):
        gaussian_frechet_distance(torch.zeros(2), eye, torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="covariance: expected shape"):
        gaussian_frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), eye)
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_frechet_distance(
            torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.zeros(2), eye
        )
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_features(torch.full((3, 2), float("nan")), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance_features(torch.zeros(1, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="features2"):
        frechet_distance_features(torch.zeros(3, 2), torch.zeros(3, 4))


# ----- the Frechet digit distance -----------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("frechet-cache")


def test_classifier_is_trained_once_cached_and_accurate(cache):
    model, accuracy = feature_classifier("digits", cache=cache)
    assert classifier_path("digits", cache).exists()
    assert accuracy > 0.9  # an MLP on the 8x8 digits reaches about 0.97
    again, accuracy_again = feature_classifier("digits", cache=cache)
    assert accuracy_again == accuracy
    for key, value in again.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_frechet_digit_distance_ranks_train_bernoulli_and_noise(cache):
    x_test, _ = data.load("digits", "test")
    itself = frechet_distance(x_test, "digits", cache=cache)
    assert itself.distance == pytest.approx(0.0, abs=1e-8)
    assert itself.n_samples == itself.n_reference == x_test.shape[0]
    assert itself.feature_dim == 64
    base = frechet_baselines("digits", cache=cache)
    # measured: train 1.0, independent Bernoulli 11.9, noise 69 (359 images each)
    assert base["train"] < base["independent_bernoulli"] / 4
    assert base["independent_bernoulli"] < base["uniform_noise"] / 2
    binary = frechet_baselines("digits", binarize="stochastic", cache=cache)
    assert binary["train"] < binary["independent_bernoulli"] / 4


def test_frechet_distance_rejects_bad_samples(cache):
    with pytest.raises(ValueError, match="samples: expected 64 features"):
        frechet_distance(torch.rand(10, 784), "digits", cache=cache)
    with pytest.raises(ValueError, match="samples: expected at least 2"):
        frechet_distance(torch.rand(1, 64), "digits", cache=cache)
    with pytest.raises(ValueError, match="dataset: no feature classifier"):
        frechet_distance(torch.rand(10, 2), "8gaussians", cache=cache)


def test_independent_bernoulli_samples_have_the_training_marginals():
    x = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    s = independent_bernoulli_samples(x, 20000, torch.Generator().manual_seed(0))
    p = torch.tensor([1.0, 0.0, 0.5])
    se = (p * (1 - p) / 20000).sqrt().clamp_min(1e-12)
    assert ((s.mean(0) - p).abs() <= 5 * se + 1e-12).all()


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(frechet.ENV_CACHE, str(tmp_path))
    assert classifier_path("binarized-mnist").parent == tmp_path / "frechet"
    assert classifier_path("binarized-mnist").name.startswith("mnist-")
