"""BernoulliRBM and GaussianBernoulliRBM: exact enumeration, closed forms, bad input, stability."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.samplers import bernoulli_draw

torch.set_default_dtype(torch.float32)


def all_binary(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=dtype)


def random_rbm(d: int = 5, h: int = 4, scale: float = 1.0, seed: int = 0) -> BernoulliRBM:
    rbm = BernoulliRBM(d, h, seed=seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64) * scale)
        rbm.b.copy_(torch.randn(d, generator=g, dtype=torch.float64) * scale)
        rbm.c.copy_(torch.randn(h, generator=g, dtype=torch.float64) * scale)
    return rbm


@torch.no_grad()
def joint_table(rbm: BernoulliRBM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (v, h) pairs and their -E, as (n_v, n_h) tables."""
    vs, hs = all_binary(rbm.n_visible), all_binary(rbm.n_hidden)
    v = vs[:, None, :].expand(-1, hs.shape[0], -1).reshape(-1, rbm.n_visible)
    h = hs[None, :, :].expand(vs.shape[0], -1, -1).reshape(-1, rbm.n_hidden)
    neg_e = -rbm.energy(v, h).view(vs.shape[0], hs.shape[0])
    return vs, hs, neg_e


# ----- exact enumeration -------------------------------------------------------------------------
def test_free_energy_matches_enumeration() -> None:
    rbm = random_rbm()
    vs, _, neg_e = joint_table(rbm)
    torch.testing.assert_close(rbm.free_energy(vs), -torch.logsumexp(neg_e, 1))


def test_free_energy_hidden_matches_enumeration() -> None:
    rbm = random_rbm()
    _, hs, neg_e = joint_table(rbm)
    torch.testing.assert_close(rbm.free_energy_hidden(hs), -torch.logsumexp(neg_e, 0))


def test_conditionals_match_enumeration() -> None:
    rbm = random_rbm()
    vs, hs, neg_e = joint_table(rbm)
    p_h = torch.softmax(neg_e, 1)  # p(h | v) rows
    torch.testing.assert_close(rbm.p_h_given_v(vs), p_h @ hs)
    p_v = torch.softmax(neg_e, 0)  # p(v | h) columns
    torch.testing.assert_close(rbm.p_v_given_h(hs), p_v.T @ vs)


def test_gibbs_samples_follow_exact_distribution() -> None:
    rbm = random_rbm(d=4, h=3, scale=0.8)
    _, _, neg_e = joint_table(rbm)
    p = torch.softmax(torch.logsumexp(neg_e, 1), 0)
    g = torch.Generator().manual_seed(3)
    v = bernoulli_draw(torch.full((20000, 4), 0.5, dtype=torch.float64), g)
    for _ in range(30):
        v, _ = rbm.gibbs_vhv(v, g)
    index = (v * 2 ** torch.arange(3, -1, -1, dtype=torch.float64)).sum(1).long()
    counts = torch.bincount(index, minlength=16).double()
    expected = p * v.shape[0]
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 15 degrees of freedom: P(chi2 > 45) ~ 7e-5
    assert chi2 < 45, chi2


def test_pseudo_likelihood_matches_enumeration() -> None:
    rbm = random_rbm()
    vs, _, neg_e = joint_table(rbm)
    log_p = torch.logsumexp(neg_e, 1)
    index = {tuple(v.tolist()): i for i, v in enumerate(vs)}
    expected = torch.empty(vs.shape)
    for n, v in enumerate(vs):
        for i in range(rbm.n_visible):
            flipped = v.clone()
            flipped[i] = 1 - flipped[i]
            a, b = log_p[n], log_p[index[tuple(flipped.tolist())]]
            expected[n, i] = a - torch.logaddexp(a, b)
    torch.testing.assert_close(rbm.log_conditionals(vs), expected.double())
    torch.testing.assert_close(rbm.pseudo_log_likelihood(vs), expected.sum(1).double())
    per_feature = rbm.pseudo_log_likelihood(vs, per="feature")
    torch.testing.assert_close(per_feature, expected.mean(1).double())
    with pytest.raises(ValueError, match="per"):
        rbm.pseudo_log_likelihood(vs, per="pixel")


