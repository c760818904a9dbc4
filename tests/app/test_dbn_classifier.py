"""The ``dbn-classifier`` family end to end on digits: the CLI run, the two arms' budgets, the
per-epoch error curves, resume, the comparison table, bad input, and the quick pretraining
experiment (``ebmlab.app.benchmarks.bench_pretraining``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ebmlab import io
from ebmlab.app import cli, recipes
from ebmlab.app.benchmarks import bench_pretraining
from ebmlab.app.compare import collect, markdown_table
from ebmlab.app.families.dbn_classifier import CURVES
from ebmlab.app.recipes import Context
from ebmlab.training import TrainConfig, loop

SMALL = ["--layers", "16,8", "--pretrain-epochs", "1", "--epochs", "2", "--batch-size", "50"]


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(out: Path, *flags: str) -> dict[str, Any]:
    args = ["train", "dbn-classifier", "--data", "digits", "--out", str(out), "--no-progress"]
    assert cli.main([*args, "--eval", *flags]) == 0
    return json.loads((out / "eval.json").read_text())


def test_a_digits_run_through_the_cli_is_far_better_than_chance(tmp_path, capsys):
    metrics = _train(tmp_path / "run", "--epochs", "10")
    assert metrics["test_error"] < 0.3  # chance: 0.9 for ten classes
    assert metrics["test_accuracy"] == pytest.approx(1 - metrics["test_error"])
    assert metrics["log_likelihood_method"] == "none"
    assert metrics["pretrained"] and metrics["pretrain_epochs_per_rbm"] == 10
    assert metrics["n_train"] + metrics["n_validation"] == 1438  # digits' training split
    assert metrics["n_validation"] == round(1438 / 6)
    epochs = [r for r in _records(tmp_path / "run") if r["kind"] == "epoch"]
    finetune = [r for r in epochs if r["stage"] == "finetune"]
    assert [r["epoch"] for r in finetune] == list(range(1, 11))
    for key in CURVES:
        values = [r[f"eval_{key}"] for r in finetune]
        assert all(0 <= v <= 1 for v in values)
    assert finetune[-1]["eval_test_error"] == pytest.approx(metrics["test_error"], abs=1e-6)
    assert finetune[-1]["eval_training_error"] < finetune[0]["eval_training_error"]
    assert (tmp_path / "run" / "errors.png").is_file() and (
        tmp_path / "run" / "report.html"
    ).exists()


def test_without_pretraining_no_rbm_stage_runs_and_the_finetuning_budget_is_the_same(tmp_path):
    pre = _train(tmp_path / "pre", *SMALL)
    random = _train(tmp_path / "random", *SMALL, "--no-pretrain")
    stages = {}
    for name in ("pre", "random"):
        stages[name] = [r for r in _records(tmp_path / name) if r["kind"] == "epoch"]
    assert [r["stage"] for r in stages["pre"]] == ["layer1", "layer2", "finetune", "finetune"]
    assert [r["stage"] for r in stages["random"]] == ["finetune", "finetune"]
    steps = [[r["step"] for r in stages[name] if r["stage"] == "finetune"] for name in stages]
    assert steps[0] == steps[1] == [24, 48]  # 1198 images in minibatches of 50
    configs = [json.loads((tmp_path / n / "config.json").read_text()) for n in ("pre", "random")]
    assert configs[0]["train"] == configs[1]["train"]  # epochs, lr, batch size, seed, ...
    assert pre["pretrained"] and not random["pretrained"]
    assert random["pretrain_epochs_per_rbm"] == 0 and random["pretrain_seconds"] == 0
    assert pre["pretrain_seconds"] > 0
    # the same seed: the same output layer at the start, so the networks differ by their start
    a = io.load(tmp_path / "pre" / "checkpoint.safetensors")
    b = io.load(tmp_path / "random" / "checkpoint.safetensors")
    assert a.config == b.config

    table = markdown_table(collect([tmp_path / "pre", tmp_path / "random"]))
    assert "dbn-classifier (layers 16,8, pretrain True)" in table
    assert "dbn-classifier (layers 16,8, pretrain False)" in table
    assert f"test error (classifier) {pre['test_error']:.3g}" in table
    assert f"test error (classifier) {random['test_error']:.3g}" in table


class Killed(BaseException):
    """Stands in for kill -9: nothing after it runs."""


def test_a_run_killed_during_finetuning_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    recipe = recipes.get_recipe("dbn-classifier")
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(layers="16,8", pretrain_epochs=2)
    config = TrainConfig(
        **{**recipe.train_defaults, "epochs": 3, "batch_size": 50, "seed": 3, "progress": False}
    )

    def run(out: Path, resume: bool = False) -> dict[str, torch.Tensor]:
        cli.run_family(recipe, "digits", options, config, out, resume=resume)
        return io.load(out / "checkpoint.safetensors").state_dict()

    whole = run(tmp_path / "whole")
    real_step = loop._train_step

    def step_then_die(state, batch, epoch, b):
        if state.stage == "finetune" and state.state.step == 30:  # in the second epoch
            raise Killed
        return real_step(state, batch, epoch, b)

    monkeypatch.setattr(loop, "_train_step", step_then_die)
    with pytest.raises(Killed):
        run(tmp_path / "cut")
    monkeypatch.setattr(loop, "_train_step", real_step)
    resumed = run(tmp_path / "cut", resume=True)
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0, msg=key)

    def curves(out: Path) -> list[tuple[Any, ...]]:
        return [
            (r["stage"], r["epoch"], *(r.get(f"eval_{k}") for k in CURVES))
            for r in _records(out)
            if r["kind"] == "epoch"
        ]

    assert curves(tmp_path / "cut") == curves(tmp_path / "whole")


def _context(tmp_path: Path, **changes: Any) -> Context:
    recipe = recipes.get_recipe("dbn-classifier")
    split = cli.load_split("digits", None, seed=0)
    values = {
        "options": {opt.name: opt.default for opt in recipe.options},
        "x_train": split.x_train,
        "y_train": split.y_train,
        "x_test": split.x_test,
        "y_test": split.y_test,
    }
    options = {"layers": "16,8", **changes.pop("options", {})}
    values["options"].update(options)
    values.update(changes)
    return Context(
        data_name="digits",
        image_shape=(8, 8),
        generator=torch.Generator().manual_seed(0),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        **values,
    )


def _plan(ctx: Context) -> list[str]:
    recipe = recipes.get_recipe("dbn-classifier")
    assert ctx.x_train is not None
    model, objective = recipe.build(ctx.x_train, ctx)
    config = TrainConfig(epochs=1, progress=False)
    return [stage.name for stage in recipe.stages(model, objective, ctx, config)]


def test_bad_input_gives_a_clear_error(tmp_path):
    assert _plan(_context(tmp_path)) == ["layer1", "layer2", "finetune"]
    with pytest.raises(ValueError, match="needs class labels, and 'digits' has none"):
        _plan(_context(tmp_path, y_train=None))
    with pytest.raises(ValueError, match="needs class labels"):
        _plan(_context(tmp_path, y_test=None))
    split = cli.load_split("digits", None, seed=0)
    assert split.y_train is not None and split.y_test is not None
    with pytest.raises(ValueError, match=r"expected class labels 0, 1, \.\.\., K - 1"):
        _plan(_context(tmp_path, y_train=split.y_train - 1))
    with pytest.raises(ValueError, match=r"test labels: expected class labels in 0\.\.9"):
        _plan(_context(tmp_path, y_test=split.y_test + 5))
    with pytest.raises(ValueError, match="--validation: expected a fraction"):
        _plan(_context(tmp_path, options={"validation": 1.5}))
    with pytest.raises(ValueError, match="--layers: expected"):
        _plan(_context(tmp_path, options={"layers": "500,x"}))


def _quick_experiment(tmp_path: Path, seeds: int) -> dict[str, Any]:
    """The quick experiment; checks the choice of each arm's rate on the grid, the files and
    that a second start keeps the finished runs."""
    figure = tmp_path / "figure.png"
    result = bench_pretraining.experiment(tmp_path / "exp", seeds=seeds, quick=True, figure=figure)
    assert result["data"] == "digits"
    grid = bench_pretraining.SETTINGS["digits"]["lr_grid"]
    table = (tmp_path / "exp" / "pretraining.md").read_text()
    for arm in bench_pretraining.ARMS:
        selection = result["selection"][arm]
        errors = {float(lr): e for lr, e in selection["validation_error"].items()}
        assert sorted(errors) == sorted(grid)  # every rate of the grid tried with seed 0
        chosen = selection["chosen_lr"]
        assert errors[chosen] == min(errors.values())
        # every seed of the arm is trained with its chosen rate, seed 0 being its grid run
        runs = [r for r in result["runs"] if r["arm"] == arm]
        assert [(r["seed"], r["lr"]) for r in runs] == [(s, chosen) for s in range(seeds)]
        assert runs[0]["validation_error"] == errors[chosen]
        m = result["summary"][arm]
        assert m["lr"] == chosen and m["n_seeds"] == seeds
        assert m["test_error"] == pytest.approx(sum(r["test_error"] for r in runs) / seeds)
        row = (
            f"| {arm} | {chosen:g} | {100 * m['test_error']:.2f} ± {100 * m['test_error_sd']:.2f} |"
        )
        assert row in table
    assert result["n_runs"] == 2 * len(grid) + 2 * (seeds - 1)
    # both arms learn at their chosen rate (chance: 0.9 for ten classes)
    assert all(r["test_error"] < 0.3 for r in result["runs"])
    saved = json.loads((tmp_path / "exp" / "pretraining.json").read_text())
    assert saved["summary"] == result["summary"] and saved["selection"] == result["selection"]
    epochs = bench_pretraining.SETTINGS["digits"]["epochs"]
    assert all(len(r["curves"]) == epochs for r in result["runs"])
    assert figure.is_file() and figure.stat().st_size > 0
    # started again with the same arguments, the finished runs are kept
    again = bench_pretraining.experiment(tmp_path / "exp", seeds=seeds, quick=True, figure=figure)
    assert [r["test_error"] for r in again["runs"]] == [r["test_error"] for r in result["runs"]]
    assert all(r["wall_seconds"] is None for r in again["runs"])
    return result


def test_the_quick_pretraining_experiment_chooses_each_arms_rate_and_writes_its_results(tmp_path):
    _quick_experiment(tmp_path, seeds=1)


@pytest.mark.slow
def test_the_quick_experiment_trains_the_other_seeds_with_the_chosen_rate(tmp_path):
    result = _quick_experiment(tmp_path, seeds=2)
    for arm, summary in result["summary"].items():
        errors = [r["test_error"] for r in result["runs"] if r["arm"] == arm]
        assert summary["test_error_sd"] == pytest.approx(abs(errors[0] - errors[1]) / 2**0.5)


def test_the_summary_gives_mean_and_sd_over_seeds_per_arm():
    runs = [
        {"arm": arm, "seed": s, "lr": lr, "test_error": e, "train_error": e / 2,
         "validation_error": e, "pretrain_seconds": 1.0, "finetune_seconds": 2.0,
         "run_seconds": 3.0}
        for arm, lr, errors in (("pretrained", 0.1, (0.01, 0.02, 0.03)),
                                ("random start", 0.03, (0.02, 0.04, 0.06)))
        for s, e in enumerate(errors)
    ]  # fmt: skip
    summary = bench_pretraining.summarize(runs)
    assert summary["pretrained"]["lr"] == 0.1 and summary["random start"]["lr"] == 0.03
    assert summary["pretrained"]["test_error"] == pytest.approx(0.02)
    assert summary["pretrained"]["test_error_sd"] == pytest.approx(0.01)  # sample sd, n - 1
    assert summary["random start"]["train_error_sd"] == pytest.approx(0.01)
    assert summary["random start"]["n_seeds"] == 3


def test_the_learning_rate_of_the_lowest_validation_error_is_chosen_first_of_the_grid_on_ties():
    assert bench_pretraining.choose_lr({0.1: 0.05, 0.03: 0.02, 0.01: 0.04}) == 0.03
    assert bench_pretraining.choose_lr({0.1: 0.02, 0.03: 0.02, 0.01: 0.04}) == 0.1
    with pytest.raises(ValueError, match="validation_errors: expected at least one"):
        bench_pretraining.choose_lr({})
