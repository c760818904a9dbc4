"""The HTML report: one self-contained page per run or per demo (figures inlined as base64 PNG,
the style in the page: no file or address outside it is needed).

A run's section opens with its headline score (the test log-likelihood, beside the
independent-pixel baseline where the report knows it) and a table of contents; then its
figures, the training curves of the quantities the loop recorded (named, with units: see
``describe_curve``; what a family measures after every epoch on its training and held-out
subsets, one line each on the same axes: ``describe_monitor``), the metrics under readable
names (``metric_label``), rounded to their standard errors, and the configuration folded away
in ``<details>``. A page of several runs (the demo) puts them in the lectures' order
(``LECTURE_ORDER``), lists them in a table of contents and shows every family's samples side
by side in a gallery.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training.logging import METRICS_NAME, read_records
from . import viz
from .rundir import evaluation_is_stale

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1180px; padding: 0 1em; color: #222; line-height: 1.45; font-size: 17px; }
h1 { border-bottom: 2px solid #345; padding-bottom: .2em; margin-bottom: .3em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; }
h3 { margin: 1.4em 0 .4em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 92%; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { display: inline-block; margin: .5em 1.2em 1em 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; image-rendering: pixelated; }
figure img.plot { image-rendering: auto; }
figcaption { font-size: 88%; color: #444; max-width: 640px; }
.note { background: #fff7e0; border-left: 4px solid #e0a000; padding: .5em 1em; }
.headline { font-size: 115%; background: #eef4fa; border-left: 4px solid #345;
            padding: .5em 1em; margin: .6em 0; }
nav.toc { background: #f7f7f7; border: 1px solid #ddd; padding: .4em 1em; margin: .8em 0; }
nav.toc ol { columns: 5 9em; margin: .3em 0; padding-left: 0; list-style-position: inside; }
nav.toc li { margin: .1em 0; break-inside: avoid; }
nav.toc.parts ol { columns: auto; }
nav.toc.parts li { display: inline; margin-right: 1.2em; }
details { margin: .6em 0 1em; }
details > summary { cursor: pointer; font-weight: 600; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
           gap: 1em; margin: .8em 0 1.5em; }
.gallery figure { margin: 0; display: block; }
.gallery img { width: 100%; }
.gallery figcaption { font-size: 85%; }
.top { font-size: 80%; font-weight: normal; margin-left: .6em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""

#: The order of the families on a page of several runs: the lectures' order (Hopfield networks,
#: Boltzmann machines, RBMs, deep belief nets and DBMs, autoencoders, neural EBMs, then the
#: linear-Gaussian models, VAEs, flows, autoregressive models, GANs), the baselines last; a
#: family not named here goes after the named models, before the baselines.
LECTURE_ORDER = (
    "hopfield",
    "bm",
    "rbm",
    "grbm",
    "dbn",
    "dbm",
    "autoencoder",
    "ebm",
    "pca",
    "ppca",
    "fa",
    "vae",
    "realnvp",
    "pixelcnn",
    "pixelrnn",
    "diffusion",
    "gan",
    "cgan",
    "cyclegan",
)
BASELINES = ("independent", "gaussian")
#: The metric that holds the independent-pixel baseline of a run's test log-likelihood (its
#: standard error, if recorded, under the same name with ``_se``).
BASELINE_KEY = "independent_pixels_test_log_likelihood"


def lecture_rank(family: str) -> tuple[int, str]:
    """Sort key of a family on a page of several runs (see ``LECTURE_ORDER``)."""
    if family in LECTURE_ORDER:
        return LECTURE_ORDER.index(family), ""
    if family in BASELINES:
        return len(LECTURE_ORDER) + 1 + BASELINES.index(family), ""
    return len(LECTURE_ORDER), family


@dataclass
class Section:
    """One run in a report: its title, configuration, metrics, metric history and figures.

    ``baseline`` is the independent-pixel baseline's test log-likelihood (mean, standard error
    or None) on the same data, where known (``section_from_run`` reads it from the run's
    metrics, ``BASELINE_KEY``; ``write_report`` takes it from an ``independent`` run on the same
    data in the same report). ``gallery`` is the picture of the run's samples for a
    page of several runs, ``gallery_data`` the data shown beside them.
    """

    title: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: list[tuple[Path, str, str]] = field(default_factory=list)  # (png, title, caption)
    notes: list[str] = field(default_factory=list)
    baseline: tuple[float, float | None] | None = None
    gallery: tuple[Path, str] | None = None  # (png, what it shows)
    gallery_data: Path | None = None

    @property
    def family(self) -> str:
        """The family's name (``config["model"]``), "" when the configuration does not say."""
        return str(self.config.get("model", ""))


