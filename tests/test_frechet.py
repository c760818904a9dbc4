"""Frechet distance: closed forms, invariances, agreement with a general matrix square root, and
the Frechet digit distance ordering training images < independent pixels < noise."""

from __future__ import annotations

import pytest
import scipy.linalg
import torch

from ebmlab import data
from ebmlab.metrics import frechet_baselines, frechet_distance, gaussian_frechet_distance
from ebmlab.metrics.frechet import classifier_path, frechet_distance_features


def _spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_gaussians_are_at_distance_zero():
    mean, cov = torch.randn(5, dtype=torch.float64), _spd(5, 0)
    assert gaussian_frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)


def test_commuting_covariances_have_the_closed_form():
    a, b = torch.tensor([4.0, 1.0, 0.25]), torch.tensor([1.0, 9.0, 0.25])
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = float((m1 - m2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    got = gaussian_frechet_distance(m1, torch.diag(a), m2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)
    assert gaussian_frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(2.0)


def test_general_covariances_match_a_general_matrix_square_root():
    m1, m2 = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    s1, s2 = _spd(6, 1), _spd(6, 2)
    root = scipy.linalg.sqrtm((s1 @ s2).numpy()).real
    expected = 6.0 + float(torch.trace(s1) + torch.trace(s2)) - 2 * float(root.trace())
    assert gaussian_frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    # symmetric in its two arguments, and a singular covariance is fine
    assert gaussian_frechet_distance(m2, s2, m1, s1) == pytest.approx(expected, rel=1e-9)
    low_rank = torch.outer(torch.arange(6.0), torch.arange(6.0)).double()
    assert gaussian_frechet_distance(m1, low_rank, m1, low_rank) == pytest.approx(0.0, abs=1e-6)


def test_feature_distance_is_translation_invariant_and_zero_on_itself():
    g = torch.Generator().manual_seed(3)
    f1 = torch.randn(500, 4, generator=g, dtype=torch.float64)
    f2 = 2 + torch.randn(400, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([5.0, -3.0, 0.5, 10.0], dtype=torch.float64)
    base = frechet_distance_features(f1, f2)
    assert frechet_distance_features(f1 + shift, f2 + shift) == pytest.approx(base, rel=1e-9)
    assert frechet_distance_features(f1, f1) == pytest.approx(0.0, abs=1e-9)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_frechet_distance([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="covariance"):
        gaussian_frechet_distance([0.0, 0.0], torch.eye(3), [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance_features(torch.zeros(1, 3), torch.zeros(5, 3))


def test_frechet_digit_distance_orders_train_bernoulli_noise(tmp_path):
    # the classifier is trained once and cached under tmp_path (digits: about 2 s)
    baselines = frechet_baselines("digits", n=300, seed=0, cache=tmp_path)
    assert baselines["train"] < baselines["independent_bernoulli"] < baselines["uniform_noise"]
    assert classifier_path("digits", tmp_path).exists()
    # a set of test images against the test split: as close as the training images
    x_test, _ = data.load("digits", "test")
    same = frechet_distance(x_test[:300], "digits", cache=tmp_path)
    assert same.distance < baselines["independent_bernoulli"] / 2
    assert same.classifier_accuracy > 0.9 and same.n_samples == 300
