"""DDPM and the Bernoulli diffusion.

DDPM: the forward process against its closed form q(y_t | y_0) (Monte Carlo of the step-by-step
chain, tolerances from standard errors), the posterior q(y_{t-1} | y_t, y_0) against Gaussian
conditioning, the Gaussian KL and the discretized decoder against quadrature and direct sums,
the bound's terms on a case with a known answer (point-mass data and its exact noise predictor),
the decomposition of the bound against the Monte Carlo of its definition, ancestral sampling,
the simplified loss, training, bad input. Bernoulli diffusion: the forward process and its
posterior, the bound, the model's marginal and its samples against exact enumeration of every
path on a tiny case, the loss as an unbiased estimate of the bound."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import integrate, stats

import ebmlab
from ebmlab import data
from ebmlab.models.diffusion import (
    DDPM,
    BernoulliDiffusion,
    beta_schedule,
    discretized_gaussian_log_likelihood,
    gaussian_kl,
    log_normal_interval,
)
from ebmlab.objectives.diffusion import BernoulliDiffusionLoss, DiffusionLoss
from ebmlab.training import TrainConfig, train


def _model(
    shape=(2, 2), levels: int = 5, n_steps: int = 20, variance: str = "beta", seed: int = 0
) -> DDPM:
    torch.manual_seed(seed)
    model = DDPM(
        list(shape),
        levels=levels,
        n_steps=n_steps,
        variance=variance,
        channels=8,
        channel_mults=[1],
    ).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the last convolution starts at zero: make eps_theta nonzero
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.requires_grad_(False)


def _oracle(model: DDPM, y0: torch.Tensor) -> None:
    """Replace eps_theta by the exact noise predictor of data concentrated on one image y0:
    eps*(y_t, t) = (y_t - sqrt(abar_t) y0) / sqrt(1 - abar_t)."""

    def exact(yt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = model.schedule(t)["abar"]
        return (yt - abar.sqrt() * y0) / (1 - abar).sqrt()

    model.predict_noise = exact  # type: ignore[method-assign]


# ----- schedules ----------------------------------------------------------------------------------
def test_beta_schedules():
    linear = beta_schedule("linear", 1000)
    assert linear[0].item() == pytest.approx(1e-4) and linear[-1].item() == pytest.approx(0.02)
    assert beta_schedule("linear", 100)[-1].item() == pytest.approx(0.2)  # scaled by 1000 / T
    cosine = beta_schedule("cosine", 50)
    abar = torch.cumprod(1 - cosine, 0)
    s = 0.008
    f = [math.cos((t / 50 + s) / (1 + s) * math.pi / 2) ** 2 for t in range(51)]
    assert abar[:-1].tolist() == pytest.approx([f[t] / f[0] for t in range(1, 50)], rel=1e-10)
    with pytest.raises(ValueError, match="schedule"):
        beta_schedule("quadratic", 10)


# ----- the forward process ------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_chain_matches_the_closed_form_marginal(schedule):
    """y_t from t steps of q(y_s | y_{s-1}) has mean sqrt(abar_t) y_0 and variance 1 - abar_t,
    per pixel; so does q_sample. Tolerances: 5 standard errors of the Monte Carlo mean
    (sqrt(var / n)) and variance (var sqrt(2 / (n - 1)))."""
    model = DDPM([2, 2], levels=5, n_steps=30, schedule=schedule, channels=4, channel_mults=[1])
    model = model.double()
    n = 40_000
    g = torch.Generator().manual_seed(0)
    y0 = torch.tensor([-1.0, -0.5, 0.5, 1.0], dtype=torch.float64).expand(n, 4)
    y = y0.clone()
    betas = model.betas
    for t in range(1, 31):
        b = betas[t - 1]
        y = (1 - b).sqrt() * y + b.sqrt() * torch.randn(y.shape, generator=g, dtype=y.dtype)
        if t in (1, 5, 15, 30):
            abar = model.alpha_bars[t - 1]
            direct = model.q_sample(y0, torch.full((n,), t), torch.randn(y.shape, generator=g))
            for draws in (y, direct):
                mean_se = ((1 - abar) / n).sqrt()
                var_se = (1 - abar) * math.sqrt(2 / (n - 1))
                assert (draws.mean(0) - abar.sqrt() * y0[0]).abs().max() < 5 * mean_se
                assert (draws.var(0) - (1 - abar)).abs().max() < 5 * var_se


@pytest.mark.parametrize("t", [2, 7, 20])
def test_posterior_is_the_gaussian_conditional_of_the_joint(t):
    """Given y_0, (y_{t-1}, y_t) is jointly Gaussian: means (sqrt(abar_{t-1}) y_0,
    sqrt(abar_t) y_0), variances (1 - abar_{t-1}, 1 - abar_t), covariance
    sqrt(alpha_t) (1 - abar_{t-1}); q_posterior must be its conditional given y_t."""
    model = _model(n_steps=20)
    abar, abar_prev = model.alpha_bars[t - 1], model.alpha_bars[t - 2]
    alpha = 1 - model.betas[t - 1]
    y0 = torch.tensor([[0.3, -0.7, 1.0, -1.0]], dtype=torch.float64)
    yt = torch.tensor([[1.2, 0.1, -0.4, 2.0]], dtype=torch.float64)
    v1, v2, c12 = 1 - abar_prev, 1 - abar, alpha.sqrt() * (1 - abar_prev)
    mean = abar_prev.sqrt() * y0 + c12 / v2 * (yt - abar.sqrt() * y0)
    var = v1 - c12**2 / v2
    got_mean, got_var = model.q_posterior(y0, yt, torch.tensor([t]))
    assert torch.allclose(got_mean, mean, atol=1e-12)
    assert got_var.item() == pytest.approx(float(var), rel=1e-10)


# ----- the pieces of the bound --------------------------------------------------------------------
@pytest.mark.parametrize(("m1", "v1", "m2", "v2"), [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -1.0, 2.0)])
def test_gaussian_kl_against_quadrature(m1, v1, m2, v2):
    p, q = stats.norm(m1, math.sqrt(v1)), stats.norm(m2, math.sqrt(v2))
    value, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -30, 30)
    got = gaussian_kl(*(torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2)))
    assert got.item() == pytest.approx(value, abs=1e-9)


def test_discretized_decoder_masses_sum_to_one_and_match_the_normal_cdf():
    levels = 7
    grid = torch.linspace(-1, 1, levels, dtype=torch.float64)
    for mean, std in [(0.1, 0.05), (-0.9, 0.3), (3.0, 0.01), (0.0, 2.0)]:
        m = torch.full_like(grid, mean)
        s = torch.full_like(grid, std)
        log_p = discretized_gaussian_log_likelihood(grid, m, s, levels)
        assert torch.isfinite(log_p).all()
        assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-9)
        half = 1 / (levels - 1)
        edges = [-math.inf] + [float(v) + half for v in grid[:-1]] + [math.inf]
        # each bin's mass from the tail it lies in (1 - cdf would lose the small masses)
        direct = [
            stats.norm.sf(edges[k], mean, std) - stats.norm.sf(edges[k + 1], mean, std)
            if edges[k] > mean
            else stats.norm.cdf(edges[k + 1], mean, std) - stats.norm.cdf(edges[k], mean, std)
            for k in range(levels)
        ]
        keep = torch.tensor(direct) > 1e-300
        assert torch.allclose(log_p[keep].exp(), torch.tensor(direct)[keep], rtol=1e-8, atol=0)


def test_log_normal_interval_keeps_its_precision_in_both_tails():
    a = torch.tensor([8.0, -9.0, -0.5], dtype=torch.float64)
    b = torch.tensor([8.5, -8.5, 0.5], dtype=torch.float64)
    expected = [
        math.log(stats.norm.sf(8.0) - stats.norm.sf(8.5)),
        math.log(stats.norm.cdf(-8.5) - stats.norm.cdf(-9.0)),
        math.log(stats.norm.cdf(0.5) - stats.norm.cdf(-0.5)),
    ]
    assert log_normal_interval(a, b).tolist() == pytest.approx(expected, rel=1e-9)


# ----- the bound: a known answer ------------------------------------------------------------------
@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_bound_terms_for_point_mass_data_and_its_exact_noise_predictor(variance):
    """With eps_theta the exact predictor for data at one image x, mu_theta = mu~_t exactly, so
    L_{t-1} is the variance mismatch D/2 [log(sigma_t^2 / beta~_t) + beta~_t / sigma_t^2 - 1]
    (zero when sigma_t^2 = beta~_t), whatever y_t; mu_theta(y_1, 1) = y_0, so the decoder puts
    the mass of N(y_0, sigma_1^2) on the pixel's own bin: -log(2 Phi(h / sigma_1) - 1) inside,
    -log Phi(h / sigma_1) for the two extreme levels (h = 1 / (K - 1)); L_T is closed form."""
    levels, n_steps = 5, 20
    model = _model(levels=levels, n_steps=n_steps, variance=variance)
    x = torch.tensor([[0.0, 0.25, 0.75, 1.0]], dtype=torch.float64).expand(3, 4)
    y0 = model.scale(x)
    _oracle(model, y0)
    betas, abars = model.betas, model.alpha_bars
    expected_kl = 0.0
    for t in range(2, n_steps + 1):
        posterior = (1 - abars[t - 2]) / (1 - abars[t - 1]) * betas[t - 1]
        sigma2 = betas[t - 1] if variance == "beta" else posterior
        expected_kl += 4 * 0.5 * float(torch.log(sigma2 / posterior) + posterior / sigma2 - 1)
    sigma1 = math.sqrt(float((1 - abars[0]) / (1 - abars[1]) * betas[1]))
    h = 1 / (levels - 1)
    inside = -math.log(2 * stats.norm.cdf(h / sigma1) - 1)
    edge = -math.log(stats.norm.cdf(h / sigma1))
    abar_t = float(abars[-1])
    prior = sum(
        0.5 * (abar_t * v**2 + (1 - abar_t) - 1 - math.log(1 - abar_t)) for v in y0[0].tolist()
    )
    g = torch.Generator().manual_seed(0)
    terms = model.bound_terms(x, g)
    assert terms["diffusion"].tolist() == pytest.approx([expected_kl] * 3, rel=1e-8, abs=1e-9)
    assert terms["decoder"].tolist() == pytest.approx([2 * edge + 2 * inside] * 3, rel=1e-8)
    assert terms["prior"].tolist() == pytest.approx([prior] * 3, rel=1e-8)
    # the stratified estimate of the sum over t is exact when every term is equal (all 0 here)
    if variance == "posterior":
        sampled = model.bound_terms(x, g, n_timesteps=4)["diffusion"]
        assert sampled.abs().max().item() < 1e-9
    assert torch.allclose(
        model.log_likelihood_bound(x, g), -(terms["prior"] + terms["diffusion"] + terms["decoder"])
    )


def test_bound_decomposition_matches_the_monte_carlo_of_its_definition():
    """L = E_q[log q(y_{1:T} | y_0) - log p(y_T) - sum_{t>=2} log p(y_{t-1} | y_t)
    - log p(x | y_1)] (Ho et al., eq. 3), estimated from whole forward chains, equals the
    decomposed L_T + sum L_{t-1} + L_0 (eq. 5) that ``bound_terms`` estimates (every t, and a
    stratified sample of t), within 5 standard errors of the two estimates."""
    n_steps, levels = 6, 5
    model = _model(levels=levels, n_steps=n_steps, seed=4)
    n = 5_000
    x = torch.tensor([[0.0, 0.5, 0.75, 1.0]], dtype=torch.float64).expand(n, 4)
    y0 = model.scale(x)
    g = torch.Generator().manual_seed(1)
    normal = torch.distributions.Normal
    ys = [y0]
    log_q = torch.zeros(n, dtype=torch.float64)
    for t in range(1, n_steps + 1):
        b = model.betas[t - 1]
        mean = (1 - b).sqrt() * ys[-1]
        y = mean + b.sqrt() * torch.randn(y0.shape, generator=g, dtype=torch.float64)
        log_q += normal(mean, b.sqrt()).log_prob(y).sum(-1)
        ys.append(y)
    log_p = normal(0.0, 1.0).log_prob(ys[-1]).sum(-1)
    for t in range(n_steps, 1, -1):
        mean, var = model.p_mean_variance(ys[t], torch.full((n,), t))
        log_p += normal(mean, var.sqrt()).log_prob(ys[t - 1]).sum(-1)
    mean, var = model.p_mean_variance(ys[1], torch.ones(n, dtype=torch.long))
    log_p += discretized_gaussian_log_likelihood(y0, mean, var.sqrt(), levels).sum(-1)
    definition = log_q - log_p
    for n_timesteps in (None, 2):
        decomposed = model.bound_terms(x, g, n_timesteps=n_timesteps)["total"]
        se = math.sqrt(definition.var() / n + decomposed.var() / n)
        assert abs(float(definition.mean() - decomposed.mean())) < 5 * se, n_timesteps
        # informative: 5 standard errors are a small part of the bound (a weighting error of
        # the stratified sum, e.g. a missing block size, moves it by half or more)
        assert 5 * se < (0.1 if n_timesteps is None else 0.2) * float(definition.mean())


# ----- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_steps", [None, 5, 1])
def test_ancestral_sampling_with_the_exact_predictor_returns_the_point_mass(n_steps):
    model = _model(n_steps=20, variance="beta")
    target = torch.tensor([0.0, 0.25, 0.75, 1.0], dtype=torch.float64)
    _oracle(model, model.scale(target))
    samples = model.sample(50, torch.Generator().manual_seed(0), n_steps=n_steps)
    assert samples.shape == (50, 4)
    assert torch.allclose(samples, target.expand(50, 4), atol=1e-9)


def test_respaced_timesteps_and_reproducible_samples():
    model = _model(n_steps=20)
    assert model.respaced(20).tolist() == list(range(1, 21))
    assert model.respaced(4).tolist() == [1, 7, 14, 20]
    assert model.respaced(1).tolist() == [20]
    a = model.sample(3, torch.Generator().manual_seed(5), n_steps=4)
    b = model.sample(3, torch.Generator().manual_seed(5), n_steps=4)
    assert torch.equal(a, b) and ((a >= 0) & (a <= 1)).all()
    with pytest.raises(ValueError, match="n: expected a positive integer, got 0"):
        model.sample(0)


# ----- the loss and training ----------------------------------------------------------------------
def test_simplified_loss_is_the_noise_prediction_error_of_the_drawn_timesteps_and_noise():
    model = _model(n_steps=20)
    x = torch.rand(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss, _ = DiffusionLoss().loss(model, x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(1, 21, (6,), generator=g)
    noise = torch.randn((6, 4), generator=g).double()
    y0 = 2 * x - 1
    expected = ((model.predict_noise(model.q_sample(y0, t, noise), t) - noise) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_training_lowers_the_loss_and_the_bound_on_digits(tmp_path):
    x, _ = data.load("digits", "train")
    model = DDPM([8, 8], levels=17, n_steps=50, channels=8, channel_mults=[1, 2])
    g = torch.Generator().manual_seed(0)
    before = float(model.log_likelihood_bound(x[:200], g, n_timesteps=10).mean())
    config = TrainConfig(epochs=3, batch_size=64, lr=3e-3, seed=0, device="cpu", progress=False)
    result = train(model, DiffusionLoss(), x, config, tmp_path)
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0]
    after = float(model.log_likelihood_bound(x[:200], g, n_timesteps=10).mean())
    assert after > before + 20, (before, after)
    loaded = ebmlab.load(tmp_path / "checkpoint.safetensors")
    t = torch.full((3,), 10)
    assert torch.equal(
        loaded.predict_noise(x[:3] * 2 - 1, t), model.predict_noise(x[:3] * 2 - 1, t)
    )


def test_bad_arguments_and_data_are_named():
    with pytest.raises(ValueError, match="variance"):
        DDPM([4, 4], variance="learned")
    with pytest.raises(ValueError, match="channel_mults"):
        DDPM([4, 4], channel_mults=[])
    with pytest.raises(ValueError, match="n_steps"):
        DDPM([4, 4], n_steps=1)
    model = _model(levels=5)
    with pytest.raises(ValueError, match="5-level grid"):
        model.bound_terms(torch.full((2, 4), 0.3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\]"):
        model.check_images(torch.full((2, 4), 1.5))
    with pytest.raises(ValueError, match=r"t: expected timesteps in 1\.\.20"):
        model.predict_noise(torch.zeros(2, 4, dtype=torch.float64), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="t: expected integer"):
        model.predict_noise(torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="DiffusionLoss trains a DDPM"):
        DiffusionLoss().loss(torch.nn.Linear(2, 2), torch.zeros(2, 2), torch.Generator())


# ----- the Bernoulli diffusion --------------------------------------------------------------------
def _bernoulli(shape=(1, 2), n_steps: int = 3, seed: int = 0) -> BernoulliDiffusion:
    torch.manual_seed(seed)
    model = BernoulliDiffusion(list(shape), n_steps=n_steps, channels=8, channel_mults=[1])
    model = model.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.requires_grad_(False)


def _states(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def _bernoulli_log(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log prod_d Bernoulli(x_d; p_d)."""
    return (torch.xlogy(x, p) + torch.xlogy(1 - x, 1 - p)).sum(-1)