def _img(path: Path, alt: str | None = None, css_class: str | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    extra = f' class="{css_class}"' if css_class else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or path.name)}"{extra}>'


# ----- numbers and names ------------------------------------------------------------------------
def format_number(value: float, se: float | None = None) -> str:
    """``value`` (and ``± se``) rounded for reading: with a standard error, both to the decimal
    place of the error's second significant digit (at most 4 decimals); otherwise whole numbers
    as they are, and other values to about 4 significant digits (2 decimals from 1 to 1000)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not math.isfinite(value):
        return str(value)
    if se is not None and math.isfinite(se) and se > 0:
        decimals = min(4, max(0, 1 - math.floor(math.log10(se))))
        return f"{value:.{decimals}f} ± {se:.{decimals}f}"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:.2f}"
    if size >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.2e}"


#: Readable names of metrics (keys of eval.json); ``metric_label`` spells out the others.
METRIC_NAMES = {
    "test_log_likelihood": "test log-likelihood",
    "train_log_likelihood": "training log-likelihood",
    "log_likelihood_method": "log-likelihood obtained by",
    "train_seconds": "training time",
    "eval_seconds": "evaluation time",
    "ais_seconds": "AIS time",
    "ais_betas": "AIS inverse temperatures",
    "ais_runs": "AIS runs",
    "ais_ess": "AIS effective sample size (of the runs)",
    "reverse_ais_ess": "reverse-AIS effective sample size",
    "log_z": "log Z (AIS)",
    "log_z_exact": "log Z (exact, by enumeration)",
    "log_z_grid": "log Z (on the grid)",
    "kl": "KL(p_data || p_model)",
    "test_pseudo_log_likelihood_per_feature": "test pseudo-log-likelihood per pixel",
    "test_reconstruction_error": "test reconstruction error",
    "train_reconstruction_error": "training reconstruction error",
    "test_accuracy": "test classification accuracy",
    "test_elbo": "test ELBO",
    "test_kl": "test KL(q(z | x) || p(z))",
    "test_reconstruction": "test E_q[log p(x | z)]",
    "test_cross_entropy": "test cross-entropy of the reconstructions",
    "test_bits_per_dim": "test bits per dimension",
    "test_frechet_distance": "Frechet digit distance to the test images",
    "inpaint_mse": "inpainting error (mean squared, bottom half)",
    "flip_recall_fraction": "recalled exactly from 20% flipped pixels",
    "half_recall_fraction": "recalled exactly from the top half",
    "fixed_point_fraction": "stored images that are fixed points",
    "test_recalls_a_stored_pattern": "test images recalled to a stored image",
    "active_units": "active latent units",
}
_TOKENS = {
    "ais": "AIS",
    "kl": "KL",
    "elbo": "ELBO",
    "iwae": "IWAE",
    "ess": "ESS",
    "mse": "MSE",
    "jsd": "JSD",
    "rbm": "RBM",
    "mc": "Monte Carlo",
    "se": "standard error",
    "train": "training",
    "n": "number of",
    "frechet": "Frechet",
}
_PHRASES = (
    ("pseudo_log_likelihood", "pseudo-log-likelihood"),
    ("log_likelihood", "log-likelihood"),
    ("log_z", "log Z"),
    ("per_feature", "per pixel"),
    ("reverse_ais", "reverse-AIS"),
    ("bits_per_dim", "bits per dimension"),
    ("r1_", "R1 "),
)


def _words(key: str) -> str:
    text = key
    for phrase, words in _PHRASES:
        text = text.replace(phrase, words)
    out = []
    for token in text.split("_"):
        match = re.fullmatch(r"([a-z]+)(\d+)", token)
        if match:  # pca2 -> PCA-2, is10 -> IS-10, iw20 -> IW-20
            token = f"{match.group(1).upper()}-{match.group(2)}"
        out.append(_TOKENS.get(token, token))
    return " ".join(out)


def metric_label(key: str) -> str:
    """A readable name for metric ``key``: ``METRIC_NAMES``, or the longest name there that
    ``key`` starts with and the rest in parentheses ("test_log_likelihood_ais" -> "Test
    log-likelihood (AIS)"), or the key spelled out word by word ("pca2_reconstruction_error"
    -> "PCA-2 reconstruction error"); the first letter is a capital."""
    if key in METRIC_NAMES:
        label = METRIC_NAMES[key]
    else:
        bases = [k for k in METRIC_NAMES if key.startswith(k + "_")]
        if bases:
            base = max(bases, key=len)
            label = f"{METRIC_NAMES[base]} ({_words(key[len(base) + 1 :])})"
        else:
            label = _words(key)
    return label[:1].upper() + label[1:]


def metric_unit(key: str, per: str = "image") -> str:
    """The unit of metric ``key`` ("" when it has none or the report does not know it);
    ``per``: what one example is ("image", or "point" for 2-D data)."""
    if key.endswith("seconds"):
        return "s"
    if "bits_per_dim" in key:
        return "bits per dimension"
    if "pseudo_log_likelihood" in key:
        return "nats per pixel" if key.endswith("per_feature") else f"nats per {per}"
    if key.startswith("log_z") or "_log_z" in key or key == "kl" or key.startswith("kl_"):
        return "nats"
    if "log_likelihood" in key and not key.endswith(("method", "note")):
        return f"nats per {per}"
    if key in ("test_elbo", "test_kl", "test_reconstruction", "test_cross_entropy"):
        return f"nats per {per}"
    if "reconstruction_error" in key and not key.endswith(("note", "definition")):
        return f"squared error per {per}"
    return ""


def _is_note(key: str, value: Any) -> bool:
    return isinstance(value, str) and (
        key.endswith(("note", "definition", "warning"))
        or key in ("note", "likelihood")
        or len(value) > 60
    )


def _value_html(value: Any, se: Any = None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return html.escape(format_number(value, se if isinstance(se, int | float) else None))
    if isinstance(value, dict):
        return ", ".join(f"{html.escape(str(k))}: {_value_html(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_value_html(v) for v in value)
    return html.escape(str(value))


def headline(section: Section) -> str:
    """One line of HTML with the run's main score: the test log-likelihood (with how it was
    obtained, and the baseline beside it), or the first of its other main scores."""
    m = section.metrics
    per = _per(section)
    ll = m.get("test_log_likelihood")
    if isinstance(ll, int | float):
        method = m.get("log_likelihood_method")
        text = (
            f"Test log-likelihood <b>{_value_html(ll, m.get('test_log_likelihood_se'))}</b> "
            f"nats per {per}" + (f" ({html.escape(str(method))})" if method else "")
        )
        if section.baseline is not None:
            base, base_se = section.baseline
            text += (
                f"; independent-pixel baseline {_value_html(base, base_se)}: "
                f"<b>{ll - base:+.2f} nats</b> {'better' if ll >= base else 'worse'}"
            )
        return text
    scores = [k for k in HEADLINE_KEYS if isinstance(m.get(k), int | float)][:2]
    return "; ".join(
        f"{html.escape(metric_label(k))} <b>{_value_html(m[k], m.get(k + '_se'))}</b>"
        + (f" {html.escape(metric_unit(k, per))}" if metric_unit(k, per) else "")
        for k in scores
    )


#: Scores a run without a log-likelihood is headed by (the first two it has).
HEADLINE_KEYS = (
    "kl",
    "test_frechet_distance",
    "test_accuracy",
    "flip_recall_fraction",
    "half_recall_fraction",
    "inpaint_mse",
    "test_reconstruction_error",
)


def _per(section: Section) -> str:
    return "image" if section.config.get("image_shape") or not section.config else "point"


def metrics_table(section: Section) -> str:
    """The metrics as an HTML table (readable names, rounded values with their standard errors,
    units; the baseline beside the test log-likelihood) and the notes under it."""
    m, per = section.metrics, _per(section)
    rows, notes = [], []
    for key, value in m.items():
        if (key.endswith("_se") and key[:-3] in m) or key.startswith(BASELINE_KEY):
            continue  # shown with its value; the baseline beside the log-likelihood
        if _is_note(key, value) or (isinstance(value, list) and key.endswith("warnings")):
            notes.append(f"<li><b>{html.escape(metric_label(key))}:</b> {_value_html(value)}</li>")
            continue
        unit = metric_unit(key, per)
        cell = "num" if isinstance(value, int | float) else "text"
        rows.append(
            f"<tr><th title='{html.escape(key)} in eval.json'>{html.escape(metric_label(key))}"
            f"</th><td class='{cell}'>"
            f"{_value_html(value, m.get(key + '_se'))}</td><td>{html.escape(unit)}</td></tr>"
        )
        if key == "test_log_likelihood" and section.baseline is not None:
            base, base_se = section.baseline
            diff = value - base if isinstance(value, int | float) else None
            rows.append(
                "<tr><th>Independent-pixel baseline (same data)</th><td class='num'>"
                f"{_value_html(base, base_se)}</td><td>nats per {per}"
                + (f"; this model {diff:+.2f}" if diff is not None else "")
                + "</td></tr>"
            )
    table = (
        "<table><tr><th>quantity</th><th>value</th><th>unit</th></tr>" + "".join(rows) + "</table>"
    )
    return table + (f"<ul class='notes'>{''.join(notes)}</ul>" if notes else "")


def _config_table(config: dict[str, Any]) -> str:
    rows = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            cell = _config_table(value)
        elif isinstance(value, list | dict):
            cell = html.escape(json.dumps(value))
        else:
            cell = html.escape(str(value))
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{cell}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_NAME
    if not path.exists():
        return []
    return [record for record, _ in read_records(path)]  # a line torn by a kill is dropped


def section_from_run(run_dir: str | os.PathLike[str], title: str | None = None) -> Section:
    """Collect a run directory's config.json, eval.json, metrics.jsonl and figures.json."""
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    metrics = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
    stale = bool(metrics) and evaluation_is_stale(run, metrics)
    if stale:  # eval.json scored the checkpoint before a --resume
        metrics = {}
    figures: list[tuple[Path, str, str]] = []
    if (run / "figures.json").exists():
        for entry in json.loads((run / "figures.json").read_text()):
            path = run / entry["path"]
            if not path.exists():  # manifests written with paths relative to another folder
                path = run / Path(entry["path"]).name
            if path.exists():
                figures.append((path, entry.get("title", path.stem), entry.get("caption", "")))
    else:
        gallery_files = (viz.GALLERY_SAMPLES, viz.GALLERY_DATA)
        figures = [
            (p, p.stem, "") for p in sorted(run.glob("*.png")) if p.name not in gallery_files
        ]
    name = title or f"{config.get('model', run.name)} on {config.get('data', '?')}"
    section = Section(title=name, config=config, metrics=metrics, history=read_history(run))
    section.figures = figures
    base = metrics.get(BASELINE_KEY)
    if isinstance(base, int | float):
        se = metrics.get(BASELINE_KEY + "_se")
        section.baseline = (float(base), float(se) if isinstance(se, int | float) else None)
    section.gallery = _gallery_picture(run, figures)
    if (run / viz.GALLERY_DATA).exists():
        section.gallery_data = run / viz.GALLERY_DATA
    if stale:
        section.notes.append(
            "The run trained on after its last evaluation, so its scores are not shown: "
            f"`ebmlab eval {run}` scores the current checkpoint."
        )
    diverged = [r for r in section.history if r.get("kind") == "diverged"]
    if diverged:
        section.notes.append(
            f"Training stopped: {diverged[-1]['message']} The checkpoint is the last good one."
        )
    return section


