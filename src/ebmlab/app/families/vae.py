"""Recipe ``vae``: variational autoencoder (Kingma & Welling 2014) trained on the ELBO or the
IWAE-k bound, scored by IWAE-K (Burda, Grosse & Salakhutdinov 2016).

Defaults are Burda et al.'s one-stochastic-layer MNIST model: 784-200-200-50 with tanh units,
a Bernoulli decoder whose output bias starts at the logit of the pixel marginals, Adam at 1e-3
decaying to 1e-4. Their schedule is 3^i epochs at lr 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes,
batch 20); here the rate decays exponentially over ``--epochs`` instead.

Binarization. By default the model trains on the run's fixed stochastic binarization of the
training images (one draw per image with a fixed seed, Salakhutdinov & Murray 2008), the data
every binary family of the library sees. ``--dynamic-binarization`` (on in ``--preset paper``)
trains on the grey levels instead, every minibatch binarized afresh (Burda et al. 2016); the
test set is the same in both cases: the fixed stochastic binarization of the test images, the
other families' test set. The evaluation says which (``training_binarization``,
``test_binarization``).

``--preset paper`` is Burda et al.'s setting: 784-200-200-50 (two deterministic tanh layers of
200, 50 Gaussian latents), IWAE-5 training on dynamically binarized images, batch 20, Adam from
1e-3 decaying to 1e-4 over their 3,280 passes, which ``--max-minutes`` compresses into the time
given (the schedule follows the clock).

Evaluation follows their protocol: the test log-likelihood is the IWAE bound with K = 5000
importance samples per test image (``eval_k``; 500 at most in quick/demo mode), tagged
``iwae-K``; the ELBO of the same draws, the closed-form KL, the importance weights' effective
sample size and the number of active latent units (Cov_x E_q[z_j] > 0.01, Burda et al. 2016,
section 5.2) are reported beside it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ...models.vae import VAE, Bounds, gaussian_kl_to_standard_normal
from ...objectives.vae import VariationalBound
from ...stats import mean_and_se
from ...training import Stage, TrainConfig
from ...training.logging import progress_bar
from ...validation import Integral, Real
from .. import viz
from ..recipes import Context, Figure, Option, Preset, Recipe, parse_sizes, register

#: Importance samples per example in quick (demo) evaluations.
QUICK_EVAL_K = 500
#: Training examples scored for ``train_log_likelihood`` (IWAE-K is costly).
TRAIN_EVAL_EXAMPLES = 1000
#: Burda et al.'s active-unit threshold on Cov_x(E_q[z_j]).
ACTIVE_UNIT_THRESHOLD = 0.01


def parse_hidden(text: str) -> list[int]:
    """``"200,200"`` -> [200, 200]; ``""`` or ``"none"`` -> [] (linear maps)."""
    return parse_sizes(text, "--hidden", example="200,200", empty=True)


OPTIONS = (
    Option("hidden", str, "200,200", "encoder hidden layers, comma-separated; decoder mirrors"),
    Option("latent", int, 50, "latent dimension"),
    Option("activation", str, "tanh", "hidden nonlinearity", choices=("tanh", "relu", "softplus")),
    Option("bound", str, "elbo", "training objective", choices=("elbo", "iwae")),
    Option("k", int, 1, "draws per training example (ELBO average or IWAE-k)"),
    Option(
        "warmup_epochs",
        float,
        0.0,
        "epochs over which the KL weight rises from 0 to 1",
        check=Real(0),
    ),
    Option(
        "dynamic_binarization",
        bool,
        False,
        "train on the grey levels, every minibatch binarized afresh (Burda et al. 2016); else "
        "on the run's fixed stochastic binarization. The test set is the fixed one either way",
    ),
    Option("eval_k", int, 5000, "importance samples per test image (Burda et al.: 5000)"),
    Option(
        "eval_batch",
        int,
        0,
        "(image, draw) pairs per evaluation pass (0: by device)",
        check=Integral(0),
    ),
)


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[VAE, VariationalBound]:
    o = ctx.options
    model = VAE(
        x_train.shape[1],
        hidden=parse_hidden(o["hidden"]),
        latent=o["latent"],
        likelihood="bernoulli",
        activation=o["activation"],
        seed=ctx.seed(),
    )
    objective = VariationalBound(
        bound=o["bound"],
        k=o["k"],
        warmup_epochs=o["warmup_epochs"],
        dynamic_binarization=o["dynamic_binarization"],
    )
    return model, objective


def grey_training_images(ctx: Context) -> torch.Tensor:
    """The grey levels of the run's training images, the ones its fixed binarization was drawn
    from (checked: a pixel at 0 or 1 keeps its value in every binarization)."""
    from ... import data

    binary = ctx.train_data()
    grey, _ = data.load(ctx.data_name, "train", binarize=None, data_dir=ctx.data_dir)
    grey = grey.to(binary)
    if grey.shape != binary.shape or bool(
        ((grey == 0) & (binary == 1)).any() or ((grey == 1) & (binary == 0)).any()
    ):
        raise ValueError(
            f"--dynamic-binarization: the grey levels of {ctx.data_name!r} ({tuple(grey.shape)}) "
            f"are not those of the run's training images ({tuple(binary.shape)})"
        )
    return grey


def _stages(
    model: VAE, objective: VariationalBound, ctx: Context, config: TrainConfig
) -> list[Stage]:
    """One stage, on the fixed binary training images, or on their grey levels with
    --dynamic-binarization (the objective binarizes every minibatch)."""
    if not ctx.options["dynamic_binarization"]:
        return [Stage("train", model, objective, ctx.train_data(), config)]
    x = grey_training_images(ctx)
    return [Stage("train", model, objective, x, config, "dynamic binarization of every minibatch")]


def binarization_notes(ctx: Context) -> dict[str, str]:
    """Which binary images the model trained on and which it is scored on."""
    fixed = (
        "fixed binarization (Larochelle & Murray 2011)"
        if ctx.data_name == "binarized-mnist"
        else f"fixed stochastic binarization of {ctx.data_name} (one draw per image with a "
        "fixed seed, Salakhutdinov & Murray 2008)"
    )
    dynamic = ctx.options["dynamic_binarization"] and ctx.data_name != "binarized-mnist"
    training = (
        f"dynamic binarization of {ctx.data_name} (every minibatch drawn afresh from the grey "
        "levels, Burda et al. 2016)"
        if dynamic
        else fixed
    )
    return {"training_binarization": training, "test_binarization": fixed}


def _eval_settings(ctx: Context, device: torch.device) -> tuple[int, int]:
    k = ctx.options["eval_k"]
    if ctx.quick:
        k = min(k, QUICK_EVAL_K)
    batch = ctx.options["eval_batch"]
    if batch <= 0:
        # CPU: a few thousand rows stay in cache (fastest measured); GPUs want big launches
        batch = 2000 if device.type == "cpu" else 200_000
    return k, batch


def iwae_bounds(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    batch_size: int,
    label: str,
    progress: bool = True,
) -> Bounds:
    """``model.bounds`` of ``x`` (IWAE-k, ELBO, ESS per example) with a progress bar over the
    examples on a terminal (``progress``; ``--no-progress`` turns it off), named by ``label``."""
    bar = progress_bar(progress, x.shape[0], f"IWAE-{k} on {x.shape[0]} {label} images")
    try:
        update = None if bar is None else bar.update
        return model.bounds(x, k=k, generator=generator, batch_size=batch_size, progress=update)
    finally:
        if bar is not None:
            bar.close()


def _evaluate(
    model: VAE, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    k, batch = _eval_settings(ctx, x_test.device)
    start = time.perf_counter()
    test = iwae_bounds(model, x_test, k, ctx.generator, batch, "test", ctx.progress)
    seconds = time.perf_counter() - start
    train_rows = x_train[:TRAIN_EVAL_EXAMPLES]
    train = iwae_bounds(model, train_rows, k, ctx.generator, batch, "training", ctx.progress)
    with torch.no_grad():
        mu, log_var = model.encode(x_test)
        kl, kl_se = mean_and_se(gaussian_kl_to_standard_normal(mu, log_var))
        active = int((mu.var(0) > ACTIVE_UNIT_THRESHOLD).sum()) if x_test.shape[0] > 1 else 0
    iwae, iwae_se = mean_and_se(test.iwae)
    elbo, elbo_se = mean_and_se(test.elbo)
    return {
        "test_log_likelihood": iwae,
        "test_log_likelihood_se": iwae_se,
        "log_likelihood_method": f"iwae-{k}",
        "train_log_likelihood": mean_and_se(train.iwae)[0],
        "train_log_likelihood_examples": train_rows.shape[0],
        "test_elbo": elbo,
        "test_elbo_se": elbo_se,
        "test_kl": kl,
        "test_kl_se": kl_se,
        "test_reconstruction": elbo + kl,
        "importance_ess_median": float(test.ess.median()),
        "active_units": active,
        "latent": model.latent,
        "eval_k": k,
        "eval_seconds": round(seconds, 2),
        **binarization_notes(ctx),
    }


# ----- figures -----------------------------------------------------------------------------------
def _standard_normal_quantiles(n: int) -> torch.Tensor:
    """n evenly spaced quantiles of N(0, 1) from 5% to 95% (the manifold grid of Kingma &
    Welling's Figure 4), computed in float64."""
    p = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
    return math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)


