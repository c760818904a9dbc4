"""PixelCNN: the autoregressive property (by autograd), normalization by enumeration of every
3 x 3 binary image, exact sampling and completion (chi-square against the enumerated
probabilities), save/load, bad input, training, and the ``pixelcnn`` recipe through the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from scipy import stats

import ebmlab
import ebmlab.app.families.autoregressive  # registers the recipe
from ebmlab import data
from ebmlab.models.autoregressive import PixelCNN, horizontal_mask, raster_mask, vertical_mask
from ebmlab.models.baselines import IndependentBernoulli
from ebmlab.objectives.likelihood import MaximumLikelihood
from ebmlab.training import TrainConfig, train

ARCHS = ("gated", "plain")

#: p-value below which a goodness-of-fit test fails (fixed seeds: the outcome is deterministic;
#: a correct sampler fails with probability 1e-4 over seeds)
ALPHA = 1e-4


def _perturbed(model: PixelCNN, seed: int = 0, scale: float = 0.5) -> PixelCNN:
    """Random weights large enough that the distribution is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _tiny(arch: str, shape=(3, 3), seed: int = 0) -> PixelCNN:
    with torch.random.fork_rng():  # the initial weights too, whatever ran before
        torch.manual_seed(seed + 1)
        model = PixelCNN(
            list(shape), channels=8, n_layers=3, kernel=3, first_kernel=3, architecture=arch
        )
    # enumeration and sampling tests need no gradients
    return _perturbed(model, seed).double().requires_grad_(False)


