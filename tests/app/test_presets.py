"""Named presets (``ebmlab train FAMILY --preset NAME``): every preset names real options and loop
settings with valid values; the command line fills them in below the flags given, records the
preset in config.json, lists it in ``--help`` and refuses an unknown one."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ebmlab.app import recipes
from ebmlab.app.cli import main
from ebmlab.app.recipes import Option, Preset, Recipe
from ebmlab.training import TrainConfig

LOOP_SETTINGS = {f.name for f in dataclasses.fields(TrainConfig)}


def with_presets() -> list[tuple[str, str]]:
    return [
        (name, preset)
        for name, recipe in recipes.all_recipes().items()
        for preset in recipe.presets
    ]


def test_the_paper_presets_exist() -> None:
    assert {(name, "paper") for name in ("rbm", "dbn", "dbm", "vae", "pixelcnn")} <= set(
        with_presets()
    )


@pytest.mark.parametrize(("name", "preset"), with_presets())
def test_every_preset_fills_real_options_and_valid_settings(name: str, preset: str) -> None:
    recipe = recipes.get_recipe(name)
    filled = recipe.presets[preset]
    options = {opt.name: opt for opt in recipe.options}
    assert set(filled.options) <= set(options), set(filled.options) - set(options)
    assert set(filled.train) <= LOOP_SETTINGS, set(filled.train) - LOOP_SETTINGS
    for key, value in filled.options.items():
        opt: Option = options[key]
        assert isinstance(value, opt.type), (key, value)
        assert opt.choices is None or value in opt.choices, (key, value)
    TrainConfig(**{**recipe.train_defaults, **filled.train})  # valid loop settings
    assert filled.summary


def test_apply_preset_fills_below_the_given_values() -> None:
    recipe = Recipe(
        name="toy",
        summary="",
        build=lambda x, ctx: (None, None),
        evaluate=lambda *a: {},
        figures=lambda *a: [],
        options=(Option("hidden", int, 10, ""), Option("k", int, 1, "")),
        presets={"big": Preset("bigger", options={"hidden": 500}, train={"epochs": 200})},
    )
    options, train = recipes.apply_preset(recipe, "big", {"hidden": 10, "k": 3}, {"lr": 0.1})
    assert options == {"hidden": 500, "k": 3} and train == {"lr": 0.1, "epochs": 200}
    with pytest.raises(ValueError, match="--preset: toy has no preset 'small'; valid presets: big"):
        recipes.apply_preset(recipe, "small", {}, {})
    assert recipes.describe_preset(recipe.presets["big"]) == "bigger (hidden=500, epochs=200)"


def read_config(run: Any) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())


def test_the_command_line_records_the_preset_and_flags_override_it(tmp_path, capsys) -> None:
    run = tmp_path / "rbm"
    args = ["train", "rbm", "--data", "digits", "--preset", "paper", "--epochs", "1"]
    args += ["--hidden", "8", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    config = read_config(run)
    paper = recipes.get_recipe("rbm").presets["paper"]
    assert config["preset"] == "paper"
    assert (
        config["train"]["lr"] == paper.train["lr"] != recipes.get_recipe("rbm").train_defaults["lr"]
    )
    assert config["train"]["epochs"] == 1 and config["options"]["hidden"] == 8  # the flags win
    assert config["options"]["method"] == paper.options["method"]
    # resuming with the same preset continues the run; a flag that changes it is refused
    assert main(["train", "rbm", "--preset", "paper", "--out", str(run), "--resume"]) == 0
    assert read_config(run)["preset"] == "paper"
    code = main(["train", "rbm", "--preset", "paper", "--out", str(run), "--resume", "--lr", "1"])
    assert code == 2 and "--lr" in capsys.readouterr().err
    other = tmp_path / "plain"
    assert main(["train", "rbm", "--data", "digits", "--epochs", "1", "--out", str(other)]) == 0
    assert main(["train", "rbm", "--preset", "paper", "--out", str(other), "--resume"]) == 2
    assert "was started with preset None, not 'paper'" in capsys.readouterr().err


def test_a_run_without_preset_records_none(tmp_path) -> None:
    run = tmp_path / "rbm"
    args = ["train", "rbm", "--data", "digits", "--epochs", "1", "--hidden", "8"]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0
    assert "preset" not in read_config(run)


def test_help_lists_the_presets_and_unknown_ones_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "vae", "--help"])
    out = capsys.readouterr().out
    assert "--preset {paper}" in out and "dynamic_binarization=True" in " ".join(out.split())
    with pytest.raises(SystemExit):
        main(["train", "rbm", "--preset", "nonsense"])
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a family without presets has no --preset flag
        main(["train", "independent", "--preset", "paper"])


def test_the_dbn_preset_trains_a_stack_started_from_below(tmp_path, capsys) -> None:
    """The paper preset on digits with small layers (64-16-64: layer 2 as large as the visible
    layer, as init from below needs): one epoch per RBM runs, and the record names the settings
    that make the greedy step climb the bound (init from below, binary samples of q)."""
    run = tmp_path / "dbn"
    args = ["train", "dbn", "--data", "digits", "--preset", "paper", "--layers", "16,64"]
    assert main([*args, "--layer-epochs", "1", "--out", str(run), "--no-progress"]) == 0
    options = read_config(run)["options"]
    assert options["init_from_below"] is True and options["propagate"] == "samples"
    assert options["layer_lr"] == "0.005,0.0003" and options["layer_weight_decay"] == "2e-4,0"
    assert options["layer_epochs"] == "1"  # the flag given wins over the preset
    capsys.readouterr()
    bad = [*args[:-1], "16,8", "--layer-epochs", "1", "--out", str(tmp_path / "bad")]
    assert main(bad) == 2  # 64-16-8: layer 2 smaller than the visible layer
    assert "init_from_below: layer_sizes[2] = 8 is smaller than" in capsys.readouterr().err