def _manifold_figure(model: VAE, ctx: Context, n: int = 15) -> Figure:
    shape = ctx.image_shape
    assert shape is not None
    axis = _standard_normal_quantiles(n).to(model.dtype)
    # row i: z_2 from high to low, column j: z_1 from low to high
    z = torch.stack(torch.meshgrid(axis, axis.flip(0), indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        images = model.mean_x_given_z(z.to(model.device))
    return Figure(
        viz.image_grid(
            images, shape, ctx.out_dir / "manifold.png", nrow=n, title="VAE latent manifold"
        ),
        "Latent manifold",
        f"E[x | z] on a {n} x {n} grid of z at the 5%..95% quantiles of the N(0, I) prior.",
    )


def _latent_scatter(model: VAE, x_test: torch.Tensor, ctx: Context) -> Figure:
    """Encoder means of the test images: the two latent coordinates, or with more than two
    latent units their first two principal components."""
    import matplotlib.pyplot as plt

    with torch.no_grad():
        mu, _ = model.encode(x_test)
    mu = mu.double().cpu()
    if model.latent == 2:
        points, names = mu, ("E_q[z_1]", "E_q[z_2]")
    else:
        centered = mu - mu.mean(0)
        _, _, v = torch.linalg.svd(centered, full_matrices=False)
        points, names = centered @ v[:2].T, ("PC 1 of E_q[z]", "PC 2 of E_q[z]")
    y = ctx.labels("test", points.shape[0])
    labels = None if y is None else y.cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    xy = points.numpy()
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
    if labels is not None:
        fig.colorbar(scatter, ax=ax, label="class")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    viz.fit_title(ax, "VAE: test images in latent space")
    path = viz.save_figure(fig, ctx.out_dir / "latent.png")
    what = "" if model.latent == 2 else f" (projected from {model.latent} dimensions by PCA)"
    return Figure(
        path,
        "Latent space",
        f"Encoder means of the test images{what}, coloured by class (labels unused in training).",
    )


def _figures(model: VAE, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return []
    samples = model.sample(64, generator=ctx.generator)
    draws = model.sample(16, generator=ctx.generator, mean=False)
    originals = x_test[:10]
    recon = model.reconstruct(originals)
    recon_z = model.reconstruct(originals, generator=ctx.generator, sample_z=True)
    rows = [("data", originals), ("z = mean", recon), ("z ~ q", recon_z)]
    figures = [
        Figure(
            viz.samples_beside_data(
                samples, x_test, shape, ctx.out_dir / "samples.png", title="VAE samples E[x | z]"
            ),
            "Samples",
            "Left: 64 test images. Right: z ~ N(0, I) from the prior, shown as the decoder's "
            "pixel probabilities E[x | z].",
        ),
        Figure(
            viz.image_grid(
                draws,
                shape,
                ctx.out_dir / "samples_binary.png",
                nrow=8,
                title="VAE samples x ~ p(x | z)",
            ),
            "Binary samples",
            "Ancestral draws of the binary pixels themselves (what the likelihood scores).",
        ),
        Figure(
            viz.labelled_rows(
                rows, shape, ctx.out_dir / "reconstructions.png", title="VAE reconstructions"
            ),
            "Reconstructions",
            "Test images, E[x | z] at the encoder mean, and at one draw z ~ q(z | x).",
        ),
    ]
    if model.latent >= 2 and x_test.shape[0] > 2:
        figures.append(_latent_scatter(model, x_test, ctx))
    if model.latent == 2:
        figures.append(_manifold_figure(model, ctx))
    return figures


#: ``--preset paper``: Burda et al. (2016)'s one-stochastic-layer MNIST model and schedule.
VAE_PRESETS = {
    "paper": Preset(
        "Burda et al. 2016: 784-200-200-50 tanh, IWAE-5 on dynamically binarized images, batch "
        "20, Adam 1e-3 -> 1e-4 over 3,280 epochs (add --max-minutes to fit the machine; their "
        "IWAE-5: -85.54, VAE: -86.76)",
        options={
            "hidden": "200,200",
            "latent": 50,
            "activation": "tanh",
            "bound": "iwae",
            "k": 5,
            "warmup_epochs": 0.0,
            "dynamic_binarization": True,
            "eval_k": 5000,
        },
        train={
            "epochs": 3280,
            "batch_size": 20,
            "lr": 1e-3,
            "optimizer": "adam",
            "schedule": "exponential",
            "final_lr_fraction": 0.1,
        },
    )
}

TRAIN_DEFAULTS = {
    "epochs": 100,
    "batch_size": 100,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "exponential",
    "final_lr_fraction": 0.1,  # Burda et al.: 1e-3 down to 1e-4
    "log_every_steps": 100,
}

register(
    Recipe(
        name="vae",
        summary="variational autoencoder (ELBO or IWAE-k training); IWAE-5000 log-likelihood",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        stages=_stages,
        binarize="stochastic",
        options=OPTIONS,
        train_defaults=TRAIN_DEFAULTS,
        presets=VAE_PRESETS,
        demo={
            "data": "digits",
            "options": {"hidden": "128", "latent": 8},
            "epochs": 40,
            "batch_size": 50,
            "lr": 3e-3,
        },
    )
)
