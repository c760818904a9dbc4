"""Conditional GAN: shapes of both players and their label inputs, the label reaching the
generator (a hand-built generator that draws each class's mean image, checked with the classifier
trained on real labels), the objective's split of the gradient with the data's labels on the
generated half, a brief training on digits whose samples take the requested class, checkpoints,
the recipe's labelled rows, and bad inputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import ebmlab
from ebmlab import data
from ebmlab.metrics.conditional import class_accuracy, per_class_frechet
from ebmlab.models.cgan import ConditionalGAN, LabelConcat
from ebmlab.objectives.cgan import ConditionalGANObjective, labelled_rows
from ebmlab.objectives.gan import discriminator_loss, generator_loss
from ebmlab.training import TrainConfig, train


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    """The classifiers of the Frechet digit distance, cached outside the user's cache."""
    folder = tmp_path_factory.getbasetemp() / "classifier-cache"
    monkeypatch.setenv("EBMLAB_CACHE", str(folder))
    return folder


def _small(**kwargs) -> ConditionalGAN:
    settings = dict(latent_dim=2, hidden=8, depth=1, output="identity", batch_norm=False, seed=0)
    settings.update(kwargs)
    return ConditionalGAN(3, n_classes=4, **settings).double()


def _digits_model(architecture: str, **kwargs) -> ConditionalGAN:
    """A small conditional GAN for 8 x 8 images of 10 classes."""
    settings = dict(latent_dim=4, architecture=architecture, hidden=16, channels=4)
    return ConditionalGAN(64, n_classes=10, image_shape=[8, 8], **settings, **kwargs)


# ----- shapes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("d_bn", [False, True])
def test_players_map_latents_and_labels_to_images_and_logits(architecture, d_bn):
    model = _digits_model(architecture, discriminator_batch_norm=d_bn, seed=0)
    labels = torch.arange(10)
    x = model.sample(10, torch.Generator().manual_seed(0), labels=labels)
    assert x.shape == (10, 64) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert model.discriminate(x, labels).shape == (10,)
    # one-hot rows and class indices are the same labels
    z = model.sample_latent(10, torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        model.generate(z, labels), model.generate(z, F.one_hot(labels, 10).float())
    )
    # the discriminator sees the label: the same images judged as other classes differ
    assert not torch.allclose(model.discriminate(x, labels), model.discriminate(x, 9 - labels))
    assert model.sample(7).shape == (7, 64)  # classes drawn uniformly when none are given


def test_the_label_is_what_the_generator_draws(cache):
    # a generator that ignores z and draws the mean training image of class y (no training):
    # the classifier trained on real labels must find the requested classes
    x, y = data.load("digits", "train")
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    model = ConditionalGAN(64, n_classes=10, latent_dim=3, output="identity", seed=0)
    linear = nn.Linear(3 + 10, 64)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, 3:] = means.T  # column k of the label block is class k's mean
        linear.bias.zero_()
    model.generator = LabelConcat(linear)
    labels = torch.arange(10).repeat(20)
    samples = model.sample(200, torch.Generator().manual_seed(0), labels=labels)
    scores = class_accuracy(samples, labels, "digits")
    assert scores["accuracy"] == 1.0 and set(scores["per_class"]) == set(range(10))
    # changing only the label moves every sample to the new class
    shifted = model.sample(200, torch.Generator().manual_seed(0), labels=(labels + 1) % 10)
    assert class_accuracy(shifted, (labels + 1) % 10, "digits")["accuracy"] == 1.0
    assert class_accuracy(shifted, labels, "digits")["accuracy"] == 0.0


def test_per_class_frechet_is_zero_for_the_reference_itself_and_grows_for_a_wrong_class(cache):
    x, y = data.load("digits", "test")
    same = per_class_frechet(x, y, x, y, "digits")
    assert set(same) == set(range(10)) and max(same.values()) < 1e-6
    # every image labelled one class further: each class is compared with another class's images
    wrong = per_class_frechet(x, (y + 1) % 10, x, y, "digits")
    assert min(wrong.values()) > 10 * max(max(same.values()), 1e-3)


# ----- the objective ------------------------------------------------------------------------------
def test_each_player_gets_the_gradient_of_its_own_loss_with_the_data_labels():
    model = _small()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(4, (16,), generator=g)
    rows = labelled_rows(x, labels, 4)
    objective = ConditionalGANObjective()
    objective.setup(model, rows)
    loss, metrics = objective.loss(model, rows, torch.Generator().manual_seed(2))
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    # by hand: the generated half takes the data's labels, with the same latents
    z = model.sample_latent(16, torch.Generator().manual_seed(2))
    fake = model.generate(z, labels)
    d_loss = discriminator_loss(
        model.discriminate(x, labels), model.discriminate(fake.detach(), labels)
    )
    assert metrics["d_loss"] == pytest.approx(float(d_loss.detach()))
    d_params = dict(model.discriminator.named_parameters())
    g_params = dict(model.generator.named_parameters())
    d_grads = torch.autograd.grad(d_loss, list(d_params.values()))
    g_loss = generator_loss(model.discriminate(fake, labels))
    g_grads = torch.autograd.grad(g_loss, list(g_params.values()))
    for (name, _), grad in zip(d_params.items(), d_grads, strict=True):
        torch.testing.assert_close(got[f"discriminator.{name}"], grad)
    for (name, _), grad in zip(g_params.items(), g_grads, strict=True):
        torch.testing.assert_close(got[f"generator.{name}"], grad)


