"""Recipes ``diffusion`` (a DDPM, Ho, Jain & Abbeel 2020, with a small U-Net on grey-level
images) and ``bernoulli-diffusion`` (a discrete diffusion on binary images, whose bound joins the
binarized-MNIST table).

``ebmlab train diffusion --data mnist --eval`` (8-bit grey levels; ``--data digits``: 17 levels).
Training minimizes the simplified epsilon loss (``ebmlab.objectives.diffusion.DiffusionLoss``).

Evaluation.
* The variational bound in nats per image (``test_log_likelihood``, tag ``"diffusion-elbo"``):
  -L = -(L_T + sum_{t>=2} L_{t-1} + L_0) with Ho et al.'s discretized Gaussian decoder at t = 1,
  a lower bound on the log-probability of the K-level image itself (no dequantization noise),
  estimated per image with one draw of y_t per term and a stratified sample of
  ``--bound-timesteps`` of the T - 1 KL terms (unbiased for the bound), on the first
  ``--bound-images`` test images (0: all), with its standard error over images; also in bits per
  dimension and split into its three parts. Not comparable with the binarized-MNIST table: it is
  the probability of 8-bit images.
* The Frechet digit distance (``ebmlab.metrics.frechet``) of ``--fd-samples`` ancestral samples
  (``--sample-steps`` steps of a respaced chain, Nichol & Dhariwal 2021) against the test set,
  with the training-set floor and two baselines at the same sample size, and the distance of
  Bernoulli draws of the samples against the binarized test set (as the GAN reports).

Figures: samples beside test images, and the forward process of test digits at several t with
the network's prediction of x_0 from each noisy image.

``ebmlab train bernoulli-diffusion --data mnist --eval`` (stochastically binarized MNIST): the
``BernoulliDiffusion`` model trained on its own bound (``BernoulliDiffusionLoss``); ``evaluate``
reports the bound on the binary test images (tag ``"diffusion-elbo"``, every term an exact sum
over the two pixel values, estimated as for the DDPM) and the Frechet digit distance of its exact
ancestral samples against the binarized test set.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...estimators.bounds import per_example
from ...metrics.frechet import frechet_distance, frechet_metrics
from ...models.diffusion import DDPM, SCHEDULES, VARIANCES, BernoulliDiffusion
from ...models.image_flows import infer_levels
from ...objectives.diffusion import BernoulliDiffusionLoss, DiffusionLoss
from ...stats import mean_and_se
from ...validation import Integral, Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, parse_sizes, register

#: Test images per chunk of the bound (each costs 1 + bound_timesteps network passes).
BOUND_CHUNK = 250
#: Samples per chunk of ancestral sampling.
SAMPLE_CHUNK = 500


#: The U-Net's options, shared by both recipes.
NETWORK_OPTIONS = (
    Option("channels", int, 16, "U-Net channels at the first resolution"),
    Option("channel_mults", str, "1,2,2", "channel multiples per resolution"),
    Option("blocks", int, 1, "residual blocks per resolution"),
)


def scoring_options(bound_images: int) -> tuple[Option, ...]:
    """The options of the evaluation: samples for the Frechet distance, images and timesteps of
    the bound."""
    return (
        Option(
            "fd_samples",
            int,
            1000,
            "samples for the Frechet distance (0: test set size)",
            check=Integral(0),
        ),
        Option(
            "bound_images",
            int,
            bound_images,
            "test images scored by the bound (0: all)",
            check=Integral(0),
        ),
        Option("bound_timesteps", int, 8, "KL terms per image, stratified over t"),
    )


#: Loop settings of both recipes (each sets its gradient clipping).
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "cosine",
    "final_lr_fraction": 0.1,
    "log_every_steps": 50,
}


def _demo(epochs: int, **options: Any) -> dict[str, Any]:
    """``ebmlab demo``'s settings on digits: a two-resolution U-Net, every test image scored."""
    network = {"channels": 16, "channel_mults": "1,2", "fd_samples": 0, "bound_images": 0}
    return {
        "data": "digits",
        "options": {**network, **options},
        "epochs": epochs,
        "batch_size": 64,
        "lr": 2e-3,
    }


def _network(o: dict[str, Any]) -> dict[str, Any]:
    """The U-Net's constructor arguments from the recipe options."""
    return {
        "channels": o["channels"],
        "channel_mults": parse_sizes(o["channel_mults"], "channel_mults", "1,2,2"),
        "n_blocks": o["blocks"],
    }


def _require_images(ctx: Context, family: str) -> None:
    if ctx.image_shape is None:
        raise ValueError(
            f"data: {family} models images; {ctx.data_name!r} has no image shape "
            "(use digits, mnist or fashion-mnist)"
        )


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[DDPM, DiffusionLoss]:
    _require_images(ctx, "diffusion")
    o = ctx.options
    model = DDPM(
        list(ctx.image_shape),
        levels=infer_levels(x_train[:1000]),
        n_steps=o["timesteps"],
        schedule=o["noise_schedule"],
        variance=o["variance"],
        **_network(o),
    )
    model.check_images(x_train[:1000], "x_train")
    return model, DiffusionLoss()