def _enumerated(model: BernoulliDiffusion, x0: torch.Tensor) -> tuple[float, float]:
    """(log p(x_0), the bound L(x_0)) by summing over every path x_{1:T} of the whole image:
    log p = log sum_paths p(x_T) prod_t p(x_{t-1} | x_t), L = E_q[log q(path) - log p(x_0, path)].
    p(x_{t-1} | x_t) depends on x_t and t alone: tabulated once per t for every state."""
    d, n_steps = model.n_visible, model.n_steps
    states = _states(d)
    # reverse[t][j]: p(x_{t-1} = 1 | x_t = states[j]), per pixel
    reverse = {
        t: model.p_probs(states, torch.full((len(states),), t)) for t in range(1, n_steps + 1)
    }
    log_joint, log_q = [], []
    for path in itertools.product(range(len(states)), repeat=n_steps):
        xs = [x0] + [states[i] for i in path]  # xs[t] = x_t
        lq, lp = 0.0, float(_bernoulli_log(torch.full((d,), 0.5, dtype=torch.float64), xs[-1]))
        for t in range(1, n_steps + 1):
            beta = model.betas[t - 1]
            keep = (1 - beta) * xs[t - 1] + beta / 2  # q(x_t = 1 | x_{t-1})
            lq += float(_bernoulli_log(keep, xs[t]))
            lp += float(_bernoulli_log(reverse[t][path[t - 1]], xs[t - 1]))
        log_joint.append(lp)
        log_q.append(lq)
    log_joint_t = torch.tensor(log_joint, dtype=torch.float64)
    log_q_t = torch.tensor(log_q, dtype=torch.float64)
    log_p = float(torch.logsumexp(log_joint_t, 0))
    bound = float((log_q_t.exp() * (log_q_t - log_joint_t)).sum())
    return log_p, bound


