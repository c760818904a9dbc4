"""Recipes for deep models built from RBM stacks: ``dbn`` (deep belief net) and ``autoencoder``
(RBM-pretrained deep autoencoder).

``dbn`` (Hinton, Osindero & Teh 2006) trains its RBMs greedily, each with the one training loop
(per-layer checkpoints and metrics under RUN/layers/layerK/), with the ``rbm`` recipe's settings
(PCD-1, centered, SGD with momentum, linear lr decay, weight decay 2e-4) and its per-epoch
monitor on the layer's own input (the held-out images passed up the layers below). With
``--init-from-below`` (on in ``--preset paper``) every RBM above the first starts as the one below
turned upside down, so the DBN starts equal to its first RBM. Evaluation is the
variational lower bound of Salakhutdinov & Murray (2008) with log Z of the top RBM from AIS
(their protocol: 14,500 inverse temperatures, 100 runs), tagged ``ais-lower-bound``, beside the
importance-weighted bound with the same samples, the first RBM's own AIS log-likelihood (is the
second layer worth it?), for stacks grown from below the bound with the top RBM back at its start
and the gain of training it (measured on one AIS path), and, for models small enough to
enumerate, the exact log-likelihood.

``autoencoder`` (Hinton & Salakhutdinov 2006) pretrains a stack of RBMs (logistic layers, a linear
code layer on top), unrolls it and fine-tunes it with the training loop on cross-entropy; it is
scored by the summed squared reconstruction error per test image, beside PCA with as many
components as the code has units. It has no likelihood.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from ... import estimators
from ...models.autoencoder import DeepAutoencoder
from ...models.dbn import DeepBeliefNet
from ...objectives.autoencoder import ReconstructionObjective
from ...objectives.base import Objective
from ...stats import mean_and_se
from ...training import Stage, TrainConfig
from ...training.greedy import autoencoder_stages, dbn_stages, propagate_up
from ...validation import Integral
from .. import viz
from ..recipes import Context, Figure, Option, Preset, Recipe, parse_sizes, register
from .rbm import (
    AIS_SCHEDULE_OPTIONS,
    MONITOR_MAX_EXAMPLES,
    MONITOR_SEED,
    RBM_TRAIN_DEFAULTS,
    heldout_rows,
    monitor_rows,
    monitor_size,
    rbm_monitor,
)

#: Largest hidden layer (below the top) enumerated for an exact DBN log-likelihood.
EXACT_MAX_UNITS = 16
#: Largest top-RBM layer (the smaller of its two) enumerated for an exact log Z.
EXACT_MAX_TOP_UNITS = 20
#: Training examples used for train-set scores (as the ``rbm`` recipe).
TRAIN_SUBSET = 10_000


def parse_layers(text: Any, name: str = "--layers") -> list[int]:
    """'500,2000' -> [500, 2000] (hidden layer sizes, bottom first)."""
    return parse_sizes(text, name)


# ----- deep belief net ---------------------------------------------------------------------------
DBN_OPTIONS = (
    Option("layers", str, "500,2000", "hidden layer sizes, bottom first (comma-separated)"),
    Option(
        "layer_epochs",
        str,
        None,
        "training epochs of the RBMs, bottom first: one number for all or one per RBM, e.g. "
        "200,100 (default --epochs)",
    ),
    Option("method", str, "pcd", "negative phase of every RBM", choices=("cd", "pcd")),
    Option("k", int, 1, "Gibbs sweeps per update"),
    Option("centering", bool, True, "centered gradient (Melchior et al. 2016)"),
    Option("n_chains", int, 100, "persistent chains (pcd)", when={"method": ("pcd",)}),
    Option(
        "layer_lr",
        str,
        None,
        "SGD learning rate of the RBMs, decaying linearly to 0: one for all or one per RBM, e.g. "
        "0.005,0.001 (default --lr)",
    ),
    Option(
        "layer_weight_decay",
        str,
        None,
        "weight decay on W of the RBMs: one for all or one per RBM (default "
        f"{RBM_TRAIN_DEFAULTS['weight_decay']})",
    ),
    Option("layer_batch_size", int, None, "minibatch size of every RBM (default --batch-size)"),
    Option(
        "propagate",
        str,
        "probabilities",
        "data for the next RBM: hidden probabilities or one binary sample",
        choices=("probabilities", "samples"),
    ),
    Option(
        "init_from_below",
        bool,
        False,
        "start every RBM above the first as the one below turned upside down (Hinton, Osindero "
        "& Teh 2006), so that the DBN starts equal to its first RBM; needs every layer k+1 at "
        "least as large as layer k-1",
    ),
    *AIS_SCHEDULE_OPTIONS,
    Option(
        "bound_samples",
        int,
        10,
        "samples of the hidden layers per test image for the bound",
        evaluation=True,
    ),
    Option(
        "compare_first_rbm",
        bool,
        True,
        "also score the first RBM alone (one more AIS)",
        evaluation=True,
    ),
    Option("sample_steps", int, 1000, "Gibbs sweeps in the top RBM for the samples figure"),
)


def per_layer(
    value: Any, n: int, kind: type, flag: str, default: Any, zero: bool = False
) -> list[Any]:
    """One setting per RBM of a stack of ``n``: None gives ``default`` to every RBM, one number
    (or a run recorded when the option took one) is every RBM's, "a,b,..." gives one per RBM;
    values must be positive (``zero``: or 0)."""
    if value is None or value == "":
        return [default] * n
    if isinstance(value, int | float) and not isinstance(value, bool):
        items = [value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    try:
        values = [kind(item) for item in items]
    except ValueError:
        raise ValueError(
            f"{flag}: expected {kind.__name__} values separated by commas, got {value!r}"
        ) from None
    if len(values) not in (1, n):
        raise ValueError(f"{flag}: expected 1 or {n} values (one per RBM), got {len(values)}")
    if any(v < 0 or (v == 0 and not zero) for v in values):
        expected = "values >= 0" if zero else "positive values"
        raise ValueError(f"{flag}: expected {expected}, got {value!r}")
    return values * n if len(values) == 1 else values


def _build_dbn(x_train: torch.Tensor, ctx: Context) -> tuple[DeepBeliefNet, None]:
    # no objective of its own: every stage (one per RBM, ``_stages_dbn``) brings one
    layers = parse_layers(ctx.options["layers"])
    return DeepBeliefNet([x_train.shape[1], *layers], seed=ctx.seed()), None


def _stages_dbn(
    model: DeepBeliefNet, objective: None, ctx: Context, config: TrainConfig
) -> Iterator[Stage]:
    """Greedy layer-wise training, one stage per RBM (``layer1``, ``layer2``, ...), each with the
    ``rbm`` recipe's loop settings and the --layer-epochs, --layer-lr and --layer-batch-size
    settings, which default to the loop's --epochs, --lr and --batch-size; --max-minutes is
    every layer's own budget."""
    o = ctx.options
    n = model.n_layers
    epochs = per_layer(o["layer_epochs"], n, int, "--layer-epochs", config.epochs)
    lrs = per_layer(o["layer_lr"], n, float, "--layer-lr", config.lr)
    decays = per_layer(
        o["layer_weight_decay"],
        n,
        float,
        "--layer-weight-decay",
        RBM_TRAIN_DEFAULTS["weight_decay"],
        zero=True,
    )
    seed = ctx.seed()
    layer_configs = [
        TrainConfig(
            **{
                **RBM_TRAIN_DEFAULTS,
                "epochs": epochs[i],
                "batch_size": o["layer_batch_size"] or config.batch_size,
                "lr": lrs[i],
                "weight_decay": decays[i],
                "momentum_warmup_epochs": min(
                    RBM_TRAIN_DEFAULTS["momentum_warmup_epochs"], epochs[i]
                ),
                "seed": seed + i,
                "device": str(ctx.device),
                "progress": config.progress,
                "max_minutes": config.max_minutes,
            }
        )
        for i in range(n)
    ]
    plan = dbn_stages(
        model,
        ctx.train_data(),
        layer_configs,
        method=o["method"],
        k=o["k"],
        n_chains=o["n_chains"],
        centering=o["centering"],
        propagate=o["propagate"],
        seed=ctx.seed(),
        init_from_below=o["init_from_below"],
    )
    settings = (
        "--layer-epochs, --layer-lr, --layer-weight-decay, --layer-batch-size, else --epochs, "
        "--lr, --batch-size"
    )
    # every RBM gets the rbm recipe's monitor, on its own input: the training rows as the stage
    # receives them, the held-out rows passed up the trained layers below as training data are
    held = heldout_rows(ctx, MONITOR_MAX_EXAMPLES)
    for i, stage in enumerate(plan):
        if i > 0 and held is not None:
            generator = torch.Generator(device=held.device).manual_seed(MONITOR_SEED + i)
            held = propagate_up(model.rbms[i - 1], held, o["propagate"], generator)
        n = monitor_size(stage.data.shape[0])
        subsets = {"train": monitor_rows(stage.data, n)}
        if held is not None:
            subsets["heldout"] = held[:n]
        monitor = rbm_monitor(subsets, stage.module.n_hidden)
        yield replace(stage, settings=settings, epoch_callback=monitor)


