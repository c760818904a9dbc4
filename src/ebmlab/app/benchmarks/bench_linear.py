"""PCA, probabilistic PCA and factor analysis: ebmlab against scikit-learn, same data, same run.

Case: MNIST, 784 dimensions, 30 components, the 60,000 training images (quick: the first
10,000) and the 10,000 test images. The grey levels are dequantized once with a fixed seed,
y = (255 x + u) / 256 with u ~ U[0,1): no pixel is then constant, so neither library's floor
on the noise variances binds (ebmlab's ``min_noise`` is set to scikit-learn's 1e-12) and both
score the same continuous density problem.

Implementations, each called as its users call it (defaults unless stated):

* PCA: ``ebmlab.models.linear_gaussian.PCA`` vs ``sklearn.decomposition.PCA`` (its "auto"
  solver, covariance eigendecomposition for this shape); test reconstruction error.
* PPCA: ``ProbabilisticPCA`` (closed form) vs ``sklearn.decomposition.PCA`` + ``score``
  (scikit-learn's PCA is Tipping & Bishop's PPCA, with 1/(N-1) variances).
* FA: ``FactorAnalysis`` (EM on the covariance, tol 1e-6 nats per example) vs
  ``sklearn.decomposition.FactorAnalysis`` (SVD iteration, randomized SVD, tol 1e-2 on the
  total log-likelihood; it stops the first time the noisy randomized estimate does not rise).

Each record: fit seconds, iterations, train and test log-likelihood (nats per image) or test
reconstruction error, and on scikit-learn's records the ratios against ebmlab's
(``seconds_ratio`` = scikit-learn seconds / ebmlab seconds; ``test_log_likelihood_gain`` =
ebmlab - scikit-learn). Both use the same number of BLAS threads (torch's). Run
``python benchmarks/bench_linear.py [--quick]`` or ``ebmlab bench linear``; one JSON line per
result.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ebmlab.app.benchmarks.common import machine_info

K = 30


def _load(quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """8-bit dequantized MNIST (float32), or random data of its shape when the files are absent."""
    try:
        from ebmlab.data import load

        x_train = load("mnist", "train")[0].numpy()
        x_test = load("mnist", "test")[0].numpy()
        name = "mnist"
    except Exception:  # offline without the files: same shapes, a low-rank stand-in
        rng = np.random.default_rng(1)
        basis = rng.random((K, 784)).astype(np.float32)
        x_train = np.clip(rng.random((60000, K)).astype(np.float32) @ basis / K, 0, 1)
        x_test = np.clip(rng.random((10000, K)).astype(np.float32) @ basis / K, 0, 1)
        name = "random-low-rank"
    if quick:
        x_train = x_train[:10000]
    rng = np.random.default_rng(0)

    def dequantize(x: np.ndarray) -> np.ndarray:
        return ((np.round(x * 255) + rng.random(x.shape)) / 256).astype(np.float32)

    return dequantize(x_train), dequantize(x_test), name


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _ours(kind: str, x_train: np.ndarray, x_test: np.ndarray) -> dict[str, Any]:
    from ebmlab.models.linear_gaussian import PCA, FactorAnalysis, ProbabilisticPCA

    train, test = torch.from_numpy(x_train), torch.from_numpy(x_test)
    d = x_train.shape[1]
    if kind == "pca":
        model, seconds = _timed(lambda: PCA(d, K).fit(train))
        error = float(model.reconstruction_error(test).double().mean())
        return {"fit_seconds": seconds, "test_reconstruction_error": error}
    cls = ProbabilisticPCA if kind == "ppca" else FactorAnalysis
    model, seconds = _timed(lambda: cls(d, K, min_noise=1e-12).fit(train))
    with torch.no_grad():
        return {
            "fit_seconds": seconds,
            "n_iter": model.fit_result.n_iter,
            "train_log_likelihood": float(model.log_prob(train).double().mean()),
            "test_log_likelihood": float(model.log_prob(test).double().mean()),
        }


def _sklearn(kind: str, x_train: np.ndarray, x_test: np.ndarray) -> dict[str, Any]:
    from sklearn.decomposition import PCA, FactorAnalysis

    if kind == "pca":
        model, seconds = _timed(lambda: PCA(K).fit(x_train))
        recon = model.inverse_transform(model.transform(x_test))
        error = float(((x_test.astype(np.float64) - recon) ** 2).sum(1).mean())
        return {"fit_seconds": seconds, "test_reconstruction_error": error}
    if kind == "ppca":
        model, seconds = _timed(lambda: PCA(K).fit(x_train))
        n_iter = None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning is recorded as n_iter below
            model, seconds = _timed(lambda: FactorAnalysis(K, random_state=0).fit(x_train))
        n_iter = int(model.n_iter_)
    return {
        "fit_seconds": seconds,
        "n_iter": n_iter,
        "train_log_likelihood": float(model.score(x_train)),
        "test_log_likelihood": float(model.score(x_test)),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Fit every model with both libraries; return one record per (model, library)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    x_train, x_test, name = _load(quick)
    records = []
    with threadpool_limits(threads):
        for kind in ("pca", "ppca", "fa"):
            ours = _ours(kind, x_train, x_test)
            theirs = _sklearn(kind, x_train, x_test)
            theirs["seconds_ratio"] = round(theirs["fit_seconds"] / ours["fit_seconds"], 2)
            if "test_log_likelihood" in ours:
                gain = ours["test_log_likelihood"] - theirs["test_log_likelihood"]
                theirs["test_log_likelihood_gain"] = round(gain, 4)
            else:
                gap = ours["test_reconstruction_error"] - theirs["test_reconstruction_error"]
                theirs["test_reconstruction_error_difference"] = gap
            for implementation, result in (("ebmlab", ours), ("scikit-learn", theirs)):
                record = {
                    "benchmark": "linear",
                    "case": f"{name}-8bit-dequantized-{x_train.shape[1]}x{K}",
                    "model": kind,
                    "implementation": implementation,
                    "n_train": len(x_train),
                    "n_test": len(x_test),
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                    **machine_info(threads=threads),
                }
                if __name__ == "__main__":
                    print(json.dumps(record), flush=True)
                records.append(record)
    return records


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