def _gallery_picture(run: Path, figures: list[tuple[Path, str, str]]) -> tuple[Path, str] | None:
    """The run's samples alone (``viz.GALLERY_SAMPLES``), else its samples or density figure,
    else its first figure (e.g. a Hopfield network's completions), with what it shows."""
    if (run / viz.GALLERY_SAMPLES).exists():
        return run / viz.GALLERY_SAMPLES, "samples"
    for path, fig_title, _ in figures:
        if path.stem in ("samples", "density", "landscape") or "sample" in fig_title.lower():
            return path, fig_title.lower()
    if figures:
        return figures[0][0], f"{figures[0][1].lower()} (no samples)"
    return None


# ----- training curves --------------------------------------------------------------------------
#: What the loop records besides the loss, by key: (name, unit, whether it shows how training
#: goes); keys not here and not in ``_SKIPPED`` are plotted under their own names.
CURVE_QUANTITIES: dict[str, tuple[str, str, bool]] = {
    "elbo": ("ELBO on the training minibatches", "nats per image", True),
    "iwae": ("IWAE bound on the training minibatches", "nats per image", True),
    "kl": ("KL(q(z | x) || p(z))", "nats per image", True),
    "reconstruction": ("E_q[log p(x | z)]", "nats per image", True),
    "reconstruction_error": ("reconstruction error", "squared error per image", True),
    "squared_error": ("reconstruction error", "squared error per image", True),
    "bits_per_dim": ("training bits per dimension (dequantized)", "bits per dimension", True),
    "jsd_lower_bound": ("Jensen-Shannon divergence, lower bound from D", "nats", True),
    "d_real": ("mean D(x) on the data", "probability", True),
    "d_fake": ("mean D(G(z)) on the samples", "probability", True),
    "d_loss": ("discriminator loss", "nats", True),
    "g_loss": ("generator loss", "nats", True),
    "accuracy": ("accuracy telling data from noise", "fraction", True),
    "log_z": ("learned log Z", "nats", True),
    "flow_nll": ("noise flow's negative log-likelihood", "nats per point", True),
    "energy_data": ("mean energy of the data", "energy", True),
    "energy_samples": ("mean energy of the Langevin samples", "energy", True),
    "contrast": ("E(data) - E(samples)", "energy", False),
    "score_norm": ("mean squared norm of the model's score", "", False),
    "hessian_trace": ("mean trace of the score's Jacobian", "", False),
    "sigma": ("noise level sigma", "", False),
    "beta": ("KL weight beta (warm-up)", "", False),
    "r1_penalty": ("R1 penalty", "", False),
    "grad_norm": ("gradient norm", "", False),
}
_SKIPPED = ("kind", "step", "epoch", "seconds", "stage", "lr", "cumulative_epoch")

