"""VAE and IWAE: closed forms, bounds against exact marginals, gradients, objective, recipe.

Exact references: the linear-Gaussian decoder (no hidden layers, ``likelihood="gaussian"``) has
p(x) = N(x; b, W W^T + diag sigma^2) and a Gaussian posterior in closed form; a Bernoulli decoder
with one latent unit is integrated by quadrature. Statistical checks use fixed seeds and
tolerances of 5 standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import ebmlab
from ebmlab.models.rbm import bernoulli_log_prob
from ebmlab.models.vae import VAE, gaussian_kl_to_standard_normal, log_normal_diag
from ebmlab.objectives.vae import VariationalBound

Z = 5.0  # tolerance in standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mean_se(values: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    values = values.double()
    return values.mean(dim), values.std(dim) / math.sqrt(values.shape[dim])


# ----- linear-Gaussian model with known marginal and posterior ------------------------------------
D, L, SIGMA = 3, 2, 0.5


def _decoder_weights(orthogonal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(0)
    if orthogonal:
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
        w = q[:, :L] @ torch.diag(torch.tensor([1.5, 0.8], dtype=torch.float64))
    else:
        w = torch.randn(D, L, generator=g, dtype=torch.float64)
    b = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    return w, b


def _linear_vae(w: torch.Tensor, b: torch.Tensor) -> VAE:
    model = VAE(D, hidden=[], latent=L, likelihood="gaussian", min_sigma=1e-6, seed=0).double()
    with torch.no_grad():
        model.decoder_out.weight.copy_(w)
        model.decoder_out.bias.copy_(b)
        model.log_sigma.fill_(math.log(SIGMA))
    return model


def _exact_log_px(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    cov = w @ w.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    return MultivariateNormal(b, cov).log_prob(x)


def _posterior(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p(z | x) = N(A (x - b), S) with S = (I + W^T W / s^2)^-1, A = S W^T / s^2."""
    s = torch.linalg.inv(torch.eye(L, dtype=torch.float64) + w.T @ w / SIGMA**2)
    return s @ w.T / SIGMA**2, s


def _set_encoder(model: VAE, a: torch.Tensor, b: torch.Tensor, variances: torch.Tensor) -> None:
    with torch.no_grad():
        model.encoder_mu.weight.copy_(a)
        model.encoder_mu.bias.copy_(-a @ b)
        model.encoder_log_var.weight.zero_()
        model.encoder_log_var.bias.copy_(variances.log())


def _data(n: int = 4) -> torch.Tensor:
    return torch.randn(n, D, generator=_gen(1), dtype=torch.float64)


def _imperfect_vae() -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """Decoder with correlated posterior; encoder = a perturbed, diagonal version of it."""
    w, b = _decoder_weights(orthogonal=False)
    model = _linear_vae(w, b)
    a, s = _posterior(w, b)
    _set_encoder(model, 0.8 * a, b, 1.5 * torch.diagonal(s))
    return model, w, b


# ----- closed forms -------------------------------------------------------------------------------
def test_gaussian_kl_known_values():
    zero = gaussian_kl_to_standard_normal(torch.zeros(3), torch.zeros(3))
    assert float(zero) == 0.0
    mu = torch.tensor([1.0, 2.0], dtype=torch.float64)
    log_var = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64)
    # 1/2 (1 + 1 - 0 - 1) + 1/2 (4 + 4 - log 4 - 1)
    expected = 0.5 + 0.5 * (7.0 - math.log(4.0))
    assert float(gaussian_kl_to_standard_normal(mu, log_var)) == pytest.approx(expected, rel=1e-12)
    g = _gen(0)
    mu, log_var = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    q, p = Normal(mu, (0.5 * log_var).exp()), Normal(torch.zeros(4), torch.ones(4))
    torch.testing.assert_close(
        gaussian_kl_to_standard_normal(mu, log_var), kl_divergence(q, p).sum(-1)
    )


