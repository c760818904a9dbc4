"""The L2 energy penalty of contrastive divergence with Langevin negatives (Du & Mordatch 2019):
with alpha > 0 the loss is

    mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2),

the negatives x- detached, so its parameter gradient is that of this expression computed by
autograd on the same negatives (recorded as the objective draws them)."""

from __future__ import annotations

import pytest
import torch

from ebmlab.models.neural import MLPEnergy
from ebmlab.objectives.contrastive_langevin import ContrastiveLangevin


def _recording(objective: ContrastiveLangevin) -> list[torch.Tensor]:
    """Wrap ``objective.negatives`` so that every draw is kept (the same tensors the loss uses)."""
    drawn: list[torch.Tensor] = []
    draw = objective.negatives

    def negatives(*args, **kwargs):
        x_neg = draw(*args, **kwargs)
        drawn.append(x_neg)
        return x_neg

    objective.negatives = negatives
    return drawn


@pytest.mark.parametrize("chains", ["noise", "buffer"])
@pytest.mark.parametrize("alpha", [0.3, 2.0])
def test_l2_energy_penalty_adds_both_phases(chains, alpha):
    torch.manual_seed(0)
    model = MLPEnergy(2, hidden=16, depth=2).double()
    with torch.no_grad():  # energies well away from 0, so that both squares weigh in
        model.net[-1].bias.add_(1.5)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    objective = ContrastiveLangevin(n_steps=3, chains=chains, buffer_size=200, alpha=alpha)
    objective.setup(model, x)
    drawn = _recording(objective)
    loss, metrics = objective.loss(model, x, torch.Generator().manual_seed(3))
    params = list(model.parameters())
    got = torch.autograd.grad(loss, params)

    assert len(drawn) == 1
    x_neg = drawn[0]
    assert not x_neg.requires_grad and x_neg.shape == x.shape
    energy_pos, energy_neg = model.energy(x), model.energy(x_neg)
    negative_penalty = alpha * energy_neg.square().mean()
    assert float(negative_penalty.detach()) > 0.1  # the test is not vacuous: this term is not small
    want_loss = (
        energy_pos.mean()
        - energy_neg.mean()
        + alpha * energy_pos.square().mean()
        + negative_penalty
    )
    assert float(loss.detach()) == pytest.approx(float(want_loss.detach()), rel=1e-12, abs=1e-12)
    want = torch.autograd.grad(want_loss, params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the metrics report the two phases without the penalty
    assert metrics["energy_data"] == pytest.approx(float(energy_pos.detach().mean()), rel=1e-12)
    assert metrics["energy_samples"] == pytest.approx(float(energy_neg.detach().mean()), rel=1e-12)
    assert metrics["contrast"] == pytest.approx(
        float((energy_pos.mean() - energy_neg.mean()).detach()), rel=1e-12, abs=1e-12
    )
