"""The image figures of ``ebmlab.app.viz``: filters grids, labelled rows, inpainting inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmlab.app import viz


def test_filters_grid_shows_the_first_columns_as_images(tmp_path):
    weights = torch.rand(16, 130, generator=torch.Generator().manual_seed(0))
    path = viz.filters_grid(weights, (4, 4), tmp_path / "filters.png", title="filters")
    expected = viz.image_grid(
        weights[:, : viz.MAX_FILTERS].T,
        (4, 4),
        tmp_path / "expected.png",
        nrow=10,
        title="filters",
        normalize=True,
    )
    assert path == tmp_path / "filters.png"
    assert path.read_bytes() == expected.read_bytes()


def test_filters_grid_takes_a_weight_matrix_that_requires_grad(tmp_path):
    weights = torch.nn.Parameter(torch.rand(16, 3))
    few = viz.filters_grid(weights, (4, 4), tmp_path / "few.png", max_filters=2)
    expected = viz.image_grid(
        weights.detach()[:, :2].T, (4, 4), tmp_path / "e.png", nrow=10, normalize=True
    )
    assert few.read_bytes() == expected.read_bytes()


def test_labelled_rows_lays_out_one_row_per_entry(tmp_path):
    data, recon = torch.zeros(5, 9), torch.ones(5, 9)
    path = viz.labelled_rows(
        [("data", data), ("recon.", recon.numpy())], (3, 3), tmp_path / "rows.png", title="t"
    )
    expected = viz.image_grid(
        torch.cat([data, recon]),
        (3, 3),
        tmp_path / "expected.png",
        nrow=5,
        title="t",
        row_labels=["data", "recon."],
    )
    assert path.read_bytes() == expected.read_bytes()


def test_labelled_rows_needs_rows_of_the_same_length(tmp_path):
    with pytest.raises(ValueError, match="same number of images"):
        viz.labelled_rows(
            [("a", torch.zeros(3, 4)), ("b", torch.zeros(2, 4))], (2, 2), tmp_path / "x.png"
        )


def test_hide_unknown_greys_the_unknown_pixels():
    images = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    known = torch.tensor([True, True, False, False])
    expected = np.array([[0.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(viz.hide_unknown(images, known), expected)
    per_image = torch.tensor([[True, False, True, False], [False, True, False, True]])
    np.testing.assert_array_equal(
        viz.hide_unknown(images, per_image, fill=0.25),
        np.array([[0.0, 0.25, 1.0, 0.25], [0.25, 1.0, 0.25, 0.0]], dtype=np.float32),
    )
