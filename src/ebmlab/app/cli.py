"""The ``ebmlab`` command: train, sample, eval, report, demo, list, bench (and family commands).

The CLI only turns arguments into configs and calls the library; nothing below it reads the
command line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__, data, io
from ..training import (
    PRECISIONS,
    Stage,
    TrainConfig,
    TrainingDiverged,
    resolve_device,
    run_stages,
)
from ..training.logging import append_record as append_metrics_record
from ..training.logging import training_seconds
from ..validation import check_nonnegative_int, check_positive_int
from . import recipes, rundir
from .recipes import Context, Figure, Recipe

EXAMPLES = {
    "train": "example: ebmlab train rbm --data mnist --hidden 500 --method pcd --epochs 100",
    "sample": "examples: ebmlab sample runs/rbm-mnist --n 64 --steps 1000\n"
    "          ebmlab sample runs/ebm-8gaussians --sampler mala --step-size 0.05 --json",
    "eval": "example: ebmlab eval runs/rbm-mnist --json",
    "report": "example: ebmlab report runs/rbm-mnist   (writes runs/rbm-mnist/report.html)",
    "compare": "example: ebmlab compare runs/*-mnist --eval --out docs/compare.md",
    "demo": "example: ebmlab demo --out runs/demo   (every family on digits, one report)",
    "list": "example: ebmlab list",
    "bench": "example: ebmlab bench rbm --quick --json",
}

TOY_TRAIN, TOY_TEST = 20_000, 5_000


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# ----- data ---------------------------------------------------------------------------------------
@dataclass
class Split:
    """A run's data: training and test examples, their labels where the dataset has them."""

    x_train: torch.Tensor
    x_test: torch.Tensor
    y_train: torch.Tensor | None
    y_test: torch.Tensor | None
    image_shape: tuple[int, int] | None


def load_split(name: str, binarize: str | None, seed: int, data_dir: str | None = None) -> Split:
    """The training and test data of an image dataset or a toy 2-D density."""
    if data.is_toy2d(name):
        train, test = data.toy2d(name, TOY_TRAIN, seed), data.toy2d(name, TOY_TEST, seed + 1)
        return Split(train, test, None, None, None)
    x_train, y_train = data.load(name, "train", binarize=binarize, data_dir=data_dir)
    x_test, y_test = data.load(name, "test", binarize=binarize, data_dir=data_dir)
    return Split(x_train, x_test, y_train, y_test, data.image_shape(name))


def _check_data_kind(recipe: Recipe, name: str) -> None:
    kind = "toy2d" if data.is_toy2d(name) else "image"
    if kind not in recipe.data_kinds:
        valid = [
            d
            for d in data.list_datasets()
            if ("toy2d" if data.is_toy2d(d) else "image") in recipe.data_kinds
        ]
        raise CLIError(
            f"--data: model {recipe.name!r} does not take {name!r}; valid datasets "
            f"for it: {', '.join(valid)}"
        )


# ----- running one family ------------------------------------------------------------------------
_write_json = rundir.write_json


def _relative_to_run(path: Path, out: Path) -> str:
    """A figure's path relative to the run directory (recipes may return either form)."""
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)


def _figures_manifest(out: Path, figures: list[Figure]) -> None:
    _write_json(
        out / "figures.json",
        [
            {"path": _relative_to_run(f.path, out), "title": f.title, "caption": f.caption}
            for f in figures
        ],
    )


def make_context(
    run_config: dict[str, Any],
    out: Path,
    quick: bool = False,
    split: Split | None = None,
    data_dir: str | None = None,
    progress: bool = True,
) -> Context:
    """The recipe's context for a run config (``config.json``'s fields: model, data, options,
    train, image_shape); options the config does not name take the family's defaults."""
    device = resolve_device(run_config["train"].get("device", "auto"))
    recipe = recipes.get_recipe(run_config["model"])
    ctx = Context(
        options=recipe.with_defaults(run_config["options"]),
        data_name=run_config["data"],
        image_shape=tuple(run_config["image_shape"]) if run_config.get("image_shape") else None,
        generator=torch.Generator(device=device).manual_seed(run_config["train"]["seed"] + 17),
        out_dir=out,
        device=device,
        quick=quick,
        data_dir=data_dir,
        progress=progress,
    )
    if split is not None:
        ctx.x_train, ctx.x_test = split.x_train, split.x_test
        ctx.y_train, ctx.y_test = split.y_train, split.y_test
    return ctx


