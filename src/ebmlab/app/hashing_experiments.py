"""Semantic hashing on MNIST: learned codes against PCA-sign, LSH and ITQ, and retrieval time.

``hashing_benchmark`` trains a ``HashingAutoencoder`` (RBM pretraining, then fine-tuning with
noise before the code sigmoid, through ``autoencoder_stages`` and the one training loop; stages
are checkpointed in ``out_dir`` and a run resumes), fits the three linear baselines on the same
training images, and scores every code set with the test images as queries, the training images
as the database and "same class" as relevance: mAP of the Hamming ranking, precision within
Hamming radius 2 and the precision-recall curve over radii. ``retrieval_timing`` times one
Hamming-ball lookup through the ``AddressTable`` against a linear scan of all codes as the
number of items grows. ``write_hashing`` writes the JSON and the figure.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.hashing import (
    AddressTable,
    HashingAutoencoder,
    code_saturation,
    evaluate_codes,
    itq,
    linear_scan,
    pack_codes,
    pca_sign,
    random_hyperplanes,
    relevance_from_labels,
)
from ..objectives.autoencoder import ReconstructionObjective
from ..training.config import TrainConfig
from ..training.greedy import autoencoder_stages
from ..training.stages import run_stages


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def train_hashing_autoencoder(
    x_train: torch.Tensor,
    hidden: list[int],
    n_bits: int,
    out_dir: str | os.PathLike[str] | None,
    pretrain_epochs: int = 5,
    finetune_epochs: int = 5,
    code_noise: float = 4.0,
    lr: float = 1e-3,
    seed: int = 0,
    resume: bool = False,
) -> HashingAutoencoder:
    """RBM-pretrain and fine-tune a ``HashingAutoencoder`` [D, *hidden, n_bits]."""
    model = HashingAutoencoder([x_train.shape[1], *hidden, n_bits], code_noise, seed=seed)
    config = TrainConfig(
        epochs=finetune_epochs, batch_size=100, lr=lr, seed=seed, progress=False, device="cpu"
    )
    stages = autoencoder_stages(
        model,
        ReconstructionObjective("cross_entropy"),
        x_train,
        config,
        pretrain_epochs=pretrain_epochs,
        seed=seed,
    )
    run_stages(model, stages, out_dir, resume=resume)
    model.eval()
    return model


def hashing_benchmark(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_bits: int = 32,
    hidden: tuple[int, ...] = (500, 250),
    n_queries: int = 1000,
    pretrain_epochs: int = 5,
    finetune_epochs: int = 5,
    code_noise: float = 4.0,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Scores of the learned codes and the baselines in one run (module docstring)."""
    started = time.perf_counter()
    model = train_hashing_autoencoder(
        x_train,
        list(hidden),
        n_bits,
        None if out_dir is None else Path(out_dir) / "autoencoder",
        pretrain_epochs,
        finetune_epochs,
        code_noise,
        seed=seed,
        resume=resume,
    )
    train_seconds = time.perf_counter() - started
    scored = score_codes(model, x_train, y_train, x_test, y_test, n_queries, seed)
    return {
        "n_bits": n_bits,
        "layers": [x_train.shape[1], *hidden, n_bits],
        "n_items": int(x_train.shape[0]),
        "n_queries": int(scored.pop("n_queries")),
        "train_seconds": round(train_seconds, 1),
        **scored,
    }


