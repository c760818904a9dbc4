"""Run by tests/test_train.py under torchrun: fit a DiagonalGaussian by exact maximum
likelihood (a deterministic objective) with data-parallel training, writing to argv[1]."""

import sys

import torch

from ebmlab.models import DiagonalGaussian
from ebmlab.objectives import MaximumLikelihood
from ebmlab.training import TrainConfig, train


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 3, generator=g) * torch.tensor([0.5, 1.0, 2.0]) + 1.0


def config() -> TrainConfig:
    return TrainConfig(
        epochs=3,
        batch_size=16,
        lr=0.05,
        optimizer="sgd",
        momentum=0.9,
        seed=4,
        device="cpu",
        progress=False,
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    train(DiagonalGaussian(3), MaximumLikelihood(), data(), config(), sys.argv[1])
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
