"""Progress of the long evaluations: the VAE's IWAE bound and the Frechet features (the
classifier's training, the feature passes) show a bar on a terminal's stderr, through the
training loop's ``progress_bar``, and nothing with ``progress=False`` / ``--no-progress``."""

from __future__ import annotations

import io
import math
import sys
from dataclasses import replace

import pytest
import torch
from test_recipes import digits_context

from ebmlab import io as checkpoints
from ebmlab.app import recipes
from ebmlab.app.cli import main
from ebmlab.app.families import gan as gan_family
from ebmlab.app.families import vae as vae_family
from ebmlab.metrics import frechet
from ebmlab.models.vae import VAE


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm draws no bar on anything else)."""

    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """sys.stderr replaced by a terminal, in the test's body (the capture of the output resets
    sys.stderr between a fixture's setup and the test)."""
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def _vae() -> tuple[VAE, torch.Tensor]:
    model = VAE(16, hidden=[8], latent=2, seed=0)
    x = (torch.rand(30, 16, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    return model, x


def test_iwae_bound_shows_a_bar_and_none_when_switched_off(monkeypatch):
    terminal = _terminal(monkeypatch)
    model, x = _vae()
    on = vae_family.iwae_bounds(model, x, 20, torch.Generator().manual_seed(2), 40, "test", True)
    shown = terminal.getvalue()
    assert "IWAE-20 on 30 test images" in shown
    terminal.seek(0)
    terminal.truncate()
    off = vae_family.iwae_bounds(model, x, 20, torch.Generator().manual_seed(2), 40, "test", False)
    assert terminal.getvalue() == ""
    # the bar only watches: the same draws give the same bounds as the model's own call
    plain = model.bounds(x, k=20, generator=torch.Generator().manual_seed(2), batch_size=40)
    for result in (on, off):
        torch.testing.assert_close(result.iwae, plain.iwae, rtol=0, atol=0)
        torch.testing.assert_close(result.elbo, plain.elbo, rtol=0, atol=0)
    # the bar is told of every example once, block by block (two per block of 40 pairs)
    counts: list[int] = []
    model.bounds(
        x, k=20, generator=torch.Generator().manual_seed(2), batch_size=40, progress=counts.append
    )
    assert counts == [2] * 15


def test_frechet_classifier_training_and_feature_passes_show_bars(monkeypatch):
    terminal = _terminal(monkeypatch)
    settings = {**frechet.CLASSIFIER_SETTINGS, "digits": {"hidden": [8], "epochs": 1}}
    monkeypatch.setattr(frechet, "CLASSIFIER_SETTINGS", settings)
    model, accuracy = frechet.train_feature_classifier("digits", progress=True)
    assert 0.0 <= accuracy <= 1.0
    assert "Frechet feature classifier for digits (1 epochs)" in terminal.getvalue()
    images = torch.rand(50, 64, generator=torch.Generator().manual_seed(3))
    terminal.seek(0)
    terminal.truncate()
    features = frechet.classifier_features(model, images, progress=True, label="samples")
    assert "Frechet features of 50 samples" in terminal.getvalue()
    terminal.seek(0)
    terminal.truncate()
    frechet.train_feature_classifier("digits", progress=False)
    quiet = frechet.classifier_features(model, images, progress=False)
    assert terminal.getvalue() == ""
    torch.testing.assert_close(quiet, features, rtol=0, atol=0)


def test_frechet_distance_passes_progress_down(monkeypatch, tmp_path):
    terminal = _terminal(monkeypatch)
    images = torch.rand(40, 64, generator=torch.Generator().manual_seed(4))
    reference = torch.rand(30, 64, generator=torch.Generator().manual_seed(5))
    _cached_classifier(monkeypatch, tmp_path)
    args = {"reference": reference, "cache": tmp_path}
    frechet.frechet_distance(images, "digits", progress=False, **args)
    assert terminal.getvalue() == ""
    frechet.frechet_distance(images, "digits", progress=True, **args)
    shown = terminal.getvalue()
    assert "Frechet features of 40 images to score" in shown
    assert "Frechet features of 30 reference images" in shown


def _cached_classifier(monkeypatch: pytest.MonkeyPatch, root) -> None:
    """A small untrained digits classifier in a cache folder of its own (no training)."""
    model = frechet.FeatureClassifier(64, [8], seed=0)
    path = frechet.classifier_path("digits", root)
    path.parent.mkdir(parents=True)
    checkpoints.save(model, path, meta={"dataset": "digits", "test_accuracy": 0.5, "version": 1})
    monkeypatch.setenv(frechet.ENV_CACHE, str(root))


@pytest.mark.parametrize("progress", [True, False])
def test_a_familys_frechet_scores_follow_its_progress_setting(progress, monkeypatch, tmp_path):
    _cached_classifier(monkeypatch, tmp_path / "cache")
    recipe = recipes.get_recipe("gan")
    ctx = replace(digits_context(recipe, tmp_path, recipe.binarize), progress=progress)
    assert ctx.x_train is not None and ctx.x_test is not None
    samples = torch.rand(40, 64, generator=torch.Generator().manual_seed(6))
    labels = torch.arange(40) % 10
    terminal = _terminal(monkeypatch)
    scores = gan_family.image_scores(samples, ctx.x_train, ctx.x_test, ctx)
    scores.update(gan_family.per_class_scores(samples, labels, ctx.x_train, ctx.x_test, ctx))
    assert math.isfinite(scores["test_frechet_distance"])
    assert math.isfinite(scores["test_frechet_distance_per_class_mean"])
    shown = terminal.getvalue()
    if progress:
        assert "Frechet features of 40 images to score" in shown
        assert f"Frechet features of {ctx.x_test.shape[0]} reference images" in shown
    else:
        assert shown == ""


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_cli_evaluation_follows_no_progress(flag, monkeypatch, tmp_path):
    terminal = _terminal(monkeypatch)
    argv = ["--threads", "1", "train", "vae", "--data", "digits", "--epochs", "1"]
    argv += ["--hidden", "8", "--latent", "2", "--eval-k", "20", "--eval", "--out"]
    assert main([*argv, str(tmp_path / "run"), *flag]) == 0
    shown = terminal.getvalue()
    if flag:
        assert "IWAE-" not in shown and "epoch 1/1" not in shown
    else:
        assert "IWAE-20 on" in shown and "test images" in shown
