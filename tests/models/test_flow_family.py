"""Image flows and the ``realnvp`` recipe: the logit transform and checkerboard couplings invert
and have the autograd log-determinant; the image flow integrates to one; the dequantization bound
is below the exact discrete log-probability and agrees with its grid value; dequantization stays
in the data's cells; bad input; the recipe on 2-D densities and on digits through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

import ebmlab
import ebmlab.app.families.flows  # registers the recipe
from ebmlab import data
from ebmlab.estimators import dequantized_log_likelihoods
from ebmlab.models.flows import ComposedTransform, ElementwiseAffine, standard_normal_log_prob
from ebmlab.models.image_flows import (
    CheckerboardCoupling,
    ImageRealNVP,
    LogitTransform,
    checkerboard,
    infer_levels,
)
from ebmlab.objectives.likelihood import DequantizedMaximumLikelihood
from ebmlab.training import TrainConfig, train


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Random parameters (couplings start as the identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


TRANSFORMS = {
    "logit": lambda: LogitTransform(0.05),
    "checkerboard-0": lambda: CheckerboardCoupling([2, 3], parity=0, channels=4, n_blocks=1),
    "checkerboard-1": lambda: CheckerboardCoupling([2, 3], parity=1, channels=4, n_blocks=0),
    "image-realnvp": lambda: ImageRealNVP([2, 3], n_couplings=3, channels=4, n_blocks=1).transform,
}


def _make(name: str) -> torch.nn.Module:
    return _perturb(TRANSFORMS[name](), seed=len(name)).double()


def _unit_points(n: int = 5, dim: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.02 + 0.96 * torch.rand(n, dim, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_inverse_undoes_forward(name):
    transform = _make(name)
    x = _unit_points()
    y, ladj = transform(x)
    x_back, ladj_inv = transform.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_log_determinant_matches_autograd_jacobian(name):
    transform = _make(name)
    for x in _unit_points(3):
        jac = torch.autograd.functional.jacobian(lambda v: transform(v[None])[0][0], x)
        expected = torch.linalg.slogdet(jac)[1]
        assert transform(x[None])[1].item() == pytest.approx(expected.item(), abs=1e-9)


def test_checkerboard_mask():
    assert checkerboard([2, 3], 0).tolist() == [1, 0, 1, 0, 1, 0]
    assert checkerboard([2, 3], 1).tolist() == [0, 1, 0, 1, 0, 1]


def test_a_fresh_coupling_is_the_identity():
    coupling = CheckerboardCoupling([2, 3], parity=0)
    x = torch.randn(4, 6)
    y, ladj = coupling(x)
    assert torch.equal(y, x) and torch.equal(ladj, torch.zeros(4))


# ----- densities on a 2-pixel image, integrated on a grid -----------------------------------------
def _two_pixel_flow(levels: int = 2) -> ImageRealNVP:
    model = ImageRealNVP(
        [1, 2], levels=levels, n_couplings=3, channels=4, n_blocks=1, scale_bound=2
    )
    return _perturb(model, seed=7).double().requires_grad_(False)


def _midpoints(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    h = (hi - lo) / n
    axis = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(axis, axis), h * h


def _logit_grid_density(model: ImageRealNVP) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The density in logit coordinates w on a grid of [-15, 15]^2, where it is smooth:
    y = logit^-1(w) covers (-a, 1 + a)^2, a = alpha / (1 - 2 alpha), p_w(w) = p_y(y) |dy/dw|."""
    w, area = _midpoints(-15.0, 15.0, 500)
    y, ladj_w_to_y = model.transform.transforms[0].inverse(w)
    z, ladj_y_to_z = model(y)
    return torch.exp(standard_normal_log_prob(z) + ladj_y_to_z + ladj_w_to_y), y, area


def test_image_flow_density_integrates_to_one():
    model = _two_pixel_flow()
    density, _, area = _logit_grid_density(model)
    assert float(density.sum() * area) == pytest.approx(1.0, abs=1e-3)