def test_gaussian_kl_matches_monte_carlo():
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    log_var = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    eps = torch.randn(200_000, 3, generator=_gen(2), dtype=torch.float64)
    z = mu + (0.5 * log_var).exp() * eps
    log_q = log_normal_diag(z, mu, 0.5 * log_var)
    log_p = log_normal_diag(z, torch.zeros(3), torch.zeros(3))
    mean, se = _mean_se(log_q - log_p)
    exact = float(gaussian_kl_to_standard_normal(mu, log_var))
    assert abs(float(mean) - exact) < Z * float(se)


def test_bernoulli_log_prob_matches_torch_and_normalizes():
    g = _gen(3)
    logits = torch.cat([torch.randn(4, 6, generator=g) * 3, torch.full((1, 6), 60.0)]).double()
    logits[-1, ::2] = -60.0  # saturated units: no overflow, no log(0)
    x = (torch.rand(5, 6, generator=g) < 0.5).double()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(bernoulli_log_prob(logits, x), expected, atol=1e-8, rtol=0)
    states = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * 6)
    total = torch.logsumexp(bernoulli_log_prob(logits[0].expand(64, 6), states), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-12)


# ----- bounds against the exact marginal ----------------------------------------------------------
def test_exact_posterior_makes_every_bound_equal_log_px():
    w, b = _decoder_weights(orthogonal=True)  # W^T W diagonal: the posterior is diagonal
    model = _linear_vae(w, b)
    a, s = _posterior(w, b)
    assert torch.allclose(s, torch.diag(torch.diagonal(s)), atol=1e-12)
    _set_encoder(model, a, b, torch.diagonal(s))
    x = _data()
    exact = _exact_log_px(w, b, x)
    with torch.no_grad():
        log_w = model.importance_draws(x, 50, _gen(4)).log_weights
    # log p(x, z) - log q(z | x) = log p(x) for every z when q is the posterior
    torch.testing.assert_close(log_w, exact.expand(50, -1), atol=1e-10, rtol=0)
    for batch_size in (1, 3, 7, 1000):  # every chunking of the draws gives the same answer
        bounds = model.bounds(x, k=10, generator=_gen(5), batch_size=batch_size)
        torch.testing.assert_close(bounds.iwae, exact, atol=1e-10, rtol=0)
        torch.testing.assert_close(bounds.elbo, exact, atol=1e-10, rtol=0)
        torch.testing.assert_close(bounds.ess, torch.full_like(exact, 10.0))
    # the analytic-KL ELBO estimator is unbiased for log p(x) (its noise is the reconstruction's)
    with torch.no_grad():
        elbo = model.elbo(x.repeat(4000, 1), _gen(6)).view(4000, -1)
    mean, se = _mean_se(elbo)
    assert (abs(mean - exact) < Z * se).all()


def test_elbo_gap_is_kl_to_the_true_posterior():
    model, w, b = _imperfect_vae()
    x = _data()
    a, s = _posterior(w, b)
    with torch.no_grad():
        mu, log_var = model.encode(x)
        elbo = model.elbo(x.repeat(20_000, 1), _gen(7)).view(20_000, -1)
    kl = kl_divergence(
        MultivariateNormal(mu, torch.diag_embed(log_var.exp())),
        MultivariateNormal((x - b) @ a.T, s),
    )
    assert (kl > 0.05).all()  # the encoder is visibly wrong
    mean, se = _mean_se(elbo)
    expected = _exact_log_px(w, b, x) - kl
    assert (abs(mean - expected) < Z * se).all()


