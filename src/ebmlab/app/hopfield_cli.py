"""The ``ebmlab hopfield`` command: ``store``, ``recall`` and ``capacity``.

    ebmlab hopfield store --data mnist --n-patterns 10 --select per-class --out mem.safetensors
    ebmlab hopfield store --images a.png b.png --shape 28 28 --out mem.safetensors
    ebmlab hopfield recall mem.safetensors --noise 0.2 --out recall.png
    ebmlab hopfield recall mem.safetensors --hide bottom --out half.png
    ebmlab hopfield capacity --n-units 500 --out docs

``cli.py`` calls ``add_hopfield_parser(subparsers)``; every subcommand sets ``func`` to a function
of the parsed ``argparse.Namespace`` that returns an exit status. User errors are ``ValueError``s
with a message naming the flag.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.hopfield import RECALL_MODES, RULES, Hopfield, flip_bits, to_binary, to_spins
from .recipes import expect_flag as _expect

EPILOG = """examples:
  ebmlab hopfield store --data digits --n-patterns 10 --out runs/hopfield/digits.safetensors
  ebmlab hopfield recall runs/hopfield/digits.safetensors --noise 0.2 --out recall.png
  ebmlab hopfield recall runs/hopfield/digits.safetensors --hide bottom --out half.png
  ebmlab hopfield capacity --n-units 500 --out docs   (about 3 min on 2 CPU cores)"""


def add_hopfield_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``hopfield`` with its subcommands to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "hopfield",
        help="Hopfield associative memory: store images, recall them, measure capacity",
        description="Hopfield associative memory: store images, recall them, measure capacity",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="hopfield_command", required=True, metavar="SUBCOMMAND")

    def subcommand(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = subcommand(
        "store",
        "store binary patterns (dataset images, image files or .npy)",
        "ebmlab hopfield store --data digits --n-patterns 10 --out runs/hopfield/digits"
        ".safetensors",
    )
    _add_pattern_source(p)
    p.add_argument("--rule", default="pseudoinverse", choices=RULES, help="storage rule")
    p.add_argument("--n-patterns", type=int, default=10, help="images taken from --data")
    p.add_argument(
        "--select",
        default="per-class",
        choices=("per-class", "farthest", "kmeans", "random"),
        help="how images are picked from --data (default per-class)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write (*.safetensors)")
    p.set_defaults(func=cmd_store)

    p = subcommand(
        "recall",
        "corrupt probes, run the network, write an image grid",
        "ebmlab hopfield recall runs/hopfield/digits.safetensors --noise 0.2 --out recall.png",
    )
    p.add_argument("checkpoint", help="checkpoint written by `ebmlab hopfield store`")
    _add_pattern_source(p, required=False)
    p.add_argument("--n", type=int, default=10, help="number of probes shown (default 10)")
    p.add_argument("--noise", type=float, default=0.2, help="fraction of pixels flipped")
    p.add_argument(
        "--hide",
        default="none",
        choices=("none", "bottom", "top", "left", "right"),
        help="hide half of each probe",
    )
    p.add_argument("--fill", default="off", choices=("off", "random"), help="hidden pixels")
    p.add_argument("--clamp", action="store_true", help="keep the visible half fixed")
    p.add_argument(
        "--mode",
        default="async",
        choices=RECALL_MODES,
        help="async: random order; sync: all at once; clock: each unit on its own random clock",
    )
    p.add_argument("--max-sweeps", type=int, default=100)
    p.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="> 0: stochastic retrieval (Gibbs at T, sign of the last --average samples)",
    )
    p.add_argument("--sweeps", type=int, default=50, help="Gibbs sweeps (with --temperature)")
    p.add_argument("--average", type=int, default=10, help="samples averaged (with --temperature)")
    p.add_argument("--alpha", type=float, default=1.0, help="annealing factor T <- alpha T")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--out", required=True, help="grid PNG to write")
    p.set_defaults(func=cmd_recall)

    p = subcommand(
        "capacity",
        "sweep the load P/N on random patterns for every rule",
        "ebmlab hopfield capacity --n-units 500 --out docs   (about 3 min on 2 CPU cores)",
    )
    p.add_argument("--n-units", type=int, default=500, help="N (default 500)")
    p.add_argument(
        "--rules",
        nargs="+",
        default=None,
        help="rules (default: hebbian storkey pseudoinverse learned modern)",
    )
    p.add_argument("--loads", nargs="+", type=float, default=None, help="loads P/N")
    p.add_argument(
        "--modern-loads",
        nargs="+",
        type=float,
        default=None,
        help="extra loads for the modern network (default 1 2 5 10 20 50)",
    )
    p.add_argument("--noise", type=float, default=0.1, help="fraction of bits flipped in probes")
    p.add_argument("--min-probes", type=int, default=200, help="probes per load (at least)")
    p.add_argument("--max-probes", type=int, default=500, help="probes per network (at most)")
    p.add_argument("--mode", default="async", choices=RECALL_MODES)
    p.add_argument(
        "--learned-noise",
        type=float,
        default=0.1,
        help="learned rule: bits flipped in the negatives' starts (0: the rule of Yi Wu, Deep "
        "Learning lecture 4, Energy-Based Models, IIIS 2025)",
    )
    p.add_argument("--modern-beta", type=float, default=None, help="default 1/sqrt(N)")
    p.add_argument(
        "--n-hidden",
        nargs="+",
        type=int,
        default=[0],
        help="hidden units K added to the N visible ones, one curve per K (default 0)",
    )
    p.add_argument(
        "--hidden-fill",
        default="random",
        choices=("random", "learned"),
        help="hidden parts of the stored patterns: random codes or learned by clamped inference",
    )
    p.add_argument("--quick", action="store_true", help="N=200, few loads (a smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".", help="folder for hopfield_capacity.{json,png}")
    p.set_defaults(func=cmd_capacity)
    return parser


def _add_pattern_source(p: argparse.ArgumentParser, required: bool = True) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--data", help="dataset name (digits, mnist, fashion-mnist, ...)")
    group.add_argument("--images", nargs="+", help="image files (PNG, JPEG, ...)")
    group.add_argument("--npy", help=".npy array (P, D) or (P, H, W): 0/1, +-1 or [0, 1]")
    p.add_argument("--split", default="train", help="dataset split for --data")
    p.add_argument("--data-dir", help="dataset folder (default $EBMLAB_DATA or ~/.cache/ebmlab)")
    p.add_argument("--shape", nargs=2, type=int, metavar=("H", "W"), help="image shape")
    p.add_argument("--threshold", type=float, default=0.5, help="pixels above it are on")
    p.add_argument("--invert", action="store_true", help="dark strokes on a light background")


# ----- reading patterns --------------------------------------------------------------------------
def _read_images(paths: list[str], shape: tuple[int, int] | None) -> tuple[torch.Tensor, tuple]:
    from PIL import Image

    arrays = []
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise FileNotFoundError(f"--images: {path} does not exist")
        image = Image.open(path).convert("L")
        if shape is not None:
            image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.float32) / 255.0)
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"--images: images have different sizes {sorted(sizes)}; pass --shape H W")
    hw = arrays[0].shape
    return torch.from_numpy(np.stack(arrays).reshape(len(arrays), -1)), (hw[0], hw[1])


def _read_npy(path: str, shape: tuple[int, int] | None) -> tuple[torch.Tensor, tuple | None]:
    if not Path(path).exists():
        raise FileNotFoundError(f"--npy: {path} does not exist")
    array = _load_npy_array(path)
    if array.ndim == 3:
        shape = shape or (array.shape[1], array.shape[2])
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2:
        raise ValueError(f"--npy: expected an array (P, D) or (P, H, W), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"--npy: {path} holds no patterns (shape {array.shape})")
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(
            f"--npy: {path} contains {int((~finite).sum())} NaN or infinite values; expected "
            "0/1, +-1 or values in [0, 1]"
        )
    return torch.as_tensor(array, dtype=torch.float32), shape


def _load_npy_array(path: str) -> np.ndarray:
    """The numeric array in the .npy file ``path`` (never unpickled); a ValueError naming --npy
    when the file is not one."""

    def unreadable(reason: str) -> ValueError:
        return ValueError(f"--npy: {path} is not a readable .npy array ({reason})")

    try:
        with open(path, "rb") as file:
            magic = file.read(6)
    except OSError as error:
        raise unreadable(error.strerror or str(error)) from error
    if magic != b"\x93NUMPY":
        raise unreadable("no .npy header; write it with numpy.save")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # any failure: a file that cannot be used
        message = str(error)
        if "pickle" in message.lower():
            message = "it holds Python objects, not numbers"
        raise unreadable(message or type(error).__name__) from error
    if not isinstance(array, np.ndarray):
        raise unreadable(f"got {type(array).__name__}, not an array")
    if array.dtype.kind not in "biuf":
        raise unreadable(f"dtype {array.dtype}; expected numbers")
    return array


def _to_states(x: torch.Tensor, threshold: float, invert: bool) -> torch.Tensor:
    """Images in [0, 1] (or already +-1) to +-1 states."""
    if not torch.isfinite(x).all():
        raise ValueError("patterns: found NaN or infinite values; expected 0/1, +-1 or [0, 1]")
    if ((x == 1) | (x == -1)).all() and (x == -1).any():
        spins = x.float()
        return -spins if invert else spins
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"patterns: expected values in [0, 1] (or +-1), found range [{x.min():.3g}, "
            f"{x.max():.3g}]; rescale the images first"
        )
    on = x > threshold
    return to_spins((~on if invert else on).float())


def _load_source(args: argparse.Namespace) -> tuple[torch.Tensor, tuple | None, Any]:
    """(+-1 states, image shape or None, labels or None) from --data / --images / --npy."""
    shape = tuple(args.shape) if args.shape else None
    labels = None
    if args.data:
        from .. import data

        x, labels = data.load(args.data, args.split, data_dir=args.data_dir)
        shape = shape or data.image_shape(args.data)
    elif args.images:
        x, shape = _read_images(args.images, shape)
    else:
        x, shape = _read_npy(args.npy, shape)
    if shape is not None and shape[0] * shape[1] != x.shape[1]:
        raise ValueError(f"--shape: {shape[0]} x {shape[1]} does not match {x.shape[1]} pixels")
    return _to_states(x, args.threshold, args.invert), shape, labels


def _grid_shape(n_units: int, shape: Any) -> tuple[int, int]:
    if shape:
        return int(shape[0]), int(shape[1])
    side = math.isqrt(n_units)
    return (side, side) if side * side == n_units else (1, n_units)


# ----- checking the options ----------------------------------------------------------------------
def _is_fraction(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def _check_store_args(args: argparse.Namespace) -> None:
    _expect(args.n_patterns >= 1, "--n-patterns", "an integer >= 1", args.n_patterns)
    _check_source_args(args)


def _check_source_args(args: argparse.Namespace) -> None:
    if args.shape is not None:
        _expect(min(args.shape) >= 1, "--shape", "H W >= 1", " ".join(map(str, args.shape)))
    _expect(math.isfinite(args.threshold), "--threshold", "a finite number", args.threshold)


def _check_recall_args(args: argparse.Namespace) -> None:
    _check_source_args(args)
    _expect(args.n >= 1, "--n", "an integer >= 1", args.n)
    _expect(_is_fraction(args.noise), "--noise", "a fraction in [0, 1]", args.noise)
    _expect(args.max_sweeps >= 1, "--max-sweeps", "an integer >= 1", args.max_sweeps)
    _expect(
        math.isfinite(args.temperature) and args.temperature >= 0,
        "--temperature",
        "a finite number >= 0 (0: deterministic recall)",
        args.temperature,
    )
    _expect(args.sweeps >= 1, "--sweeps", "an integer >= 1", args.sweeps)
    _expect(args.average >= 1, "--average", "an integer >= 1", args.average)
    if args.temperature > 0:
        _expect(
            args.average <= args.sweeps,
            "--average",
            f"at most --sweeps ({args.sweeps}) samples",
            args.average,
        )
    _expect(
        math.isfinite(args.alpha) and 0 < args.alpha <= 1,
        "--alpha",
        "an annealing factor in (0, 1] (1: constant temperature)",
        args.alpha,
    )


def _check_capacity_args(args: argparse.Namespace, all_rules: tuple[str, ...]) -> None:
    _expect(args.n_units >= 2, "--n-units", "an integer >= 2", args.n_units)
    unknown = [r for r in args.rules or () if r not in all_rules]
    _expect(not unknown, "--rules", f"names among {', '.join(all_rules)}", " ".join(unknown))
    for flag, loads in (("--loads", args.loads), ("--modern-loads", args.modern_loads)):
        if loads is not None:
            _expect(
                all(math.isfinite(v) and v > 0 for v in loads),
                flag,
                "positive loads P/N",
                " ".join(map(str, loads)),
            )
    _expect(_is_fraction(args.noise), "--noise", "a fraction in [0, 1]", args.noise)
    _expect(args.min_probes >= 1, "--min-probes", "an integer >= 1", args.min_probes)
    _expect(args.max_probes >= 1, "--max-probes", "an integer >= 1", args.max_probes)
    _expect(
        _is_fraction(args.learned_noise),
        "--learned-noise",
        "a fraction in [0, 1]",
        args.learned_noise,
    )
    if args.modern_beta is not None:
        _expect(
            math.isfinite(args.modern_beta) and args.modern_beta > 0,
            "--modern-beta",
            "a finite number > 0",
            args.modern_beta,
        )
    _expect(
        bool(args.n_hidden) and min(args.n_hidden) >= 0,
        "--n-hidden",
        "integers K >= 0",
        " ".join(map(str, args.n_hidden)),
    )


# ----- commands ----------------------------------------------------------------------------------
def cmd_store(args: argparse.Namespace) -> int:
    from .. import io
    from .hopfield_experiments import select_patterns

    _check_store_args(args)
    states, shape, labels = _load_source(args)
    if args.data:
        method = args.select if labels is not None or args.select != "per-class" else "farthest"
        pool = torch.randperm(states.shape[0], generator=torch.Generator().manual_seed(args.seed))
        pool = pool[:5000]  # search at most 5000 images for the patterns
        pool_labels = labels[pool] if labels is not None else None
        picked = select_patterns(
            (states[pool] > 0).float(), args.n_patterns, method, args.seed, pool_labels
        )
        states = states[pool[picked]]
    model = Hopfield(states.shape[1], rule=args.rule, seed=args.seed).store(states)
    meta = {
        "image_shape": list(shape) if shape else None,
        "rule": args.rule,
        "source": args.data or (args.images and "images") or args.npy,
        "n_patterns": int(states.shape[0]),
    }
    path = io.save(model, args.out, meta=meta)
    fixed = model.is_fixed_point(states).float().mean().item()
    print(
        f"stored {states.shape[0]} patterns of {states.shape[1]} units ({args.rule} rule, "
        f"load {states.shape[0] / states.shape[1]:.3g}); {fixed:.0%} are fixed points; "
        f"wrote {path}"
    )
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    from .. import io
    from .hopfield_experiments import completion_grid, hide_half

    _check_recall_args(args)
    ckpt = io.load_checkpoint(args.checkpoint)
    model = ckpt.model
    if not isinstance(model, Hopfield):
        raise ValueError(f"checkpoint: expected a Hopfield network, got {type(model).__name__}")
    saved_shape = ckpt.meta.get("meta", {}).get("image_shape")
    if args.data or args.images or args.npy:
        sources, shape, _ = _load_source(args)
        shape = shape or saved_shape
        sources = sources[: args.n]
    else:
        sources, shape = model.patterns[: args.n], saved_shape
    if sources.shape[1] != model.n_units:
        raise ValueError(
            f"probes: expected {model.n_units} pixels (the stored network's size), "
            f"got {sources.shape[1]}"
        )
    shape = _grid_shape(model.n_units, shape)
    generator = torch.Generator().manual_seed(args.seed)
    probes = flip_bits(sources, args.noise, generator) if args.noise > 0 else sources.clone()
    clamp = None
    label = f"{round(100 * args.noise)}% flipped"
    if args.hide != "none":
        probes, known = hide_half(probes, shape, args.hide, args.fill, generator)
        clamp = known if args.clamp else None
        label += f", {args.hide} half hidden"
    started = time.perf_counter()
    if args.temperature > 0:
        recalled = model.recall_stochastic(
            probes,
            args.temperature,
            args.sweeps,
            args.average,
            args.alpha,
            seed=generator,
            clamp=clamp,
        )
    else:
        recalled, _ = model.recall(
            probes, args.mode, args.max_sweeps, generator, clamp, return_info=True
        )
    seconds = time.perf_counter() - started
    nearest = (recalled @ model.patterns.T).argmax(1) if model.patterns.numel() else None
    metrics = {
        "n_probes": int(probes.shape[0]),
        "recalled_source_exactly": (recalled == sources).all(1).float().mean().item(),
        "overlap_with_source": (recalled * sources).mean().item(),
        "fixed_points": model.is_fixed_point(recalled).float().mean().item(),
        "seconds": round(seconds, 3),
    }
    if nearest is not None:
        metrics["recalled_a_stored_pattern"] = (
            (recalled == model.patterns[nearest]).all(1).float().mean().item()
        )
    rows = [
        ("source", to_binary(sources)),
        (label, to_binary(probes)),
        ("recalled", to_binary(recalled)),
    ]
    path = completion_grid(rows, shape, args.out, title=f"Hopfield recall ({model.rule} rule)")
    if args.json:
        print(json.dumps({**metrics, "out": str(path)}))
    else:
        print(
            f"recalled {metrics['recalled_source_exactly']:.0%} of {metrics['n_probes']} "
            f"probes exactly (overlap {metrics['overlap_with_source']:.3f}); wrote {path}"
        )
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    from .hopfield_experiments import (
        ALL_RULES,
        DEFAULT_LOADS,
        DEFAULT_MODERN_LOADS,
        capacity_sweep,
        series_name,
        write_capacity,
    )

    _check_capacity_args(args, ALL_RULES)
    n_units, loads, modern_loads = args.n_units, args.loads, args.modern_loads
    min_probes = args.min_probes
    if args.quick:
        n_units = 200 if args.n_units == 500 else args.n_units
        loads = loads or [0.05, 0.1, 0.2, 0.3]
        modern_loads = modern_loads or [2.0]
        min_probes = min(min_probes, 100)
    config = {
        "n_units": n_units,
        "rules": list(args.rules or ALL_RULES),
        "loads": list(loads or DEFAULT_LOADS),
        "modern_loads": list(modern_loads or DEFAULT_MODERN_LOADS),
        "noise": args.noise,
        "min_probes": min_probes,
        "max_probes": args.max_probes,
        "mode": args.mode,
        "learned_options": {"learned_noise": args.learned_noise},
        "modern_beta": args.modern_beta,
        "seed": args.seed,
        "n_hidden": list(args.n_hidden),
        "hidden_fill": args.hidden_fill,
    }

    def report(row: dict[str, Any]) -> None:
        print(
            f"{series_name(row):>20}  P/N={row['load']:<7.4g}"
            f" fixed={row['fixed_point_fraction']:.3f}"
            f"  recalled={row['recall_fraction']:.3f}  overlap={row['recall_overlap']:.3f}"
            f"  ({row['seconds']:.1f} s)",
            flush=True,
        )

    rows = capacity_sweep(progress=report, **config)
    command = " ".join(
        [
            "ebmlab hopfield capacity",
            *(
                f"--{k.replace('_', '-')} {v}"
                for k, v in config.items()
                if k in ("n_units", "noise", "mode", "seed")
            ),
        ]
    )
    extras = [f"--rules {' '.join(args.rules)}"] if args.rules else []
    extras += [f"--loads {' '.join(map(str, args.loads))}"] if args.loads else []
    extras += (
        [f"--modern-loads {' '.join(map(str, args.modern_loads))}"] if args.modern_loads else []
    )
    extras += [f"--learned-noise {args.learned_noise}", f"--out {args.out}"]
    if args.n_hidden != [0]:
        extras += [f"--n-hidden {' '.join(map(str, args.n_hidden))}"]
        extras += [f"--hidden-fill {args.hidden_fill}"]
    config["command"] = " ".join([command, *extras])
    json_path, png_path = write_capacity(rows, args.out, config)
    print(f"wrote {json_path} and {png_path}")
    return 0
