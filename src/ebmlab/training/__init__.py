"""Training: the one loop, its checkpoints and resume, stages, greedy pretraining, restarts.

config.py       TrainConfig and the learning-rate schedules
loop.py         ``train``: minibatches, optimizer, NaN guard, progress, metrics, checkpoints
checkpoint.py   what a checkpoint holds and how a run continues from it (``restore``)
distributed.py  ``--device auto`` and data parallelism under torchrun
logging.py      metrics.jsonl (every stage), TensorBoard, the progress bar
optim.py        optimizer, schedule and momentum per step
restarts.py     ``train_with_restarts``: resume after a divergence with a lower lr, new seed
stages.py       ``Stage`` and ``run_stages``: training as a sequence of resumable stages
greedy.py       all layer-wise pretraining (DBN, deep autoencoder, DBM) as stages
errors.py       ``TrainingDiverged``
"""

from .checkpoint import CHECKPOINT_NAME, RunState
from .config import PRECISIONS, SCHEDULES, TrainConfig, matmul_precision
from .distributed import Distributed, init_distributed, resolve_device
from .errors import TrainingDiverged
from .loop import TrainResult, check_finite, train
from .restarts import train_with_restarts
from .stages import Stage, run_stages

__all__ = [
    "CHECKPOINT_NAME",
    "PRECISIONS",
    "SCHEDULES",
    "Distributed",
    "RunState",
    "Stage",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "check_finite",
    "init_distributed",
    "matmul_precision",
    "resolve_device",
    "run_stages",
    "train",
    "train_with_restarts",
]
