"""Recipes: how each model family is built, trained, scored and pictured from a plain config.

The CLI, the demo and the report know families only through this registry. A family joins by
calling ``register(Recipe(...))`` in its own module, listed in ``FAMILY_MODULES``. A recipe
never reads the command line: it receives a dict of options (``Option`` declares them with
defaults and help, and the CLI turns them into flags).

A recipe either trains with the one training loop (``build`` returns an ``Objective``) or fits in
closed form / by its own rule (``build`` returns ``None`` for the objective and ``fit`` is set).
Training that has several parts (greedy pretraining of each layer, then joint training or
fine-tuning) is declared by ``stages``: each stage runs through the loop with its own checkpoint,
its records in ``metrics.jsonl`` and ``--resume``. No recipe trains inside ``build`` or ``fit``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from ..models.base import Model
from ..objectives.base import Objective
from ..training import Stage, TrainConfig
from ..validation import Constraint, Integral, OneOf, Real


@dataclass(frozen=True)
class Option:
    """A family-specific option, e.g. ``Option("hidden", int, 500, "number of hidden units")``.

    ``evaluation``: the option only sets how a trained model is scored (AIS betas and runs,
    importance samples), so ``ebmlab eval RUN --set NAME=VALUE`` may change it without
    retraining.

    ``check``: the values a number may take, as a constraint of ``ebmlab.validation``
    (``Integral(0)``, ``Real(0, 1, closed="left")``); by default an integer is a count
    (``Integral(1)``) and a float a positive scale (``Real(0, closed="neither")``).
    ``check_option`` refuses a value outside it before any work.

    ``when``: the option matters only when other options take these values, e.g.
    ``{"objective": ("cd",)}`` for the chains of contrastive divergence; ``ebmlab train``
    notes a flag given where it has no effect (``moot_options``)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    evaluation: bool = False
    check: Constraint | None = None
    when: Mapping[str, tuple[Any, ...]] | None = None

    def constraint(self) -> Constraint | None:
        """What a value must satisfy besides ``choices`` (None: nothing, e.g. a string)."""
        if self.check is not None:
            return self.check
        return {int: COUNT, float: SCALE}.get(self.type)


#: The default constraints of number options: a count and a positive scale.
COUNT, SCALE = Integral(1), Real(0, closed="neither")


def check_option(opt: Option, value: Any, what: str | None = None) -> None:
    """Refuse a value of ``opt`` outside its choices or constraint (``InvalidArgumentError``),
    naming ``what`` (by default the flag, ``--ais-betas``) and what it accepts. None (not
    given) passes."""
    if value is None:
        return
    what = what or "--" + opt.name.replace("_", "-")
    if opt.choices is not None:
        OneOf(*opt.choices).check(value, what)
    constraint = opt.constraint()
    if constraint is not None:
        constraint.check(value, what)


def moot_options(
    recipe: Recipe[Any, Any], options: Mapping[str, Any], given: Iterable[str]
) -> list[str]:
    """One note for each option in ``given`` that has no effect with the other ``options``
    (its ``when`` unmet), e.g. "--langevin-steps has no effect with --objective ncsn (it
    applies with cd)"."""
    notes = []
    for opt in recipe.options:
        if opt.name not in given or not opt.when:
            continue
        for key, values in opt.when.items():
            if options.get(key) not in values:
                flag, other = (f"--{name.replace('_', '-')}" for name in (opt.name, key))
                notes.append(
                    f"{flag} has no effect with {other} {options.get(key)} (it applies with "
                    f"{' or '.join(map(str, values))})"
                )
                break
    return notes


def check_options(recipe: Recipe[Any, Any], options: Mapping[str, Any]) -> None:
    """``check_option`` for every option of ``recipe`` named in ``options``."""
    for opt in recipe.options:
        if opt.name in options:
            check_option(opt, options[opt.name])


@dataclass(frozen=True)
class Preset:
    """A named setting of a family, e.g. the recipe of a paper: family options and loop settings
    filled in together (``ebmlab train rbm --preset paper``). The run records the preset's name
    and the values it filled (``config.json``); flags given on the command line override them."""

    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """A figure written by a recipe: PNG path, title, and a one-line caption."""

    path: Path
    title: str
    caption: str = ""


