"""CycleGAN: the cycle-consistency loss (zero for exact inverse generators, its closed form for
others), the least-squares losses and their optimal discriminator, the split of the gradient
between the generators and the discriminators, update phases, shapes of the four networks, the
known-answer domains (transformations and their inverses, disjoint halves), the nearest-image
baseline, checkpoints, the recipe's rows, a brief training on digits, and bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ebmlab
from ebmlab import data
from ebmlab.data.domains import (
    TRANSFORMS,
    inverse_transform,
    transform,
    unpaired_domains,
    unpaired_halves,
)
from ebmlab.models.cyclegan import CycleGAN
from ebmlab.objectives.cyclegan import (
    CycleGANObjective,
    adversarial_losses,
    cycle_consistency_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
)
from ebmlab.training import TrainConfig, train


def _small(**kwargs) -> CycleGAN:
    settings = dict(architecture="mlp", hidden=8, depth=1, output="identity", seed=0)
    settings.update(kwargs)
    return CycleGAN(3, **settings).double()


def _rows(n: int = 16, dim: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(
        n, 2 * dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


# ----- the cycle-consistency loss -----------------------------------------------------------------
@pytest.mark.parametrize("kind", TRANSFORMS)
def test_the_cycle_loss_is_zero_for_the_transformation_and_its_inverse(kind):
    images = torch.rand(12, 64, generator=torch.Generator().manual_seed(0))
    y = transform(torch.rand(12, 64, generator=torch.Generator().manual_seed(1)), kind, (8, 8))
    forward = transform(images, kind, (8, 8))
    back = inverse_transform(y, kind, (8, 8))
    loss = cycle_consistency_loss(
        images, inverse_transform(forward, kind, (8, 8)), y, transform(back, kind, (8, 8))
    )
    assert float(loss) == 0.0
    # a generator that is not the inverse leaves a cycle error
    wrong = cycle_consistency_loss(images, forward, y, back)
    assert float(wrong) > 0.1


class _Linear(nn.Module):
    """x -> x A^T + b, the generator of a test."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(a.clone()), nn.Parameter(b.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.T + self.b


def test_the_objective_has_no_cycle_loss_for_exact_inverse_generators():
    model = _small()
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    inverse = torch.linalg.inv(a)
    model.generator_xy = _Linear(a, b)  # G(x) = A x + b
    model.generator_yx = _Linear(inverse, -inverse @ b)  # F(y) = A^-1 (y - b)
    objective = CycleGANObjective()
    rows = _rows()
    objective.setup(model, rows)
    loss, metrics = objective.loss(model, rows, torch.Generator())
    assert metrics["cycle_loss"] < 1e-12
    # the loss is then the adversarial terms alone
    adversarial = sum(
        metrics[k] for k in ("d_loss_x", "d_loss_y", "g_adversarial", "f_adversarial")
    )
    assert float(loss.detach()) == pytest.approx(adversarial, abs=1e-10)