@torch.no_grad()
def score_codes(
    model: HashingAutoencoder,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_queries: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The learned codes and the three linear baselines of as many bits (PCA-sign, LSH, ITQ,
    fitted on ``x_train``), scored with ``n_queries`` random test images as queries, the
    training images as the database and "same label" as relevance (``evaluate_codes``), with
    the number of distinct addresses each code set occupies; ``_item_codes`` holds the learned
    codes of the database (for ``retrieval_timing``; not JSON)."""
    model.eval()  # no code noise: the codes of a trained hasher
    n_bits = model.code_size
    g = torch.Generator().manual_seed(seed)
    queries = torch.randperm(x_test.shape[0], generator=g)[:n_queries]
    xq, yq = x_test[queries], y_test[queries]
    relevant = relevance_from_labels(yq, y_train)
    probabilities = model.encode(xq)
    codes = {"autoencoder": (model.binary_codes(xq), model.binary_codes(x_train))}
    hashers = [
        pca_sign(x_train, n_bits),
        random_hyperplanes(x_train, n_bits, seed),
        itq(x_train, n_bits, seed=seed)[0],
    ]
    for hasher in hashers:
        codes[hasher.name] = (hasher.codes(xq), hasher.codes(x_train))
    results: dict[str, Any] = {}
    for name, (q, items) in codes.items():
        scores = evaluate_codes(q, items, relevant)
        occupied = len(AddressTable(items).table)
        results[name] = {**scores, "distinct_addresses": occupied}
    return {
        "n_queries": int(queries.numel()),
        # the precision of retrieving every item (and the mAP of a random ranking, on average)
        "chance_precision": relevant.double().mean().item(),
        "code_saturation": code_saturation(probabilities),
        "results": results,
        "_item_codes": codes["autoencoder"][1],
    }


def retrieval_timing(
    codes: torch.Tensor,
    sizes: tuple[int, ...] = (1_000, 3_000, 10_000, 30_000, 60_000),
    n_queries: int = 200,
    radius: int = 2,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Seconds per query of the Hamming-ball lookup (address table) and of a linear scan of the
    first n codes (one XOR and popcount per packed code), for each n in ``sizes``; queries are
    codes of random items, so balls are non-empty. Each row also checks that both return the
    same items."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for n in sorted({min(n, codes.shape[0]) for n in sizes}):
        items = codes[:n]
        keys = pack_codes(items)
        table = AddressTable(items)
        q = items[torch.randint(n, (n_queries,), generator=g)]
        t0 = time.perf_counter()
        balls = [table.ball(row, radius) for row in q]
        t_table = (time.perf_counter() - t0) / n_queries
        t0 = time.perf_counter()
        scans = [linear_scan(row, keys, radius) for row in q]
        t_scan = (time.perf_counter() - t0) / n_queries
        same = all(np.array_equal(a, b) for a, b in zip(balls, scans))
        rows.append(
            {
                "n_items": n,
                "table_seconds_per_query": t_table,
                "scan_seconds_per_query": t_scan,
                "speedup": t_scan / t_table if t_table > 0 else None,
                "same_items": same,
                "mean_ball_size": float(np.mean([len(b) for b in balls])),
            }
        )
    return rows


def plot_hashing(
    document: dict[str, Any], path: str | os.PathLike[str], dataset: str = "MNIST"
) -> Path:
    """Precision-recall curves over Hamming radii for every code set, and retrieval time against
    the number of items (when ``document`` has a timing)."""
    import matplotlib.pyplot as plt

    from .viz import save_figure

    rows = document.get("timing", [])
    fig, axes = plt.subplots(1, 2 if rows else 1, figsize=(11, 4.2) if rows else (6, 4.2))
    axes = axes if rows else [axes]
    for name, r in document["benchmark"]["results"].items():
        curve = r["pr_curve"]
        axes[0].plot(
            curve["recall"], curve["precision"], marker=".", label=f"{name} (mAP {r['map']:.3f})"
        )
    axes[0].set_xlabel("recall")
    axes[0].set_ylabel("precision")
    axes[0].set_title(
        f"{dataset}, {document['benchmark']['n_bits']}-bit codes, Hamming ball radius 0..B"
    )
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    if rows:
        n = [r["n_items"] for r in rows]
        axes[1].loglog(n, [r["table_seconds_per_query"] for r in rows], "o-", label="address table")
        axes[1].loglog(n, [r["scan_seconds_per_query"] for r in rows], "s-", label="linear scan")
        axes[1].set_xlabel("items")
        axes[1].set_ylabel("seconds per query (radius 2)")
        axes[1].legend()
        axes[1].grid(alpha=0.3)
    return save_figure(fig, path)


def write_hashing(document: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "semantic_hashing.json"
    json_path.write_text(json.dumps({**document, "machine": machine()}, indent=2) + "\n")
    return json_path, plot_hashing(document, out / "semantic_hashing.png")