#: Free-energy gap F(data) - F(negatives) of an RBM's contrastive divergence: the surrogate
#: whose gradient is CD's.
_FREE_ENERGY_GAP = ("CD surrogate (not a likelihood)", "nats", False)

#: What the per-epoch monitors of the Boltzmann families record (``eval_<quantity>_<split>``
#: entries of the epoch records; ``ebmlab.app.families.rbm.rbm_monitor``): (name, unit with
#: ``{per}`` for what one example is).
MONITOR_QUANTITIES: dict[str, tuple[str, str]] = {
    "pseudo_log_likelihood": ("pseudo-log-likelihood", "nats per {per}"),
    "mean_field_reconstruction_error": (
        "mean-field reconstruction error",
        "squared error per {per}",
    ),
    "reconstruction_error": ("reconstruction error", "squared error per {per}"),
}
#: The monitored subsets, as the legends name them.
MONITOR_SPLITS = {"train": "training", "heldout": "held-out"}


def describe_monitor(
    key: str, stage: str | None = None, per: str = "image"
) -> tuple[str, str, str] | None:
    """What an epoch record's monitor entry ``key`` ("eval_pseudo_log_likelihood_heldout") is:
    (name, unit, the subset's name), or None for another key. ``per`` is what one example of the
    data is; a stage "layerK" or "pretrainK" with K >= 2 sees the states of hidden layer K - 1."""
    if not key.startswith("eval_"):
        return None
    for split, split_name in MONITOR_SPLITS.items():
        quantity = key[len("eval_") :].removesuffix(f"_{split}")
        if quantity != key[len("eval_") :] and quantity in MONITOR_QUANTITIES:
            name, unit = MONITOR_QUANTITIES[quantity]
            match = re.fullmatch(r"(?:layer|pretrain)(\d+)", stage or "")
            if match and int(match.group(1)) > 1:
                per = f"h{int(match.group(1)) - 1} state"
            return name, unit.format(per=per), split_name
    return None


