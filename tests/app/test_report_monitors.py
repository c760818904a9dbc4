"""The report's training curves of the monitored Boltzmann families: the pseudo-log-likelihood
and reconstruction error under readable names with units, training and held-out on the same
axes, per stage for a staged run, and the CD surrogate kept as a secondary panel named as what
it is."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from test_report import _run_dir, _table_of

from ebmlab.app import report, viz


def _monitored_history(stage: str | None, epochs: int, scale: float = 1.0) -> list[dict]:
    records = []
    for e in range(1, epochs + 1):
        record: dict[str, Any] = {
            "kind": "epoch",
            "epoch": e,
            "step": 10 * e,
            "loss": 0.1 * (-1) ** e,
            "eval_pseudo_log_likelihood_train": scale * (-30.0 + e),
            "eval_pseudo_log_likelihood_heldout": scale * (-31.0 + e),
            "eval_reconstruction_error_train": 9.0 - e,
            "eval_reconstruction_error_heldout": 9.5 - e,
        }
        if stage is not None:
            record["stage"] = stage
        records.append(record)
    return records


def test_monitor_keys_are_named_with_units_and_subsets():
    assert report.describe_monitor("eval_pseudo_log_likelihood_heldout") == (
        "pseudo-log-likelihood",
        "nats per image",
        "held-out",
    )
    assert report.describe_monitor("eval_reconstruction_error_train") == (
        "reconstruction error",
        "squared error per image",
        "training",
    )
    assert report.describe_monitor("eval_mean_field_reconstruction_error_train", "train") == (
        "mean-field reconstruction error",
        "squared error per image",
        "training",
    )
    # above the first layer of a stack, an example is a state of the layer below
    assert report.describe_monitor("eval_pseudo_log_likelihood_train", "layer3")[1] == (
        "nats per h2 state"
    )
    assert report.describe_monitor("eval_pseudo_log_likelihood_train", "layer1")[1] == (
        "nats per image"
    )
    assert report.describe_monitor("loss") is None
    assert report.describe_monitor("eval_something_else_train") is None


def test_rbm_curves_put_training_and_held_out_on_one_panel_before_the_surrogate(
    tmp_path, monkeypatch
):
    run = _run_dir(tmp_path, "rbm", {}, history=_monitored_history("train", 4))
    section = report.section_from_run(run)
    records, quantities, starts = report._curve_records(section)
    assert starts == []
    assert quantities["pseudo-log-likelihood"] == ("nats per image", True)
    assert quantities["reconstruction error"] == ("squared error per image", True)
    assert quantities[report._FREE_ENERGY_GAP[0]] == ("nats", False)
    assert "CD surrogate (not a likelihood)" in report._FREE_ENERGY_GAP[0]
    held = [r["pseudo-log-likelihood"] for r in records if r.get("split") == "held-out"]
    train = [r["pseudo-log-likelihood"] for r in records if r.get("split") == "training"]
    assert held == [-30.0, -29.0, -28.0, -27.0] and train == [-29.0, -28.0, -27.0, -26.0]

    kept: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))  # keep it to look at
    text = report.write_report([section], tmp_path / "r.html").read_text()
    figure = kept[-1]
    panels = [ax for ax in figure.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in panels]
    # what shows progress first, the surrogate last
    assert titles[:2] == ["pseudo-log-likelihood", "reconstruction error"]
    assert titles[-1].startswith("CD surrogate (not a likelihood)")
    first = panels[0]
    assert first.get_ylabel() == "nats per image" and first.get_xlabel() == "epoch"
    assert [line.get_label() for line in first.get_lines()] == ["training", "held-out"]
    assert first.get_legend() is not None
    assert [t.get_text() for t in first.get_legend().get_texts()] == ["training", "held-out"]
    assert viz.title_overflows(figure) == []
    for fig in kept:
        close(fig)
    curves = _table_of(text, "s0-curves")
    assert "held-out" in curves and "not a log-likelihood" in curves


def test_dbn_curves_keep_each_layer_on_its_own_panels(tmp_path):
    history = _monitored_history("layer1", 3) + _monitored_history("layer2", 2, scale=0.3)
    run = _run_dir(tmp_path, "dbn", {}, history=history)
    section = report.section_from_run(run)
    records, quantities, starts = report._curve_records(section)
    assert starts == [(3.0, "layer2")]
    assert quantities["layer1: pseudo-log-likelihood"] == ("nats per image", True)
    assert quantities["layer2: pseudo-log-likelihood"] == ("nats per h1 state", True)
    assert quantities["layer2: reconstruction error"] == ("squared error per h1 state", True)
    layer2 = [r for r in records if "layer2: pseudo-log-likelihood" in r]
    assert [r["epoch"] for r in layer2] == [4.0, 4.0, 5.0, 5.0]  # after the first stage
    assert {r["split"] for r in layer2} == {"training", "held-out"}
    text = report.write_report([section], tmp_path / "r.html").read_text()
    assert "layer1, layer2" in _table_of(text, "s0-curves")


def test_plot_curves_draws_series_in_one_colour_each_across_groups(tmp_path, monkeypatch):
    history = [
        {"epoch": e, "stage": stage, "split": split, "q": float(e)}
        for stage, epochs in (("a", (1, 2)), ("b", (3, 4)))
        for e in epochs
        for split in ("training", "held-out")
    ]
    kept: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    viz.plot_curves(history, ["q"], tmp_path / "c.png", group_key="stage", series_key="split")
    (ax,) = [ax for ax in kept[-1].axes if ax.get_visible()]
    lines = ax.get_lines()
    assert len(lines) == 4  # two stages x two subsets
    colours = {line.get_label(): line.get_color() for line in lines if line.get_label()[0] != "_"}
    assert set(colours) == {"training", "held-out"}  # each subset named once
    assert len({line.get_color() for line in lines}) == 2
    assert {line.get_linestyle() for line in lines} == {"-", "--"}
    for fig in kept:
        close(fig)
