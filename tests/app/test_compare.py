"""The cross-family table: records from run directories, ordering, method notes, CLI."""

from __future__ import annotations

import json

import pytest

from ebmlab.app.cli import main
from ebmlab.app.compare import collect, markdown_table


def _run(tmp_path, name, model, data, metrics=None, binarize="stochastic"):
    run = tmp_path / name
    run.mkdir()
    config = {"model": model, "data": data, "binarize": binarize, "train": {"epochs": 3}}
    (run / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (run / "eval.json").write_text(json.dumps(metrics))
    return run


def test_table_groups_by_data_and_sorts_by_log_likelihood(tmp_path):
    runs = [
        _run(
            tmp_path,
            "a",
            "independent",
            "mnist",
            {
                "test_log_likelihood": -206.1,
                "test_log_likelihood_se": 0.5,
                "log_likelihood_method": "exact",
            },
        ),
        _run(
            tmp_path,
            "b",
            "rbm",
            "mnist",
            {
                "test_log_likelihood": -87.2,
                "test_log_likelihood_se": 0.24,
                "log_likelihood_method": "ais",
                "train_seconds": 804.0,
            },
        ),
        _run(tmp_path, "c", "vae", "mnist"),  # trained, not evaluated
        _run(
            tmp_path,
            "d",
            "ebm",
            "rings",
            {"test_log_likelihood": -2.66, "kl": 0.034, "log_likelihood_method": "grid"},
            binarize=None,
        ),
    ]
    records = collect(runs)
    assert [r["evaluated"] for r in records] == [True, True, False, True]
    table = markdown_table(records)
    mnist, rings = table.split("**rings**")
    rows = [line for line in mnist.splitlines() if line.startswith("| ") and "model" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["rbm", "independent", "vae"]
    assert "-87.20 ± 0.24" in rows[0] and "(not evaluated)" in rows[2]
    assert "| 13.4 min |" in rows[0]  # the training time beside the score
    # a run not evaluated yet shows the time its stages recorded
    (runs[2] / "metrics.jsonl").write_text(
        json.dumps({"stage": "train", "kind": "epoch", "epoch": 1, "seconds": 42.4}) + "\n"
    )
    assert "| 42 s |" in markdown_table(collect(runs[2:3]))
    assert "KL 0.034" in rings and "a density on the plane, nats per point" in rings
    assert "binary images (stochastic binarization), nats per image" in mnist
    assert "ais: AIS estimate" in table and "exact: exact" in table


def test_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="not a run directory"):
        collect([tmp_path])
    assert main(["compare", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_compare_evaluates_missing_runs_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "g"
    args = ["train", "gaussian", "--data", "8gaussians", "--epochs", "1", "--out", str(run)]
    assert main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "table.md"
    assert main(["compare", str(run), "--eval", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (run / "eval.json").exists() and "| gaussian |" in printed
    assert out.read_text().strip() == printed.strip()
    assert main(["compare", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["model"] == "gaussian" and record["log_likelihood_method"] == "exact"
