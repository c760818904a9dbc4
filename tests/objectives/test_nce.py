"""Noise contrastive estimation: the value function, recovery of a 1-D Gaussian's mean,
variance and log Z, the fitted noise, and the gradient reversal of flow contrastive estimation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from ebmlab.io import read_checkpoint
from ebmlab.models.neural import MLPEnergy, QuadraticEnergy
from ebmlab.objectives.nce import (
    FlowContrastiveEstimation,
    NoiseContrastiveEstimation,
    nce_value,
    reverse_gradient,
)
from ebmlab.training import TrainConfig, TrainingDiverged, train


def test_nce_value_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    lp_d, lq_d, lp_n, lq_n = (
        torch.randn(n, generator=g, dtype=torch.float64) for n in (5, 5, 15, 15)
    )
    value, accuracy = nce_value(lp_d, lq_d, lp_n, lq_n, 3.0)
    h_data = 1 / (1 + 3.0 * torch.exp(lq_d - lp_d))  # P(data | x) = p / (p + nu q)
    h_noise = 1 / (1 + 3.0 * torch.exp(lq_n - lp_n))
    expected = torch.log(h_data).mean() + 3.0 * torch.log(1 - h_noise).mean()
    assert float(value) == pytest.approx(float(expected), rel=1e-12)
    assert float(accuracy) == pytest.approx(
        float(((h_data > 0.5).sum() + (h_noise < 0.5).sum()) / 20)
    )


@pytest.mark.parametrize("inflation", [None, 1.0, 2.5, 0.4])
def test_gaussian_noise_is_fitted_to_the_data(inflation):
    g = torch.Generator().manual_seed(0)
    x = (
        torch.randn(500, 2, generator=g, dtype=torch.float64)
        @ torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64)
        + 3.0
    )
    if inflation is None:  # the default: no inflation
        objective, factor = NoiseContrastiveEstimation().double(), 1.0
    else:
        objective = NoiseContrastiveEstimation(noise_inflation=inflation).double()
        factor = inflation
    objective.setup(MLPEnergy(2).double(), x)
    cov = objective.noise_cholesky @ objective.noise_cholesky.T
    torch.testing.assert_close(objective.noise_mean, x.mean(0))
    # the noise covariance is the data covariance times the inflation factor; the 1e-4 jitter
    # keeps image covariances positive definite
    torch.testing.assert_close(
        cov, factor * torch.cov(x.T) + 1e-4 * torch.eye(2, dtype=torch.float64)
    )
    y = x[:10]
    reference = torch.distributions.MultivariateNormal(objective.noise_mean, cov).log_prob(y)
    torch.testing.assert_close(objective.log_noise(y), reference)


def test_nce_recovers_mean_variance_and_log_z_of_a_gaussian():
    # data N(1.5, 0.7^2); the model E = P (x - mu)^2 / 2 and c = log Z are estimated by NCE
    # with a fixed noise sample (the objective is then deterministic and minimized by L-BFGS)
    n, nu, mean, std = 5_000, 4.0, 1.5, 0.7
    x = mean + std * torch.randn(
        n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    model = QuadraticEnergy(1).double()
    objective = NoiseContrastiveEstimation(noise_ratio=nu).double()
    objective.setup(model, x)
    params = [*model.parameters(), objective.log_z]
    optimizer = torch.optim.LBFGS(
        params, max_iter=200, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = objective.loss(model, x, torch.Generator().manual_seed(1))[0]
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        variance = float(1 / model.precision())
        fitted_mean = float(model.mean)
        log_z = float(objective.log_z)
        true_log_z = float(model.log_partition())
    # with noise equal to the data distribution, NCE's variance is (1 + 1/nu) times the
    # Cramer-Rao bound (Gutmann & Hyvarinen 2010): standard errors of the MLE times that factor
    inflate = math.sqrt(1 + 1 / nu)
    assert abs(fitted_mean - mean) < 5 * inflate * std / math.sqrt(n)
    assert abs(variance - std**2) < 5 * inflate * std**2 * math.sqrt(2 / n)
    # log Z of N(mu, v) is log sqrt(2 pi v): self-normalization to the same accuracy
    assert abs(log_z - 0.5 * math.log(2 * math.pi * std**2)) < 5 * inflate * math.sqrt(0.5 / n)
    assert abs(log_z - true_log_z) < 5 * inflate * math.sqrt(0.5 / n)


def test_reverse_gradient_negates_only_the_backward_pass():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = reverse_gradient(x)
    torch.testing.assert_close(y, x.detach())
    (3 * y.square()).sum().backward()
    torch.testing.assert_close(x.grad, -6 * x.detach())


def test_flow_contrastive_gradients_are_descent_for_the_ebm_and_ascent_for_the_flow():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = MLPEnergy(2, hidden=16, depth=1).double()
    objective = FlowContrastiveEstimation(
        2, flow_layers=2, flow_hidden=8, flow_pretrain_steps=5
    ).double()
    objective.setup(model, x)
    with torch.no_grad():  # a non-trivial flow
        for p in objective.flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    loss, _ = objective.loss(model, x, torch.Generator().manual_seed(5))
    ebm_params, flow_params = list(model.parameters()), list(objective.flow.parameters())
    got = torch.autograd.grad(loss, ebm_params + flow_params)

    # the same value without reversal, from the same noise draw
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y, inverse_ladj = objective.flow.inverse(z)
    log_q_noise = -0.5 * z.square().sum(-1) - math.log(2 * math.pi) - inverse_ladj
    value, _ = nce_value(
        -model.energy(x) - objective.log_z,
        objective.flow.log_prob(x),
        -model.energy(y) - objective.log_z,
        log_q_noise,
        1.0,
    )
    want = torch.autograd.grad(value, ebm_params + flow_params)
    n_ebm = len(ebm_params)
    for a, b in zip(got[:n_ebm], want[:n_ebm]):
        torch.testing.assert_close(a, -b)  # the EBM descends -V
    for a, b in zip(got[n_ebm:], want[n_ebm:]):
        torch.testing.assert_close(a, b)  # the flow descends +V
    groups = objective.param_groups(model, 1e-3, 0.1)
    assert groups[2]["lr"] == pytest.approx(1e-3 * objective.flow_lr_ratio)
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in flow_params}


def test_flow_pretraining_fits_the_data():
    x = 0.5 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)) + 2.0
    objective = FlowContrastiveEstimation(2, flow_layers=2, flow_hidden=16, flow_pretrain_steps=100)
    objective.setup(MLPEnergy(2), x)
    with torch.no_grad():
        nll = float(-objective.flow.log_prob(x).mean())
    entropy = math.log(2 * math.pi * math.e * 0.25)  # of N(2, 0.25 I) in 2-D
    # the standardization alone fits this Gaussian; training must not spoil it
    assert abs(nll - entropy) < 0.05


def test_divergence_is_reported_with_its_step(tmp_path):
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = MLPEnergy(2, hidden=16, depth=1)
    # a bound the energies cross after a few large steps
    objective = NoiseContrastiveEstimation(energy_bound=5.0)
    config = TrainConfig(epochs=50, batch_size=64, lr=0.05, progress=False, seed=0)
    with pytest.raises(TrainingDiverged) as caught:
        train(model, objective, x, config, tmp_path)
    assert caught.value.step == int(objective.steps_done) + 1 > 1
    assert "energy" in caught.value.quantity
    assert f"step {caught.value.step}" in str(caught.value)
    # the checkpoint on disk is the last good one: written at an epoch end before the step
    document, _ = read_checkpoint(tmp_path / "checkpoint.safetensors")
    saved_step = document["meta"]["train_state"]["step"]
    assert 0 < saved_step < caught.value.step
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "diverged" and records[-1]["step"] == caught.value.step


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="noise_ratio"):
        NoiseContrastiveEstimation(noise_ratio=0)
    with pytest.raises(ValueError, match="flow_lr_ratio"):
        FlowContrastiveEstimation(2, flow_lr_ratio=-1)
    with pytest.raises(RuntimeError, match="setup"):
        NoiseContrastiveEstimation().sample_noise(3, None)
    assert F.logsigmoid(torch.tensor(0.0)) < 0  # keeps the import honest