def test_iwae_increases_with_k_and_converges_to_log_px():
    model, w, b = _imperfect_vae()
    x = _data(3)
    exact = _exact_log_px(w, b, x)
    means, ses = [], []
    ks = (1, 4, 16, 64, 256)
    for i, k in enumerate(ks):
        reps = 40_000 // k
        est = model.iwae_bound(x.repeat(reps, 1), k=k, generator=_gen(10 + i)).view(reps, -1)
        mean, se = _mean_se(est)
        means.append(mean)
        ses.append(se)
        assert (mean < exact + Z * se).all(), f"IWAE-{k} above log p(x)"
    with torch.no_grad():
        elbo = model.elbo(x.repeat(4000, 1), _gen(20)).view(4000, -1)
    elbo_mean, elbo_se = _mean_se(elbo)
    # E[ELBO] = E[IWAE-1] and it is below every larger k
    assert (abs(elbo_mean - means[0]) < Z * torch.hypot(elbo_se, ses[0])).all()
    for j in range(1, len(ks)):
        assert (means[j] - means[j - 1] > -Z * torch.hypot(ses[j], ses[j - 1])).all()
    assert (means[-1] - means[0] > Z * torch.hypot(ses[-1], ses[0])).all()
    # convergence: E[log p(x) - IWAE-k] ~ Var(w / p(x)) / (2k) = (k / ESS - 1) / (2k)
    k, reps = 5000, 40
    bounds = model.bounds(x.repeat(reps, 1), k=k, generator=_gen(30), batch_size=4096)
    mean, se = _mean_se(bounds.iwae.view(reps, -1))
    bias = ((k / bounds.ess.view(reps, -1) - 1.0) / (2 * k)).mean(0)
    assert (bias < 1e-3).all()
    assert (abs(exact - mean) < Z * se + 3 * bias).all()
    assert (exact - mean < 0.05 * (exact - means[0])).all()  # the gap has shrunk 20-fold


def test_bernoulli_decoder_bounds_against_quadrature():
    """One latent unit: log p(x) = log int N(z; 0, 1) p(x | z) dz by the trapezoid rule."""
    model = VAE(4, hidden=[5], latent=1, seed=3).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    states = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * 4)
    z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
    with torch.no_grad():
        log_joint = model.log_px_given_z(states, z.view(-1, 1, 1)) - 0.5 * (
            z.square() + math.log(2 * math.pi)
        ).view(-1, 1)
    dz = float(z[1] - z[0])
    exact = torch.logsumexp(log_joint, 0) + math.log(dz)  # tails vanish: trapezoid = rectangle
    assert float(torch.logsumexp(exact, 0)) == pytest.approx(0.0, abs=1e-9)  # sums to one
    reps = 30
    bounds = model.bounds(states.repeat(reps, 1), k=2000, generator=_gen(40))
    mean, se = _mean_se(bounds.iwae.view(reps, -1))
    elbo_mean, _ = _mean_se(bounds.elbo.view(reps, -1))
    bias = ((2000 / bounds.ess.view(reps, -1) - 1.0) / 4000).mean(0)
    assert (mean < exact + Z * se).all()
    assert (abs(exact - mean) < Z * se + 3 * bias + 1e-9).all()
    assert (elbo_mean < mean).all()


# ----- gradients ----------------------------------------------------------------------------------
def _closed_form_elbo(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, m: torch.Tensor, log_v: torch.Tensor
) -> torch.Tensor:
    """E_q[log N(x; W z + b, s^2 I)] - KL(q || N(0, I)) for q = N(m, diag exp(log_v))."""
    resid = x - w @ m - b
    trace = (w.square() @ log_v.exp()).sum()
    expected_log_lik = -0.5 * (
        D * math.log(2 * math.pi * SIGMA**2) + (resid.square().sum() + trace) / SIGMA**2
    )
    return expected_log_lik - gaussian_kl_to_standard_normal(m, log_v)


