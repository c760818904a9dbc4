"""End-to-end tests of the `ebmlab` command on small runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebmlab.app.cli import main

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(autouse=True)
def offline_data(monkeypatch):
    monkeypatch.setenv("EBMLAB_OFFLINE", "1")
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("EBMLAB_DATA", str(SHARED_DATA))


def train_toy(run, epochs, *extra):
    """`ebmlab train gaussian` on 8gaussians for ``epochs`` epochs into ``run``."""
    args = ["train", "gaussian", "--data", "8gaussians", "--epochs", str(epochs)]
    return main([*args, "--out", str(run), "--no-progress", *extra])


def test_list_names_models_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "independent" in out and "digits" in out and "8gaussians" in out


def test_unknown_model_lists_valid_ones(capsys):
    with pytest.raises(SystemExit):
        main(["train", "nonsense"])
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and "independent" in err


def test_unknown_dataset_lists_valid_ones(tmp_path, capsys):
    code = main(["train", "independent", "--data", "cifar", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar" in err and "digits" in err and "mnist" in err


def test_train_eval_report_sample_round_trip(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", "independent", "--data", "digits", "--out", str(run), "--no-progress"]) == 0
    )
    for name in ("config.json", "checkpoint.safetensors", "report.html", "figures.json"):
        assert (run / name).exists(), name
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["log_likelihood_method"] == "exact"
    assert -64 * 0.6931472 <= metrics["test_log_likelihood"] < 0  # at least as good as a coin
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "test_log_likelihood" in html and "data:image/png;base64," in html
    assert main(["sample", str(run), "--n", "16"]) == 0
    assert (run / "samples_drawn.png").stat().st_size > 0


def test_gradient_trained_family_on_toy_data(tmp_path, capsys):
    run = tmp_path / "g"
    assert train_toy(run, 3, "--eval") == 0
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["kl"] > 0  # a single Gaussian cannot fit eight modes
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]


def test_eval_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_every_command_has_help_with_an_example():
    for command in ("train", "sample", "eval", "report", "demo", "list", "bench"):
        proc = subprocess.run(
            [sys.executable, "-m", "ebmlab", command, "--help"], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert "example" in proc.stdout, command


def test_torchrun_cli_only_rank0_writes(tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "ebmlab",
            "train",
            "gaussian",
            "--data",
            "8gaussians",
            "--epochs",
            "1",
            "--out",
            str(run),
            "--no-progress",
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run written to") == 1
    assert (run / "checkpoint.safetensors").exists()


def test_sample_through_the_mcmc_runner_reports_diagnostics(tmp_path, capsys):
    run = tmp_path / "g"
    assert train_toy(run, 1) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "sample",
                str(run),
                "--sampler",
                "mala",
                "--step-size",
                "0.1",
                "--steps",
                "200",
                "--burn-in",
                "50",
                "--n",
                "8",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_chains"] == 8 and summary["n_draws"] == 200
    assert 0.0 < summary["acceptance_rate"] <= 1.0
    for name in ("samples_drawn.png", "samples_drawn_trace.png", "samples_drawn_acf.png"):
        assert (run / name).stat().st_size > 0


def test_every_gradient_kernel_name_takes_its_default_step_size(tmp_path, capsys):
    """``ula`` is ``langevin`` by its other name: it gets the same default step on continuous
    models (and the same refusal on binary ones), never a constructor's TypeError."""
    run = tmp_path / "g"
    assert train_toy(run, 1) == 0
    for name in ("ula", "langevin", "sgld"):
        argv = ["sample", str(run), "--sampler", name, "--steps", "5", "--n", "4", "--json"]
        assert main([*argv, "--no-progress"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n_draws"] == 5


def test_report_inlines_figures_for_a_relative_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        main(["train", "independent", "--data", "digits", "--out", "runs/rel", "--no-progress"])
        == 0
    )
    manifest = json.loads((tmp_path / "runs/rel/figures.json").read_text())
    assert manifest and all(not m["path"].startswith("runs/") for m in manifest)
    html = (tmp_path / "runs/rel/report.html").read_text()
    assert html.count("data:image/png;base64,") == len(manifest)
    mode = (tmp_path / "runs/rel/checkpoint.safetensors").stat().st_mode & 0o777
    assert mode & 0o044  # readable by others like any file written with open(), not 0600


def test_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "gaussian", "--data", "8gaussians", "--out", str(run), "--no-progress"]
    assert main([*args, "--epochs", "2"]) == 0
    assert (
        main(["train", "gaussian", "--out", str(run), "--resume", "--epochs", "4", "--no-progress"])
        == 0
    )
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3, 4]
    assert main(["train", "gaussian", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_restarts_after_divergence_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "r"
    # a learning rate this large makes the Gaussian's log-variance overflow within an epoch
    code = train_toy(run, 3, "--lr", "1e30", "--restarts", "1")
    assert code != 0 and "diverged" in capsys.readouterr().err
    log = json.loads((run / "restarts.json").read_text())
    assert len(log) == 1 and log[0]["lr"] == pytest.approx(5e29) and log[0]["seed"] == 1000
    assert (run / "metrics-attempt0.jsonl").exists()
    assert main(["train", "gaussian", "--out", str(run), "--restarts", "-1"]) == 2


def test_loop_flags_on_a_fitted_family_say_they_have_no_effect(tmp_path, capsys):
    run = tmp_path / "ind"
    args = ["train", "independent", "--data", "digits", "--epochs", "3", "--lr", "0.1"]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "fitted by its own rule" in err and "--epochs, --lr" in err


def test_eval_set_changes_evaluation_options_for_that_evaluation_only(tmp_path, capsys):
    run = tmp_path / "rbm"
    small = ["--hidden", "8", "--epochs", "1", "--ais-betas", "50", "--ais-runs", "8"]
    args = ["train", "rbm", "--data", "digits", *small, "--sample-steps", "10"]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0
    config = (run / "config.json").read_text()
    # a run recorded before the family had an option evaluates with the option's default
    recorded = json.loads(config)
    del recorded["options"]["ais_runs"]
    (run / "config.json").write_text(json.dumps(recorded))
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--set", "ais_betas=120", "--set", "ais-runs=16"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["evaluation_settings"] == {"ais_betas": 120, "ais_runs": 16}
    assert metrics["ais_betas"] == 120 and metrics["ais_runs"] == 16
    assert metrics["train_seconds"] > 0  # the training time is kept beside the new scores
    assert json.loads((run / "eval.json").read_text())["evaluation_settings"]["ais_betas"] == 120
    assert json.loads((run / "config.json").read_text()) == recorded
    for given, message in (
        ("hidden=20", "'hidden' sets how the model is trained: changing it needs a new run"),
        ("lr=0.1", "'lr' sets how the model is trained: changing it needs a new run"),
        ("ais_betas=many", "--set ais_betas: expected int, got 'many'"),
        ("ais_betas=-3", "--set ais_betas: expected a positive integer, got -3"),
        ("ais_betas=0", "--set ais_betas: expected a positive integer, got 0"),
        ("ais_betas", "--set: expected NAME=VALUE, got 'ais_betas'"),
        ("nonsense=1", "'nonsense' is not an option of this family"),
    ):
        assert main(["eval", str(run), "--set", given]) == 2
        err = capsys.readouterr().err
        assert message in err, (given, err)
    assert "ais_runs" in err  # the evaluation options are listed


def test_every_subcommand_has_help_with_an_example():
    """``--help`` of every command and subcommand ends in at least one example command line."""
    import argparse

    from ebmlab.app.cli import build_parser

    def leaves(parser, path):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            yield path, parser
        for action in actions:
            for name, child in action.choices.items():
                yield from leaves(child, (*path, name))

    found = list(leaves(build_parser(), ()))
    assert len(found) > 20
    missing = [" ".join(path) for path, p in found if "ebmlab " not in (p.epilog or "")]
    assert not missing, f"no example in --help of: {missing}"


def test_sample_takes_explicit_zeros_at_their_word_and_refuses_chain_flags_without_a_chain(
    tmp_path, capsys
):
    run = tmp_path / "g"
    assert train_toy(run, 1) == 0
    capsys.readouterr()
    base = ["sample", str(run), "--n", "4", "--no-progress"]
    assert main([*base, "--sampler", "mala", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main([*base, "--sampler", "mala", "--step-size", "0"]) == 2
    assert "--step-size: expected a finite number > 0, got 0.0" in capsys.readouterr().err
    for extra in (["--step-size", "0.1"], ["--burn-in", "5"], ["--thin", "3"], ["--json"]):
        assert main([*base, *extra]) == 2
        assert f"{extra[0]}: these set the Markov chain of --sampler" in capsys.readouterr().err