@dataclass
class Context:
    """What a recipe's functions receive besides the model.

    ``options`` holds the family options (already defaulted), ``image_shape`` is (H, W) for image
    data or None, ``generator`` is seeded from the run's seed, ``out_dir`` is the run directory.
    The run's data come with it (on ``device``), with their labels where the dataset has them,
    so that no recipe reads the disk again; ``data_dir`` is the folder they were read from.
    ``progress`` says whether long evaluations show progress bars (``--no-progress``: no).
    """

    options: dict[str, Any]
    data_name: str
    image_shape: tuple[int, int] | None
    generator: torch.Generator
    out_dir: Path
    device: torch.device
    quick: bool = False
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    data_dir: str | None = None
    progress: bool = True

    def train_data(self) -> torch.Tensor:
        """The training data on the run's device."""
        if self.x_train is None:
            raise ValueError("ctx.x_train: this context carries no training data")
        return self.x_train.to(self.device)

    def labels(self, split: str, n: int) -> torch.Tensor | None:
        """The labels of ``split`` ("train" or "test") when they match ``n`` examples."""
        y = self.y_train if split == "train" else self.y_test
        return y if y is not None and y.shape[0] == n else None

    def seed(self) -> int:
        """A seed drawn from the run's generator (recipes draw their models' seeds in order)."""
        generator = self.generator
        return int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))

    def quick_capped(self, name: str, cap: int) -> int:
        """Option ``name``, at most ``cap`` in quick runs (the demo's cheaper settings)."""
        value = self.options[name]
        return min(value, cap) if self.quick else value

    @property
    def data_kind(self) -> str:
        """The kind of data: "image", or "toy2d" for a toy 2-D density (no image shape)."""
        return "image" if self.image_shape is not None else "toy2d"

    def resolved_options(self, auto: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The options with every one left at None replaced by ``auto[self.data_kind]``'s value
        (for options whose default depends on the kind of data, e.g. the network)."""
        options = dict(self.options)
        for key, value in auto[self.data_kind].items():
            if options.get(key) is None:
                options[key] = value
        return options


def expect_flag(ok: bool, flag: str, expected: str, value: Any) -> None:
    """Refuse a flag's value by name unless ``ok``: "FLAG: expected EXPECTED, got VALUE"."""
    if not ok:
        raise ValueError(f"{flag}: expected {expected}, got {value}")


def parse_sizes(text: Any, name: str, example: str = "500,2000", empty: bool = False) -> list[int]:
    """Positive sizes from comma-separated text (layer widths, channels): "500, 2000" ->
    [500, 2000]; with ``empty``, "" and "none" give [] (no hidden layer). ``name`` (the option)
    and ``example`` go into the error message."""
    text = str(text).replace(" ", "")
    if empty and text.lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",") if part]
    except ValueError as error:
        raise ValueError(
            f"{name}: expected comma-separated sizes like {example}, got {text!r}"
        ) from error
    if not sizes or min(sizes) < 1:
        raise ValueError(f"{name}: expected positive sizes like {example}, got {text!r}")
    return sizes