def _mean_with_log_z(values: torch.Tensor, log_z: float, log_z_se: float) -> tuple[float, float]:
    """Mean of per-example bounds minus log Z, with se = sqrt(var / n + se(log Z)^2)."""
    mean, se = mean_and_se(values)
    return mean - log_z, math.sqrt(se**2 + log_z_se**2)


def _gain_of_last_step(
    model: DeepBeliefNet,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    ctx: Context,
    n_betas: int,
    bound_seed: int,
    test_values: torch.Tensor,
    trained: estimators.AISResult,
) -> dict[str, Any]:
    """What training the top RBM added to the bound of a stack grown ``init_from_below``: the
    same bound with the top RBM back at its start (the RBM below it upside down, so that for two
    layers the stack is RBM 1 and the bound is RBM 1's log-likelihood), its log Z by the same AIS
    on the top layer and the same draws of the hidden path (the seed of ``test_values``), so that
    the difference does not mix two AIS paths: AIS on RBM 1's 784 pixels
    (``first_rbm_test_log_likelihood``) and on the top RBM's 500 units err differently."""
    start = copy.deepcopy(model)
    start.init_from_below(model.n_layers - 1)
    n_samples = ctx.options["bound_samples"]
    ais = start.top_log_z(x_train, n_betas=n_betas, n_runs=ctx.options["ais_runs"], seed=ctx.seed())
    generator = torch.Generator(device=ctx.device).manual_seed(bound_seed)
    values = start.lower_bound(x_test, 0.0, n_samples, generator)
    initial, initial_se = _mean_with_log_z(values, ais.log_z, ais.log_z_se)
    diff, diff_se = mean_and_se(test_values - values)
    return {
        "initial_test_log_likelihood": initial,
        "initial_test_log_likelihood_se": initial_se,
        "initial_top_log_z": ais.log_z,
        "initial_ais_ess": ais.ess,
        "bound_gain_of_last_step": diff - trained.log_z + ais.log_z,
        "bound_gain_of_last_step_se": math.sqrt(diff_se**2 + trained.log_z_se**2 + ais.log_z_se**2),
    }