def test_pseudo_likelihood_chunks_agree() -> None:
    from ebmlab.models import rbm as rbm_module

    rbm = random_rbm(d=6, h=5)
    v = all_binary(6)
    full = rbm.log_conditionals(v)
    old = rbm_module._PSEUDO_LIKELIHOOD_CHUNK
    rbm_module._PSEUDO_LIKELIHOOD_CHUNK = 60  # two rows per chunk
    try:
        torch.testing.assert_close(rbm.log_conditionals(v), full)
    finally:
        rbm_module._PSEUDO_LIKELIHOOD_CHUNK = old


def test_reconstruction_error_closed_form() -> None:
    rbm = random_rbm()
    with torch.no_grad():
        rbm.W.zero_()
    v = all_binary(5)
    expected = (torch.sigmoid(rbm.b) - v).square().sum(1)
    torch.testing.assert_close(rbm.reconstruction_error(v), expected)


def test_completion_matches_exact_conditional() -> None:
    rbm = random_rbm(d=5, h=3, scale=1.0, seed=4)
    vs, _, neg_e = joint_table(rbm)
    log_p = torch.logsumexp(neg_e, 1)
    known = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    mask = torch.tensor([True, True, True, False, False])
    rows = (vs[:, mask] == known[mask]).all(1)
    p_cond = torch.softmax(log_p[rows], 0)
    exact = p_cond @ vs[rows][:, ~mask]
    g = torch.Generator().manual_seed(0)
    n = 8000
    out = rbm.complete(known.expand(n, -1), mask, n_steps=30, generator=g)
    assert torch.equal(out[:, mask], known[mask].expand(n, -1))
    estimate = out[:, ~mask].mean(0)
    se = out[:, ~mask].std(0) / math.sqrt(n)
    assert ((estimate - exact).abs() < 5 * se + 1e-9).all(), (estimate, exact)


def test_completion_bad_mask() -> None:
    rbm = random_rbm()
    v = torch.zeros(2, 5, dtype=torch.float64)
    with pytest.raises(TypeError, match="mask"):
        rbm.complete(v, torch.ones(5))
    with pytest.raises(ValueError, match="mask"):
        rbm.complete(v, torch.ones(4, dtype=torch.bool))


def test_init_visible_from_data_reproduces_marginals() -> None:
    rbm = BernoulliRBM(4, 3, seed=0)
    x = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 1], [1, 0, 1, 0], [1, 0, 1, 1]])
    rbm.init_visible_from_data(x)
    expected = x.mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(torch.sigmoid(rbm.b), expected)


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (torch.full((2, 5), 0.5), "binary"),
        (torch.tensor([[0.0, 1, float("nan"), 0, 1]]), "NaN"),
        (torch.zeros(2, 4), "5 features"),
        (torch.zeros(5), "shape"),
    ],
)
def test_bad_input_is_named(data: torch.Tensor, message: str) -> None:
    rbm = BernoulliRBM(5, 3, seed=0)
    with pytest.raises(ValueError, match=message) as info:
        rbm.pseudo_log_likelihood(data)
    assert "v" in str(info.value)


@pytest.mark.parametrize("per", ["example", "feature"])
def test_pseudo_likelihood_of_no_examples_is_a_named_error(per: str) -> None:
    """An empty batch has no pseudo-likelihood: a ValueError naming ``v`` (it used to fail
    inside torch.cat), while a single example still gets its exact value."""
    rbm = random_rbm()
    with pytest.raises(ValueError, match=r"^v: expected at least one row, got shape \(0, 5\)"):
        rbm.pseudo_log_likelihood(torch.zeros(0, rbm.n_visible), per=per)
    one = rbm.pseudo_log_likelihood(torch.ones(1, rbm.n_visible), per=per)
    every = rbm.pseudo_log_likelihood(all_binary(rbm.n_visible), per=per)
    torch.testing.assert_close(one, every[-1:])


@pytest.mark.parametrize(
    "sizes, name",
    [
        ((0, 3), "n_visible"),
        ((3, -1), "n_hidden"),
        ((2.5, 3), "n_visible"),
        ((True, 3), "n_visible"),
    ],
)
def test_bad_sizes(sizes: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}: expected a positive integer"):
        BernoulliRBM(*sizes)


