"""Every registered recipe, end to end: built on a tiny slice of its demo data, trained for one
short stage (or fitted), evaluated with ``quick`` settings and pictured, through
``ebmlab.app.cli.run_family`` as ``ebmlab demo`` runs it.

The list of families comes from the registry (``ebmlab.app.recipes.all_recipes``), so a new family
is tested as soon as it registers; one that cannot be built, trained, scored or pictured fails.
A family with a likelihood must report ``test_log_likelihood`` with its standard error and a
documented ``log_likelihood_method``; a family without one is listed in ``OWN_SCORES`` with the
score it reports instead.

Also here: the ``rbm`` recipe's choice between the exact log-likelihood (a small layer, enumerated)
and AIS (forward and reverse), and direct tests of the ``grbm`` and ``bm`` recipes (for ``bm``:
the label units are clamped with the pixels in the clamped phase).
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from ebmlab.app import cli, recipes
from ebmlab.app.compare import METHOD_NOTES
from ebmlab.app.families import dbm as dbm_family
from ebmlab.app.families import rbm as rbm_family
from ebmlab.app.recipes import Context, Recipe
from ebmlab.training import Stage, TrainConfig, run_stages

#: Examples of the training and test slices every recipe runs on.
N_TRAIN, N_TEST = 200, 100

#: Per recipe, the demo settings shrunk (on top of one epoch and minibatches of at most
#: ``BATCH``): fewer units, AIS temperatures and runs, sampling sweeps, importance samples.
SHRUNK: dict[str, dict[str, Any]] = {
    "autoencoder": {"options": {"layers": "16,8,2", "pretrain_epochs": 1}},
    "bm": {"options": {"hidden": 4}},
    "dbn-classifier": {"options": {"layers": "16,8", "pretrain_epochs": 1}},
    "dbm": {
        "options": {
            "layers": "8,4",
            "ais_betas": 100,
            "ais_runs": 10,
            "sample_steps": 10,
            "is_samples": 2,
            "eval_mf_iters": 5,
        }
    },
    "dbn": {
        "options": {
            "layers": "8,8",
            "layer_epochs": 1,
            "ais_betas": 100,
            "ais_runs": 10,
            "bound_samples": 2,
            "sample_steps": 10,
        }
    },
    # the neural energy on a toy 2-D density (its demo's convolutional NCSN on digits is slower)
    "ebm": {
        "data": "8gaussians",
        "options": {
            "objective": "cd",
            "network": "mlp",
            "hidden": 16,
            "langevin_steps": 5,
            "buffer_size": 500,
            "sample_steps": 10,
        },
    },
    "gan": {"options": {"hidden": 32, "fd_samples": N_TEST}},
    "cgan": {"options": {"hidden": 32}},
    "cyclegan": {"options": {"channels": 4, "blocks": 1}},
    "gaussian": {"data": "8gaussians"},
    "grbm": {"options": {"hidden": 8}},
    "hopfield": {"options": {"n_patterns": 5}},
    "hopfield-hidden": {"options": {"n_patterns": 5, "n_hidden": 8}},
    "semantic-hashing": {"options": {"bits": 8, "hidden": "16", "queries": 20}},
    "pixelcnn": {"options": {"channels": 4, "layers": 2, "first_kernel": 3}},
    "pixelrnn": {"options": {"hidden": 2, "layers": 1, "first_kernel": 3}},
    "diffusion": {
        "options": {"channels": 4, "timesteps": 20, "sample_steps": 5, "bound_timesteps": 2}
    },
    "bernoulli-diffusion": {"options": {"channels": 4, "timesteps": 10, "bound_timesteps": 2}},
    "realnvp": {"options": {"layers": 2, "channels": 4}},
    "rbm": {"options": {"hidden": 8, "ais_betas": 100, "ais_runs": 10, "sample_steps": 10}},
    "vae": {"options": {"eval_k": 10}},
}
BATCH = 50

#: Families without a likelihood, and the score each reports instead.
OWN_SCORES = {
    "autoencoder": "test_reconstruction_error",
    "bm": "test_accuracy",
    "dbn-classifier": "test_error",
    "gan": "test_frechet_distance",
    "cgan": "test_class_accuracy",
    "cyclegan": "test_translation_mse",
    "hopfield": "flip_recall_fraction",
    "hopfield-hidden": "flip_recall_fraction",
    "semantic-hashing": "test_map",
    "pca": "test_reconstruction_error",
}


def documented_method(method: str) -> bool:
    """A ``log_likelihood_method`` of the comparison table's notes, or ``iwae-K``."""
    return method in METHOD_NOTES or re.fullmatch(r"iwae-[1-9][0-9]*", method) is not None


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch, tmp_path_factory):
    """Every run reads the first N_TRAIN training and N_TEST test examples of its dataset; the
    Frechet distance's classifier is cached once for the module, outside the user's cache."""
    whole = cli.load_split

    def sliced(*args: Any, **kwargs: Any) -> cli.Split:
        split = whole(*args, **kwargs)
        return cli.Split(
            split.x_train[:N_TRAIN],
            split.x_test[:N_TEST],
            None if split.y_train is None else split.y_train[:N_TRAIN],
            None if split.y_test is None else split.y_test[:N_TEST],
            split.image_shape,
        )

    monkeypatch.setattr(cli, "load_split", sliced)
    monkeypatch.setenv("EBMLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def demo_settings(name: str, recipe: Recipe[Any, Any]) -> tuple[str, dict[str, Any], TrainConfig]:
    """(dataset, options, loop settings) of ``ebmlab demo`` for ``recipe``, shrunk."""
    demo = dict(recipe.demo)
    shrunk = dict(SHRUNK.get(name, {}))
    default_data = "digits" if "image" in recipe.data_kinds else "8gaussians"
    data_name = shrunk.pop("data", demo.pop("data", default_data))
    demo.pop("data", None)
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(demo.pop("options", {}))
    options.update(shrunk.pop("options", {}))
    settings = {**recipe.train_defaults, **demo, **shrunk}
    settings.update(epochs=1, seed=0, device="cpu", progress=False)
    settings["batch_size"] = min(settings.get("batch_size", BATCH), BATCH)
    return data_name, options, TrainConfig(**settings)


def test_every_shrunk_or_scored_family_is_registered():
    names = set(recipes.all_recipes())
    assert set(SHRUNK) <= names, sorted(set(SHRUNK) - names)
    assert set(OWN_SCORES) <= names, sorted(set(OWN_SCORES) - names)


def test_every_family_module_registers_a_recipe():
    folder = Path(recipes.__file__).parent / "families"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert modules == set(recipes.FAMILY_MODULES)
    registered = {r.build.__module__.rsplit(".", 1)[-1] for r in recipes.all_recipes().values()}
    assert registered == modules


@pytest.mark.parametrize("name", sorted(recipes.all_recipes()))
def test_recipe_builds_trains_evaluates_and_draws(name, tmp_path):
    recipe = recipes.get_recipe(name)
    data_name, options, config = demo_settings(name, recipe)
    out = tmp_path / name
    metrics = cli.run_family(recipe, data_name, options, config, out, evaluate=True, quick=True)

    assert metrics == json.loads((out / "eval.json").read_text())
    method = metrics.get("log_likelihood_method", "none")
    if name in OWN_SCORES:
        assert method == "none", method
        score = metrics[OWN_SCORES[name]]
        assert isinstance(score, float) and math.isfinite(score), score
    else:
        assert documented_method(method), f"{name}: log_likelihood_method {method!r}"
        assert method != "none", f"{name} has a likelihood: list it in OWN_SCORES if not"
        assert math.isfinite(metrics["test_log_likelihood"])
        assert math.isfinite(metrics["test_log_likelihood_se"])
        assert metrics["test_log_likelihood_se"] >= 0

    figures = json.loads((out / "figures.json").read_text())
    assert figures, f"{name} drew no figure"
    for figure in figures:
        path = out / figure["path"]
        assert path.is_file() and path.stat().st_size > 0, figure
        assert figure["title"]
    assert (out / "report.html").is_file()
    assert (out / "checkpoint.safetensors").is_file()


# ----- direct tests of the Boltzmann-machine recipes ---------------------------------------------
def digits_context(
    recipe: Recipe[Any, Any], tmp_path: Path, binarize: str | None, **options: Any
) -> Context:
    """A context on the digits slice, with the recipe's default options updated by ``options``."""
    split = cli.load_split("digits", binarize, seed=0)
    defaults = {opt.name: opt.default for opt in recipe.options}
    return Context(
        options={**defaults, **options},
        data_name="digits",
        image_shape=split.image_shape,
        generator=torch.Generator().manual_seed(17),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        quick=True,
        x_train=split.x_train,
        y_train=split.y_train,
        x_test=split.x_test,
        y_test=split.y_test,
    )


SHORT = TrainConfig(epochs=1, batch_size=BATCH, lr=0.01, seed=0, device="cpu", progress=False)


@pytest.mark.parametrize(("hidden", "method"), [(8, "exact"), (32, "ais")])
def test_rbm_is_scored_exactly_when_a_layer_is_small_and_by_ais_otherwise(hidden, method, tmp_path):
    recipe = recipes.get_recipe("rbm")
    ctx = digits_context(recipe, tmp_path, "stochastic", hidden=hidden, ais_betas=200, ais_runs=20)
    assert ctx.x_train is not None and ctx.x_test is not None
    model, _ = recipe.build(ctx.x_train, ctx)
    small = min(model.n_visible, model.n_hidden) <= rbm_family.EXACT_MAX_UNITS
    assert small == (method == "exact")
    metrics = recipe.evaluate(model, ctx.x_train, ctx.x_test, ctx)

    assert metrics["log_likelihood_method"] == method
    for key in ("log_z", "log_z_reverse_ais", "test_log_likelihood_reverse_ais"):
        assert math.isfinite(metrics[key]) and math.isfinite(metrics[f"{key}_se"]), key
    assert metrics["ais_betas"] == 200 and metrics["ais_runs"] == 20
    if method == "exact":
        # the AIS figures stay beside the exact one, and agree with it on an untrained RBM
        exact = metrics["log_z_exact"]
        assert abs(metrics["log_z"] - exact) <= 5 * metrics["log_z_se"] + 0.05
        assert (
            abs(metrics["log_z_reverse_ais"] - exact) <= 5 * metrics["log_z_reverse_ais_se"] + 0.05
        )
        assert math.isfinite(metrics["test_log_likelihood_ais"])
    else:
        assert "log_z_exact" not in metrics and "test_log_likelihood_ais" not in metrics
        assert metrics["test_log_likelihood_se"] > 0


def test_dbm_is_scored_with_a_forward_and_reverse_ais_bracket_around_the_exact_log_z(tmp_path):
    """A 64-8-4 DBM (enumerable: log Z and the test log-likelihood exact), trained one short
    epoch: both AIS directions agree with the exact log Z within their errors, the reverse bound
    is the forward one shifted by the difference of the two estimates, and the importance-
    sampled bound is above the mean-field one (it closes part of the KL gap)."""
    recipe = recipes.get_recipe("dbm")
    ctx = digits_context(
        recipe, tmp_path, "stochastic", layers="8,4", ais_betas=300, ais_runs=40, is_samples=5
    )
    assert ctx.x_train is not None and ctx.x_test is not None
    model, objective = recipe.build(ctx.x_train, ctx)
    run_stages(model, recipe.stages(model, objective, ctx, SHORT), tmp_path / "run")  # type: ignore[misc]
    metrics = recipe.evaluate(model, ctx.x_train, ctx.x_test, ctx)

    exact = metrics["log_z_exact"]
    for key in ("log_z", "log_z_reverse_ais"):
        assert abs(metrics[key] - exact) <= 5 * metrics[f"{key}_se"] + 0.05, (key, metrics[key])
    shift = metrics["log_z_reverse_ais"] - metrics["log_z"]
    assert metrics["test_log_likelihood_reverse_ais"] == pytest.approx(
        metrics["test_log_likelihood_bound"] - shift
    )
    assert metrics["reverse_start"].startswith(f"{dbm_family.REVERSE_SWEEPS_QUICK} Gibbs sweeps")
    assert metrics["is5_gain_over_mean_field"] > 0
    assert metrics["test_log_likelihood_is5"] <= metrics["test_log_likelihood"] + 0.05


def test_grbm_recipe_trains_and_scores_grey_levels(tmp_path):
    recipe = recipes.get_recipe("grbm")
    ctx = digits_context(recipe, tmp_path, recipe.binarize, hidden=8)
    x = ctx.train_data()
    assert not bool(((x == 0) | (x == 1)).all())  # grey levels, not binarized
    model, objective = recipe.build(x, ctx)
    assert objective is not None
    before = model.W.detach().clone()
    run_stages(model, [Stage("train", model, objective, x, SHORT)], tmp_path)
    assert not torch.equal(model.W.detach(), before)

    assert ctx.x_test is not None
    metrics = recipe.evaluate(model, x, ctx.x_test, ctx)
    assert metrics["log_likelihood_method"] == "exact"  # 8 hidden units: enumerated
    assert math.isfinite(metrics["test_log_likelihood"]) and metrics["test_log_likelihood_se"] > 0
    assert metrics["mean_sigma"] >= ctx.options["min_sigma"]
    assert "not comparable" in metrics["log_likelihood_note"]
    assert math.isfinite(metrics["test_reconstruction_error"])


def test_bm_recipe_clamps_the_label_units_with_the_pixels(tmp_path):
    recipe = recipes.get_recipe("bm")
    ctx = digits_context(recipe, tmp_path, recipe.binarize, hidden=4)
    x = ctx.train_data()
    model, objective = recipe.build(x, ctx)
    assert recipe.stages is not None and model.n_labels == 10
    (stage,) = list(recipe.stages(model, objective, ctx, SHORT))
    # the labels join the pixels as visible units, clamped together in the clamped phase
    assert stage.data.shape == (x.shape[0], 64 + 10) == (x.shape[0], model.n_visible + 10)
    assert torch.equal(stage.data[:, :64], x)
    assert ctx.y_train is not None
    assert torch.equal(stage.data[:, 64:].argmax(1), ctx.y_train)
    assert torch.equal(stage.data[:, 64:].sum(1), torch.ones(x.shape[0]))  # one-hot

    before = [p.detach().clone() for p in model.parameters()]
    run_stages(model, [stage], tmp_path)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert ctx.x_test is not None
    metrics = recipe.evaluate(model, x, ctx.x_test, ctx)
    assert metrics["classification_method"] == "exact"  # 4 hidden units: enumerated
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["log_likelihood_method"] == "none"  # 78 units: too many to enumerate


def test_bm_recipe_without_labels_trains_on_the_pixels_alone(tmp_path):
    recipe = recipes.get_recipe("bm")
    ctx = digits_context(recipe, tmp_path, recipe.binarize, hidden=4, labels=False)
    x = ctx.train_data()
    model, objective = recipe.build(x, ctx)
    assert recipe.stages is not None
    (stage,) = list(recipe.stages(model, objective, ctx, SHORT))
    assert model.n_labels == 0 and torch.equal(stage.data, x)


def test_dbn_settings_per_rbm_reach_each_layers_stage(tmp_path):
    from ebmlab.app.families.deep import per_layer

    recipe = recipes.get_recipe("dbn")
    ctx = digits_context(
        recipe,
        tmp_path,
        recipe.binarize,
        layers="8,6",
        layer_epochs="2,1",
        layer_lr="0.05,0.01",
        layer_weight_decay="0",
    )
    model, objective = recipe.build(ctx.x_train, ctx)
    stages = list(recipe.stages(model, objective, ctx, SHORT))
    assert [s.config.epochs for s in stages] == [2, 1]
    assert [s.config.lr for s in stages] == [0.05, 0.01]
    assert [s.config.weight_decay for s in stages] == [0.0, 0.0]
    assert stages[1].config.seed == stages[0].config.seed + 1
    # one value is every RBM's, as is a number recorded by a run of an earlier version
    assert per_layer("3", 2, int, "--layer-epochs", 5) == [3, 3]
    assert per_layer(20, 3, int, "--layer-epochs", 5) == [20, 20, 20]
    assert per_layer(None, 2, float, "--layer-lr", 0.01) == [0.01, 0.01]
    for value, message in (
        ("1,2,3", r"--layer-epochs: expected 1 or 2 values \(one per RBM\), got 3"),
        ("2,x", "--layer-epochs: expected int values separated by commas"),
        ("0,2", "--layer-epochs: expected positive values"),
    ):
        with pytest.raises(ValueError, match=message):
            per_layer(value, 2, int, "--layer-epochs", 5)
    with pytest.raises(ValueError, match="--layer-weight-decay: expected values >= 0"):
        per_layer("-1e-4", 2, float, "--layer-weight-decay", 2e-4, zero=True)


def test_dbn_gain_of_its_last_step_is_measured_on_one_ais_path(tmp_path):
    """A 64-8-64 stack grown from below, its top RBM then moved away from its start (as training
    would move it): the evaluation's initial bound is RBM 1's exact log-likelihood (the stack
    starts equal to RBM 1), and the gain equals the exact one (enumerated log Z of both tops)
    within its standard errors."""
    from ebmlab import estimators
    from ebmlab.models import DeepBeliefNet

    recipe = recipes.get_recipe("dbn")
    ctx = digits_context(
        recipe, tmp_path, recipe.binarize, layers="8,64", init_from_below=True, ais_runs=50
    )
    x_train, x_test = ctx.x_train, ctx.x_test[:200]
    model = DeepBeliefNet([64, 8, 64], seed=0)
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        model.rbms[0].W.copy_(0.5 * torch.randn(64, 8, generator=g))
        model.init_from_below(1)
        start = [p.clone() for p in model.rbms[1].parameters()]
        for p in model.rbms[1].parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    metrics = recipe.evaluate(model, x_train, x_test, ctx)
    rbm1 = model.rbms[0]
    exact_rbm1 = estimators.log_likelihood(rbm1, x_test, estimators.exact_log_z(rbm1)).mean
    se = metrics["initial_test_log_likelihood_se"]
    assert abs(metrics["initial_test_log_likelihood"] - exact_rbm1) < 4 * se + 1e-3
    # the exact gain: the bound of each top with its enumerated log Z, over many draws
    initial = copy.deepcopy(model)
    with torch.no_grad():
        for p, q in zip(initial.rbms[1].parameters(), start):
            p.copy_(q)
    gen = torch.Generator().manual_seed(9)
    trained_bound = model.lower_bound(x_test, estimators.exact_log_z(model.top), 200, gen)
    gen = torch.Generator().manual_seed(9)
    initial_bound = initial.lower_bound(x_test, estimators.exact_log_z(initial.top), 200, gen)
    exact_gain = float((trained_bound - initial_bound).mean())
    assert exact_gain < -0.1  # the perturbation moved the stack away from RBM 1
    gain, gain_se = metrics["bound_gain_of_last_step"], metrics["bound_gain_of_last_step_se"]
    assert abs(gain - exact_gain) < 4 * gain_se + 0.02, (gain, exact_gain, gain_se)