def test_bernoulli_forward_chain_matches_the_closed_form_and_the_posterior_bayes_rule():
    model = _bernoulli(n_steps=10)
    assert model.alpha_bars[-1].item() == 0.0  # x_T is exactly Bernoulli(1/2)
    n = 40_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([0.0, 1.0], dtype=torch.float64).expand(n, 2)
    x = x0.clone()
    for t in range(1, 11):
        b = model.betas[t - 1]
        redraw = torch.rand(x.shape, generator=g, dtype=x.dtype) < b
        x = torch.where(redraw, (torch.rand(x.shape, generator=g) < 0.5).double(), x)
        p = model.q_probs(x0[:1], torch.tensor([t]))[0]
        se = (p * (1 - p) / n).sqrt().clamp_min(1e-12)
        assert ((x.mean(0) - p).abs() < 5 * se + 1e-12).all(), t
    for t in (1, 4, 10):
        step = torch.tensor([t])
        for v0, vt in itertools.product([0.0, 1.0], repeat=2):
            x0_, xt = torch.tensor([[v0]]).double(), torch.tensor([[vt]]).double()
            beta = float(model.betas[t - 1])
            prior1 = float(model.q_probs(x0_, step - 1))
            like = {1: (1 - beta / 2) if vt else beta / 2, 0: beta / 2 if vt else 1 - beta / 2}
            expected = like[1] * prior1 / (like[1] * prior1 + like[0] * (1 - prior1))
            got = float(model.q_posterior(x0_.expand(1, 2), xt.expand(1, 2), step)[0, 0])
            assert got == pytest.approx(expected, rel=1e-12)


