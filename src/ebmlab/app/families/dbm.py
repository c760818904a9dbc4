"""Recipe ``dbm``: deep Boltzmann machines (Salakhutdinov & Hinton 2009), with their AIS and the
greedy pretraining.

AIS for a DBM (Salakhutdinov & Hinton 2009, section 4) is ``ebmlab.estimators.ais``: the odd
layers are summed out and the even ones annealed from the base-rate model
(``ebmlab.estimators.paths.DBMPath``). The forward estimate of log Z is a stochastic lower bound,
so the reported log-likelihood bound is, like every AIS figure, slightly optimistic in
expectation.

Evaluation ("ais-lower-bound"): the mean-field bound log p(v) >= -F_q(v) - log Z of each test
example (the paper's Table 1 figure, -84.62 for 784-500-1000), and a tighter importance-sampled
bound: with the odd layers summed out, p(v) Z = sum_{even h} exp(-F_even(v, h)), estimated with
K samples of the even hidden layers from the mean-field q; E[log mean_s w_s] <= log p(v) (Jensen),
and with K = 1 it already improves on the mean-field bound (the odd layers are exact). When the
model is small enough (even hidden layers <= 20 units, the smaller parity <= 25) the exact log Z
and test log-likelihood are reported too and the latter becomes ``test_log_likelihood``.

While the joint stage trains, every epoch records the mean-field reconstruction error of fixed
training and held-out subsets (``dbm_monitor``), and the pseudo-log-likelihood where the even
hidden layers are small enough to enumerate.

Pretraining (``--pretrain-epochs``, stages ``pretrain1``, ``pretrain2``, ... before the joint
stage ``train``; ``ebmlab.training.greedy.dbm_stages``): RBMs trained bottom-up with
``TiedCopiesCD`` (bottom one with a doubled visible layer, top one with a doubled hidden layer,
middle ones with both), each trained on the doubled-input posterior probabilities of the layer
below, then composed: W_l from RBM l, b_0 from RBM 0's visible biases, b_L from the top RBM's
hidden biases and, for a layer shared by two RBMs, the average of its two biases (each went with
a doubled input).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from ...estimators import (
    importance_log_p,
    pseudo_log_likelihood,
    variational_bounds,
)
from ...models.dbm import DeepBoltzmannMachine
from ...objectives.base import Objective
from ...objectives.dbm import VariationalPCD
from ...samplers import bernoulli_draw as bernoulli
from ...stats import mean_and_se
from ...training import Stage, TrainConfig
from ...training.greedy import dbm_stages
from ...training.loop import EpochCallback
from ...validation import Integral
from .. import viz
from ..recipes import (
    Context,
    Figure,
    Option,
    Preset,
    Recipe,
    ais_bracket,
    parse_sizes,
    register,
)
from .rbm import (
    AIS_SCHEDULE_OPTIONS,
    MONITOR_BITS_SEED,
    REVERSE_SWEEPS_OPTION,
    REVERSE_SWEEPS_QUICK,
    monitor_data,
    monitor_size,
)

#: Largest enumerations used for the exact figures reported beside the bounds.
EXACT_MAX_EVEN_UNITS = 20
EXACT_MAX_LOG_Z_UNITS = 25


# ----- recipe -----------------------------------------------------------------------------------
def parse_layers(text: str) -> list[int]:
    """Hidden layer sizes from text: "500,1000" -> [500, 1000]."""
    return parse_sizes(text, "--layers", example="500,1000")


DBM_OPTIONS = (
    Option("layers", str, "500,1000", "hidden layer sizes, bottom first (comma-separated)"),
    Option("k", int, 5, "Gibbs sweeps of the persistent chains per update"),
    Option("n_chains", int, 100, "persistent chains (fantasy particles)"),
    Option("mf_iters", int, 10, "mean-field rounds per minibatch in training"),
    Option("centering", bool, True, "centered gradient (Melchior et al. 2016)"),
    Option(
        "pretrain_epochs",
        int,
        0,
        "greedy pretraining epochs per RBM (0: none)",
        check=Integral(0),
    ),
    Option("pretrain_lr", float, 0.05, "pretraining learning rate"),
    Option("pretrain_k", int, 1, "CD-k steps in pretraining"),
    *AIS_SCHEDULE_OPTIONS,
    Option(
        "eval_mf_iters",
        int,
        50,
        "mean-field rounds at evaluation (tolerance 1e-6)",
        evaluation=True,
    ),
    REVERSE_SWEEPS_OPTION,
    Option(
        "is_samples",
        int,
        100,
        "importance samples for the tighter bound (0: skip)",
        evaluation=True,
        check=Integral(0),
    ),
    Option("sample_steps", int, 1000, "Gibbs sweeps for the samples figure"),
)


def _build_dbm(x_train: torch.Tensor, ctx: Context) -> tuple[DeepBoltzmannMachine, VariationalPCD]:
    o = ctx.options
    sizes = [x_train.shape[1], *parse_layers(o["layers"])]
    model = DeepBoltzmannMachine(sizes, seed=ctx.seed())
    objective = VariationalPCD(
        n_chains=o["n_chains"],
        k=o["k"],
        mean_field_iters=o["mf_iters"],
        centering=o["centering"],
        init_visible_bias=o["pretrain_epochs"] == 0,
        seed=ctx.seed(),
    )
    return model, objective


def _stages_dbm(
    model: DeepBoltzmannMachine, objective: Objective, ctx: Context, config: TrainConfig
) -> Iterator[Stage]:
    """Greedy pretraining with tied copies (``--pretrain-epochs`` > 0), then joint training."""
    o = ctx.options
    pretrain = None
    if o["pretrain_epochs"] > 0:
        pretrain = TrainConfig(
            epochs=o["pretrain_epochs"],
            batch_size=100,
            lr=o["pretrain_lr"],
            optimizer="sgd",
            momentum=0.9,
            initial_momentum=0.5,
            momentum_warmup_epochs=5,
            weight_decay=2e-4,
            schedule="linear",
            seed=ctx.seed(),
            device=str(ctx.device),
            progress=config.progress,
        )
    x = ctx.train_data()
    model.to(ctx.device)
    plan = dbm_stages(model, objective, x, config, pretrain, k=o["pretrain_k"], seed=ctx.seed())
    return _monitored(plan, model, ctx)


# ----- per-epoch monitor -------------------------------------------------------------------------
#: Most units of the even hidden layers for which the monitor also records the pseudo-
#: log-likelihood: each free energy enumerates their 2^n states, and with 8 units (the demo's
#: 64-16-8) that alone is already a seventh of an epoch.
MONITOR_PLL_MAX_EVEN_UNITS = 4
#: Visible units whose flips the monitor's pseudo-log-likelihood scores per example (drawn once;
#: ``estimators.pseudo_log_likelihood``): an unbiased estimate from 2 free energies per example
#: instead of D + 1.
MONITOR_PLL_BITS = 1


@torch.no_grad()
def mean_field_reconstruction(
    model: DeepBoltzmannMachine, v: torch.Tensor, n_iters: int, tol: float = 0.0
) -> torch.Tensor:
    """p(v = 1 | h_1 = mu_1): the visible layer's conditional at the mean-field posterior means
    mu of every hidden layer given ``v`` (at most ``n_iters`` rounds, see ``mean_field``)."""
    means = model.mean_field(v, n_iters=n_iters, tol=tol)
    return torch.sigmoid(model.layer_input([v, *means], 0))


def dbm_monitor(
    subsets: dict[str, torch.Tensor], n_iters: int, pseudo_likelihood: bool
) -> EpochCallback:
    """The epoch callback of the joint training of a DBM: for each split of ``subsets`` (fixed
    rows, see ``rbm.monitor_data``) the mean-field reconstruction error ||p(v | mu_1) - v||^2
    per example (``n_iters`` rounds of mean field), and with ``pseudo_likelihood`` (small even
    layers only: the free energy enumerates them) the pseudo-log-likelihood in nats per example,
    estimated from ``MONITOR_PLL_BITS`` fixed random bits per example."""
    bits = None
    if pseudo_likelihood:
        d = next(iter(subsets.values())).shape[1]
        bits = min(MONITOR_PLL_BITS, d)

    def monitor(model: Any, epoch: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, v in subsets.items():
            recon = mean_field_reconstruction(model, v, n_iters)
            error = (recon - v).square().sum(-1).mean()
            out[f"mean_field_reconstruction_error_{split}"] = float(error)
            if bits is not None:
                generator = torch.Generator(device=v.device).manual_seed(MONITOR_BITS_SEED)
                pll = pseudo_log_likelihood(model, v, n_bits=bits, generator=generator)
                out[f"pseudo_log_likelihood_{split}"] = float(pll.mean())
        return out

    return monitor


def _monitored(
    stages: Iterator[Stage], model: DeepBoltzmannMachine, ctx: Context
) -> Iterator[Stage]:
    """The stages with the DBM's monitor (``dbm_monitor``) on the joint stage ("train")."""
    for stage in stages:
        if stage.module is model:
            n = monitor_size(stage.data.shape[0])
            even = sum(model.layer_sizes[2::2])
            monitor = dbm_monitor(
                monitor_data(ctx, stage.data, n),
                ctx.options["mf_iters"],
                pseudo_likelihood=even <= MONITOR_PLL_MAX_EVEN_UNITS,
            )
            stage = replace(stage, epoch_callback=monitor)
        yield stage


