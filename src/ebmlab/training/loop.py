"""The one training loop: shuffled minibatches, optimizer and schedule, progress, metrics,
checkpoints, resume, a NaN guard and data-parallel training.

Every gradient-trained model goes through ``train``; what differs between families lives in
their ``Objective`` (``ebmlab.objectives``), and multi-stage training (greedy pretraining, then
joint training) is a sequence of ``train`` calls (``ebmlab.training.stages``).

Reproducibility. The epoch's shuffling comes from a generator seeded by (seed, epoch), and the
objective's sampling noise from a generator whose state is stored in every checkpoint, so a run
resumed from its last checkpoint repeats, bit for bit on the same device, what the uninterrupted
run would have done. A resumed run given another seed than the one it recorded (an automatic
restart after a divergence) draws new sampling noise from that seed.

Data parallelism. Each rank draws its sampling noise from its own stream (seed offset by rank),
so stochastic objectives are not bitwise equal to a single process; deterministic objectives are
(a test checks it).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.base import Model
from ..objectives.base import Objective
from ..validation import InvalidArgumentError, as_tensor
from . import checkpoint
from .checkpoint import CHECKPOINT_NAME, RunState
from .config import TrainConfig, check_precision, matmul_precision
from .distributed import Distributed, init_distributed, resolve_device
from .errors import TrainingDiverged
from .logging import MetricsWriter, progress_bar, reset_metrics
from .optim import make_optimizer, set_hyperparameters

#: called after each epoch with (model, epoch); returns the metrics to log, or None for none
EpochCallback = Callable[[Model, int], "dict[str, float] | None"]


@dataclass
class TrainResult:
    model: Model
    objective: Objective
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    epochs_done: int = 0
    checkpoint: Path | None = None
    seconds: float = 0.0


@dataclass
class _Run:
    """Everything one call of ``train`` works with."""

    model: Model
    objective: Objective
    x: torch.Tensor
    config: TrainConfig
    ddp: Distributed
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    state: RunState
    writer: MetricsWriter
    checkpoint: Path | None
    meta: dict[str, Any]
    batches_per_epoch: int
    stage: str | None
    #: the objective does its own SGD step (``sgd_step``): plain SGD, no clipping, one process
    fused: bool = False
    #: the context of the loss's forward pass: autocast under precision="bfloat16", else none
    #: (made once: an autocast context, even disabled, costs microseconds per step)
    forward: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    #: the minibatch buffer of the fused path
    batch_buffer: torch.Tensor | None = None
    #: steps run since the last check: (step, epoch, batch, loss, step record or None)
    pending: list[tuple[int, int, int, torch.Tensor, dict[str, Any] | None]] = field(
        default_factory=list
    )

    @property
    def total_steps(self) -> int:
        return self.batches_per_epoch * self.config.epochs

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


def train(
    model: Model,
    objective: Objective,
    x_train: torch.Tensor,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    epoch_callback: EpochCallback | None = None,
    stage: str | None = None,
    checkpoint_name: str = CHECKPOINT_NAME,
) -> TrainResult:
    """Train ``model`` with ``objective`` on ``x_train`` (a tensor or NumPy array (N, D),
    converted to the model's dtype).

    Args:
        model: the model (moved to the configured device).
        objective: the training objective (its state is checkpointed with the model).
        x_train: training data, one example per row.
        config: loop settings (``TrainConfig``).
        out_dir: run directory for the checkpoint and ``metrics.jsonl`` (None: write nothing).
        resume: continue from the checkpoint in ``out_dir``.
        meta: JSON-safe run information stored in checkpoints (dataset, options, ...).
        epoch_callback: called after each epoch on rank 0 with (model, epoch); the metrics it
            returns (a dict of numbers) are logged as ``eval_*`` entries of the epoch record;
            it may return None (no metrics to add).
        stage: the stage's name when the run has several (tags its ``metrics.jsonl`` records).
        checkpoint_name: the checkpoint's path inside ``out_dir``.

    Raises:
        TrainingDiverged: the loss or a parameter became NaN/Inf; the checkpoint on disk is the
            last good one.
    """
    _check_arguments(model, objective, config, epoch_callback)
    config = config if config is not None else TrainConfig()
    run = _prepare(model, objective, x_train, config, out_dir, resume, meta, stage, checkpoint_name)
    start_epoch, start = run.state.epoch, time.perf_counter()
    try:
        for epoch in range(start_epoch, config.epochs):
            with matmul_precision(config.precision):  # training steps only, not evaluation
                record = _train_epoch(run, epoch, start)
            if epoch_callback is not None and run.ddp.is_main:
                record.update(_callback_metrics(epoch_callback(model, epoch), epoch))
            run.state.history.append(record)
            run.writer.write(record)
            run.state.epoch = config.epochs if record.get("stopped") else epoch + 1
            if (
                run.state.epoch == config.epochs
                or (epoch + 1) % max(config.checkpoint_every_epochs, 1) == 0
            ):
                _save(run)
            if record.get("stopped"):
                break
        if config.epochs == 0 or start_epoch >= config.epochs:
            run.state.epoch = max(start_epoch, config.epochs)
            _save(run)
    except TrainingDiverged as error:
        error.checkpoint = run.checkpoint if run.checkpoint and run.checkpoint.exists() else None
        run.writer.write(
            {
                "kind": "diverged",
                "step": error.step,
                "quantity": error.quantity,
                "message": str(error),
            }
        )
        raise
    finally:
        run.writer.close()
    return TrainResult(
        model,
        objective,
        run.state.history,
        run.state.step,
        config.epochs,
        run.checkpoint if run.writer.path is not None else None,
        time.perf_counter() - start,
    )


def _check_arguments(model: Any, objective: Any, config: Any, epoch_callback: Any) -> None:
    """Refuse arguments of the wrong kind before anything is placed or written: each would
    otherwise fail deep in the loop with a message about a missing attribute."""
    if not isinstance(model, nn.Module) or (
        not isinstance(model, Model) and not hasattr(model, "dtype")
    ):
        what = (
            f"the class {model.__name__} (call it: {model.__name__}(...))"
            if isinstance(model, type)
            else f"{type(model).__name__}"
            + (", a plain torch.nn.Module" if isinstance(model, nn.Module) else "")
        )
        raise InvalidArgumentError(f"model: expected an ebmlab Model (ebmlab.models), got {what}")
    if isinstance(objective, type):
        raise InvalidArgumentError(
            f"objective: expected an Objective instance, got the class {objective.__name__} "
            f"(call it: {objective.__name__}())"
        )
    if not isinstance(objective, Objective):
        raise InvalidArgumentError(
            f"objective: expected an Objective (ebmlab.objectives), got {type(objective).__name__}"
        )
    if config is not None and not isinstance(config, TrainConfig):
        hint = " (TrainConfig(**...))" if isinstance(config, dict) else ""
        raise InvalidArgumentError(
            f"config: expected a TrainConfig, got {type(config).__name__}{hint}"
        )
    if config is not None:
        # a TrainConfig is checked when it is made; a field set afterwards is checked here
        config.__post_init__()
    if epoch_callback is not None and not callable(epoch_callback):
        raise InvalidArgumentError(
            "epoch_callback: expected a function of (model, epoch) or None, got "
            f"{type(epoch_callback).__name__}"
        )


def _callback_metrics(metrics: Any, epoch: int) -> dict[str, Any]:
    """The ``eval_*`` entries of the epoch record from what ``epoch_callback`` returned: a dict
    of metrics, or None for none."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError(
            f"epoch_callback: expected it to return a dict of metrics or None, got "
            f"{type(metrics).__name__} after epoch {epoch + 1}"
        )
    return {f"eval_{k}": v for k, v in metrics.items()}