@torch.no_grad()
def draw_samples(
    model: DDPM | BernoulliDiffusion, n: int, generator: torch.Generator, n_steps: int | None
) -> torch.Tensor:
    """n ancestral samples (n, D) on the CPU, in chunks."""
    parts, left = [], n
    while left > 0:
        parts.append(model.sample(min(SAMPLE_CHUNK, left), generator, n_steps=n_steps).cpu())
        left -= parts[-1].shape[0]
    return torch.cat(parts) if parts else torch.zeros(0, model.n_visible)


def bound_metrics(
    model: DDPM | BernoulliDiffusion, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    """The bound on the first ``bound_images`` test images (all: 0), as ``test_log_likelihood``
    with its standard error over images, in bits per dimension, and its three parts."""
    n_bound = ctx.options["bound_images"] or x_test.shape[0]
    n_t = ctx.quick_capped("bound_timesteps", 2)
    scored = x_test[: min(n_bound, x_test.shape[0])]
    terms: dict[str, list[torch.Tensor]] = {"prior": [], "diffusion": [], "decoder": []}

    def total(part: torch.Tensor) -> torch.Tensor:
        parts = model.bound_terms(part, ctx.generator, n_timesteps=n_t)
        for key in terms:
            terms[key].append(parts[key])
        return -parts["total"]

    ll, se = mean_and_se(per_example(total, scored, BOUND_CHUNK))
    return {
        "test_log_likelihood": ll,
        "test_log_likelihood_se": se,
        "log_likelihood_method": "diffusion-elbo",
        "test_bits_per_dim": -ll / (model.n_visible * math.log(2)),
        **{
            f"bound_{key}_nats": float(torch.cat(values).double().mean())
            for key, values in terms.items()
        },
        "bound_images": int(scored.shape[0]),
        "bound_timesteps": n_t,
    }


def _frechet_scores(
    samples: torch.Tensor, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    """``frechet_metrics`` of the samples against the run's test images (with the run's progress
    setting)."""
    return frechet_metrics(
        samples, ctx.data_name, x_test.cpu(), x_train.cpu(), seed=ctx.seed(), progress=ctx.progress
    )


def _evaluate(
    model: DDPM, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.eval()
    metrics = bound_metrics(model, x_test, ctx)
    metrics["levels"] = model.levels
    metrics["log_likelihood_note"] = (
        f"lower bound on the log-probability of the {model.levels}-level images "
        "(discretized decoder at t = 1); not comparable with binarized data"
    )
    n = ctx.quick_capped("fd_samples", 100) or x_test.shape[0]
    steps = ctx.quick_capped("sample_steps", 20)
    samples = draw_samples(model, n, ctx.generator, steps)
    metrics.update(_frechet_scores(samples, x_train, x_test, ctx))
    g = torch.Generator().manual_seed(ctx.seed())
    binary = (torch.rand(samples.shape, generator=g) < samples).float()
    metrics["test_frechet_distance_binarized"] = frechet_distance(
        binary, ctx.data_name, binarize="stochastic", progress=ctx.progress
    ).distance
    metrics["sample_steps"] = steps
    return metrics


def _shown_timesteps(model: DDPM | BernoulliDiffusion) -> list[torch.Tensor]:
    """The timesteps of the denoising figure: 10%, 30%, ..., 90% of T, for 8 images each."""
    return [
        torch.full((8,), max(1, round(f * model.n_steps)), device=model.device)
        for f in (0.1, 0.3, 0.5, 0.7, 0.9)
    ]


def _diffusion_figures(
    model: DDPM | BernoulliDiffusion,
    samples: torch.Tensor,
    x_test: torch.Tensor,
    rows: list[tuple[str, torch.Tensor]],
    ctx: Context,
    name: str,
    captions: tuple[str, str],
) -> list[Figure]:
    """Samples beside as many test images, and the rows of the denoising figure."""
    n, shape = samples.shape[0], model.image_shape
    return [
        Figure(
            viz.samples_beside_data(
                samples,
                x_test[:n],
                shape,
                ctx.out_dir / "samples.png",
                title=f"{name} samples",
                nrow=math.ceil(math.sqrt(n)),
            ),
            "Samples",
            f"Left: {n} test images. Right: {n} {captions[0]}",
        ),
        Figure(
            viz.labelled_rows(
                rows, shape, ctx.out_dir / "denoising.png", title=f"{name}: noised and denoised"
            ),
            "Forward process and denoising",
            captions[1],
        ),
    ]


@torch.no_grad()
def _figures(model: DDPM, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    model.eval()
    steps = ctx.quick_capped("sample_steps", 20)
    samples = draw_samples(model, 16 if ctx.quick else 64, ctx.generator, steps)
    originals = x_test[:8].to(model.device, model.dtype)
    y0 = model.scale(originals)
    rows: list[tuple[str, torch.Tensor]] = [("x_0", originals)]
    for t in _shown_timesteps(model):
        yt = model.q_sample(y0, t, model.noise_like(y0, ctx.generator))
        abar = model.schedule(t)["abar"]
        predicted = (yt - (1 - abar).sqrt() * model.predict_noise(yt, t)) / abar.sqrt()
        rows.append((f"y_t, t={int(t[0])}", ((yt.clamp(-1, 1) + 1) / 2)))
        rows.append(("x_0 predicted", ((predicted.clamp(-1, 1) + 1) / 2)))
    captions = (
        f"ancestral samples ({steps} steps of the respaced chain of T = {model.n_steps}), the "
        "decoder's mean at t = 1.",
        "Test digits noised by q(y_t | y_0) at several t (clipped to [0, 1] for display), and "
        "the network's one-step prediction of x_0 from each, "
        "(y_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t).",
    )
    return _diffusion_figures(model, samples, x_test, rows, ctx, "DDPM", captions)


register(
    Recipe(
        name="diffusion",
        summary="DDPM with a small U-Net on grey levels: epsilon loss, ancestral sampling, bound",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=(
            *NETWORK_OPTIONS,
            Option("timesteps", int, 1000, "diffusion steps T"),
            Option("noise_schedule", str, "linear", "beta schedule (linear: Ho et al.)", SCHEDULES),
            Option(
                "variance",
                str,
                "beta",
                "reverse variances: beta (sigma^2 = beta_t) or posterior (beta~_t)",
                VARIANCES,
            ),
            Option("sample_steps", int, 100, "steps of the respaced ancestral sampler (<= T)"),
            *scoring_options(bound_images=1000),
        ),
        train_defaults={**TRAIN_DEFAULTS, "max_grad_norm": 1.0},
        demo=_demo(epochs=15, timesteps=200, sample_steps=40),
    )
)


# ----- Bernoulli diffusion on binary images -------------------------------------------------------
def _build_bernoulli(
    x_train: torch.Tensor, ctx: Context
) -> tuple[BernoulliDiffusion, BernoulliDiffusionLoss]:
    _require_images(ctx, "bernoulli-diffusion")
    o = ctx.options
    model = BernoulliDiffusion(
        list(ctx.image_shape),
        n_steps=o["timesteps"],
        **_network(o),
    )
    model.check_images(x_train[:1000], "x_train")
    return model, BernoulliDiffusionLoss(aux_weight=o["aux_weight"])


def _evaluate_bernoulli(
    model: BernoulliDiffusion, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.eval()
    metrics = bound_metrics(model, x_test, ctx)
    n = ctx.quick_capped("fd_samples", 100) or x_test.shape[0]
    if ctx.data_name != "binarized-mnist":  # the Frechet classifier needs the dataset's labels
        samples = draw_samples(model, n, ctx.generator, None)
        metrics.update(_frechet_scores(samples, x_train, x_test, ctx))
    return metrics


@torch.no_grad()
def _figures_bernoulli(
    model: BernoulliDiffusion, x_test: torch.Tensor, ctx: Context
) -> list[Figure]:
    model.eval()
    samples = draw_samples(model, 16 if ctx.quick else 64, ctx.generator, None)
    originals = x_test[:8].to(model.device, model.dtype)
    rows: list[tuple[str, torch.Tensor]] = [("x_0", originals)]
    for t in _shown_timesteps(model):
        xt = model.q_sample(originals, t, ctx.generator)
        rows.append((f"x_t, t={int(t[0])}", xt))
        rows.append(("p(x_0 = 1 | x_t)", torch.sigmoid(model.predict_logits(xt, t))))
    captions = (
        f"exact ancestral samples (T = {model.n_steps} steps from Bernoulli(1/2) noise).",
        "Test images with each pixel redrawn from Bernoulli(1/2) with probability "
        "1 - abar_t = t / T, and the network's probabilities p~(x_0 = 1 | x_t).",
    )
    return _diffusion_figures(model, samples, x_test, rows, ctx, "Bernoulli diffusion", captions)


register(
    Recipe(
        name="bernoulli-diffusion",
        summary="Bernoulli (discrete) diffusion on binary images: exact-sum variational bound",
        build=_build_bernoulli,
        evaluate=_evaluate_bernoulli,
        figures=_figures_bernoulli,
        binarize="stochastic",
        options=(
            *NETWORK_OPTIONS,
            Option("timesteps", int, 100, "diffusion steps T"),
            Option(
                "aux_weight",
                float,
                0.01,
                "weight of the cross-entropy on p~(x_0 | x_t)",
                check=Real(0),
            ),
            *scoring_options(bound_images=2000),
        ),
        # the loss is the bound in nats per image, far larger than the DDPM's per-pixel error
        train_defaults={**TRAIN_DEFAULTS, "max_grad_norm": 100.0},
        demo=_demo(epochs=10, timesteps=50),
    )
)
