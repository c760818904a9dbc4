"""Dynamic binarization of the VAE's training data (Burda et al. 2016): every minibatch is drawn
afresh from the grey levels with the data layer's stochastic binarization, so the model fits
the distribution of the binarizations; the recipe trains on the grey levels of its run's
training images and scores the fixed binarization of the test images."""

from __future__ import annotations

import pytest
import torch

from ebmlab.app import cli, recipes
from ebmlab.app.families.vae import grey_training_images
from ebmlab.app.recipes import Context
from ebmlab.data.binarize import binarize_stochastic
from ebmlab.models.vae import VAE
from ebmlab.objectives.vae import VariationalBound
from ebmlab.training import TrainConfig, train


def grey(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bound", ["elbo", "iwae"])
def test_the_loss_is_the_loss_of_one_fresh_binarization(bound: str) -> None:
    """Same generator state: the dynamic loss on grey levels equals the fixed loss on the batch
    binarized by ``binarize_stochastic`` with that generator (then the same latent draws)."""
    model = VAE(6, hidden=[5], latent=2, seed=0)
    x = grey(16, 6)
    dynamic = VariationalBound(bound=bound, k=3, dynamic_binarization=True)
    fixed = VariationalBound(bound=bound, k=3)
    loss, metrics = dynamic.loss(model, x, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    expected, expected_metrics = fixed.loss(model, binarize_stochastic(x, g), g)
    assert torch.equal(loss, expected) and metrics == expected_metrics
    # and two calls see two binarizations
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(dynamic.loss(model, x, g)[0], dynamic.loss(model, x, g)[0])


def test_training_fits_the_binarizations_not_one_draw() -> None:
    """One grey image (every pixel 0.3) repeated: with dynamic binarization the decoder learns
    p(x_d = 1) = 0.3; trained on one fixed draw of it, it learns that draw (near 0 or 1). The
    output bias starts at 0 (p = 0.5) so that only training can get there."""
    d = 8
    x = torch.full((400, d), 0.3)
    fixed_draw = binarize_stochastic(x[:1], torch.Generator().manual_seed(3)).expand(400, d)
    config = TrainConfig(epochs=15, batch_size=50, lr=1e-2, seed=0, progress=False)
    means = {}
    for name, data, dynamic in (("dynamic", x, True), ("fixed", fixed_draw, False)):
        model = VAE(d, hidden=[8], latent=2, seed=0)
        objective = VariationalBound(init_output_bias=False, dynamic_binarization=dynamic)
        train(model, objective, data, config)
        samples = model.sample(4000, torch.Generator().manual_seed(1))  # E[x | z], z ~ p(z)
        means[name] = samples.mean(0)
    # 400 x 15 draws per pixel: the learned marginal is within a few hundredths of 0.3
    assert torch.allclose(means["dynamic"], torch.full((d,), 0.3), atol=0.05), means["dynamic"]
    assert ((means["fixed"] - fixed_draw[0]).abs() < 0.2).all(), means["fixed"]


def test_grey_levels_are_checked_and_only_a_bernoulli_decoder_binarizes() -> None:
    model = VAE(4, hidden=[], latent=1, seed=0)
    VariationalBound(dynamic_binarization=True).setup(model, grey(10, 4))  # accepted
    with pytest.raises(ValueError, match="x_train"):  # grey levels without the option
        VariationalBound().setup(model, grey(10, 4))
    with pytest.raises(ValueError, match=r"x_train: grey levels to binarize must lie in \[0, 1\]"):
        VariationalBound(dynamic_binarization=True).setup(model, grey(10, 4) + 0.5)
    gaussian = VAE(4, hidden=[], latent=1, likelihood="gaussian", seed=0)
    with pytest.raises(ValueError, match=r"dynamic_binarization: .* 'gaussian'"):
        VariationalBound(dynamic_binarization=True).setup(gaussian, grey(10, 4))
    with pytest.raises(ValueError, match="dynamic_binarization"):
        VariationalBound(dynamic_binarization="yes")


def run_vae(tmp_path, **options) -> dict:
    recipe = recipes.get_recipe("vae")
    defaults = {opt.name: opt.default for opt in recipe.options}
    settings = {"hidden": "16", "latent": 2, "eval_k": 10, **options}
    config = TrainConfig(epochs=1, batch_size=50, lr=3e-3, device="cpu", progress=False)
    return cli.run_family(
        recipe, "digits", {**defaults, **settings}, config, tmp_path, evaluate=True, quick=True
    )


def test_the_recipe_trains_on_grey_levels_and_says_so(tmp_path) -> None:
    dynamic = run_vae(tmp_path / "dynamic", dynamic_binarization=True)
    assert dynamic["training_binarization"].startswith("dynamic binarization of digits")
    fixed = run_vae(tmp_path / "fixed")
    assert fixed["training_binarization"].startswith("fixed stochastic binarization of digits")
    # the test set is the same fixed binarization either way
    assert dynamic["test_binarization"] == fixed["test_binarization"]
    assert dynamic["test_binarization"].startswith("fixed stochastic binarization of digits")


def test_grey_training_images_are_those_of_the_run(tmp_path) -> None:
    split = cli.load_split("digits", "stochastic", seed=0)
    ctx = Context(
        options={},
        data_name="digits",
        image_shape=split.image_shape,
        generator=torch.Generator(),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        x_train=split.x_train,
    )
    x = grey_training_images(ctx)
    assert x.shape == split.x_train.shape and 0 < float(x.mean()) < 1
    assert not torch.equal(x, split.x_train)  # grey levels, not the binary images
    ctx.x_train = split.x_train.flip(0)  # other rows: a pixel at 0 became 1
    with pytest.raises(ValueError, match="--dynamic-binarization: the grey levels of 'digits'"):
        grey_training_images(ctx)
