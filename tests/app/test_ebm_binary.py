"""The ``ebm`` recipe on binary images: PCD with a discrete sampler, the AIS bracket in nats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ebmlab import io
from ebmlab.app import cli, compare, recipes
from ebmlab.training import TrainConfig


def options(**changes):
    recipe = recipes.get_recipe("ebm")
    chosen = {opt.name: opt.default for opt in recipe.options}
    chosen.update(
        objective="cd",
        binarize="stochastic",
        sampler="dmala",
        hidden=32,
        depth=1,
        discrete_steps=5,
        buffer_size=500,
        ais_betas=100,
        ais_runs=10,
        reverse_steps=10,
        sample_steps=10,
    )
    chosen.update(changes)
    return recipe, chosen


@pytest.mark.parametrize("sampler", ["dmala", "gwg", "dula"])
def test_digits_run_reports_the_ais_bracket(sampler, tmp_path):
    recipe, chosen = options(sampler=sampler)
    config = TrainConfig(
        epochs=1, batch_size=100, lr=1e-3, optimizer="adam", seed=0, device="cpu", progress=False
    )
    out = tmp_path / sampler
    metrics = cli.run_family(recipe, "digits", chosen, config, out, evaluate=True, quick=True)
    assert metrics == json.loads((out / "eval.json").read_text())
    assert metrics["log_likelihood_method"] == "ais"
    for key in ("test_log_likelihood", "test_log_likelihood_reverse_ais"):
        # log-probabilities of 64-pixel binary images: between -64 log 2 and 0 in any sane model
        assert math.isfinite(metrics[key]) and -200 < metrics[key] < 0, metrics
        assert metrics[f"{key}_se"] >= 0
    assert metrics["ais_kernel"] == "dmala" and metrics["ais_betas"] == 100
    figures = json.loads((out / "figures.json").read_text())
    assert {f["title"] for f in figures} == {"Samples from the base", "Inpainting"}
    model = io.load(out / "checkpoint.safetensors")  # the base goes into the checkpoint
    assert model.bernoulli_base and model.base_logits.abs().sum() > 0
    records = compare.collect([out])
    assert records[0]["binarize"] == "stochastic"
    assert "ais" in compare.markdown_table(records)


def test_discrete_samplers_need_binary_images(tmp_path):
    recipe, chosen = options(binarize=None)
    config = TrainConfig(epochs=1, batch_size=100, seed=0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="binarize"):
        cli.run_family(recipe, "digits", chosen, config, tmp_path / "grey")
    recipe, chosen = options(objective="sm")
    with pytest.raises(ValueError, match="objective cd"):
        cli.run_family(recipe, "digits", chosen, config, tmp_path / "sm")
    recipe, chosen = options()
    with pytest.raises(ValueError, match="2-D densities"):
        cli.run_family(recipe, "8gaussians", chosen, config, tmp_path / "toy")


def test_the_digits_defaults_leave_the_discrete_samplers_their_mlp():
    """On digits the family's defaults are the demo's (a noise-conditional convolutional energy);
    with a discrete sampler the network still resolves to the MLP of the binary recipe, whose
    ``--hidden``/``--depth`` then apply."""
    from ebmlab.app.families import ebm

    recipe = recipes.get_recipe("ebm")
    chosen, _ = cli.data_defaults(recipe, "digits")
    assert chosen["objective"] == "ncsn"

    def context(options):
        return recipes.Context(
            dict(options), "digits", (8, 8), torch.Generator(), Path("."), torch.device("cpu")
        )

    langevin = context(chosen)
    assert ebm.resolved(langevin)["network"] == "conv"
    chosen.update(objective="cd", sampler="dmala", binarize="stochastic", hidden=64, depth=1)
    discrete = context(chosen)
    assert ebm.resolved(discrete)["network"] == "mlp"
    model = ebm.build_model(64, discrete)
    assert sum(p.numel() for p in model.parameters()) == 64 * 64 + 64 + 64 + 1
