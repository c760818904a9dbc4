"""The one training loop: shuffled minibatches, optimizer and schedule, progress, metrics,
checkpoints, resume, a NaN guard and data-parallel training.

Every gradient-trained family goes through ``train``; what differs between families lives in
their ``Objective`` (``ebmlab.objectives``).

Reproducibility. The epoch's shuffling comes from a generator seeded by (seed, epoch), and the
objective's sampling noise from a generator whose state is stored in every checkpoint, so a run
resumed from its last checkpoint repeats, bit for bit on the same device, what the uninterrupted
run would have done.

Data parallelism. Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes an equal slice of
every global minibatch, gradients are averaged with ``all_reduce``, and only rank 0 writes files.
The backend is gloo on CPU and nccl on CUDA. Each rank draws its sampling noise from its own
stream (seed offset by rank), so stochastic objectives are not bitwise equal to a single process;
deterministic objectives are (a test checks it).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from . import io
from .models.base import Model
from .objectives.base import Objective

CHECKPOINT_NAME = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a parameter becomes NaN or infinite; says where and what."""

    def __init__(self, message: str, step: int, quantity: str) -> None:
        super().__init__(message)
        self.step = step
        self.quantity = quantity


@dataclass
class TrainConfig:
    """Settings of the training loop. Every default is the one the CLI uses unless a recipe
    overrides it."""

    epochs: int = 10  # passes over the training set
    batch_size: int = 100  # global minibatch size (split across processes under torchrun)
    lr: float = 1e-3  # base learning rate
    optimizer: str = "adam"  # "sgd" (with momentum) or "adam"
    momentum: float = 0.0  # SGD momentum after warm-up (Hinton's guide for RBMs: 0.9)
    initial_momentum: float | None = None  # SGD momentum during warm-up (RBMs: 0.5); None = same
    momentum_warmup_epochs: int = 0  # epochs that use initial_momentum
    weight_decay: float = 0.0  # L2 penalty; objectives choose which parameters it applies to
    schedule: str = "constant"  # lr schedule: constant | linear | cosine | exponential
    final_lr_fraction: float = 0.0  # lr at the end of training as a fraction of lr
    max_grad_norm: float | None = None  # clip the global gradient norm (None: no clipping)
    seed: int = 0  # seeds shuffling, initial sampling noise and objective state
    device: str = "auto"  # auto | cpu | cuda | mps
    progress: bool = True  # tqdm progress bar with the live loss
    checkpoint_every_epochs: int = 1  # write the checkpoint every this many epochs (and at the end)
    log_every_steps: int = 10  # write a step record to metrics.jsonl every this many steps
    drop_last: bool = False  # drop a short last minibatch instead of using it

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs: expected a non-negative integer, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(
                f"final_lr_fraction: expected a value in [0, 1], got {self.final_lr_fraction}"
            )


def _constant(progress: float, final: float) -> float:
    return 1.0


def _linear(progress: float, final: float) -> float:
    return 1.0 - (1.0 - final) * progress


def _cosine(progress: float, final: float) -> float:
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _exponential(progress: float, final: float) -> float:
    # a zero final fraction would mean log(0): floor it at 1e-3 of the base rate
    return math.exp(math.log(max(final, 1e-3)) * progress)


SCHEDULES: dict[str, Callable[[float, float], float]] = {
    "constant": _constant,
    "linear": _linear,
    "cosine": _cosine,
    "exponential": _exponential,
}


@dataclass
class TrainResult:
    model: Model
    objective: Objective
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    epochs_done: int = 0
    checkpoint: Path | None = None
    seconds: float = 0.0


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable explicit choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValueError(f"device: expected auto, cpu, cuda or mps, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: 'mps' was asked for but MPS is not available")
    return torch.device(name)


