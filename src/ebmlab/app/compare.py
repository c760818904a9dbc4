"""One table across families: every run's test log-likelihood in nats, and how it was obtained.

A run directory (``ebmlab train ... --out RUN``) holds ``config.json`` (model, data, binarization)
and, once evaluated, ``eval.json`` (``test_log_likelihood`` in nats per example with its standard
error and ``log_likelihood_method``). ``collect`` reads them; ``markdown_table`` lays them out one
row per run, grouped by dataset and binarization, best first.

How to read the methods side by side (DESIGN: "exact", "ais", "ais-lower-bound", "elbo",
"iwae-K", "dequantized", "grid"):

- exact / grid: the log-likelihood itself (grid: a 2-D density normalized on a fine grid).
- ais: log Z by annealed importance sampling; AIS tends to overestimate log-likelihoods (its
  log Z estimate is stochastically low), so it is an optimistic estimate; reverse AIS brackets it.
- ais-lower-bound, elbo, iwae-K: lower bounds on log p(x) in expectation (a variational posterior
  over hidden units or latents; for the DBN and DBM combined with an AIS log Z).
- dequantized: a continuous density on x + U[0, 1)^D; by Jensen's inequality a lower bound on the
  log-probability of the binary image, so it sits in the same column as the discrete models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..training.logging import training_seconds
from .rundir import evaluation_is_stale

#: What each ``log_likelihood_method`` means, for table footnotes.
METHOD_NOTES: dict[str, str] = {
    "exact": "exact",
    "grid": "exact up to a fine grid's quadrature",
    "ais": "AIS estimate of log Z (optimistic on average)",
    "ais-lower-bound": "variational lower bound with an AIS log Z",
    "elbo": "evidence lower bound",
    "dequantized": "continuous density on uniformly dequantized data (a lower bound)",
    "diffusion-elbo": (
        "a diffusion model's variational bound on the discrete images (its KL terms sampled "
        "over t: unbiased for the bound)"
    ),
}


#: Metrics shown beside the log-likelihood when a run has them (key in eval.json: label).
OTHER_METRICS: dict[str, str] = {
    "kl": "KL",
    "test_reconstruction_error": "reconstruction error",
    "reconstruction_error": "reconstruction error",
    "test_frechet_distance": "Frechet distance",
    "test_frechet_distance_train_floor": "Frechet floor (training images)",
    "test_accuracy": "label accuracy",
    "test_error": "test error (classifier)",
    "half_recall_fraction": "recall from half an image",
    "flip_recall_fraction": "recall from flipped pixels",
    "inpaint_mse": "inpainting error",
    "inpaint_mse_mean_image": "inpainting error of the mean image",
    "test_pseudo_log_likelihood_per_feature": "pseudo-log-likelihood per pixel",
    "test_frechet_distance_per_class_mean": "per-class Frechet distance (mean over classes)",
    "test_class_accuracy": "requested class (classifier on real labels)",
    "test_translation_mse": "translation MSE against T(x)",
    "identity_mse": "identity map's MSE",
    "nearest_domain_y_mse": "nearest domain-Y image's MSE",
    "test_cycle_class_agreement": "F(G(x)) keeps x's class (classifier)",
    "frechet_n_samples": "Frechet samples",
    "flip_recall_fraction_without_hidden": "the same without hidden units",
    "test_map": "mAP of Hamming ranking",
    "test_precision_r2": "precision within Hamming radius 2",
    "itq_precision_r2": "ITQ's",
    "pca_sign_precision_r2": "PCA-sign's",
    "lsh_precision_r2": "LSH's",
}

#: Options that tell runs of one family apart in the table (when the run has them).
LABEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "rbm": ("hidden", "method"),
    "grbm": ("hidden",),
    "bm": ("hidden",),
    "dbn": ("layers",),
    "dbm": ("layers",),
    "autoencoder": ("layers",),
    "dbn-classifier": ("layers", "pretrain"),
    "ebm": ("objective", "network"),
    "vae": ("hidden", "latent"),
    "pca": ("components",),
    "ppca": ("components",),
    "fa": ("components",),
}


def other_scores(metrics: dict[str, Any]) -> str:
    """The ``OTHER_METRICS`` a run has, as "label value" joined by commas."""
    return ", ".join(
        f"{label} {metrics[key]:.3g}"
        for key, label in OTHER_METRICS.items()
        if isinstance(metrics.get(key), (int, float)) and not isinstance(metrics[key], bool)
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def _budget(config: dict[str, Any]) -> str | int | None:
    """How long the run trained: loop epochs (plus pretraining epochs per RBM), epochs per RBM
    of a greedy stack, or "fit" for families fitted in closed form or by EM."""
    from .recipes import all_recipes

    options = config.get("options") or {}
    epochs = config.get("train", {}).get("epochs")
    if options.get("layer_epochs"):
        return f"{options['layer_epochs']} per RBM"
    recipe = all_recipes().get(str(config.get("model")))
    if recipe is not None and recipe.fit is not None:
        return "fit"
    if options.get("pretrain_epochs"):
        return f"{epochs} (+{options['pretrain_epochs']} per RBM)"
    return epochs


def label(config: dict[str, Any]) -> str:
    """The family with the options that distinguish its runs, e.g. "ebm (objective nce)"."""
    model = str(config.get("model"))
    options = config.get("options") or {}
    parts = [
        f"{name} {options[name]}"
        for name in LABEL_OPTIONS.get(model, ())
        if options.get(name) not in (None, "")
    ]
    return f"{model} ({', '.join(parts)})" if parts else model


def find_runs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """The run directories among ``paths`` (a folder of runs, such as the demo's, stands for
    the runs inside it) and one note per path that is not a run."""
    runs: list[Path] = []
    skipped: list[str] = []
    for entry in paths:
        path = Path(entry)
        if (path / "config.json").is_file():
            runs.append(path)
        elif path.is_dir() and any((child / "config.json").is_file() for child in path.iterdir()):
            runs.extend(
                sorted(child for child in path.iterdir() if (child / "config.json").is_file())
            )
        elif not path.exists():
            skipped.append(f"{path}: no such file or directory")
        else:
            skipped.append(f"{path}: not a run directory (no config.json)")
    return runs, skipped


def collect(run_dirs: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """One record per run directory: model, label, data, binarization, metrics of ``eval.json``.
    Runs without ``eval.json``, or whose ``eval.json`` scored an earlier checkpoint
    (``stale_evaluation``), are kept with ``evaluated=False`` so the table can say so. Raises
    ``ValueError`` naming a directory that is not a run (no ``config.json``)."""
    records = []
    for entry in run_dirs:
        run = Path(entry)
        config = _read_json(run / "config.json")
        if config is None:
            raise ValueError(f"runs: {run} is not a run directory (no config.json)")
        metrics = _read_json(run / "eval.json")
        stale = metrics is not None and evaluation_is_stale(run, metrics)
        if stale:  # it scored the checkpoint before a --resume: not this run's figures
            metrics = None
        record: dict[str, Any] = {
            "run": str(run),
            "model": config.get("model"),
            "label": label(config),
            "data": config.get("data"),
            "binarize": config.get("binarize"),
            "epochs": _budget(config),
            "evaluated": metrics is not None,
            "stale_evaluation": stale,
        }
        record.update(metrics or {})
        if record.get("train_seconds") is None:  # not evaluated yet: the stages' own clocks
            record["train_seconds"] = training_seconds(run) or None
        records.append(record)
    return records


def _duration(seconds: Any) -> str:
    """Training time for the table: "42 s", "13.4 min", "2.5 h" ("" when unknown)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def unit(data_name: str, binarize: str | None) -> str:
    """What a table's log-likelihoods measure (rows of different units are never compared)."""
    from .. import data

    if data.is_toy2d(data_name):
        return "a density on the plane, nats per point"
    if binarize:
        return f"binary images ({binarize} binarization), nats per image"
    return (
        "a density of grey levels (continuous pixels), nats per image: not comparable with "
        "binary images"
    )


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(records: list[dict[str, Any]]) -> str:
    """Markdown: one block per (dataset, binarization), rows sorted by test log-likelihood."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((str(r.get("data")), str(r.get("binarize") or "none")), []).append(r)
    blocks = []
    for (data_name, binarize), rows in groups.items():
        rows = sorted(rows, key=lambda r: -float(r.get("test_log_likelihood", float("-inf"))))
        lines = [
            f"**{data_name}**: {unit(data_name, None if binarize == 'none' else binarize)}",
            "",
            "| model | test log-likelihood (nats) | how | train LL | epochs | training time "
            "| other | run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            ll = r.get("test_log_likelihood")
            se = r.get("test_log_likelihood_se")
            value = "" if ll is None else _cell(ll) + (f" ± {se:.2f}" if se else "")
            if not r["evaluated"]:
                value = (
                    "(evaluated before the run went on: `ebmlab eval RUN`)"
                    if r.get("stale_evaluation")
                    else "(not evaluated)"
                )
            name, how = r.get("label", r["model"]), r.get("log_likelihood_method", "")
            lines.append(
                f"| {name} | {value} | {how} | "
                f"{_cell(r.get('train_log_likelihood'))} | {_cell(r.get('epochs'))} | "
                f"{_duration(r.get('train_seconds'))} | {other_scores(r)} | {r['run']} |"
            )
        blocks.append("\n".join(lines))
    used = sorted({str(r.get("log_likelihood_method")) for r in records} & set(METHOD_NOTES))
    notes = "; ".join(f"{m}: {METHOD_NOTES[m]}" for m in used)
    return "\n\n".join(blocks) + (f"\n\nHow: {notes}.\n" if notes else "\n")
