"""``ebmlab.data.binarize`` takes arrays or tensors of grey levels in [0, 1] only (NaN, and
0-255 pixel bytes with a hint, are refused), and a seed or a generator for the stochastic
draw; ``ebmlab.data.load`` names a data folder that is not a path."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ebmlab.data as data
from ebmlab.validation import InvalidArgumentError


def test_pixel_bytes_are_refused_with_a_hint():
    pixels = torch.tensor([[0, 3, 200, 255]], dtype=torch.uint8)
    for method in (None, "threshold", "stochastic"):
        with pytest.raises(ValueError, match=r"^x: expected values in \[0, 1\]") as error:
            data.binarize(pixels, method, generator=0)
        assert "divide by 255" in str(error.value)
    assert data.binarize(pixels.float() / 255, "threshold").tolist() == [[0.0, 0.0, 1.0, 1.0]]


@pytest.mark.parametrize("bad", [-1.0, 1.5])
def test_values_outside_the_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match=r"^x: expected values in \[0, 1\]") as error:
        data.binarize(torch.tensor([[0.2, bad]]), "threshold")
    assert ("divide by 255" in str(error.value)) == (bad > 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_infinite_values_are_refused(bad):
    with pytest.raises(ValueError, match=r"^x: contains 1 NaN or infinite values"):
        data.binarize(torch.tensor([[0.5, bad]]), "stochastic", generator=0)


def test_numpy_arrays_are_accepted():
    out = data.binarize(np.array([[0.2, 0.8]]), "threshold")
    assert out.dtype == torch.float32 and out.tolist() == [[0.0, 1.0]]


def test_stochastic_binarization_takes_a_seed():
    x = torch.full((3, 5), 0.5)
    seeded = data.binarize(x, "stochastic", generator=7)
    assert torch.equal(seeded, data.binarize(x, "stochastic", torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("generator", [2.5, True, np.random.default_rng(0)])
def test_stochastic_binarization_refuses_other_generators(generator):
    start = "generator: expected a torch.Generator, an integer seed or None"
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(start)):
        data.binarize(torch.full((2, 2), 0.5), "stochastic", generator=generator)


@pytest.mark.parametrize("data_dir", [3, ["data"], b"data"])
def test_load_names_a_data_dir_that_is_not_a_path(data_dir):
    start = "data_dir: expected a folder path (str or os.PathLike) or None"
    with pytest.raises(InvalidArgumentError, match="^" + re.escape(start)):
        data.load("digits", data_dir=data_dir)