# ----- stability (learnergy's probabilities drift out of [0, 1]) ----------------------------------
def test_probabilities_stay_in_unit_interval_at_extreme_weights() -> None:
    rbm = BernoulliRBM(50, 40, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(50, 40, generator=g) * 1e4)
        rbm.b.copy_(torch.randn(50, generator=g) * 1e4)
        rbm.c.copy_(torch.randn(40, generator=g) * 1e4)
    v = bernoulli_draw(torch.full((64, 50), 0.5), g)
    for _ in range(2000):
        v, h = rbm.gibbs_vhv(v, g)
    for p in (rbm.p_h_given_v(v), rbm.p_v_given_h(h)):
        assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert set(v.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(rbm.free_energy(v)).all()
    assert torch.isfinite(rbm.pseudo_log_likelihood(v)).all()


def test_tempered_free_energy_matches_brute_force() -> None:
    rbm = random_rbm(d=4, h=3, scale=0.8)
    v, h = (torch.tensor(list(itertools.product([0.0, 1.0], repeat=n))).double() for n in (4, 3))
    with torch.no_grad():
        joint = rbm.energy(v.repeat_interleave(8, 0), h.repeat(16, 1)).reshape(16, 8)
        for beta in (1.0, 0.4):
            brute = -torch.logsumexp(-beta * joint, dim=1)
            torch.testing.assert_close(rbm.tempered_free_energy(v, beta), brute)
        torch.testing.assert_close(rbm.tempered_free_energy(v, 1.0), rbm.free_energy(v))
        betas = torch.linspace(0.1, 1.0, 16, dtype=torch.float64)  # one beta per row
        torch.testing.assert_close(
            rbm.tempered_free_energy(v, betas), -torch.logsumexp(-betas[:, None] * joint, dim=1)
        )


# ----- Gaussian-Bernoulli ------------------------------------------------------------------------
def random_grbm(d: int = 3, h: int = 4, seed: int = 0) -> GaussianBernoulliRBM:
    grbm = GaussianBernoulliRBM(d, h, seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        grbm.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64) * 0.5)
        grbm.b.copy_(torch.randn(d, generator=g, dtype=torch.float64))
        grbm.c.copy_(torch.randn(h, generator=g, dtype=torch.float64))
        grbm.log_sigma.copy_(torch.randn(d, generator=g, dtype=torch.float64) * 0.3)
    return grbm


def test_grbm_free_energy_matches_enumeration() -> None:
    grbm = random_grbm()
    v = torch.randn(7, 3, dtype=torch.float64)
    hs = all_binary(4)
    e = torch.stack([grbm.energy(v, h.expand(7, -1)) for h in hs], 1)
    torch.testing.assert_close(grbm.free_energy(v), -torch.logsumexp(-e, 1))


def test_grbm_hidden_conditional_matches_enumeration() -> None:
    grbm = random_grbm()
    v = torch.randn(7, 3, dtype=torch.float64)
    hs = all_binary(4)
    e = torch.stack([grbm.energy(v, h.expand(7, -1)) for h in hs], 1)
    torch.testing.assert_close(grbm.p_h_given_v(v), torch.softmax(-e, 1) @ hs)


def test_grbm_visible_conditional_is_the_stated_gaussian() -> None:
    grbm = random_grbm()
    h = all_binary(4)
    v1, v2 = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    mean, sigma = grbm.mean_v_given_h(h), grbm.sigma()
    normal = torch.distributions.Normal(mean, sigma)
    expected = normal.log_prob(v1).sum(1) - normal.log_prob(v2).sum(1)
    torch.testing.assert_close(grbm.energy(v2, h) - grbm.energy(v1, h), expected)


def test_grbm_log_partition_by_quadrature() -> None:
    grbm = random_grbm(d=2, h=3)
    log_z = torch.logsumexp(-grbm.free_energy_hidden(all_binary(3)), 0)
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    v = torch.stack([x.flatten(), y.flatten()], 1)
    cell = (grid[1] - grid[0]) ** 2
    numeric = torch.logsumexp(-grbm.free_energy(v), 0) + torch.log(cell)
    torch.testing.assert_close(log_z, numeric, atol=1e-6, rtol=0)