@torch.no_grad()
def chain_states(
    model: DeepBoltzmannMachine, v: torch.Tensor, n_sweeps: int, generator: torch.Generator
) -> torch.Tensor:
    """Every layer, concatenated, after ``n_sweeps`` Gibbs sweeps of chains started at the rows
    ``v`` with the hidden layers drawn from the recognition pass: the start of reverse AIS."""
    hidden = [bernoulli(mu, generator) for mu in model.recognition(v)]
    layers = model.sample_states(v.shape[0], n_sweeps, generator, [v, *hidden])
    return model.join(layers)


def _evaluate_dbm(
    model: DeepBoltzmannMachine, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    """The mean-field bound with log Z from forward AIS (the paper's figure) and from reverse AIS
    started after ``reverse_sweeps`` Gibbs sweeps from training images (the bracket's other
    side), the importance-sampled bound and the gap between the two bounds, and exact figures
    for small models."""
    o = ctx.options
    n_betas = ctx.quick_capped("ais_betas", 1000)
    sweeps = ctx.quick_capped("reverse_sweeps", REVERSE_SWEEPS_QUICK)
    bracket = ais_bracket(
        model,
        x_train,
        ctx,
        n_betas,
        o["ais_runs"],
        lambda rows: chain_states(model, rows, sweeps, ctx.generator),
    )
    log_z, log_z_se = bracket.forward.log_z, bracket.forward.log_z_se
    shift = bracket.reverse.log_z - log_z  # the reverse bound is the forward one minus this
    test = variational_bounds(model, x_test, log_z, o["eval_mf_iters"])
    mean, se = mean_and_se(test)
    metrics: dict[str, Any] = {
        "test_log_likelihood": mean,
        "test_log_likelihood_se": math.sqrt(se**2 + log_z_se**2),
        "log_likelihood_method": "ais-lower-bound",
        "train_log_likelihood": mean_and_se(
            variational_bounds(model, x_train[:10000], log_z, o["eval_mf_iters"])
        )[0],
        "test_log_likelihood_reverse_ais": mean - shift,
        "test_log_likelihood_reverse_ais_se": math.sqrt(se**2 + bracket.reverse.log_z_se**2),
        "reverse_start": f"{sweeps} Gibbs sweeps from training images",
        **bracket.metrics(),
    }
    n_is = ctx.quick_capped("is_samples", 10)
    if n_is > 0:
        subset = x_test[:1000] if ctx.quick else x_test
        values = torch.cat(
            [
                importance_log_p(model, subset[i : i + 500], log_z, n_is, ctx.generator)
                for i in range(0, subset.shape[0], 500)
            ]
        )
        is_mean, is_se = mean_and_se(values)
        metrics[f"test_log_likelihood_is{n_is}"] = is_mean
        metrics[f"test_log_likelihood_is{n_is}_se"] = math.sqrt(is_se**2 + log_z_se**2)
        metrics["is_examples"] = subset.shape[0]
        # the bound's tightness: the importance-sampled bound exceeds the mean-field one by at
        # most KL(q || p(h | v)), so this gain is a lower bound on that gap (same examples)
        mf = test[: subset.shape[0]]
        metrics[f"is{n_is}_gain_over_mean_field"] = float((values - mf).mean())
    metrics.update(_exact_metrics(model, x_train, x_test, metrics))
    return metrics


def _exact_metrics(
    model: DeepBoltzmannMachine,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Exact log Z (and test log-likelihood) of small models, beside the estimates."""
    counts = [sum(model.layer_sizes[p::2]) for p in (0, 1)]
    if min(counts) > EXACT_MAX_LOG_Z_UNITS:
        return {}
    log_z = model.log_z(max_units=EXACT_MAX_LOG_Z_UNITS)
    out: dict[str, Any] = {"log_z_exact": log_z}
    if sum(model.layer_sizes[2::2]) <= EXACT_MAX_EVEN_UNITS:
        with torch.no_grad():
            values = -model.free_energy(x_test, max_units=EXACT_MAX_EVEN_UNITS) - log_z
            train_values = -model.free_energy(x_train[:10000], EXACT_MAX_EVEN_UNITS) - log_z
        exact_mean, exact_se = mean_and_se(values)
        out.update(
            {
                "test_log_likelihood": exact_mean,
                "test_log_likelihood_se": exact_se,
                "log_likelihood_method": "exact",
                "test_log_likelihood_bound": metrics["test_log_likelihood"],
                "test_log_likelihood_bound_se": metrics["test_log_likelihood_se"],
                "train_log_likelihood": mean_and_se(train_values)[0],
                "train_log_likelihood_bound": metrics["train_log_likelihood"],
            }
        )
    return out


def _figures_dbm(model: DeepBoltzmannMachine, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    steps = ctx.quick_capped("sample_steps", 200)
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    originals = x_test[:10]
    recon = mean_field_reconstruction(model, originals, ctx.options["eval_mf_iters"], tol=1e-6)
    out = ctx.out_dir
    n_filters = min(model.layer_sizes[1], viz.MAX_FILTERS)
    return [
        Figure(
            viz.samples_beside_data(
                samples, x_test, shape, out / "samples.png", title=f"DBM samples ({steps} sweeps)"
            ),
            "Samples",
            f"Left: 64 test digits. Right: 64 independent Gibbs chains (odd layers, then even "
            f"ones) from uniform noise, after {steps} sweeps; each image is p(v | h_1) of the last "
            "sweep.",
        ),
        Figure(
            viz.labelled_rows(
                [("data", originals), ("p(v | mu_1)", recon)],
                shape,
                out / "reconstructions.png",
                title="DBM mean-field reconstructions",
            ),
            "Mean-field reconstructions",
            "Test digits and p(v | h_1 = mu_1) at the mean-field posterior of every layer.",
        ),
        Figure(
            viz.filters_grid(
                model.weights[0],
                shape,
                out / "filters.png",
                f"DBM: first {n_filters} first-layer filters",
            ),
            "Filters",
            "Columns of W_0, each rescaled to [0, 1].",
        ),
    ]


DBM_TRAIN_DEFAULTS = {
    "epochs": 500,  # Salakhutdinov & Hinton: 300,000 updates of 100 examples
    "batch_size": 100,
    "lr": 0.005,  # the paper: 0.005, decreased to 0
    "optimizer": "sgd",
    "momentum": 0.9,
    "initial_momentum": 0.5,
    "momentum_warmup_epochs": 5,
    "weight_decay": 2e-4,  # on the weights only
    "schedule": "linear",
    "final_lr_fraction": 0.0,
    "log_every_steps": 50,
}

#: ``--preset paper``: Salakhutdinov & Hinton's 784-500-1000 DBM with their schedule shortened to
#: what one CPU thread trains in 90 minutes: greedy pretraining with tied copies (20 epochs of
#: CD-1 per RBM, a few minutes), then joint training with 10 mean-field rounds and 100 persistent
#: chains advanced 5 sweeps per update, centered (Melchior et al. 2016), at twice the paper's
#: learning rate since about a sixth of its 300,000 updates fit; ``--max-minutes`` bounds each
#: stage and the linear decay of the joint stage then follows the clock.
DBM_PRESETS = {
    "paper": Preset(
        "784-500-1000, 20 epochs of tied-copies CD-1 pretraining per RBM, then centered joint "
        "training (10 mean-field rounds, 100 chains x 5 sweeps, lr 0.01 decaying linearly to 0); "
        "scored with 50,000 AIS betas and reverse AIS after 10,000 Gibbs sweeps "
        "(Salakhutdinov & Hinton 2009: -84.62 after 300,000 updates)",
        options={
            # 14,500 betas left the 784-500-1000 DBM's AIS with 5 of 100 effective runs and the
            # bracket inverted; 50,000 and longer reverse starts give 45 of 100 and an ordered one
            "ais_betas": 50000,
            "reverse_sweeps": 10000,
            "layers": "500,1000",
            "pretrain_epochs": 20,
            "pretrain_k": 1,
            "k": 5,
            "mf_iters": 10,
            "n_chains": 100,
            "centering": True,
        },
        train={"epochs": 100, "lr": 0.01, "batch_size": 100},
    )
}

register(
    Recipe(
        name="dbm",
        summary="deep Boltzmann machine: mean-field + persistent chains; AIS and variational bound",
        build=_build_dbm,
        stages=_stages_dbm,
        evaluate=_evaluate_dbm,
        figures=_figures_dbm,
        binarize="stochastic",
        options=DBM_OPTIONS,
        train_defaults=DBM_TRAIN_DEFAULTS,
        presets=DBM_PRESETS,
        demo={
            "data": "digits",
            "options": {"layers": "16,8", "ais_betas": 1000, "sample_steps": 500},
            "epochs": 30,
            "batch_size": 20,
            "lr": 0.02,
        },
    )
)
