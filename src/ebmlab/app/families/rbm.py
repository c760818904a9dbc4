"""Recipes for Boltzmann machines: ``rbm`` (Bernoulli RBM), ``grbm`` (Gaussian-Bernoulli RBM) and
``bm`` (general Boltzmann machine with label units).

``rbm`` defaults are the MNIST recipe: 500 hidden units, PCD-1 with 100 persistent chains and a
centered gradient (Melchior et al. 2016), SGD (lr 0.01, momentum 0.5 then 0.9) with a learning
rate decaying linearly to 0, weight decay 2e-4 on W, visible biases from the data marginals; it
reaches -87.0 nats on MNIST in 100 epochs (docs/families/boltzmann.md). Evaluation is AIS with the
protocol of Salakhutdinov & Murray (2008): 14,500 inverse temperatures, 100 runs, the base-rate
model of the training data;
the reverse-AIS estimate (Burda et al. 2015) from 100 long Gibbs chains gives the other side of
the bracket, and with at most 20 hidden (or visible) units the exact value by enumeration is
reported as well and becomes ``test_log_likelihood``.

While they train, ``rbm`` and ``grbm`` record after every epoch what the CD surrogate cannot show
(``rbm_monitor``, the loop's ``epoch_callback``): the pseudo-log-likelihood (``rbm``) and the
reconstruction error of fixed subsets of the training and held-out data, as ``eval_*`` entries
of ``metrics.jsonl`` that the report draws; the DBN's layers and the DBM use the same subsets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch.nn import functional as F

from ... import estimators
from ...models.boltzmann import BoltzmannMachine
from ...models.gaussian_rbm import GaussianBernoulliRBM
from ...models.rbm import BernoulliRBM
from ...objectives.boltzmann import BoltzmannLearning
from ...objectives.contrastive import ContrastiveDivergence
from ...samplers import bernoulli_draw
from ...stats import mean_and_se
from ...training import Stage, TrainConfig
from ...training.loop import EpochCallback
from ...validation import Integral
from .. import viz
from ..recipes import (
    Context,
    Figure,
    Option,
    Preset,
    Recipe,
    ais_bracket_metrics,
    register,
    top_half_known,
)

#: Largest layer enumerated for the exact log-likelihood reported beside AIS.
EXACT_MAX_UNITS = 20


# ----- per-epoch monitors ------------------------------------------------------------------------
#: Splits a monitor scores after every epoch: a fixed subset of the training data and one of the
#: held-out (test) data, the same rows at every epoch.
MONITOR_SPLITS = ("train", "heldout")
#: Examples per split: a twentieth of the training set, within the bounds (500 on MNIST, 100 on
#: the 8 x 8 digits, whose epochs are so short that every scored image counts).
MONITOR_TRAIN_FRACTION = 20
MONITOR_MIN_EXAMPLES = 100
MONITOR_MAX_EXAMPLES = 500
#: Flipped bits x hidden units the pseudo-log-likelihood of a split may cost: every bit of every
#: example when that fits (8 x 8 digits), else as many random bits per example as fit (20 for a
#: 784-500 RBM on 500 MNIST images: a few percent of an epoch, where every bit would cost a
#: sixth of it).
MONITOR_ELEMENTS = 5_000_000
#: Seed of the monitored rows and of the one binary draw of non-binary data (see
#: ``binary_once``): every epoch scores the same examples.
MONITOR_SEED = 1234
#: Seed of the random bits of the pseudo-log-likelihood estimate, the same at every epoch. It
#: must differ from ``MONITOR_SEED``: the same uniforms that drew the binary states would pick
#: the bits (the k smallest of them), i.e. the bits most surely on, and bias the estimate.
MONITOR_BITS_SEED = 4321


def monitor_size(n_train: int) -> int:
    """Examples per split for a layer trained on ``n_train`` examples."""
    fit = n_train // MONITOR_TRAIN_FRACTION
    return max(min(MONITOR_MIN_EXAMPLES, n_train), min(MONITOR_MAX_EXAMPLES, fit))


def monitor_bits(n: int, n_visible: int, n_hidden: int) -> int | None:
    """Random bits per example of the monitor's pseudo-log-likelihood (None: every bit) for
    ``n`` examples of an RBM of ``n_visible`` x ``n_hidden`` units (see ``MONITOR_ELEMENTS``)."""
    if n * n_visible * n_hidden <= MONITOR_ELEMENTS:
        return None
    return max(1, min(n_visible, MONITOR_ELEMENTS // max(n * n_hidden, 1)))


def monitor_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` rows of ``x`` drawn once without replacement (seed ``MONITOR_SEED``), all of them
    when it has fewer: the same rows at every epoch, and for every layer of a stack."""
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(MONITOR_SEED))
    return x[order[:n].to(x.device)]