def top_half_known(
    image_shape: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """(H * W,) bool: the pixels an inpainting is given, True on the top half of the rows."""
    h, w = image_shape
    known = torch.zeros(h, w, dtype=torch.bool, device=device)
    known[: h // 2] = True
    return known.flatten()


#: The model class of a recipe (``BernoulliRBM`` for ``rbm``, a union where a family builds one
#: of several classes, e.g. ``ImageRealNVP | RealNVP``).
M = TypeVar("M", bound=Model)
#: The objective its ``build`` returns: an ``Objective`` subclass, or None for the families that
#: are fitted by ``fit`` or trained only through the objectives of their ``stages``.
ObjectiveT = TypeVar("ObjectiveT", bound=Objective | None)


@dataclass(frozen=True)
class AISBracket:
    """Forward and reverse AIS estimates of one model's log Z (``ais_bracket``): ``seconds``
    counts both runs and the chains that started the reverse one, ``warnings`` the messages of
    their ``AISWarning``s (a low effective sample size)."""

    forward: Any
    reverse: Any
    seconds: float
    warnings: list[str]

    def metrics(self) -> dict[str, Any]:
        """The log Z figures of both directions, for a run's metrics."""
        metrics: dict[str, Any] = {
            "log_z": self.forward.log_z,
            "log_z_se": self.forward.log_z_se,
            "ais_ess": self.forward.ess,
            "log_z_reverse_ais": self.reverse.log_z,
            "log_z_reverse_ais_se": self.reverse.log_z_se,
            "reverse_ais_ess": self.reverse.ess,
            "ais_betas": self.forward.n_betas,
            "ais_runs": self.forward.n_runs,
            "ais_seconds": round(self.seconds, 2),
        }
        if self.warnings:
            metrics["ais_warnings"] = self.warnings
        return metrics


def ais_bracket(
    model: Any,
    x_train: torch.Tensor,
    ctx: Context,
    n_betas: int,
    n_runs: int,
    reverse_start: Callable[[torch.Tensor], Any],
) -> AISBracket:
    """Forward and reverse AIS (the one engine in ``ebmlab.estimators``) of ``model``, both from
    the base-rate model of ``x_train``.

    Forward AIS underestimates log Z in expectation (the log-likelihood it gives is biased up),
    reverse AIS from model states overestimates it: the two numbers bracket the truth.
    ``reverse_start`` maps ``n_runs`` training rows to the model states reverse AIS starts from
    (a few sweeps of the model's own chain; for a DBM every layer); its time is counted in
    ``seconds``."""
    from .. import estimators

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", estimators.AISWarning)
        start = time.perf_counter()
        forward = estimators.ais(
            model,
            n_betas=n_betas,
            n_runs=n_runs,
            seed=ctx.seed(),
            data=x_train,
            progress=ctx.progress,
        )
        rows = torch.randint(
            x_train.shape[0], (n_runs,), generator=torch.Generator().manual_seed(ctx.seed())
        ).to(x_train.device)
        v_init = reverse_start(x_train[rows])
        reverse = estimators.reverse_ais(
            model, v_init, n_betas=n_betas, seed=ctx.seed(), data=x_train, progress=ctx.progress
        )
        seconds = time.perf_counter() - start
        messages = [str(w.message) for w in caught if issubclass(w.category, estimators.AISWarning)]
    return AISBracket(forward, reverse, seconds, messages)


def ais_bracket_metrics(
    model: Any,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    ctx: Context,
    n_betas: int,
    n_runs: int,
    reverse_start: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, Any]:
    """The test and training log-likelihoods in nats of a model with a free energy, from the
    forward and reverse AIS of ``ais_bracket`` (same arguments)."""
    from .. import estimators

    bracket = ais_bracket(model, x_train, ctx, n_betas, n_runs, reverse_start)
    test = estimators.log_likelihood(model, x_test, bracket.forward)
    test_rev = estimators.log_likelihood(model, x_test, bracket.reverse)
    train = estimators.log_likelihood(model, x_train[:10000], bracket.forward)
    return {
        "test_log_likelihood": test.mean,
        "test_log_likelihood_se": test.se,
        "log_likelihood_method": "ais",
        "train_log_likelihood": train.mean,
        "test_log_likelihood_reverse_ais": test_rev.mean,
        "test_log_likelihood_reverse_ais_se": test_rev.se,
        **bracket.metrics(),
    }


@dataclass(frozen=True)
class Recipe(Generic[M, ObjectiveT]):
    """One trainable family as the CLI sees it.

    ``Recipe[M, ObjectiveT]`` is typed by the model class its ``build`` makes and the objective
    (or None) it returns with it, so that ``evaluate``, ``figures``, ``fit`` and ``stages``
    receive exactly those classes.

    Attributes:
        name: CLI name (``ebmlab train NAME``).
        summary: one line for ``ebmlab list``.
        build: (x_train, ctx) -> (model, objective or None).
        evaluate: (model, x_train, x_test, ctx) -> metrics dict (``test_log_likelihood`` in nats,
            with ``test_log_likelihood_se`` and ``log_likelihood_method`` where it applies).
        figures: (model, x_test, ctx) -> list of ``Figure`` written under ``ctx.out_dir``.
        fit: (model, x_train, ctx) -> metrics, for families fitted in closed form or by a
            rule that is not gradient training (PCA, a Hopfield network's storage rule).
        stages: (model, objective, ctx, loop config) -> the training stages, in order, for
            families trained in several parts; None: one stage, the objective on the training
            data.
        binarize: the binarization the family needs by default (None, "stochastic", ...).
        options: family options with defaults.
        train_defaults: defaults for the loop (epochs, batch_size, lr, optimizer, ...).
        demo: overrides (options and loop settings) used by ``ebmlab demo`` on digits.
        presets: named settings (``--preset NAME``): options and loop settings filled in
            together, below the flags given.
        data_kinds: which datasets it accepts: "image", "toy2d" or both.
    """

    name: str
    summary: str
    build: Callable[[torch.Tensor, Context], tuple[M, ObjectiveT]]
    evaluate: Callable[[M, torch.Tensor, torch.Tensor, Context], dict[str, Any]]
    figures: Callable[[M, torch.Tensor, Context], list[Figure]]
    fit: Callable[[M, torch.Tensor, Context], dict[str, Any]] | None = None
    stages: Callable[[M, ObjectiveT, Context, TrainConfig], Iterable[Stage]] | None = None
    binarize: str | None = None
    options: tuple[Option, ...] = ()
    train_defaults: dict[str, Any] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=dict)
    data_kinds: tuple[str, ...] = ("image",)
    presets: Mapping[str, Preset] = field(default_factory=dict)

    def with_defaults(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with every option of the family they do not name at its default (a run
        recorded before the family gained an option uses the option's default)."""
        return {**{opt.name: opt.default for opt in self.options}, **options}


def apply_preset(
    recipe: Recipe[Any, Any], name: str, options: Mapping[str, Any], train: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` and loop settings ``train`` with the preset ``name`` of ``recipe`` filled in
    (the caller then applies the flags given, which override it)."""
    if name not in recipe.presets:
        valid = ", ".join(sorted(recipe.presets)) or "(none)"
        raise ValueError(f"--preset: {recipe.name} has no preset {name!r}; valid presets: {valid}")
    preset = recipe.presets[name]
    return {**options, **preset.options}, {**train, **preset.train}


def describe_preset(preset: Preset) -> str:
    """One line: the summary, then every value the preset fills (``name=value``)."""
    values = {**preset.options, **preset.train}
    filled = ", ".join(f"{key}={value}" for key, value in values.items())
    return f"{preset.summary} ({filled})" if filled else preset.summary


#: Every registered recipe by name; a recipe's model and objective classes are its own.
RECIPES: dict[str, Recipe[Any, Any]] = {}


def register(recipe: Recipe[M, ObjectiveT]) -> Recipe[M, ObjectiveT]:
    """Add ``recipe`` to the registry under its name (a family module calls this on import)."""
    RECIPES[recipe.name] = recipe
    return recipe


#: The family modules of ``ebmlab.app.families``; each registers its recipes when imported.
FAMILY_MODULES = (
    "baselines",
    "hopfield",
    "rbm",
    "deep",
    "dbm",
    "ebm",
    "linear",
    "vae",
    "flows",
    "autoregressive",
    "gan",
    "pixelrnn",
    "diffusion",
    "cgan",
    "cyclegan",
    "hopfield_hidden",
    "hashing",
    "dbn_classifier",
)


def _load_builtin() -> None:
    # a family module that fails to import is an error, never a family quietly missing
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(f"ebmlab.app.families.{module}")


def get_recipe(name: str) -> Recipe[Any, Any]:
    _load_builtin()
    if name not in RECIPES:
        valid = ", ".join(sorted(RECIPES)) or "(none)"
        raise ValueError(f"unknown model {name!r}; valid models: {valid}")
    return RECIPES[name]


def all_recipes() -> dict[str, Recipe[Any, Any]]:
    _load_builtin()
    return dict(sorted(RECIPES.items()))
