"""The HTML report of ``ebmlab.app.report``: a run's page (table of contents, headline score,
every figure inlined, curves of named quantities, readable metrics, the configuration folded
away), a page of several runs (lectures' order, baseline beside the log-likelihoods, a gallery),
and every family's figures with titles no wider than what they head."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch

from ebmlab.app import recipes, report, viz
from ebmlab.app.cli import main
from ebmlab.app.recipes import Context


class _Page(HTMLParser):
    """The parts of a page the tests look at: image sources, element ids, links, tag names."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(found.get("src") or "")
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag in ("link", "script", "iframe") or (
            tag in ("img", "script") and not str(found.get("src", "")).startswith("data:")
        ):
            self.external.append(tag)


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text()
    page = _Page()
    page.feed(text)
    return page, text


def _table_of(text: str, heading_id: str) -> str:
    """The HTML between the element with id ``heading_id`` and the next <h3> or <details>."""
    start = text.index(f"id='{heading_id}'")
    end = min(i for i in (text.find("<h3", start + 1), text.find("<details", start)) if i > 0)
    return text[start:end]


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory) -> Path:
    """A small RBM trained for three epochs on digits, evaluated (its report written by train)."""
    out = tmp_path_factory.mktemp("runs") / "rbm"
    argv = ["--threads", "1", "train", "rbm", "--data", "digits", "--epochs", "3"]
    argv += ["--hidden", "8", "--ais-betas", "100", "--ais-runs", "10", "--sample-steps", "10"]
    assert main([*argv, "--eval", "--no-progress", "--out", str(out)]) == 0
    return out


def test_run_report_has_contents_every_figure_readable_metrics_and_the_config_folded(rbm_run):
    page, text = _parse(rbm_run / "report.html")
    figures = json.loads((rbm_run / "figures.json").read_text())
    # every figure of the manifest is inlined, byte for byte, and nothing is fetched
    inlined = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    for entry in figures:
        assert (rbm_run / entry["path"]).read_bytes() in inlined, entry["path"]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.external == []
    # a table of contents that links to every figure, the curves, the metrics, the config
    assert "<nav class='toc parts'>" in text
    for target in [f"s0-f{j}" for j in range(len(figures))] + ["s0-curves", "s0-metrics"]:
        assert f"#{target}" in page.links and target in page.ids, target
    assert "#s0-config" in page.links
    # the configuration folded away, as a table rather than a JSON blob
    config = text[text.index("<details id='s0-config'>") :]
    assert config.index("<summary>") < config.index("<table>") < config.index("</details>")
    # metrics under readable names, rounded to their standard errors
    metrics = _table_of(text, "s0-metrics")
    visible = re.sub(r"<[^>]+>", " ", metrics)  # the text, without tags and their attributes
    assert "test_log_likelihood" not in visible and "Test log-likelihood" in visible
    assert "Test log-likelihood (AIS)" in metrics
    values = json.loads((rbm_run / "eval.json").read_text())
    shown = report.format_number(values["test_log_likelihood"], values["test_log_likelihood_se"])
    assert shown in metrics and re.fullmatch(r"-?\d+\.\d\d ± \d\.\d\d", shown), shown
    assert "nats per image" in metrics
    # the baseline the run recorded, once, beside the log-likelihood
    assert report.BASELINE_KEY in values
    assert metrics.count("Independent-pixel baseline") == 1
    assert "Independent pixels test log-likelihood" not in visible
    # the headline at the top of the section
    assert text.index("class='headline'") < text.index("<figure")


def test_run_report_says_the_rbm_curve_is_a_surrogate(rbm_run):
    _, text = _parse(rbm_run / "report.html")
    curves = _table_of(text, "s0-curves")
    assert "does not show progress" in curves and "not a log-likelihood" in curves


def test_format_number_rounds_to_the_standard_error_or_to_about_four_digits():
    assert report.format_number(-22.805950875866337, 0.17988856332620673) == "-22.81 ± 0.18"
    assert report.format_number(-0.32471531625411637, 0.0035671400608583786) == "-0.3247 ± 0.0036"
    assert report.format_number(1323.3386688232422) == "1,323"
    assert report.format_number(2.7116965100293706) == "2.71"
    assert report.format_number(0.699999988079071) == "0.7"
    assert report.format_number(14500) == "14,500" and report.format_number(1000) == "1000"
    assert report.format_number(True) == "yes"


@pytest.mark.parametrize(
    "key, label",
    [
        ("test_log_likelihood", "Test log-likelihood"),
        ("test_log_likelihood_ais", "Test log-likelihood (AIS)"),
        ("test_log_likelihood_reverse_ais_se", "Test log-likelihood (reverse-AIS standard error)"),
        ("test_log_likelihood_is10", "Test log-likelihood (IS-10)"),
        ("train_log_likelihood_bound", "Training log-likelihood (bound)"),
        ("pca2_reconstruction_error", "PCA-2 reconstruction error"),
        ("first_rbm_test_log_likelihood", "First RBM test log-likelihood"),
        ("n_patterns", "Number of patterns"),
    ],
)
def test_metric_label_spells_out_keys(key, label):
    assert report.metric_label(key) == label


