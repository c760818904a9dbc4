"""Exact enumeration: log Z against brute force, log-probabilities, exact samples by chi-square."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from estimator_models import (
    TinyBoltzmann,
    all_binary,
    brute_rbm_log_z,
    chi_square_p,
    random_dbm,
    random_grbm,
    random_rbm,
    state_index,
)

from ebmlab.estimators import enumerate_states, exact_log_probs, exact_log_z, exact_sample
from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.models.ising import Ising
from ebmlab.models.rbm import BernoulliRBM


def test_enumerate_states_bit_order_and_spins():
    states = enumerate_states(3, spin_values=(-1.0, 1.0))
    assert states.shape == (8, 3) and states.dtype == torch.float64
    torch.testing.assert_close(states[6], torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(enumerate_states(3, 2, 4), enumerate_states(3)[2:4])


@pytest.mark.parametrize("shape", [(4, 6), (7, 3)])  # visible smaller / hidden smaller
def test_exact_log_z_rbm_matches_brute_force(shape):
    rbm = random_rbm(*shape, sigma=1.0, seed=3)
    assert exact_log_z(rbm) == pytest.approx(brute_rbm_log_z(rbm), abs=1e-9)


def test_exact_log_z_fully_visible_matches_brute_force():
    bm = TinyBoltzmann(6, seed=0)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))
    with torch.no_grad():
        brute = float(torch.logsumexp(-bm.energy(states).double(), 0))
    assert exact_log_z(bm) == pytest.approx(brute, abs=1e-5)
    ising = Ising(3, coupling=0.7, field=-0.2, boundary="periodic")
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=9)))
    brute = float(torch.logsumexp(-ising.energy(spins).double(), 0))
    assert exact_log_z(ising) == pytest.approx(brute, abs=1e-5)


@pytest.mark.parametrize("sizes", [[5, 3, 2], [4, 3, 3, 2], [3, 2, 2, 2, 2]])
def test_exact_log_z_dbm_matches_brute_force(sizes):
    dbm = random_dbm(sizes, seed=1)
    s = all_binary(dbm.n_total)
    with torch.no_grad():
        brute = float(torch.logsumexp(-dbm.energy(s), 0))
    assert exact_log_z(dbm) == pytest.approx(brute, abs=1e-9)
    assert exact_log_z(dbm) == pytest.approx(dbm.log_z(), abs=1e-9)


def test_exact_log_z_chunked_equals_single_chunk():
    # 2^16 states over 784 visible are enumerated in several chunks
    rbm = random_rbm(784, 13, sigma=0.1, seed=0)
    log_p = exact_log_probs(rbm, max_units=13)
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        h = enumerate_states(13)
        m = BernoulliRBM(784, 13).double()
        m.load_state_dict(rbm.state_dict())
        direct = float(torch.logsumexp(-m.free_energy_hidden(h), 0))
    assert exact_log_z(rbm) == pytest.approx(direct, abs=1e-9)


def test_exact_log_z_of_a_gaussian_rbm_by_quadrature_in_one_dimension():
    grbm = random_grbm(1, 3, scale=0.5, seed=4)
    v = torch.linspace(-12, 12, 200_001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        log_f = -grbm.free_energy(v)
    dv = float(v[1, 0] - v[0, 0])
    quadrature = float(torch.logsumexp(log_f, 0)) + math.log(dv)
    assert exact_log_z(grbm) == pytest.approx(quadrature, abs=1e-6)


def test_exact_log_z_errors():
    with pytest.raises(ValueError, match="2\\^30 states"):
        exact_log_z(BernoulliRBM(30, 30))
    with pytest.raises(TypeError, match="fully visible binary model"):
        exact_log_z(torch.nn.Linear(2, 2))


def test_exact_sample_matches_exact_probabilities():
    # 4 visible < 5 hidden: exact_log_probs gives the visible marginal p(v) (16 states), while
    # exact_sample draws h from its exact marginal (32 states) and then v ~ p(v | h)
    rbm = random_rbm(4, 5, sigma=1.5, seed=1)
    v = exact_sample(rbm, 20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(state_index(v), minlength=16)
    assert chi_square_p(counts, exact_log_probs(rbm).exp()) > 1e-6


def test_exact_sample_of_a_dbm_matches_the_joint_distribution():
    dbm = random_dbm([3, 2, 2], seed=2)
    x = exact_sample(dbm, 20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 7) and x.dtype == torch.float64
    states = enumerate_states(7)
    with torch.no_grad():
        probs = torch.softmax(-dbm.energy(states), 0)
    counts = torch.bincount(state_index(x), minlength=128)
    assert chi_square_p(counts, probs) > 1e-6


def test_exact_sample_of_a_gaussian_rbm_has_the_exact_mean():
    # E[v] = b + W E[h] with E[h] from the exact hidden marginal
    grbm = random_grbm(3, 4, scale=0.5, seed=5)
    with torch.no_grad():
        h = enumerate_states(4)
        p_h = torch.softmax(-grbm.free_energy_hidden(h), 0)
        mean = grbm.b + grbm.W @ (p_h @ h)
        v = exact_sample(grbm, 40000, torch.Generator().manual_seed(1))
    se = v.std(0) / math.sqrt(v.shape[0])
    assert ((v.mean(0) - mean).abs() < 5 * se).all()


def test_exact_sample_of_a_gaussian_rbm_has_the_exact_covariance():
    # E(v, h) = sum_i (v_i - b_i)^2 / (2 s_i^2) - c^T h - sum_i (v_i / s_i^2) (W h)_i; completing
    # the square in v: p(v | h) = N(b + W h, diag(s^2)) and p(h) ~ exp(c^T h + sum_i ((b_i +
    # (W h)_i)^2 - b_i^2) / (2 s_i^2)), so Cov[v] = diag(s^2) + W Cov[h] W^T (numpy, float64)
    sigma = np.array([0.5, 2.0, 0.7, 1.5])
    grbm = GaussianBernoulliRBM(4, 3, learn_sigma=True).double()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        grbm.W.copy_(torch.randn(4, 3, generator=g, dtype=torch.float64))
        grbm.b.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        grbm.c.copy_(torch.randn(3, generator=g, dtype=torch.float64) * 0.5)
        grbm.log_sigma.copy_(torch.from_numpy(np.log(sigma)))
    W, b, c = (p.detach().numpy() for p in (grbm.W, grbm.b, grbm.c))

    def energy(v, h):
        quadratic = ((v - b) ** 2 / (2 * sigma**2)).sum(-1)
        return quadratic - h @ c - ((v / sigma**2) * (h @ W.T)).sum(-1)

    # the parametrization read off the docstring is the model's energy
    rng = np.random.default_rng(0)
    v_test, h_test = rng.normal(size=(20, 4)), rng.integers(0, 2, size=(20, 3)).astype(float)
    with torch.no_grad():
        model_energy = grbm.energy(torch.from_numpy(v_test), torch.from_numpy(h_test)).numpy()
    np.testing.assert_allclose(model_energy, energy(v_test, h_test), rtol=1e-12, atol=1e-12)

    h = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    m = h @ W.T  # (8, 4): W h for every hidden state
    log_p = h @ c + (((b + m) ** 2 - b**2) / (2 * sigma**2)).sum(-1)
    p_h = np.exp(log_p - log_p.max())
    p_h /= p_h.sum()
    mean_h = p_h @ h
    cov_h = (h - mean_h).T @ ((h - mean_h) * p_h[:, None])
    mean = b + W @ mean_h
    cov = np.diag(sigma**2) + W @ cov_h @ W.T

    n = 40_000
    with torch.no_grad():
        v = exact_sample(grbm, n, torch.Generator().manual_seed(3)).numpy()
    centred = v - mean  # about the exact mean: E[centred_i centred_j] = cov_ij exactly
    products = centred[:, :, None] * centred[:, None, :]
    se = products.std(0, ddof=1) / math.sqrt(n)
    assert (np.abs(products.mean(0) - cov) < 5 * se).all(), (products.mean(0), cov, se)
    # the noise is what sets the variances here: sigma^2 against sigma^4 or 1 is many se apart
    assert (np.diag(cov) > 1.5 * np.diag(W @ cov_h @ W.T)).any()