def test_mass_outside_the_unit_square_is_lost():
    # identity couplings and a standardization by 2: y is in [0, 1] iff |w| <= logit(1 - alpha),
    # i.e. |z| <= logit(1 - alpha) / 2 per pixel, a closed form
    model = ImageRealNVP([1, 2], n_couplings=1, channels=2, alpha=0.05).double()
    model.requires_grad_(False)
    with torch.no_grad():
        model.transform.transforms[1].log_scale.fill_(math.log(2.0))
    density, y, area = _logit_grid_density(model)
    inside = ((y >= 0) & (y <= 1)).all(1)
    edge = math.log(0.95 / 0.05) / 2
    expected = math.erf(edge / math.sqrt(2)) ** 2
    assert float(density[inside].sum() * area) == pytest.approx(expected, abs=2e-3)
    unit, unit_area = _midpoints(0.0, 1.0, 400)
    with torch.no_grad():
        assert float(model.log_prob(unit).exp().sum() * unit_area) == pytest.approx(
            expected, abs=5e-3
        )


def test_dequantization_bound_is_below_the_exact_discrete_log_probability():
    model = _two_pixel_flow(levels=2)
    cell, area = _midpoints(0.0, 0.5, 300)  # the cell of x = (0, 0), shifted per image below
    g = torch.Generator().manual_seed(0)
    for bits in ([0.0, 0.0], [0.0, 1.0], [1.0, 1.0]):
        x = torch.tensor([bits], dtype=torch.float64)
        y = cell + 0.5 * x
        log_p = model.log_prob(y)
        exact = math.log(float(log_p.exp().sum() * area))  # log P(x) = log of the cell's mass
        grid_bound = float(log_p.mean()) - 2 * math.log(2)  # E_u[log p] - D log K
        draws = model.discrete_log_likelihood_bound(x.expand(20_000, 2), g)
        mc, se = float(draws.mean()), float(draws.std() / math.sqrt(draws.numel()))
        assert grid_bound < exact  # Jensen
        assert mc == pytest.approx(grid_bound, abs=5 * se + 1e-3)
        # averaging u-draws inside the estimator leaves its mean unchanged
        avg = model.discrete_log_likelihood_bound(x.expand(5_000, 2), g, n_samples=4)
        assert float(avg.mean()) == pytest.approx(grid_bound, abs=5 * se + 1e-3)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_dequantized_points_stay_in_their_cells(levels):
    g = torch.Generator().manual_seed(levels)
    x = torch.randint(0, levels, (50, 6), generator=g).float() / (levels - 1)
    model = ImageRealNVP([2, 3], levels=levels, n_couplings=1, channels=2, n_blocks=0)
    y = model.dequantize(x, g)
    assert ((y >= 0) & (y < 1)).all()
    torch.testing.assert_close(model.quantize(y), x)
    assert infer_levels(x) == levels


def test_infer_levels_on_the_datasets():
    binary, _ = data.load("digits", "train", binarize="stochastic")
    grey, _ = data.load("digits", "train")
    assert infer_levels(binary) == 2
    assert infer_levels(grey) == 17
    assert infer_levels(torch.arange(256.0) / 255) == 256
    with pytest.raises(ValueError, match="x: values are not on any of the grids"):
        infer_levels(torch.tensor([0.123]))


def test_samples_are_images_on_the_grid():
    model = _perturb(ImageRealNVP([2, 3], levels=17, n_couplings=2, channels=4), seed=1)
    samples = model.sample(20, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (20, 6)
    torch.testing.assert_close(samples * 16, torch.round(samples * 16))
    assert samples.min() >= 0 and samples.max() <= 1


def test_bad_input_is_named():
    model = ImageRealNVP([2, 3], levels=2, n_couplings=1, channels=2)
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\]"):
        model.log_prob(torch.full((1, 6), 1.5))
    with pytest.raises(ValueError, match="x: expected images on the 2-level grid"):
        model.dequantize(torch.full((1, 6), 0.5))
    with pytest.raises(ValueError, match="x: expected 6 features"):
        model.discrete_log_likelihood_bound(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="n_samples"):
        model.discrete_log_likelihood_bound(torch.zeros(1, 6), n_samples=0)
    with pytest.raises(ValueError, match="levels: expected an integer >= 2"):
        ImageRealNVP([2, 3], levels=1)
    with pytest.raises(ValueError, match="image_shape"):
        ImageRealNVP([1, 1])
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.5)


