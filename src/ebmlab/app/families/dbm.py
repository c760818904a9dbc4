"""Recipe ``dbm``: deep Boltzmann machines (Salakhutdinov & Hinton 2009), with their AIS and the
greedy pretraining.

AIS for a DBM (Salakhutdinov & Hinton 2009, section 4; Salakhutdinov & Murray 2008). The odd
layers are summed out analytically, so the annealed state is the even layers x = (v, h_2, ...):

    log f_k(x) = (1 - beta_k) b_A^T v + beta_k (b_0^T v + sum_{l even > 0} b_l^T h_l)
                 + sum_{l odd} sum_j softplus(beta_k a_lj),
    a_l = b_l + W_{l-1}^T h_{l-1} + W_l h_{l+1},

the intermediate distributions being exp((1 - beta) b_A^T v - beta E(v, h)) with the odd layers
summed out. At beta = 0 the visible units follow the base-rate model b_A and every hidden unit is
uniform: log Z_A = sum_i softplus(b_A,i) + (number of hidden units) log 2. The transition at
beta_k is one Gibbs sweep of the tempered model (odd layers given the even ones, then the even
ones given the odd ones), which leaves f_k invariant. The schedule, the base rate, the weights'
summary (ESS, standard error, warning) and the numerically careful softplus differences are
``ebmlab.partition``'s. The forward estimate of log Z is a stochastic lower bound, so the reported
log-likelihood bound is, like every AIS figure, slightly optimistic in expectation.

Evaluation ("ais-lower-bound"): the mean-field bound log p(v) >= -F_q(v) - log Z of each test
example (the paper's Table 1 figure, -84.62 for 784-500-1000), and a tighter importance-sampled
bound: with the odd layers summed out, p(v) Z = sum_{even h} exp(-F_even(v, h)), estimated with
K samples of the even hidden layers from the mean-field q; E[log mean_s w_s] <= log p(v) (Jensen),
and with K = 1 it already improves on the mean-field bound (the odd layers are exact). When the
model is small enough (even hidden layers <= 20 units, the smaller parity <= 25) the exact log Z
and test log-likelihood are reported too and the latter becomes ``test_log_likelihood``.

Pretraining (``pretrain``): RBMs trained bottom-up with ``TiedCopiesCD`` (bottom one with a
doubled visible layer, top one with a doubled hidden layer, middle ones with both), each trained
on the doubled-input posterior probabilities of the layer below, then composed: W_l from RBM l,
b_0 from RBM 0's visible biases, b_L from the top RBM's hidden biases and, for a layer shared by
two RBMs, the average of its two biases (each went with a doubled input).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch.nn import functional as F

from ... import partition
from ...models.base import Model
from ...models.dbm import DeepBoltzmannMachine
from ...models.rbm import BernoulliRBM, bernoulli
from ...objectives.dbm import TiedCopiesCD, VariationalPCD
from ...partition import AISResult
from ...stats import mean_and_se
from ...training import TrainConfig, train
from .. import viz
from ..recipes import Context, Figure, Option, Recipe, register

#: Largest enumerations used for the exact figures reported beside the bounds.
EXACT_MAX_EVEN_UNITS = 20
EXACT_MAX_LOG_Z_UNITS = 25


# ----- AIS --------------------------------------------------------------------------------------
def _dbm_base(
    model: DeepBoltzmannMachine, data: torch.Tensor | None, base_bias: torch.Tensor | None
) -> tuple[torch.Tensor, float]:
    """(b_A in float64, log Z_A) of the base-rate model (hidden units uniform)."""
    device = model.weights[0].device
    if base_bias is not None:
        b_base = torch.as_tensor(base_bias, dtype=torch.float64, device=device).flatten()
    elif data is not None:
        data = torch.as_tensor(data)
        if data.dim() != 2 or data.shape[1] != model.n_visible:
            raise ValueError(
                f"data: expected shape (n_examples, {model.n_visible}), got {tuple(data.shape)}"
            )
        b_base = partition.base_rate_bias(data).to(device)
    else:  # no data: the model's own visible biases
        b_base = model.biases[0].detach().to(torch.float64)
    if b_base.shape != (model.n_visible,) or not torch.isfinite(b_base).all():
        raise ValueError(f"base_bias: expected {model.n_visible} finite visible biases")
    n_hidden = sum(model.layer_sizes[1:])
    return b_base, float(F.softplus(b_base).sum()) + n_hidden * math.log(2.0)


@torch.no_grad()
def _dbm_anneal(
    model: DeepBoltzmannMachine,
    betas: torch.Tensor,
    b_base: torch.Tensor,
    n_runs: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Log weights sum_k [log f_k(x_{k-1}) - log f_{k-1}(x_{k-1})] of ``n_runs`` runs."""
    W, b, L = list(model.weights), list(model.biases), model.n_layers
    odd, even_hidden = list(range(1, L + 1, 2)), list(range(2, L + 1, 2))
    b_a = b_base.to(W[0].dtype)
    bias_gap = b[0] - b_a  # log f_k - log f_{k-1} has (beta_k - beta_{k-1}) v^T (b_0 - b_A)
    # |a_lj| <= |b_lj| + sum_i |W_{l-1,ij}| + sum_m |W_{l,jm}| for binary neighbours
    bounds = {
        l: float((b[l].abs() + W[l - 1].abs().sum(0) + (W[l].abs().sum(1) if l < L else 0)).max())
        for l in odd
    }
    layers = model.random_layers(n_runs, generator)
    layers[0] = bernoulli(torch.sigmoid(b_a).expand(n_runs, -1), generator)
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=b_a.device)
    beta_list = betas.tolist()
    last = len(beta_list) - 1
    for k in range(1, last + 1):
        beta, beta_prev = beta_list[k], beta_list[k - 1]
        linear = layers[0] @ bias_gap
        for l in even_hidden:
            linear = linear + layers[l] @ b[l]
        # float32 is enough for the linear term: it is multiplied by beta_k - beta_{k-1}
        log_w += (beta - beta_prev) * linear.to(torch.float64)
        probs = {}
        for l in odd:
            a = model.layer_input(layers, l)
            probs[l] = torch.sigmoid(beta * a)
            log_w += partition._hidden_log_ratio(a, probs[l], beta, beta_prev, bounds[l])
        if k == last:
            break
        for l in odd:  # transition T_k, leaving f_k invariant
            layers[l] = bernoulli(probs[l], generator)
        visible_in = model.layer_input(layers, 0).mul_(beta).add_(b_a, alpha=1.0 - beta)
        layers[0] = bernoulli(torch.sigmoid(visible_in), generator)
        for l in even_hidden:
            layers[l] = model.sample_layer(layers, l, generator, beta=beta)
    return log_w


