"""What the recipes share: options capped in quick runs, the inpainting mask."""

from __future__ import annotations

import pytest
import torch

from ebmlab.app.recipes import Context, top_half_known


def _context(tmp_path, quick: bool, **options: int) -> Context:
    return Context(
        options=options,
        data_name="digits",
        image_shape=(8, 8),
        generator=torch.Generator().manual_seed(0),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        quick=quick,
    )


def test_quick_capped_caps_an_option_only_in_quick_runs(tmp_path):
    assert (
        _context(tmp_path, quick=True, sample_steps=5000).quick_capped("sample_steps", 1000) == 1000
    )
    assert _context(tmp_path, quick=True, sample_steps=10).quick_capped("sample_steps", 1000) == 10
    assert (
        _context(tmp_path, quick=False, sample_steps=5000).quick_capped("sample_steps", 1000)
        == 5000
    )
    with pytest.raises(KeyError):
        _context(tmp_path, quick=True).quick_capped("sample_steps", 1000)


@pytest.mark.parametrize(("shape", "known_rows"), [((4, 3), 2), ((5, 2), 2), ((1, 4), 0)])
def test_top_half_known_marks_the_top_rows(shape, known_rows):
    h, w = shape
    known = top_half_known(shape)
    assert known.dtype == torch.bool and known.shape == (h * w,)
    grid = known.view(h, w)
    assert grid[:known_rows].all() and not grid[known_rows:].any()
