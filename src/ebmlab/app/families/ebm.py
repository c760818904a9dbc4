"""Recipe ``ebm``: neural energy-based models trained by every method of lectures 001 and 003.

``ebmlab train ebm --data 8gaussians --objective cd|sm|ssm|dsm|ncsn|nce|fce``

  cd    contrastive divergence with Langevin negatives and a replay buffer (Du & Mordatch 2019)
  sm    exact score matching (Hyvarinen 2005)
  ssm   sliced score matching (Song et al. 2019)
  dsm   denoising score matching at one noise level (Vincent 2011)
  ncsn  multi-level denoising score matching + annealed Langevin (Song & Ermon 2019)
  nsm   exact score matching on (x + sigma z, log sigma) jointly, read at a small sigma
        (noise-augmented; after Qin & Risteski 2023): score matching that weighs separated modes
  nce   noise contrastive estimation against a fitted Gaussian (Gutmann & Hyvarinen 2010)
  fce   flow contrastive estimation, a RealNVP noise trained adversarially (Gao et al. 2020)

Toy 2-D densities are scored exactly: exp(-E) is normalized on a fine grid
(``ebmlab.data.toy2d_grid``), the test log-likelihood is mean(-E(x_test)) - log Z_grid in nats,
and KL(p_data || p_model) is summed on the grid against ``ebmlab.data.toy2d_log_density``.
Grey-level images are scored by inpainting error against a mean-image baseline and by the energy
gap between test images and noise, and shown as Langevin samples from noise and inpaintings.

Binary images (``--binarize stochastic`` with ``--sampler gwg|dmala|dula``): the energy is
E(x) = g(x) - b^T x with b the logits of the data marginals (a fixed independent-Bernoulli base,
``EnergyNetwork(bernoulli_base=True)``), trained by persistent CD with a gradient-informed
discrete kernel (``ebmlab.objectives.ContrastiveDiscrete``: Gibbs-with-gradients, or the
discrete Langevin proposal with or without its MH correction) on a replay buffer started from
the base. ``--eval`` scores it in nats per image with AIS from the base-rate model of the
training data, one ``ais_kernel`` step (DMALA or GWG) per inverse temperature: the forward
estimate (log Z stochastically low, so the log-likelihood optimistic; method "ais") and the
reverse estimate from chains started at training images (the other side of the bracket), as the
RBM family reports them.

Divergence remedies (the JEM maintainers' advice: restart from the last good checkpoint with a
new seed and a lower learning rate, more Langevin steps, a larger L2 energy penalty) are
``ebmlab.training.train_with_restarts`` (``ebmlab train ... --restarts N``), which calls the
objective's ``apply_remedies``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ... import estimators
from ...estimators.binary_energy import BinaryEnergy
from ...estimators.grid import energies, grid_log_likelihood
from ...models.neural import ConvEnergy, EnergyNetwork, MLPEnergy, geometric_sigmas
from ...objectives.base import Objective
from ...objectives.contrastive_discrete import (
    SAMPLERS,
    ContrastiveDiscrete,
    make_discrete_kernel,
)
from ...objectives.contrastive_langevin import ContrastiveLangevin
from ...objectives.nce import FlowContrastiveEstimation, NoiseContrastiveEstimation
from ...objectives.score_matching import (
    DenoisingScoreMatching,
    ExactScoreMatching,
    NoiseAugmentedScoreMatching,
    NoiseConditionalScoreMatching,
    SlicedScoreMatching,
)
from ...samplers import sample as run_chains
from ...validation import Integral, Real
from .. import viz
from ..recipes import (
    Context,
    Figure,
    Option,
    Recipe,
    ais_bracket_metrics,
    parse_sizes,
    register,
    top_half_known,
)

OBJECTIVES = ("cd", "sm", "ssm", "dsm", "ncsn", "nsm", "nce", "fce")

#: Per data kind, the settings an option left at None takes.
AUTO: dict[str, dict[str, Any]] = {
    "toy2d": {
        "network": "mlp",
        "langevin_steps": 10,
        "step_size": 0.002,
        "noise_scale": None,
        "sample_steps": 1000,
        "sigma": 0.05,
        "sigma_start": 1.0,
        "anneal_steps": 1500,
        "sigma_max": 3.0,
        "sigma_min": 0.05,
        "jump_steps": 1,
    },
    "image": {
        "network": "conv",
        "langevin_steps": 40,
        "step_size": 1.0,
        "noise_scale": 0.005,
        "sample_steps": 100,
        "sigma": 0.1,
        "sigma_start": 0.0,
        "anneal_steps": 0,
        "sigma_max": 3.0,
        "sigma_min": 0.02,
        "jump_steps": 0,
    },
}


#: The settings an option left at None takes on binary images with a discrete sampler.
BINARY_AUTO: dict[str, Any] = {
    "network": "mlp",
    "alpha": 0.0,
    "reinit": 0.0,
    "sample_steps": 1000,
}
#: ... and with Langevin chains (grey levels, 2-D densities).
LANGEVIN_AUTO: dict[str, Any] = {"alpha": 0.01, "reinit": 0.05}


def is_discrete(ctx: Context) -> bool:
    """Whether the run samples binary states with a gradient-informed discrete kernel."""
    return ctx.options.get("sampler", "langevin") in SAMPLERS


def resolved(ctx: Context) -> dict[str, Any]:
    """The options with every None replaced by its default for the data kind (and for the
    discrete samplers, their own: an MLP, no energy penalty, no restarts from the base)."""
    if is_discrete(ctx):
        options, auto = dict(ctx.options), {**AUTO["image"], **BINARY_AUTO}
    else:
        options, auto = ctx.resolved_options(AUTO), LANGEVIN_AUTO
    for key, value in auto.items():
        if options.get(key) is None:
            options[key] = value
    return options


def check_discrete(ctx: Context, x_train: torch.Tensor) -> None:
    """A discrete sampler needs binary images and the CD objective."""
    o = ctx.options
    if ctx.image_shape is None:
        raise ValueError(f"sampler: {o['sampler']!r} samples binary images, not 2-D densities")
    if o["objective"] != "cd":
        raise ValueError(
            f"sampler: {o['sampler']!r} trains by contrastive divergence; use --objective cd "
            f"(got {o['objective']!r})"
        )
    if not bool(((x_train == 0) | (x_train == 1)).all()):
        raise ValueError(
            f"sampler: {o['sampler']!r} moves binary states; binarize the images first "
            "(--binarize stochastic)"
        )


def build_model(dim: int, ctx: Context) -> EnergyNetwork:
    """The energy network the options ask for (noise-conditional for ``ncsn``)."""
    o = resolved(ctx)
    sigmas = None
    step = o["step_size"]
    if o["objective"] == "ncsn":
        sigmas = geometric_sigmas(o["sigma_max"], o["sigma_min"], o["n_levels"])
    elif o["objective"] == "nsm":
        # the ladder of annealed Langevin sampling: from two standard deviations above the
        # centre of the training levels down to the level where the density is read
        top = o["sigma_center"] * math.exp(2 * o["sigma_spread"])
        sigmas = geometric_sigmas(max(top, 2 * o["sigma_eval"]), o["sigma_eval"], o["n_levels"])
    if sigmas is not None:
        # annealed Langevin: eps at the finest level (Song & Ermon use 2e-5 at sigma_L = 0.01)
        step = 2e-5 * (sigmas[-1] / 0.01) ** 2
    sampling = {
        "sigmas": sigmas,
        "langevin_step": step,
        "langevin_noise": o["noise_scale"],
        "langevin_steps": o["sample_steps"],
        "noise_scaling": "none" if o["objective"] == "nsm" else "inverse",
    }
    if is_discrete(ctx):
        sampling["bernoulli_base"] = True
    if o["network"] == "conv":
        if ctx.image_shape is None:
            raise ValueError("network: 'conv' needs image data; use 'mlp' for 2-D densities")
        return ConvEnergy(
            list(ctx.image_shape),
            channels=parse_sizes(o["channels"], "channels", example="32,64"),
            activation=o["activation"],
            **sampling,
        )
    data_range = [0.0, 1.0] if ctx.image_shape is not None else [-4.5, 4.5]
    return MLPEnergy(
        dim,
        hidden=o["hidden"],
        depth=o["depth"],
        activation=o["activation"],
        data_range=data_range,
        clamp=ctx.image_shape is not None,
        **sampling,
    )


def build_objective(dim: int, ctx: Context) -> Objective:
    """The training objective named by the ``objective`` option."""
    o = resolved(ctx)
    name = o["objective"]
    if name == "cd" and is_discrete(ctx):
        return ContrastiveDiscrete(
            sampler=o["sampler"],
            n_steps=o["discrete_steps"],
            step_size=o["discrete_step_size"],
            n_flips=o["n_flips"],
            chains=o["chains"],
            buffer_size=o["buffer_size"],
            reinit_fraction=o["reinit"],
            alpha=o["alpha"],
            seed=int(ctx.generator.initial_seed()) % (2**31),
        )
    if name == "cd":
        return ContrastiveLangevin(
            n_steps=o["langevin_steps"],
            step_size=o["step_size"],
            noise_scale=o["noise_scale"],
            chains=o["chains"],
            buffer_size=o["buffer_size"],
            reinit_fraction=o["reinit"],
            jump_steps=o["jump_steps"],
            alpha=o["alpha"],
            clamp=ctx.image_shape is not None,
            seed=int(ctx.generator.initial_seed()) % (2**31),
        )
    anneal = {"sigma_start": o["sigma_start"] or None, "anneal_steps": o["anneal_steps"]}
    if name == "sm":
        return ExactScoreMatching(**anneal)
    if name == "ssm":
        return SlicedScoreMatching(
            n_projections=o["projections"], projection=o["projection"], **anneal
        )
    if name == "dsm":
        return DenoisingScoreMatching(
            sigma=o["sigma"],
            sigma_start=max(o["sigma_start"], o["sigma"]),
            anneal_steps=o["anneal_steps"],
        )
    if name == "ncsn":
        return NoiseConditionalScoreMatching()
    if name == "nsm":
        return NoiseAugmentedScoreMatching(
            log_sigma_mean=math.log(o["sigma_center"]), log_sigma_std=o["sigma_spread"]
        )
    if name == "nce":
        return NoiseContrastiveEstimation(noise_ratio=o["noise_ratio"])
    if name == "fce":
        return FlowContrastiveEstimation(
            dim,
            noise_ratio=o["fce_noise_ratio"],
            flow_layers=o["flow_layers"],
            flow_hidden=o["flow_hidden"],
        )
    raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {name!r}")


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[EnergyNetwork, Objective]:
    dim = x_train.shape[1]
    if is_discrete(ctx):
        check_discrete(ctx, x_train)
    model = build_model(dim, ctx)
    if model.bernoulli_base:
        with torch.no_grad():
            model.base_logits.copy_(estimators.base_rate_bias(x_train.flatten(1)))
    return model, build_objective(dim, ctx)


# ----- evaluation -------------------------------------------------------------------------------
def _learned_log_z(ctx: Context) -> float | None:
    """NCE/FCE's learned log Z from the run's checkpoint, when there is one."""
    path = ctx.out_dir / "checkpoint.safetensors"
    if not path.exists():
        return None
    from ...io import read_checkpoint

    _, tensors = read_checkpoint(path)
    value = tensors.get("objective.log_z")
    return None if value is None else float(value)


def bottom_half_mask(n: int, image_shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Known pixels: the top half of every image (the bottom half is inpainted)."""
    return top_half_known(image_shape, device).expand(n, -1).clone()