def describe_curve(
    family: str, key: str, stage: str | None = None, options: dict[str, Any] | None = None
) -> tuple[str, str, bool] | None:
    """What the loop's record ``key`` of a ``family`` run (in ``stage``, with family
    ``options``) is: (name, unit, whether it shows how training goes), or None for what is not
    plotted (the learning rate, the clock).

    The "loss" is the objective's value: a likelihood or a bound for the likelihood-trained
    families, but for contrastive divergence (RBMs, the layers of DBNs and pretraining) and the
    Boltzmann machines' learning rules a difference of (free) energies between the data and
    the chains, whose gradient is the learning signal and whose value says little about
    progress."""
    if key in _SKIPPED:
        return None
    if key != "loss":
        return CURVE_QUANTITIES.get(key, (key.replace("_", " "), "", True))
    options = options or {}
    stage = stage or ""
    if stage.startswith(("pretrain", "layer")) or family in ("rbm", "grbm", "dbn"):
        return _FREE_ENERGY_GAP
    if family == "bm":
        return ("learning-rule surrogate (not a likelihood)", "energy", False)
    if family == "dbm":
        return ("learning-rule surrogate (not a likelihood)", "energy", False)
    if family == "autoencoder":
        name = "squared error" if options.get("loss") == "squared_error" else "cross-entropy"
        return (f"reconstruction {name} (training)", "per image", True)
    if family == "vae":
        bound = str(options.get("bound", "elbo")).upper()
        return (f"-{bound} (training; the KL weighted by beta)", "nats per image", True)
    if family in ("pixelcnn", "pixelrnn", "realnvp", "gaussian"):
        return ("training negative log-likelihood", "nats per example", True)
    if family in ("gan", "cgan", "cyclegan"):
        return ("sum of the players' losses", "nats", False)
    if family == "ebm":
        objective = str(options.get("objective", ""))
        if objective == "cd":
            return ("E(data) - E(samples) + energy penalty", "energy", False)
        if objective in ("nce", "fce"):
            return ("logistic loss telling data from noise", "nats", True)
        return (f"{objective.upper() or 'training'} score-matching loss", "", True)
    return ("training loss (the objective's value)", "", True)


