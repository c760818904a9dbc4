"""Score matching: every loss equals its closed form for a Gaussian energy
E(x) = 1/2 (x - mu)^T P (x - mu), whose score is s(x) = -P (x - mu):

  exact SM   J = mean_x 1/2 |P (x - mu)|^2 - tr P                       (deterministic)
  SSM        E_v[...] = J for Rademacher and Gaussian v, with and without variance reduction
  DSM        E_z 1/2 |s(x + sigma z) + z / sigma|^2 = mean_x 1/2 |P(x - mu)|^2
             + 1/2 tr((I / sigma - sigma P)^2)
  NCSN       for the exact smoothed energy |x - mu|^2 / (2 (s^2 + sigma^2)),
             E_z 1/2 |sigma s + z|^2 = 1/2 (sigma^2 |x - mu|^2 / tau^2 + D (1 - sigma^2/tau)^2)

Stochastic losses are averaged over independent repeats and compared with a tolerance of five
standard errors of that average.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from ebmlab.models.neural import MLPEnergy, QuadraticEnergy, annealed_langevin, geometric_sigmas
from ebmlab.objectives.score_matching import (
    DenoisingScoreMatching,
    ExactScoreMatching,
    NoiseAugmentedScoreMatching,
    NoiseConditionalScoreMatching,
    SlicedScoreMatching,
    energy_and_score,
    hessian_trace_of_energy,
)

DIM = 3


def _gaussian_energy(seed: int = 0) -> QuadraticEnergy:
    g = torch.Generator().manual_seed(seed)
    model = QuadraticEnergy(DIM).double()
    with torch.no_grad():
        model.mean.copy_(torch.randn(DIM, generator=g, dtype=torch.float64))
        model.lower.copy_(0.5 * torch.randn(DIM, DIM, generator=g, dtype=torch.float64))
        model.raw_diag.copy_(torch.randn(DIM, generator=g, dtype=torch.float64))
    return model


def _data(n: int = 40, seed: int = 1) -> torch.Tensor:
    return 1.5 * torch.randn(
        n, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _exact_sm(model: QuadraticEnergy, x: torch.Tensor) -> float:
    with torch.no_grad():
        precision = model.precision()
        score = (x - model.mean) @ precision
        return float(0.5 * score.square().sum(-1).mean() - torch.trace(precision))


def _repeated(
    objective: nn.Module, model: nn.Module, x: torch.Tensor, repeats: int
) -> tuple[float, float]:
    values = torch.tensor(
        [
            float(objective.loss(model, x, torch.Generator().manual_seed(r))[0].detach())
            for r in range(repeats)
        ],
        dtype=torch.float64,
    )
    return float(values.mean()), float(values.std() / math.sqrt(repeats))


def test_exact_score_matching_equals_closed_form():
    model, x = _gaussian_energy(), _data()
    loss, _ = ExactScoreMatching().loss(model, x, torch.Generator())
    assert float(loss.detach()) == pytest.approx(_exact_sm(model, x), rel=1e-10, abs=1e-10)


def test_hessian_trace_matches_autograd_hessian_of_an_mlp():
    torch.manual_seed(0)
    model = MLPEnergy(DIM, hidden=16, depth=2, activation="softplus").double()
    x = _data(5)
    x_leaf, _, score = energy_and_score(model, x)
    trace = hessian_trace_of_energy(x_leaf, score).detach()
    for i in range(x.shape[0]):
        hessian = torch.autograd.functional.hessian(lambda row: model.energy(row[None]).sum(), x[i])
        assert float(trace[i]) == pytest.approx(-float(torch.trace(hessian)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_sliced_score_matching_expectation_equals_exact(projection, variance_reduction):
    model, x = _gaussian_energy(), _data()
    objective = SlicedScoreMatching(
        n_projections=4, projection=projection, variance_reduction=variance_reduction
    )
    mean, se = _repeated(objective, model, x, repeats=200)
    assert abs(mean - _exact_sm(model, x)) < 5 * se


def test_sliced_rademacher_is_exact_for_a_diagonal_precision():
    # v^T P v = tr P for every Rademacher v when P is diagonal: no sampling error at all
    model, x = _gaussian_energy(), _data()
    with torch.no_grad():
        model.lower.zero_()
    loss, _ = SlicedScoreMatching(projection="rademacher").loss(
        model, x, torch.Generator().manual_seed(0)
    )
    assert float(loss.detach()) == pytest.approx(_exact_sm(model, x), rel=1e-10)


def _dsm_closed_form(model: QuadraticEnergy, x: torch.Tensor, sigma: float) -> float:
    """E_z 1/2 |s(x + sigma z) + z / sigma|^2 for the Gaussian energy: s(x + sigma z) + z / sigma
    = -P (x - mu) + (I / sigma - sigma P) z, whose mean square is the sum of the two parts."""
    with torch.no_grad():
        precision = model.precision()
        residual = (x - model.mean) @ precision
        noise_part = torch.eye(DIM, dtype=torch.float64) / sigma - sigma * precision
        return float(
            0.5 * residual.square().sum(-1).mean() + 0.5 * torch.trace(noise_part @ noise_part)
        )


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_denoising_score_matching_equals_closed_form(sigma):
    model, x = _gaussian_energy(), _data()
    expected = _dsm_closed_form(model, x, sigma)
    mean, se = _repeated(DenoisingScoreMatching(sigma=sigma), model, x, repeats=300)
    assert abs(mean - expected) < 5 * se


@pytest.mark.parametrize("steps_done", [0, 5, 10])
def test_annealed_denoising_score_matching_is_weighted_by_the_level(steps_done):
    # while annealing, the level is sigma_t = sigma_start (sigma / sigma_start)^(t / K) (geometric
    # from sigma_start down to sigma over K updates) and the documented weight (sigma_t / sigma)^2
    # multiplies J_DSM at sigma_t; from step K on it is plain DSM at sigma
    sigma, sigma_start, anneal_steps = 0.3, 1.2, 10
    model, x = _gaussian_energy(), _data()
    objective = DenoisingScoreMatching(
        sigma=sigma, sigma_start=sigma_start, anneal_steps=anneal_steps
    )
    objective.steps_done.fill_(steps_done)
    level = sigma_start * (sigma / sigma_start) ** (steps_done / anneal_steps)
    expected = (level / sigma) ** 2 * _dsm_closed_form(model, x, level)
    _, metrics = objective.loss(model, x, torch.Generator().manual_seed(0))
    assert metrics["sigma"] == pytest.approx(level, rel=1e-12)
    mean, se = _repeated(objective, model, x, repeats=300)
    assert abs(mean - expected) < 5 * se


class SmoothedGaussian(nn.Module):
    """The exact noise-conditional energy of N(mu, s^2 I) data smoothed by N(0, sigma^2 I)."""

    noise_conditional = True

    def __init__(self, mu: torch.Tensor, s: float, sigmas: list[float]) -> None:
        super().__init__()
        self.mu, self.s = mu, s
        self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float64))

    def energy(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        sigma = self.sigmas[-1] if sigma is None else torch.as_tensor(sigma, dtype=x.dtype)
        tau = self.s**2 + sigma**2
        return 0.5 * (x - self.mu).square().sum(-1) / tau


def test_noise_conditional_loss_equals_closed_form():
    sigmas = geometric_sigmas(2.0, 0.1, 5)
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    model, x = SmoothedGaussian(mu, 0.7, sigmas), _data()
    sq = (x - mu).square().sum(-1)
    expected = 0.0
    for sigma in sigmas:  # levels are drawn uniformly
        tau = 0.7**2 + sigma**2
        expected += float(0.5 * (sigma**2 * sq / tau**2 + DIM * (1 - sigma**2 / tau) ** 2).mean())
    expected /= len(sigmas)
    mean, se = _repeated(NoiseConditionalScoreMatching(), model, x, repeats=300)
    assert abs(mean - expected) < 5 * se


def test_noise_conditional_objective_needs_a_noise_ladder():
    with pytest.raises(ValueError, match="noise ladder"):
        NoiseConditionalScoreMatching().setup(MLPEnergy(2), torch.zeros(4, 2))


def test_geometric_sigmas():
    ladder = geometric_sigmas(1.0, 0.01, 5)
    assert ladder[0] == pytest.approx(1.0) and ladder[-1] == pytest.approx(0.01)
    ratios = [a / b for a, b in itertools.pairwise(ladder)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-12)
    with pytest.raises(ValueError, match="sigma_min"):
        geometric_sigmas(0.1, 1.0, 5)


def test_exact_score_matching_recovers_gaussian_parameters():
    # for Gaussian data the score-matching estimator is the sample mean and inverse covariance
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g) @ torch.tensor([[1.0, 0.0], [0.6, 0.5]]) + 1.0
    model = QuadraticEnergy(2)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    objective = ExactScoreMatching()

    def closure():
        optimizer.zero_grad()
        loss = objective.loss(model, x, g)[0]
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        torch.testing.assert_close(model.mean, x.mean(0), atol=1e-3, rtol=0)
        torch.testing.assert_close(
            torch.linalg.inv(model.precision()), torch.cov(x.T, correction=0), atol=1e-3, rtol=0
        )


def test_annealed_langevin_samples_the_smoothed_gaussian():
    mu = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    sigmas = geometric_sigmas(1.0, 0.05, 5)
    model = SmoothedGaussian(mu, 0.5, sigmas)
    x0 = 3 * torch.rand(4000, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = annealed_langevin(
        model.energy, x0, sigmas, 200, 1e-3, torch.Generator().manual_seed(1), denoise=False
    )
    # target at the last level: N(mu, (0.5^2 + 0.05^2) I); the ULA bias of the last level is
    # a variance factor 1 / (1 - eps / (2 tau)) = 1.002 and the earlier levels are forgotten
    variance = 0.5**2 + 0.05**2
    n = x.shape[0]
    assert ((x.mean(0) - mu).abs() < 5 * math.sqrt(variance / n)).all()
    assert ((x.var(0) - variance).abs() < 5 * variance * math.sqrt(2 / n) + 0.002 * variance).all()


def _annealed_gaussian_moments(
    offset: float, s: float, sigmas: list[float], n_steps_each: int, eps: float
) -> tuple[float, float]:
    """Exact mean offset m - mu and variance v of one coordinate after annealed Langevin on the
    smoothed Gaussian energy |x - mu|^2 / (2 tau_i), tau_i = s^2 + sigma_i^2, from the fixed start
    mu + offset. The documented step x <- x + alpha_i / 2 s(x) + sqrt(alpha_i) xi with
    s(x) = -(x - mu) / tau_i and alpha_i = eps sigma_i^2 / sigma_L^2 is linear-Gaussian:
    m - mu <- c (m - mu) and v <- c^2 v + alpha_i with c = 1 - alpha_i / (2 tau_i)."""
    mean, variance = offset, 0.0
    for sigma in sigmas:
        alpha = eps * sigma**2 / sigmas[-1] ** 2
        contraction = 1 - alpha / (2 * (s**2 + sigma**2))
        for _ in range(n_steps_each):
            mean, variance = contraction * mean, contraction**2 * variance + alpha
    return mean, variance


def _assert_moments(x: torch.Tensor, mean: torch.Tensor, variance: float) -> None:
    """Sample mean and variance of each coordinate within five standard errors: sqrt(v / n) and
    v sqrt(2 / (n - 1)) (the samples are exactly Gaussian)."""
    n = x.shape[0]
    assert ((x.mean(0) - mean).abs() < 5 * math.sqrt(variance / n)).all()
    assert ((x.var(0) - variance).abs() < 5 * variance * math.sqrt(2 / (n - 1))).all()


# a short ladder with two steps per level: the chain is far from stationary, so every level's
# step size shows in the moments (a schedule eps sigma_i / sigma_L gives about 40 standard errors
# away on the mean and 55 on the variance)
SHORT_SIGMAS, SHORT_S, SHORT_STEPS, SHORT_EPS = [1.0, 0.5, 0.25], 0.5, 2, 0.02
SHORT_MU = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
SHORT_OFFSET = 2.0


def _short_annealed_run(denoise: bool, n: int = 20_000) -> torch.Tensor:
    model = SmoothedGaussian(SHORT_MU, SHORT_S, SHORT_SIGMAS)
    x0 = (SHORT_MU + SHORT_OFFSET).expand(n, DIM).clone()
    return annealed_langevin(
        model.energy,
        x0,
        SHORT_SIGMAS,
        SHORT_STEPS,
        SHORT_EPS,
        torch.Generator().manual_seed(2),
        denoise=denoise,
    )


def test_annealed_langevin_follows_the_step_schedule_level_by_level():
    x = _short_annealed_run(denoise=False)
    offset, variance = _annealed_gaussian_moments(
        SHORT_OFFSET, SHORT_S, SHORT_SIGMAS, SHORT_STEPS, SHORT_EPS
    )
    _assert_moments(x, SHORT_MU + offset, variance)


def test_annealed_langevin_denoising_step_is_tweedies_posterior_mean():
    # Tweedie: for x~ = x + sigma z with x ~ N(mu, s^2 I), E[x | x~] = x~ + sigma^2 grad log q(x~)
    # = mu + s^2 / (s^2 + sigma^2) (x~ - mu); the final step applies it at sigma_L to the chain
    sigma_last = SHORT_SIGMAS[-1]
    shrink = SHORT_S**2 / (SHORT_S**2 + sigma_last**2)  # 0.8 here
    noisy = _short_annealed_run(denoise=False)
    x = _short_annealed_run(denoise=True)
    # the denoising step draws no noise: the same chains, mapped exactly
    torch.testing.assert_close(x, SHORT_MU + shrink * (noisy - SHORT_MU), rtol=1e-12, atol=1e-12)
    offset, variance = _annealed_gaussian_moments(
        SHORT_OFFSET, SHORT_S, SHORT_SIGMAS, SHORT_STEPS, SHORT_EPS
    )
    _assert_moments(x, SHORT_MU + shrink * offset, shrink**2 * variance)


def test_exact_score_matching_refuses_high_dimension():
    with pytest.raises(ValueError, match="max_dim"):
        ExactScoreMatching(max_dim=4).loss(MLPEnergy(5), torch.zeros(2, 5), torch.Generator())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="projection"):
        SlicedScoreMatching(projection="uniform")
    with pytest.raises(ValueError, match="n_projections"):
        SlicedScoreMatching(n_projections=0)
    with pytest.raises(ValueError, match="sigma"):
        DenoisingScoreMatching(sigma=0.0)


def test_noise_annealing_schedule():
    from ebmlab.objectives.score_matching import annealed_noise_level

    assert annealed_noise_level(None, 100, 5) == 0.0
    assert annealed_noise_level(1.0, 100, 0) == pytest.approx(1.0)
    assert annealed_noise_level(1.0, 100, 50) == pytest.approx(0.1)  # geometric to 1% of start
    assert annealed_noise_level(1.0, 100, 100) == 0.0  # then plain score matching
    assert annealed_noise_level(1.0, 100, 50, sigma_end=0.04) == pytest.approx(0.2)
    assert annealed_noise_level(1.0, 100, 500, sigma_end=0.04) == pytest.approx(0.04)


def test_annealed_score_matching_scores_the_smoothed_data():
    # exact SM of the Gaussian energy on data perturbed by N(0, s^2): in expectation the closed
    # form with the data covariance increased by s^2 I, i.e. + 1/2 s^2 |P|_F^2
    model, x = _gaussian_energy(), _data()
    objective = ExactScoreMatching(sigma_start=0.5, anneal_steps=10)
    with torch.no_grad():
        frobenius = float(model.precision().square().sum())
    mean, se = _repeated(objective, model, x, repeats=300)
    assert abs(mean - (_exact_sm(model, x) + 0.5 * 0.25 * frobenius)) < 5 * se
    objective.steps_done.fill_(10)  # annealing over: exact again
    loss, _ = objective.loss(model, x, torch.Generator())
    assert float(loss.detach()) == pytest.approx(_exact_sm(model, x), rel=1e-10)


class SeparableAugmentedEnergy(nn.Module):
    """g(x, u) = a/2 |x - mu|^2 + b/2 (u - m)^2 + c u with u = log sigma: a joint energy on the
    augmented space whose score-matching loss has a closed form under log-normal sigma."""

    noise_conditional = True
    noise_scaling = "none"

    def __init__(self, a: float, b: float, c: float, m: float, mu: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b, self.c, self.m, self.mu = a, b, c, m, mu
        self.register_buffer("sigmas", torch.tensor([0.1], dtype=torch.float64))

    def energy(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        u = torch.log(sigma)
        return (
            0.5 * self.a * (x - self.mu).square().sum(-1)
            + 0.5 * self.b * (u - self.m).square()
            + self.c * u
        )


def test_noise_augmented_loss_equals_closed_form():
    a, b, c, m = 0.8, 1.3, -0.4, -1.0
    mean_u, std_u = math.log(0.3), 0.5
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    model, x = SeparableAugmentedEnergy(a, b, c, m, mu), _data()
    # x~ = x + e^u z with u ~ N(mean_u, std_u^2): E|x~ - mu|^2 = mean |x - mu|^2 + D E[e^{2u}]
    spread = float((x - mu).square().sum(-1).mean()) + DIM * math.exp(2 * mean_u + 2 * std_u**2)
    du = b * (mean_u - m) + c  # E[d g / d u] = b (E u - m) + c
    expected = 0.5 * a**2 * spread + 0.5 * (du**2 + b**2 * std_u**2) - (a * DIM + b)
    objective = NoiseAugmentedScoreMatching(log_sigma_mean=mean_u, log_sigma_std=std_u)
    objective.setup(model, x)
    mean, se = _repeated(objective, model, x, repeats=300)
    assert abs(mean - expected) < 5 * se


def test_noise_augmented_score_matching_checks_its_model():
    with pytest.raises(ValueError, match="noise_scaling='none'"):
        NoiseAugmentedScoreMatching().setup(MLPEnergy(2), torch.zeros(4, 2))
    ncsn_style = MLPEnergy(2, sigmas=[1.0, 0.1])
    with pytest.raises(ValueError, match="noise_scaling='none'"):
        NoiseAugmentedScoreMatching().setup(ncsn_style, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="log_sigma_std"):
        NoiseAugmentedScoreMatching(log_sigma_std=0.0)
    with pytest.raises(ValueError, match="noise_scaling"):
        MLPEnergy(2, sigmas=[0.1], noise_scaling="sqrt")
    augmented = MLPEnergy(2, sigmas=[0.5, 0.02], noise_scaling="none").double()
    x = torch.randn(5, 2, dtype=torch.float64)
    # "none": E(x, sigma) is the network itself, not divided by sigma
    assert torch.allclose(
        augmented.energy(x, 0.5), augmented.network(x, torch.full((5,), math.log(0.5)).double())
    )