def test_grbm_sigma_floor_and_unit_variance() -> None:
    grbm = GaussianBernoulliRBM(3, 2, min_sigma=0.1)
    with torch.no_grad():
        grbm.log_sigma.fill_(-10.0)
    torch.testing.assert_close(grbm.sigma(), torch.full((3,), 0.1))
    fixed = GaussianBernoulliRBM(3, 2, learn_sigma=False)
    assert "log_sigma" not in dict(fixed.named_parameters())
    torch.testing.assert_close(fixed.sigma(), torch.ones(3))


def test_grbm_sampling_moments() -> None:
    grbm = random_grbm(d=2, h=2, seed=1)
    hs = all_binary(2)
    log_z_h = -grbm.free_energy_hidden(hs)
    p_h = torch.softmax(log_z_h, 0)
    mean = p_h @ grbm.mean_v_given_h(hs)
    g = torch.Generator().manual_seed(0)
    v = grbm.b.detach().expand(20000, -1).clone()
    for _ in range(40):
        v, _ = grbm.gibbs_vhv(v, g)
    se = v.std(0) / math.sqrt(v.shape[0])
    assert ((v.mean(0) - mean).abs() < 5 * se).all()


def test_grbm_gibbs_covariance_matches_exact() -> None:
    """The GRBM Gibbs chain's visible samples have the exact mean and covariance. Completing the
    square in the energy E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - (v / sigma^2)^T W h
    gives v | h ~ N(m(h), diag(sigma^2)) with m(h) = b + W h, and integrating v out
    log p(h) = c^T h + sum_i (m_i(h)^2 - b_i^2) / (2 sigma_i^2) + const (the Gaussian's
    normalizer does not depend on h). So, by the law of total
    covariance, Cov[v] = diag(sigma^2) + W Cov[h] W^T, with Cov[h] from the 2^3 hidden states
    (float64). 40000 independent chains from v = b, 100 sweeps, one state per chain: the sample
    covariance's standard error per entry is the standard deviation of the centred products
    over the chains / sqrt(n). sigma = (0.5, 1.4, 0.8) differs from 1 and between units, so a
    noise scale of sigma^2 (or 1) in ``sample_v`` is far outside 5 standard errors."""
    sigma = torch.tensor([0.5, 1.4, 0.8], dtype=torch.float64)
    W = torch.tensor([[0.5, -0.4, 0.3], [1.2, 0.9, -1.0], [-0.5, 0.7, 0.6]], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64)
    c = torch.tensor([-0.5, 0.2, 0.4], dtype=torch.float64)
    grbm = GaussianBernoulliRBM(3, 3, seed=0).double()
    with torch.no_grad():
        grbm.W.copy_(W)
        grbm.b.copy_(b)
        grbm.c.copy_(c)
        grbm.log_sigma.copy_(sigma.log())
    hs = all_binary(3)
    m = b + hs @ W.T  # E[v | h], (8, 3)
    p_h = torch.softmax(hs @ c + ((m.square() - b.square()) / (2 * sigma**2)).sum(1), 0)
    mean_h = p_h @ hs
    cov_h = (hs - mean_h).T @ ((hs - mean_h) * p_h[:, None])
    mean = b + W @ mean_h
    cov = torch.diag(sigma**2) + W @ cov_h @ W.T

    n = 40000
    g = torch.Generator().manual_seed(0)
    v = b.expand(n, -1).clone()
    for _ in range(100):
        v, _ = grbm.gibbs_vhv(v, g)
    se_mean = v.std(0) / math.sqrt(n)
    assert ((v.mean(0) - mean).abs() < 5 * se_mean).all(), (v.mean(0), mean, se_mean)
    d = v - v.mean(0)
    products = d[:, :, None] * d[:, None, :]  # (n, 3, 3), independent across chains
    sample_cov = products.mean(0)
    se = products.std(0) / math.sqrt(n)
    assert ((sample_cov - cov).abs() < 5 * se).all(), (sample_cov, cov, se)
    # power: the hidden units' part W Cov[h] W^T is resolved too (not only diag(sigma^2))
    assert ((cov - torch.diag(sigma**2)).abs() / se).max() > 10