def _curve_records(
    section: Section,
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, bool]], list[tuple[float, str]]]:
    """The epoch records (step records when there is one epoch) keyed by what they measure, on
    one epoch axis across the stages: (records, {name: (unit, shows progress)}, where each stage
    after the first starts)."""
    epochs = [r for r in section.history if r.get("kind") == "epoch"]
    if len({r.get("stage") for r in epochs}) == 1 and len(epochs) < 2:
        epochs = [dict(r, epoch=r["step"]) for r in section.history if r.get("kind") == "step"]
        if len(epochs) < 2:
            return [], {}, []
    options = section.config.get("options") or {}
    staged = len({r.get("stage") for r in epochs}) > 1
    per = _per(section)
    offsets: dict[Any, float] = {}
    starts: list[tuple[float, str]] = []
    shift, last = 0.0, 0.0
    records: list[dict[str, Any]] = []
    quantities: dict[str, tuple[str, bool]] = {}
    for r in epochs:
        stage = r.get("stage")
        if stage not in offsets:
            offsets[stage] = shift = last
            if stage is not None and len(offsets) > 1:
                starts.append((shift, str(stage)))
        x = offsets[stage] + float(r.get("epoch", 0))
        last = max(last, x)
        record: dict[str, Any] = {"epoch": x, "stage": stage}
        # a monitor's subsets are records of their own ("split"): one line each on one panel
        by_split: dict[str, dict[str, Any]] = {}
        for key, value in r.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            monitored = describe_monitor(key, stage, per)
            if monitored is not None:
                name, unit, split = monitored
                name = f"{stage}: {name}" if staged else name  # each stage's own scale
                by_split.setdefault(split, {"epoch": x, "stage": stage, "split": split})[name] = (
                    value
                )
                quantities[name] = (unit, True)
                continue
            described = describe_curve(section.family, key, stage, options)
            if described is None:
                continue
            name, unit, useful = described
            record[name] = value
            quantities[name] = (unit, useful)
        records.append(record)
        records.extend(by_split.values())
    return records, quantities, starts


