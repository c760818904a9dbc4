"""Why does unsupervised pre-training help? The experiment of Erhan et al. (2010) on MNIST.

    python -m ebmlab.app.benchmarks.bench_pretraining --out runs/pretraining \\
        --figure docs/dbn_pretraining.png
    python -m ebmlab.app.benchmarks.bench_pretraining --quick --out runs/pretraining-quick

The same network (``ebmlab train dbn-classifier``: sigmoid layers and a softmax output) is
trained in two arms: pretrained (the RBMs of a DBN trained greedily with CD-1, then unrolled)
and from a random start (``--no-pretrain``: Glorot-normal weights, zero biases). Both arms get
the same fine-tuning budget (epochs, batch size, the same seeds, hence the same output layer at
the start and the same order of minibatches); the pretrained arm also spends its pretraining
budget, reported beside.

Protocol (as Erhan et al. 2010, who choose every hyper-parameter of each arm on validation
data): the fine-tuning learning rate of EACH arm is chosen from the same small grid
(``SETTINGS[data]["lr_grid"]``) by the validation error of seed 0 at the end of fine-tuning;
seeds 1..``--seeds``-1 are then trained with the chosen rate. One rate for both arms would not
be fair: the random start of a deep sigmoid network diverges at a rate the pretrained network
fine-tunes well with (its 2000 top units, all near 1/2, add up along a common direction, which
saturates them within the first epoch and leaves the chance error of predicting one class).
The test images choose nothing.

Each run goes through the CLI (``ebmlab train dbn-classifier ... --eval``) into
``OUT/<arm>-lr<lr>-seed<s>``; a finished run with the same arguments is kept when the script
is started again.

Written: ``OUT/pretraining.json`` (settings, machine, the grid's validation errors and the chosen
rates, per run the scores, seconds and per-epoch errors), ``OUT/pretraining.md`` (mean +- sd of
the test error per arm over seeds, the grid, and one row per run) and the figure (``--figure``,
default ``OUT/pretraining.png``): per fine-tuning epoch the training and test errors of both
arms, and the test error against the training error along training. The lecture's two
explanations can be read off it: optimization (the pretrained nets reach a low training error
sooner) and regularization (for the same training error, the pretrained nets have a lower test
error).

The MNIST budget (784-500-500-2000, 10 CD-1 epochs per RBM, 20 fine-tuning epochs, a grid of
three rates) is sized for a 2-core machine: at most 10 runs, in about 35 minutes on one thread.
``--quick`` runs the same protocol on the 8x8 digits in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ebmlab.app import viz  # selects matplotlib's Agg backend
from ebmlab.app.benchmarks.common import machine_info

#: Per dataset: the architecture and the budgets of the two arms.
SETTINGS: dict[str, dict[str, Any]] = {
    "mnist": {
        "layers": "500,500,2000",
        "pretrain_epochs": 10,
        "pretrain_lr": 0.05,
        "pretrain_batch_size": 100,
        "epochs": 20,
        "lr_grid": [0.1, 0.03, 0.01],
        "batch_size": 100,
    },
    "digits": {
        "layers": "64,64",
        "pretrain_epochs": 5,
        "pretrain_lr": 0.05,
        "pretrain_batch_size": 20,
        "epochs": 8,
        "lr_grid": [0.3, 0.1],
        "batch_size": 20,
    },
}
ARMS = ("pretrained", "random start")
ARM_FLAGS = {"pretrained": "--pretrain", "random start": "--no-pretrain"}
ARM_DIRS = {"pretrained": "pretrained", "random start": "random"}


def run_dir_name(arm: str, lr: float, seed: int) -> str:
    """The folder of one run inside the experiment's folder."""
    return f"{ARM_DIRS[arm]}-lr{lr:g}-seed{seed}"