def test_reparameterized_gradient_matches_closed_form_and_score_function():
    model, w, b = _imperfect_vae()
    x = _data(1)
    captured = {}
    encode = model.encode

    def capture(inputs, check=True):
        mu, log_var = encode(inputs, check)
        mu.retain_grad()
        log_var.retain_grad()
        captured.update(mu=mu, log_var=log_var)
        return mu, log_var

    model.encode = capture
    n = 4000
    model.elbo(x.repeat(n, 1), _gen(50)).sum().backward()
    # rows share x but not the noise: row i's gradient is the gradient of the i-th estimate
    reparam = torch.cat([captured["mu"].grad, captured["log_var"].grad], 1)
    m = captured["mu"][0].detach().requires_grad_()
    log_v = captured["log_var"][0].detach().requires_grad_()
    _closed_form_elbo(w, b, x[0], m, log_v).backward()
    exact = torch.cat([m.grad, log_v.grad])

    mean, se = _mean_se(reparam)
    assert (abs(mean - exact) < Z * se).all()
    # score function: grad E_q[f] = E_q[f(z) grad log q(z)], f = log p(x | z); KL analytic
    g = _gen(51)
    mu0, lv0 = m.detach(), log_v.detach()
    z = mu0 + (0.5 * lv0).exp() * torch.randn(n, L, generator=g, dtype=torch.float64)
    with torch.no_grad():
        f = model.log_px_given_z(x, z.unsqueeze(1)).squeeze(1)
    score = torch.cat([(z - mu0) / lv0.exp(), 0.5 * ((z - mu0).square() / lv0.exp() - 1.0)], 1)
    m_kl, lv_kl = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
    gaussian_kl_to_standard_normal(m_kl, lv_kl).backward()
    kl_grad = torch.cat([m_kl.grad, lv_kl.grad])
    score_estimates = f.unsqueeze(1) * score - kl_grad
    s_mean, s_se = _mean_se(score_estimates)
    assert (abs(s_mean - exact) < Z * s_se).all()
    assert (se < s_se).all()  # the point of the reparameterization: lower variance


@pytest.mark.parametrize("which", ["elbo", "log_prob"])
def test_gradient_matches_finite_differences_through_the_sampled_z(which):
    """With the noise held fixed, the estimate is a smooth function of every parameter; its
    autograd gradient (through z = mu + sigma eps) must match central differences."""
    model = VAE(5, hidden=[4, 3], latent=2, seed=4).double()
    x = (torch.rand(3, 5, generator=_gen(60)) < 0.5).double()

    def estimate() -> torch.Tensor:
        if which == "elbo":
            return model.elbo(x, _gen(61), k=3).sum()
        return model.log_prob(x, k=3, generator=_gen(61)).sum()

    estimate().backward()
    h = 1e-6
    for name in ("encoder_mu.bias", "encoder_log_var.weight", "encoder_trunk.0.weight"):
        param = model.get_parameter(name)
        flat_grad = param.grad.reshape(-1)
        for index in (0, param.numel() - 1):
            with torch.no_grad():
                param.view(-1)[index] += h
                up = float(estimate())
                param.view(-1)[index] -= 2 * h
                down = float(estimate())
                param.view(-1)[index] += h
            assert (up - down) / (2 * h) == pytest.approx(
                float(flat_grad[index]), rel=1e-5, abs=1e-7
            )


# ----- sampling -----------------------------------------------------------------------------------
def test_gaussian_samples_follow_the_exact_marginal():
    w, b = _decoder_weights(orthogonal=False)
    model = _linear_vae(w, b)
    n = 40_000
    x = model.sample(n, generator=_gen(70), mean=False)
    cov = w @ w.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    mean_se = torch.sqrt(torch.diagonal(cov) / n)
    assert (abs(x.mean(0) - b) < Z * mean_se).all()
    # Var of a sample covariance entry: (S_ij^2 + S_ii S_jj) / n
    cov_se = torch.sqrt((cov.square() + torch.outer(torch.diagonal(cov), torch.diagonal(cov))) / n)
    assert (abs(torch.cov(x.T) - cov) < Z * cov_se).all()


def test_bernoulli_samples_reconstructions_and_encodings():
    model = VAE(6, hidden=[8], latent=3, seed=0)
    means = model.sample(10, generator=_gen(0))
    draws = model.sample(10, generator=_gen(0), mean=False)
    assert means.shape == draws.shape == (10, 6)
    assert ((means > 0) & (means < 1)).all()
    assert ((draws == 0) | (draws == 1)).all()
    x = (torch.rand(4, 6, generator=_gen(1)) < 0.5).float()
    mu, log_var = model.encode(x)
    assert mu.shape == log_var.shape == (4, 3)
    torch.testing.assert_close(model.reconstruct(x), model.mean_x_given_z(mu).detach())
    sampled = model.reconstruct(x, generator=_gen(2), sample_z=True)
    assert sampled.shape == (4, 6) and not torch.equal(sampled, model.reconstruct(x))
    # reproducible given the generator
    assert torch.equal(model.sample(5, generator=_gen(3)), model.sample(5, generator=_gen(3)))