def run_family(
    recipe: Recipe,
    data_name: str,
    options: dict[str, Any],
    train_config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    evaluate: bool = False,
    quick: bool = False,
    data_dir: str | None = None,
    restarts: int = 0,
    run_id: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """Train (or fit) one family on one dataset, write checkpoint, figures and report; returns
    the evaluation metrics (empty unless ``evaluate``); ``preset`` (the name of the recipe's
    preset the options and settings came from) is recorded with the run.

    ``out`` is taken as it is: ``ebmlab train`` checks it first (``ebmlab.app.rundir``). The run
    record (family, data, options, loop settings, restarts, ``run_id``) goes to
    ``out/config.json`` and into every checkpoint's metadata, so that a resume can check that
    the two describe the same run."""
    _check_data_kind(recipe, data_name)
    recipes.check_options(recipe, options)
    # toy 2-D data are points, never binarized (the record says so)
    binarize = None if data.is_toy2d(data_name) else options.get("binarize", recipe.binarize)
    split = load_split(data_name, binarize, train_config.seed, data_dir)
    x_train, x_test, image_shape = split.x_train, split.x_test, split.image_shape
    run_config = {
        "model": recipe.name,
        "data": data_name,
        "binarize": binarize,
        "image_shape": list(image_shape) if image_shape else None,
        "options": options,
        # a family fitted by its own rule uses only the seed and the device of the loop settings
        "train": (
            train_config.__dict__
            if recipe.fit is None
            else {"seed": train_config.seed, "device": train_config.device}
        ),
        "restarts": restarts,
        "run_id": run_id or rundir.new_run_id(),
        **({"preset": preset} if preset else {}),
        "ran": {
            "device": str(resolve_device(train_config.device)),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "torch": torch.__version__,
        },
        "ebmlab_version": __version__,
        "command": " ".join(sys.argv),
    }
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_config(out, run_config)
    ctx = make_context(run_config, out, quick, split, data_dir, train_config.progress)
    torch.manual_seed(train_config.seed)  # for libraries that use the global generator only
    model, objective = recipe.build(x_train, ctx)
    meta = {
        "dataset": data_name,
        "binarize": binarize,
        "options": options,
        "recipe": recipe.name,
        "run": {k: v for k, v in run_config.items() if k != "command"},
    }
    started = time.perf_counter()
    if objective is not None or recipe.stages is not None:
        plan = (
            recipe.stages(model, objective, ctx, train_config)
            if recipe.stages is not None
            else [Stage("train", model, objective, x_train, train_config)]
        )
        run_stages(
            model, plan, out, resume=resume, meta=meta, restarts=restarts, log=stage_logger()
        )
    else:
        if recipe.fit is None:
            raise CLIError(f"model {recipe.name!r} has neither an objective nor a fit rule")
        model.to(ctx.device)
        fit_metrics = recipe.fit(model, x_train.to(ctx.device), ctx)
        if is_main:
            io.save(model, out / "checkpoint.safetensors", meta={**meta, "fit": fit_metrics})
    seconds = time.perf_counter() - started
    if not is_main:
        return {}
    if objective is not None or recipe.stages is not None:
        # the stages' own clocks: a resumed run counts the time of its earlier parts too
        seconds = training_seconds(out) or seconds
    metrics: dict[str, Any] = {"train_seconds": round(seconds, 2)}
    model.eval()
    if evaluate:
        metrics.update(recipe.evaluate(model, x_train.to(ctx.device), x_test.to(ctx.device), ctx))
        _warn_if_baseline(recipe, metrics, split, binarize)
        metrics = save_evaluation(out, metrics, quick)
    figures = recipe.figures(model, x_test.to(ctx.device), ctx)
    _figures_manifest(out, figures)
    from .report import section_from_run, write_report

    write_report(
        [section_from_run(out)], out / "report.html", title=f"ebmlab: {recipe.name} on {data_name}"
    )
    return metrics


# ----- commands ----------------------------------------------------------------------------------
def stage_logger() -> Any:
    """Print each training stage as it starts (stderr), on the main process only."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    return lambda message: print(f"ebmlab: {message}", file=sys.stderr, flush=True)


#: The loop's own defaults (a recipe's ``train_defaults`` override them).
LOOP_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
#: Loop flags of ``ebmlab train`` (None when not given).
TRAIN_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "device",
    "optimizer",
    "schedule",
    "max_minutes",
    "precision",
)


def _given(recipe: Recipe, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The family options and loop settings given on the command line (not the defaults)."""
    options = {
        opt.name: getattr(args, opt.name)
        for opt in recipe.options
        if getattr(args, opt.name, None) is not None
    }
    settings = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k, None) is not None}
    return options, settings


def _fitted_note(recipe: Recipe, settings: dict[str, Any]) -> None:
    loop = ("epochs", "lr", "batch_size", "optimizer", "schedule", "max_minutes", "precision")
    ignored = [_flag(key) for key in loop if key in settings]
    if recipe.fit is not None and ignored:
        print(
            f"ebmlab: note: {recipe.name!r} is fitted by its own rule, not the training loop, "
            f"so {', '.join(ignored)} has no effect; see `ebmlab train {recipe.name} --help` "
            "for its options",
            file=sys.stderr,
        )


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _epochs_done(out: Path, epochs: Any) -> int | None:
    """Epochs the run's checkpoint has trained, when its loop is the run's own (its
    ``train_config.epochs`` is the run's ``--epochs``; a staged family's layer loops are not)."""
    path = out / rundir.CHECKPOINT_NAME
    if not path.is_file():
        return None
    meta = io.read_checkpoint(path)[0].get("meta", {})
    state, loop = meta.get("train_state"), meta.get("train_config")
    if not isinstance(state, dict) or not isinstance(loop, dict) or loop.get("epochs") != epochs:
        return None
    done = state.get("epoch")
    return done if isinstance(done, int) else None


