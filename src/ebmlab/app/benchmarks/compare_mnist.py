"""Every family on the same data, in nats: the cross-family table on binarized MNIST.

    python -m ebmlab.app.benchmarks.compare_mnist --out runs/compare            # all
    python -m ebmlab.app.benchmarks.compare_mnist --out runs/compare --only rbm vae
    python -m ebmlab.app.benchmarks.compare_mnist --data digits --quick        # smoke test

Each entry trains one family with the CLI (``ebmlab train MODEL --data mnist ... --eval``, in its
own process, one thread by default) into ``OUT/<name>``; finished runs (an ``eval.json``) are
skipped when the script is started again, so the table fills up over several starts. At the
end ``ebmlab compare`` writes ``OUT/table.md``: one row per run, best first, each number tagged
with how it was obtained (exact, AIS, a lower bound, IWAE, dequantized).

Every family sees the same data: MNIST binarized stochastically with the run's seed (each pixel
on with probability its grey level; the protocol of the published tables in
shared/REFERENCES.md), 60,000 training and 10,000 test images. Continuous models (PPCA, FA,
RealNVP) score x + U[0, 1)^D, a lower bound on the discrete log-likelihood.

The budgets below are what one 2-core machine affords in minutes per family, not the papers'
(which train for hours or days); ``--epochs-scale`` multiplies every budget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

#: name -> (model, extra CLI arguments). Epoch counts are the default budgets.
ENTRIES: dict[str, tuple[str, list[str]]] = {
    "independent": ("independent", []),
    "ppca": ("ppca", ["--binarize", "stochastic"]),
    "fa": ("fa", ["--binarize", "stochastic"]),
    "rbm": ("rbm", ["--hidden", "500", "--method", "pcd", "--epochs", "100"]),
    "dbn": ("dbn", ["--layers", "500,2000", "--layer-epochs", "20"]),
    "dbm": ("dbm", ["--layers", "500,1000", "--epochs", "20"]),
    "vae": ("vae", ["--epochs", "50"]),
    "pixelcnn": ("pixelcnn", ["--epochs", "3"]),
    "realnvp": ("realnvp", ["--epochs", "2"]),
    # PixelRNN beside PixelCNN at one epoch each (about the same CPU time), and the Bernoulli
    # diffusion, whose bound is on the binary images too
    "pixelrnn": (
        "pixelrnn",
        ["--layer", "row", "--hidden", "16", "--layers", "5", "--epochs", "1", "--lr", "2e-3"],
    ),
    "pixelcnn-1-epoch": ("pixelcnn", ["--epochs", "1", "--lr", "2e-3"]),
    "bernoulli-diffusion": ("bernoulli-diffusion", ["--epochs", "2", "--lr", "2e-3"]),
    # grey levels: the DDPM's bound is on 8-bit images (its own block of the table)
    "diffusion": ("diffusion", ["--epochs", "2", "--lr", "2e-3"]),
    # no likelihood: scored by reconstruction error and by the Frechet distance of samples
    "autoencoder": ("autoencoder", ["--pretrain-epochs", "10", "--epochs", "20"]),
    "gan": ("gan", ["--epochs", "20"]),
    # scored by the class of their samples and by translation error on a known answer
    "cgan": ("cgan", ["--epochs", "20"]),
    "cyclegan": ("cyclegan", []),
}


def _epochs(args: list[str], scale: float) -> list[str]:
    if scale == 1.0 or "--epochs" not in args:
        return args
    out = list(args)
    i = out.index("--epochs") + 1
    out[i] = str(max(1, round(int(out[i]) * scale)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--only", nargs="*", help="entries to run (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs-scale", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="2 epochs each (smoke test)")
    args = parser.parse_args()

    from ebmlab.app.recipes import all_recipes

    available = all_recipes()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for name, (model, extra) in ENTRIES.items():
        if args.only and name not in args.only:
            continue
        if model not in available:
            print(f"[compare] {name}: model {model!r} is not available, skipped", flush=True)
            continue
        run = out / name
        runs.append(run)
        if (run / "eval.json").exists():
            print(f"[compare] {name}: done already ({run}/eval.json)", flush=True)
            continue
        extra = _epochs(extra, args.epochs_scale)
        if args.quick:  # drop the budget and train 2 epochs
            if "--epochs" in extra:
                i = extra.index("--epochs")
                extra = extra[:i] + extra[i + 2 :]
            extra = [*extra, "--epochs", "2"]
        command = [
            sys.executable,
            "-m",
            "ebmlab.app.cli",
            "--threads",
            str(args.threads),
            "train",
            model,
            "--data",
            args.data,
            "--seed",
            str(args.seed),
            "--out",
            str(run),
            "--eval",
            "--no-progress",
            *extra,
        ]
        print(f"[compare] {name}: {' '.join(command[2:])}", flush=True)
        started = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        result = subprocess.run(command, env=env, check=False)
        status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
        print(f"[compare] {name}: {status} in {time.perf_counter() - started:.0f} s", flush=True)
    if not runs:
        return 0
    from ebmlab.app.cli import main as cli

    done = [r for r in runs if (r / "config.json").exists()]
    return cli(["compare", *map(str, done), "--out", str(out / "table.md")])


if __name__ == "__main__":
    sys.exit(main())