def _visible_energy(model: nn.Module) -> bool:
    """The model has an ``energy`` callable on the data alone: ``energy(x)``, not an energy of
    visible and latent units (``energy(v, h)``, ``energy(*layers)``)."""
    energy = getattr(model, "energy", None)
    if not callable(energy):
        return False
    try:
        signature = inspect.signature(energy)
    except (TypeError, ValueError):
        return True  # nothing to read: let the objective try
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        return False
    try:
        signature.bind(object())
    except TypeError:
        return False
    return True


def check_model_fits(model: nn.Module, objective: Objective) -> None:
    """Raise ``TypeError`` when ``objective`` needs of the model what it does not have
    (``Objective.requires``): a
    ``log_prob`` for maximum likelihood, an energy of the data alone for the energy-based
    objectives (score matching, NCE, contrastive Langevin); a model with latent units (an RBM,
    whose energy is E(v, h)) gets the objectives that train it named."""
    name, got = type(objective).__name__, type(model).__name__
    need = getattr(objective, "requires", None)
    if need is not None:
        if need == "log_prob" and not callable(getattr(model, "log_prob", None)):
            raise TypeError(
                f"model: {name} trains a model with a normalized density (log_prob), got {got}, "
                "which has none"
                + (
                    "; train a latent-variable model with its own objective (e.g. "
                    "ContrastiveDivergence for an RBM)"
                    if hasattr(model, "free_energy")
                    else ""
                )
            )
        if need == "energy" and not _visible_energy(model):
            if hasattr(model, "free_energy"):
                detail = (
                    ", a latent-variable model whose energy needs the hidden units too; train it "
                    "with its own objective (e.g. ContrastiveDivergence for an RBM)"
                )
            else:
                detail = ", which has no energy(x)"
            raise TypeError(
                f"model: {name} trains an energy-based model of the data (energy(x)), "
                f"got {got}{detail}"
            )