def _resumed_config(
    recipe: Recipe,
    args: argparse.Namespace,
    out: Path,
    options: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The run recorded in ``out``, checked against its checkpoint and the flags given; flags
    that may change on resume (``--epochs``, ``--device``, ``--restarts``) are applied, said
    and recorded in metrics.jsonl, any other change is refused."""
    recorded = rundir.read_config(out)
    if recorded["model"] != recipe.name:
        raise CLIError(
            f"--resume: {out} holds a {recorded['model']} run, not {recipe.name}; resume it with "
            f"`ebmlab train {recorded['model']} --out {out} --resume`"
        )
    rundir.check_binding(out, recorded)
    preset = getattr(args, "preset", None)
    if preset and preset != recorded.get("preset"):  # the record holds what the preset filled
        raise CLIError(
            f"--resume: {out} was started with preset {recorded.get('preset')!r}, not "
            f"{preset!r}; drop --preset to resume it"
        )
    asked = json.loads(json.dumps(recorded))
    asked["options"].update(options)
    asked["train"].update(settings)
    if args.data is not None:
        asked["data"] = args.data
    refused = rundir.differences(recorded, asked)
    if refused:
        raise CLIError(
            f"--resume continues the run recorded in {out}; these flags would change it: "
            f"{'; '.join(refused)}. Drop them to resume, or start a new run (another --out, or "
            "--force to replace this one)"
        )
    changed = {
        key: [recorded["train"].get(key), asked["train"][key]]
        for key in ("epochs", "device")
        if asked["train"].get(key) != recorded["train"].get(key)
    }
    if "epochs" in changed:
        done = _epochs_done(out, recorded["train"].get("epochs"))
        if done is not None and asked["train"]["epochs"] < done:
            raise CLIError(
                f"--epochs: {out} has trained {done} epochs already; --resume --epochs N trains "
                f"on up to N epochs in all, so N must be at least {done} (got "
                f"{asked['train']['epochs']})"
            )
    if args.restarts is not None and args.restarts != recorded.get("restarts", 0):
        changed["restarts"] = [recorded.get("restarts", 0), args.restarts]
        asked["restarts"] = args.restarts
    if changed and int(os.environ.get("RANK", "0")) == 0:
        said = ", ".join(f"{_flag(k)} {old} -> {new}" for k, (old, new) in changed.items())
        print(f"ebmlab: resuming {out} with {said}", file=sys.stderr)
        append_metrics_record(out, {"kind": "resume", "changed": changed})
    return asked


def data_defaults(recipe: Recipe, data_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The family's option and loop defaults for ``data_name``: on the demo's dataset (digits)
    the demo's data-sized settings (a 784 x 500 RBM with 14,500 AIS betas is an MNIST recipe),
    elsewhere the recipe's own."""
    options = {opt.name: opt.default for opt in recipe.options}
    train = dict(recipe.train_defaults)
    demo = dict(recipe.demo or {})
    if demo and demo.pop("data", "digits") == data_name:
        options.update(demo.pop("options", {}))
        train.update(demo)
    return options, train


def cmd_train(args: argparse.Namespace) -> int:
    recipe = recipes.get_recipe(args.model)
    if args.restarts is not None:
        check_nonnegative_int(args.restarts, "--restarts")
    options, settings = _given(recipe, args)
    try:  # every option, evaluation ones included, before anything is trained
        recipes.check_options(recipe, options)
    except ValueError as error:
        raise CLIError(str(error)) from None
    _fitted_note(recipe, settings)
    out = Path(args.out or f"runs/{recipe.name}-{args.data or 'digits'}")
    is_main = int(os.environ.get("RANK", "0")) == 0
    if args.resume and not (out / rundir.CONFIG_NAME).is_file():
        raise CLIError(
            f"--resume: {out} holds no run to resume (no {rundir.CONFIG_NAME}); pass the run "
            "directory with --out"
        )
    if settings.get("precision") is not None:  # before anything is written or replaced
        from ..training.config import check_precision
        from ..training.distributed import resolve_device

        try:
            check_precision(settings["precision"], resolve_device(settings.get("device", "auto")))
        except ValueError as error:
            raise CLIError(f"--{error}") from None
    if is_main:
        rundir.check_writable(out)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            print(f"ebmlab: training on {world} processes (data parallel)", file=sys.stderr)
    with rundir.RunLock(out) if is_main else contextlib.nullcontext():
        if is_main:
            rundir.remove_temporaries(out)
        if args.resume:
            run = _resumed_config(recipe, args, out, options, settings)
        else:
            if is_main:
                rundir.prepare_new(out, args.force)
            data_name = args.data or "digits"
            defaults, train_defaults = data_defaults(recipe, data_name)
            preset = getattr(args, "preset", None)
            if preset:  # below the flags given
                defaults, train_defaults = recipes.apply_preset(
                    recipe, preset, defaults, train_defaults
                )
            run = {
                "data": data_name,
                "options": {**defaults, **options},
                "train": {**train_defaults, **settings},
                "restarts": args.restarts or 0,
                "run_id": None,
                "preset": preset,
            }
        if is_main:
            for note in recipes.moot_options(recipe, run["options"], options):
                print(f"ebmlab: note: {note}", file=sys.stderr)
        train = {**run["train"], "progress": not args.no_progress}
        metrics = run_family(
            recipe,
            run["data"],
            run["options"],
            TrainConfig(**train),
            out,
            resume=args.resume,
            evaluate=args.eval,
            data_dir=args.data_dir,
            restarts=run["restarts"],
            run_id=run["run_id"],
            preset=run.get("preset"),
        )
    if is_main:
        print(f"run written to {out}/ (checkpoint.safetensors, metrics.jsonl, report.html)")
        if metrics:
            print(json.dumps(metrics, indent=2))
    return 0


def _load_run(run: str) -> tuple[Path, dict[str, Any], Recipe]:
    path = Path(run)
    if not path.exists():
        raise CLIError(f"RUN: {path}: no such run directory")
    run_dir = path if path.is_dir() else path.parent
    config = rundir.read_config(run_dir)
    if not (run_dir / "checkpoint.safetensors").exists():
        diverged = rundir.divergence(run_dir)
        if diverged is not None:
            raise CLIError(
                f"RUN: {run_dir} has no checkpoint: training diverged before the first one was "
                f"written ({diverged}); train it again with a lower --lr or another --seed "
                f"(`ebmlab train {config['model']} --out {run_dir} --force ...`)"
            )
        raise CLIError(
            f"RUN: {run_dir} has no checkpoint yet (the run was stopped before its first "
            f"epoch ended); continue it with `ebmlab train {config['model']} --out {run_dir} "
            "--resume`"
        )
    return run_dir, config, recipes.get_recipe(config["model"])


def _warn_if_baseline(
    recipe: Recipe, metrics: dict[str, Any], split: Split, binarize: str | None
) -> None:
    """Warn when a model of binary images scores no better than independent pixels: it has not
    learned any dependence between pixels yet (too short, or a learning rate too small)."""
    from ..models import IndependentBernoulli

    ll = metrics.get("test_log_likelihood")
    if recipe.name == "independent" or not binarize or not isinstance(ll, int | float):
        return
    x_train, x_test = split.x_train.flatten(1).cpu(), split.x_test.flatten(1).cpu()
    baseline = IndependentBernoulli(x_train.shape[1]).fit(x_train)
    with torch.no_grad():
        floor = float(baseline.log_prob(x_test).mean())
    metrics["independent_pixels_test_log_likelihood"] = floor
    se = float(metrics.get("test_log_likelihood_se") or 0.0)
    if ll <= floor + se:
        advice = (
            f"it is fitted by its own rule, so training longer would not change that; its "
            f"options (`ebmlab train {recipe.name} --help`) set what it can capture"
            if recipe.fit is not None
            else "it has not learned how pixels depend on each other yet (train longer, or "
            "with a larger learning rate)"
        )
        print(
            f"ebmlab: warning: the model's test log-likelihood ({ll:.2f} nats) is no better "
            f"than independent pixels' ({floor:.2f}): {advice}",
            file=sys.stderr,
        )


#: How thorough a stored evaluation was (``eval.json``'s "evaluation"): a quick one never
#: replaces a full one.
EVALUATION_LEVELS = {"quick": 0, "full": 1}


def stored_evaluation(run_dir: Path, quick: bool) -> dict[str, Any] | None:
    """``RUN/eval.json`` when it evaluated the current checkpoint at least as thoroughly as
    asked (None: evaluate again)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("checkpoint_sha256") != rundir.checkpoint_digest(
        run_dir
    ):
        return None
    level = EVALUATION_LEVELS.get(str(stored.get("evaluation")), -1)
    return stored if level >= EVALUATION_LEVELS["quick" if quick else "full"] else None


def save_evaluation(run_dir: Path, metrics: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Write ``RUN/eval.json`` tagged with its thoroughness and the checkpoint it scored, unless
    a fuller evaluation of that checkpoint is there already (then that one is kept and
    returned). A run that cannot be written still gets its metrics back, with a warning."""
    metrics = {
        **metrics,
        "evaluation": "quick" if quick else "full",
        "checkpoint_sha256": rundir.checkpoint_digest(run_dir),
    }
    if quick and stored_evaluation(run_dir, quick=False) is not None:
        print(
            f"ebmlab: note: kept the full evaluation in {run_dir / 'eval.json'}; the quick one "
            "is printed only",
            file=sys.stderr,
        )
        return metrics
    try:
        _write_json(run_dir / "eval.json", metrics)
    except OSError as error:  # a read-only run: the metrics are still returned and printed
        print(
            f"ebmlab: warning: could not write {run_dir / 'eval.json'} "
            f"({error.strerror or error}); the metrics follow",
            file=sys.stderr,
        )
    return metrics


def evaluation_settings(recipe: Recipe, given: Sequence[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` pairs parsed into the recipe's evaluation options (``Option`` with
    ``evaluation=True``), each converted to the option's type and checked against its choices."""
    allowed = {opt.name: opt for opt in recipe.options if opt.evaluation}
    names = ", ".join(sorted(allowed)) or "none"
    settings: dict[str, Any] = {}
    for item in given:
        name, sep, text = str(item).partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not text.strip():
            raise CLIError(f"--set: expected NAME=VALUE, got {item!r}")
        opt = allowed.get(name)
        if opt is None:
            known = name in TRAIN_FLAGS or any(o.name == name for o in recipe.options)
            what = (
                "sets how the model is trained: changing it needs a new run"
                if known
                else "is not an option of this family"
            )
            raise CLIError(
                f"--set: {name!r} {what}; the evaluation options of {recipe.name!r} are: {names}"
            )
        settings[name] = _option_value(opt, text.strip(), "--set " + name)
    return settings


def _option_value(opt: Any, text: str, what: str) -> Any:
    if opt.type is bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise CLIError(f"{what}: expected true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    try:
        value = opt.type(text)
    except ValueError:
        raise CLIError(f"{what}: expected {opt.type.__name__}, got {text!r}") from None
    try:
        recipes.check_option(opt, value, what)
    except ValueError as error:
        raise CLIError(str(error)) from None
    return value


def evaluate_run(
    run: str | os.PathLike[str],
    device: str | None = None,
    quick: bool = False,
    data_dir: str | None = None,
    recompute: bool = False,
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate a run directory with its recipe and return the metrics; the stored evaluation
    of the same checkpoint is reused unless ``recompute`` (or it was quicker than asked).

    ``settings``: ``NAME=VALUE`` changes of the recipe's evaluation options for this
    evaluation only (e.g. ``ais_betas=100000``): the run's config is left as it is, the
    evaluation is computed again and records them as ``evaluation_settings``."""
    run_dir, config, recipe = _load_run(str(run))
    changed = evaluation_settings(recipe, settings)
    if changed:
        config["options"] = {**config["options"], **changed}
        recompute = True
    if not recompute:
        stored = stored_evaluation(run_dir, quick)
        if stored is not None:
            print(
                f"ebmlab: using the stored {stored['evaluation']} evaluation in "
                f"{run_dir / 'eval.json'} (--recompute to evaluate again)",
                file=sys.stderr,
            )
            return stored
    if device:
        config["train"]["device"] = device
    split = load_split(config["data"], config.get("binarize"), config["train"]["seed"], data_dir)
    ctx = make_context(config, run_dir, quick, split, data_dir)
    model = io.load(run_dir / "checkpoint.safetensors", device=str(ctx.device))
    model.eval()
    x_train, x_test = split.x_train, split.x_test
    print(
        f"ebmlab: evaluating {run_dir} ({recipe.name}, {'quick' if quick else 'full'}) ...",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    metrics = recipe.evaluate(model, x_train.to(ctx.device), x_test.to(ctx.device), ctx)
    print(f"ebmlab: evaluated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    _warn_if_baseline(recipe, metrics, split, config.get("binarize"))
    trained = training_seconds(run_dir)
    if trained and "train_seconds" not in metrics:  # the training time stays beside the scores
        metrics = {"train_seconds": round(trained, 2), **metrics}
    if changed:
        metrics["evaluation_settings"] = changed
    return save_evaluation(run_dir, metrics, quick)


def cmd_eval(args: argparse.Namespace) -> int:
    metrics = evaluate_run(
        args.run, args.device, args.quick, args.data_dir, args.recompute, args.set or ()
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        width = max(len(k) for k in metrics) if metrics else 0
        for key, value in metrics.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import collect, find_runs, markdown_table

    runs, skipped = find_runs(args.runs)
    for note in skipped:
        print(f"ebmlab: compare: skipping {note}", file=sys.stderr)
    if not runs:
        raise CLIError("compare: none of the paths given is a run directory")
    for run in runs:
        if args.eval and (run / "config.json").exists() and stored_evaluation(run, True) is None:
            print(f"[compare] evaluating {run} ...", file=sys.stderr, flush=True)
            evaluate_run(run)
    records = collect(runs)
    if args.json:
        for record in records:
            print(json.dumps(record))
        return 0
    table = markdown_table(records)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


def _write_samples(samples: torch.Tensor, config: dict[str, Any], out: Path, title: str) -> Path:
    from . import viz

    shape = tuple(config["image_shape"]) if config.get("image_shape") else None
    if shape is not None:
        return viz.image_grid(samples, shape, out, title=title)
    if samples.shape[-1] == 2:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 4))
        points = samples.detach().cpu().numpy()
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        return viz._save(fig, out)
    import numpy as np

    target = out.with_suffix(".npy")
    np.save(target, samples.detach().cpu().numpy())
    return target


#: Step sizes of the gradient kernels when ``--step-size`` is not given.
DEFAULT_STEP_SIZES = {"langevin": 0.01, "ula": 0.01, "mala": 0.01, "sgld": 0.01, "hmc": 0.05}
#: Kernels that move continuous states along the energy's gradient.
GRADIENT_KERNELS = tuple(DEFAULT_STEP_SIZES)


def _visible(model: Any, samples: torch.Tensor) -> torch.Tensor:
    """The visible units of full states (a Boltzmann machine's labels and hidden units follow
    its visible units)."""
    n_visible = getattr(model, "n_visible", None)
    if isinstance(n_visible, int) and samples.dim() == 2 and samples.shape[1] > n_visible:
        return samples[:, :n_visible]
    return samples


def _own_samples(model: Any, n: int, steps: int | None, generator: torch.Generator) -> Any:
    """Draw with the model's own sampler, passing the chain length under its own name."""
    import inspect

    parameters = inspect.signature(model.sample).parameters
    kwargs: dict[str, Any] = {"generator": generator}
    if steps is not None:
        name = next((k for k in ("n_steps", "n_sweeps") if k in parameters), None)
        if name is None:
            raise CLIError(
                f"--steps: {type(model).__name__} draws exact samples (no Markov chain); drop it"
            )
        kwargs[name] = steps
    return model.sample(n, **kwargs)


def _sampler_refusal(model: Any, sampler: str) -> str | None:
    """Why ``--sampler`` cannot run on ``model`` (None: it can)."""
    binary = getattr(model, "spin_values", None) is not None or hasattr(model, "free_energy")
    if not hasattr(model, "energy") and not hasattr(model, "free_energy"):
        return f"{type(model).__name__} has no energy function for a Markov chain to sample"
    if sampler in GRADIENT_KERNELS and binary:
        return (
            f"{sampler} moves continuous states; {type(model).__name__} has binary units "
            "(use mh or gibbs)"
        )
    if sampler == "gibbs" and not binary:
        return f"gibbs needs discrete units; {type(model).__name__} is continuous (use mala or hmc)"
    return None


def cmd_sample(args: argparse.Namespace) -> int:
    check_positive_int(args.n, "--n")
    check_positive_int(args.thin, "--thin")
    check_nonnegative_int(args.burn_in, "--burn-in")
    if args.steps is not None:
        check_nonnegative_int(args.steps, "--steps")
    if args.sampler is None:
        given = [
            flag
            for flag, value, unset in (
                ("--step-size", args.step_size, None),
                ("--burn-in", args.burn_in, 0),
                ("--thin", args.thin, 1),
                ("--json", args.json, False),
            )
            if value != unset
        ]
        if given:
            raise CLIError(
                f"{', '.join(given)}: these set the Markov chain of --sampler; without it the "
                "model's own sampler runs, which takes --n, --steps and --seed"
            )
    else:
        if args.steps is not None:
            check_positive_int(args.steps, "--steps")
        if args.step_size is not None and not (
            math.isfinite(args.step_size) and args.step_size > 0
        ):
            raise CLIError(f"--step-size: expected a finite number > 0, got {args.step_size}")
    run_dir, config, _ = _load_run(args.run)
    model = io.load(run_dir / "checkpoint.safetensors")
    model.eval()
    generator = torch.Generator().manual_seed(args.seed)
    # never over the run's own samples.png, which the report describes
    out = Path(args.out) if args.out else run_dir / "samples_drawn.png"
    if args.sampler is None:
        if not hasattr(model, "sample"):
            if _sampler_refusal(model, "mh") is not None:
                raise CLIError(
                    f"RUN: a {type(model).__name__} defines no probability distribution to "
                    "sample (it maps data to codes and back); its report shows reconstructions"
                )
            raise CLIError(
                f"RUN: {type(model).__name__} has no sampler of its own; run a Markov chain on "
                "its energy with --sampler mh (binary units) or --sampler mala (continuous)"
            )
        samples = _visible(model, _own_samples(model, args.n, args.steps, generator))
        path = _write_samples(samples, config, out, f"{args.n} samples")
        print(f"wrote {path}")
        return 0
    from .. import samplers
    from . import viz_mcmc

    refusal = _sampler_refusal(model, args.sampler)
    if refusal is not None:
        raise CLIError(f"--sampler {args.sampler}: {refusal}")
    settings: dict[str, Any] = {}
    if args.sampler in GRADIENT_KERNELS:
        # SGLD's step size decays from its scale a: eps_t = a (b + t)^-gamma
        key = "a" if args.sampler == "sgld" else "step_size"
        step_size = DEFAULT_STEP_SIZES[args.sampler] if args.step_size is None else args.step_size
        settings[key] = step_size
    elif args.step_size is not None:
        raise CLIError(f"--step-size: {args.sampler} takes no step size")
    if args.sampler == "mh" and getattr(model, "spin_values", None) is not None:
        # binary states: bit-flip proposals, not Gaussian moves
        settings.update(proposal="flip", spin_values=tuple(model.spin_values))
    kernel = samplers.make_kernel(args.sampler, **settings)
    x0 = samplers.initial_states(model, args.n, generator)
    result = samplers.sample(
        kernel,
        model,
        x0,
        1000 if args.steps is None else args.steps,
        burn_in=args.burn_in,
        thin=args.thin,
        generator=generator,
        progress=not args.no_progress,
    )
    path = _write_samples(
        _visible(model, result.samples[-1]),
        config,
        out,
        f"{args.n} chains, {args.sampler}, last draw",
    )
    viz_mcmc.plot_trace(result.samples, out.with_name(out.stem + "_trace.png"))
    viz_mcmc.plot_autocorrelation(result.samples, out.with_name(out.stem + "_acf.png"))
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:<16} {value}")
        print(f"wrote {path} and trace/autocorrelation plots beside it")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import section_from_run, write_report

    run_dir, _, _ = _load_run(args.run)
    path = write_report(
        [section_from_run(run_dir)], run_dir / "report.html", title=f"ebmlab report: {run_dir.name}"
    )
    print(f"wrote {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print("models:")
    for name, recipe in recipes.all_recipes().items():
        print(f"  {name:<12} {recipe.summary}")
    print("datasets:")
    for name, description in data.list_datasets().items():
        print(f"  {name:<16} {description}")
    return 0


def _demo_table(summary: dict[str, dict[str, Any]], data_names: dict[str, str]) -> str:
    """HTML table: one row per family with its data, test log-likelihood (and how it was
    obtained) and its other scores (``ebmlab.app.compare.other_scores``)."""
    import html

    from .compare import other_scores
    from .report import lecture_rank

    rows = []
    for name in sorted(summary, key=lecture_rank):
        m = summary[name]
        ll = m.get("test_log_likelihood")
        se = m.get("test_log_likelihood_se")
        value = "" if ll is None else f"{ll:.2f}" + (f" ± {se:.2f}" if se else "")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(data_names.get(name, ''))}</td>"
            f"<td>{value}</td>"
            f"<td>{html.escape(str(m.get('log_likelihood_method', '')))}</td>"
            f"<td>{html.escape(other_scores(m))}</td><td>{m.get('seconds', '')}</td></tr>"
        )
    return (
        "<table><tr><th>family</th><th>data</th><th>test log-likelihood (nats per example)</th>"
        "<th>how</th><th>other scores</th><th>seconds</th></tr>" + "".join(rows) + "</table>"
        "<p>Binary families score stochastically binarized digits; the Gaussian-Bernoulli RBM "
        "scores grey levels (a density, not comparable with the binary ones).</p>"
    )


def _headline(metrics: dict[str, Any]) -> str:
    """A run's main result in words: its log-likelihood and how, or its other scores."""
    from .compare import other_scores

    ll = metrics.get("test_log_likelihood")
    if isinstance(ll, int | float):
        se = metrics.get("test_log_likelihood_se")
        spread = f" ± {se:.2f}" if isinstance(se, int | float) else ""
        how = metrics.get("log_likelihood_method", "")
        return f"test log-likelihood {ll:.2f}{spread} nats ({how})"
    return other_scores(metrics) or "trained (no score)"


def cmd_demo(args: argparse.Namespace) -> int:
    from .report import section_from_run, write_report

    out = Path(args.out)
    sections = []
    summary: dict[str, Any] = {}
    data_names: dict[str, str] = {}
    started = time.perf_counter()
    in_demo = [name for name, recipe in recipes.all_recipes().items() if recipe.demo]
    unknown = [name for name in args.only or () if name not in in_demo]
    if unknown:
        raise CLIError(
            f"--only: {', '.join(map(repr, unknown))} is not a family of the demo; its families "
            f"are: {', '.join(in_demo)}"
        )
    for name, recipe in recipes.all_recipes().items():
        if not recipe.demo or (args.only and name not in args.only):
            continue
        demo = dict(recipe.demo)
        data_name = demo.pop("data", "digits")
        options = {opt.name: opt.default for opt in recipe.options}
        options.update(demo.pop("options", {}))
        settings = {
            **recipe.train_defaults,
            **demo,
            "seed": args.seed,
            "device": args.device,
            "progress": not args.no_progress,
        }
        print(f"[demo] {name} on {data_name} ...", flush=True)
        t0 = time.perf_counter()
        if (out / name).is_dir():
            rundir.clear(out / name)  # the demo always starts its runs afresh
        metrics = run_family(
            recipe,
            data_name,
            options,
            TrainConfig(**settings),
            out / name,
            evaluate=True,
            quick=True,
        )
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"[demo] {name}: {_headline(metrics)} ({metrics['seconds']} s)", flush=True)
        summary[name] = metrics
        data_names[name] = data_name
        sections.append(section_from_run(out / name, title=f"{name}: {recipe.summary}"))
    total = time.perf_counter() - started
    intro = (
        "Every model family on the digits data, trained and sampled by "
        f"<code>ebmlab demo</code> in {total:.0f} s.</p>" + _demo_table(summary, data_names) + "<p>"
    )
    path = write_report(sections, out / "report.html", title="ebmlab demo", intro=intro)
    _write_json(out / "summary.json", {"seconds": round(total, 1), "families": summary})
    print(f"demo finished in {total:.0f} s; open {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import available, gpu_check, run_benchmark

    if args.gpu or args.dry_run:
        for record in gpu_check(dry_run=args.dry_run, only=args.names):
            print(json.dumps(record), flush=True)
        return 0
    names = args.names or sorted(available(args.folder))
    for name in names:
        for record in run_benchmark(name, quick=args.quick, folder=args.folder):
            print(
                json.dumps(record)
                if args.json
                else "  ".join(f"{k}={v}" for k, v in record.items()),
                flush=True,
            )
    return 0


# ----- parser ------------------------------------------------------------------------------------
def _with_default(text: str, default: Any, on_digits: Any) -> str:
    """A flag's help with its default; the default data (digits) may have its own, e.g.
    "number of hidden units (default 20 on digits, 500 on other data)". A default of None is
    described by the help itself ("default: 512 images, 128 toys")."""
    if on_digits == default:
        return text if default is None else f"{text} (default {default})"
    if default is None:
        return f"{text}; {on_digits} on digits"
    return f"{text} (default {on_digits} on digits, {default} on other data)"


def _option_help(recipe: Recipe, opt: Any) -> str:
    on_digits = data_defaults(recipe, "digits")[0].get(opt.name, opt.default)
    if opt.type is bool:
        return opt.help if on_digits == opt.default else f"{opt.help} (on digits: {on_digits})"
    return _with_default(opt.help, opt.default, on_digits)


def _add_train_options(parser: argparse.ArgumentParser, recipe: Recipe) -> None:
    defaults = recipe.train_defaults
    on_digits = data_defaults(recipe, "digits")[1]
    fitted = recipe.fit is not None  # the loop flags do not apply: hidden from the help

    def loop_help(text: str, key: str) -> str:
        if fitted:
            return argparse.SUPPRESS
        shown = defaults.get(key, LOOP_DEFAULTS[key])
        return _with_default(text, shown, on_digits.get(key, shown))

    parser.add_argument("--data", help="dataset (see `ebmlab list`; default digits)")
    if recipe.presets:
        listed = "; ".join(
            f"{name}: {recipes.describe_preset(preset)}" for name, preset in recipe.presets.items()
        )
        parser.add_argument(
            "--preset",
            choices=sorted(recipe.presets),
            help=f"named settings, recorded in config.json; flags given override them ({listed})",
        )
    parser.add_argument(
        "--epochs", type=int, help=loop_help("passes over the training data", "epochs")
    )
    parser.add_argument(
        "--batch-size", type=int, help=loop_help("global minibatch size", "batch_size")
    )
    parser.add_argument("--lr", type=float, help=loop_help("learning rate", "lr"))
    parser.add_argument(
        "--optimizer", choices=["sgd", "adam"], help=loop_help("optimizer", "optimizer")
    )
    parser.add_argument(
        "--schedule",
        choices=["constant", "linear", "cosine", "exponential"],
        help=loop_help("learning-rate schedule", "schedule"),
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help=argparse.SUPPRESS
        if fitted
        else "stop training after this many minutes (each stage of a staged run gets its own "
        "budget), to compare families at equal compute; the learning-rate schedule follows the "
        "clock (default: no limit)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help=loop_help(
            "arithmetic of the training forward pass: bfloat16 autocasts matmuls and "
            "convolutions (parameters, gradients and evaluation stay float32; fast on CPUs "
            "with AVX-512 BF16 or AMX and on GPUs); tf32 uses CUDA tensor cores",
            "precision",
        ),
    )
    parser.add_argument("--out", help="run directory (default runs/MODEL-DATA)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out as it was recorded (only --epochs, --device and "
        "--restarts may change)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the run already in --out (deletes it)"
    )
    parser.add_argument(
        "--restarts",
        type=int,
        help="on divergence (NaN/exploding energies) restart from the last good checkpoint "
        "with a new seed, half the learning rate and the objective's remedies, up to N times "
        "over the run (default 0; a resumed run keeps the number it was started with)",
    )
    parser.add_argument("--eval", action="store_true", help="evaluate after training")
    parser.add_argument(
        "--data-dir", help="dataset folder (default $EBMLAB_DATA or ~/.cache/ebmlab)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ebmlab",
        description="Energy-based and deep generative models: train, sample, evaluate, report.",
        epilog="example: ebmlab demo",
    )
    parser.add_argument("--version", action="version", version=f"ebmlab {__version__}")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's own; "
        "`demo` uses 1, which is much faster for its small models)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    train_parser = command("train", "train a model on a dataset")
    models = train_parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, recipe in recipes.all_recipes().items():
        p = models.add_parser(
            name,
            help=recipe.summary,
            description=recipe.summary,
            epilog=_train_example(recipe),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_train_options(p, recipe)
        for opt in recipe.options:
            flag = "--" + opt.name.replace("_", "-")
            kind: dict[str, Any] = (
                {"action": argparse.BooleanOptionalAction}
                if opt.type is bool
                else {"type": opt.type, "choices": opt.choices}
            )
            kind["help"] = _option_help(recipe, opt)
            # default None: ``cmd_train`` tells the flags given from the recipe's defaults
            p.add_argument(flag, dest=opt.name, default=None, **kind)
        p.set_defaults(func=cmd_train)

    p = command("sample", "draw samples from a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--steps", type=int, help="MCMC steps (default: the model's own, or 1000)")
    p.add_argument(
        "--sampler",
        help="run this kernel through the MCMC runner and report diagnostics: mh, gibbs, pt, "
        "anneal or gwg, dmala, dula on binary units; langevin (ula), mala, sgld, hmc on "
        "continuous ones (default: the model's sampler)",
    )
    p.add_argument(
        "--step-size",
        type=float,
        help="kernel step size (langevin, ula, mala: default 0.01; sgld: its initial scale a, "
        "default 0.01; hmc: 0.05)",
    )
    p.add_argument("--burn-in", type=int, default=0, help="steps discarded before collecting")
    p.add_argument("--thin", type=int, default=1, help="keep every THIN-th draw")
    p.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", help="output PNG (default RUN/samples_drawn.png; the run's samples.png is kept)"
    )
    p.set_defaults(func=cmd_sample)

    p = command("eval", "evaluate a trained run (test log-likelihood in nats, ...)")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--quick",
        action="store_true",
        help="cheaper estimates (fewer AIS runs); never replaces a stored full evaluation",
    )
    p.add_argument(
        "--recompute", action="store_true", help="evaluate again even if eval.json is current"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="change an evaluation option of the run's family for this evaluation (repeatable; "
        "e.g. --set ais_betas=100000 --set ais_runs=400); implies --recompute",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--data-dir", help="dataset folder")
    p.set_defaults(func=cmd_eval)

    p = command("compare", "one table of test log-likelihoods (nats) across runs and families")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument(
        "--eval", action="store_true", help="evaluate the runs that have no eval.json first"
    )
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")
    p.add_argument("--out", help="also write the markdown table to this file")
    p.set_defaults(func=cmd_compare)

    p = command("report", "write RUN/report.html from a run directory")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_report)

    p = command("demo", "train every model family on digits and write one report")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--only", nargs="*", help="run only these families")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = command("list", "list models and datasets")
    p.set_defaults(func=cmd_list)

    p = command("bench", "run benchmarks (one JSON line per result)")
    p.add_argument(
        "names",
        nargs="*",
        help="benchmarks to run (default: all); with --gpu, its cases: rbm ais langevin "
        "training-precision",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.add_argument(
        "--folder",
        help="run the bench_NAME.py files of this folder instead of those shipped with ebmlab",
    )
    p.add_argument(
        "--gpu",
        action="store_true",
        help="the GPU check: RBM, AIS and Langevin on CUDA against the GPU's matmul peak",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="with --gpu: the same check on the CPU, tiny sizes"
    )
    p.set_defaults(func=cmd_bench)

    try:
        from .hopfield_cli import add_hopfield_parser
    except ModuleNotFoundError:  # pragma: no cover - family not installed
        pass
    else:
        add_hopfield_parser(sub)
    from .hashing_cli import add_hash_parser  # ``ebmlab hash``: semantic hashing

    add_hash_parser(sub)
    return parser


def _train_example(recipe: Recipe) -> str:
    """The family's own example for its ``--help``: its demo's data, then a larger dataset."""
    demo = recipe.demo or {}
    data_name = demo.get("data", "digits")
    lines = [f"examples: ebmlab train {recipe.name} --data {data_name} --eval"]
    if "image" in recipe.data_kinds and data_name != "mnist":
        lines.append(f"          ebmlab train {recipe.name} --data mnist --eval")
    if data_name == "digits":
        lines.append(
            "on digits the defaults are digits-sized (the settings `ebmlab demo` uses); flags "
            "override them"
        )
    return "\n".join(lines)


def _leave_process_group() -> None:
    """Under torchrun: wait for every rank, then tear the group down (a gloo group left to the
    interpreter's exit can abort the process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        _leave_process_group()


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    threads = args.threads if args.threads is not None else (1 if args.command == "demo" else None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads: expected a positive integer, got {threads}")
        # small models on CPU are dominated by per-operation overhead, which extra threads only
        # add to (a conv energy on 8x8 digits ran 10x faster on 1 thread than on 2)
        torch.set_num_threads(threads)
    try:
        return int(args.func(args) or 0)
    except TrainingDiverged as error:
        print(f"ebmlab: {error}.", _divergence_advice(args, error), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"\nebmlab: interrupted. {_resume_hint(args)}", file=sys.stderr)
        return 130
    except (CLIError, rundir.RunDirectoryError, ValueError, io.CheckpointError) as error:
        if os.environ.get("EBMLAB_DEBUG"):
            raise
        print(f"ebmlab: error: {error}", file=sys.stderr)
        return 2
    except (OSError, MemoryError, torch.OutOfMemoryError) as error:
        if os.environ.get("EBMLAB_DEBUG"):
            raise
        print(f"ebmlab: error: {_environment_error(error)}", file=sys.stderr)
        return 2


def _run_dir(args: argparse.Namespace) -> Path | None:
    if getattr(args, "command", None) != "train":
        return None
    return Path(args.out or f"runs/{args.model}-{args.data or 'digits'}")


def _resume_hint(args: argparse.Namespace) -> str:
    out = _run_dir(args)
    if out is None:
        return ""
    if not (out / "checkpoint.safetensors").exists() and not (out / "stages").exists():
        return f"No checkpoint was written yet; start again with `ebmlab train {args.model}`."
    return (
        f"The last checkpoint in {out} is kept; continue with "
        f"`ebmlab train {args.model} --out {out} --resume`."
    )


def _divergence_advice(args: argparse.Namespace, error: TrainingDiverged) -> str:
    out = _run_dir(args)
    where = f" {out}" if out is not None else ""
    if error.restarts:  # the run's own restarts are spent: more of the same may not help
        spent = f"It diverged again after the {error.restarts} restart(s) the run allows"
        more = error.restarts + 2
        if error.checkpoint is None:
            return (
                f"{spent}, before any checkpoint was written; start again with a lower --lr "
                "or another --seed (--force replaces the run)."
            )
        return (
            f"{spent}; the checkpoint {error.checkpoint} is the last good one: allow more with "
            f"`--out{where} --resume --restarts {more}`, or start a new run with a lower --lr."
        )
    if error.checkpoint is None:
        return (
            "No checkpoint was written before the divergence; start again with a lower --lr or "
            "another --seed (--force replaces the run), or with --restarts N for automatic "
            "restarts."
        )
    return (
        f"The checkpoint {error.checkpoint} is the last good one: continue it with "
        f"`--out{where} --resume --restarts N` (each restart halves the learning rate and "
        "changes the seed), or start a new run with a lower --lr."
    )


def _environment_error(error: BaseException) -> str:
    """One line for a failure of the machine rather than of the arguments."""
    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return "out of memory; try a smaller --batch-size or model, or another --device"
    assert isinstance(error, OSError)
    where = f"{error.filename}: " if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"{where}no space left on the device"
    if isinstance(error, PermissionError):
        return f"{where}permission denied"
    return f"{where}{error.strerror or error}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