def binary_once(x: torch.Tensor) -> torch.Tensor:
    """``x`` when it is binary, else one Bernoulli draw of it (probabilities: the activities of a
    layer below), drawn once with ``MONITOR_SEED`` so that every epoch scores the same states."""
    if bool(((x == 0) | (x == 1)).all()):
        return x
    generator = torch.Generator(device=x.device).manual_seed(MONITOR_SEED)
    return bernoulli_draw(x, generator)


def heldout_rows(ctx: Context, n: int) -> torch.Tensor | None:
    """``n`` fixed rows (``monitor_rows``) of the run's held-out (test) data, on its device;
    None when the context carries none (the monitors then score the training subset only)."""
    if ctx.x_test is None:
        return None
    return monitor_rows(ctx.x_test.to(ctx.device), n)


def monitor_data(ctx: Context, x_train: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """The fixed subsets a monitor scores: ``n`` rows of ``x_train`` ("train") and of the run's
    held-out (test) data ("heldout", where the context has them), on the run's device."""
    subsets = {"train": monitor_rows(x_train.to(ctx.device), n)}
    held = heldout_rows(ctx, n)
    if held is not None:
        subsets["heldout"] = held
    return subsets


def rbm_monitor(
    subsets: dict[str, torch.Tensor], n_hidden: int, pseudo_likelihood: bool = True
) -> EpochCallback:
    """The epoch callback of an RBM with ``n_hidden`` hidden units (``training.train``'s
    ``epoch_callback``): for each split of ``subsets`` (fixed rows, see ``monitor_data``) the
    mean pseudo-log-likelihood sum_i log p(v_i | v_-i) in nats per example
    (``estimators.pseudo_log_likelihood`` from the RBM's own conditionals: every bit, or the
    unbiased estimate from ``monitor_bits`` random bits per example, the same at every epoch;
    non-binary rows are scored at one fixed binary draw, see ``binary_once``) and the mean
    reconstruction error ||p(v | h = p(h | v)) - v||^2 (the model's ``reconstruction_error``).
    Logged as ``eval_pseudo_log_likelihood_train``, ...; ``pseudo_likelihood=False`` (a Gaussian
    RBM) records the reconstruction error only. The splits are scored in one batch (their rows
    one after another), the random bits drawn once for all of them."""
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for split, x in subsets.items():
        spans[split] = (start, start + x.shape[0])
        start += x.shape[0]
    rows = torch.cat(list(subsets.values()))
    binary = binary_once(rows) if pseudo_likelihood else None
    largest = max(stop - start for start, stop in spans.values())
    bits = monitor_bits(largest, rows.shape[1], n_hidden)

    def monitor(model: Any, epoch: int) -> dict[str, float]:
        out: dict[str, float] = {}
        with torch.no_grad():
            pll = None
            if binary is not None:
                generator = torch.Generator(device=binary.device).manual_seed(MONITOR_BITS_SEED)
                pll = estimators.pseudo_log_likelihood(model, binary, bits, generator)
            error = model.reconstruction_error(rows)
        for split, (start, stop) in spans.items():
            if pll is not None:
                out[f"pseudo_log_likelihood_{split}"] = float(pll[start:stop].mean())
            out[f"reconstruction_error_{split}"] = float(error[start:stop].mean())
        return out

    return monitor


def _stages_monitored(
    model: BernoulliRBM | GaussianBernoulliRBM,
    objective: ContrastiveDivergence,
    ctx: Context,
    config: TrainConfig,
) -> list[Stage]:
    """One stage, the loop on the training data, with the RBM's per-epoch monitor
    (``rbm_monitor``: pseudo-log-likelihood and reconstruction error of a Bernoulli RBM, the
    reconstruction error of a Gaussian one) on fixed training and held-out subsets."""
    x = ctx.train_data()
    subsets = monitor_data(ctx, x, monitor_size(x.shape[0]))
    monitor = rbm_monitor(
        subsets, model.n_hidden, pseudo_likelihood=isinstance(model, BernoulliRBM)
    )
    return [Stage("train", model, objective, x, config, epoch_callback=monitor)]


# ----- Bernoulli RBM -----------------------------------------------------------------------------
#: Gibbs sweeps from training images before reverse AIS in quick evaluations, at most.
REVERSE_SWEEPS_QUICK = 200
REVERSE_SWEEPS_OPTION = Option(
    "reverse_sweeps",
    int,
    1000,
    "Gibbs sweeps from training images before reverse AIS (quick evaluations: at most "
    f"{REVERSE_SWEEPS_QUICK})",
    evaluation=True,
    check=Integral(0),
)
#: The AIS schedule of the Boltzmann families (RBMs, DBN, DBM): Salakhutdinov & Murray's.
AIS_SCHEDULE_OPTIONS = (
    Option(
        "ais_betas",
        int,
        14500,
        "AIS inverse temperatures (Salakhutdinov & Murray: 14500)",
        evaluation=True,
    ),
    Option("ais_runs", int, 100, "AIS runs", evaluation=True),
)
AIS_OPTIONS = (*AIS_SCHEDULE_OPTIONS, REVERSE_SWEEPS_OPTION)
RBM_OPTIONS = (
    Option("hidden", int, 500, "number of hidden units"),
    Option(
        "method",
        str,
        "pcd",
        "negative phase: CD-k, persistent CD or parallel tempering",
        choices=("cd", "pcd", "pt"),
    ),
    Option("k", int, 1, "Gibbs sweeps per update"),
    Option("centering", bool, True, "centered gradient (Melchior et al. 2016)"),
    Option("n_chains", int, 100, "persistent chains (pcd, pt)", when={"method": ("pcd", "pt")}),
    Option("n_temperatures", int, 10, "parallel-tempering rungs (pt)", when={"method": ("pt",)}),
    *AIS_OPTIONS,
    Option("sample_steps", int, 5000, "Gibbs sweeps for the samples figure"),
)


def _build_rbm(x_train: torch.Tensor, ctx: Context) -> tuple[BernoulliRBM, ContrastiveDivergence]:
    o = ctx.options
    model = BernoulliRBM(x_train.shape[1], o["hidden"], seed=ctx.seed())
    objective = ContrastiveDivergence(
        k=o["k"],
        method=o["method"],
        n_chains=o["n_chains"],
        n_temperatures=o["n_temperatures"],
        centering=o["centering"],
        seed=ctx.seed(),
    )
    return model, objective


@torch.no_grad()
def model_samples(
    model: BernoulliRBM | GaussianBernoulliRBM,
    start: torch.Tensor,
    n_sweeps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """States after ``n_sweeps`` block-Gibbs sweeps from ``start``."""
    v = start
    for _ in range(n_sweeps):
        v, _ = model.gibbs_vhv(v, generator)
    return v


def _ais_metrics(
    model: BernoulliRBM | GaussianBernoulliRBM,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    ctx: Context,
    n_betas: int,
    n_runs: int,
) -> dict[str, Any]:
    """The forward/reverse AIS bracket, reverse AIS started after ``reverse_sweeps`` Gibbs sweeps
    from training images."""
    sweeps = ctx.quick_capped("reverse_sweeps", REVERSE_SWEEPS_QUICK)
    return ais_bracket_metrics(
        model,
        x_train,
        x_test,
        ctx,
        n_betas,
        n_runs,
        lambda rows: model_samples(model, rows, sweeps, ctx.generator),
    )


def _exact_metrics(
    model: BernoulliRBM | GaussianBernoulliRBM | BoltzmannMachine,
    x_test: torch.Tensor,
    log_z: float,
) -> dict[str, Any]:
    """The test log-likelihood with ``log_z`` from enumeration (method "exact")."""
    test = estimators.log_likelihood(model, x_test, log_z)
    return {
        "test_log_likelihood": test.mean,
        "test_log_likelihood_se": test.se,
        "log_likelihood_method": "exact",
    }


def _evaluate_rbm(
    model: BernoulliRBM, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    n_betas = ctx.quick_capped("ais_betas", 1000)
    metrics = _ais_metrics(model, x_train, x_test, ctx, n_betas, ctx.options["ais_runs"])
    if min(model.n_visible, model.n_hidden) <= EXACT_MAX_UNITS:
        log_z = estimators.exact_log_z(model)
        metrics = {
            **_exact_metrics(model, x_test, log_z),
            "log_z_exact": log_z,
            "test_log_likelihood_ais": metrics.pop("test_log_likelihood"),
            "test_log_likelihood_ais_se": metrics.pop("test_log_likelihood_se"),
            **{k: v for k, v in metrics.items() if k != "log_likelihood_method"},
            "train_log_likelihood": estimators.log_likelihood(model, x_train[:10000], log_z).mean,
        }
    with torch.no_grad():
        subset = x_test[:1000]
        pll, pll_se = mean_and_se(model.pseudo_log_likelihood(subset, per="feature"))
        metrics["test_pseudo_log_likelihood_per_feature"] = pll
        metrics["test_pseudo_log_likelihood_per_feature_se"] = pll_se
        metrics["test_reconstruction_error"] = mean_and_se(model.reconstruction_error(x_test))[0]
    return metrics


def _inpainting_figure(
    model: BernoulliRBM, x_test: torch.Tensor, ctx: Context, shape: tuple[int, int], steps: int
) -> Figure:
    originals = x_test[:10]
    known = top_half_known(shape, x_test.device)  # the bottom half is unknown
    completed = model.complete(originals, known, n_steps=steps, generator=ctx.generator)
    rows = [
        ("original", originals),
        ("given", viz.hide_unknown(originals, known)),
        ("completed", completed),
    ]
    path = viz.labelled_rows(
        rows,
        shape,
        ctx.out_dir / "inpainting.png",
        title="RBM inpainting of the bottom half",
    )
    return Figure(
        path,
        "Inpainting",
        f"Test digits with the bottom half unknown, completed by "
        f"{steps} sweeps of Gibbs sampling with the top half clamped; the completion "
        "shows p(v_i = 1 | h) of the last sweep.",
    )


def _figures_rbm(model: BernoulliRBM, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    steps = ctx.quick_capped("sample_steps", 1000)
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    n_filters = min(model.n_hidden, viz.MAX_FILTERS)
    filters_title = f"first {n_filters} filters (columns of W)"
    return [
        Figure(
            viz.samples_beside_data(
                samples,
                x_test,
                shape,
                ctx.out_dir / "samples.png",
                title=f"RBM samples after {steps} Gibbs sweeps from noise",
            ),
            "Samples",
            f"Left: 64 test digits. Right: 64 independent block-Gibbs chains started from "
            f"uniform noise, after {steps} sweeps; each image is p(v | h) of the last sweep.",
        ),
        Figure(
            viz.filters_grid(model.W, shape, ctx.out_dir / "filters.png", filters_title),
            "Filters",
            "Weights of the first hidden units, each rescaled to [0, 1].",
        ),
        _inpainting_figure(model, x_test, ctx, shape, 200 if ctx.quick else 1000),
    ]


RBM_TRAIN_DEFAULTS = {
    "epochs": 100,
    "batch_size": 100,
    "lr": 0.01,
    "optimizer": "sgd",
    "momentum": 0.9,
    "initial_momentum": 0.5,
    "momentum_warmup_epochs": 5,
    "weight_decay": 2e-4,  # on W only; -87.26 against -87.59 without (100 epochs, AIS)
    "schedule": "linear",
    "final_lr_fraction": 0.0,
    "log_every_steps": 50,
}

#: ``--preset paper``: the defaults trained twice as long at half the rate (200 epochs, lr 0.005),
#: the length of Melchior et al.'s centered PCD-1 runs; with ``--max-minutes`` the linear decay
#: to 0 follows the clock, so a shorter budget still ends at lr 0 (docs/families/boltzmann.md).
RBM_PRESETS = {
    "paper": Preset(
        "500 hidden, centered PCD-1, 200 epochs at lr 0.005 decaying linearly to 0 (Melchior et "
        "al. 2016: -84.86 at 200 epochs; Salakhutdinov & Murray 2008, CD-25: -86.34), scored "
        "with 50,000 AIS betas and reverse AIS from 10,000 Gibbs sweeps",
        options={
            "hidden": 500,
            "method": "pcd",
            "k": 1,
            "centering": True,
            "n_chains": 100,
            "ais_betas": 50_000,
            "reverse_sweeps": 10_000,
        },
        train={"epochs": 200, "lr": 0.005, "batch_size": 100},
    )
}

register(
    Recipe(
        name="rbm",
        summary="Bernoulli RBM: CD-k / PCD / parallel tempering, centered; AIS log-likelihood",
        build=_build_rbm,
        stages=_stages_monitored,
        evaluate=_evaluate_rbm,
        figures=_figures_rbm,
        binarize="stochastic",
        options=RBM_OPTIONS,
        train_defaults=RBM_TRAIN_DEFAULTS,
        presets=RBM_PRESETS,
        demo={
            "data": "digits",
            "options": {"hidden": 20, "ais_betas": 1000, "sample_steps": 1000},
            "epochs": 40,
            "batch_size": 20,
            "lr": 0.05,
        },
    )
)


# ----- Gaussian-Bernoulli RBM --------------------------------------------------------------------
def _build_grbm(
    x_train: torch.Tensor, ctx: Context
) -> tuple[GaussianBernoulliRBM, ContrastiveDivergence]:
    o = ctx.options
    model = GaussianBernoulliRBM(
        x_train.shape[1],
        o["hidden"],
        learn_sigma=o["learn_sigma"],
        min_sigma=o["min_sigma"],
        seed=ctx.seed(),
    )
    objective = ContrastiveDivergence(
        k=o["k"], method=o["method"], n_chains=o["n_chains"], seed=ctx.seed()
    )
    return model, objective


def _evaluate_grbm(
    model: GaussianBernoulliRBM, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    with torch.no_grad():
        metrics: dict[str, Any] = {
            "test_reconstruction_error": mean_and_se(model.reconstruction_error(x_test))[0],
            "mean_sigma": float(model.sigma().mean()),
            "log_likelihood_method": "none",
        }
        note = (
            "a density of continuous pixels: not comparable with the discrete likelihoods of "
            "binarized data"
        )
        if model.n_hidden <= EXACT_MAX_UNITS:
            metrics.update(_exact_metrics(model, x_test, estimators.exact_log_z(model)))
        else:
            o = ctx.options
            n_betas = ctx.quick_capped("ais_betas", 1000)
            metrics.update(_ais_metrics(model, x_train, x_test, ctx, n_betas, o["ais_runs"]))
        metrics["log_likelihood_note"] = note
    return metrics


def _figures_grbm(model: GaussianBernoulliRBM, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    steps = 200 if ctx.quick else 2000
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    with torch.no_grad():
        recon = model.mean_v_given_h(model.p_h_given_v(x_test[:10]))
    out = ctx.out_dir
    rows = [("data", x_test[:10]), ("recon.", recon)]
    return [
        Figure(
            viz.samples_beside_data(
                samples, x_test, shape, out / "samples.png", title=f"GRBM samples ({steps} sweeps)"
            ),
            "Samples",
            f"Left: 64 test images (grey levels). Right: E[v | h] after {steps} Gibbs sweeps "
            "from N(b, sigma^2).",
        ),
        Figure(
            viz.filters_grid(model.W, shape, out / "filters.png", "GRBM filters (columns of W)"),
            "Filters",
            "Columns of W, each rescaled to [0, 1].",
        ),
        Figure(
            viz.labelled_rows(
                rows, shape, out / "reconstructions.png", title="GRBM reconstructions"
            ),
            "Reconstructions",
            "Mean-field reconstructions E[v | h = p(h | v)].",
        ),
    ]


register(
    Recipe(
        name="grbm",
        summary="Gaussian-Bernoulli RBM on grey levels (learned or unit variances)",
        build=_build_grbm,
        stages=_stages_monitored,
        evaluate=_evaluate_grbm,
        figures=_figures_grbm,
        binarize=None,
        options=(
            Option("hidden", int, 500, "number of hidden units"),
            Option("method", str, "cd", "negative phase", choices=("cd", "pcd")),
            Option("k", int, 1, "Gibbs sweeps per update"),
            Option("n_chains", int, 100, "persistent chains (pcd)", when={"method": ("pcd",)}),
            Option("learn_sigma", bool, True, "learn one standard deviation per pixel"),
            Option("min_sigma", float, 0.05, "floor on the standard deviations"),
            *AIS_OPTIONS,
        ),
        train_defaults={
            "epochs": 20,
            "batch_size": 100,
            "lr": 0.001,
            "optimizer": "sgd",
            "momentum": 0.9,
            "initial_momentum": 0.5,
            "momentum_warmup_epochs": 2,
            "schedule": "linear",
            "log_every_steps": 50,
        },
        demo={"data": "digits", "options": {"hidden": 16}, "epochs": 30, "batch_size": 20},
    )
)


# ----- general Boltzmann machine -----------------------------------------------------------------
def _build_bm(x_train: torch.Tensor, ctx: Context) -> tuple[BoltzmannMachine, BoltzmannLearning]:
    o = ctx.options
    labels = 10 if o["labels"] else 0
    model = BoltzmannMachine(
        x_train.shape[1], n_hidden=o["hidden"], n_labels=labels, seed=ctx.seed()
    )
    return model, BoltzmannLearning(n_chains=100, clamped_burn_in=3)


def _stages_bm(
    model: BoltzmannMachine, objective: BoltzmannLearning, ctx: Context, config: TrainConfig
) -> list[Stage]:
    """Lecture 001's learning rule with the one training loop; the labels (one-hot) are clamped
    with the pixels in the clamped phase."""
    x = ctx.train_data()
    if model.n_labels:
        y = ctx.labels("train", x.shape[0])
        if y is None:
            raise ValueError(f"--labels: dataset {ctx.data_name!r} has no labels")
        x = torch.cat([x, F.one_hot(y.to(x.device), model.n_labels).to(x)], 1)
    stage_config = replace(config, seed=ctx.seed())
    return [Stage("train", model, objective, x, stage_config, "clamped and free phases")]


def _evaluate_bm(
    model: BoltzmannMachine, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"log_likelihood_method": "none"}
    if model.n_labels:
        y = ctx.labels("test", x_test.shape[0])
        if y is not None:
            exact = model.n_hidden <= 12
            p = model.p_class_given_v(x_test, generator=ctx.generator, exact=exact)
            metrics["test_accuracy"] = float((p.argmax(1).cpu() == y).float().mean())
            metrics["classification_method"] = "exact" if exact else "gibbs"
    if model.n_units <= 24:
        metrics.update(_exact_metrics(model, x_test, estimators.exact_log_z(model)))
    return metrics


def _images_by_class(
    x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor | None:
    """Images of ``x`` in the order of ``classes``: for each entry the next image of its class
    (labels ``y``); None when some class has too few images."""
    y = y.to(x.device)
    rows = []
    for k in classes.unique(sorted=True).tolist():
        need = int((classes == k).sum())
        index = (y == k).nonzero().flatten()[:need]
        if index.numel() < need:
            return None
        rows.append(x[index])
    return torch.cat(rows)


def _figures_bm(model: BoltzmannMachine, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    figures = []
    if model.n_labels:
        classes = torch.arange(model.n_labels).repeat_interleave(8)
        rows = model.generate_class(
            classes, classes.numel(), n_sweeps=200 if ctx.quick else 1000, generator=ctx.generator
        )
        path = ctx.out_dir / "class_samples.png"
        labels = [str(k) for k in range(model.n_labels)]
        title = "BM samples with the label units clamped"
        y = ctx.labels("test", x_test.shape[0])
        by_class = None if y is None else _images_by_class(x_test, y, classes)
        if by_class is None:
            picture = viz.image_grid(rows, shape, path, nrow=8, row_labels=labels, title=title)
            shown = ""
        else:
            picture = viz.samples_beside_data(
                rows, by_class, shape, path, title=title, row_labels=labels
            )
            shown = "Left: test digits of each class. Right: "
        figures.append(
            Figure(
                picture,
                "Class-conditional samples",
                f"{shown}Gibbs sampling with the label units clamped to each class (one row per "
                "class); p(v_i = 1 | rest) of the last sweep.",
            )
        )
    states, energies = model.anneal(n_chains=16, generator=ctx.generator)
    figures.append(
        Figure(
            viz.image_grid(
                states[:, : model.n_visible],
                shape,
                ctx.out_dir / "annealing.png",
                nrow=8,
                title="BM simulated annealing: low-energy states",
            ),
            "Simulated annealing",
            f"16 chains cooled from T = 10 to 0.05; lowest energy {float(energies[0]):.1f}.",
        )
    )
    return figures


register(
    Recipe(
        name="bm",
        summary="general Boltzmann machine with label units, small (after Yi Wu, Deep Learning "
        "lecture 4, Energy-Based Models, IIIS 2025)",
        build=_build_bm,
        stages=_stages_bm,
        evaluate=_evaluate_bm,
        figures=_figures_bm,
        binarize="threshold",
        options=(
            Option("hidden", int, 10, "hidden units"),
            Option("labels", bool, True, "one-hot label units for p(class | v) and generation"),
        ),
        train_defaults={
            "epochs": 20,
            "lr": 0.05,
            "batch_size": 50,
            "optimizer": "sgd",
            "momentum": 0.5,
            "schedule": "linear",
        },
        demo={"data": "digits", "epochs": 5},
    )
)