def _prepare(
    model: Model,
    objective: Objective,
    x_train: torch.Tensor,
    config: TrainConfig,
    out_dir: str | os.PathLike[str] | None,
    resume: bool,
    meta: dict[str, Any] | None,
    stage: str | None,
    checkpoint_name: str,
) -> _Run:
    """Check the data, place everything on the device, then start fresh or from the checkpoint."""
    check_model_fits(model, objective)
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    ddp = init_distributed(device)
    out = Path(out_dir) if out_dir is not None else None
    writes = out is not None and ddp.is_main
    if writes and out is not None:
        out.mkdir(parents=True, exist_ok=True)
    x_train = _check_data(x_train, model, ddp)
    n = int(x_train.shape[0])
    batches = n // config.batch_size if config.drop_last else -(-n // config.batch_size)
    if batches == 0:
        raise ValueError(
            f"batch_size: {config.batch_size} exceeds the {n} training examples with drop_last=True"
        )
    model.to(device)
    objective.to(device)
    x = x_train.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + ddp.rank)
    path = out / checkpoint_name if out is not None else None
    state = RunState()
    if resume:
        if path is None:
            raise FileNotFoundError("resume: no run directory (out_dir) to resume from")
        restored = checkpoint.restore(path, model, objective)
        model.to(device)
        objective.to(device)
        optimizer = _optimizer(model, objective, config)
        restored.load_optimizer(optimizer)
        if restored.config.get("seed", config.seed) == config.seed:
            restored.load_generator(generator, ddp.rank)
        state = restored.state
    else:
        if path is not None and writes and path.exists():
            path.unlink()  # an earlier run's checkpoint must not pass for this run's
        objective.setup(model, x)
        optimizer = _optimizer(model, objective, config)
    if writes and out is not None:
        reset_metrics(out, stage, state.step if resume else None if stage is None else 0)
    ddp.broadcast_module(model)
    base_meta = dict(meta or {})
    writer = MetricsWriter(out, writes, stage)
    fused = (
        config.optimizer == "sgd"
        and config.max_grad_norm is None
        and not ddp.active
        and callable(getattr(objective, "sgd_step", None))
    )
    return _Run(
        model,
        objective,
        x,
        config,
        ddp,
        optimizer,
        generator,
        state,
        writer,
        path,
        base_meta,
        batches,
        stage,
        fused,
        forward=functools.partial(torch.autocast, device.type, torch.bfloat16)
        if config.precision == "bfloat16"
        else contextlib.nullcontext,
    )


def _check_data(x_train: Any, model: Model, ddp: Distributed) -> torch.Tensor:
    """The training data in the model's dtype (float64, integer or boolean data are converted;
    a tensor that requires grad is detached),
    refused when it is not a batch of examples or holds NaN or infinite values: bad data is
    named as such before it can look like a diverging model or sampler."""
    if isinstance(x_train, np.ndarray | list | tuple):  # converted to the model's dtype
        x_train = as_tensor(x_train, "x_train", dtype=model.dtype)
    elif not isinstance(x_train, torch.Tensor):
        raise InvalidArgumentError(
            f"x_train: expected a torch.Tensor or a NumPy array of shape (N, D), got "
            f"{type(x_train).__name__}"
        )
    if x_train.dim() < 2:
        raise ValueError(
            f"x_train: expected a tensor of shape (N, D), got shape {tuple(x_train.shape)}"
        )
    if x_train.is_complex():
        raise ValueError(f"x_train: expected real values, got {x_train.dtype}")
    if x_train.shape[0] < ddp.world_size:
        raise ValueError(f"x_train: {x_train.shape[0]} examples for {ddp.world_size} processes")
    # data computed by a module (e.g. the activities of a layer below) may still carry its graph:
    # the loop trains on the values
    x_train = x_train.detach()
    if x_train.dtype != model.dtype:
        x_train = x_train.to(model.dtype)
    # NaN and Inf propagate into the sum (one pass); only a non-finite sum, bad data or an
    # overflow, pays for the elementwise check
    if x_train.numel() and not bool(torch.isfinite(x_train.sum())):
        bad = ~torch.isfinite(x_train)
    else:
        bad = torch.zeros((), dtype=torch.bool)
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        raise ValueError(
            f"x_train: {int(bad.sum())} entries are NaN or infinite (the first at index "
            f"{tuple(first)}); the data must be finite"
        )
    return x_train


