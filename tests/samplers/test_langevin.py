"""Langevin moves: the device-side rejection of non-finite states (graph-safe)."""

from __future__ import annotations

import torch


def test_the_device_side_rejection_moves_like_the_host_check() -> None:
    from ebmlab.samplers.langevin import langevin_move

    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    grad = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    grad[5, 1] = float("inf")  # row 5 moves to a non-finite state and must stay where it was
    host, _ = langevin_move(x, grad, 0.1, 0.3, torch.Generator().manual_seed(2))
    device, _ = langevin_move(x, grad, 0.1, 0.3, torch.Generator().manual_seed(2), False)
    torch.testing.assert_close(device, host)
    torch.testing.assert_close(device[5], x[5])