def _evaluate_dbn(
    model: DeepBeliefNet, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    o = ctx.options
    n_betas = ctx.quick_capped("ais_betas", 1000)
    n_samples = o["bound_samples"]
    bound_seed = ctx.seed()
    generator = torch.Generator(device=ctx.device).manual_seed(bound_seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", estimators.AISWarning)
        start = time.perf_counter()
        ais = model.top_log_z(x_train, n_betas=n_betas, n_runs=o["ais_runs"], seed=ctx.seed())
        first = None
        if o["compare_first_rbm"] and model.n_layers > 1:
            rbm = model.rbms[0]
            first_ais = estimators.ais(
                rbm,
                n_betas=n_betas,
                n_runs=o["ais_runs"],
                seed=ctx.seed(),
                data=x_train,
                progress=ctx.progress,
            )
            first = estimators.log_likelihood(rbm, x_test, first_ais)
        ais_seconds = time.perf_counter() - start
    start = time.perf_counter()
    test_values = model.lower_bound(x_test, 0.0, n_samples, generator)
    test_iw = model.lower_bound(x_test, 0.0, n_samples, generator, method="importance")
    train_values = model.lower_bound(x_train[:TRAIN_SUBSET], 0.0, n_samples, generator)
    bound_seconds = time.perf_counter() - start
    test, test_se = _mean_with_log_z(test_values, ais.log_z, ais.log_z_se)
    iw, iw_se = _mean_with_log_z(test_iw, ais.log_z, ais.log_z_se)
    metrics: dict[str, Any] = {
        "test_log_likelihood": test,
        "test_log_likelihood_se": test_se,
        "log_likelihood_method": "ais-lower-bound",
        "train_log_likelihood": _mean_with_log_z(train_values, ais.log_z, 0.0)[0],
        f"test_log_likelihood_iw{n_samples}": iw,
        f"test_log_likelihood_iw{n_samples}_se": iw_se,
        "bound_samples": n_samples,
        "top_log_z": ais.log_z,
        "top_log_z_se": ais.log_z_se,
        "ais_ess": ais.ess,
        "ais_betas": n_betas,
        "ais_runs": o["ais_runs"],
        "ais_seconds": round(ais_seconds, 2),
        "bound_seconds": round(bound_seconds, 2),
    }
    if first is not None:
        metrics["first_rbm_test_log_likelihood"] = first.mean
        metrics["first_rbm_test_log_likelihood_se"] = first.se
    if o["init_from_below"] and model.n_layers > 1:
        with warnings.catch_warnings(record=True) as more:
            warnings.simplefilter("always", estimators.AISWarning)
            metrics.update(
                _gain_of_last_step(
                    model, x_train, x_test, ctx, n_betas, bound_seed, test_values, ais
                )
            )
        caught.extend(more)
    messages = [str(w.message) for w in caught if issubclass(w.category, estimators.AISWarning)]
    if messages:
        metrics["ais_warnings"] = messages
    below_top = model.layer_sizes[1:-1]
    top_small = min(model.top.n_visible, model.top.n_hidden) <= EXACT_MAX_TOP_UNITS
    if top_small and all(n <= EXACT_MAX_UNITS for n in below_top):
        # small enough to enumerate: the exact value becomes the headline, the bound stays
        exact_mean, exact_se = mean_and_se(model.exact_log_prob(x_test, EXACT_MAX_UNITS))
        train_exact = model.exact_log_prob(x_train[:TRAIN_SUBSET], EXACT_MAX_UNITS)
        metrics["test_log_likelihood_bound"] = metrics["test_log_likelihood"]
        metrics["test_log_likelihood_bound_se"] = metrics["test_log_likelihood_se"]
        metrics["train_log_likelihood_bound"] = metrics["train_log_likelihood"]
        metrics.update(
            {
                "test_log_likelihood": exact_mean,
                "test_log_likelihood_se": exact_se,
                "log_likelihood_method": "exact",
                "train_log_likelihood": mean_and_se(train_exact)[0],
                "top_log_z_exact": estimators.exact_log_z(model.top),
            }
        )
    return metrics


def _figures_dbn(model: DeepBeliefNet, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    steps = ctx.quick_capped("sample_steps", 1000)
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    originals = x_test[:10]
    rows = [("data", originals), ("up-down", model.reconstruct(originals))]
    rbm = model.rbms[0]
    n_filters = min(rbm.n_hidden, viz.MAX_FILTERS)
    return [
        Figure(
            viz.samples_beside_data(
                samples,
                x_test,
                shape,
                ctx.out_dir / "samples.png",
                title=f"DBN samples ({steps} Gibbs sweeps in the top RBM)",
            ),
            "Samples",
            f"Left: 64 test digits. Right: 64 chains, {steps} block-Gibbs sweeps of the top RBM "
            "from uniform noise, then one top-down pass through the directed layers; each image "
            "is p(v | h1).",
        ),
        Figure(
            viz.labelled_rows(
                rows,
                shape,
                ctx.out_dir / "reconstructions.png",
                title="DBN: up to the top layer and back down",
            ),
            "Reconstructions",
            "Test digits passed up the recognition weights (probabilities) to the top layer and "
            "down the generative weights: what the stack keeps of each image.",
        ),
        Figure(
            viz.filters_grid(
                rbm.W,
                shape,
                ctx.out_dir / "filters.png",
                f"DBN first-layer filters (first {n_filters})",
            ),
            "Filters",
            "Weights of the first RBM's hidden units, each rescaled to [0, 1].",
        ),
    ]


#: ``--preset paper``: Salakhutdinov & Murray's 784-500-2000 DBN. RBM 1 is the ``rbm`` recipe's
#: paper preset (200 epochs of centered PCD-1 at lr 0.005 decaying linearly to 0, weight decay
#: 2e-4: -86.30 alone). RBM 2 starts as RBM 1 upside down (Hinton, Osindero & Teh 2006), so the
#: DBN starts equal to RBM 1, and trains on one binary draw of q(h1 | v) per image (its data term
#: is then one draw of the bound's E_q[log p(h1)]), its chains started at those draws, for 30
#: epochs at lr 0.0003 without weight decay: from that start larger steps walked the bound down
#: (lr 0.001: -0.36 nats with this RBM 1; lr 0.01 with weight decay: -1.1 with a 100-epoch RBM 1)
#: and lr 0.0003 kept it level (docs/families/dbn.md). ``--max-minutes`` is each layer's budget.
DBN_PRESETS = {
    "paper": Preset(
        "784-500-2000; RBM 1 the rbm paper preset (200 epochs, lr 0.005); RBM 2 initialized from "
        "RBM 1 and trained on binary samples of its hidden units, 30 epochs at lr 0.0003 without "
        "weight decay (Salakhutdinov & Murray 2008: -86.22)",
        options={
            "layers": "500,2000",
            "init_from_below": True,
            "method": "pcd",
            "k": 1,
            "centering": True,
            "n_chains": 100,
            "propagate": "samples",
            "layer_epochs": "200,30",
            "layer_lr": "0.005,0.0003",
            "layer_weight_decay": "2e-4,0",
        },
        train={"batch_size": RBM_TRAIN_DEFAULTS["batch_size"]},
    )
}

register(
    Recipe(
        name="dbn",
        summary="deep belief net: greedy RBM stack; AIS variational lower bound",
        # the loop settings every RBM of the stack trains with (``_stages_dbn``), so that the
        # run's record names them
        train_defaults=dict(RBM_TRAIN_DEFAULTS),
        build=_build_dbn,
        stages=_stages_dbn,
        evaluate=_evaluate_dbn,
        figures=_figures_dbn,
        binarize="stochastic",
        options=DBN_OPTIONS,
        presets=DBN_PRESETS,
        demo={
            "data": "digits",
            "epochs": 20,
            "lr": 0.05,
            "batch_size": 20,
            "options": {
                "layers": "16,32",
                "ais_betas": 1000,
                "bound_samples": 20,
                "sample_steps": 1000,
            },
        },
    )
)


# ----- deep autoencoder ---------------------------------------------------------------------------
AUTOENCODER_OPTIONS = (
    Option("layers", str, "1000,500,250,30", "encoder layer sizes, code last (comma-separated)"),
    Option("pretrain", bool, True, "initialise from a greedily trained RBM stack"),
    Option(
        "pretrain_epochs",
        int,
        50,
        "epochs of every RBM (Hinton & Salakhutdinov: 50)",
        check=Integral(0),
    ),
    Option("pretrain_lr", float, 0.1, "SGD learning rate of the logistic RBMs"),
    Option("code_lr", float, 0.001, "SGD learning rate of the linear-code RBM"),
    Option("pretrain_batch_size", int, 100, "minibatch size of the RBMs"),
    Option("linear_code", bool, True, "linear code units (Gaussian top RBM); else logistic"),
    Option(
        "loss",
        str,
        "cross_entropy",
        "fine-tuning loss",
        choices=("cross_entropy", "squared_error"),
    ),
)


def _build_autoencoder(
    x_train: torch.Tensor, ctx: Context
) -> tuple[DeepAutoencoder, ReconstructionObjective]:
    o = ctx.options
    layers = parse_layers(o["layers"])
    model = DeepAutoencoder(
        [x_train.shape[1], *layers], linear_code=o["linear_code"], seed=ctx.seed()
    )
    return model, ReconstructionObjective(loss=o["loss"])


def _stages_autoencoder(
    model: DeepAutoencoder, objective: Objective, ctx: Context, config: TrainConfig
) -> Iterator[Stage]:
    """RBM pretraining of every layer (stages ``pretrain1``, ...; --pretrain-epochs 0 or
    --no-pretrain skips them), then fine-tuning (stage ``finetune``) with the loop flags."""
    o = ctx.options
    return autoencoder_stages(
        model,
        objective,
        ctx.train_data(),
        config,
        pretrain_epochs=o["pretrain_epochs"] if o["pretrain"] else 0,
        lr=o["pretrain_lr"],
        code_lr=o["code_lr"],
        batch_size=o["pretrain_batch_size"],
        seed=ctx.seed(),
    )


@torch.no_grad()
def pca_reconstruction(x_train: torch.Tensor, x: torch.Tensor, n_components: int) -> torch.Tensor:
    """Reconstruction of ``x`` from its first ``n_components`` principal components of
    ``x_train`` (eigenvectors of the covariance, float64)."""
    train64 = x_train.to(torch.float64)
    mean = train64.mean(0)
    centred = train64 - mean
    cov = centred.T @ centred / max(len(train64) - 1, 1)
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
    basis = vectors[:, -n_components:]
    x64 = x.to(torch.float64) - mean
    return (x64 @ basis @ basis.T + mean).to(x.dtype)


def _evaluate_autoencoder(
    model: DeepAutoencoder, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    with torch.no_grad():
        test, test_se = mean_and_se(model.reconstruction_error(x_test))
        train, _ = mean_and_se(model.reconstruction_error(x_train[:TRAIN_SUBSET]))
        cross_entropy, _ = mean_and_se(model.cross_entropy(model.check_input(x_test)))
        pca = pca_reconstruction(x_train, x_test, model.code_size)
        pca_error, pca_se = mean_and_se((pca - x_test).square().sum(-1))
    return {
        "test_reconstruction_error": test,
        "test_reconstruction_error_se": test_se,
        "train_reconstruction_error": train,
        "test_cross_entropy": cross_entropy,
        f"pca{model.code_size}_reconstruction_error": pca_error,
        f"pca{model.code_size}_reconstruction_error_se": pca_se,
        "reconstruction_error_note": "summed squared error per image (Hinton & Salakhutdinov "
        "2006: 3.00 for 784-1000-500-250-30 on MNIST, PCA-30 13.87)",
        "log_likelihood_method": "none",
    }


def _codes_figure(model: DeepAutoencoder, x_test: torch.Tensor, ctx: Context) -> Figure:
    import matplotlib.pyplot as plt

    codes = model.transform(x_test).cpu().numpy()
    labels = ctx.labels("test", x_test.shape[0])
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=3, alpha=0.6)
    else:
        points = ax.scatter(codes[:, 0], codes[:, 1], c=labels.numpy(), cmap="tab10", s=3)
        fig.colorbar(points, ax=ax, ticks=range(10), label="class")
    ax.set_xlabel("code unit 1")
    ax.set_ylabel("code unit 2")
    viz.fit_title(ax, "2-D codes of the test images")
    path = viz.save_figure(fig, ctx.out_dir / "codes.png")
    return Figure(
        path,
        "Codes",
        "The two code units of every test image, coloured by class (Hinton & Salakhutdinov's "
        "Fig. 3 shows the same for MNIST against PCA).",
    )


def _figures_autoencoder(
    model: DeepAutoencoder, x_test: torch.Tensor, ctx: Context
) -> list[Figure]:
    figures = []
    shape = ctx.image_shape
    if shape is not None:
        originals = x_test[:10]
        with torch.no_grad():
            recon = model(originals)
        # PCA fitted on the test images themselves (figures see no training data): if anything
        # this favours PCA; the evaluation fits it on the training set
        pca = pca_reconstruction(x_test, originals, model.code_size)
        rows = [("data", originals), ("autoenc.", recon), (f"PCA-{model.code_size}", pca)]
        figures.append(
            Figure(
                viz.labelled_rows(
                    rows,
                    shape,
                    ctx.out_dir / "reconstructions.png",
                    title=f"reconstructions from {model.code_size} code units",
                ),
                "Reconstructions",
                f"Test images, their autoencoder reconstructions, and PCA with "
                f"{model.code_size} components fitted on the test images (the comparison of "
                "Hinton & Salakhutdinov, Fig. 2).",
            )
        )
    if model.code_size == 2:
        figures.append(_codes_figure(model, x_test, ctx))
    return figures


register(
    Recipe(
        name="autoencoder",
        summary="deep autoencoder, RBM-pretrained then fine-tuned (Hinton & Salakhutdinov 2006)",
        build=_build_autoencoder,
        stages=_stages_autoencoder,
        evaluate=_evaluate_autoencoder,
        figures=_figures_autoencoder,
        binarize=None,
        options=AUTOENCODER_OPTIONS,
        train_defaults={
            "epochs": 200,
            "batch_size": 100,
            "lr": 1e-3,
            "optimizer": "adam",
            "log_every_steps": 50,
        },
        demo={
            "data": "digits",
            "options": {
                "layers": "100,50,25,2",
                "pretrain_epochs": 20,
                "pretrain_batch_size": 50,
            },
            "epochs": 20,
            "batch_size": 50,
            "lr": 3e-3,
        },
    )
)