#: Most panels of a run's training curves.
MAX_CURVES = 6


def _curves(section: Section, work_dir: Path, index: int) -> str:
    """The run's training curves as an HTML figure ("" without two records to draw)."""
    records, quantities, starts = _curve_records(section)
    if not records:
        return ""
    # what shows progress first, then the rest (a surrogate loss, a penalty)
    names = sorted(quantities, key=lambda n: not quantities[n][1])[:MAX_CURVES]
    path = viz.plot_curves(
        records,
        names,
        work_dir / f".curves_{index}.png",
        units={n: quantities[n][0] for n in names},
        xlabel="epoch" + (" (the stages one after another)" if starts else ""),
        group_key="stage" if starts else None,
        boundaries=starts,
        series_key="split",
    )
    monitored = any("split" in r for r in records)
    caption = "Means over each epoch's minibatches of what the training loop records."
    if monitored:
        caption = (
            "After every epoch, measured on fixed subsets of the training data and of the "
            "held-out (test) data, the same examples at every epoch: the pseudo-log-likelihood "
            "sum_i log p(v_i | v_-i) (where a layer is too large to score every bit, e.g. on "
            "MNIST, the unbiased estimate from a few random bits per example, the same bits at "
            "every epoch: smooth curves whose levels are good to a few nats), the "
            "reconstruction error and the like, training and held-out on the same axes (a "
            "growing gap is overfitting). The other panels are "
            "means over each epoch's minibatches of what the training loop records; the "
            "surrogate, a gap of (free) energies between the data and the sampling chains "
            "(F(data) - F(negatives) for contrastive divergence) whose gradient is the learning "
            "signal, is not a log-likelihood and does not show progress."
        )
    if starts:
        stages = [str(records[0]["stage"]), *(name for _, name in starts)]
        caption += f" Stages, in order: {', '.join(stages)}."
        upper = {r["stage"] for r in records if "split" in r} - {records[0]["stage"]}
        if any(re.fullmatch(r"(?:layer|pretrain)\d+", str(stage)) for stage in upper):
            caption += (
                " A stage that trains a layer above the first is measured on the states of the "
                "layer below (its own training data), the held-out images passed up to it."
            )
    if not any(useful for _, useful in quantities.values()):
        caption += (
            " This family's loop records only the surrogate whose gradient is the learning "
            "signal, a difference of (free) energies between the data and the sampling chains: "
            "it is not a log-likelihood and it does not show progress (it stays near zero while "
            "the chains follow the model). Progress is measured by the evaluation: see the "
            "metrics."
        )
    out = (
        f"<figure>{_img(path, 'training curves', 'plot')}<figcaption>{html.escape(caption)}"
        "</figcaption></figure>"
    )
    path.unlink(missing_ok=True)
    return out