# ----- checkpoints and bad input ------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_save_load_round_trip(tmp_path, likelihood):
    model = VAE(6, hidden=[5, 4], latent=2, likelihood=likelihood, activation="relu", seed=2)
    path = ebmlab.save(model, tmp_path / "vae.safetensors")
    loaded = ebmlab.load(path)
    assert type(loaded) is VAE and loaded.config == model.config
    assert loaded.hidden == [5, 4] and loaded.likelihood == likelihood
    x = (torch.rand(3, 6, generator=_gen(0)) < 0.5).float()
    torch.testing.assert_close(
        loaded.iwae_bound(x, k=7, generator=_gen(1)), model.iwae_bound(x, k=7, generator=_gen(1))
    )


def test_bad_input_errors_name_the_argument():
    model = VAE(4, hidden=[3], latent=2)
    with pytest.raises(ValueError, match=r"x: a Bernoulli model needs binary data"):
        model.elbo(torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match=r"x: contains 1 NaN"):
        model.iwae_bound(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]), k=3)
    with pytest.raises(ValueError, match=r"x: expected 4 features"):
        model.encode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, features\)"):
        model.reconstruct(torch.zeros(4))
    with pytest.raises(ValueError, match=r"k: expected a positive integer"):
        model.iwae_bound(torch.zeros(1, 4), k=0)
    with pytest.raises(ValueError, match=r"z: expected 2 features"):
        model.draw_x_given_z(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="likelihood"):
        VAE(4, likelihood="poisson")
    with pytest.raises(ValueError, match="latent"):
        VAE(4, latent=0)
    with pytest.raises(ValueError, match="hidden"):
        VAE(4, hidden=[3, 0])
    with pytest.raises(ValueError, match="activation"):
        VAE(4, activation="gelu")
    # a Gaussian decoder takes real values
    gaussian = VAE(4, hidden=[], latent=2, likelihood="gaussian")
    assert gaussian.elbo(torch.full((2, 4), 0.5)).shape == (2,)


# ----- objective ----------------------------------------------------------------------------------
def _binary(n: int, d: int, seed: int) -> torch.Tensor:
    probs = torch.rand(1, d, generator=_gen(seed))
    return (torch.rand(n, d, generator=_gen(seed + 1)) < probs).float()


def test_objective_losses_are_the_negative_bounds():
    model = VAE(6, hidden=[5], latent=2, seed=0)
    x = _binary(8, 6, 0)
    elbo_obj = VariationalBound(bound="elbo", k=3, init_output_bias=False)
    elbo_obj.setup(model, x)
    loss, metrics = elbo_obj.loss(model, x, _gen(1))
    torch.testing.assert_close(loss, -model.elbo(x, _gen(1), k=3).mean())
    assert metrics["elbo"] == pytest.approx(-float(loss.detach()), rel=1e-6)
    assert metrics["reconstruction"] - metrics["kl"] == pytest.approx(metrics["elbo"], rel=1e-5)
    iwae_obj = VariationalBound(bound="iwae", k=5, init_output_bias=False)
    iwae_obj.setup(model, x)
    loss, metrics = iwae_obj.loss(model, x, _gen(2))
    torch.testing.assert_close(loss, -model.log_prob(x, k=5, generator=_gen(2)).mean())
    assert metrics["iwae"] == pytest.approx(-float(loss.detach()), rel=1e-6)


def test_output_bias_starts_at_the_data_marginals():
    x = _binary(500, 6, 3)
    x[:, 0] = 0.0  # a pixel never on: the logit is clipped, not infinite
    model = VAE(6, hidden=[5], latent=2, seed=0)
    VariationalBound().setup(model, x)
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(torch.sigmoid(model.decoder_out.bias), p)