def test_the_cycle_loss_of_shifted_generators_is_twice_the_shift():
    # G(x) = x + c, F(y) = y: F(G(x)) - x = c and G(F(y)) - y = c, each of mean size |c|
    model = _small()
    c = torch.tensor([0.5, -0.25, 1.0], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    model.generator_xy = _Linear(eye, c)
    model.generator_yx = _Linear(eye, torch.zeros(3, dtype=torch.float64))
    _, metrics = CycleGANObjective().loss(model, _rows(), torch.Generator())
    assert metrics["cycle_loss"] == pytest.approx(2 * float(c.abs().mean()))


# ----- the adversarial losses ---------------------------------------------------------------------
def test_the_least_squares_discriminator_is_optimal_at_p_over_p_plus_q():
    # on a finite set: E_p (D - 1)^2 + E_q D^2 is minimized pointwise by D* = p / (p + q)
    p = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
    q = torch.tensor([0.25, 0.05, 0.5, 0.2], dtype=torch.float64)

    def loss(d: torch.Tensor) -> float:
        return float((p * (d - 1) ** 2 + q * d**2).sum())

    best = p / (p + q)
    for bump in (0.05 * torch.tensor([1.0, -1, 1, -1]), torch.full((4,), -0.02), 0.1 * p):
        assert loss(best + bump) > loss(best)
    # the Monte Carlo form of the library's loss, with D's values as the logits of each point
    real = best[torch.multinomial(p, 40_000, True, generator=torch.Generator().manual_seed(0))]
    fake = best[torch.multinomial(q, 40_000, True, generator=torch.Generator().manual_seed(1))]
    assert float(least_squares_discriminator_loss(real, fake)) == pytest.approx(
        loss(best), abs=0.01
    )
    # LSGAN generator loss at D = 1 is zero, at D = 0 one
    assert float(least_squares_generator_loss(torch.ones(5))) == 0.0
    assert float(least_squares_generator_loss(torch.zeros(5))) == 1.0


def test_each_group_gets_the_gradient_of_its_own_loss():
    model = _small()
    rows = _rows()
    objective = CycleGANObjective(cycle_weight=3.0, identity_weight=0.5)
    objective.setup(model, rows)
    loss, _ = objective.loss(model, rows, torch.Generator())
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    x, y = rows[:, :3], rows[:, 3:]
    d_form, g_form = adversarial_losses("lsgan")
    fake_y, fake_x = model.translate(x), model.translate_back(y)
    d_loss = d_form(model.discriminate_y(y), model.discriminate_y(fake_y.detach())) + d_form(
        model.discriminate_x(x), model.discriminate_x(fake_x.detach())
    )
    g_loss = (
        g_form(model.discriminate_y(fake_y))
        + g_form(model.discriminate_x(fake_x))
        + 3.0 * cycle_consistency_loss(x, model.translate_back(fake_y), y, model.translate(fake_x))
        + 0.5 * ((model.translate(y) - y).abs().mean() + (model.translate_back(x) - x).abs().mean())
    )
    for net, own in ((model.discriminator_x, d_loss), (model.discriminator_y, d_loss)):
        params = dict(net.named_parameters())
        for p, grad in zip(params.values(), torch.autograd.grad(own, list(params.values()))):
            name = next(n for n, q in model.named_parameters() if q is p)
            torch.testing.assert_close(got[name], grad)
    for net in model.generators:
        params = list(net.parameters())
        for p, grad in zip(params, torch.autograd.grad(g_loss, params, retain_graph=True)):
            name = next(n for n, q in model.named_parameters() if q is p)
            torch.testing.assert_close(got[name], grad)


def test_alternating_updates_and_param_groups():
    model = _small()
    rows = _rows(8)
    objective = CycleGANObjective(d_steps=1, generator_lr_ratio=0.5)
    objective.setup(model, rows)
    seen = []
    d_params = [p for net in model.discriminators for p in net.parameters()]
    g_params = [p for net in model.generators for p in net.parameters()]
    for step in range(4):
        model.zero_grad(set_to_none=True)
        loss, _ = objective.loss(model, rows, torch.Generator())
        loss.backward()
        d_has = all(p.grad is not None for p in d_params)
        g_none = all(p.grad is None for p in g_params)
        seen.append("D" if d_has and g_none else "G" if not d_has and not g_none else "?")
        objective.after_step(model, step + 1)
    assert "".join(seen) == "DGDG"
    groups = objective.param_groups(model, 1e-3, 0.0)
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in d_params}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in g_params}
    assert groups[1]["lr"] == pytest.approx(5e-4) and groups[0]["betas"] == (0.5, 0.999)


# ----- networks, domains --------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "patches"), [([8, 8], 4), ([28, 28], 49)])
def test_conv_networks_map_images_to_images_and_patch_logits(shape, patches):
    dim = shape[0] * shape[1]
    model = CycleGAN(dim, channels=4, n_blocks=1, image_shape=shape, seed=0)
    x = torch.rand(5, dim, generator=torch.Generator().manual_seed(0))
    for out in (model.translate(x).detach(), model.translate_back(x).detach()):
        assert out.shape == (5, dim) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert model.discriminate_x(x).shape == model.discriminate_y(x).shape == (5, patches)
    assert _small().discriminate_y(torch.zeros(2, 3, dtype=torch.float64)).shape == (2, 1)
    assert model.translate_all(x, chunk=2).shape == (5, dim)


