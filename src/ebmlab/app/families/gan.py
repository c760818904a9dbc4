"""Recipe ``gan``: generative adversarial networks (Goodfellow et al. 2014), MLP or DCGAN-style.

``ebmlab train gan --data mnist`` trains on grey levels (the sigmoid generator makes grey
images); ``--data 8gaussians`` (any toy 2-D density) uses an MLP with an identity output.
The objective is ``ebmlab.objectives.gan.GANObjective``: minimax discriminator loss,
non-saturating generator loss, both players updated from one loss (see its docstring), with an
R1 penalty on the discriminator's gradient at the data (Mescheder et al. 2018), which made the
runs here converge where the plain game oscillated.

Evaluation. A GAN defines no density, so there is no likelihood: ``evaluate`` returns no
``test_log_likelihood`` and no ``log_likelihood_method`` (not even "none"): it is not in the
likelihood table. Images are scored by the Frechet digit distance (``ebmlab.metrics.frechet``)
of as many samples as there are test images, against the test images, beside the floor (training
images vs test images) and two baselines (independent Bernoulli pixels, uniform noise) at the
same sample size; for grey-level data also ``test_frechet_distance_binarized``, Bernoulli draws
of the samples against the stochastically binarized test set, the number that compares with the
binary families. With labels, per class (``test_frechet_distance_per_class``): the samples
grouped by the classifier's labels, as many of each class as the test set has, against the test
images of that class, beside the floor of as many training images of the class (the numbers the
conditional GAN, ``cgan``, is compared with). On toy 2-D data the grid KL of the other families
is not available (no density to put on the grid); the Frechet distance of the raw coordinates
(means and covariances only) is reported with its train-vs-test floor (it sees only two moments:
a ring smeared over the eight Gaussians scores near the floor), and so is the mean exact data
log-density at the samples, ``sample_data_log_density``, beside its value at test points
(-entropy): smeared samples score below it, samples collapsed onto modes above it. The scatter
plot is the real evaluation.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

from ...metrics.conditional import draw_per_class, per_class_frechet
from ...metrics.frechet import frechet_distance, frechet_distance_features, frechet_metrics
from ...models.gan import ARCHITECTURES, GAN
from ...objectives.gan import GENERATOR_LOSSES, GANObjective
from ...validation import Integral, Real
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register

#: Per data kind, the value an option left at None takes.
AUTO: dict[str, dict[str, Any]] = {
    "image": {"latent_dim": 64, "hidden": 512, "r1_gamma": 3.0},
    "toy2d": {"latent_dim": 8, "hidden": 128, "r1_gamma": 0.1},
}

#: Alternating updates of the adversarial families (the GANs and the CycleGAN).
D_STEPS_OPTION = Option(
    "d_steps", int, 0, "0: simultaneous updates; k: k D steps per G step", check=Integral(0)
)
OPTIONS = (
    Option("architecture", str, "mlp", "generator/discriminator networks", choices=ARCHITECTURES),
    Option("latent_dim", int, None, "dimension of z ~ N(0, I) (default: 64 images, 8 toys)"),
    Option(
        "hidden",
        int,
        None,
        "MLP width (default: 512 images, 128 toys)",
        when={"architecture": ("mlp",)},
    ),
    Option("depth", int, 2, "hidden layers of each MLP", when={"architecture": ("mlp",)}),
    Option(
        "channels",
        int,
        32,
        "channels of the first conv layer (conv)",
        when={"architecture": ("conv",)},
    ),
    Option("batch_norm", bool, True, "BatchNorm in the generator (DCGAN)"),
    Option(
        "generator_loss",
        str,
        "non-saturating",
        "generator loss: -log D(G(z)) or log(1 - D(G(z)))",
        choices=GENERATOR_LOSSES,
    ),
    Option("generator_lr_ratio", float, 1.0, "generator lr / discriminator lr"),
    D_STEPS_OPTION,
    Option(
        "beta1",
        float,
        0.5,
        "Adam beta1 of both players (DCGAN: 0.5)",
        check=Real(0, 1, closed="left"),
    ),
    Option(
        "r1_gamma",
        float,
        None,
        "R1 penalty weight (default: 3 images, 0.1 toys; 0: none)",
        check=Real(0),
    ),
    Option(
        "fd_samples",
        int,
        0,
        "samples for the Frechet distance (0: as many as test images)",
        check=Integral(0),
    ),
)


#: Loop defaults and demo settings (the conditional GAN's too).
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 64,
    "lr": 5e-4,
    "optimizer": "adam",
    "schedule": "constant",
    "log_every_steps": 50,
}
DEMO: dict[str, Any] = {
    "data": "digits",
    "options": {"latent_dim": 16, "hidden": 128},
    "epochs": 30,
    "batch_size": 64,
    "lr": 1e-3,
}


def resolved(ctx: Context) -> dict[str, Any]:
    """The options with every None replaced by its default for the data kind."""
    return ctx.resolved_options(AUTO)


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[GAN, GANObjective]:
    o = resolved(ctx)
    shape = ctx.image_shape
    if o["architecture"] == "conv" and shape is None:
        raise ValueError("architecture: 'conv' needs image data; use 'mlp' for 2-D densities")
    model = GAN(
        x_train.shape[1],
        **network_options(o, shape),
        output="identity" if shape is None else "sigmoid",
        seed=ctx.seed(),
    )
    return model, GANObjective(**objective_options(o))


#: The options that build the networks, and those of the objective (the conditional GAN's too).
NETWORK_OPTIONS = ("latent_dim", "architecture", "hidden", "depth", "channels", "batch_norm")
OBJECTIVE_OPTIONS = ("generator_loss", "generator_lr_ratio", "d_steps", "beta1", "r1_gamma")


def network_options(o: dict[str, Any], shape: tuple[int, int] | None) -> dict[str, Any]:
    """The networks' constructor arguments from the resolved options ``o``."""
    return {
        **{key: o[key] for key in NETWORK_OPTIONS},
        "image_shape": None if shape is None else list(shape),
    }