def test_bernoulli_bound_terms_against_exact_enumeration():
    """On 2 pixels and T = 3 (64 paths): the model's marginal sums to 1 over the 4 images, the
    enumerated bound L(x_0) is at least -log p(x_0), and the Monte Carlo of ``bound_terms``
    (every t, and a stratified sample of t) agrees with L(x_0) within 5 standard errors."""
    model = _bernoulli(n_steps=3, seed=1)
    images = _states(2)
    enumerated = [_enumerated(model, x0) for x0 in images]
    log_p = torch.tensor([lp for lp, _ in enumerated], dtype=torch.float64)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)
    assert float(log_p.max() - log_p.min()) > 0.3  # not uniform: the checks below can fail
    g = torch.Generator().manual_seed(2)
    n = 20_000
    for x0, (lp, bound) in zip(images, enumerated):
        assert bound >= -lp - 1e-12
        for n_timesteps in (None, 1):
            terms = model.bound_terms(x0.expand(n, 2), g, n_timesteps=n_timesteps)
            total = terms["total"]
            se = float(total.std()) / math.sqrt(n)
            assert abs(float(total.mean()) - bound) < 5 * se + 1e-9, (x0, n_timesteps)
            assert torch.equal(terms["prior"], torch.zeros(n, dtype=torch.float64))