def test_metric_unit_names_the_units_of_scores():
    assert report.metric_unit("test_log_likelihood") == "nats per image"
    assert report.metric_unit("test_log_likelihood", per="point") == "nats per point"
    assert report.metric_unit("test_pseudo_log_likelihood_per_feature") == "nats per pixel"
    assert report.metric_unit("log_z_exact") == "nats"
    assert report.metric_unit("train_seconds") == "s"
    assert report.metric_unit("log_likelihood_method") == ""


@pytest.mark.parametrize(
    "family, key, stage, options, progress",
    [
        ("rbm", "loss", "train", {}, False),
        ("dbn", "loss", "layer1", {}, False),
        ("dbm", "loss", "train", {}, False),
        ("bm", "loss", "train", {}, False),
        ("autoencoder", "loss", "pretrain2", {}, False),
        ("autoencoder", "loss", "finetune", {"loss": "cross_entropy"}, True),
        ("autoencoder", "squared_error", "finetune", {}, True),
        ("vae", "elbo", "train", {}, True),
        ("pixelcnn", "loss", "train", {}, True),
        ("ebm", "loss", "train", {"objective": "cd"}, False),
        ("ebm", "loss", "train", {"objective": "nce"}, True),
    ],
)
def test_describe_curve_tells_what_the_loop_records(family, key, stage, options, progress):
    name, _, useful = report.describe_curve(family, key, stage, options)
    assert useful is progress, name
    assert name != "loss"
    assert report.describe_curve(family, "lr", stage, options) is None


def _run_dir(
    root: Path,
    family: str,
    metrics: dict[str, Any],
    binarize: str | None = "stochastic",
    history: list[dict[str, Any]] | None = None,
    samples: bool = True,
) -> Path:
    """A run directory as ``ebmlab train`` leaves it (config, eval, metrics, figures)."""
    run = root / family
    run.mkdir(parents=True)
    config = {"model": family, "data": "digits", "binarize": binarize, "image_shape": [8, 8]}
    (run / "config.json").write_text(json.dumps({**config, "options": {"hidden": 4}}))
    (run / "eval.json").write_text(json.dumps(metrics))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history or []))
    images = torch.rand(4, 64, generator=torch.Generator().manual_seed(len(family)))
    if samples:
        viz.samples_beside_data(images, images.flip(0), (8, 8), run / "samples.png", nrow=2)
    else:
        viz.image_grid(images, (8, 8), run / "completion.png", nrow=2)
    name, title = ("samples.png", "Samples") if samples else ("completion.png", "Completion")
    (run / "figures.json").write_text(json.dumps([{"path": name, "title": title}]))
    return run


def _ll(mean: float, se: float = 0.2) -> dict[str, Any]:
    return {
        "test_log_likelihood": mean,
        "test_log_likelihood_se": se,
        "log_likelihood_method": "exact",
    }


def test_page_of_runs_is_in_the_lectures_order_with_contents_and_baselines(tmp_path):
    runs = {
        "vae": _run_dir(tmp_path, "vae", _ll(-23.4)),
        "independent": _run_dir(tmp_path, "independent", _ll(-26.83, 0.17)),
        "hopfield": _run_dir(tmp_path, "hopfield", {"flip_recall_fraction": 0.88}, samples=False),
        "zz": _run_dir(tmp_path, "zz", _ll(-25.0)),  # a family the order does not name
        "grbm": _run_dir(tmp_path, "grbm", _ll(33.7), binarize=None),
        "rbm": _run_dir(tmp_path, "rbm", _ll(-22.81, 0.18)),
    }
    sections = [report.section_from_run(run) for run in sorted(runs.values())]
    path = report.write_report(sections, tmp_path / "report.html", title="demo")
    page, text = _parse(path)
    order = [text.index(f"<h2 id='s{i}'") for i in range(len(runs))]
    assert order == sorted(order)
    headings = re.findall(r"<h2 id='s\d+'>(\w+) on digits", text)
    assert headings == ["hopfield", "rbm", "grbm", "vae", "zz", "independent"]
    assert "<nav class='toc'>" in text and all(f"#s{i}" in page.links for i in range(len(runs)))
    # the baseline beside comparable log-likelihoods (same data and binarization) only
    by_family = {s.family: s for s in sections}
    assert by_family["rbm"].baseline == (-26.83, 0.17)
    assert by_family["grbm"].baseline is None and by_family["independent"].baseline is None
    assert "+4.02 nats</b> better" in report.headline(by_family["rbm"])
    rbm_metrics = _table_of(text, f"s{headings.index('rbm')}-metrics")
    assert "Independent-pixel baseline" in rbm_metrics and "this model +4.02" in rbm_metrics
    assert "Independent-pixel baseline" not in _table_of(text, f"s{headings.index('grbm')}-metrics")