def _optimizer(model: Model, objective: Objective, config: TrainConfig) -> torch.optim.Optimizer:
    return make_optimizer(objective.param_groups(model, config.lr, config.weight_decay), config)


def _save(run: _Run) -> None:
    # every rank takes part in gathering the sampling streams; only rank 0 writes
    generators = run.ddp.gather_generator_states(run.generator)
    if run.writer.path is None or run.checkpoint is None:
        return
    checkpoint.save(
        run.checkpoint,
        run.model,
        run.objective,
        run.optimizer,
        generators,
        run.config,
        run.state,
        run.meta,
    )


#: Steps between two checks of the losses and parameters on the host (and at the end of every
#: epoch, before any checkpoint is written). Between checks nothing waits for the device: the
#: losses, step records and epoch sums stay tensors until the check reads them all at once.
CHECK_EVERY_STEPS = 16


def _train_epoch(run: _Run, epoch: int, start: float) -> dict[str, Any]:
    """One pass over the data in the epoch's shuffled order; returns the epoch record."""
    config, n = run.config, run.x.shape[0]
    budget = None if config.max_minutes is None else 60.0 * config.max_minutes
    spent = run.state.seconds - (time.perf_counter() - start)  # seconds before this call
    shuffle = torch.Generator().manual_seed(config.seed * 7919 + epoch)
    order = torch.randperm(n, generator=shuffle).to(run.x.device)
    sums: dict[str, list[Any]] = {}
    label = f"{run.stage} " if run.stage else ""
    bar = progress_bar(
        config.progress and run.ddp.is_main,
        run.batches_per_epoch,
        f"{label}epoch {epoch + 1}/{config.epochs}",
    )
    count, stopped = 0, False
    run.pending.clear()
    try:
        for b in range(run.batches_per_epoch):
            index = order[b * config.batch_size : (b + 1) * config.batch_size]
            if run.ddp.active:
                index = index.tensor_split(run.ddp.world_size)[run.ddp.rank]
            metrics = _train_step(run, _batch(run, index), epoch, b)
            count += 1
            for key, value in metrics.items():  # summed at the epoch's end, in one call
                sums.setdefault(key, []).append(_detached(value))
            if run.state.step % CHECK_EVERY_STEPS == 0:
                _check(run)
                if bar is not None:
                    bar.set_postfix(loss=f"{float(metrics['loss']):.4g}", refresh=False)
            if bar is not None:
                bar.update()
            run.state.seconds = spent + time.perf_counter() - start
            if budget is not None and run.ddp.agree(run.state.seconds >= budget):
                stopped = True
                break
        _check(run)  # before the epoch's record and checkpoint
    finally:
        run.pending.clear()
        if bar is not None:
            bar.close()
    record: dict[str, Any] = {
        "kind": "epoch",
        "step": run.state.step,
        "epoch": epoch + 1,
        # the run's training seconds so far, resumes included (what --max-minutes counts)
        "seconds": round(spent + time.perf_counter() - start, 3),
        **{k: _total(v) / max(count, 1) for k, v in sums.items()},
    }
    if stopped:
        record["stopped"] = (
            f"time budget of {config.max_minutes:g} minutes spent after {count} of "
            f"{run.batches_per_epoch} batches"
        )
    return record


def _batch(run: _Run, index: torch.Tensor) -> torch.Tensor:
    """The minibatch rows ``index`` of the data (``index_select``: a third of the time of
    advanced indexing). The objective's own SGD step copies the batch before it returns, so
    that path reuses one buffer (no allocation per step); the others get a new tensor, which an
    objective may keep."""
    if not run.fused:
        return run.x.index_select(0, index)
    shape = (index.shape[0], *run.x.shape[1:])
    if run.batch_buffer is None or run.batch_buffer.shape != shape:
        run.batch_buffer = run.x.new_empty(shape)
    return torch.index_select(run.x, 0, index, out=run.batch_buffer)


def _detached(value: Any) -> Any:
    return value.detach() if isinstance(value, torch.Tensor) else value