def run_arguments(
    data: str,
    arm: str,
    seed: int,
    out: Path,
    settings: dict[str, Any],
    max_minutes: float | None,
    lr: float,
) -> list[str]:
    """The ``ebmlab`` arguments of one run: the same fine-tuning budget in both arms, with the
    fine-tuning learning rate ``lr``."""
    args = [
        "train",
        "dbn-classifier",
        "--data",
        data,
        "--layers",
        str(settings["layers"]),
        ARM_FLAGS[arm],
        "--pretrain-epochs",
        str(settings["pretrain_epochs"]),
        "--pretrain-lr",
        str(settings["pretrain_lr"]),
        "--pretrain-batch-size",
        str(settings["pretrain_batch_size"]),
        "--epochs",
        str(settings["epochs"]),
        "--lr",
        str(lr),
        "--batch-size",
        str(settings["batch_size"]),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--force",
        "--eval",
        "--no-progress",
    ]
    if max_minutes is not None:
        args += ["--max-minutes", str(max_minutes)]
    return args


def _run_one(args: list[str], run_dir: Path, log: Any) -> float:
    """Run ``ebmlab`` with ``args`` in this process (its output to ``log``); seconds taken.
    A finished run (eval.json) made with the same arguments is kept."""
    from ebmlab.app import cli

    record = run_dir.parent / f"{run_dir.name}.args.json"
    if (run_dir / "eval.json").exists() and record.exists():
        if json.loads(record.read_text()) == args:
            print(f"[pretraining] {run_dir.name}: done already", file=log, flush=True)
            return float("nan")
    print(f"[pretraining] ebmlab {' '.join(args)}", file=log, flush=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(args)
    if status != 0:
        raise RuntimeError(f"ebmlab {' '.join(args)} failed with exit status {status}")
    record.write_text(json.dumps(args))
    seconds = time.perf_counter() - started
    print(f"[pretraining] {run_dir.name}: {seconds:.0f} s", file=log, flush=True)
    return seconds


def _mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: its fine-tuning learning rate (one per arm), the mean and sd over seeds of the
    test, training and validation errors, and the mean seconds of pretraining and fine-tuning."""
    out: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        rows = [r for r in runs if r["arm"] == arm]
        if not rows:
            continue
        summary: dict[str, Any] = {"n_seeds": len(rows), "lr": rows[0]["lr"]}
        for key in ("test_error", "train_error", "validation_error"):
            summary[key], summary[f"{key}_sd"] = _mean_sd([r[key] for r in rows])
        for key in ("pretrain_seconds", "finetune_seconds", "run_seconds"):
            summary[key] = _mean_sd([r[key] for r in rows])[0]
        out[arm] = summary
    return out


def _pct(value: float, sd: float | None = None) -> str:
    return f"{100 * value:.2f}" + ("" if sd is None else f" ± {100 * sd:.2f}")


def markdown(result: dict[str, Any]) -> str:
    """The tables of the experiment: one row per arm (mean ± sd over seeds, at the learning rate
    chosen on the validation images), the validation errors of the grid, then one row per run."""
    s = result["settings"]
    grid = s["lr_grid"]
    lines = [
        f"{result['data']}: {s['layers']} sigmoid layers and a softmax output; fine-tuning "
        f"{s['epochs']} epochs (SGD, momentum 0.9, linear decay to 0, batch {s['batch_size']}) "
        f"in both arms, the learning rate of each arm chosen from {{{', '.join(map(str, grid))}}} "
        f"by the validation error of seed 0; pretraining {s['pretrain_epochs']} CD-1 epochs per "
        f"RBM (lr {s['pretrain_lr']}, batch {s['pretrain_batch_size']}). "
        f"{result['n_seeds']} seeds per arm; errors in %, mean ± sd over seeds.",
        "",
        "| arm | fine-tuning lr | test error | training error | validation error | "
        "pretraining (s) | fine-tuning (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, m in result["summary"].items():
        lines.append(
            f"| {arm} | {m['lr']:g} | {_pct(m['test_error'], m['test_error_sd'])} | "
            f"{_pct(m['train_error'], m['train_error_sd'])} | "
            f"{_pct(m['validation_error'], m['validation_error_sd'])} | "
            f"{m['pretrain_seconds']:.0f} | {m['finetune_seconds']:.0f} |"
        )
    lines += [
        "",
        "Validation error (%) of seed 0 after fine-tuning, per learning rate (chosen in bold):",
        "",
        "| arm | " + " | ".join(f"lr {lr:g}" for lr in grid) + " |",
        "|---|" + "---|" * len(grid),
    ]
    for arm, sel in result["selection"].items():
        cells = []
        for lr in grid:
            cell = _pct(sel["validation_error"][str(lr)])
            cells.append(f"**{cell}**" if lr == sel["chosen_lr"] else cell)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "| run | lr | test error | training error | validation error | seconds |"]
    lines.append("|---|---|---|---|---|---|")
    for r in result["runs"]:
        lines.append(
            f"| {r['arm']}, seed {r['seed']} | {r['lr']:g} | {_pct(r['test_error'])} | "
            f"{_pct(r['train_error'])} | {_pct(r['validation_error'])} | {r['run_seconds']:.0f} |"
        )
    machine = result["machine"]
    lines += [
        "",
        f"Machine: {machine['machine']}, {machine['threads']} thread(s), load average "
        f"{machine['load_average']} at the start; the {result['n_runs']} runs (grid included) "
        f"trained for {result['run_seconds'] / 60:.1f} minutes in all (evaluation and figures "
        "besides).",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    """Two panels: training (dashed) and test (solid) error per fine-tuning epoch for both arms
    (every seed); the test error against the training error along training."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"pretrained": "tab:blue", "random start": "tab:orange"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for arm in ARMS:
        rows = [r for r in result["runs"] if r["arm"] == arm]
        name = f"{arm} (lr {rows[0]['lr']:g})" if rows else arm
        for i, r in enumerate(rows):
            curves = r["curves"]
            epochs = [c["epoch"] for c in curves]
            train = [100 * c["training_error"] for c in curves]
            test = [100 * c["test_error"] for c in curves]
            first = i == 0
            left.plot(
                epochs, train, ls="--", color=colors[arm], alpha=0.8,
                label=f"{name}: training error" if first else None,
            )  # fmt: skip
            left.plot(
                epochs, test, ls="-", color=colors[arm], alpha=0.8,
                label=f"{name}: test error" if first else None,
            )  # fmt: skip
            right.plot(
                train, test, marker=".", color=colors[arm], alpha=0.8,
                label=name if first else None,
            )  # fmt: skip
    left.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    left.set_xlabel("fine-tuning epoch")
    left.set_ylabel("error (%)")
    left.set_yscale("log")
    left.grid(alpha=0.3, which="both")
    left.legend(frameon=False, fontsize=8)
    viz.fit_title(left, "training and test error per epoch (one line per seed)")
    right.set_xlabel("training error (%)")
    right.set_ylabel("test error (%)")
    right.set_xscale("log")
    right.set_yscale("log")
    # 20, 30, 50 rather than 2 x 10^1, ...; minor ticks labelled at 2, 3 and 5 only
    major = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    minor = matplotlib.ticker.FuncFormatter(
        lambda value, _: f"{value:g}" if f"{value:g}".lstrip("0.")[:1] in ("2", "3", "5") else ""
    )
    for axis in (left.yaxis, right.xaxis, right.yaxis):
        axis.set_major_formatter(major)
        axis.set_minor_formatter(minor)
    right.grid(alpha=0.3, which="both")
    right.legend(frameon=False, fontsize=8)
    viz.fit_title(right, "test error against training error along training")
    s = result["settings"]
    viz.fit_suptitle(
        fig,
        f"{result['data']}, {s['layers']} + softmax: pretrained ({s['pretrain_epochs']} CD-1 "
        f"epochs per RBM) against a random start, {s['epochs']} fine-tuning epochs each, "
        "each arm's learning rate chosen on the validation images",
    )
    return viz.save_figure(fig, path)


#: What ``eval.json`` gives each run's record.
RUN_METRICS = (
    "test_error",
    "test_error_se",
    "train_error",
    "validation_error",
    "test_cross_entropy",
    "train_cross_entropy",
    "pretrain_epochs_per_rbm",
    "pretrain_seconds",
    "finetune_seconds",
)


def choose_lr(validation_errors: dict[float, float]) -> float:
    """The learning rate of the lowest validation error (the first of the grid on a tie)."""
    if not validation_errors:
        raise ValueError("validation_errors: expected at least one learning rate")
    return min(validation_errors, key=lambda lr: validation_errors[lr])


def experiment(
    out: str | Path,
    data: str = "mnist",
    seeds: int = 3,
    quick: bool = False,
    figure: str | Path | None = None,
    max_minutes: float | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Run both arms, write the JSON, the table and the figure; returns the JSON's content.

    Per arm, the fine-tuning learning rate is chosen on the validation images (Erhan et al.
    2010): seed 0 is trained with every rate of the grid (``SETTINGS[data]["lr_grid"]``, the
    same grid, epochs and batch size for both arms), the rate of the lowest validation error at
    the end of fine-tuning is kept, and seeds 1..``seeds``-1 are trained with it. The test
    images choose nothing. ``quick``: the 8x8 digits, seconds."""
    from ebmlab.app.families.dbn_classifier import read_curves

    log = log or sys.stderr
    data = "digits" if quick else data
    if data not in SETTINGS:
        raise ValueError(f"--data: expected one of {', '.join(SETTINGS)}, got {data!r}")
    if seeds < 1:
        raise ValueError(f"--seeds: expected a positive number of seeds, got {seeds}")
    settings = SETTINGS[data]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    started = time.perf_counter()

    def train(arm: str, seed: int, lr: float) -> dict[str, Any]:
        run_dir = out / run_dir_name(arm, lr, seed)
        args = run_arguments(data, arm, seed, run_dir, settings, max_minutes, lr)
        wall = _run_one(args, run_dir, log)
        metrics = json.loads((run_dir / "eval.json").read_text())
        return {
            "arm": arm,
            "seed": seed,
            "lr": lr,
            "run": run_dir.name,
            "command": "ebmlab " + " ".join(args),
            **{k: metrics[k] for k in RUN_METRICS},
            "run_seconds": metrics["train_seconds"],
            "wall_seconds": round(wall, 1) if math.isfinite(wall) else None,
            "curves": read_curves(run_dir),
        }

    grid = {arm: [train(arm, 0, lr) for lr in settings["lr_grid"]] for arm in ARMS}
    chosen = {arm: choose_lr({r["lr"]: r["validation_error"] for r in grid[arm]}) for arm in ARMS}
    runs = []
    for arm in ARMS:
        runs.append(next(r for r in grid[arm] if r["lr"] == chosen[arm]))
        runs += [train(arm, seed, chosen[arm]) for seed in range(1, seeds)]
    trained = [*grid["pretrained"], *grid["random start"], *(r for r in runs if r["seed"] > 0)]
    result = {
        "experiment": "unsupervised pretraining against a random start (Erhan et al. 2010)",
        "data": data,
        "settings": settings,
        "n_seeds": seeds,
        "protocol": "per arm, the fine-tuning learning rate of the lowest validation error of "
        "seed 0 at the end of fine-tuning, from lr_grid; seeds 1.. trained with it",
        "selection": {
            arm: {
                "chosen_lr": chosen[arm],
                "validation_error": {str(r["lr"]): r["validation_error"] for r in grid[arm]},
                "runs": [r["run"] for r in grid[arm]],
            }
            for arm in ARMS
        },
        "machine": machine,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
        "n_runs": len(trained),
        "run_seconds": round(sum(r["run_seconds"] for r in trained), 1),
        "summary": summarize(runs),
        "runs": runs,
        "all_runs": [{k: v for k, v in r.items() if k != "curves"} for r in trained],
    }
    (out / "pretraining.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "pretraining.md").write_text(markdown(result))
    plot(result, Path(figure) if figure is not None else out / "pretraining.png")
    return result


def run(quick: bool = False) -> list[dict[str, Any]]:
    """``ebmlab bench pretraining``: the experiment (``--quick``: on digits) in
    runs/pretraining[-quick]; one record per arm."""
    out = Path("runs") / ("pretraining-quick" if quick else "pretraining")
    result = experiment(out, quick=quick)
    return [
        {
            "benchmark": "pretraining",
            "data": result["data"],
            "arm": arm,
            **{k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items()},
            **result["machine"],
        }
        for arm, summary in result["summary"].items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretraining", help="folder of the runs and results")
    parser.add_argument("--data", default="mnist", choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    parser.add_argument("--figure", help="path of the figure (default OUT/pretraining.png)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--max-minutes", type=float, help="time budget of every training stage (default: none)"
    )
    parser.add_argument("--quick", action="store_true", help="the 8x8 digits, in seconds")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = experiment(
        args.out, args.data, args.seeds, args.quick, args.figure, args.max_minutes, sys.stderr
    )
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