def _quick_steps(model: EnergyNetwork, ctx: Context) -> int | None:
    """Langevin steps for image evaluation and figures: the model's default, capped at 200 in
    quick runs (the demo)."""
    return min(model.langevin_steps, 200) if ctx.quick else None


def ais_kernel(ctx: Context) -> Any:
    """The AIS transition and the chains of the figures on binary images: ``ais_kernel``
    (DMALA at ``discrete_step_size``, or single-flip GWG)."""
    o = resolved(ctx)
    return make_discrete_kernel(o["ais_kernel"], o["discrete_step_size"])


def model_chains(
    model: EnergyNetwork, start: torch.Tensor, n_steps: int, ctx: Context, energy: Any = None
) -> torch.Tensor:
    """The states after ``n_steps`` steps of the AIS kernel from ``start`` under the model (or
    under ``energy``)."""
    for p in model.parameters():
        p.requires_grad_(False)
    result = run_chains(
        ais_kernel(ctx),
        energy if energy is not None else model.energy,
        start,
        n_steps,
        thin=n_steps,
        progress=False,
        generator=ctx.generator,
        diagnostics=False,
    )
    assert result.final_state is not None
    return result.final_state


def binary_metrics(
    model: EnergyNetwork, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    """Forward and reverse AIS from the base-rate model of the training data, in nats per
    image (module docstring)."""
    o = ctx.options
    steps = ctx.quick_capped("reverse_steps", 50)
    metrics = ais_bracket_metrics(
        BinaryEnergy(model, kernel=ais_kernel(ctx)),
        x_train,
        x_test,
        ctx,
        ctx.quick_capped("ais_betas", 200),
        ctx.quick_capped("ais_runs", 20),
        lambda rows: model_chains(model, rows, steps, ctx),
    )
    metrics["ais_kernel"] = o["ais_kernel"]
    metrics["reverse_start"] = f"{steps} {o['ais_kernel']} steps from training images"
    return metrics


def _evaluate(
    model: EnergyNetwork, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    model.eval()
    if is_discrete(ctx):
        return binary_metrics(model, x_train, x_test, ctx)
    shape = ctx.image_shape
    if shape is None:  # a toy 2-D density
        metrics = grid_log_likelihood(model, ctx.data_name, x_test)
        learned = _learned_log_z(ctx)
        if learned is not None:
            metrics["log_z_learned"] = learned  # NCE self-normalization: compare to log_z_grid
        return metrics
    n = 32 if ctx.quick else 300
    test = x_test[:n]
    known = bottom_half_mask(test.shape[0], shape, test.device)
    filled = model.inpaint(test, known, n_steps=_quick_steps(model, ctx), generator=ctx.generator)
    unknown = ~known
    mse = float((filled - test)[unknown].square().mean())
    mean_image = x_train.mean(0, keepdim=True).expand_as(test)
    baseline = float((mean_image - test)[unknown].square().mean())
    chance = float((model.noise(test.shape[0], ctx.generator) - test)[unknown].square().mean())
    energy_test = float(energies(model, x_test).mean())
    energy_noise = float(energies(model, model.noise(x_test.shape[0], ctx.generator)).mean())
    return {
        "log_likelihood_method": "none",
        "note": "no tractable log-likelihood for a neural energy on images (log Z would need "
        "AIS, not run); scored by inpainting the bottom half",
        "inpaint_mse": mse,
        "inpaint_mse_mean_image": baseline,
        "inpaint_mse_uniform_noise": chance,
        "energy_test": energy_test,
        "energy_noise": energy_noise,
        "energy_gap": energy_noise - energy_test,
    }


# ----- figures ----------------------------------------------------------------------------------
def landscape_figure(
    model: EnergyNetwork,
    name: str,
    path: Path,
    title: str,
    generator: torch.Generator,
    n_samples: int = 2000,
    n_steps: int | None = None,
    grid_size: int = 180,
    data: torch.Tensor | None = None,
) -> Path:
    """The data (when given), the density exp(-E) normalized on the grid, and Langevin samples
    from noise, side by side."""
    from ... import data as datasets

    grid = datasets.toy2d_grid(None, n=grid_size)
    with torch.no_grad():
        neg_energy = -energies(model, grid.points.to(model.device))
    # Grid2D rows go up in y; density_2d wants [x, y]
    image = neg_energy.reshape(grid_size, grid_size).T
    samples = model.sample(n_samples, n_steps=n_steps, generator=generator)
    return viz.density_2d(image, grid.bounds, path, samples=samples, title=title, data=data)


def _figures(model: EnergyNetwork, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    o = resolved(ctx)
    label = {
        "cd": "CD (Langevin)",
        "sm": "exact SM",
        "ssm": "sliced SM",
        "dsm": "denoising SM",
        "ncsn": "NCSN",
        "nsm": "noise-augmented SM",
        "nce": "NCE",
        "fce": "FCE",
    }[o["objective"]]
    model.eval()
    if is_discrete(ctx):
        return binary_figures(model, x_test, ctx)
    shape = ctx.image_shape
    if shape is None:  # a toy 2-D density
        path = landscape_figure(
            model,
            ctx.data_name,
            ctx.out_dir / "landscape.png",
            f"{label} on {ctx.data_name}",
            ctx.generator,
            n_samples=500 if ctx.quick else 2000,
            data=x_test,
        )
        return [
            Figure(
                path,
                "Energy landscape and samples",
                f"Left: the test points. Middle: exp(-E) of the {label} model normalized on the "
                "grid. Right: Langevin samples started from uniform noise"
                + (" (annealed over the noise ladder)." if model.noise_conditional else "."),
            )
        ]
    figures = []
    steps = _quick_steps(model, ctx)
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    path = viz.samples_beside_data(
        samples, x_test, shape, ctx.out_dir / "samples.png", title=f"{label} EBM: samples"
    )
    figures.append(
        Figure(
            path,
            "Samples from noise",
            f"Left: 64 test images. Right: {steps or model.langevin_steps} Langevin steps from "
            "uniform noise"
            + (" (annealed over the noise ladder)." if model.noise_conditional else "."),
        )
    )
    test = x_test[:16]
    known = bottom_half_mask(test.shape[0], shape, test.device)
    filled = model.inpaint(test, known, n_steps=steps, generator=ctx.generator)
    rows = [("test", test), ("known", viz.hide_unknown(test, known)), ("filled", filled)]
    path = viz.labelled_rows(
        rows, shape, ctx.out_dir / "inpainting.png", title=f"{label} EBM: inpainting"
    )
    figures.append(
        Figure(
            path,
            "Inpainting",
            "Rows: test images, the known top half, and the "
            "bottom half filled by Langevin dynamics under the energy.",
        )
    )
    return figures


def binary_figures(model: EnergyNetwork, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    """Samples from the base and the bottom halves of test images, both by the AIS kernel."""
    o = resolved(ctx)
    shape = ctx.image_shape
    assert shape is not None
    steps = min(o["sample_steps"], 50) if ctx.quick else o["sample_steps"]
    base = torch.sigmoid(model.base_logits).expand(64, -1)
    start = (torch.rand(base.shape, generator=ctx.generator) < base.cpu()).to(base)
    samples = model_chains(model, start, steps, ctx)
    name = o["sampler"].upper()
    path = viz.samples_beside_data(
        samples, x_test, shape, ctx.out_dir / "samples.png", title=f"CD ({name}) EBM: samples"
    )
    figures = [
        Figure(
            path,
            "Samples from the base",
            f"Left: 64 test images. Right: {steps} {o['ais_kernel']} steps from the "
            "independent-Bernoulli base at the data marginals.",
        )
    ]
    test = x_test[:16]
    known = top_half_known(shape, test.device)

    def conditional(u: torch.Tensor) -> torch.Tensor:  # E(x) with the top half clamped
        x = test.expand(u.shape[0] // test.shape[0], -1, -1).reshape(-1, test.shape[1]).clone()
        x[:, ~known] = u
        return model.energy(x)

    unknown = ~known
    start = (torch.rand(test.shape[0], int(unknown.sum()), generator=ctx.generator) < 0.5).to(test)
    filled = test.clone()
    filled[:, unknown] = model_chains(model, start, steps, ctx, energy=conditional)
    rows = [("test", test), ("known", viz.hide_unknown(test, known)), ("filled", filled)]
    path = viz.labelled_rows(
        rows, shape, ctx.out_dir / "inpainting.png", title=f"CD ({name}) EBM: inpainting"
    )
    figures.append(
        Figure(
            path,
            "Inpainting",
            "Rows: test images, the known top half, and the bottom half drawn from "
            f"p(bottom | top) by {steps} {o['ais_kernel']} steps from uniform bits.",
        )
    )
    return figures


register(
    Recipe(
        name="ebm",
        summary="neural energy-based model (CD with Langevin or, on binary images, "
        "gradient-informed discrete samplers; score matching, NCE, FCE)",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        options=(
            Option("objective", str, "cd", "training method", OBJECTIVES),
            Option(
                "network",
                str,
                None,
                "energy network: mlp or conv (default: mlp for 2-D densities, conv for images)",
                ("mlp", "conv"),
            ),
            Option("hidden", int, 128, "MLP width"),
            Option("depth", int, 3, "MLP hidden layers"),
            Option(
                "activation", str, "silu", "smooth activation", ("silu", "softplus", "tanh", "gelu")
            ),
            Option("channels", str, "32,64", "ConvEnergy stride-2 layer widths"),
            Option(
                "langevin_steps",
                int,
                None,
                "cd: Langevin steps per update (default 10 on 2-D densities, 40 on images)",
                when={"objective": ("cd",), "sampler": ("langevin",)},
            ),
            Option(
                "step_size",
                float,
                None,
                "cd and sampling: Langevin step eps (default 0.002 on "
                "2-D densities, 1.0 on images)",
                when={"objective": ("cd", "sm", "ssm", "dsm", "nce", "fce")},
            ),
            Option(
                "noise_scale",
                float,
                None,
                "Langevin noise std (default sqrt(2 eps), i.e. "
                "temperature 1, on 2-D densities; 0.005 on images)",
                check=Real(0),
            ),
            Option(
                "chains",
                str,
                "buffer",
                "cd negatives: replay buffer, persistent chains or short-run from noise",
                ("buffer", "persistent", "noise"),
                when={"objective": ("cd",)},
            ),
            Option(
                "buffer_size",
                int,
                10_000,
                "cd replay-buffer size",
                when={"objective": ("cd",), "chains": ("buffer",)},
            ),
            Option(
                "reinit",
                float,
                None,
                "cd: fraction of chains restarted from noise (the base for binary images) per "
                "update (default 0.05; 0 with a discrete sampler)",
                check=Real(0, 1),
                when={"objective": ("cd",)},
            ),
            Option(
                "jump_steps",
                int,
                None,
                "cd: independence Metropolis jumps per chain and update "
                "(carry chains between modes; default 1 on 2-D densities, 0 on images)",
                check=Integral(0),
                when={"objective": ("cd",), "sampler": ("langevin",)},
            ),
            Option(
                "alpha",
                float,
                None,
                "cd: L2 energy penalty alpha (E+^2 + E-^2) (default 0.01; 0 with a discrete "
                "sampler)",
                check=Real(0),
                when={"objective": ("cd",)},
            ),
            Option(
                "binarize",
                str,
                None,
                "binarize the images (needed by the discrete samplers); default: grey levels",
                ("threshold", "stochastic"),
            ),
            Option(
                "sampler",
                str,
                "langevin",
                "cd negatives on binary images: Gibbs-with-gradients (gwg), the discrete "
                "Langevin proposal with (dmala) or without (dula) its MH correction",
                ("langevin", *SAMPLERS),
                when={"objective": ("cd",)},
            ),
            Option(
                "discrete_steps",
                int,
                40,
                "gwg/dmala/dula: kernel steps per update",
                when={"objective": ("cd",), "sampler": SAMPLERS},
            ),
            Option(
                "discrete_step_size",
                float,
                0.2,
                "dmala/dula (and the AIS kernel): step size alpha of the discrete Langevin "
                "proposal",
            ),
            Option(
                "n_flips",
                int,
                1,
                "gwg: sites drawn per proposal",
                when={"objective": ("cd",), "sampler": ("gwg",)},
            ),
            Option(
                "ais_kernel",
                str,
                "dmala",
                "binary images: AIS transition (one step per inverse temperature), also the "
                "sampler of the figures",
                ("dmala", "gwg"),
            ),
            Option(
                "ais_betas", int, 10000, "binary images: AIS inverse temperatures", evaluation=True
            ),
            Option(
                "ais_runs",
                int,
                100,
                "binary images: AIS runs (forward and reverse)",
                evaluation=True,
            ),
            Option(
                "reverse_steps",
                int,
                1000,
                "binary images: kernel steps from training images before reverse AIS",
                evaluation=True,
                check=Integral(0),
            ),
            Option(
                "sigma",
                float,
                None,
                "dsm noise level (default 0.05 on 2-D densities, 0.1 on images)",
                when={"objective": ("dsm",)},
            ),
            Option(
                "sigma_start",
                float,
                None,
                "sm, ssm, dsm: anneal a data perturbation from this noise level down (to 0 for "
                "sm/ssm, to sigma for dsm; 0: none); default 1.0 on 2-D densities, none on images",
                check=Real(0),
                when={"objective": ("sm", "ssm", "dsm")},
            ),
            Option(
                "anneal_steps",
                int,
                None,
                "sm, ssm, dsm: updates over which the noise is annealed (default 1500 on 2-D "
                "densities, 0 on images)",
                check=Integral(0),
                when={"objective": ("sm", "ssm", "dsm")},
            ),
            Option(
                "sigma_max",
                float,
                None,
                "ncsn largest noise level (default 3.0)",
                when={"objective": ("ncsn",)},
            ),
            Option(
                "sigma_min",
                float,
                None,
                "ncsn smallest noise level (default 0.05 on 2-D densities, 0.02 on images)",
                when={"objective": ("ncsn",)},
            ),
            Option(
                "n_levels",
                int,
                10,
                "ncsn noise levels (geometric); nsm sampling levels",
                when={"objective": ("ncsn", "nsm")},
            ),
            Option(
                "sigma_center",
                float,
                0.1,
                "nsm: training noise levels are log-normal around this level",
                when={"objective": ("nsm",)},
            ),
            Option(
                "sigma_spread",
                float,
                1.0,
                "nsm: standard deviation of log sigma",
                check=Real(0),
                when={"objective": ("nsm",)},
            ),
            Option(
                "sigma_eval",
                float,
                0.02,
                "nsm: the (small) noise level at which the model's density is read",
                when={"objective": ("nsm",)},
            ),
            Option(
                "projections", int, 1, "ssm projections per example", when={"objective": ("ssm",)}
            ),
            Option(
                "projection",
                str,
                "rademacher",
                "ssm projection distribution",
                ("rademacher", "gaussian"),
                when={"objective": ("ssm",)},
            ),
            Option(
                "noise_ratio",
                float,
                8.0,
                "nce noise samples per data point",
                when={"objective": ("nce",)},
            ),
            Option(
                "fce_noise_ratio",
                float,
                1.0,
                "fce flow samples per data point",
                when={"objective": ("fce",)},
            ),
            Option("flow_layers", int, 6, "fce RealNVP couplings", when={"objective": ("fce",)}),
            Option(
                "flow_hidden",
                int,
                64,
                "fce RealNVP conditioner width",
                when={"objective": ("fce",)},
            ),
            Option(
                "sample_steps",
                int,
                None,
                "Langevin steps when sampling from noise (default "
                "1000 on 2-D densities, 100 on images)",
            ),
        ),
        train_defaults={
            "epochs": 30,
            "batch_size": 256,
            "lr": 5e-3,
            "schedule": "cosine",
            "max_grad_norm": 10.0,
        },
        demo={
            "data": "digits",
            "options": {"objective": "ncsn", "sample_steps": 500},
            "epochs": 80,
            "batch_size": 128,
            "lr": 2e-3,
            "checkpoint_every_epochs": 40,
        },
        data_kinds=("toy2d", "image"),
    )
)