def dbm_ais(
    model: DeepBoltzmannMachine,
    n_betas: int = 14500,
    n_runs: int = 100,
    seed: int | None = None,
    data: torch.Tensor | None = None,
    betas: Any = None,
    base_bias: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    ess_warn_fraction: float = 0.1,
) -> AISResult:
    """AIS estimate of log Z of a DBM with the odd layers summed out (a stochastic lower bound).

    Args:
        model: the DBM.
        n_betas: annealing steps (Salakhutdinov & Murray's schedule scaled, ``ais_schedule``).
        n_runs: independent runs, simulated as one batch.
        seed: seed of the generator (on the model's device).
        data: training data for the base-rate visible biases; None: the model's own b_0.
        betas: an explicit schedule from 0 to 1 instead of ``n_betas``.
        base_bias: explicit base-model visible biases (overrides ``data``).
        ess_warn_fraction: warn (``partition.AISWarning``) when ESS < this fraction of runs.
    """
    start = time.perf_counter()
    if not isinstance(model, DeepBoltzmannMachine):
        raise TypeError(f"model: expected a DeepBoltzmannMachine, got {type(model).__name__}")
    if isinstance(n_runs, bool) or int(n_runs) != n_runs or n_runs < 1:
        raise ValueError(f"n_runs: expected a positive integer, got {n_runs}")
    schedule = (
        partition._check_betas(betas) if betas is not None else partition.ais_schedule(n_betas)
    )
    device = model.weights[0].device
    generator = partition._make_generator(seed, generator, device)
    b_base, log_z_base = _dbm_base(model, data, base_bias)
    log_w = _dbm_anneal(model, schedule, b_base, int(n_runs), generator)
    return partition._finish(
        log_w, log_z_base, len(schedule) - 1, "forward", start, ess_warn_fraction
    )


