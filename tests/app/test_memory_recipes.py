"""The recipes of lecture 001's and 002's memories: a Hopfield network with hidden neurons, and
semantic hashing, through the CLI's ``run_family`` on the digits data."""

from __future__ import annotations

import json

import pytest
import torch

from ebmlab.app import cli, recipes
from ebmlab.training import TrainConfig


def _run(name, tmp_path, options, **loop):
    recipe = recipes.get_recipe(name)
    defaults, train = cli.data_defaults(recipe, "digits")
    settings = {**train, **loop, "seed": 0, "device": "cpu", "progress": False}
    out = tmp_path / name
    config = TrainConfig(**{k: v for k, v in settings.items()})
    metrics = cli.run_family(
        recipe, "digits", {**defaults, **options}, config, out, evaluate=True, quick=True
    )
    return metrics, out


def test_hidden_units_let_the_memory_hold_more_images_than_the_visible_network(tmp_path):
    """At 30 digits on 64 units (load 0.47, above what the projection rule recalls from 10%
    noise on the visible units alone), 32 hidden units recall far more probes exactly; every
    stored full state is a fixed point of the full network."""
    metrics, out = _run("hopfield-hidden", tmp_path, {"n_patterns": 30, "n_hidden": 32})
    assert metrics["load"] == pytest.approx(30 / 64)
    assert metrics["fixed_point_fraction"] == 1.0
    n = metrics["n_probes"]  # 600 probes: a binomial SE below 0.021
    gap = metrics["flip_recall_fraction"] - metrics["flip_recall_fraction_without_hidden"]
    assert gap > 5 * 0.5 / n**0.5, metrics
    figures = json.loads((out / "figures.json").read_text())
    assert [f["title"] for f in figures] == ["Recall with and without hidden units"]


def test_hidden_hopfield_recipe_with_no_hidden_unit_is_the_visible_network(tmp_path):
    metrics, _ = _run("hopfield-hidden", tmp_path, {"n_patterns": 12, "n_hidden": 0})
    assert metrics["flip_recall_fraction"] == metrics["flip_recall_fraction_without_hidden"]


def test_semantic_hashing_codes_retrieve_same_class_images_and_the_curve_ends_at_the_prior(
    tmp_path,
):
    """Learned 16-bit codes rank same-class training images far above chance (mAP of a random
    ranking = the class prior, about 0.1), and at the largest Hamming radius every item is
    retrieved, so the precision there is exactly the mean fraction of same-class items."""
    options = {"bits": 16, "hidden": "128", "pretrain_epochs": 5, "queries": 200}
    metrics, out = _run("semantic-hashing", tmp_path, options, epochs=30, lr=1e-2)
    split = cli.load_split("digits", None, seed=0)
    counts = torch.bincount(split.y_train, minlength=10).double() / split.y_train.shape[0]
    prior = metrics["chance_precision"]
    assert counts.min() <= prior <= counts.max()  # a mean of class frequencies
    curve = metrics["pr_curve"]
    assert curve["radius"][-1] == 16
    assert curve["precision"][-1] == pytest.approx(prior, abs=1e-9)
    assert curve["recall"][-1] == pytest.approx(1.0)
    assert metrics["test_map"] > prior + 0.2, metrics["test_map"]
    for prefix in ("pca_sign", "lsh", "itq"):
        assert 0.0 <= metrics[f"{prefix}_map"] <= 1.0
    assert metrics["distinct_addresses"] > 16
    assert (out / "precision_recall.png").is_file() and (out / "neighbours.png").is_file()


def test_semantic_hashing_refuses_a_code_size_out_of_range(tmp_path):
    recipe = recipes.get_recipe("semantic-hashing")
    config = TrainConfig(epochs=1, batch_size=50, device="cpu", progress=False)
    defaults = {opt.name: opt.default for opt in recipe.options}
    with pytest.raises(ValueError, match=r"--bits: expected an integer in \[1, 64\], got 65"):
        cli.run_family(recipe, "digits", {**defaults, "bits": 65}, config, tmp_path / "a")
