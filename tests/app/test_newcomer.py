"""No dead ends for a newcomer: every command ends in a result or one clear line, long steps say
what they do, defaults fit the data, and runs record what actually ran."""

from __future__ import annotations

import json
import shutil

import pytest

from ebmlab.app.cli import main


def _train(family, run, *extra, data="digits"):
    args = ["train", family, "--data", data, "--out", str(run), "--no-progress", *extra]
    assert main(args) == 0


# ----- compare ------------------------------------------------------------------------------------
def test_compare_takes_a_folder_of_runs_and_skips_what_is_not_a_run(tmp_path, capsys):
    demo = tmp_path / "runs" / "demo"
    _train("independent", demo / "independent", "--eval")
    _train("gaussian", demo / "gaussian", "--eval", "--epochs", "1", data="8gaussians")
    (demo / "report.html").write_text("<html></html>")
    capsys.readouterr()
    # `compare runs/*` (a folder of runs) and `compare runs/demo/*` (runs and files)
    assert main(["compare", str(tmp_path / "runs" / "demo")]) == 0
    out = capsys.readouterr().out
    assert "independent" in out and "gaussian" in out
    assert main(["compare", *map(str, sorted(demo.iterdir()))]) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and "report.html" in captured.err
    assert "independent" in captured.out
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_compare_names_rows_by_their_options_and_tables_by_their_unit(tmp_path, capsys):
    for objective in ("dsm", "nce"):
        _train(
            "ebm",
            tmp_path / objective,
            "--objective",
            objective,
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--eval",
            data="8gaussians",
        )
    _train("independent", tmp_path / "ind", "--eval")
    capsys.readouterr()
    assert (
        main(["compare", str(tmp_path / "dsm"), str(tmp_path / "nce"), str(tmp_path / "ind")]) == 0
    )
    out = capsys.readouterr().out
    assert "ebm (objective dsm" in out and "ebm (objective nce" in out
    assert "a density on the plane, nats per point" in out
    assert "binary images" in out and "nats per image" in out


def test_toy_runs_record_no_binarization(tmp_path):
    _train("realnvp", tmp_path / "r", "--epochs", "1", data="8gaussians")
    assert json.loads((tmp_path / "r" / "config.json").read_text())["binarize"] is None


# ----- sample -------------------------------------------------------------------------------------
def test_sample_draws_a_boltzmann_machines_visible_units(tmp_path, capsys):
    _train("bm", tmp_path / "bm", "--epochs", "1")
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "bm"), "--n", "16", "--steps", "5"]) == 0
    assert (tmp_path / "bm" / "samples_drawn.png").exists()


def test_sample_says_plainly_when_a_family_has_no_distribution(tmp_path, capsys):
    _train("pca", tmp_path / "pca")
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "pca")]) == 2
    err = capsys.readouterr().err
    assert "defines no probability distribution" in err and "--sampler" not in err
    assert main(["sample", str(tmp_path / "pca"), "--sampler", "mala"]) == 2
    assert "no energy function" in capsys.readouterr().err


def test_the_advice_to_use_a_sampler_works(tmp_path, capsys):
    run = tmp_path / "ae"
    _train("autoencoder", run, "--epochs", "1")
    capsys.readouterr()
    assert main(["sample", str(run)]) == 2
    assert "--sampler mala" in capsys.readouterr().err
    args = ["sample", str(run), "--sampler", "mala", "--steps", "10", "--n", "4", "--no-progress"]
    assert main(args) == 0
    assert (run / "samples_drawn.png").exists()


def test_sample_with_a_gradient_kernel_has_a_default_step_size(tmp_path, capsys):
    _train("gaussian", tmp_path / "g", "--epochs", "1", data="8gaussians")
    before = {p.name: p.read_bytes() for p in (tmp_path / "g").glob("*.png")}
    capsys.readouterr()
    args = ["sample", str(tmp_path / "g"), "--sampler", "mala", "--steps", "20", "--n", "8"]
    assert main([*args, "--no-progress", "--json"]) == 0
    assert 0 < json.loads(capsys.readouterr().out.strip().splitlines()[-1])["acceptance_rate"]
    for name, content in before.items():  # the report's figures stay as they were
        assert (tmp_path / "g" / name).read_bytes() == content


def test_sample_refuses_a_kernel_that_cannot_move_the_models_units(tmp_path, capsys):
    _train("rbm", tmp_path / "rbm", "--epochs", "1")
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "rbm"), "--sampler", "mala"]) == 2
    assert "binary units (use mh or gibbs)" in capsys.readouterr().err


