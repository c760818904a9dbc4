"""``ebmlab hash``: semantic hashing on MNIST (learned codes, PCA-sign, LSH, ITQ) and the
retrieval time of the address table against a linear scan."""

from __future__ import annotations

import argparse
import math
from typing import Any


def add_hash_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``hash`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "hash",
        help="semantic hashing: binary codes from an RBM-pretrained autoencoder vs PCA/LSH/ITQ",
        description="Train a semantic-hashing autoencoder on MNIST, compare it with PCA-sign, "
        "random-hyperplane LSH and ITQ codes (mAP, precision within Hamming radius 2, "
        "precision-recall curves) and time Hamming-ball lookups against a linear scan.",
        epilog="example:\n"
        "  EBMLAB_DATA=path/to/data ebmlab hash --data mnist --bits 32 --out runs/hash",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default="mnist", help="dataset (default mnist)")
    parser.add_argument("--data-dir", help="dataset folder (default $EBMLAB_DATA)")
    parser.add_argument("--bits", type=int, default=32, help="code length (1 to 64)")
    parser.add_argument(
        "--hidden",
        default="500,250",
        help="encoder hidden layers, comma-separated (none: no hidden layer)",
    )
    parser.add_argument("--pretrain-epochs", type=int, default=5, help="epochs of every RBM")
    parser.add_argument("--finetune-epochs", type=int, default=5, help="fine-tuning epochs")
    parser.add_argument("--code-noise", type=float, default=4.0, help="noise before the sigmoid")
    parser.add_argument(
        "--queries", type=int, default=1000, help="test images used as queries (at most all)"
    )
    parser.add_argument("--n-train", type=int, default=None, help="use the first n train images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="resume the stages in --out")
    parser.add_argument("--out", default="hash_run", help="output folder")
    parser.set_defaults(func=cmd_hash)
    return parser


def _check_args(args: argparse.Namespace) -> tuple[int, ...]:
    """The hidden layer sizes; a ValueError naming the flag for a bad option (before any data is
    read or anything trained)."""
    from .recipes import expect_flag as expect
    from .recipes import parse_sizes

    expect(1 <= args.bits <= 64, "--bits", "1..64", args.bits)
    hidden = tuple(parse_sizes(args.hidden, "--hidden", "500,250", empty=True))
    expect(args.pretrain_epochs >= 0, "--pretrain-epochs", "an integer >= 0", args.pretrain_epochs)
    expect(args.finetune_epochs >= 0, "--finetune-epochs", "an integer >= 0", args.finetune_epochs)
    expect(
        math.isfinite(args.code_noise) and args.code_noise >= 0,
        "--code-noise",
        "a finite number >= 0",
        args.code_noise,
    )
    expect(args.queries >= 1, "--queries", "an integer >= 1", args.queries)
    if args.n_train is not None:
        expect(args.n_train >= 1, "--n-train", "an integer >= 1", args.n_train)
    expect(args.seed >= 0, "--seed", "an integer >= 0", args.seed)
    return hidden


def cmd_hash(args: argparse.Namespace) -> int:
    from .. import data
    from .hashing_experiments import hashing_benchmark, retrieval_timing, write_hashing

    hidden = _check_args(args)
    x_train, y_train = data.load(args.data, "train", data_dir=args.data_dir)
    x_test, y_test = data.load(args.data, "test", data_dir=args.data_dir)
    if y_train is None or y_test is None:
        raise ValueError(f"--data: {args.data} has no class labels to judge relevance by")
    if args.n_train is not None:
        if args.n_train > x_train.shape[0]:
            raise ValueError(
                f"--n-train: expected at most {x_train.shape[0]} (the {args.data} train images), "
                f"got {args.n_train}"
            )
        x_train, y_train = x_train[: args.n_train], y_train[: args.n_train]
    if args.queries > x_test.shape[0]:
        raise ValueError(
            f"--queries: expected at most {x_test.shape[0]} (the {args.data} test images), "
            f"got {args.queries}"
        )
    bench = hashing_benchmark(
        x_train,
        y_train,
        x_test,
        y_test,
        n_bits=args.bits,
        hidden=hidden,
        n_queries=args.queries,
        pretrain_epochs=args.pretrain_epochs,
        finetune_epochs=args.finetune_epochs,
        code_noise=args.code_noise,
        seed=args.seed,
        out_dir=args.out,
        resume=args.resume,
    )
    for name, r in bench["results"].items():
        print(
            f"{name:>12}: mAP {r['map']:.4f}  precision@r2 {r['precision_r2']:.4f}  "
            f"addresses {r['distinct_addresses']}"
        )
    timing = retrieval_timing(bench.pop("_item_codes"), seed=args.seed)
    for row in timing:
        print(
            f"n={row['n_items']:>6}: table {1e6 * row['table_seconds_per_query']:.1f} us, "
            f"scan {1e6 * row['scan_seconds_per_query']:.1f} us per query "
            f"(same items: {row['same_items']})"
        )
    n_train = f" --n-train {args.n_train}" if args.n_train is not None else ""
    command = " ".join(
        (
            f"ebmlab hash --data {args.data}{n_train} --bits {args.bits} --hidden {args.hidden}",
            f"--pretrain-epochs {args.pretrain_epochs} --finetune-epochs {args.finetune_epochs}",
            f"--code-noise {args.code_noise} --queries {args.queries} --seed {args.seed}",
            f"--out {args.out}",
        )
    )
    json_path, png_path = write_hashing(
        {"command": command, "benchmark": bench, "timing": timing}, args.out
    )
    print(f"wrote {json_path} and {png_path}")
    return 0