def test_transformations_and_the_unpaired_domains():
    image = torch.arange(4.0).reshape(1, 4) / 3  # [[0, 1/3], [2/3, 1]]
    torch.testing.assert_close(transform(image, "invert", (2, 2)), 1 - image)
    # a quarter turn counterclockwise: the top row becomes the left column, read upwards
    turned = transform(image, "rotate90", (2, 2)).reshape(2, 2)
    torch.testing.assert_close(turned, torch.tensor([[1.0, 3.0], [0.0, 2.0]]) / 3)
    x, _ = data.load("digits", "train")
    for kind in TRANSFORMS:
        assert torch.equal(inverse_transform(transform(x, kind, (8, 8)), kind, (8, 8)), x)
    first, second = unpaired_halves(11, seed=3)
    assert len(first) == len(second) == 5
    assert not set(first.tolist()) & set(second.tolist())
    domain_x, domain_y = unpaired_domains(x, "invert", (8, 8), seed=3)
    first, second = unpaired_halves(x.shape[0], seed=3)
    assert torch.equal(domain_x, x[first]) and torch.equal(domain_y, 1 - x[second])


def test_nearest_image_baseline_is_the_brute_force_minimum():
    from ebmlab.app.families.cyclegan import nearest_mse

    g = torch.Generator().manual_seed(0)
    refs, targets = torch.rand(30, 5, generator=g), torch.rand(7, 5, generator=g)
    brute = torch.stack([((refs - t) ** 2).mean(1).min() for t in targets]).mean()
    assert nearest_mse(refs, targets, chunk=3) == pytest.approx(float(brute), rel=1e-5)
    assert nearest_mse(refs, refs[:4]) == pytest.approx(0.0, abs=1e-6)


# ----- checkpoints, training, the recipe ---------------------------------------------------------
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_save_load_gives_the_same_translations(architecture, tmp_path):
    model = CycleGAN(
        64, architecture=architecture, channels=4, n_blocks=1, hidden=8, image_shape=[8, 8], seed=2
    )
    loaded = ebmlab.load(ebmlab.save(model, tmp_path / "cyclegan.safetensors"))
    assert loaded.config == model.config
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.translate(x), loaded.translate(x))
    assert torch.equal(model.discriminate_y(x), loaded.discriminate_y(x))


@pytest.mark.slow
def test_brief_training_on_digits_finds_the_inversion():
    x, _ = data.load("digits", "train")
    x_test, _ = data.load("digits", "test")
    domain_x, domain_y = unpaired_domains(x, "invert", (8, 8))
    model = CycleGAN(64, channels=8, n_blocks=1, image_shape=[8, 8], seed=0)
    config = TrainConfig(epochs=25, batch_size=32, lr=1e-3, seed=0, progress=False, device="cpu")
    train(model, CycleGANObjective(), torch.cat([domain_x, domain_y], 1), config)
    answer = 1 - x_test
    mse = float((model.translate_all(x_test) - answer).square().mean())
    identity = float((x_test - answer).square().mean())
    # identity 0.72; 40 epochs reach 0.007; 25 epochs stay below a tenth of the identity's
    assert mse < identity / 10, (mse, identity)


