"""Family options: their intervals and conditions, checked before any work is done."""

from __future__ import annotations

import math
import re

import pytest

from ebmlab.app import recipes
from ebmlab.app.cli import build_parser, main
from ebmlab.app.families import cgan, ebm, gan
from ebmlab.app.recipes import Option, check_option
from ebmlab.validation import Integral, Real

#: Tables of values an option left at None takes, per data kind (checked like the defaults).
AUTO_TABLES = {
    "ebm": [*ebm.AUTO.values(), ebm.BINARY_AUTO, ebm.LANGEVIN_AUTO],
    "gan": list(gan.AUTO.values()),
    "cgan": list(cgan.AUTO.values()),
}


def _settings(recipe):
    """Every set of option values a family ships: defaults, the demo's, each preset's, and the
    tables that fill options left at None."""
    yield "defaults", {opt.name: opt.default for opt in recipe.options}
    yield "demo", dict(recipe.demo or {}).get("options", {})
    for name, preset in recipe.presets.items():
        yield f"preset {name}", dict(preset.options)
    for i, table in enumerate(AUTO_TABLES.get(recipe.name, ())):
        yield f"auto table {i}", {k: v for k, v in table.items() if v is not None}


@pytest.mark.parametrize("name", sorted(recipes.all_recipes()))
def test_every_shipped_setting_lies_in_its_options_intervals(name):
    recipe = recipes.all_recipes()[name]
    for what, values in _settings(recipe):
        try:
            recipes.check_options(recipe, values)
        except ValueError as error:
            pytest.fail(f"{name} {what}: {error}")


@pytest.mark.parametrize("name", sorted(recipes.all_recipes()))
def test_conditions_name_options_of_the_family_and_their_choices(name):
    recipe = recipes.all_recipes()[name]
    by_name = {opt.name: opt for opt in recipe.options}
    for opt in recipe.options:
        for key, values in (opt.when or {}).items():
            assert key in by_name, (opt.name, key)
            assert by_name[key].choices is not None, (opt.name, key)
            assert set(values) <= set(by_name[key].choices), (opt.name, key, values)


@pytest.mark.parametrize(
    ("opt", "inside", "outside", "words"),
    [
        (Option("n", int, 1, "count"), [1, 7], [0, -2, 1.5, True, "3"], "a positive integer"),
        (
            Option("s", float, 1.0, "scale"),
            [1e-9, 3, 3.0],
            [0.0, -1.0, math.nan],
            "a positive number",
        ),
        (
            Option("p", float, 0.5, "p", check=Real(0, 1, closed="left")),
            [0.0, 0.999],
            [1.0, -1e-9, math.nan],
            "a number in [0, 1)",
        ),
        (
            Option("b", int, 8, "bits", check=Integral(1, 64)),
            [1, 64],
            [0, 65],
            "an integer in [1, 64]",
        ),
        (Option("w", float, 0.0, "w", check=Real(0)), [0.0, 9.0], [-0.5], "a non-negative number"),
    ],
)
def test_check_option_accepts_its_constraint_and_names_it_otherwise(opt, inside, outside, words):
    assert opt.constraint().description == words
    for value in inside:
        check_option(opt, value)
    for value in outside:
        with pytest.raises(ValueError, match=f"^--{opt.name}: expected {re.escape(words)}, got"):
            check_option(opt, value)
    check_option(opt, None)  # not given


def test_a_string_option_has_no_constraint_but_its_choices():
    assert Option("name", str, "a", "a name").constraint() is None
    check_option(Option("name", str, "a", "a name"), "anything")


def test_choices_are_checked_too():
    opt = Option("mode", str, "a", "mode", choices=("a", "b"))
    check_option(opt, "b")
    with pytest.raises(ValueError, match=r"^--mode: expected one of a, b, got 'c'"):
        check_option(opt, "c")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rbm", "--ais-betas", "0"], "--ais-betas: expected a positive integer, got 0"),
        (
            ["dbn", "--layer-batch-size", "0"],
            "--layer-batch-size: expected a positive integer, got 0",
        ),
        (["dbn", "--bound-samples", "0"], "--bound-samples: expected a positive integer, got 0"),
        (
            ["dbm", "--pretrain-epochs", "-1"],
            "--pretrain-epochs: expected a non-negative integer, got -1",
        ),
        (["vae", "--eval-batch", "-5"], "--eval-batch: expected a non-negative integer, got -5"),
        (["vae", "--eval-k", "0"], "--eval-k: expected a positive integer, got 0"),
        (["hopfield", "--flip", "1.5"], "--flip: expected a number in [0, 1], got 1.5"),
        (["gan", "--beta1", "1"], "--beta1: expected a number in [0, 1), got 1.0"),
        (["ebm", "--step-size", "0"], "--step-size: expected a positive number, got 0.0"),
    ],
)
def test_train_refuses_an_option_out_of_range_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["train", *argv, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written: the evaluation options too are checked first


def test_demo_refuses_a_family_it_does_not_run(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--only", "rbm", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "--only: 'nosuch' is not a family of the demo" in err and "rbm" in err
    assert not (tmp_path / "demo").exists()


def test_moot_options_name_the_flag_and_the_option_that_makes_it_moot():
    recipe = recipes.get_recipe("ebm")
    options = recipe.with_defaults({"objective": "ncsn"})
    notes = recipes.moot_options(recipe, options, ["langevin_steps", "sigma_max", "sigma"])
    assert notes == [
        "--langevin-steps has no effect with --objective ncsn (it applies with cd)",
        "--sigma has no effect with --objective ncsn (it applies with dsm)",
    ]
    cd = recipe.with_defaults({"objective": "cd", "sampler": "gwg"})
    assert recipes.moot_options(recipe, cd, ["discrete_steps", "n_flips", "alpha"]) == []
    assert recipes.moot_options(recipe, cd, ["langevin_steps"]) == [
        "--langevin-steps has no effect with --sampler gwg (it applies with langevin)"
    ]
    rbm = recipes.get_recipe("rbm")
    assert recipes.moot_options(rbm, rbm.with_defaults({"method": "cd"}), ["n_chains"]) == [
        "--n-chains has no effect with --method cd (it applies with pcd or pt)"
    ]


def _train_help(name):
    parser = build_parser()
    actions = parser._subparsers._group_actions[0].choices["train"]
    return actions._subparsers._group_actions[0].choices[name].format_help()


def test_train_help_gives_the_default_of_the_default_data():
    text = " ".join(_train_help("rbm").split())
    assert "number of hidden units (default 20 on digits, 500 on other data)" in text
    assert "(default 40 on digits, 100 on other data)" in text  # --epochs
    text = " ".join(_train_help("ebm").split())
    assert "training method (default ncsn on digits, cd on other data)" in text


@pytest.mark.parametrize("name", sorted(recipes.all_recipes()))
def test_no_train_help_says_default_none(name):
    assert "(default None)" not in " ".join(_train_help(name).split())