def test_a_mistyped_run_path_names_itself(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err


# ----- eval ---------------------------------------------------------------------------------------
def test_eval_reuses_its_result_and_a_quick_one_never_replaces_a_full_one(tmp_path, capsys):
    run = tmp_path / "rbm"
    _train("rbm", run, "--epochs", "1", "--eval")
    full = json.loads((run / "eval.json").read_text())
    assert full["evaluation"] == "full"
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert "using the stored full evaluation" in captured.err
    assert main(["eval", str(run), "--quick", "--recompute", "--json"]) == 0
    capsys.readouterr()
    assert json.loads((run / "eval.json").read_text()) == full
    # a new checkpoint makes the stored evaluation stale
    assert main(["train", "rbm", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    assert "evaluating" in capsys.readouterr().err


# ----- defaults and provenance --------------------------------------------------------------------
def test_digits_gets_digits_sized_defaults_and_flags_still_win(tmp_path):
    from ebmlab.app.recipes import get_recipe

    _train("rbm", tmp_path / "a", "--epochs", "1")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    demo = get_recipe("rbm").demo
    assert config["options"]["hidden"] == demo["options"]["hidden"]
    assert config["options"]["ais_betas"] == demo["options"]["ais_betas"]
    _train("rbm", tmp_path / "b", "--epochs", "1", "--hidden", "12")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["options"]["hidden"] == 12


def test_a_model_no_better_than_independent_pixels_is_flagged(tmp_path, capsys):
    _train("rbm", tmp_path / "r", "--epochs", "1", "--lr", "1e-9", "--eval")
    err = capsys.readouterr().err
    assert "no better than independent pixels" in err and "train longer" in err
    metrics = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert metrics["independent_pixels_test_log_likelihood"] < 0


def test_config_records_the_device_that_ran(tmp_path):
    _train("independent", tmp_path / "r")
    ran = json.loads((tmp_path / "r" / "config.json").read_text())["ran"]
    assert ran["device"] == "cpu" and ran["world_size"] == 1


def test_each_family_has_its_own_example_and_fitted_ones_hide_loop_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "dbm", "--help"])
    out = capsys.readouterr().out
    assert "ebmlab train dbm --data" in out and "ebmlab train rbm" not in out
    assert "passes over the training data (default" in out
    with pytest.raises(SystemExit):
        main(["train", "pca", "--help"])
    assert "--lr" not in capsys.readouterr().out


def test_a_restart_is_announced(tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "gaussian", "--data", "8gaussians", "--epochs", "2", "--lr", "1e30"]
    main([*args, "--out", str(run), "--no-progress", "--restarts", "1"])
    assert "restart 1 of 1 after loss diverged" in capsys.readouterr().err


# ----- the demo's output through every command ----------------------------------------------------
@pytest.mark.slow
def test_the_demos_runs_go_through_compare_sample_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    assert main(["compare", str(out)]) == 0
    assert main(["compare", *map(str, sorted(out.iterdir()))]) == 0
    for run in sorted(p for p in out.iterdir() if p.is_dir()):
        assert main(["report", str(run)]) == 0, run
        code = main(["sample", str(run), "--n", "8", "--out", str(tmp_path / f"{run.name}.png")])
        err = capsys.readouterr().err
        # no sampler: either no distribution at all, or advice that works (tested above)
        plain = ("defines no probability distribution", "has no sampler of its own")
        assert code == 0 or any(line in err for line in plain), (run, err)
    shutil.rmtree(out)


def test_the_demo_prints_one_result_line_per_family(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--only", "independent", "pca"]) == 0
    out = capsys.readouterr().out
    assert "[demo] independent: test log-likelihood" in out and "nats (exact)" in out
    assert "[demo] pca: reconstruction error" in out


def test_the_ais_progress_bar_does_not_change_the_estimate():
    import torch

    from ebmlab.estimators import ais
    from ebmlab.models import BernoulliRBM

    rbm = BernoulliRBM(6, 4, init_std=0.5, seed=0)
    quiet = ais(rbm, n_betas=1500, n_runs=10, seed=0, progress=False)
    shown = ais(rbm, n_betas=1500, n_runs=10, seed=0, progress=True)
    assert torch.equal(quiet.log_weights, shown.log_weights)


def test_loop_flags_reach_the_dbns_layer_stages(tmp_path, capsys):
    run = tmp_path / "dbn"
    _train("dbn", run, "--epochs", "2", "--layers", "8,8", "--ais-betas", "100")
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = {(r["stage"], r["epoch"]) for r in records if r.get("kind") == "epoch"}
    assert epochs == {("layer1", 1), ("layer1", 2), ("layer2", 1), ("layer2", 2)}


def test_a_fitted_family_records_no_unused_loop_settings(tmp_path):
    _train("pca", tmp_path / "pca")
    train = json.loads((tmp_path / "pca" / "config.json").read_text())["train"]
    assert set(train) == {"seed", "device"}
    assert main(["eval", str(tmp_path / "pca"), "--json"]) == 0


def test_a_fitted_family_no_better_than_independent_pixels_is_not_told_to_train_longer(capsys):
    from types import SimpleNamespace

    import torch

    from ebmlab.app import cli
    from ebmlab.app.recipes import get_recipe

    x = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    metrics = {"test_log_likelihood": -1e6}
    split = SimpleNamespace(x_train=x, x_test=x)
    cli._warn_if_baseline(get_recipe("ppca"), metrics, split, "stochastic")
    err = capsys.readouterr().err
    assert "no better than independent pixels" in err
    assert "train longer" not in err and "fitted by its own rule" in err
