"""Recipes: how each model family is built, trained, scored and pictured from a plain config.

The CLI, the demo and the report know families only through this registry. A family joins by
calling ``register(Recipe(...))`` in its own module (imported in ``_load_builtin``). A recipe
never reads the command line: it receives a dict of options (``Option`` declares them with
defaults and help, and the CLI turns them into flags).

A recipe either trains with the one training loop (``build`` returns an ``Objective``) or fits in
closed form / by its own rule (``build`` returns ``None`` for the objective and ``fit`` is set).
Training that has several parts (greedy pretraining of each layer, then joint training or
fine-tuning) is declared by ``stages``: each stage runs through the loop with its own checkpoint,
its records in ``metrics.jsonl`` and ``--resume``. No recipe trains inside ``build`` or ``fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models.base import Model
from ..objectives.base import Objective
from ..training import Stage, TrainConfig


@dataclass(frozen=True)
class Option:
    """A family-specific option, e.g. ``Option("hidden", int, 500, "number of hidden units")``."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


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


#: (model, objective or None, ctx, loop config) -> the run's stages, in order.
StagePlan = Callable[[Model, Objective | None, Context, TrainConfig], Iterable[Stage]]


@dataclass(frozen=True)
class Recipe:
    """One trainable family as the CLI sees it.

    Attributes:
        name: CLI name (``ebmlab train NAME``).
        summary: one line for ``ebmlab list``.
        build: (x_train, ctx) -> (model, objective or None).
        evaluate: (model, x_train, x_test, ctx) -> metrics dict (``test_log_likelihood`` in nats,
            with ``test_log_likelihood_se`` and ``log_likelihood_method`` where it applies).
        figures: (model, x_test, ctx) -> list of ``Figure`` written under ``ctx.out_dir``.
        fit: (model, x_train, ctx) -> metrics, for families fitted in closed form or by a
            rule that is not gradient training (PCA, a Hopfield network's storage rule).
        stages: (model, objective, ctx, loop config) -> the training stages, for families trained
            in several parts; None: one stage, the objective on the training data.
        binarize: the binarization the family needs by default (None, "stochastic", ...).
        options: family options with defaults.
        train_defaults: defaults for the loop (epochs, batch_size, lr, optimizer, ...).
        demo: overrides (options and loop settings) used by ``ebmlab demo`` on digits.
        data_kinds: which datasets it accepts: "image", "toy2d" or both.
    """

    name: str
    summary: str
    build: Callable[[torch.Tensor, Context], tuple[Model, Objective | None]]
    evaluate: Callable[[Model, torch.Tensor, torch.Tensor, Context], dict[str, Any]]
    figures: Callable[[Model, torch.Tensor, Context], list[Figure]]
    fit: Callable[[Model, torch.Tensor, Context], dict[str, Any]] | None = None
    stages: StagePlan | None = None
    binarize: str | None = None
    options: tuple[Option, ...] = ()
    train_defaults: dict[str, Any] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=dict)
    data_kinds: tuple[str, ...] = ("image",)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def _load_builtin() -> None:
    # each family module registers its recipe on import; a missing module is simply absent
    import importlib

    for module in (
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
    ):
        try:
            importlib.import_module(f"ebmlab.app.families.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"ebmlab.app.families.{module}":
                raise


def get_recipe(name: str) -> Recipe:
    _load_builtin()
    if name not in RECIPES:
        valid = ", ".join(sorted(RECIPES)) or "(none)"
        raise ValueError(f"unknown model {name!r}; valid models: {valid}")
    return RECIPES[name]


def all_recipes() -> dict[str, Recipe]:
    _load_builtin()
    return dict(sorted(RECIPES.items()))
