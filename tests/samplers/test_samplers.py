"""Sampler kernels and the runner: elementary samplers, Langevin family, HMC, MH, Gibbs,
tempering, adaptation, NaN handling and bad input.

Statistical tests use fixed seeds and tolerances of 5 standard errors, with the effective sample
size (ebmlab.samplers.effective_sample_size) in place of the number of draws for MCMC output.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from sampler_targets import (
    COV,
    MEAN,
    PRECISION,
    TinyBoltzmann,
    all_states,
    assert_moments,
    chi_square_p,
    exact_probs,
    gaussian_energy,
    start_states,
    state_index,
    tiny_rbm,
    ula_stationary_cov,
)

from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.samplers import (
    HMC,
    MALA,
    SGLD,
    Gibbs,
    Langevin,
    MetropolisHastings,
    MinibatchGradient,
    ParallelTempering,
    SimulatedAnnealing,
    SweepTarget,
    Target,
    bernoulli_draw,
    box_muller,
    cooling_steps,
    effective_sample_size,
    effective_sample_size_weights,
    gaussian,
    geometric_betas,
    geometric_ladder,
    geometric_schedule,
    importance_sampling,
    inverse_cdf_categorical,
    langevin_chain,
    linear_ladder,
    make_generator,
    replica_exchange,
    sample,
)
from ebmlab.samplers.protocols import (
    BipartiteGibbs,
    BlockSweep,
    SiteConditionals,
    TemperedFreeEnergy,
)
from ebmlab.samplers.tempering import linear_swap_log_ratio, swap_pairs

MIX_W = torch.tensor([0.3, 0.7])
MIX_MU = torch.tensor([[-1.5, 0.0], [1.5, 0.5]])
MIX_COV = torch.stack([0.5 * torch.eye(2), torch.tensor([[0.6, 0.2], [0.2, 0.4]])])
MIX_PREC = torch.linalg.inv(MIX_COV)


def mixture_energy(x: torch.Tensor) -> torch.Tensor:
    d = x[:, None, :] - MIX_MU  # (n, 2, 2)
    quad = torch.einsum("nki,kij,nkj->nk", d, MIX_PREC, d)
    log_norm = -0.5 * torch.logdet(MIX_COV) - math.log(2 * math.pi)
    return -torch.logsumexp(torch.log(MIX_W) + log_norm - 0.5 * quad, dim=1)


def mixture_moments() -> tuple[torch.Tensor, torch.Tensor]:
    mean = (MIX_W[:, None] * MIX_MU).sum(0)
    second = (MIX_W[:, None, None] * (MIX_COV + MIX_MU[:, :, None] * MIX_MU[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


# ----- elementary samplers -----------------------------------------------------------------------
def test_bernoulli_draw_is_rand_below_p_on_the_same_stream():
    # the one Bernoulli draw: u < p with u = torch.rand on the caller's generator, in p's dtype
    for dtype in (torch.float32, torch.float64):
        p = torch.rand(50, 7, generator=torch.Generator().manual_seed(1), dtype=dtype)
        draws = bernoulli_draw(p, torch.Generator().manual_seed(2))
        expected = torch.rand(p.shape, generator=torch.Generator().manual_seed(2), dtype=dtype) < p
        assert draws.dtype == dtype and torch.equal(draws, expected.to(dtype))
    edge = torch.tensor([0.0, 1.0, -0.5, 1.5, float("nan")]).expand(1000, -1)
    assert bernoulli_draw(edge, torch.Generator().manual_seed(0)).mean(0).tolist() == [
        0.0,
        1.0,
        0.0,
        1.0,
        0.0,
    ]


def test_bernoulli_draw_frequencies():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).expand(40000, -1)
    freq = bernoulli_draw(p, torch.Generator().manual_seed(0)).mean(0)
    se = (p[0] * (1 - p[0]) / 40000).sqrt()
    assert ((freq - p[0]).abs() <= 5 * se + 1e-12).all()


def test_make_generator():
    g = torch.Generator().manual_seed(3)
    assert make_generator(g, "cpu") is g
    a, b = make_generator(5, "cpu"), make_generator(5, "cpu")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert make_generator(None, "cpu").initial_seed() != make_generator(None, "cpu").initial_seed()


def test_inverse_cdf_categorical_chi_square():
    probs = torch.tensor([0.1, 0.2, 0.0, 0.3, 0.4])
    draws = inverse_cdf_categorical(probs * 7.0, 50_000, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.int64 and draws.shape == (50_000,)
    counts = torch.bincount(draws, minlength=5)
    assert counts[2] == 0  # a zero-probability category is never drawn
    assert chi_square_p(counts[[0, 1, 3, 4]], probs[[0, 1, 3, 4]]) > 1e-6
    batched = inverse_cdf_categorical(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 10)
    assert (batched[0] == 0).all() and (batched[1] == 1).all()
    with pytest.raises(ValueError, match="probs"):
        inverse_cdf_categorical(torch.tensor([0.5, -0.1]), 3)


def test_box_muller_moments():
    n = 400_000
    z = box_muller(n, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert z.shape == (n,) and torch.isfinite(z).all()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float((z**3).mean())) < 5 * math.sqrt(15 / n)  # skewness, var(z^3) = 15
    assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / n)  # kurtosis, var(z^4) = 96
    # the two halves (cos and sin) are uncorrelated
    assert abs(float((z[: n // 2] * z[n // 2 :]).mean())) < 5 / math.sqrt(n / 2)
    x = gaussian(MEAN.double(), COV.double(), 100_000, torch.Generator().manual_seed(1))
    assert (x.mean(0) - MEAN.double()).abs().max() < 5 * math.sqrt(2.0 / 100_000)
    assert (torch.cov(x.T) - COV.double()).abs().max() < 5 * math.sqrt(2 * 4.0 / 100_000)


def test_importance_sampling_estimates_and_ess():
    # target N(1, 0.5^2) unnormalized, proposal N(0, 2^2)
    mu_p, s_p, s_q = 1.0, 0.5, 2.0
    n = 100_000

    def log_target(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - mu_p) / s_p) ** 2

    def proposal_log_prob(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x / s_q) ** 2 - math.log(s_q * math.sqrt(2 * math.pi))

    def proposal_sample(m: int, g: torch.Generator | None) -> torch.Tensor:
        return s_q * torch.randn(m, generator=g, dtype=torch.float64)

    result = importance_sampling(
        log_target,
        proposal_sample,
        proposal_log_prob,
        n,
        torch.Generator().manual_seed(0),
        f=lambda x: x,
    )
    # ESS fraction -> 1 / E_p[p/q] (normalized p): integrate p^2 / q on a grid
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    p = torch.exp(log_target(grid)) / (s_p * math.sqrt(2 * math.pi))
    ratio = torch.trapezoid(p**2 / torch.exp(proposal_log_prob(grid)), grid)
    assert result.ess / n == pytest.approx(1 / float(ratio), rel=0.05)
    se = s_p / math.sqrt(result.ess)
    assert abs(float(result.estimate) - mu_p) < 5 * se
    log_z = math.log(s_p * math.sqrt(2 * math.pi))
    assert abs(result.log_normalizer - log_z) < 5 / math.sqrt(result.ess)
    assert float(result.weights.sum()) == pytest.approx(1.0)


def test_importance_weight_ess_by_hand():
    assert effective_sample_size_weights(torch.zeros(7)) == pytest.approx(7.0)
    # weights 1, 1, 2: (1 + 1 + 2)^2 / (1 + 1 + 4) = 16 / 6
    assert effective_sample_size_weights(torch.log(torch.tensor([1.0, 1.0, 2.0]))) == pytest.approx(
        16 / 6
    )
    assert effective_sample_size_weights(torch.tensor([0.0, -1000.0, -1000.0])) == pytest.approx(
        1.0
    )


# ----- continuous kernels (invariance on the correlated Gaussian: test_suite.py) -------------
@pytest.mark.parametrize(
    "kernel, n_steps",
    [(MALA(step_size=0.2), 1500), (HMC(step_size=0.3, n_leapfrog=6), 400)],
    ids=["mala", "hmc"],
)
def test_exact_kernels_on_gaussian_mixture(kernel, n_steps):
    mean, cov = mixture_moments()
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(2)) * 1.5
    result = sample(kernel, mixture_energy, x0, n_steps, burn_in=300, seed=3, progress=False)
    assert_moments(result.samples, mean, cov)


def test_ula_small_step_on_gaussian_mixture():
    # ULA's bias is O(eps): relative variance error about eps * lambda_max / 2 with lambda_max
    # the largest curvature (1 / 0.31 here); allow it on top of the ESS tolerance
    eps = 0.01
    mean, cov = mixture_moments()
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(4)) * 1.5
    result = sample(
        Langevin(step_size=eps),
        mixture_energy,
        x0,
        2000,
        burn_in=500,
        thin=4,
        seed=5,
        progress=False,
    )
    assert_moments(result.samples, mean, cov, slack=eps / 0.31 * float(cov.abs().max()))


def final_states_cov(kernel: Langevin, n_chains: int, n_steps: int, seed: int) -> torch.Tensor:
    """Run independent chains from the target and return their final states (iid draws)."""
    x = start_states(n_chains, seed).double()
    g = torch.Generator().manual_seed(seed + 1)

    def energy(z: torch.Tensor) -> torch.Tensor:
        d = z - MEAN.double()
        return 0.5 * ((d @ PRECISION.double()) * d).sum(-1)

    for _ in range(n_steps):
        x, _ = kernel.step(x, energy, g)
    return x


def test_ula_bias_matches_closed_form_and_shrinks_with_step():
    n = 4000
    top = torch.linalg.eigh(PRECISION.double()).eigenvectors[:, -1]  # stiffest direction
    true_var = float(top @ COV.double() @ top)  # 1 / 5 = 0.2
    biases = []
    for step in (0.2, 0.05, 0.01):
        x = final_states_cov(Langevin(step_size=step), n, 600, seed=10)
        expected = float(top @ ula_stationary_cov(step) @ top)  # 1 / (5 (1 - 5 step / 2))
        empirical = float(((x - MEAN.double()) @ top).pow(2).mean())
        assert abs(empirical - expected) < 5 * expected * math.sqrt(2 / n)
        biases.append(empirical - true_var)
    # 0.2 -> bias 0.2 (100%), 0.05 -> 0.029, 0.01 -> 0.005: each measured bias is smaller
    assert biases[0] > biases[1] > biases[2]
    assert biases[0] > 10 * true_var * math.sqrt(2 / n)


def test_langevin_noise_scale_pair_samples_tempered_density():
    step, noise = 0.02, 0.4  # T = 0.16 / 0.04 = 4
    kernel = Langevin(step_size=step, noise_scale=noise)
    assert kernel.temperature == pytest.approx(4.0)
    assert Langevin(step_size=0.3).noise_scale == pytest.approx(math.sqrt(0.6))
    assert Langevin(step_size=0.3).temperature == pytest.approx(1.0)
    x = final_states_cov(kernel, 4000, 800, seed=20)
    expected = ula_stationary_cov(step, temperature=4.0)
    empirical = torch.cov((x - MEAN.double()).T, correction=0)
    tol = 5 * torch.sqrt((expected.diag()[:, None] * expected.diag()[None] + expected**2) / 4000)
    assert ((empirical - expected).abs() < tol).all()


def test_sgld_schedule_and_validation():
    kernel = SGLD(a=0.1, b=2.0, gamma=0.75)
    steps = []
    x = torch.zeros(3, 1)
    for _ in range(4):
        steps.append(kernel.step_size)
        x, info = kernel.step(x, lambda z: 0.5 * (z**2).sum(-1), torch.Generator().manual_seed(0))
    assert steps == pytest.approx([0.1 * (2.0 + t) ** -0.75 for t in range(4)])
    assert float(info.extras["step_size"]) == pytest.approx(0.1 * 5.0**-0.75)
    for gamma in (0.5, 0.3, 1.01):
        with pytest.raises(ValueError, match="gamma"):
            SGLD(a=0.1, gamma=gamma)
    SGLD(a=0.1, gamma=1.0)  # the boundary is allowed
    with pytest.raises(ValueError, match="a: expected"):
        SGLD(a=0.0)


def test_sgld_minibatch_posterior_of_gaussian_mean():
    # x_i ~ N(theta, 1), prior N(0, 10^2): posterior N(sum x / (N + 0.01), 1 / (N + 0.01))
    g = torch.Generator().manual_seed(0)
    data = 1.0 + torch.randn(1000, generator=g, dtype=torch.float64)
    precision = 1000 + 0.01
    post_mean, post_var = float(data.sum()) / precision, 1 / precision
    grad_fn = MinibatchGradient(
        log_prior=lambda th: -0.5 * (th[:, 0] / 10) ** 2,
        log_likelihood=lambda th, batch: -0.5 * ((batch[None, :] - th) ** 2).sum(-1),
        data=data,
        batch_size=100,
    )
    # eps_t from 8e-5 down to 2e-5: mixing time ~ 1 / (eps * precision) <= 60 steps
    kernel = SGLD(a=1e-3, b=100.0, gamma=0.55, grad_fn=grad_fn)
    result = sample(
        kernel,
        lambda th: -grad_fn.log_prior(th),
        torch.zeros(500, 1, dtype=torch.float64),
        1500,
        seed=1,
        progress=False,
    )
    # one minibatch per step is shared by all chains, so the chain average moves with the
    # common gradient noise: its standard error comes from the ESS of that average over time
    chain_mean = result.samples[-1000:, :, 0].mean(1)
    ess = float(effective_sample_size(chain_mean[None]))
    se = float(chain_mean.std()) / math.sqrt(ess)
    assert abs(float(chain_mean.mean()) - post_mean) < 5 * se
    # the spread across chains is ULA's (the shared noise moves all chains alike)
    final = result.samples[-1, :, 0]
    assert 0.7 * post_var < float(final.var()) < 1.5 * post_var


def test_adaptation_reaches_target_acceptance():
    result = sample(
        MALA(step_size=1e-3),
        gaussian_energy,
        start_states(64, 0),
        300,
        burn_in=300,
        seed=0,
        progress=False,
    )
    assert abs(result.acceptance_rate - 0.574) < 0.1
    assert result.step_size > 0.05  # moved far from the initial 1e-3
    # HMC on a Gaussian: acceptance stays near 1 up to the leapfrog stability limit
    # eps = 2 sd_min = 0.89 and then drops to 0, so dual averaging settles just below that cliff;
    # on the mixture (no cliff) it reaches the target
    kernel = HMC(step_size=1e-3, n_leapfrog=5)
    result = sample(
        kernel, gaussian_energy, start_states(64, 0), 300, burn_in=300, seed=0, progress=False
    )
    assert 0.4 < result.step_size < 0.9 and result.acceptance_rate > 0.5
    assert kernel.step_size == 1e-3  # the caller's kernel is not modified
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    result = sample(kernel, mixture_energy, x0, 300, burn_in=500, seed=0, progress=False)
    assert abs(result.acceptance_rate - 0.65) < 0.12


def test_hmc_divergences_are_flagged_and_rejected():
    result = sample(
        HMC(step_size=5.0, n_leapfrog=10, adapt=False),
        gaussian_energy,
        start_states(16, 0),
        20,
        seed=0,
        progress=False,
    )
    assert result.n_divergent > 0
    assert result.acceptance_rate < 0.2
    assert torch.isfinite(result.samples).all()


# ----- NaN energies ------------------------------------------------------------------------------
def nan_right_half(x: torch.Tensor) -> torch.Tensor:
    """A standard normal energy that is NaN for x_0 > 0.5."""
    e = 0.5 * (x**2).sum(-1)
    return torch.where(x[:, 0] > 0.5, torch.full_like(e, float("nan")), e)


def test_nan_proposal_energy_is_a_counted_rejection():
    # a proposal that sends the even chains into the NaN region
    def proposal(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        shift = torch.zeros_like(x)
        shift[::2, 0] = 5.0
        return x + shift

    x = torch.zeros(6, 2)
    x_new, info = MetropolisHastings(proposal).step(
        x, nan_right_half, torch.Generator().manual_seed(0)
    )
    assert info.nonfinite.tolist() == [True, False] * 3
    assert not info.accepted[::2].any() and (info.accept_prob[::2] == 0).all()
    assert torch.equal(x_new[::2], x[::2])


@pytest.mark.parametrize(
    "kernel",
    [
        MetropolisHastings(scale=1.0),
        MALA(step_size=0.5, adapt=False),
        HMC(step_size=0.3, n_leapfrog=5, adapt=False),
    ],
    ids=["mh", "mala", "hmc"],
)
def test_nan_region_is_never_entered(kernel):
    x0 = torch.full((16, 2), -1.0)
    result = sample(kernel, nan_right_half, x0, 200, seed=0, progress=False)
    assert result.n_nonfinite > 0
    assert torch.isfinite(result.samples).all()
    assert (result.samples[..., 0] <= 0.5).all()


def test_ula_rejects_non_finite_moves():
    def energy(x: torch.Tensor) -> torch.Tensor:  # energy and gradient NaN for x_0 > 0.5
        nan_beyond = torch.where(x[:, 0] > 0.5, float("nan"), 0.0)
        return 0.5 * (x**2).sum(-1) + x[:, 0] * nan_beyond

    result = sample(
        Langevin(step_size=0.1), energy, torch.zeros(64, 2), 200, seed=0, progress=False
    )
    assert result.n_nonfinite > 0 and torch.isfinite(result.samples).all()


# ----- Langevin chains for energy models -------------------------------------------------------
def test_langevin_chain_has_the_ula_stationary_law_of_a_gaussian():
    # E = P x^2 / 2: ULA's stationary variance is 1 / (P (1 - eps P / 2)) (O(eps) bias)
    precision, eps = 4.0, 0.05
    x0 = torch.zeros(20_000, 1, dtype=torch.float64)
    x = langevin_chain(
        lambda y: 0.5 * precision * y.square().sum(-1),
        x0,
        200,
        eps,
        generator=torch.Generator().manual_seed(0),
    )
    variance = 1 / (precision * (1 - eps * precision / 2))
    n = x.shape[0]
    assert abs(float(x.mean())) < 5 * math.sqrt(variance / n)
    assert abs(float(x.var()) - variance) < 5 * variance * math.sqrt(2 / n)


def test_langevin_chain_respects_clamp_update_mask_and_grad_clip():
    x0 = torch.full((10, 4), 0.5)
    mask = torch.tensor([True, False, True, False]).expand(10, 4)
    x = langevin_chain(
        lambda y: -10 * y.sum(-1),
        x0,
        20,
        0.1,
        generator=torch.Generator().manual_seed(0),
        clamp=(0.0, 1.0),
        update_mask=mask,
    )
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    torch.testing.assert_close(x[:, 1], x0[:, 1])
    # without noise, a clipped gradient moves every entry by exactly eps * clip per step
    x = langevin_chain(lambda y: -10 * y.sum(-1), x0, 3, 0.1, noise_scale=0.0, grad_clip=0.5)
    torch.testing.assert_close(x, x0 + 3 * 0.1 * 0.5)


# ----- bad input ---------------------------------------------------------------------------------
def test_bad_input_errors():
    for make in (
        lambda: Langevin(step_size=0.0),
        lambda: MALA(step_size=-1.0),
        lambda: HMC(step_size=0.0),
        lambda: MetropolisHastings(scale=-0.1),
        lambda: Langevin(step_size=float("inf")),
    ):
        with pytest.raises(ValueError, match=r"step_size|scale"):
            make()
    with pytest.raises(ValueError, match="noise_scale"):
        Langevin(step_size=0.1, noise_scale=-1.0)
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="non-finite energy"):
        sample(MALA(0.1), lambda x: torch.full((x.shape[0],), float("nan")), x0, 10, progress=False)
    with pytest.raises(ValueError, match="non-finite energy"):
        sample(
            MetropolisHastings(),
            lambda x: torch.full((x.shape[0],), float("inf")),
            x0,
            10,
            progress=False,
        )
    with pytest.raises(ValueError, match="one energy per chain"):
        sample(MALA(0.1), lambda x: (x**2).sum(), x0, 10, progress=False)
    with pytest.raises(ValueError, match="one energy per chain"):
        sample(MetropolisHastings(), lambda x: x**2, x0, 10, progress=False)
    with pytest.raises(ValueError, match="x0"):
        sample(MALA(0.1), gaussian_energy, torch.zeros(2), 10, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        sample(MALA(0.1), gaussian_energy, x0, 0, progress=False)
    with pytest.raises(ValueError, match="thin"):
        sample(MALA(0.1), gaussian_energy, x0, 10, thin=0, progress=False)
    with pytest.raises(TypeError, match="kernel"):
        sample(gaussian_energy, gaussian_energy, x0, 10, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        SimulatedAnnealing(MetropolisHastings(), schedule=[])
    with pytest.raises(ValueError, match="schedule"):
        SimulatedAnnealing(MetropolisHastings(), schedule=[1.0, -1.0])
    with pytest.raises(ValueError, match="betas"):
        ParallelTempering(Gibbs(), betas=[])
    with pytest.raises(ValueError, match="beta = 1"):
        ParallelTempering(Gibbs(), betas=[0.5, 0.2])
    with pytest.raises(ValueError, match="proposal"):
        MetropolisHastings("cauchy")
    with pytest.raises(ValueError, match="spin_values"):
        MetropolisHastings("flip").step(torch.ones(3, 4), lambda x: x.sum(-1))
    with pytest.raises(ValueError, match="multiple of 8"):
        ParallelTempering(Gibbs()).step(torch.zeros(3, 4), lambda x: x.sum(-1))


# ----- binary states (invariance by chi-square: test_suite.py) -----------------------------------
def test_parallel_tempering_reports_swap_acceptance_per_pair():
    kernel = ParallelTempering(Gibbs(), betas=[1.0, 0.6, 0.3])
    x0 = (torch.rand(100, 5, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    result = sample(kernel, tiny_rbm(), x0, 40, seed=2, progress=False)
    swaps = result.extras["swap_accept"]
    assert swaps.shape == (2,) and ((swaps > 0) & (swaps <= 1)).all()


def test_swap_pairs_alternate_even_and_odd():
    assert swap_pairs(5, 0).tolist() == [0, 2]
    assert swap_pairs(5, 1).tolist() == [1, 3]
    assert swap_pairs(5, 2).tolist() == [0, 2]
    assert swap_pairs(1, 0).numel() == 0


def test_replica_exchange_accepts_with_the_metropolis_probability():
    # 3 replicas x n chains, pairs (0, 1): log r = -1 (accept e^-1), and (1, 2) on odd rounds
    n = 20_000
    betas = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    energy = torch.stack([torch.full((n,), 2.0), torch.zeros(n), torch.full((n,), 8.0)]).double()
    lower = swap_pairs(3, 0)
    log_ratio = linear_swap_log_ratio(betas, energy, lower)
    # by hand: (beta_0 - beta_1) (E_0 - E_1) = 0.5 * 2 = 1: always accepted
    assert torch.equal(log_ratio, torch.ones(1, n, dtype=torch.float64))
    log_ratio = -log_ratio  # accept with e^-1
    v = torch.arange(3.0)[:, None, None].expand(3, n, 4).double()
    h = 10 + torch.arange(3.0)[:, None, None].expand(3, n, 2).double()
    (v2, h2), accepted = replica_exchange(
        [v, h], log_ratio, lower, torch.Generator().manual_seed(0)
    )
    rate, p = float(accepted.double().mean()), math.exp(-1.0)
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    swapped = accepted[0]
    # accepted chains exchanged replicas 0 and 1 in both tensors together; replica 2 untouched
    assert torch.equal(v2[0, swapped], v[1, swapped]) and torch.equal(v2[1, swapped], v[0, swapped])
    assert torch.equal(h2[0, swapped], h[1, swapped]) and torch.equal(
        h2[0, ~swapped], h[0, ~swapped]
    )
    assert torch.equal(v2[2], v[2]) and torch.equal(
        v, torch.arange(3.0)[:, None, None].expand(3, n, 4).double()
    )
    nan = torch.full((1, n), float("nan"), dtype=torch.float64)  # a NaN ratio never swaps
    assert not replica_exchange([v], nan, lower, torch.Generator().manual_seed(1))[1].any()


def test_target_tempers_through_the_model_and_refuses_without_it():
    rbm = tiny_rbm().double()
    v = all_states(5).double()
    betas = torch.linspace(0.1, 1.0, 32, dtype=torch.float64)  # one beta per row
    with torch.no_grad():
        torch.testing.assert_close(Target(rbm, 0.4)(v), rbm.tempered_free_energy(v, 0.4))
        torch.testing.assert_close(Target(rbm, betas)(v), rbm.tempered_free_energy(v, betas))
        torch.testing.assert_close(
            Target(gaussian_energy, 0.5)(v[:, :2]), 0.5 * gaussian_energy(v[:, :2])
        )
    with pytest.raises(TypeError, match="tempered_free_energy"):
        Target(GaussianBernoulliRBM(3, 2), 0.5)(torch.zeros(2, 3))


def test_protocols_are_structural():
    # the samplers recognise models by their methods: an RBM offers the tempered free energy
    # and the block sweep, a Gaussian-Bernoulli RBM only the sweep, a plain energy neither
    rbm, grbm = tiny_rbm(), GaussianBernoulliRBM(3, 2)
    assert isinstance(rbm, TemperedFreeEnergy) and isinstance(rbm, BipartiteGibbs)
    assert not isinstance(grbm, TemperedFreeEnergy) and isinstance(grbm, BipartiteGibbs)
    assert not isinstance(TinyBoltzmann(), SiteConditionals | BlockSweep | BipartiteGibbs)
    assert Target(rbm).has_block_gibbs and not Target(TinyBoltzmann()).has_block_gibbs


def test_samplers_never_import_models():
    # samplers see energies and the protocols of samplers/protocols.py, never model classes
    package = Path(__import__("ebmlab.samplers").samplers.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.startswith(("..models", "ebmlab.models", "..estimators")), path
                assert not module.startswith(("..training", "..objectives", "..app")), path


def test_exact_sample_runs_stay_exact_under_gibbs():
    # invariance: starting from exact samples, one more sweep keeps the law exact
    model = TinyBoltzmann()
    probs = exact_probs(model.energy)
    index = inverse_cdf_categorical(probs, 20_000, torch.Generator().manual_seed(0))
    x, info = Gibbs().step(all_states(5)[index], model, torch.Generator().manual_seed(1))
    counts = torch.bincount(state_index(x), minlength=32)
    assert chi_square_p(counts, probs) > 1e-6
    assert info.accepted.all()


# ----- annealing ---------------------------------------------------------------------------------
def test_geometric_schedule_float64():
    temps = geometric_schedule(10.0, 0.5, 4, t_min=1.5)
    assert temps.dtype == torch.float64
    assert temps.tolist() == [10.0, 5.0, 2.5, 1.5]
    assert geometric_schedule(2.0, 0.5, 5, t_min=0.3).tolist() == [2.0, 1.0, 0.5, 0.3, 0.3]
    # the kernel's step-by-step temperature is the schedule's, to the last bit
    kernel = SimulatedAnnealing(MetropolisHastings(), t0=3.0, alpha=0.97, t_min=0.05)
    assert [kernel.temperature(t) for t in range(300)] == geometric_schedule(
        3.0, 0.97, 300, 0.05
    ).tolist()
    with pytest.raises(ValueError, match="alpha"):
        geometric_schedule(1.0, 0.0, 3)


def test_cooling_steps_floor_and_ceiling():
    # 8 alpha^k with alpha = 1/2: 8 4 2 1 0.5; t_end = 1.5 lies between levels 2 and 3
    assert cooling_steps(8.0, 1.5, 0.5) == 3  # 8 4 2: every level >= 1.5
    assert cooling_steps(8.0, 1.5, 0.5, past_end=True) == 4  # ... and the first below it
    assert cooling_steps(8.0, 1.0, 0.5) == cooling_steps(8.0, 1.0, 0.5, past_end=True) == 4
    with pytest.raises(ValueError, match="t_end"):
        cooling_steps(1.0, 2.0, 0.5)


def test_ladders():
    ladder = geometric_ladder(2.0, 0.02, 5)
    assert ladder.dtype == torch.float64
    torch.testing.assert_close(ladder[[0, -1]], torch.tensor([2.0, 0.02], dtype=torch.float64))
    ratios = ladder[1:] / ladder[:-1]
    torch.testing.assert_close(ratios, torch.full((4,), 0.1**0.5, dtype=torch.float64))
    betas = geometric_betas(4, 0.125)
    torch.testing.assert_close(betas, torch.tensor([1.0, 0.5, 0.25, 0.125], dtype=torch.float64))
    assert geometric_betas(1, 0.5).tolist() == [1.0]
    assert linear_ladder(1.0, 0.0, 5).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_annealing_runner_averages_the_last_states_and_allows_temperature_zero():
    # a toy sweep that records the temperature it was run at (beta = inf: T = 0)
    def sweep(x: torch.Tensor, g: torch.Generator | None, beta: float) -> torch.Tensor:
        return torch.full_like(x, 1.0 / beta)

    target = SweepTarget(lambda x: x.sum(-1), sweep)
    annealing = SimulatedAnnealing(Gibbs("block"), [4.0, 2.0, 1.0, 0.0])
    last, mean = annealing.anneal(torch.zeros(3, 2), target, n_average=3)
    assert last.unique().tolist() == [0.0]
    torch.testing.assert_close(mean, torch.full((3, 2), 1.0))  # (2 + 1 + 0) / 3
    assert annealing.t == 4
    last, _ = annealing.anneal(torch.zeros(3, 2), target, n_steps=6)  # T stays at the last one
    assert last.unique().tolist() == [0.0] and annealing.t == 6
    with pytest.raises(ValueError, match="n_average"):
        annealing.anneal(torch.zeros(3, 2), target, n_average=5)
    with pytest.raises(ValueError, match="n_steps"):
        SimulatedAnnealing(Gibbs("block")).anneal(torch.zeros(3, 2), target)


def test_simulated_annealing_finds_global_minimum():
    # tilted double well: E = 4 (x^2 - 1)^2 + x; the global minimum is near x = -1, the other
    # well (near +1) is 2 units higher, separated by a barrier of about 3 to 5
    def energy(x: torch.Tensor) -> torch.Tensor:
        return 4 * (x[:, 0] ** 2 - 1) ** 2 + x[:, 0]

    x0 = torch.full((200, 1), 1.0)  # every chain starts in the wrong well
    kernel = SimulatedAnnealing(MetropolisHastings(scale=0.5), t0=5.0, alpha=0.995, t_min=0.01)
    result = sample(kernel, energy, x0, 1500, seed=0, progress=False)
    assert float(result.extras["temperature"]) < 5.0
    final = result.samples[-1, :, 0]
    assert float((final < 0).double().mean()) > 0.95
    assert float((final + 1.03).abs().median()) < 0.1


# ----- runner output and plots -------------------------------------------------------------------
def test_summary_is_json_safe_and_plots_are_written(tmp_path):
    import json

    from ebmlab.app.viz_mcmc import plot_autocorrelation, plot_trace

    result = sample(
        ParallelTempering(MALA(step_size=0.3, adapt=False), betas=[1.0, 0.5]),
        gaussian_energy,
        start_states(8, 0),
        60,
        thin=2,
        seed=0,
        progress=True,
    )
    summary = json.loads(json.dumps(result.summary()))
    assert summary["n_draws"] == 30 and summary["n_chains"] == 8 and summary["dim"] == 2
    assert len(summary["swap_accept"]) == 1 and 0 < summary["swap_accept"][0] <= 1
    assert result.final_state.shape == (16, 2)  # both replicas
    trace = plot_trace(result.samples, tmp_path / "trace.png", title="MALA")
    acf = plot_autocorrelation(result.samples, tmp_path / "acf.png", max_lag=10)
    for path in (trace, acf):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="samples"):
        plot_trace(result.samples[0], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="dims"):
        plot_trace(result.samples, tmp_path / "bad.png", dims=[5])


def test_seed_reproducibility():
    a = sample(
        MALA(step_size=0.3),
        gaussian_energy,
        start_states(4, 0),
        20,
        burn_in=5,
        seed=7,
        progress=False,
    )
    b = sample(
        MALA(step_size=0.3),
        gaussian_energy,
        start_states(4, 0),
        20,
        burn_in=5,
        seed=7,
        progress=False,
    )
    assert torch.equal(a.samples, b.samples) and a.step_size == b.step_size


def test_make_kernel_default_kernel_and_initial_states():
    from ebmlab.models.ising import Ising
    from ebmlab.samplers import default_kernel, initial_states, make_kernel

    assert isinstance(make_kernel("mala", step_size=0.1), MALA)
    assert make_kernel("langevin", step_size=0.1, noise_scale=0.1).temperature == pytest.approx(
        0.05
    )
    pt = make_kernel("pt", base="mh", base_settings={"proposal": "flip"}, n_temps=4)
    assert isinstance(pt, ParallelTempering) and isinstance(pt.kernel, MetropolisHastings)
    assert isinstance(make_kernel("anneal", base="mh", t0=2.0), SimulatedAnnealing)
    with pytest.raises(ValueError, match="valid names"):
        make_kernel("nuts")
    assert isinstance(default_kernel(tiny_rbm()), Gibbs)
    assert isinstance(default_kernel(Ising(3)), Gibbs)
    assert isinstance(default_kernel(TinyBoltzmann()), MetropolisHastings)
    assert isinstance(default_kernel(gaussian_energy), MALA)
    g = torch.Generator().manual_seed(0)
    s = initial_states(Ising(3), 5, g)
    assert s.shape == (5, 9) and ((s == 1) | (s == -1)).all()
    v = initial_states(tiny_rbm(), 5, g)
    assert v.shape == (5, 5) and ((v == 0) | (v == 1)).all()
    assert initial_states(gaussian_energy, 3, g, dim=2).shape == (3, 2)
    with pytest.raises(ValueError, match="dim"):
        initial_states(gaussian_energy, 3, g)