def _total(values: list[Any]) -> float:
    """The sum of one metric over an epoch's steps (tensors or numbers), as a float."""
    tensors = [v.reshape(()) for v in values if isinstance(v, torch.Tensor)]
    total = float(torch.stack(tensors).sum(dtype=torch.float64)) if tensors else 0.0
    return total + sum(v for v in values if not isinstance(v, torch.Tensor))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, torch.Tensor) else value


def _train_step(run: _Run, batch: torch.Tensor, epoch: int, b: int) -> dict[str, Any]:
    """One optimizer step; returns the step's metrics (the loss as a tensor: the NaN guard reads
    it at the next check, ``_check``, with the other unchecked steps' losses)."""
    config, optimizer = run.config, run.optimizer
    lr = set_hyperparameters(
        optimizer, config, run.state.step, run.total_steps, epoch, run.state.seconds
    )
    fused = None
    if run.fused:
        with run.forward():  # a fused step honours the precision of its own matmuls
            fused = run.objective.sgd_step(run.model, batch, run.generator, optimizer)
        run.fused = fused is not None  # the generic path from now on if it cannot
    if fused is not None:
        loss, metrics = fused
    else:
        optimizer.zero_grad(set_to_none=True)
        with run.forward():
            loss, metrics = run.objective.loss(run.model, batch, run.generator)
        if loss.dtype in (torch.bfloat16, torch.float16):
            loss = loss.float()  # the value and the NaN guard in float32
        loss.backward()
        run.ddp.average_gradients(run.params)
        if config.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
            metrics["grad_norm"] = norm.detach()
        optimizer.step()
    run.state.step += 1
    run.objective.after_step(run.model, run.state.step)
    metrics = {"loss": loss.detach(), **metrics}
    record = None
    if run.state.step % config.log_every_steps == 0:
        record = {"kind": "step", "step": run.state.step, "epoch": epoch + 1, "lr": lr, **metrics}
    run.pending.append((run.state.step, epoch, b, metrics["loss"], record))
    return metrics


def _check(run: _Run) -> None:
    """The NaN guard over the steps since the last check, with one read of the device: raise
    ``TrainingDiverged`` at the first step whose loss is NaN, infinite or beyond the objective's
    ``loss_bound`` (step records before it are written), else write the step records and check
    the parameters (``check_finite``)."""
    pending, run.pending = run.pending, []
    if not pending:
        return
    values = torch.stack([loss.reshape(()).to(torch.float64) for *_, loss, _ in pending]).tolist()
    bound = run.objective.loss_bound
    for (step, epoch, b, _, record), value in zip(pending, values):
        if not math.isfinite(value) or abs(value) > bound:
            detail = "" if not math.isfinite(value) else f", beyond the bound {bound:.4g} of "
            detail += type(run.objective).__name__ if math.isfinite(value) else ""
            raise TrainingDiverged(
                f"training diverged at step {step} (epoch {epoch + 1}, batch {b + 1}): "
                f"the loss is {value:.6g}{detail}{_bad_parameters(run.model, pending[-1][0])}",
                step,
                "loss",
            )
        if record is not None:
            run.writer.write({k: _number(v) for k, v in record.items()})
    step, epoch = pending[-1][0], pending[-1][1]
    check_finite(run.model, step, epoch, since=pending[0][0])


def _bad_parameters(model: nn.Module, step: int) -> str:
    """'; parameter NAME has NaN or infinite entries by step STEP ...' for the first such
    parameter, else '' (what a loss gone bad between two checks may come from: the losses of a
    group of steps are checked together, so STEP is the group's last)."""
    for name, p in model.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            return (
                f"; parameter {name!r} has NaN or infinite entries by step {step} (the steps are "
                "checked in groups)"
            )
    return ""


def check_finite(model: nn.Module, step: int, epoch: int, since: int | None = None) -> None:
    """Raise ``TrainingDiverged`` naming the first parameter with NaN or infinite entries.
    ``since``: the first step of the window this check covers (the message names it)."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    if not params:
        return
    # one sum per parameter: NaN and Inf propagate, so finite sums mean finite parameters, at a
    # fraction of the cost of isfinite(p).all(); a sum that overflows only leads to the exact check
    with torch.no_grad():
        total = torch.stack([p.detach().sum().double() for p in params]).sum()
    if torch.isfinite(total):
        return
    window = "" if since is None or since == step else f", checked over steps {since}-{step}"
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise TrainingDiverged(
                f"training diverged at step {step} (epoch {epoch + 1}{window}): parameter "
                f"{name!r} has NaN or infinite entries after the update",
                step,
                f"parameter {name}",
            )