def objective_options(o: dict[str, Any]) -> dict[str, Any]:
    """The objective's constructor arguments from the resolved options ``o``."""
    return {key: o[key] for key in OBJECTIVE_OPTIONS}


# ----- evaluation --------------------------------------------------------------------------------
@torch.no_grad()
def _samples(model: GAN, n: int, generator: torch.Generator, chunk: int = 5000) -> torch.Tensor:
    parts, left = [], n
    while left > 0:
        parts.append(model.sample(min(chunk, left), generator).cpu())
        left -= parts[-1].shape[0]
    return torch.cat(parts)


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _evaluate(
    model: GAN, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    from ... import data

    n = ctx.options.get("fd_samples") or x_test.shape[0]
    samples = _samples(model, n, ctx.generator)
    metrics: dict[str, Any] = {
        "likelihood": "none: a GAN defines no density (scored by the Frechet distance)"
    }
    if ctx.image_shape is None:
        train_rows = x_train[: min(n, x_train.shape[0])].cpu()
        metrics.update(
            {
                "frechet_distance_raw": frechet_distance_features(samples, x_test.cpu()),
                "frechet_distance_raw_train_floor": frechet_distance_features(
                    train_rows, x_test.cpu()
                ),
                "frechet_n_samples": n,
                "sample_data_log_density": float(
                    data.toy2d_log_density(ctx.data_name, samples).double().mean()
                ),
                "test_data_log_density": float(
                    data.toy2d_log_density(ctx.data_name, x_test.cpu()).double().mean()
                ),
                "kl": "not available: no density to normalize on the grid",
            }
        )
        return metrics
    metrics.update(image_scores(samples, x_train, x_test, ctx))
    y_test = ctx.labels("test", x_test.shape[0])
    if y_test is not None and ctx.labels("train", x_train.shape[0]) is not None:
        # per class: the samples grouped by the classifier's labels, as many per class as the
        # test set has (the distances of a conditional GAN are at the same sample sizes)
        counts = class_counts(y_test)
        grouped, labels, drawn = draw_per_class(
            lambda m: model.sample(m, ctx.generator), counts, ctx.data_name, progress=ctx.progress
        )
        metrics.update(per_class_scores(grouped, labels, x_train, x_test, ctx))
        metrics["frechet_per_class_samples_drawn"] = drawn
    return metrics


def image_scores(
    samples: torch.Tensor, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    """The Frechet digit distance of grey-level or binary samples to the test images with its
    floor and baselines, and for grey levels the distance of Bernoulli draws of the samples to
    the stochastically binarized test set."""
    metrics = frechet_metrics(
        samples, ctx.data_name, x_test.cpu(), x_train.cpu(), seed=ctx.seed(), progress=ctx.progress
    )
    if not _is_binary(x_test):
        g = torch.Generator().manual_seed(ctx.seed())
        binary = (torch.rand(samples.shape, generator=g) < samples).float()
        metrics["test_frechet_distance_binarized"] = frechet_distance(
            binary, ctx.data_name, binarize="stochastic", progress=ctx.progress
        ).distance
    return metrics


def class_counts(labels: torch.Tensor) -> dict[int, int]:
    """Class -> number of examples of that class."""
    classes, counts = torch.unique(labels.cpu(), return_counts=True)
    return {int(k): int(c) for k, c in zip(classes, counts, strict=True)}


def per_class_scores(
    samples: torch.Tensor,
    sample_labels: torch.Tensor,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    ctx: Context,
) -> dict[str, Any]:
    """Per class k: the Frechet digit distance of the samples of class k to the test images of
    class k, beside its floor (as many training images of class k), and their means over the
    classes. Class keys are strings (as in eval.json)."""
    y_test = ctx.labels("test", x_test.shape[0])
    y_train = ctx.labels("train", x_train.shape[0])
    if y_test is None or y_train is None:
        raise ValueError(f"dataset {ctx.data_name!r}: per-class scores need labels")
    x_test, x_train, y_train = x_test.cpu(), x_train.cpu(), y_train.cpu()
    distances = per_class_frechet(
        samples, sample_labels, x_test, y_test, ctx.data_name, progress=ctx.progress
    )
    rows = torch.cat(
        [(y_train == k).nonzero().squeeze(1)[:n] for k, n in class_counts(y_test).items()]
    )
    floor = per_class_frechet(
        x_train[rows], y_train[rows], x_test, y_test, ctx.data_name, progress=ctx.progress
    )
    return {
        "test_frechet_distance_per_class": {str(k): v for k, v in distances.items()},
        "test_frechet_distance_per_class_mean": sum(distances.values()) / len(distances),
        "test_frechet_distance_per_class_train_floor": {str(k): v for k, v in floor.items()},
        "test_frechet_distance_per_class_train_floor_mean": sum(floor.values()) / len(floor),
    }


# ----- figures -----------------------------------------------------------------------------------
def _slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016): stays where N(0, I) has its mass."""
    cos = (z0 * z1).sum(-1, keepdim=True) / (
        z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True)
    )
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))  # clamp: arccos is infinite-slope at +-1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


@torch.no_grad()
def _image_figures(
    model: GAN, x_train: torch.Tensor, shape: tuple[int, int], ctx: Context
) -> list[Figure]:
    samples = model.sample(64, ctx.generator)
    figures = [
        Figure(
            viz.samples_beside_data(
                samples,
                x_train,
                shape,
                ctx.out_dir / "samples.png",
                title="GAN samples G(z)",
                data_heading="training data",
            ),
            "Samples",
            "Left: 64 training images. Right: 64 independent samples G(z), z ~ N(0, I): one pass "
            "through the generator.",
        )
    ]
    rows, steps = 8, 10
    z0, z1 = model.sample_latent(rows, ctx.generator), model.sample_latent(rows, ctx.generator)
    t = torch.linspace(0, 1, steps, device=z0.device).view(1, steps, 1)
    z = _slerp(z0.unsqueeze(1), z1.unsqueeze(1), t).reshape(rows * steps, -1)
    figures.append(
        Figure(
            viz.image_grid(
                model.generate(z),
                shape,
                ctx.out_dir / "interpolation.png",
                nrow=steps,
                title="GAN latent interpolation (slerp)",
            ),
            "Latent interpolation",
            "Each row: G(z) along the great circle between two latent draws; smooth rows mean "
            "the generator has not memorized isolated training images.",
        )
    )
    shown = samples[:10]
    distances = torch.cdist(shown, x_train.to(shown))
    nearest = x_train.to(shown)[distances.argmin(1)]
    figures.append(
        Figure(
            viz.labelled_rows(
                [("sample", shown), ("nearest", nearest)],
                shape,
                ctx.out_dir / "nearest_neighbours.png",
                title="GAN samples and their nearest training images",
            ),
            "Nearest training images",
            "As in Goodfellow et al. (2014), Figure 2: a sample unlike its nearest training "
            "image is not a copy.",
        )
    )
    return figures


@torch.no_grad()
def _toy_figures(model: GAN, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    samples = _samples(model, 5000, ctx.generator).numpy()
    data = x_test[:5000].cpu().numpy()
    lo, hi = -4.5, 4.5
    grid = torch.linspace(lo, hi, 200)
    points = torch.cartesian_prod(grid, grid).to(model.device, model.dtype)
    d_prob = torch.sigmoid(model.discriminate(points)).view(200, 200).cpu().numpy()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    axes[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.4)
    viz.fit_title(axes[0], "data (test)", fontsize=10)
    axes[1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, color="C1")
    viz.fit_title(axes[1], "GAN samples", fontsize=10)
    image = axes[2].imshow(
        d_prob.T, origin="lower", extent=(lo, hi, lo, hi), cmap="coolwarm", vmin=0, vmax=1
    )
    viz.fit_title(axes[2], "D(x) (1/2 where it cannot tell)", fontsize=10)
    fig.colorbar(image, ax=axes[2], fraction=0.046, label="D(x): probability of data")
    for ax in axes:
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    path = viz.save_figure(fig, ctx.out_dir / "samples.png")
    return [
        Figure(
            path,
            "Samples",
            "5,000 test points, 5,000 GAN samples, and the discriminator's probability that a "
            "point is data (at equilibrium D = 1/2 wherever the data lie).",
        )
    ]


def _figures(model: GAN, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    shape = ctx.image_shape
    if shape is None:
        return _toy_figures(model, x_test, ctx)
    # the nearest-neighbour figure searches the run's training images
    return _image_figures(model, ctx.train_data(), shape, ctx)


register(
    Recipe(
        name="gan",
        summary="GAN (MLP or DCGAN-style), non-saturating loss + R1; Frechet digit distance",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        binarize=None,
        options=OPTIONS,
        train_defaults=TRAIN_DEFAULTS,
        demo=DEMO,
        data_kinds=("image", "toy2d"),
    )
)
