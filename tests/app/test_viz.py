"""The figures of ``ebmlab.app.viz``: image grids sized to be seen, titles that fit, curves and
2-D densities with labelled axes."""

from __future__ import annotations

import math

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


# ----- titles that fit ---------------------------------------------------------------------------
LONG_TITLE = (
    "DBN samples (1000 Gibbs sweeps in the top RBM, then one pass down the directed layers)"
)


@pytest.fixture
def kept_figures(monkeypatch):
    """Figures closed by ``ebmlab.app.viz`` (and everything else that closes through pyplot) are
    kept open here for inspection, and closed after the test."""
    import matplotlib.pyplot as plt

    close = plt.close
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    for fig in kept:
        close(fig)


def test_wrap_to_width_keeps_every_line_within_the_width_and_every_word():
    text, size = viz.wrap_to_width(LONG_TITLE, 200.0, fontsize=11, min_fontsize=8)
    lines = text.split("\n")
    assert len(lines) > 1
    assert all(viz.text_extent(line, size)[0] <= 200.0 for line in lines)
    assert " ".join(lines) == LONG_TITLE
    assert size == 11  # line breaks before a smaller font


def test_wrap_to_width_leaves_a_title_that_fits_on_one_line_at_full_size():
    assert viz.wrap_to_width("samples", 500.0, 11.0) == ("samples", 11.0)


def test_wrap_to_width_breaks_a_word_wider_than_the_width_at_the_smallest_size():
    word = "x" * 60
    text, size = viz.wrap_to_width(word, 80.0, fontsize=11, min_fontsize=8)
    assert size == 8
    assert text.replace("\n", "") == word
    assert all(viz.text_extent(line, 8)[0] <= 80.0 for line in text.split("\n"))


@pytest.mark.parametrize("width, min_size", [(0.0, 8.0), (100.0, 0.0), (100.0, 12.0)])
def test_wrap_to_width_rejects_bad_sizes(width, min_size):
    with pytest.raises(ValueError, match=r"width|min_fontsize"):
        viz.wrap_to_width("a title", width, fontsize=11.0, min_fontsize=min_size)


def test_fit_title_fits_a_title_that_set_title_lets_overflow(tmp_path, kept_figures):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(5, 3), dpi=viz.DPI)
    axes[0].set_title(LONG_TITLE, fontsize=11)
    viz.fit_title(axes[1], LONG_TITLE)
    viz.save_figure(fig, tmp_path / "t.png")
    problems = viz.title_overflows(fig)
    # the plain title is refitted by the saver; without it the check would fail:
    assert problems == []
    fig2, ax2 = plt.subplots(figsize=(3, 3), dpi=viz.DPI)
    ax2.set_title(LONG_TITLE, fontsize=11)
    fig2.canvas.draw()
    assert any("px wide" in p for p in viz.title_overflows(fig2))


def test_image_figures_have_titles_no_wider_than_their_panels(tmp_path, kept_figures):
    images = torch.rand(64, 64, generator=torch.Generator().manual_seed(1))
    viz.samples_beside_data(images, images.flip(0), (8, 8), tmp_path / "s.png", title=LONG_TITLE)
    viz.labelled_rows(
        [("data", images[:3]), ("recon.", images[3:6])],
        (8, 8),
        tmp_path / "r.png",
        title=LONG_TITLE,
    )
    viz.image_grid(images[:1], (8, 8), tmp_path / "one.png", title=LONG_TITLE)
    assert len(kept_figures) == 5  # two gallery pictures beside the samples figure
    for fig in kept_figures:
        assert viz.title_overflows(fig) == []


# ----- image grids -------------------------------------------------------------------------------
def test_pixel_scale_upscales_small_images_and_keeps_figures_projectable():
    assert viz.pixel_scale((8, 8), [8 * 9 + 1]) == 6  # 8x8 digits at six pixels per pixel
    assert viz.pixel_scale((28, 28), [8 * 29 + 1]) == 2
    narrow = viz.pixel_scale((8, 8), [10])
    assert narrow * 10 >= viz.MIN_PANEL_WIDTH_PX and narrow <= viz.MAX_PIXEL_SCALE
    wide = viz.pixel_scale((8, 8), [300, 300])
    assert wide * 600 <= viz.MAX_FIGURE_WIDTH_PX and wide >= 1


def _png(path):
    import matplotlib.image

    return matplotlib.image.imread(path)[..., :3].mean(-1)  # grey levels in [0, 1]


