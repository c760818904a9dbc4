"""Every neural-EBM training method x every 2-D toy density: KL(p_data || p_model) and test
log-likelihood (nats), with exp(-E) normalized on a 360 x 360 grid on [-4.5, 4.5]^2.

    python -m ebmlab.app.benchmarks.ebm_toy_table --out runs/ebm_sweep

Each run trains the ``ebm`` recipe with its defaults (the CLI's: 20,000 training and 5,000 test
points, seed 0) through ``ebmlab.training.train`` and appends one JSON line to
``OUT/results.jsonl``; finished runs are skipped when the script is started again. At the end it
writes ``OUT/table.md`` (the README table) and ``OUT/landscapes.png`` (energy landscapes, one
row per density, one column per method). ``--methods`` / ``--densities`` pick a subset,
``--epochs`` shortens every run, ``--set key=value`` overrides a recipe option, ``--train
key=value`` a training-loop setting, ``--jobs N`` runs N trainings at once (one thread each).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

METHODS = ("cd", "sm", "ssm", "dsm", "ncsn", "nsm", "nce", "fce")
DENSITIES = (
    "8gaussians",
    "rings",
    "circles",
    "moons",
    "checkerboard",
    "pinwheel",
    "swissroll",
    "2spirals",
)
TOY_TRAIN, TOY_TEST = 20_000, 5_000


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def run_one(
    method: str,
    density: str,
    out: Path,
    epochs: int | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and score one (method, density); returns the result record."""
    from ebmlab import data
    from ebmlab.app.families import ebm  # registers the recipe
    from ebmlab.app.recipes import RECIPES, Context
    from ebmlab.training import TrainConfig, TrainingDiverged, train

    recipe = RECIPES["ebm"]
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(overrides or {})
    options["objective"] = method
    run_dir = out / f"{method}-{density}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        options=options,
        data_name=density,
        image_shape=None,
        generator=torch.Generator().manual_seed(seed + 17),
        out_dir=run_dir,
        device=torch.device("cpu"),
    )
    x_train = data.toy2d(density, TOY_TRAIN, seed)
    x_test = data.toy2d(density, TOY_TEST, seed + 1)
    settings = {**recipe.train_defaults, "seed": seed, "device": "cpu", "progress": False}
    settings.update(train_overrides or {})
    if epochs is not None:
        settings["epochs"] = epochs
    config = TrainConfig(**settings)
    torch.manual_seed(seed)
    model, objective = recipe.build(x_train, ctx)
    record: dict[str, Any] = {
        "method": method,
        "density": density,
        "epochs": config.epochs,
        "steps": config.epochs * -(-TOY_TRAIN // config.batch_size),
    }
    start = time.perf_counter()
    try:
        train(model, objective, x_train, config, run_dir, meta={"dataset": density})
    except TrainingDiverged as error:
        record.update({"diverged_at_step": error.step, "quantity": error.quantity})
        return record
    record["train_seconds"] = round(time.perf_counter() - start, 1)
    metrics = recipe.evaluate(model, x_train, x_test, ctx)
    record.update(
        {
            k: metrics[k]
            for k in ("kl", "test_log_likelihood", "test_log_likelihood_se", "log_z_grid")
            if k in metrics
        }
    )
    if "log_z_learned" in metrics:
        record["log_z_learned"] = metrics["log_z_learned"]
    figure = ebm.landscape_figure(
        model,
        density,
        run_dir / "landscape.png",
        f"{method} on {density}",
        ctx.generator,
        n_samples=1000,
    )
    record["figure"] = str(figure)
    save_file({"grid": _grid_density(model).detach().contiguous()}, run_dir / "grid.safetensors")
    return record


@torch.no_grad()
def _grid_density(model: Any, n: int = 180) -> torch.Tensor:
    from ebmlab import data

    grid = data.toy2d_grid(None, n=n)
    return (-model.energy(grid.points)).reshape(n, n)


def _reference_density(name: str, n: int = 180) -> torch.Tensor:
    from ebmlab import data

    grid = data.toy2d_grid(name, n=n)
    assert grid.log_density is not None
    return grid.log_density.reshape(n, n)


def write_table(records: list[dict[str, Any]], path: Path) -> str:
    """Markdown: one row per density, 'KL / test LL' per method (best KL per row in bold)."""
    by_key = {(r["method"], r["density"]): r for r in records}
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    densities = [d for d in DENSITIES if any(r["density"] == d for r in records)]
    lines = ["| density | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for d in densities:
        kls = [by_key[(m, d)].get("kl") for m in methods if (m, d) in by_key]
        best = min((k for k in kls if k is not None), default=None)
        cells = []
        for m in methods:
            r = by_key.get((m, d))
            if r is None:
                cells.append("")
            elif "kl" not in r:
                cells.append(f"diverged (step {r.get('diverged_at_step')})")
            else:
                kl = f"{r['kl']:.3f}"
                if r["kl"] == best:
                    kl = f"**{kl}**"
                cells.append(f"{kl} / {r['test_log_likelihood']:.3f}")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_montage(records: list[dict[str, Any]], out: Path) -> Path:
    """Grid-normalized densities: one row per density (data first), one column per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    densities = [d for d in DENSITIES if any(r["density"] == d for r in records)]
    fig, axes = plt.subplots(
        len(densities),
        len(methods) + 1,
        figsize=(1.6 * (len(methods) + 1), 1.6 * len(densities)),
        squeeze=False,
    )
    for i, d in enumerate(densities):
        panels = [("data", _reference_density(d))]
        for m in methods:
            path = out / f"{m}-{d}" / "grid.safetensors"
            panels.append((m, load_file(path)["grid"] if path.exists() else None))
        for j, (title, values) in enumerate(panels):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if values is not None:
                ax.imshow(
                    torch.exp(values - values.max()).numpy(),
                    origin="lower",
                    extent=(-4.5, 4.5, -4.5, 4.5),
                    cmap="viridis",
                )
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(d, fontsize=8)
    fig.tight_layout()
    path = out / "landscapes.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _run_job(job: tuple[Any, ...]) -> dict[str, Any]:
    *arguments, threads = job
    torch.set_num_threads(threads)
    return run_one(*arguments)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ebm_sweep")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--densities", default=",".join(DENSITIES))
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe option (repeatable)",
    )
    parser.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a TrainConfig field, e.g. lr=0.003 (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--force", action="store_true", help="rerun finished runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: _parse_value(v) for k, v in overrides.items()}
    train_overrides = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in args.train)}
    results = out / "results.jsonl"
    done = {}
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done[(r["method"], r["density"])] = r
    todo = [
        (method, density)
        for density in args.densities.split(",")
        for method in args.methods.split(",")
        if args.force or (method, density) not in done
    ]
    jobs = [
        (m, d, out, args.epochs, overrides, args.seed, train_overrides, args.threads)
        for m, d in todo
    ]
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        for record in pool.map(_run_job, jobs):
            done[(record["method"], record["density"])] = record
            with results.open("a") as handle:  # only this process writes
                handle.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    records = list(done.values())
    print(write_table(records, out / "table.md"))
    print(f"wrote {write_montage(records, out)}")


if __name__ == "__main__":
    main()