def test_kl_warmup_is_linear_in_examples_seen_and_checkpointed(tmp_path):
    from ebmlab.training import TrainConfig, train

    x = _binary(40, 6, 4)
    model = VAE(6, hidden=[5], latent=2, seed=0)
    objective = VariationalBound(warmup_epochs=4.0)
    objective.setup(model, x)
    assert objective.beta() == 0.0
    # beta = 0: the loss is the reconstruction term alone
    loss, metrics = objective.loss(model, x, _gen(5))
    assert float(loss.detach()) == pytest.approx(-metrics["reconstruction"], rel=1e-6)
    assert metrics["beta"] == 0.0
    config = TrainConfig(epochs=1, batch_size=10, progress=False, device="cpu")
    train(model, objective, x, config, out_dir=tmp_path)
    assert objective.beta() == pytest.approx(0.25)
    resumed = VariationalBound(warmup_epochs=4.0)
    train(
        VAE(6, hidden=[5], latent=2, seed=0),
        resumed,
        x,
        TrainConfig(epochs=3, batch_size=10, progress=False, device="cpu"),
        out_dir=tmp_path,
        resume=True,
    )
    assert resumed.beta() == pytest.approx(0.75)


def test_objective_rejects_bad_settings_and_data():
    with pytest.raises(ValueError, match="bound"):
        VariationalBound(bound="cubo")
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        VariationalBound(k=0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        VariationalBound(warmup_epochs=-1.0)
    with pytest.raises(ValueError, match="x_train: a Bernoulli model needs binary data"):
        VariationalBound().setup(VAE(4, hidden=[3], latent=2), torch.full((3, 4), 0.3))
    with pytest.raises(TypeError, match="model"):
        VariationalBound().setup(ebmlab.models.BernoulliRBM(4, 2), torch.zeros(3, 4))


@pytest.mark.parametrize("bound", ["elbo", "iwae"])
def test_training_on_digits_raises_the_bound(bound):
    from ebmlab import data
    from ebmlab.training import TrainConfig, train

    x, _ = data.load("digits", "train", binarize="stochastic")
    x_test, _ = data.load("digits", "test", binarize="stochastic")
    model = VAE(64, hidden=[32], latent=4, seed=0)
    before = model.bounds(x_test, k=50, generator=_gen(0)).iwae.mean()
    config = TrainConfig(epochs=5, batch_size=50, lr=3e-3, progress=False, device="cpu")
    train(model, VariationalBound(bound=bound, k=1 if bound == "elbo" else 5), x, config)
    after = model.bounds(x_test, k=50, generator=_gen(0)).iwae.mean()
    assert after > before + 10.0
    assert after > -30.0  # the independent-pixel baseline scores about -26.8 on these data


# ----- recipe -------------------------------------------------------------------------------------
def test_recipe_trains_evaluates_and_draws(tmp_path):
    import json

    import ebmlab.app.families.vae as family
    from ebmlab.app.cli import run_family
    from ebmlab.app.recipes import RECIPES
    from ebmlab.training import TrainConfig

    recipe = RECIPES["vae"]
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(hidden="16", latent=2, eval_k=5000)
    config = TrainConfig(epochs=2, batch_size=50, lr=3e-3, progress=False, device="cpu")
    metrics = run_family(recipe, "digits", options, config, tmp_path, evaluate=True, quick=True)
    assert metrics["log_likelihood_method"] == f"iwae-{family.QUICK_EVAL_K}"
    assert metrics["test_elbo"] <= metrics["test_log_likelihood"] < 0
    assert metrics["test_log_likelihood_se"] > 0 and metrics["active_units"] <= 2
    figures = json.loads((tmp_path / "figures.json").read_text())
    names = {f["path"] for f in figures}
    assert {"samples.png", "reconstructions.png", "latent.png", "manifold.png"} <= names
    assert all((tmp_path / name).stat().st_size > 0 for name in names)


def test_parse_hidden():
    from ebmlab.app.families.vae import parse_hidden

    assert parse_hidden("200,200") == [200, 200]
    assert parse_hidden("none") == [] and parse_hidden("") == []
    with pytest.raises(ValueError, match="--hidden"):
        parse_hidden("200,abc")
    with pytest.raises(ValueError, match="--hidden"):
        parse_hidden("0")
