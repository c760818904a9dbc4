"""Settings of the training loop and its learning-rate schedules."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..validation import Boolean, Integral, OneOf, Real, check_params


def _constant(progress: float, final: float) -> float:
    return 1.0


def _linear(progress: float, final: float) -> float:
    return 1.0 - (1.0 - final) * progress


def _cosine(progress: float, final: float) -> float:
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _exponential(progress: float, final: float) -> float:
    # a zero final fraction would mean log(0): floor it at 1e-3 of the base rate
    return math.exp(math.log(max(final, 1e-3)) * progress)


#: Learning-rate factor as a function of (fraction of training done, final fraction).
SCHEDULES: dict[str, Callable[[float, float], float]] = {
    "constant": _constant,
    "linear": _linear,
    "cosine": _cosine,
    "exponential": _exponential,
}


#: Arithmetic of the training step's forward pass: "float32" throughout; "bfloat16": the loss's
#: forward pass under ``torch.autocast`` (matmuls and convolutions in bfloat16; parameters,
#: gradients, optimizer state and every evaluation in float32; an objective's hand-written
#: update, the RBM's, runs its products in bfloat16 too); "tf32": float32 matmuls and
#: convolutions on TensorFloat-32 tensor cores (CUDA only).
PRECISIONS = ("float32", "bfloat16", "tf32")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse, by name, a training precision the device cannot run: TF32 off CUDA, bfloat16 on
    a GPU without it (before compute capability 8.0)."""
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(
            f"precision: 'tf32' runs on CUDA tensor cores only (the device is {device.type}); "
            "use 'bfloat16' or 'float32'"
        )
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "precision: 'bfloat16' needs a GPU with bfloat16 arithmetic (compute capability 8.0 "
            f"or later; this one is {torch.cuda.get_device_name(device)}); use 'float32'"
        )


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """TensorFloat-32 CUDA matmuls and convolutions inside the block when ``precision`` is
    "tf32" (the flags are restored afterwards); any other precision leaves them as they are."""
    if precision != "tf32":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


#: What each setting of ``TrainConfig`` accepts (checked when a config is made).
_CONSTRAINTS = {
    "epochs": Integral(0),
    "batch_size": Integral(1),
    "lr": Real(0, closed="neither", description="a positive learning rate"),
    "optimizer": OneOf("sgd", "adam"),
    "momentum": Real(0, 1),
    "initial_momentum": Real(0, 1) | None,
    "momentum_warmup_epochs": Integral(0),
    "weight_decay": Real(0),
    "schedule": OneOf(*SCHEDULES),
    "final_lr_fraction": Real(0, 1),
    "max_grad_norm": Real(0, closed="neither") | None,
    "seed": Integral(0),
    "checkpoint_every_epochs": Integral(1),
    "log_every_steps": Integral(1),
    "progress": Boolean(),
    "drop_last": Boolean(),
    "max_minutes": Real(0, closed="neither", description="a positive number of minutes") | None,
    "precision": OneOf(*PRECISIONS),
}


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
    # stop after this many minutes of training, a time budget for comparisons at equal compute
    # (the schedule then follows whichever of steps and minutes is further along); None: no limit
    max_minutes: float | None = None
    precision: str = "float32"  # float32 | bfloat16 (autocast forward pass) | tf32 (CUDA only)

    def __post_init__(self) -> None:
        check_params(_CONSTRAINTS, vars(self))

    def lr_factor(self, step: int, total_steps: int, seconds: float = 0.0) -> float:
        """The schedule's factor on ``lr`` at ``step`` of ``total_steps``, after ``seconds`` of
        training (under a time budget the schedule runs on whichever is further along)."""
        progress = min(step / max(total_steps, 1), 1.0)
        if self.max_minutes is not None:
            progress = max(progress, min(seconds / (60.0 * self.max_minutes), 1.0))
        return SCHEDULES[self.schedule](progress, self.final_lr_fraction)

    def momentum_at(self, epoch: int) -> float:
        """SGD momentum in ``epoch`` (0-based): ``initial_momentum`` during the warm-up."""
        warm = self.initial_momentum is not None and epoch < self.momentum_warmup_epochs
        return (
            self.initial_momentum if warm and self.initial_momentum is not None else self.momentum
        )
