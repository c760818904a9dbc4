"""Targets that supply their own gradient (``EnergyWithGradient``): the gradient-based kernels use
it instead of autograd, tempered targets scale it, the same chains come out as with autograd, and
a gradient of the wrong shape is refused by name."""

from __future__ import annotations

import pytest
import torch

from ebmlab.samplers import HMC, MALA, Langevin, Target, sample
from ebmlab.samplers.base import autograd_energy_and_grad, energy_and_grad


class Quartic:
    """E(x) = sum_i x_i^4 / 4 - x_i^2 / 2 (a double well per coordinate), dE/dx = x^3 - x."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.pow(4) / 4 - x.square() / 2).sum(-1)

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self(x), x.pow(3) - x


def test_the_supplied_gradient_is_used_and_equals_autograd():
    energy = Quartic()
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e, g = energy_and_grad(energy, x)
    assert energy.calls == 1 and not g.requires_grad
    e_auto, g_auto = autograd_energy_and_grad(energy, x)
    torch.testing.assert_close(e, e_auto)
    torch.testing.assert_close(g, g_auto)


@pytest.mark.parametrize("beta", [1.0, 0.3, "per-chain"])
def test_a_tempered_target_scales_the_supplied_gradient(beta):
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if beta == "per-chain":
        beta = torch.linspace(0.1, 1.0, 8, dtype=torch.float64)
    energy = Quartic()
    target = Target(energy, beta)
    e, g = energy_and_grad(target, x)
    assert energy.calls == 1
    e_auto, g_auto = autograd_energy_and_grad(target, x)
    torch.testing.assert_close(e, e_auto)
    torch.testing.assert_close(g, g_auto)


@pytest.mark.parametrize("kernel", [Langevin(0.05), MALA(0.05), HMC(0.1, 3)])
def test_the_chains_equal_those_driven_by_autograd(kernel):
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    energy = Quartic()

    def run(target):
        return sample(kernel, target, x0, 20, seed=3, progress=False, diagnostics=False).samples

    closed = run(energy)
    assert energy.calls > 0
    autograd = run(lambda x: (x.pow(4) / 4 - x.square() / 2).sum(-1))
    torch.testing.assert_close(closed, autograd)


def test_a_gradient_of_the_wrong_shape_is_refused():
    class Bad(Quartic):
        def energy_and_grad(self, x):
            return self(x), x[:, :1]

    with pytest.raises(ValueError, match="energy_and_grad: expected a gradient"):
        energy_and_grad(Bad(), torch.zeros(4, 2))