# ----- importance-sampled bound -----------------------------------------------------------------
@torch.no_grad()
def importance_log_p(
    model: DeepBoltzmannMachine,
    v: torch.Tensor,
    log_z: float,
    n_samples: int = 100,
    generator: torch.Generator | None = None,
    n_iters: int = 50,
    tol: float = 1e-6,
) -> torch.Tensor:
    """log p_hat(v) = log mean_s exp(-F_even(v, h_s) - log q(h_s)) - log Z per example
    (float64), h_s the even hidden layers drawn from the mean-field q(h | v): a stochastic
    lower bound on log p(v) (Jensen), at least the mean-field bound in expectation."""
    v = model.check_visible(v)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected a positive integer, got {n_samples!r}")
    means, logits = model.mean_field_logits(v, n_iters, tol)
    even = list(range(2, model.n_layers + 1, 2))
    visible_input = v @ model.weights[0]  # computed once for all samples
    log_w = []
    for _ in range(n_samples):
        layers: list[Any] = [v] + [None] * model.n_layers
        log_q = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
        for l in even:
            h = bernoulli(means[l - 1], generator)
            layers[l] = h
            # log q(h) = sum_j h_j log mu_j + (1 - h_j) log(1 - mu_j), from the logits
            a = logits[l - 1]
            log_q += (h * a - F.softplus(a)).sum(-1).to(torch.float64)
        log_w.append(-model.free_energy_even(layers, visible_input).to(torch.float64) - log_q)
    stacked = torch.stack(log_w)
    return torch.logsumexp(stacked, 0) - math.log(n_samples) - float(log_z)


# ----- pretraining ------------------------------------------------------------------------------
def copies_for_layer(l: int, n_layers: int) -> tuple[int, int]:
    """(visible copies, hidden copies) of the RBM between layers l and l+1 of an L-layer DBM."""
    if n_layers == 1:
        return 1, 1
    return (1 if l == n_layers - 1 else 2), (1 if l == 0 else 2)


def pretrain(
    model: DeepBoltzmannMachine,
    x_train: torch.Tensor,
    config: TrainConfig,
    k: int = 1,
    seed: int = 0,
) -> list[BernoulliRBM]:
    """Greedy layer-wise pretraining with tied copies (module docstring); writes the composed
    parameters into ``model`` and returns the trained RBMs. ``config`` is the loop's setting for
    every RBM (its seed is offset per layer)."""
    rbms: list[BernoulliRBM] = []
    x = x_train.to(model.weights[0])
    for l in range(model.n_layers):
        r_v, r_h = copies_for_layer(l, model.n_layers)
        rbm = BernoulliRBM(
            model.layer_sizes[l], model.layer_sizes[l + 1], init_std=0.01, seed=seed + l
        )
        objective = TiedCopiesCD(visible_copies=r_v, hidden_copies=r_h, k=k)
        layer_config = TrainConfig(**{**config.__dict__, "seed": config.seed + l})
        train(rbm, objective, x, layer_config)
        rbm.to(x)
        with torch.no_grad():
            x = objective.p_h(rbm, x)
        rbms.append(rbm)
    compose(model, rbms)
    return rbms


