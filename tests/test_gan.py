"""GAN: the objective's closed forms (optimal discriminator, log 4 - 2 JSD), the split of the
gradient between the players, and a small GAN that learns a 1-D Gaussian."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from ebmlab.models.gan import GAN
from ebmlab.objectives.gan import (
    GANObjective,
    discriminator_loss,
    generator_loss,
    jsd_lower_bound,
    optimal_logit,
)
from ebmlab.train import TrainConfig, train


def _normal_log_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def test_discriminator_loss_at_the_optimum_is_log4_minus_twice_the_jsd():
    # p = N(0, 1), q = N(1, 1.5^2), integrals by the trapezoid rule on a fine grid
    x = torch.linspace(-12.0, 14.0, 200_001, dtype=torch.float64)
    log_p, log_q = _normal_log_pdf(x, 0.0, 1.0), _normal_log_pdf(x, 1.0, 1.5)
    p, q = log_p.exp(), log_q.exp()
    logit = optimal_logit(log_p, log_q)
    loss = float(torch.trapezoid(p * F.softplus(-logit) + q * F.softplus(logit), x))
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    jsd = 0.5 * float(torch.trapezoid(p * (log_p - log_m) + q * (log_q - log_m), x))
    assert loss == pytest.approx(math.log(4.0) - 2 * jsd, abs=1e-9)
    assert jsd_lower_bound(loss) == pytest.approx(jsd, abs=1e-9)
    # the objective's Monte Carlo form agrees within its standard error
    g = torch.Generator().manual_seed(0)
    xp = torch.randn(200_000, generator=g, dtype=torch.float64)
    xq = 1.0 + 1.5 * torch.randn(200_000, generator=g, dtype=torch.float64)
    logit_p = optimal_logit(_normal_log_pdf(xp, 0, 1), _normal_log_pdf(xp, 1, 1.5))
    logit_q = optimal_logit(_normal_log_pdf(xq, 0, 1), _normal_log_pdf(xq, 1, 1.5))
    estimate = float(discriminator_loss(logit_p, logit_q))
    se = math.sqrt(float(F.softplus(-logit_p).var() + F.softplus(logit_q).var()) / 200_000)
    assert abs(estimate - loss) < 5 * se


def test_generator_losses_are_the_two_forms_of_goodfellow_et_al():
    logits = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    d = torch.sigmoid(logits)
    assert float(generator_loss(logits)) == pytest.approx(float(-torch.log(d).mean()))
    assert float(generator_loss(logits, "minimax")) == pytest.approx(float(torch.log(1 - d).mean()))
    with pytest.raises(ValueError, match="kind"):
        generator_loss(logits, "wasserstein")


def test_each_player_gets_the_gradient_of_its_own_loss():
    gan = GAN(3, latent_dim=2, hidden=8, depth=1, output="identity", batch_norm=False, seed=0)
    gan = gan.double()
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    objective = GANObjective()
    objective.setup(gan, x)
    loss, _ = objective.loss(gan, x, torch.Generator().manual_seed(2))
    loss.backward()
    got = {n: p.grad.clone() for n, p in gan.named_parameters()}
    # by hand with the same latents: D from L_D on detached samples, G from L_G through D
    z = gan.sample_latent(16, torch.Generator().manual_seed(2))
    gan.zero_grad()
    fake = gan.generate(z)
    d_loss = discriminator_loss(gan.discriminate(x), gan.discriminate(fake.detach()))
    d_params = dict(gan.discriminator.named_parameters())
    d_grads = torch.autograd.grad(d_loss, list(d_params.values()))
    g_params = dict(gan.generator.named_parameters())
    g_grads = torch.autograd.grad(generator_loss(gan.discriminate(fake)), list(g_params.values()))
    for (name, _), grad in zip(d_params.items(), d_grads, strict=True):
        torch.testing.assert_close(got[f"discriminator.{name}"], grad)
    for (name, _), grad in zip(g_params.items(), g_grads, strict=True):
        torch.testing.assert_close(got[f"generator.{name}"], grad)


def test_a_trained_discriminator_approaches_the_optimal_one():
    torch.manual_seed(0)
    gan = GAN(1, latent_dim=1, hidden=32, depth=2, output="identity", batch_norm=False, seed=0)
    optimizer = torch.optim.Adam(gan.discriminator.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)
    for _ in range(1500):
        real = torch.randn(256, 1, generator=g)
        fake = 1.0 + 1.5 * torch.randn(256, 1, generator=g)
        optimizer.zero_grad()
        discriminator_loss(gan.discriminate(real), gan.discriminate(fake)).backward()
        optimizer.step()
    x = torch.linspace(-1.5, 2.0, 15).unsqueeze(1)
    with torch.no_grad():
        learned = torch.sigmoid(gan.discriminate(x))
    best = torch.sigmoid(optimal_logit(_normal_log_pdf(x, 0, 1), _normal_log_pdf(x, 1, 1.5)))
    # D* ranges over [0.25, 0.6] here; minibatch noise leaves the fit within a few hundredths
    assert float((learned - best.squeeze(1)).abs().max()) < 0.06


def _w1_to_normal(samples: torch.Tensor, mean: float, std: float) -> float:
    """1-D Wasserstein-1 distance to N(mean, std^2): mean |sorted sample - normal quantile|."""
    n = samples.numel()
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    quantiles = mean + std * math.sqrt(2) * torch.erfinv(2 * levels - 1)
    return float((samples.sort().values.double() - quantiles).abs().mean())


def test_a_small_gan_moves_its_samples_onto_a_gaussian():
    # GAN training oscillates (seeds 0-3 end with means 1.87-2.15 and stds 0.24-0.76 here), so
    # the test asks for what every seed achieves: samples 5x closer to the target than at the
    # start in Wasserstein-1, the mean and standard deviation within 0.3
    target_mean, target_std = 2.0, 0.5
    x = target_mean + target_std * torch.randn(4096, 1, generator=torch.Generator().manual_seed(0))
    gan = GAN(1, latent_dim=1, hidden=16, depth=1, output="identity", batch_norm=False, seed=0)
    before = gan.sample(20_000, generator=torch.Generator().manual_seed(1)).squeeze(1)
    config = TrainConfig(epochs=60, batch_size=256, lr=2e-3, schedule="cosine", progress=False)
    train(gan, GANObjective(), x, config)
    samples = gan.sample(20_000, generator=torch.Generator().manual_seed(1)).squeeze(1)
    assert _w1_to_normal(samples, target_mean, target_std) < 0.2 * _w1_to_normal(
        before, target_mean, target_std
    )
    assert abs(float(samples.mean()) - target_mean) < 0.3
    assert abs(float(samples.std()) - target_std) < 0.3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="generator_loss"):
        GANObjective(generator_loss="hinge")
    with pytest.raises(ValueError, match="generator_lr_ratio"):
        GANObjective(generator_lr_ratio=0.0)
    with pytest.raises(ValueError, match="d_steps"):
        GANObjective(d_steps=-1)
    with pytest.raises(ValueError, match="x"):
        GAN(3, latent_dim=2).discriminate(torch.zeros(4, 5))
