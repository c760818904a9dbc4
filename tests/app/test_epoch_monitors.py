"""The per-epoch monitors of the Boltzmann families: the RBM's pseudo-log-likelihood and
reconstruction error, the Gaussian RBM's reconstruction error, every DBN layer's RBM curves on
its own input, the DBM's mean-field reconstruction error (and pseudo-log-likelihood when its
even layers are small), each on fixed training and held-out subsets, recorded as ``eval_*``
entries of the epoch records of ``metrics.jsonl``, per stage."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from test_recipes import digits_context

from ebmlab.app import recipes
from ebmlab.app.families import dbm as dbm_family
from ebmlab.app.families import rbm as rbm_family
from ebmlab.estimators import pseudo_log_likelihood
from ebmlab.training import TrainConfig, run_stages
from ebmlab.training.greedy import propagate_up

SPLITS = ("train", "heldout")


def _config(epochs: int = 2, **kw: Any) -> TrainConfig:
    settings = {"epochs": epochs, "batch_size": 20, "lr": 0.05, "seed": 0, "progress": False}
    return TrainConfig(**{**settings, **kw})


def _epochs(out: Path, stage: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r.get("kind") == "epoch" and r.get("stage") == stage]


def _monitored(name: str, tmp_path: Path, config: TrainConfig, **options: Any):
    recipe = recipes.get_recipe(name)
    ctx = digits_context(recipe, tmp_path, recipe.binarize, **options)
    model, objective = recipe.build(ctx.train_data(), ctx)
    stages = list(recipe.stages(model, objective, ctx, config))  # type: ignore[misc]
    return recipe, ctx, model, stages


def test_monitor_sizes_follow_the_training_set_and_the_bits_the_layer():
    assert rbm_family.monitor_size(6000) == 300  # a twentieth of the training set ...
    assert rbm_family.monitor_size(1437) == 100  # ... but on the digits the floor of 100
    assert rbm_family.monitor_size(60000) == rbm_family.MONITOR_MAX_EXAMPLES == 500
    assert rbm_family.monitor_size(500) == 100  # never fewer than 100 ...
    assert rbm_family.monitor_size(30) == 30  # ... unless the data have fewer
    assert rbm_family.monitor_bits(100, 64, 20) is None  # every bit of the digits
    assert rbm_family.monitor_bits(500, 784, 500) == 20  # 20 random bits of an MNIST image
    assert rbm_family.monitor_bits(500, 500, 2000) == 5
    assert rbm_family.monitor_bits(10**6, 784, 10**4) == 1


def test_binary_once_keeps_binary_rows_and_draws_probabilities_once():
    x = (torch.rand(50, 8, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    assert rbm_family.binary_once(x) is x
    p = torch.full((400, 8), 0.25)
    a, b = rbm_family.binary_once(p), rbm_family.binary_once(p)
    assert torch.equal(a, b) and bool(((a == 0) | (a == 1)).all())
    assert abs(float(a.mean()) - 0.25) < 4 * math.sqrt(0.25 * 0.75 / a.numel())


def test_rbm_records_its_pseudo_likelihood_and_reconstruction_error_each_epoch(tmp_path):
    _, ctx, model, (stage,) = _monitored("rbm", tmp_path, _config(5), hidden=16)
    assert stage.name == "train" and stage.epoch_callback is not None
    run_stages(model, [stage], tmp_path)
    epochs = _epochs(tmp_path, "train")
    assert len(epochs) == 5
    # the last record holds the trained model's values on the fixed subsets
    x = ctx.train_data()
    subsets = rbm_family.monitor_data(ctx, x, rbm_family.monitor_size(x.shape[0]))
    assert subsets["train"].shape[0] == subsets["heldout"].shape[0] == 100
    with torch.no_grad():
        for split in SPLITS:
            pll = model.pseudo_log_likelihood(subsets[split]).mean()
            recon = model.reconstruction_error(subsets[split]).mean()
            assert math.isclose(epochs[-1][f"eval_pseudo_log_likelihood_{split}"], float(pll))
            assert math.isclose(epochs[-1][f"eval_reconstruction_error_{split}"], float(recon))
            # every bit of 8 x 8 digits: the exact sum of the conditionals, per image
            exact = pseudo_log_likelihood(model, subsets[split]).mean()
            assert math.isclose(float(pll), float(exact), rel_tol=1e-5)
    # learning shows: the held-out pseudo-likelihood rises and the reconstructions improve
    first, last = epochs[0], epochs[-1]
    assert last["eval_pseudo_log_likelihood_heldout"] > first["eval_pseudo_log_likelihood_heldout"]
    assert last["eval_reconstruction_error_heldout"] < first["eval_reconstruction_error_heldout"]


def test_grbm_records_its_reconstruction_error_only(tmp_path):
    _, ctx, model, (stage,) = _monitored("grbm", tmp_path, _config(2, lr=0.001), hidden=8)
    run_stages(model, [stage], tmp_path)
    last = _epochs(tmp_path, "train")[-1]
    assert not any("pseudo_log_likelihood" in key for key in last)
    x = ctx.train_data()
    subsets = rbm_family.monitor_data(ctx, x, rbm_family.monitor_size(x.shape[0]))
    for split in SPLITS:
        expected = float(model.reconstruction_error(subsets[split]).mean())
        assert math.isclose(last[f"eval_reconstruction_error_{split}"], expected, rel_tol=1e-6)


def test_every_dbn_layer_gets_its_rbms_curves_on_its_own_input(tmp_path):
    recipe = recipes.get_recipe("dbn")
    ctx = digits_context(recipe, tmp_path, recipe.binarize, layers="8,6", layer_epochs=2)
    model, objective = recipe.build(ctx.train_data(), ctx)
    plan = recipe.stages(model, objective, ctx, _config(2))  # type: ignore[misc]
    run_stages(model, plan, tmp_path)
    held = rbm_family.heldout_rows(ctx, rbm_family.MONITOR_MAX_EXAMPLES)
    train = ctx.train_data()
    n = rbm_family.monitor_size(train.shape[0])
    for i, name in enumerate(("layer1", "layer2")):
        epochs = _epochs(tmp_path, name)
        assert len(epochs) == 2
        rbm = model.rbms[i]
        if i > 0:  # the training and held-out images passed up the trained layer below
            generator = torch.Generator().manual_seed(rbm_family.MONITOR_SEED + i)
            held = propagate_up(model.rbms[i - 1], held, "probabilities", generator)
            train = propagate_up(model.rbms[i - 1], train, "probabilities")
        subsets = {"train": rbm_family.monitor_rows(train, n), "heldout": held[:n]}
        assert bool(((subsets["train"] > 0) & (subsets["train"] < 1)).any()) == (i > 0)
        # probabilities are scored at one fixed binary draw of both subsets, one after the other
        binary = rbm_family.binary_once(torch.cat([subsets["train"], subsets["heldout"]]))
        with torch.no_grad():
            pll = rbm.pseudo_log_likelihood(binary)
        last = epochs[-1]
        for j, split in enumerate(SPLITS):
            with torch.no_grad():
                recon = float(rbm.reconstruction_error(subsets[split]).mean())
            expected = float(pll[j * n : (j + 1) * n].mean())
            assert math.isclose(last[f"eval_reconstruction_error_{split}"], recon, rel_tol=1e-6)
            assert math.isclose(last[f"eval_pseudo_log_likelihood_{split}"], expected, rel_tol=1e-6)
    # the second layer sees 8 hidden units, not 64 pixels: its pseudo-likelihood is far smaller
    assert abs(_epochs(tmp_path, "layer2")[-1]["eval_pseudo_log_likelihood_train"]) < abs(
        _epochs(tmp_path, "layer1")[-1]["eval_pseudo_log_likelihood_train"]
    )


def test_dbm_records_its_mean_field_reconstruction_error_and_a_cheap_pseudo_likelihood(tmp_path):
    _, ctx, model, stages = _monitored("dbm", tmp_path, _config(2, lr=0.01), layers="8,4")
    (stage,) = stages
    assert stage.name == "train" and stage.epoch_callback is not None
    run_stages(model, stages, tmp_path)
    last = _epochs(tmp_path, "train")[-1]
    x = ctx.train_data()
    subsets = rbm_family.monitor_data(ctx, x, rbm_family.monitor_size(x.shape[0]))
    for split in SPLITS:
        v = subsets[split]
        recon = dbm_family.mean_field_reconstruction(model, v, ctx.options["mf_iters"])
        expected = float((recon - v).square().sum(-1).mean())
        key = f"eval_mean_field_reconstruction_error_{split}"
        assert math.isclose(last[key], expected, rel_tol=1e-5)
        # 4 even hidden units: cheap enough to enumerate, one fixed random bit per image
        generator = torch.Generator().manual_seed(rbm_family.MONITOR_BITS_SEED)
        pll = pseudo_log_likelihood(model, v, n_bits=1, generator=generator).mean()
        assert math.isclose(last[f"eval_pseudo_log_likelihood_{split}"], float(pll), rel_tol=1e-5)


def test_dbm_with_large_even_layers_skips_the_pseudo_likelihood(tmp_path):
    config = _config(1, lr=0.01)
    _, _, model, stages = _monitored("dbm", tmp_path, config, layers="8,6", pretrain_epochs=1)
    assert [s.name for s in stages] == ["pretrain1", "pretrain2", "train"]
    assert [s.epoch_callback is not None for s in stages] == [False, False, True]
    assert sum(model.layer_sizes[2::2]) > dbm_family.MONITOR_PLL_MAX_EVEN_UNITS
    run_stages(model, stages, tmp_path)
    last = _epochs(tmp_path, "train")[-1]
    assert "eval_mean_field_reconstruction_error_heldout" in last
    assert not any("pseudo_log_likelihood" in key for key in last)


def test_a_large_rbm_scores_fixed_random_bits(tmp_path):
    recipe = recipes.get_recipe("rbm")
    ctx = digits_context(recipe, tmp_path, recipe.binarize, hidden=2000)
    model, objective = recipe.build(ctx.train_data(), ctx)
    (stage,) = recipe.stages(model, objective, ctx, _config(1))  # type: ignore[misc]
    x = ctx.train_data()
    n = rbm_family.monitor_size(x.shape[0])
    bits = rbm_family.monitor_bits(n, 64, 2000)
    assert bits is not None and bits < 64  # too large for every bit
    assert stage.epoch_callback is not None
    first = stage.epoch_callback(model, 0)
    assert stage.epoch_callback(model, 0) == first  # the same bits at every epoch
    subsets = rbm_family.monitor_data(ctx, x, n)
    rows, held = torch.cat([subsets["train"], subsets["heldout"]]), subsets["heldout"]
    generator = torch.Generator().manual_seed(rbm_family.MONITOR_BITS_SEED)
    expected = pseudo_log_likelihood(model, rows, bits, generator)[n:].mean()
    assert math.isclose(first["pseudo_log_likelihood_heldout"], float(expected), rel_tol=1e-6)
    with torch.no_grad():
        exact = float(model.pseudo_log_likelihood(held).mean())
    assert expected != exact and abs(float(expected) - exact) < 0.05 * abs(exact)


def test_a_resumed_stage_keeps_its_monitor(tmp_path):
    _, _, model, (stage,) = _monitored("rbm", tmp_path, _config(1), hidden=8)
    run_stages(model, [stage], tmp_path)
    longer = replace(stage, config=replace(stage.config, epochs=2))
    run_stages(model, [longer], tmp_path, resume=True)
    epochs = _epochs(tmp_path, "train")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all("eval_pseudo_log_likelihood_heldout" in r for r in epochs)


def test_without_held_out_data_only_the_training_subset_is_scored(tmp_path):
    recipe = recipes.get_recipe("dbn")
    ctx = replace(
        digits_context(recipe, tmp_path, recipe.binarize, layers="8,6", layer_epochs=1),
        x_test=None,
    )
    assert rbm_family.heldout_rows(ctx, 10) is None
    assert set(rbm_family.monitor_data(ctx, ctx.train_data(), 10)) == {"train"}
    model, objective = recipe.build(ctx.train_data(), ctx)
    run_stages(model, recipe.stages(model, objective, ctx, _config(1)), tmp_path)  # type: ignore[misc]
    for name in ("layer1", "layer2"):
        (last,) = _epochs(tmp_path, name)
        assert {"eval_pseudo_log_likelihood_train", "eval_reconstruction_error_train"} <= set(last)
        assert not any(key.endswith("_heldout") for key in last)


def test_the_random_bit_estimate_on_probabilities_is_unbiased():
    # rows of probabilities are scored at one binary draw; the bits of the estimate must be
    # drawn independently of that draw (a shared stream picks the bits most surely on)
    from ebmlab.models import BernoulliRBM

    torch.manual_seed(0)
    model = BernoulliRBM(100, 200)
    with torch.no_grad():
        model.W.normal_(0, 0.3)
        model.b.normal_(0, 2.0)
    rows = torch.rand(500, 100, generator=torch.Generator().manual_seed(1))
    n_bits = rbm_family.monitor_bits(500, 100, 200)
    assert n_bits is not None and n_bits < 100  # the estimate, not every bit
    got = rbm_family.rbm_monitor({"train": rows}, 200)(model, 1)["pseudo_log_likelihood_train"]
    binary = rbm_family.binary_once(rows)
    exact = pseudo_log_likelihood(model, binary)
    other = pseudo_log_likelihood(model, binary, n_bits, torch.Generator().manual_seed(7))
    se = float((other - exact).std()) / math.sqrt(rows.shape[0])
    assert abs(got - float(exact.mean())) < 4 * se