@torch.no_grad()
def compose(model: DeepBoltzmannMachine, rbms: list[BernoulliRBM]) -> None:
    """Write the weights and biases of pretrained RBMs (bottom first) into the DBM."""
    if len(rbms) != model.n_layers:
        raise ValueError(f"rbms: expected {model.n_layers} RBMs, got {len(rbms)}")
    for l, rbm in enumerate(rbms):
        if rbm.W.shape != model.weights[l].shape:
            raise ValueError(
                f"rbms[{l}]: expected W of shape {tuple(model.weights[l].shape)}, "
                f"got {tuple(rbm.W.shape)}"
            )
        model.weights[l].copy_(rbm.W)
    model.biases[0].copy_(rbms[0].b)
    model.biases[-1].copy_(rbms[-1].c)
    for l in range(1, model.n_layers):
        model.biases[l].copy_((rbms[l - 1].c + rbms[l].b) / 2)


# ----- recipe -----------------------------------------------------------------------------------
def _seed(ctx: Context) -> int:
    return int(torch.randint(2**31 - 1, (1,), generator=ctx.generator, device=ctx.generator.device))


def parse_layers(text: str) -> list[int]:
    """Hidden layer sizes from text: "500,1000" -> [500, 1000]."""
    try:
        sizes = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(
            f"layers: expected comma-separated sizes like 500,1000, got {text!r}"
        ) from error
    if not sizes or min(sizes) < 1:
        raise ValueError(f"layers: expected positive sizes like 500,1000, got {text!r}")
    return sizes


DBM_OPTIONS = (
    Option("layers", str, "500,1000", "hidden layer sizes, bottom first (comma-separated)"),
    Option("k", int, 5, "Gibbs sweeps of the persistent chains per update"),
    Option("n_chains", int, 100, "persistent chains (fantasy particles)"),
    Option("mf_iters", int, 10, "mean-field rounds per minibatch in training"),
    Option("centering", bool, True, "centered gradient (Melchior et al. 2016)"),
    Option("pretrain_epochs", int, 0, "greedy pretraining epochs per RBM (0: none)"),
    Option("pretrain_lr", float, 0.05, "pretraining learning rate"),
    Option("pretrain_k", int, 1, "CD-k steps in pretraining"),
    Option("ais_betas", int, 14500, "AIS inverse temperatures"),
    Option("ais_runs", int, 100, "AIS runs"),
    Option("eval_mf_iters", int, 50, "mean-field rounds at evaluation (tolerance 1e-6)"),
    Option("is_samples", int, 100, "importance samples for the tighter bound (0: skip)"),
    Option("sample_steps", int, 1000, "Gibbs sweeps for the samples figure"),
)


def _build_dbm(x_train: torch.Tensor, ctx: Context) -> tuple[Model, VariationalPCD]:
    o = ctx.options
    sizes = [x_train.shape[1], *parse_layers(o["layers"])]
    model = DeepBoltzmannMachine(sizes, seed=_seed(ctx))
    objective = VariationalPCD(
        n_chains=o["n_chains"],
        k=o["k"],
        mean_field_iters=o["mf_iters"],
        centering=o["centering"],
        init_visible_bias=o["pretrain_epochs"] == 0,
        seed=_seed(ctx),
    )
    if o["pretrain_epochs"] > 0:
        config = TrainConfig(
            epochs=o["pretrain_epochs"],
            batch_size=100,
            lr=o["pretrain_lr"],
            optimizer="sgd",
            momentum=0.9,
            initial_momentum=0.5,
            momentum_warmup_epochs=5,
            weight_decay=2e-4,
            schedule="linear",
            seed=_seed(ctx),
            device=str(ctx.device),
            progress=False,
        )
        model.to(ctx.device)
        pretrain(model, x_train.to(ctx.device), config, k=o["pretrain_k"], seed=_seed(ctx))
    return model, objective


def _bounds(
    model: DeepBoltzmannMachine,
    x: torch.Tensor,
    log_z: float,
    n_iters: int,
    batch: int = 1000,
) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                model.variational_bound(x[i : i + batch], log_z, n_iters=n_iters)
                for i in range(0, x.shape[0], batch)
            ]
        )