def test_bernoulli_samples_follow_the_enumerated_marginal():
    model = _bernoulli(n_steps=3, seed=1)
    images = _states(2)
    probs = torch.tensor([math.exp(_enumerated(model, x0)[0]) for x0 in images])
    samples = model.sample(20_000, torch.Generator().manual_seed(3))
    index = (samples[:, 0] * 2 + samples[:, 1]).long()
    counts = torch.bincount(index, minlength=4).double()
    chi2 = float(((counts - 20_000 * probs) ** 2 / (20_000 * probs)).sum())
    assert stats.chi2.sf(chi2, 3) > 1e-4


def test_bernoulli_bound_is_zero_for_a_point_mass_and_its_exact_predictor():
    model = _bernoulli(n_steps=5)
    target = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    model.predict_logits = lambda xt, t: 40.0 * (2 * target - 1).expand_as(xt)  # type: ignore
    terms = model.bound_terms(target.expand(4, 2), torch.Generator().manual_seed(0))
    assert terms["total"].abs().max().item() < 1e-12
    assert torch.equal(model.sample(6, torch.Generator().manual_seed(1)), target.expand(6, 2))


def test_bernoulli_loss_is_an_unbiased_estimate_of_the_bound():
    """With aux_weight 0, E_t[loss] = L_T + sum_t l_t: the mean of many losses agrees with the
    every-t ``bound_terms`` within 5 standard errors; the auxiliary term adds the cross-entropy."""
    model = _bernoulli(n_steps=4, seed=2)
    n = 2500
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(n, 2)
    objective = BernoulliDiffusionLoss(aux_weight=0.0)
    losses = torch.stack(
        [objective.loss(model, x[:1], torch.Generator().manual_seed(s))[0] for s in range(n)]
    )
    bound = model.bound_terms(x, torch.Generator().manual_seed(9))["total"]
    se = math.sqrt(float(losses.var()) / n + float(bound.var()) / n)
    assert abs(float(losses.mean() - bound.mean())) < 5 * se
    loss0, metrics = objective.loss(model, x[:8], torch.Generator().manual_seed(0))
    loss1, _ = BernoulliDiffusionLoss(0.5).loss(model, x[:8], torch.Generator().manual_seed(0))
    assert loss1.item() > loss0.item() and metrics["bound"] == pytest.approx(loss0.item())
    with pytest.raises(TypeError, match="BernoulliDiffusionLoss trains a BernoulliDiffusion"):
        objective.loss(_model(), x[:2], torch.Generator())
    with pytest.raises(ValueError, match="x"):
        model.bound_terms(torch.full((2, 2), 0.5, dtype=torch.float64))