def test_save_load_round_trip(tmp_path):
    model = _perturb(ImageRealNVP([2, 3], levels=17, n_couplings=2, channels=4), seed=2)
    model.requires_grad_(False)
    loaded = ebmlab.load(ebmlab.save(model, tmp_path / "flow.safetensors"))
    assert type(loaded) is ImageRealNVP and loaded.config == model.config
    y = _unit_points(4).float()
    assert torch.equal(loaded.log_prob(y), model.log_prob(y))


# ----- training -----------------------------------------------------------------------------------
def test_dequantized_training_improves_the_bound_on_digits():
    x, _ = data.load("digits", "train", binarize="stochastic")
    model = ImageRealNVP([8, 8], levels=2, n_couplings=2, channels=8, n_blocks=1)
    model.standardize(x, torch.Generator().manual_seed(0))

    def bound() -> torch.Tensor:  # common random numbers: the same u before and after
        with torch.no_grad():
            return dequantized_log_likelihoods(model, x, torch.Generator().manual_seed(1))

    before = bound()
    config = TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=0, progress=False, device="cpu")
    result = train(model, DequantizedMaximumLikelihood(), x, config)
    gain = bound() - before
    assert float(gain.mean()) > 5 * float(gain.std() / math.sqrt(gain.numel()))
    assert "bits_per_dim" in result.history[-1]


# ----- the recipe ---------------------------------------------------------------------------------
def _run(tmp_path, argv):
    from ebmlab.app.cli import main

    out = tmp_path / "run"
    base = ["--threads", "1", "train", "realnvp", "--eval", "--no-progress", "--out", str(out)]
    assert main(base + argv) == 0
    metrics = json.loads((out / "eval.json").read_text())
    figures = json.loads((out / "figures.json").read_text())
    assert all((out / f["path"]).stat().st_size > 0 for f in figures)
    return metrics, {f["path"] for f in figures}


def test_realnvp_recipe_on_a_toy_density(tmp_path):
    metrics, figures = _run(tmp_path, ["--data", "8gaussians", "--epochs", "2", "--layers", "4"])
    assert metrics["log_likelihood_method"] == "exact"
    # the flow is normalized on R^2: its mass on the grid is at most 1 (up to the midpoint rule)
    assert -0.2 < metrics["log_z_grid"] < 1e-3
    assert metrics["test_log_likelihood_grid"] == pytest.approx(
        metrics["test_log_likelihood"] - metrics["log_z_grid"], abs=1e-4
    )
    # the grid KL renormalizes q on the grid: KL_grid = KL + log Z_grid (data mass off-grid ~0)
    assert metrics["kl"] == pytest.approx(
        metrics["kl_mc"] + metrics["log_z_grid"], abs=5 * metrics["kl_mc_se"] + 0.01
    )
    assert metrics["test_log_likelihood"] < metrics["test_log_likelihood_data"] + 0.05
    assert figures == {"density.png"}


def test_realnvp_recipe_on_binarized_digits(tmp_path):
    argv = ["--data", "digits", "--epochs", "1", "--layers", "2", "--channels", "8"]
    metrics, figures = _run(tmp_path, [*argv, "--eval-dequantizations", "2"])
    assert metrics["log_likelihood_method"] == "dequantized"
    assert metrics["levels"] == 2
    assert metrics["test_bits_per_dim"] == pytest.approx(
        -metrics["test_log_likelihood"] / (64 * math.log(2))
    )
    assert figures == {"samples.png", "samples_t07.png"}


def test_composed_image_flow_is_a_transform_chain():
    flow = ImageRealNVP([2, 3], n_couplings=2, channels=4)
    assert isinstance(flow.transform, ComposedTransform)
    kinds = [type(t) for t in flow.transform.transforms]
    assert kinds == [LogitTransform, ElementwiseAffine, CheckerboardCoupling, CheckerboardCoupling]