@dataclass
class Distributed:
    """Process-group facts for data-parallel training (world_size 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return Distributed(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank
    )


def _average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _make_optimizer(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        momentum = config.momentum if config.initial_momentum is None else config.initial_momentum
        return torch.optim.SGD(groups, lr=config.lr, momentum=momentum, fused=_fusable(groups))
    return torch.optim.Adam(groups, lr=config.lr, fused=_fusable(groups))


def _fusable(groups: list[dict[str, Any]]) -> bool | None:
    """True when every parameter can take the fused optimizer kernels (one kernel for all
    tensors instead of one per tensor: the update costs less than the loop around it)."""
    params = [p for group in groups for p in group["params"]]
    ok = bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )
    return True if ok else None


def _set_hyperparameters(
    optimizer: torch.optim.Optimizer, config: TrainConfig, step: int, total: int, epoch: int
) -> float:
    factor = SCHEDULES[config.schedule](min(step / max(total, 1), 1.0), config.final_lr_fraction)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
        if config.optimizer == "sgd":
            warm = config.initial_momentum is not None and epoch < config.momentum_warmup_epochs
            group["momentum"] = config.initial_momentum if warm else config.momentum
    return optimizer.param_groups[0]["lr"]


def _check_finite(model: nn.Module, step: int, epoch: int) -> None:
    params = [p for p in model.parameters() if p.is_floating_point()]
    if not params:
        return
    # one sum per parameter: NaN and Inf propagate, so finite sums mean finite parameters, at a
    # fraction of the cost of isfinite(p).all(); a sum that overflows only leads to the exact check
    with torch.no_grad():
        total = torch.stack([p.detach().sum().double() for p in params]).sum()
    if torch.isfinite(total):
        return
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise TrainingDiverged(
                f"training diverged at step {step} (epoch {epoch + 1}): parameter {name!r} "
                "has NaN or infinite entries after the update",
                step,
                f"parameter {name}",
            )


class _MetricsWriter:
    """Appends JSON lines to metrics.jsonl (and TensorBoard scalars when it is installed)."""

    def __init__(self, out_dir: Path | None, enabled: bool) -> None:
        self.path = out_dir / "metrics.jsonl" if (out_dir and enabled) else None
        self.tb = None
        if self.path is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except (ImportError, ModuleNotFoundError):
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tb is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "epoch"):
                    self.tb.add_scalar(
                        f"{record.get('kind', 'train')}/{key}", value, record["step"]
                    )

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records written after the checkpoint we resume from."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def train(
    model: Model,
    objective: Objective,
    x_train: torch.Tensor,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    epoch_callback: Callable[[Model, int], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``model`` with ``objective`` on ``x_train`` (a float tensor (N, D)).

    Args:
        model: the model (moved to the configured device).
        objective: the training objective (its state is checkpointed with the model).
        x_train: training data, one example per row.
        config: loop settings (``TrainConfig``).
        out_dir: run directory for ``checkpoint.safetensors`` and ``metrics.jsonl`` (None: write
            nothing).
        resume: continue from ``out_dir/checkpoint.safetensors``.
        meta: JSON-safe run information stored in checkpoints (dataset, options, ...).
        epoch_callback: called after each epoch on rank 0 with (model, epoch); the metrics it
            returns are logged as an ``eval`` record.

    Raises:
        TrainingDiverged: the loss or a parameter became NaN/Inf; the checkpoint on disk is the
            last good one.
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    ddp = init_distributed(device)
    out = Path(out_dir) if out_dir is not None else None
    writes = out is not None and ddp.is_main
    if writes:
        out.mkdir(parents=True, exist_ok=True)

    if not isinstance(x_train, torch.Tensor) or x_train.dim() < 2:
        raise ValueError("x_train: expected a tensor of shape (N, D)")
    if x_train.shape[0] < ddp.world_size:
        raise ValueError(f"x_train: {x_train.shape[0]} examples for {ddp.world_size} processes")
    model.to(device)
    objective.to(device)
    x_train = x_train.to(device)
    n = x_train.shape[0]
    batches_per_epoch = n // config.batch_size if config.drop_last else -(-n // config.batch_size)
    if batches_per_epoch == 0:
        raise ValueError(
            f"batch_size: {config.batch_size} exceeds the {n} training examples with drop_last=True"
        )
    total_steps = batches_per_epoch * config.epochs

    sampler_gen = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + ddp.rank)
    step, start_epoch = 0, 0
    history: list[dict[str, Any]] = []
    checkpoint_path = out / CHECKPOINT_NAME if out is not None else None

    optimizer: torch.optim.Optimizer
    if resume:
        if checkpoint_path is None or not checkpoint_path.exists():
            raise FileNotFoundError(f"resume: no checkpoint at {checkpoint_path}")
        document, tensors = io.read_checkpoint(checkpoint_path)
        io.load_module_state(model, io.tensor_group(tensors, "model"), "resume")
        io.load_module_state(objective, io.tensor_group(tensors, "objective"), "resume (objective)")
        model.to(device)
        objective.to(device)
        optimizer = _make_optimizer(
            objective.param_groups(model, config.lr, config.weight_decay), config
        )
        if "optimizer" in document:
            optimizer.load_state_dict(
                io.optimizer_state_from_tensors(
                    io.tensor_group(tensors, "optimizer"), document["optimizer"]
                )
            )
        rng = io.tensor_group(tensors, "rng")
        own_rng = f"sampler{ddp.rank}"
        if own_rng in rng:
            sampler_gen.set_state(rng[own_rng])
        train_state = document["meta"].get("train_state", {})
        step = int(train_state.get("step", 0))
        start_epoch = int(train_state.get("epoch", 0))
        history = list(train_state.get("history", []))
        if writes:
            _truncate_metrics(out / "metrics.jsonl", step)
    else:
        objective.setup(model, x_train)
        optimizer = _make_optimizer(
            objective.param_groups(model, config.lr, config.weight_decay), config
        )
        if writes:
            (out / "metrics.jsonl").unlink(missing_ok=True)

    params = [p for group in optimizer.param_groups for p in group["params"]]
    if ddp.active:
        # every rank starts from rank 0's parameters
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)

    writer = _MetricsWriter(out, writes)
    base_meta = dict(meta or {})
    base_meta.setdefault("seed", config.seed)
    base_meta["train_config"] = asdict(config)

    def save_checkpoint(epoch_done: int) -> None:
        gens: dict[str, torch.Tensor] = {"sampler0": sampler_gen.get_state()}
        if ddp.active:
            # every rank takes part: gather the sampler states so a resumed DDP run continues
            # exactly (collectives on the device the backend needs)
            own = sampler_gen.get_state().to(device)
            states = [torch.empty_like(own) for _ in range(ddp.world_size)]
            dist.all_gather(states, own)
            gens = {f"sampler{r}": state.cpu() for r, state in enumerate(states)}
        if not writes or checkpoint_path is None:
            return
        run_meta = dict(base_meta)
        run_meta["train_state"] = {"step": step, "epoch": epoch_done, "history": history}
        io.save(
            model,
            checkpoint_path,
            objective=objective,
            optimizer=optimizer,
            generators=gens,
            meta=run_meta,
        )

    start_time = time.perf_counter()
    try:
        for epoch in range(start_epoch, config.epochs):
            order = torch.randperm(
                n, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch)
            ).to(device)
            sums: dict[str, float] = {}
            count = 0
            bar = None
            if config.progress and ddp.is_main:
                from tqdm.auto import tqdm

                bar = tqdm(
                    total=batches_per_epoch,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                    leave=False,
                    dynamic_ncols=True,
                    disable=None,  # no bar when stderr is not a terminal (logs, CI)
                )
            for b in range(batches_per_epoch):
                index = order[b * config.batch_size : (b + 1) * config.batch_size]
                if ddp.active:
                    index = index.tensor_split(ddp.world_size)[ddp.rank]
                batch = x_train[index]
                lr = _set_hyperparameters(optimizer, config, step, total_steps, epoch)
                optimizer.zero_grad(set_to_none=True)
                loss, metrics = objective.loss(model, batch, sampler_gen)
                if not torch.isfinite(loss).all():
                    raise TrainingDiverged(
                        f"training diverged at step {step + 1} (epoch {epoch + 1}, batch "
                        f"{b + 1}): the loss is {loss.item()}",
                        step + 1,
                        "loss",
                    )
                loss.backward()
                if ddp.active:
                    _average_gradients(params, ddp.world_size)
                if config.max_grad_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    metrics["grad_norm"] = float(norm)
                optimizer.step()
                step += 1
                objective.after_step(model, step)
                _check_finite(model, step, epoch)
                metrics = {"loss": float(loss.detach()), **metrics}
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
                if bar is not None:
                    bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
                    bar.update()
                if step % config.log_every_steps == 0:
                    writer.write(
                        {"kind": "step", "step": step, "epoch": epoch + 1, "lr": lr, **metrics}
                    )
            if bar is not None:
                bar.close()
            record: dict[str, Any] = {
                "kind": "epoch",
                "step": step,
                "epoch": epoch + 1,
                "seconds": round(time.perf_counter() - start_time, 3),
                **{k: v / max(count, 1) for k, v in sums.items()},
            }
            if epoch_callback is not None and ddp.is_main:
                record.update({f"eval_{k}": v for k, v in epoch_callback(model, epoch).items()})
            history.append(record)
            writer.write(record)
            last = epoch + 1 == config.epochs
            if last or (epoch + 1) % max(config.checkpoint_every_epochs, 1) == 0:
                save_checkpoint(epoch + 1)
        if config.epochs == 0 or start_epoch >= config.epochs:
            save_checkpoint(max(start_epoch, config.epochs))
    except TrainingDiverged as error:
        writer.write(
            {
                "kind": "diverged",
                "step": error.step,
                "quantity": error.quantity,
                "message": str(error),
            }
        )
        raise
    finally:
        writer.close()
    return TrainResult(
        model=model,
        objective=objective,
        history=history,
        step=step,
        epochs_done=config.epochs,
        checkpoint=checkpoint_path if writes else None,
        seconds=time.perf_counter() - start_time,
    )


def train_with_restarts(
    model: Model,
    objective: Objective,
    x_train: torch.Tensor,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    max_restarts: int = 2,
    lr_factor: float = 0.5,
    meta: dict[str, Any] | None = None,
    epoch_callback: Callable[[Model, int], dict[str, float]] | None = None,
) -> TrainResult:
    """``train`` that, on ``TrainingDiverged``, restarts from the last good checkpoint with a new
    seed and ``lr_factor`` x the learning rate, after calling the objective's ``apply_remedies``
    where it has one (CD with Langevin: twice the Langevin steps, a larger L2 energy penalty).

    Each restart trains the remaining epochs as a fresh run in ``out_dir`` (fresh optimizer
    state; the objective keeps its buffer, log Z and step count); the previous attempt's
    ``metrics.jsonl`` is kept as ``metrics-attempt<k>.jsonl`` and ``restarts.json`` lists what
    changed. Raises the last ``TrainingDiverged`` after ``max_restarts`` restarts.
    """
    out = Path(out_dir)
    checkpoint = out / CHECKPOINT_NAME
    log: list[dict[str, Any]] = []
    total_epochs, done = config.epochs, 0  # ``done``: epochs behind the state an attempt starts
    # a divergence before the first checkpoint restarts the model from its initial state (the
    # objective's state, e.g. a replay buffer, is built again by its ``setup``)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for attempt in range(max_restarts + 1):
        stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        try:
            return train(
                model, objective, x_train, config, out, meta=meta, epoch_callback=epoch_callback
            )
        except TrainingDiverged as error:
            if attempt == max_restarts:
                raise
            if checkpoint.exists():
                document, tensors = io.read_checkpoint(checkpoint)
                io.load_module_state(model, io.tensor_group(tensors, "model"), "restart")
                io.load_module_state(objective, io.tensor_group(tensors, "objective"), "restart")
                if checkpoint.stat().st_mtime_ns != stamp:  # written by this attempt
                    done += int(document["meta"].get("train_state", {}).get("epoch", 0))
            else:
                model.load_state_dict(initial)
            changes: dict[str, Any] = {
                "attempt": attempt + 1,
                "diverged_at_step": error.step,
                "quantity": error.quantity,
                "from_epoch": done,
            }
            remedies = getattr(objective, "apply_remedies", None)
            if callable(remedies):
                changes.update(remedies(attempt + 1))
            config = replace(
                config,
                epochs=max(total_epochs - done, 1),
                seed=config.seed + 1000,
                lr=config.lr * lr_factor,
            )
            changes.update({"seed": config.seed, "lr": config.lr})
            log.append(changes)
            (out / "restarts.json").write_text(json.dumps(log, indent=2) + "\n")
            metrics = out / "metrics.jsonl"
            if metrics.exists():
                metrics.rename(out / f"metrics-attempt{attempt}.jsonl")
    raise AssertionError("unreachable: the last attempt returns or raises")