def test_recipe_rows_hold_one_image_of_each_domain(tmp_path):
    from ebmlab.app.cli import load_split, make_context
    from ebmlab.app.recipes import get_recipe

    recipe = get_recipe("cyclegan")
    split = load_split("digits", None, seed=0)
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(channels=4, blocks=1, target="rotate90", split_seed=5)
    run = {"model": recipe.name, "options": options, "data": "digits", "image_shape": [8, 8]}
    ctx = make_context({**run, "train": {"seed": 0, "device": "cpu"}}, tmp_path, split=split)
    model, objective = recipe.build(split.x_train, ctx)
    (stage,) = recipe.stages(model, objective, ctx, TrainConfig(epochs=1))
    first, second = unpaired_halves(split.x_train.shape[0], 5)
    assert stage.data.shape == (split.x_train.shape[0] // 2, 128)
    assert torch.equal(stage.data[:, :64], split.x_train[first])
    assert torch.equal(stage.data[:, 64:], transform(split.x_train[second], "rotate90", (8, 8)))


# ----- bad inputs ---------------------------------------------------------------------------------
def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="cycle_weight"):
        CycleGANObjective(cycle_weight=-1.0)
    with pytest.raises(ValueError, match="gan_loss"):
        CycleGANObjective(gan_loss="wasserstein")
    with pytest.raises(ValueError, match="d_steps"):
        CycleGANObjective(d_steps=-1)
    with pytest.raises(ValueError, match="architecture"):
        CycleGAN(4, architecture="unet")
    with pytest.raises(ValueError, match="image_shape"):
        CycleGAN(64)
    with pytest.raises(ValueError, match="kind"):
        transform(torch.rand(2, 4), "blur", (2, 2))
    with pytest.raises(ValueError, match="rotate90 needs square images"):
        transform(torch.rand(2, 8), "rotate90", (2, 4))
    with pytest.raises(ValueError, match="images: expected images of shape"):
        transform(torch.rand(2, 5), "invert", (2, 2))
    with pytest.raises(ValueError, match="n: expected at least 2"):
        unpaired_halves(1)
    model = _small()
    with pytest.raises(ValueError, match="x: expected shape"):
        model.translate(torch.zeros(2, 4, dtype=torch.float64))
    objective = CycleGANObjective()
    with pytest.raises(ValueError, match="x_train: expected rows"):
        objective.setup(model, torch.rand(5, 3))
    sigmoid = CycleGAN(3, architecture="mlp", hidden=4)
    with pytest.raises(ValueError, match="sigmoid output"):
        objective.setup(sigmoid, torch.full((5, 6), 2.0))
    with pytest.raises(TypeError, match="CycleGANObjective trains a CycleGAN"):
        objective.setup(nn.Linear(3, 3), torch.rand(5, 6))


def _mnist_context(tmp_path, **options):
    from ebmlab.app.cli import Split, load_split, make_context
    from ebmlab.app.recipes import get_recipe

    recipe = get_recipe("cyclegan")
    whole = load_split("mnist", None, seed=0)
    split = Split(
        whole.x_train[:200], whole.x_test[:50], whole.y_train[:200], whole.y_test[:50], (28, 28)
    )
    settings = {opt.name: opt.default for opt in recipe.options}
    settings.update(options)
    run = {"model": recipe.name, "options": settings, "data": "mnist", "image_shape": [28, 28]}
    ctx = make_context({**run, "train": {"seed": 0, "device": "cpu"}}, tmp_path, split=split)
    return recipe, split, ctx


def test_the_visual_pair_takes_domain_y_from_fashion_mnist(tmp_path):
    recipe, split, ctx = _mnist_context(tmp_path, target="fashion-mnist", channels=2)
    model, objective = recipe.build(split.x_train, ctx)
    (stage,) = recipe.stages(model, objective, ctx, TrainConfig(epochs=1))
    fashion, _ = data.load("fashion-mnist", "train")
    first, second = unpaired_halves(200, 0)
    assert torch.equal(stage.data[:, :784], split.x_train[first])
    assert torch.equal(stage.data[:, 784:], fashion[:200][second])


@pytest.mark.slow
def test_the_visual_pair_is_scored_by_its_cycle_and_frechet_distance(tmp_path, monkeypatch):
    monkeypatch.setenv("EBMLAB_CACHE", str(tmp_path / "cache"))
    recipe, split, ctx = _mnist_context(tmp_path, target="fashion-mnist", channels=2)
    model, _ = recipe.build(split.x_train, ctx)
    model.eval()
    metrics = recipe.evaluate(model, split.x_train, split.x_test, ctx)
    assert metrics["test_translation_frechet_distance"] > 0
    assert metrics["test_translation_frechet_distance_train_floor"] > 0
    assert 0 <= metrics["test_cycle_class_agreement"] <= 1
    assert "test_translation_mse" not in metrics  # no answer to compare with
    assert len(recipe.figures(model, split.x_test, ctx)) == 2