def write_report(
    sections: Sequence[Section],
    path: str | os.PathLike[str],
    title: str = "ebmlab report",
    intro: str = "",
) -> Path:
    """Write one self-contained HTML page with every section; returns its path.

    Several sections (the demo) are put in the lectures' order (``lecture_rank``), listed in a
    table of contents with their headline scores and shown side by side in a gallery of their
    samples; a section without a baseline takes the test log-likelihood of an ``independent``
    run on the same data and binarization in ``sections``. One section gets a table of contents
    of its own parts."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(sections, key=lambda s: lecture_rank(s.family))
    _share_baselines(ordered)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1 id='top'>{html.escape(title)}</h1>"
    ]
    several = len(ordered) > 1
    if several:
        parts.append(_contents(ordered))
    if intro:
        parts.append(f"<p>{intro}</p>")
    if several:
        parts.append(_gallery(ordered))
    for i, section in enumerate(ordered):
        parts.append(_section_html(section, i, target.parent, several, title))
    parts.append("</body></html>")
    target.write_text("\n".join(parts))
    return target


def _share_baselines(sections: Sequence[Section]) -> None:
    """Give each section whose log-likelihood is comparable the test log-likelihood of an
    ``independent`` run on the same data and binarization, when there is one."""
    baselines = {}
    for s in sections:
        ll = s.metrics.get("test_log_likelihood")
        if s.family == "independent" and isinstance(ll, int | float):
            key = (s.config.get("data"), s.config.get("binarize"))
            se = s.metrics.get("test_log_likelihood_se")
            baselines[key] = (float(ll), float(se) if isinstance(se, int | float) else None)
    for s in sections:
        key = (s.config.get("data"), s.config.get("binarize"))
        if s.baseline is None and s.family != "independent" and key in baselines:
            if isinstance(s.metrics.get("test_log_likelihood"), int | float):
                s.baseline = baselines[key]


def _contents(sections: Sequence[Section]) -> str:
    items = "".join(
        f"<li><a href='#s{i}' title='{html.escape(s.title)}'>{html.escape(s.family or s.title)}"
        "</a></li>"
        for i, s in enumerate(sections)
    )
    return (
        "<nav class='toc'><b>Contents</b>: <a href='#gallery'>samples of every family, side by "
        f"side</a>; the families in the lectures' order:<ol>{items}</ol></nav>"
    )


def _gallery(sections: Sequence[Section]) -> str:
    tiles = []
    # the data as most families see them: the baseline's, else the first run's that has them
    with_data = [s for s in sections if s.gallery_data is not None]
    data = next(
        (s for s in with_data if s.family in BASELINES), with_data[0] if with_data else None
    )
    if data is not None and data.gallery_data is not None:
        name = html.escape(str(data.config.get("data", "")))
        tiles.append(
            f"<figure>{_img(data.gallery_data, 'test data')}"
            f"<figcaption><b>the data</b>: test images of {name}</figcaption></figure>"
        )
    for i, s in enumerate(sections):
        if s.gallery is None:
            continue
        png, what = s.gallery
        tiles.append(
            f"<figure><a href='#s{i}'>{_img(png, f'{s.family}: {what}')}</a>"
            f"<figcaption><b>{html.escape(s.family or s.title)}</b>: {html.escape(what)}"
            "</figcaption></figure>"
        )
    return (
        "<h2 id='gallery'>Samples of every family, side by side</h2>"
        "<p>Each family's samples as its section shows them (click one to go there); the "
        "sections show them beside the data.</p>"
        f"<div class='gallery'>{''.join(tiles)}</div>"
    )


def _section_html(
    section: Section, i: int, work_dir: Path, several: bool, page_title: str = ""
) -> str:
    anchor = f"s{i}"
    if several or section.title not in page_title:
        parts = [
            f"<h2 id='{anchor}'>{html.escape(section.title)}"
            + ("<a class='top' href='#top'>contents</a>" if several else "")
            + "</h2>"
        ]
    else:  # the page's title names the run already
        parts = [f"<div id='{anchor}'></div>"]
    line = headline(section)
    if line:
        parts.append(f"<p class='headline'>{line}</p>")
    for note in section.notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    curves = _curves(section, work_dir, i)
    contents = [
        (f"{anchor}-f{j}", fig_title) for j, (_, fig_title, _) in enumerate(section.figures)
    ]
    if curves:
        contents.append((f"{anchor}-curves", "Training curves"))
    if section.metrics:
        contents.append((f"{anchor}-metrics", "Metrics"))
    if section.config:
        contents.append((f"{anchor}-config", "Configuration"))
    links = [f"<a href='#{target}'>{html.escape(name)}</a>" for target, name in contents]
    if not several:
        items = "".join(f"<li>{link}</li>" for link in links)
        parts.append(f"<nav class='toc parts'><b>Contents</b><ol>{items}</ol></nav>")
    elif links:
        parts.append(f"<p class='parts'>{' &middot; '.join(links)}</p>")
    for j, (png, fig_title, caption) in enumerate(section.figures):
        parts.append(
            f"<figure id='{anchor}-f{j}'>{_img(png, fig_title)}<figcaption>"
            f"<b>{html.escape(fig_title)}.</b> {html.escape(caption)}</figcaption></figure>"
        )
    if curves:
        parts.append(f"<h3 id='{anchor}-curves'>Training curves</h3>{curves}")
    if section.metrics:
        parts.append(f"<h3 id='{anchor}-metrics'>Metrics</h3>{metrics_table(section)}")
    if section.config:
        parts.append(
            f"<details id='{anchor}-config'><summary>Configuration (config.json)</summary>"
            f"{_config_table(section.config)}</details>"
        )
    return "\n".join(parts)
