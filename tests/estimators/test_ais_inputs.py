"""``ais`` and ``reverse_ais`` refuse a bad ``seed`` or ``ess_warn_fraction`` by name, and
``check_betas`` gives the real reason a schedule is refused."""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab.estimators import ais, check_betas, reverse_ais
from ebmlab.models import BernoulliRBM
from ebmlab.validation import InvalidArgumentError


def _rbm() -> BernoulliRBM:
    return BernoulliRBM(4, 3, seed=0)


@pytest.mark.parametrize("seed", ["a", 1.5, True])
def test_ais_refuses_a_seed_that_is_not_an_integer(seed):
    with pytest.raises(InvalidArgumentError, match=r"seed: expected an integer or None, got"):
        ais(_rbm(), n_betas=5, n_runs=4, seed=seed, progress=False)


def test_reverse_ais_refuses_a_bad_seed():
    v = torch.zeros(4, 4)
    with pytest.raises(InvalidArgumentError, match=r"seed: expected an integer or None"):
        reverse_ais(_rbm(), v, n_betas=5, seed="a", progress=False)


@pytest.mark.parametrize("fraction", [2, -0.1, math.nan, "0.1"])
def test_ess_warn_fraction_must_lie_in_the_unit_interval(fraction):
    with pytest.raises(
        InvalidArgumentError,
        match=r"ess_warn_fraction: expected a number in "
        r"\[0, 1\], got",
    ):
        ais(_rbm(), n_betas=5, n_runs=4, seed=0, ess_warn_fraction=fraction, progress=False)


@pytest.mark.parametrize("fraction", [0, 1, 0.5])
def test_ess_warn_fraction_bounds_are_accepted(fraction, recwarn):
    result = ais(_rbm(), n_betas=5, n_runs=4, seed=0, ess_warn_fraction=fraction, progress=False)
    assert math.isfinite(result.log_z)


def test_check_betas_names_a_two_dimensional_schedule():
    with pytest.raises(
        ValueError,
        match=r"betas: expected a 1-D schedule from 0 to 1, got shape "
        r"\(2, 2\)",
    ):
        check_betas([[0.0, 0.5], [0.5, 1.0]])


def test_check_betas_names_nan_and_infinite_values():
    with pytest.raises(
        ValueError,
        match=r"betas: expected finite values, found 1 NaN or "
        r"infinite \(the first at index 1: nan\)",
    ):
        check_betas([0.0, math.nan, 1.0])
    with pytest.raises(ValueError, match=r"found 2 NaN or infinite"):
        check_betas([0.0, math.inf, -math.inf, 1.0])


def test_check_betas_still_names_wrong_ends():
    with pytest.raises(ValueError, match=r"must start at 0 and end at 1, got 0.1 to 1"):
        check_betas([0.1, 1.0])
    assert check_betas([0.0, 0.5, 1.0]).dtype == torch.float64