def test_value_of_the_game_is_the_negative_discriminator_loss():
    model = _small()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(4, (8,), generator=g)
    z = model.sample_latent(8, g)
    fake = model.generate(z, labels)
    expected = -discriminator_loss(model.discriminate(x, labels), model.discriminate(fake, labels))
    torch.testing.assert_close(model.value(x, labels, z), expected)


@pytest.mark.slow
def test_brief_training_on_digits_makes_samples_of_the_requested_class(cache):
    x, y = data.load("digits", "train")
    model = ConditionalGAN(64, n_classes=10, latent_dim=16, hidden=128, seed=0)
    config = TrainConfig(epochs=30, batch_size=64, lr=1e-3, seed=0, progress=False, device="cpu")
    train(model, ConditionalGANObjective(r1_gamma=3.0), labelled_rows(x, y, 10), config)
    model.eval()
    labels = torch.arange(10).repeat_interleave(50)
    samples = model.sample(500, torch.Generator().manual_seed(0), labels=labels)
    scores = class_accuracy(samples, labels, "digits")
    # chance is 0.1; 30 epochs reach about 0.95 (the classifier's own accuracy is 0.98), and
    # the same samples read as the wrong class are rare
    assert scores["accuracy"] > 0.8, scores
    assert class_accuracy(samples, (labels + 1) % 10, "digits")["accuracy"] < 0.1


# ----- checkpoints, the recipe --------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_save_load_gives_the_same_samples(architecture, tmp_path):
    model = _digits_model(architecture, seed=3)
    model.eval()
    loaded = ebmlab.load(ebmlab.save(model, tmp_path / "cgan.safetensors"))
    loaded.eval()
    assert loaded.config == model.config
    labels = torch.arange(10)
    a = model.sample(10, torch.Generator().manual_seed(5), labels=labels)
    b = loaded.sample(10, torch.Generator().manual_seed(5), labels=labels)
    assert torch.equal(a, b)


def test_recipe_trains_on_rows_of_pixels_and_one_hot_labels(tmp_path, cache):
    from ebmlab.app.cli import load_split, make_context
    from ebmlab.app.recipes import get_recipe

    recipe = get_recipe("cgan")
    split = load_split("digits", None, seed=0)
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(latent_dim=8, hidden=16)
    run = {"model": recipe.name, "options": options, "data": "digits", "image_shape": [8, 8]}
    ctx = make_context({**run, "train": {"seed": 0, "device": "cpu"}}, tmp_path, split=split)
    model, objective = recipe.build(split.x_train, ctx)
    assert model.n_classes == 10
    (stage,) = recipe.stages(model, objective, ctx, TrainConfig(epochs=1))
    assert stage.data.shape == (split.x_train.shape[0], 64 + 10)
    assert torch.equal(stage.data[:, :64], split.x_train)
    assert torch.equal(stage.data[:, 64:].argmax(1), split.y_train)
    metrics = recipe.evaluate(model, split.x_train, split.x_test, ctx)
    assert metrics["class_accuracy_n_samples"] == 359
    assert 0.0 <= metrics["test_class_accuracy"] <= 1.0
    assert set(metrics["test_frechet_distance_per_class"]) == {str(k) for k in range(10)}
    assert "log_likelihood_method" not in metrics
    unlabelled = dataclasses.replace(ctx, y_train=None)
    with pytest.raises(ValueError, match="needs class labels"):
        recipe.build(split.x_train, unlabelled)


# ----- bad inputs ---------------------------------------------------------------------------------
def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="n_classes"):
        ConditionalGAN(4, n_classes=1)
    with pytest.raises(ValueError, match="discriminator_batch_norm"):
        ConditionalGAN(4, discriminator_batch_norm="yes")
    with pytest.raises(ValueError, match="image_shape"):
        ConditionalGAN(64, architecture="conv")
    model = _small()
    z = torch.zeros(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"labels: expected classes in 0\.\.3"):
        model.generate(z, torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="labels: expected 5 class indices"):
        model.generate(z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels: expected 5 class indices"):
        model.generate(z, torch.zeros(5))  # float class indices
    with pytest.raises(TypeError, match="labels: expected a tensor"):
        model.generate(z, [0, 1, 2, 3, 0])
    with pytest.raises(ValueError, match="x: expected shape"):
        model.discriminate(torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="n_steps"):
        model.sample(3, n_steps=5)
    objective = ConditionalGANObjective()
    with pytest.raises(ValueError, match="x_train: expected rows"):
        objective.setup(model, torch.rand(10, 3))
    bad = torch.cat([torch.rand(10, 3), torch.full((10, 4), 0.25)], 1)
    with pytest.raises(ValueError, match="one-hot"):
        objective.setup(model, bad)
    with pytest.raises(TypeError, match="ConditionalGANObjective trains a ConditionalGAN"):
        objective.setup(ebmlab.models.GAN(3), torch.rand(10, 7))
    with pytest.raises(ValueError, match="labels: expected one class per image"):
        labelled_rows(torch.rand(4, 3), torch.tensor([0, 1]), 4)
