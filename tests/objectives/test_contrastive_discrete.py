"""Persistent CD on binary data with the gradient-informed discrete kernels."""

from __future__ import annotations

import pytest
import torch

from ebmlab import models
from ebmlab.estimators import base_rate_bias, exact_log_probs, exact_sample
from ebmlab.estimators.binary_energy import BinaryEnergy
from ebmlab.objectives.contrastive_discrete import ContrastiveDiscrete, make_discrete_kernel
from ebmlab.samplers import DiscreteLangevin, GibbsWithGradients
from ebmlab.training import TrainConfig, train

D = 6


def teacher_data(n: int = 2000) -> torch.Tensor:
    """Exact samples of a strongly coupled 6-bit Boltzmann machine (pairs of units agree)."""
    W = torch.zeros(D, D)
    for i in range(0, D, 2):
        W[i, i + 1] = W[i + 1, i] = 3.0

    class Teacher(torch.nn.Module):
        spin_values = (0.0, 1.0)
        n_units = D

        def energy(self, x: torch.Tensor) -> torch.Tensor:
            return -0.5 * ((x @ W.to(x.dtype)) * x).sum(-1) + 1.5 * x.sum(-1)

    teacher = Teacher()
    return exact_sample(teacher, n, torch.Generator().manual_seed(0)).float(), teacher


def kl_to(teacher, model) -> float:
    """KL(teacher || model) by enumeration of the 64 states."""
    log_p, log_q = exact_log_probs(teacher), exact_log_probs(BinaryEnergy(model))
    return float((log_p.exp() * (log_p - log_q)).sum())


def energy_model() -> models.MLPEnergy:
    model = models.MLPEnergy(D, hidden=16, depth=1, activation="softplus", bernoulli_base=True)
    torch.manual_seed(0)
    return model


@pytest.mark.parametrize("sampler", ["dmala", "gwg"])
def test_pcd_learns_a_coupled_distribution(sampler):
    """The model starts at the data marginals (its base) and must learn the couplings: the KL to
    the teacher falls well below that of the independent model."""
    x, teacher = teacher_data()
    model = energy_model()
    with torch.no_grad():
        model.base_logits.copy_(base_rate_bias(x))
    start_kl = kl_to(teacher, model)
    objective = ContrastiveDiscrete(
        sampler=sampler, n_steps=5, step_size=1.0, chains="persistent", seed=1
    )
    config = TrainConfig(
        epochs=15, batch_size=100, lr=1e-2, optimizer="adam", seed=0, progress=False
    )
    train(model, objective, x, config)
    assert kl_to(teacher, model) < 0.3 * start_kl, (kl_to(teacher, model), start_kl)
    assert 0.0 < objective.last_accept <= 1.0


def test_buffer_starts_at_the_data_marginals_and_moves():
    x, _ = teacher_data()
    objective = ContrastiveDiscrete(sampler="dmala", buffer_size=4000, seed=2)
    model = energy_model()
    objective.setup(model, x)
    assert objective.buffer.shape == (4000, D)
    assert set(objective.buffer.unique().tolist()) <= {0.0, 1.0}
    expected = torch.sigmoid(base_rate_bias(x)).float()
    assert torch.allclose(objective.buffer.mean(0), expected, atol=0.03)
    before = objective.buffer.clone()
    loss, metrics = objective.loss(model, x[:100], torch.Generator().manual_seed(3))
    assert torch.isfinite(loss) and {"energy_data", "accept_rate"} <= set(metrics)
    assert (objective.buffer != before).any()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_kernels_and_bad_arguments():
    assert isinstance(make_discrete_kernel("gwg", 0.2, n_flips=2), GibbsWithGradients)
    assert make_discrete_kernel("dula", 0.1).adjusted is False
    assert isinstance(make_discrete_kernel("dmala", 0.3), DiscreteLangevin)
    with pytest.raises(ValueError, match="sampler"):
        ContrastiveDiscrete(sampler="hmc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step_size"):
        ContrastiveDiscrete(step_size=0.0)
    with pytest.raises(ValueError, match="binary"):
        ContrastiveDiscrete().setup(energy_model(), torch.full((10, D), 0.5))
    with pytest.raises(RuntimeError, match="setup"):
        ContrastiveDiscrete().noise(3, None)
