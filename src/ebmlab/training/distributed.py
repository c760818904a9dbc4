"""Devices and data parallelism: ``--device auto``, and the process group ``torchrun`` sets up.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes an equal slice of every global
minibatch, gradients are averaged with ``all_reduce`` and only rank 0 writes files. The backend
is gloo on CPU and nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from ..validation import resolve_device

__all__ = ["Distributed", "init_distributed", "resolve_device"]


@dataclass
class Distributed:
    """Process-group facts for data-parallel training (world_size 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast_module(self, module: nn.Module) -> None:
        """Every rank starts from rank 0's parameters and buffers."""
        if self.active:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """All-reduce the gradients (one flat buffer) and divide by the number of processes."""
        grads = [p.grad for p in params if p.grad is not None]
        if not self.active or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a collective when distributed: ranks
        that stop on a clock stop at the same step)."""
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def gather_generator_states(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Every rank's sampling-generator state, so a resumed DDP run continues exactly (a
        collective: every rank must call it)."""
        if not self.active:
            return {"sampler0": generator.get_state()}
        own = generator.get_state().to(self.device)
        states = [torch.empty_like(own) for _ in range(self.world_size)]
        dist.all_gather(states, own)
        return {f"sampler{r}": state.cpu() for r, state in enumerate(states)}


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, device)