def test_page_of_runs_has_a_gallery_of_every_familys_samples(tmp_path):
    rbm = _run_dir(tmp_path, "rbm", _ll(-22.8))
    hopfield = _run_dir(tmp_path, "hopfield", {"flip_recall_fraction": 0.9}, samples=False)
    sections = [report.section_from_run(rbm), report.section_from_run(hopfield)]
    assert sections[0].gallery == (rbm / viz.GALLERY_SAMPLES, "samples")
    assert sections[1].gallery == (hopfield / "completion.png", "completion (no samples)")
    path = report.write_report(sections, tmp_path / "report.html")
    page, text = _parse(path)
    gallery = text[text.index("id='gallery'") : text.index("<h2 id='s0'")]
    tiles = re.findall(r"src=\"data:image/png;base64,([^\"]+)\"", gallery)
    # the data first, then the families in the lectures' order (Hopfield before the RBM)
    pictures = [rbm / viz.GALLERY_DATA, hopfield / "completion.png", rbm / viz.GALLERY_SAMPLES]
    assert [base64.b64decode(t) for t in tiles] == [p.read_bytes() for p in pictures]
    assert "#gallery" in page.links


def test_curves_put_the_stages_one_after_another_with_named_quantities(tmp_path):
    history = [
        {"kind": "epoch", "stage": "pretrain1", "epoch": e, "step": e, "loss": 0.1 * e}
        for e in (1, 2)
    ] + [
        {
            "kind": "epoch",
            "stage": "finetune",
            "epoch": e,
            "step": 2 + e,
            "loss": 30.0 - e,
            "squared_error": 5.0 - e,
            "lr": 0.1,
        }
        for e in (1, 2, 3)
    ]
    run = _run_dir(tmp_path, "autoencoder", {}, history=history)
    section = report.section_from_run(run)
    records, quantities, starts = report._curve_records(section)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert starts == [(2.0, "finetune")]
    assert quantities["reconstruction error"] == ("squared error per image", True)
    assert quantities[report._FREE_ENERGY_GAP[0]] == ("nats", False)
    assert not any("lr" in r for r in records)
    text = report.write_report([section], tmp_path / "r.html").read_text()
    curves = _table_of(text, "s0-curves")
    assert "pretrain1, finetune" in curves and "does not show progress" not in curves


# ----- every family's figures -------------------------------------------------------------------
def _tiny_context(
    name: str, kind: str, tmp_path: Path
) -> tuple[Any, Context, torch.Tensor, torch.Tensor]:
    """A family's model built (and fitted, for the fitted families) on a slice of data of
    ``kind`` ("image": digits, "toy2d": 8 Gaussians), with the shrunk demo options of the shared
    recipe suite."""
    from test_recipes import N_TEST, N_TRAIN, demo_settings

    from ebmlab.app import cli

    recipe = recipes.get_recipe(name)
    data_name, options, _ = demo_settings(name, recipe)
    data_name = "8gaussians" if kind == "toy2d" else "digits"
    split = cli.load_split(data_name, options.get("binarize", recipe.binarize), 0)
    ctx = Context(
        options=options,
        data_name=data_name,
        image_shape=split.image_shape,
        generator=torch.Generator().manual_seed(0),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        quick=True,
        x_train=split.x_train[:N_TRAIN],
        y_train=None if split.y_train is None else split.y_train[:N_TRAIN],
        x_test=split.x_test[:N_TEST],
        y_test=None if split.y_test is None else split.y_test[:N_TEST],
    )
    x_train, x_test = ctx.train_data(), split.x_test[:N_TEST]
    model, _ = recipe.build(x_train, ctx)
    if recipe.fit is not None:
        recipe.fit(model, x_train, ctx)
    model.eval()
    return recipe, ctx, model, x_test


@pytest.mark.parametrize(
    "name, kind",
    [(name, kind) for name, r in sorted(recipes.all_recipes().items()) for kind in r.data_kinds],
)
def test_every_family_figure_has_titles_no_wider_than_what_they_head(
    name, kind, tmp_path, monkeypatch
):
    import matplotlib.pyplot as plt

    close = plt.close
    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    try:
        recipe, ctx, model, x_test = _tiny_context(name, kind, tmp_path)
        figures = recipe.figures(model, x_test, ctx)
        assert figures, name
        assert len(kept) >= len(figures)
        for fig in kept:
            assert viz.title_overflows(fig) == [], (name, [ax.get_title() for ax in fig.axes])
    finally:
        for fig in kept:
            close(fig)