def _evaluate_dbm(
    model: Model, x_train: torch.Tensor, x_test: torch.Tensor, ctx: Context
) -> dict[str, Any]:
    assert isinstance(model, DeepBoltzmannMachine)
    o = ctx.options
    n_betas = min(o["ais_betas"], 1000) if ctx.quick else o["ais_betas"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", partition.AISWarning)
        result = dbm_ais(
            model, n_betas=n_betas, n_runs=o["ais_runs"], seed=_seed(ctx), data=x_train
        )
    log_z, log_z_se = result.log_z, result.log_z_se
    test = _bounds(model, x_test, log_z, o["eval_mf_iters"])
    mean, se = mean_and_se(test)
    metrics: dict[str, Any] = {
        "test_log_likelihood": mean,
        "test_log_likelihood_se": math.sqrt(se**2 + log_z_se**2),
        "log_likelihood_method": "ais-lower-bound",
        "train_log_likelihood": mean_and_se(
            _bounds(model, x_train[:10000], log_z, o["eval_mf_iters"])
        )[0],
        "log_z": log_z,
        "log_z_se": log_z_se,
        "ais_ess": result.ess,
        "ais_betas": n_betas,
        "ais_runs": o["ais_runs"],
        "ais_seconds": round(result.seconds, 2),
    }
    messages = [str(w.message) for w in caught if issubclass(w.category, partition.AISWarning)]
    if messages:
        metrics["ais_warnings"] = messages
    n_is = min(o["is_samples"], 10) if ctx.quick else o["is_samples"]
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


def _figures_dbm(model: Model, x_test: torch.Tensor, ctx: Context) -> list[Figure]:
    assert isinstance(model, DeepBoltzmannMachine)
    shape = ctx.image_shape
    if shape is None:
        return []
    steps = min(ctx.options["sample_steps"], 200) if ctx.quick else ctx.options["sample_steps"]
    samples = model.sample(64, n_steps=steps, generator=ctx.generator)
    with torch.no_grad():
        originals = x_test[:10]
        means = model.mean_field(originals, n_iters=ctx.options["eval_mf_iters"], tol=1e-6)
        recon = torch.sigmoid(model.layer_input([originals, *means], 0))
    n_filters = min(model.layer_sizes[1], 100)
    return [
        Figure(
            viz.image_grid(
                samples,
                shape,
                ctx.out_dir / "samples.png",
                nrow=8,
                title=f"DBM samples ({steps} sweeps)",
            ),
            "Samples",
            f"64 independent Gibbs chains (odd layers, then even ones) from uniform noise, after "
            f"{steps} sweeps; each image is p(v | h_1) of the last sweep.",
        ),
        Figure(
            viz.image_grid(
                torch.cat([originals, recon]),
                shape,
                ctx.out_dir / "reconstructions.png",
                nrow=10,
                title="mean-field reconstructions",
                row_labels=["data", "p(v | mu_1)"],
            ),
            "Mean-field reconstructions",
            "Test digits and p(v | h_1 = mu_1) at the mean-field posterior of every layer.",
        ),
        Figure(
            viz.image_grid(
                model.weights[0].detach()[:, :n_filters].T,
                shape,
                ctx.out_dir / "filters.png",
                nrow=10,
                normalize=True,
                title=f"first {n_filters} first-layer filters",
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

register(
    Recipe(
        name="dbm",
        summary="deep Boltzmann machine: mean-field + persistent chains; AIS and variational bound",
        build=_build_dbm,
        evaluate=_evaluate_dbm,
        figures=_figures_dbm,
        binarize="stochastic",
        options=DBM_OPTIONS,
        train_defaults=DBM_TRAIN_DEFAULTS,
        demo={
            "data": "digits",
            "options": {"layers": "16,8", "ais_betas": 1000, "sample_steps": 500},
            "epochs": 30,
            "batch_size": 20,
            "lr": 0.02,
        },
    )
)