def _all_images(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def _index(x: torch.Tensor) -> torch.Tensor:
    """Row of each binary image in ``_all_images`` (first pixel most significant)."""
    d = x.shape[1]
    weights = 2 ** torch.arange(d - 1, -1, -1, dtype=torch.int64)
    return (x.round().to(torch.int64) * weights).sum(1)


def _chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square p-value, cells with expected count < 5 pooled into one."""
    n = counts.sum()
    expected = probs * n
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().reshape(1)]).double()
    exp = torch.cat([expected[~small], expected[small].sum().reshape(1)]).double()
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return float(stats.chi2.sf(chi2, obs.numel() - 1))


# ----- masks and the autoregressive property ------------------------------------------------------
def test_masks():
    assert raster_mask(3, include_centre=False).tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert raster_mask(3, include_centre=True).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert vertical_mask(3, include_centre_row=False).tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert vertical_mask(3, include_centre_row=True).tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert horizontal_mask(5, include_centre=False).tolist() == [[1, 1, 0, 0, 0]]
    assert horizontal_mask(5, include_centre=True).tolist() == [[1, 1, 1, 0, 0]]


def _dependencies(model: PixelCNN, d: int) -> torch.Tensor:
    """dep[i, j]: does logit i change with pixel j (autograd, summed over a random batch)?"""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(6, d, generator=g, dtype=torch.float64) < 0.5).double().requires_grad_(True)
    rows = []
    for i in range(d):
        (grad,) = torch.autograd.grad(model.logits(x)[:, i].sum(), x)
        rows.append(grad.abs().sum(0) > 0)
    return torch.stack(rows)


@pytest.mark.parametrize("arch", ARCHS)
def test_logit_i_ignores_pixels_from_i_on(arch):
    model = PixelCNN([5, 5], channels=8, n_layers=4, kernel=3, first_kernel=5, architecture=arch)
    dep = _dependencies(_perturbed(model).double(), 25)
    future = torch.triu(torch.ones(25, 25, dtype=torch.bool))  # j >= i
    assert not dep[future].any()


def test_gated_sees_every_earlier_pixel():
    # the vertical/horizontal stacks remove the blind spot of stacked masked kernels
    model = PixelCNN([5, 5], channels=8, n_layers=4, kernel=3, first_kernel=3)
    dep = _dependencies(_perturbed(model).double(), 25)
    past = torch.tril(torch.ones(25, 25, dtype=torch.bool), diagonal=-1)  # j < i
    assert dep[past].all()


def test_plain_has_the_blind_spot():
    # van den Oord et al. 2016b, Fig. 1: pixel (2, 2) never sees (1, 4), up and to the right
    model = PixelCNN([5, 5], channels=8, n_layers=4, kernel=3, first_kernel=3, architecture="plain")
    dep = _dependencies(_perturbed(model).double(), 25)
    assert not dep[2 * 5 + 2, 1 * 5 + 4]
    assert dep[2 * 5 + 2, 1 * 5 + 3] and dep[2 * 5 + 2, 2 * 5 + 1]


# ----- exact likelihood ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_probabilities_sum_to_one_over_all_images(arch):
    model = _tiny(arch)
    log_p = model.log_prob(_all_images(9))
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)
    assert torch.equal(model.energy(_all_images(9)), -log_p)
    # far from uniform, so the sampling tests below can fail
    assert float(log_p.max() - log_p.min()) > 3.0


@pytest.mark.parametrize("arch", ARCHS)
def test_conditionals_agree_with_enumerated_marginals(arch):
    """sigmoid(l_i(x)) = P(x_<i, x_i = 1) / P(x_<i), marginals summed from the joint."""
    model = _tiny(arch, seed=3)
    images = _all_images(9)
    p = model.log_prob(images).exp().reshape([2] * 9)
    x = images[[5, 200, 511]]
    probs = torch.sigmoid(model.logits(x))
    for b in range(x.shape[0]):
        bits = [int(v) for v in x[b].tolist()]
        for i in range(9):
            prefix = p[tuple(bits[:i])].reshape(2, -1).sum(1)
            assert probs[b, i].item() == pytest.approx(float(prefix[1] / prefix.sum()), abs=1e-10)


# ----- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_samples_match_exact_probabilities(arch):
    model = _tiny(arch, seed=2)
    probs = model.log_prob(_all_images(9)).exp()
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (20_000, 9)
    counts = torch.bincount(_index(samples), minlength=512)
    assert _chi_square_p(counts, probs) > ALPHA


def test_sampling_is_reproducible_and_rejects_bad_n():
    model = _tiny("gated")
    a = model.sample(5, generator=torch.Generator().manual_seed(4))
    b = model.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n: expected a positive integer"):
            model.sample(bad)


def test_completion_draws_from_the_exact_conditional():
    model = _tiny("gated", seed=5)
    images = _all_images(9)
    joint = model.log_prob(images).exp()
    top = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    consistent = (images[:, :3] == top).all(1)
    conditional = joint[consistent] / joint[consistent].sum()  # 64 completions, in index order
    known = torch.tensor([True] * 3 + [False] * 6)
    start = torch.cat([top, torch.zeros(6, dtype=torch.float64)]).expand(10_000, 9)
    out = model.complete(start, known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :3], start[:, :3])
    counts = torch.bincount(_index(out[:, 3:]), minlength=64)
    assert _chi_square_p(counts, conditional) > ALPHA


def test_completion_needs_a_raster_prefix():
    model = _tiny("gated")
    x = torch.zeros(2, 9, dtype=torch.float64)
    bottom_known = torch.tensor([False] * 3 + [True] * 6)
    with pytest.raises(ValueError, match="precede the unknown"):
        model.complete(x, bottom_known)
    with pytest.raises(TypeError, match="mask: expected a bool"):
        model.complete(x, torch.ones(9))
    with pytest.raises(ValueError, match="mask: expected shape"):
        model.complete(x, torch.ones(8, dtype=torch.bool))
    # unknown pixels may hold anything, known ones must be binary
    noisy = torch.full((2, 9), 0.3, dtype=torch.float64)
    noisy[:, :3] = 1.0
    top_known = torch.tensor([True] * 3 + [False] * 6)
    assert model.complete(noisy, top_known).shape == (2, 9)
    noisy[0, 0] = 0.5
    with pytest.raises(ValueError, match="known pixels"):
        model.complete(noisy, top_known)


# ----- save/load and bad input --------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = _perturbed(PixelCNN([4, 3], channels=6, n_layers=2, architecture="plain"))
    model.requires_grad_(False)
    path = ebmlab.save(model, tmp_path / "pixelcnn.safetensors")
    loaded = ebmlab.load(path)
    assert type(loaded) is PixelCNN and loaded.config == model.config
    x = (torch.rand(7, 12, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_bad_input_is_named():
    model = PixelCNN([3, 3], channels=4, n_layers=2)
    with pytest.raises(ValueError, match="x: a Bernoulli model needs binary data"):
        model.log_prob(torch.full((2, 9), 0.5))
    with pytest.raises(ValueError, match="x: expected 9 features"):
        model.log_prob(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="x: expected shape"):
        model.log_prob(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="x: contains 1 NaN"):
        model.log_prob(torch.tensor([[float("nan")] + [0.0] * 8]))
    with pytest.raises(ValueError, match="image_shape"):
        PixelCNN([9])
    with pytest.raises(ValueError, match="kernel: expected an odd"):
        PixelCNN([3, 3], kernel=4)
    with pytest.raises(ValueError, match="channels: expected a positive integer"):
        PixelCNN([3, 3], channels=0)
    with pytest.raises(ValueError, match="architecture: expected one of gated, plain"):
        PixelCNN([3, 3], architecture="lstm")


# ----- training and the recipe --------------------------------------------------------------------
def test_maximum_likelihood_beats_independent_pixels_on_digits():
    x_train, _ = data.load("digits", "train", binarize="stochastic")
    x_test, _ = data.load("digits", "test", binarize="stochastic")
    baseline = IndependentBernoulli(64).fit(x_train)
    model = PixelCNN([8, 8], channels=16, n_layers=3, first_kernel=5)
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, seed=0, progress=False, device="cpu")
    train(model, MaximumLikelihood(), x_train, config)
    with torch.no_grad():
        gain = model.log_prob(x_test) - baseline.log_prob(x_test)
    se = float(gain.std() / gain.numel() ** 0.5)
    # pixels of digits are strongly dependent: the exact likelihood gain is several nats
    assert float(gain.mean()) > 5 * se and float(gain.mean()) > 0.5


def test_pixelcnn_recipe_through_the_cli(tmp_path):
    from ebmlab.app.cli import main

    out = tmp_path / "run"
    argv = ["--threads", "1", "train", "pixelcnn", "--data", "digits", "--epochs", "1"]
    argv += ["--channels", "8", "--layers", "2", "--first-kernel", "3", "--eval"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "eval.json").read_text())
    assert metrics["log_likelihood_method"] == "exact"
    assert metrics["n_test"] == data.load("digits", "test")[0].shape[0]
    assert -64 * 0.6932 < metrics["test_log_likelihood"] < 0  # better than coin flips
    figures = json.loads((out / "figures.json").read_text())
    assert {f["path"] for f in figures} == {"samples.png", "completions.png"}
    assert all((out / f["path"]).stat().st_size > 0 for f in figures)
    # eval of the saved run reproduces the exact likelihood
    assert main(["eval", str(out), "--json"]) == 0
    again = json.loads((out / "eval.json").read_text())
    assert again["test_log_likelihood"] == pytest.approx(metrics["test_log_likelihood"], abs=1e-4)
