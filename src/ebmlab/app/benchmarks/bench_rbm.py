"""RBM training throughput: CD-1 and PCD-1, ebmlab against its peers, beside the matmul peak.

Cases: 784 visible x 500 hidden, batch 100, one MNIST epoch (60,000 examples; quick:
6,000), and digits (64 x 100, batch 64, 1,797 examples). Implementations, same sizes, batch and
learning rate (0.01 on the mean gradient), in the same run:

* ebmlab: ``ContrastiveDivergence.sgd_update``, the fused SGD step (hand-written statistics,
  the outer-product matmul accumulated straight into the weights) that ``ebmlab.sklearn`` and
  ``ebmlab.training.train`` run, with the loss value (``ebmlab``) and without it
  (``ebmlab-no-loss-value``, what the estimator computes); ``ebmlab-backward``: the same
  statistics handed to autograd (``loss.backward()``) and a fused ``torch.optim.SGD`` step, what
  a custom loop over ``objective.loss`` gets; ``ebmlab-autograd``: ``gradient="autograd"`` (the
  surrogate-loss path), to show what the hand-written path saves; the training loop
  (``ebmlab-train-loop``: one ``train`` call per epoch, its setup included) and the estimator
  (``ebmlab.sklearn``) as users call them; the bare update and the one-epoch loop also with
  their products in bfloat16 (dtype ``bfloat16``: ``matmul_dtype=torch.bfloat16``,
  ``TrainConfig(precision="bfloat16")``; their references are bfloat16 matmuls);
  ``ebmlab-train-loop-in-run``: the epochs after the
  first of one multi-epoch ``train`` run, with the run's one-time ``setup_seconds`` and the
  loop's own cost per step beyond the bare update (``loop_microseconds_per_step``);
* scikit-learn's ``BernoulliRBM`` (PCD only) as users call it, on float64 data, and on float32;
  on digits both estimators also fitting scikit-learn's default 10 epochs per ``fit``
  (``ebmlab.sklearn-fit10``, ``scikit-learn-fit10``, timed per epoch), where a one-epoch fit is
  mostly each estimator's fixed cost per call;
* learnergy's ``RBM`` (CD-k only; its ``fit`` also computes a pseudo-likelihood per batch, as its
  users get it) and ebmkit's ``nets.RBM`` with ``ContrastiveDivergence`` + ``GibbsSampler``
  (PCD through its ``ReplayBuffer``), when installed (``pip install learnergy ebmkit``).

Each record: examples per second, GFLOP/s counting 5 matmuls of 2 * batch * visible * hidden
flops per update, and that as a fraction of the matmul peak measured in the same run and beside
a same-shape (batch x visible) @ (visible x hidden) product (both in the row's matmul dtype),
timed in the same rounds as the epoch (``ebmlab.app.bench.interleaved``; on one thread every
timing is CPU time, which leaves out the time other processes hold the core). Run
``python -m ebmlab.app.benchmarks.bench_rbm [--quick] [--rounds=N] [--pcd] [mnist|digits]`` or
``ebmlab bench rbm``; one JSON line per result.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ebmlab.app.bench import Measured, interleaved
from ebmlab.app.benchmarks.common import machine_info

LR = 0.01


def _load(name: str, n: int | None) -> np.ndarray:
    """Binary training data: the real dataset when available, else random bits of its density."""
    try:
        from ebmlab.data import load

        x, _ = load(name, "train", binarize="stochastic" if name == "mnist" else "threshold")
        x = x.numpy()
    except Exception:  # offline without the files: same shape, same density
        size, density = {"mnist": (60000, 784), "digits": (1797, 64)}[name], 0.13
        x = (np.random.default_rng(0).random(size) < density).astype(np.float32)
    return x[:n] if n else x


# ----- implementations: each returns a function that trains one epoch ---------------------------
def _ebmlab_update(
    x: np.ndarray,
    h: int,
    batch: int,
    method: str,
    monitor: bool = True,
    matmul_dtype: torch.dtype | None = None,
):
    """The objective's fused SGD step (``ContrastiveDivergence.sgd_update``), minibatch after
    minibatch: the update ``ebmlab.training.train`` and ``ebmlab.sklearn`` run, without either's
    loop around it (``monitor``: compute the loss value too, as the training loop does;
    ``matmul_dtype``: its products in bfloat16)."""
    from ebmlab.models.rbm import BernoulliRBM
    from ebmlab.objectives.contrastive import ContrastiveDivergence

    data = torch.from_numpy(x)
    rbm = BernoulliRBM(x.shape[1], h, seed=0)
    objective = ContrastiveDivergence(k=1, method=method, n_chains=batch, monitor=monitor)
    objective.setup(rbm, data)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=generator)
    batches = [data[order[i : i + batch]] for i in range(0, len(data), batch)]

    def epoch() -> None:
        for v in batches:
            objective.sgd_update(rbm, v, generator, LR, matmul_dtype=matmul_dtype)

    return epoch


def _ebmlab(x: np.ndarray, h: int, batch: int, method: str, gradient: str = "manual"):
    from ebmlab.models.rbm import BernoulliRBM
    from ebmlab.objectives.contrastive import ContrastiveDivergence

    data = torch.from_numpy(x)
    rbm = BernoulliRBM(x.shape[1], h, seed=0)
    objective = ContrastiveDivergence(k=1, method=method, n_chains=batch, gradient=gradient)
    objective.setup(rbm, data)
    optimizer = torch.optim.SGD(objective.param_groups(rbm, LR, 0.0), lr=LR, fused=True)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=generator)
    batches = [data[order[i : i + batch]] for i in range(0, len(data), batch)]

    def epoch() -> None:
        for v in batches:
            optimizer.zero_grad(set_to_none=True)
            loss, _ = objective.loss(rbm, v, generator)
            loss.backward()
            optimizer.step()

    return epoch


def _loop_run(
    x: np.ndarray, h: int, batch: int, method: str, epochs: int, precision: str = "float32"
):
    """(model, objective, data, loop settings) of an ``ebmlab.training.train`` run of
    ``epochs`` epochs."""
    from ebmlab.models.rbm import BernoulliRBM
    from ebmlab.objectives.contrastive import ContrastiveDivergence
    from ebmlab.training import TrainConfig

    rbm = BernoulliRBM(x.shape[1], h, seed=0)
    objective = ContrastiveDivergence(k=1, method=method, n_chains=batch)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch,
        lr=LR,
        optimizer="sgd",
        progress=False,
        device="cpu",
        log_every_steps=10**9,
        precision=precision,
    )
    return rbm, objective, torch.from_numpy(x), config


def _ebmlab_loop(x: np.ndarray, h: int, batch: int, method: str, precision: str = "float32"):
    from ebmlab.training import train

    run = _loop_run(x, h, batch, method, 1, precision)
    return lambda: train(*run)


def _ebmlab_loop_epochs(x: np.ndarray, h: int, batch: int, method: str, epochs: int) -> list[float]:
    """Seconds of each epoch of one ``ebmlab.training.train`` run of ``epochs`` epochs, read at the
    epoch ends (one thread: CPU time), the first one with the run's setup (data checks, the
    objective's setup): the epochs after it are the loop's own cost per epoch."""
    from ebmlab.app.bench import clock_for
    from ebmlab.training import train

    _, clock = clock_for("cpu")
    ends = [clock()]

    def mark(model: Any, epoch: int) -> dict[str, float]:
        ends.append(clock())
        return {}

    train(*_loop_run(x, h, batch, method, epochs), epoch_callback=mark)
    return [b - a for a, b in itertools.pairwise(ends)]


#: scikit-learn's default number of epochs per ``fit``: the estimators are also timed fitting
#: that many (digits: a one-epoch fit is mostly each estimator's fixed cost per ``fit``).
FIT_EPOCHS = 10
#: Implementations whose timed call runs ``FIT_EPOCHS`` epochs (their time is per epoch).
PER_FIT = {"ebmlab.sklearn-fit10": FIT_EPOCHS, "scikit-learn-fit10": FIT_EPOCHS}


def _ebmlab_sklearn(x: np.ndarray, h: int, batch: int, method: str, n_iter: int = 1):
    from ebmlab.sklearn import BernoulliRBM

    def epoch() -> None:
        BernoulliRBM(
            n_components=h,
            learning_rate=LR,
            batch_size=batch,
            n_iter=n_iter,
            method=method,
            random_state=0,
        ).fit(x)

    return epoch


def _sklearn(x: np.ndarray, h: int, batch: int, dtype: Any, n_iter: int = 1):
    from sklearn.neural_network import BernoulliRBM

    data = x.astype(dtype)

    def epoch() -> None:
        BernoulliRBM(
            n_components=h, learning_rate=LR, batch_size=batch, n_iter=n_iter, random_state=0
        ).fit(data)

    return epoch


def _learnergy(x: np.ndarray, h: int, batch: int):
    import logging

    from learnergy.models.bernoulli import RBM

    logging.getLogger("learnergy").setLevel(logging.ERROR)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.zeros(len(x)))
    model = RBM(n_visible=x.shape[1], n_hidden=h, steps=1, learning_rate=LR)
    return lambda: model.fit(dataset, batch_size=batch, epochs=1)


def _ebmkit(x: np.ndarray, h: int, batch: int, method: str):
    import ebm
    from ebm.nets import RBM

    data = torch.from_numpy(x)
    model = RBM(x.shape[1], h)
    sampler = ebm.GibbsSampler(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    if method == "pcd":
        buffer = ebm.ReplayBuffer(
            batch,
            (x.shape[1],),
            reinit_prob=0.0,
            init_fn=lambda shape: torch.bernoulli(torch.full(shape, 0.5)),
        )
        loss_fn = ebm.ContrastiveDivergence(sampler, buffer=buffer)
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]

    def epoch() -> None:
        for v in batches:
            optimizer.zero_grad()
            if method == "pcd":
                loss = loss_fn(model, v).loss
            else:
                negative = sampler.sample(model, v).detach()
                loss = model(v).mean() - model(negative).mean()
            loss.backward()
            optimizer.step()

    return epoch


def _installed(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def _implementations(method: str, small: bool = False) -> list[tuple[str, str, Callable]]:
    """The implementations of one case; ``small``: also both estimators fitting
    ``FIT_EPOCHS`` epochs per call (``PER_FIT``)."""
    impls: list[tuple[str, str, Callable]] = [
        ("ebmlab", "float32", lambda x, h, b: _ebmlab_update(x, h, b, method)),
        (
            "ebmlab-no-loss-value",
            "float32",
            lambda x, h, b: _ebmlab_update(x, h, b, method, monitor=False),
        ),
        ("ebmlab-backward", "float32", lambda x, h, b: _ebmlab(x, h, b, method)),
        ("ebmlab-autograd", "float32", lambda x, h, b: _ebmlab(x, h, b, method, "autograd")),
        ("ebmlab-train-loop", "float32", lambda x, h, b: _ebmlab_loop(x, h, b, method)),
        ("ebmlab.sklearn", "float32", lambda x, h, b: _ebmlab_sklearn(x, h, b, method)),
        # the products in bfloat16 (TrainConfig(precision="bfloat16")), references likewise
        (
            "ebmlab",
            "bfloat16",
            lambda x, h, b: _ebmlab_update(x, h, b, method, matmul_dtype=torch.bfloat16),
        ),
        (
            "ebmlab-train-loop",
            "bfloat16",
            lambda x, h, b: _ebmlab_loop(x, h, b, method, "bfloat16"),
        ),
    ]
    if method == "pcd":  # scikit-learn implements only PCD ("SML")
        impls += [
            ("scikit-learn", "float64", lambda x, h, b: _sklearn(x, h, b, np.float64)),
            ("scikit-learn", "float32", lambda x, h, b: _sklearn(x, h, b, np.float32)),
        ]
        if small:
            impls += [
                (
                    "ebmlab.sklearn-fit10",
                    "float32",
                    lambda x, h, b: _ebmlab_sklearn(x, h, b, method, FIT_EPOCHS),
                ),
                (
                    "scikit-learn-fit10",
                    "float32",
                    lambda x, h, b: _sklearn(x, h, b, np.float32, FIT_EPOCHS),
                ),
            ]
    if method == "cd" and _installed("learnergy"):  # learnergy implements only CD-k
        impls.append(("learnergy", "float32", _learnergy))
    if _installed("ebm.nets"):
        impls.append(("ebmkit", "float32", lambda x, h, b: _ebmkit(x, h, b, method)))
    return impls


def run(
    quick: bool = False,
    rounds: int | None = None,
    cases: list[str] | None = None,
    methods: tuple[str, ...] = ("cd", "pcd"),
) -> list[dict[str, Any]]:
    """Measure every case and implementation; return one record per result (``ebmlab bench``
    prints them; run as a script, this file prints them as they come). ``rounds``: rounds of
    one timed epoch per implementation, taken in turns, the best kept (default 3; quick: 1);
    ``cases``: "mnist", "digits" (default both); pcd records carry
    ``speedup_vs_scikit_learn_float32``."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    warnings.filterwarnings("ignore")
    rounds = rounds or (1 if quick else 3)
    every = [("mnist", 784, 500, 100, 6000 if quick else None), ("digits", 64, 100, 64, None)]
    records = []
    for name, d, h, batch, n in [case for case in every if cases is None or case[0] in cases]:
        x = _load(name, n)
        assert x.shape[1] == d
        flops_per_update = 5 * 2 * batch * d * h
        for method in methods:
            impls = [
                (impl, dtype, make(x, h, batch))
                for impl, dtype, make in _implementations(method, small=name == "digits")
            ]
            # implementations take turns, one epoch each per round (each epoch with its matmul
            # references, ebmlab.app.bench.interleaved): a change of machine load between
            # rounds hits all of them; each keeps its fastest epoch and fastest references
            best: dict[tuple[str, str], Measured] = {}
            for round_ in range(rounds):
                for impl, dtype, epoch in impls:
                    matmuls = torch.bfloat16 if dtype == "bfloat16" else torch.float32
                    t = interleaved(
                        epoch, (batch, d, h), rounds=1, warmup=round_ == 0, dtype=matmuls
                    )
                    old = best.get((impl, dtype))
                    best[impl, dtype] = (
                        t
                        if old is None
                        else Measured(
                            min(old.seconds, t.seconds),
                            max(old.peak_flops, t.peak_flops),
                            max(old.shape_flops, t.shape_flops),
                            t.clock,
                        )
                    )
            # the loop inside a run: epochs 2.. of one ebmlab.training.train call, the references
            # of the bare update's rounds (measured beside it)
            times = _ebmlab_loop_epochs(x, h, batch, method, rounds + 1)
            ref = best["ebmlab", "float32"]
            in_run = Measured(min(times[1:]), ref.peak_flops, ref.shape_flops, ref.clock)
            best["ebmlab-train-loop-in-run", "float32"] = in_run
            impls.append(("ebmlab-train-loop-in-run", "float32", lambda: None))
            setup = {"ebmlab-train-loop-in-run": round(times[0] - in_run.seconds, 4)}
            found = []
            updates = -(-len(x) // batch)
            for impl, dtype, _ in impls:
                timing = best[impl, dtype]
                calls = PER_FIT.get(impl, 1)  # epochs per timed call
                seconds = timing.seconds / calls
                record = {
                    "benchmark": "rbm",
                    "case": f"{name}-{d}x{h}-batch{batch}",
                    "method": f"{method}1",
                    "implementation": impl,
                    "dtype": dtype,
                    "examples": len(x),
                    "rounds": rounds,
                    "seconds_per_epoch": round(seconds, 4),
                    "examples_per_second": round(len(x) / seconds, 1),
                    **timing.ratios(updates * flops_per_update * calls),
                    **machine_info(),
                }
                if impl in setup:  # the first epoch's extra time: the run's one-time setup
                    record["setup_seconds"] = setup[impl]
                    extra = seconds - best["ebmlab", "float32"].seconds
                    record["loop_microseconds_per_step"] = round(extra / updates * 1e6, 1)
                found.append(record)
            peers = {
                r["implementation"]: r
                for r in found
                if r["implementation"].startswith("scikit-learn") and r["dtype"] == "float32"
            }
            for record in found:
                impl = record["implementation"]
                # the fit10 estimator against the fit10 peer, every other ebmlab row against
                # scikit-learn's one-epoch fit
                peer = peers.get("scikit-learn-fit10" if impl in PER_FIT else "scikit-learn")
                if peer is not None and impl.startswith("ebmlab"):
                    ratio = peer["seconds_per_epoch"] / record["seconds_per_epoch"]
                    record["speedup_vs_scikit_learn_float32"] = round(ratio, 3)
                if impl in PER_FIT:
                    record["epochs_per_fit"] = PER_FIT[impl]
                if __name__ == "__main__":
                    print(json.dumps(record), flush=True)
            records += found
    return records


if __name__ == "__main__":
    _rounds = [int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--rounds=")]
    _cases = [a for a in sys.argv[1:] if not a.startswith("--")]
    _methods = ("pcd",) if "--pcd" in sys.argv else ("cd", "pcd")
    run("--quick" in sys.argv, _rounds[0] if _rounds else None, _cases or None, _methods)