def test_image_grid_draws_each_image_pixel_as_a_block_of_screen_pixels(tmp_path):
    images = torch.rand(4, 16, generator=torch.Generator().manual_seed(2))
    canvas = viz.tile_images(images, (4, 4), nrow=2)
    scale = viz.pixel_scale((4, 4), [canvas.shape[1]])
    png = _png(viz.image_grid(images, (4, 4), tmp_path / "g.png", nrow=2))
    top = left = 10  # the margin, no title
    h, w = canvas.shape[0] * scale, canvas.shape[1] * scale
    drawn = png[top : top + h, left : left + w]
    expected = np.kron(canvas, np.ones((scale, scale)))
    inner = (slice(2, -2), slice(2, -2))  # the frame is drawn over the outermost pixels
    np.testing.assert_allclose(
        drawn[inner], expected[inner], atol=2 / 255
    )  # the colour map has 256 levels


def test_samples_beside_data_draws_both_panels_and_the_gallery_pictures(tmp_path):
    samples = torch.zeros(16, 64)
    data = torch.ones(20, 64)
    path = viz.samples_beside_data(samples, data, (8, 8), tmp_path / "samples.png", nrow=4)
    both, alone = _png(path), _png(tmp_path / viz.GALLERY_SAMPLES)
    assert alone.shape[0] < both.shape[0] <= alone.shape[0] + 30  # the panels' headings
    assert both.shape[1] > 2 * alone.shape[1] - 40
    assert (tmp_path / viz.GALLERY_SAMPLES).read_bytes() == viz.image_grid(
        samples, (8, 8), tmp_path / "expected.png", nrow=4
    ).read_bytes()
    shown = _png(tmp_path / viz.GALLERY_DATA)
    assert shown.shape == alone.shape  # as many data images as samples
    inner = shown[15:-15, 15:-15]
    assert inner.min() > 0.99  # the data (all ones) are white, the samples black
    assert alone[15:-15, 15:-15].mean() < 0.5


def test_samples_beside_data_without_gallery_leaves_no_gallery_pictures(tmp_path):
    viz.samples_beside_data(
        torch.zeros(4, 4), torch.ones(4, 4), (2, 2), tmp_path / "s.png", gallery=False
    )
    assert not (tmp_path / viz.GALLERY_SAMPLES).exists()


# ----- curves and densities ----------------------------------------------------------------------
def test_plot_curves_labels_axes_and_draws_one_line_per_group(tmp_path, kept_figures):
    history = [
        {"epoch": e, "stage": "a" if e <= 3 else "b", "elbo": -float(e)} for e in range(1, 7)
    ]
    viz.plot_curves(
        history,
        ["elbo", "missing"],
        tmp_path / "c.png",
        labels={"elbo": "ELBO"},
        units={"elbo": "nats per image"},
        xlabel="epoch",
        group_key="stage",
        boundaries=[(3.0, "b")],
    )
    (fig,) = kept_figures
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert ax.get_title() == "ELBO"
    assert ax.get_ylabel() == "nats per image" and ax.get_xlabel() == "epoch"
    lines = [line for line in ax.get_lines() if line.get_label() in ("a", "b")]
    assert [line.get_label() for line in lines] == ["a", "b"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [4, 5, 6])


def test_grid_density_integrates_to_one_and_keeps_density_ratios():
    g = 50
    log_density = torch.randn(g, g, generator=torch.Generator().manual_seed(3)) * 3 + 40.0
    p = viz.grid_density(log_density, (-2.0, 3.0))
    cell = (5.0 / g) ** 2
    assert p.sum() * cell == pytest.approx(1.0, rel=1e-12)
    ratio = p[3, 4] / p[10, 20]
    assert ratio == pytest.approx(
        math.exp(float(log_density[3, 4] - log_density[10, 20])), rel=1e-9
    )


@pytest.mark.parametrize(
    "values, bounds, match",
    [
        (torch.zeros(3, 4), (0.0, 1.0), "square"),
        (torch.zeros(3, 3), (1.0, 1.0), "lo < hi"),
        (torch.full((2, 2), -math.inf), (0.0, 1.0), "finite"),
    ],
)
def test_grid_density_rejects_bad_grids(values, bounds, match):
    with pytest.raises(ValueError, match=match):
        viz.grid_density(values, bounds)


def test_density_2d_shows_the_data_beside_the_density_with_axes_and_a_colour_bar(
    tmp_path, kept_figures
):
    axis = torch.linspace(-3, 3, 40)
    x, y = torch.meshgrid(axis, axis, indexing="ij")
    data = torch.randn(200, 2, generator=torch.Generator().manual_seed(4))
    viz.density_2d(
        -(x**2 + y**2) / 2,
        (-3.0, 3.0),
        tmp_path / "d.png",
        samples=data / 2,
        data=data,
        title=LONG_TITLE,
    )
    (fig,) = kept_figures
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    titles = [ax.get_title() for ax in panels]
    assert titles == ["data (test) (200)", "model density", "model samples (200)"]
    assert all(ax.get_xlabel() == "$x_1$" and ax.get_ylabel() == "$x_2$" for ax in panels)
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "density" in bar.get_ylabel()
    assert viz.title_overflows(fig) == []
