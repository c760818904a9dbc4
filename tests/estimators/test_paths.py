"""Annealing paths: each step's weight increment against log f_beta written out, both ends of the
path (log Z_0 and the model), transitions leaving f_beta invariant (chi-square against exact
probabilities, moments for Gaussian visibles), and how a model picks or supplies its path."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_models import (
    TinyBoltzmann,
    chi_square_p,
    random_dbm,
    random_grbm,
    random_rbm,
    state_index,
)
from torch.nn import functional as F

from ebmlab import models
from ebmlab.estimators import (
    BernoulliRBMPath,
    DBMPath,
    FullyVisiblePath,
    GaussianRBMPath,
    ais,
    annealing_path,
    enumerate_states,
    exact_log_z,
    paths,
)

# (beta_prev, beta): a small step (the float32 softplus difference) and a jump (float64 direct)
STEPS = [(0.3, 0.31), (0.0, 1.0)]


# ----- log f_beta written out ---------------------------------------------------------------------
def rbm_log_f(rbm, b_base, beta, v):
    a = torch.addmm(rbm.c, v, rbm.W)
    return (1 - beta) * (v @ b_base) + beta * (v @ rbm.b) + F.softplus(beta * a).sum(-1)


def grbm_log_f(grbm, beta, v):
    a = torch.addmm(grbm.c, v * grbm.precision(), grbm.W)
    quadratic = ((v - grbm.b) ** 2 * grbm.precision() / 2).sum(-1)
    return -quadratic + F.softplus(beta * a).sum(-1)


def dbm_log_f(dbm, b_base, beta, layers):
    even_hidden = range(2, dbm.n_layers + 1, 2)
    linear = layers[0] @ dbm.biases[0] + sum(layers[l] @ dbm.biases[l] for l in even_hidden)
    out = (1 - beta) * (layers[0] @ b_base) + beta * linear
    for l in range(1, dbm.n_layers + 1, 2):
        out = out + F.softplus(beta * dbm.layer_input(layers, l)).sum(-1)
    return out


def dbm_states(dbm, even_states):
    """Even-layer states (n, sum of even sizes) as a list of every layer (odd ones zero)."""
    even = list(range(0, dbm.n_layers + 1, 2))
    pieces = torch.split(even_states, [dbm.layer_sizes[l] for l in even], 1)
    layers = [torch.zeros(even_states.shape[0], n, dtype=torch.float64) for n in dbm.layer_sizes]
    for l, h in zip(even, pieces):
        layers[l] = h
    return layers


def bernoulli_rbm_case():
    rbm = random_rbm(5, 4, sigma=1.0, seed=7).double()
    b_base = torch.linspace(-1.0, 0.5, 5, dtype=torch.float64)
    path = BernoulliRBMPath(rbm, base_bias=b_base)
    states = enumerate_states(5)
    return rbm, path, states, lambda beta, v: rbm_log_f(rbm, b_base, beta, v)


def dbm_case(sizes):
    dbm = random_dbm(sizes, seed=4)
    b_base = torch.linspace(-0.5, 0.5, sizes[0], dtype=torch.float64)
    path = DBMPath(dbm, base_bias=b_base)
    n_even = sum(sizes[0::2])
    states = dbm_states(dbm, enumerate_states(n_even))
    return dbm, path, states, lambda beta, layers: dbm_log_f(dbm, b_base, beta, layers)


def fully_visible_case():
    ising = models.Ising(3, coupling=0.4, field=0.2, boundary="periodic").double()
    path = FullyVisiblePath(ising)
    states = enumerate_states(9, spin_values=(-1.0, 1.0))
    return ising, path, states, lambda beta, x: -beta * ising.energy(x).double()


DISCRETE = {
    "bernoulli-rbm": bernoulli_rbm_case,
    "dbm-2": lambda: dbm_case([4, 3, 2]),
    "dbm-3": lambda: dbm_case([3, 2, 2, 2]),
    "fully-visible": fully_visible_case,
}


# ----- increments and ends -----------------------------------------------------------------------
@torch.no_grad()
@pytest.mark.parametrize("case", list(DISCRETE))
@pytest.mark.parametrize(("beta_prev", "beta"), STEPS)
def test_increment_is_the_log_ratio_of_the_intermediate_densities(case, beta_prev, beta):
    _, path, states, log_f = DISCRETE[case]()
    increment, same = path.step(states, beta_prev, beta, torch.Generator(), False)
    assert same is states and increment.dtype == torch.float64
    expected = log_f(beta, states) - log_f(beta_prev, states)
    torch.testing.assert_close(increment, expected, atol=1e-9, rtol=1e-9)


@torch.no_grad()
@pytest.mark.parametrize("case", list(DISCRETE))
def test_path_runs_from_its_base_normalizer_to_the_model(case):
    model, path, states, log_f = DISCRETE[case]()
    assert float(torch.logsumexp(log_f(0.0, states), 0)) == pytest.approx(path.log_z_base)
    assert float(torch.logsumexp(log_f(1.0, states), 0)) == pytest.approx(exact_log_z(model))


@torch.no_grad()
def test_gaussian_path_increment_ends_and_base_normalizer():
    grbm = random_grbm(1, 3, scale=0.7, seed=2)
    path = GaussianRBMPath(grbm)
    v = torch.linspace(-10, 10, 100_001, dtype=torch.float64)[:, None]
    for beta_prev, beta in STEPS:
        increment, _ = path.step(v, beta_prev, beta, torch.Generator(), False)
        expected = grbm_log_f(grbm, beta, v) - grbm_log_f(grbm, beta_prev, v)
        torch.testing.assert_close(increment, expected)
    log_dv = math.log(float(v[1, 0] - v[0, 0]))
    base = float(torch.logsumexp(grbm_log_f(grbm, 0.0, v), 0)) + log_dv
    assert base == pytest.approx(path.log_z_base, abs=1e-6)
    model = float(torch.logsumexp(grbm_log_f(grbm, 1.0, v), 0)) + log_dv
    assert model == pytest.approx(exact_log_z(grbm), abs=1e-6)


# ----- transitions -------------------------------------------------------------------------------
def _rows(states, index):
    return [s[index] for s in states] if isinstance(states, list) else states[index]


def _index(x):
    if isinstance(x, list):  # DBM: the even layers, concatenated
        return state_index(torch.cat(x[0::2], 1))
    return state_index((x + 1) / 2 if float(x.min()) < 0 else x)


@torch.no_grad()
@pytest.mark.parametrize("case", list(DISCRETE))
def test_transition_leaves_the_intermediate_density_invariant(case):
    _, path, states, log_f = DISCRETE[case]()
    beta = 0.7
    p = torch.softmax(log_f(beta, states), 0)
    g = torch.Generator().manual_seed(0)
    x = _rows(states, torch.multinomial(p, 20000, replacement=True, generator=g))
    _, moved = path.step(x, beta, beta, g, True)
    counts = torch.bincount(_index(moved), minlength=p.numel())
    assert chi_square_p(counts, p) > 1e-6
    # the chain moved: a transition that returns its input would pass the test above
    assert not torch.equal(_index(moved), _index(x))


@torch.no_grad()
def test_gaussian_transition_keeps_the_mixture_moments():
    # f_beta is a mixture over h of N(b + beta W h, sigma^2) with log weights
    # beta c^T h + sum_i ((b_i + beta (W h)_i)^2 - b_i^2) / (2 sigma_i^2)
    grbm, beta, n = random_grbm(3, 4, scale=0.8, seed=3), 0.6, 40000
    path = GaussianRBMPath(grbm)
    h = enumerate_states(4)
    means = grbm.b + beta * h @ grbm.W.T
    w = torch.softmax(
        beta * h @ grbm.c + ((means**2 - grbm.b**2) * grbm.precision() / 2).sum(-1), 0
    )
    g = torch.Generator().manual_seed(1)
    pick = torch.multinomial(w, n, replacement=True, generator=g)
    v = means[pick] + grbm.sigma() * torch.randn(n, 3, generator=g, dtype=torch.float64)
    _, moved = path.step(v, beta, beta, g, True)
    first, second = w @ means, w @ (means**2 + grbm.sigma() ** 2)
    for values, exact in ((moved, first), (moved**2, second)):
        se = values.std(0) / math.sqrt(n)
        assert ((values.mean(0) - exact).abs() < 5 * se).all()


@torch.no_grad()
def test_float32_increment_keeps_full_relative_precision():
    # at beta = 0.95 with steps of 1e-5 the softplus values are ~100 times the increment per
    # unit; a plain float32 difference loses ~3 digits (relative error ~4e-3), the engine's form
    # keeps float32 precision of the increment itself
    rbm = random_rbm(784, 50, sigma=0.3, seed=8)
    v = (torch.rand(100, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    increment, _ = BernoulliRBMPath(rbm).step(v, 0.95, 0.95001, torch.Generator(), False)
    rbm64 = random_rbm(784, 50, sigma=0.3, seed=8).double()
    expected = rbm_log_f(rbm64, rbm64.b, 0.95001, v.double()) - rbm_log_f(
        rbm64, rbm64.b, 0.95, v.double()
    )
    assert ((increment - expected).abs() / expected.abs()).max() < 1e-5


@torch.no_grad()
def test_base_samples_follow_the_base_model():
    _, path, states, log_f = DISCRETE["bernoulli-rbm"]()
    v = path.sample_base(20000, torch.Generator().manual_seed(2))
    counts = torch.bincount(state_index(v), minlength=32)
    assert chi_square_p(counts, torch.softmax(log_f(0.0, states), 0)) > 1e-6
    _, path, states, log_f = DISCRETE["dbm-2"]()
    layers = path.sample_base(20000, torch.Generator().manual_seed(3))
    counts = torch.bincount(_index(layers), minlength=2**6)
    assert chi_square_p(counts, torch.softmax(log_f(0.0, states), 0)) > 1e-6


# ----- choosing a path ---------------------------------------------------------------------------
def test_annealing_path_is_chosen_by_attributes():
    assert isinstance(annealing_path(models.BernoulliRBM(4, 3)), BernoulliRBMPath)
    assert isinstance(annealing_path(models.GaussianBernoulliRBM(4, 3)), GaussianRBMPath)
    assert isinstance(annealing_path(models.DeepBoltzmannMachine([4, 3, 2])), DBMPath)
    assert isinstance(annealing_path(models.Ising(3)), FullyVisiblePath)
    assert isinstance(annealing_path(models.BoltzmannMachine(4, 2)), FullyVisiblePath)
    assert isinstance(annealing_path(TinyBoltzmann(4, seed=0)), FullyVisiblePath)
    # a deep belief net is annealed through its top RBM
    assert isinstance(annealing_path(models.DeepBeliefNet([4, 3, 2]).top), BernoulliRBMPath)
    with pytest.raises(TypeError, match="Bernoulli and Gaussian-Bernoulli RBMs"):
        annealing_path(models.GaussianHiddenRBM(4, 2))
    with pytest.raises(TypeError, match="annealing_path method"):
        annealing_path(models.DeepBeliefNet([4, 3, 2]))


class IndependentPath:
    """exp(beta theta^T x) on {0,1}^n from uniform states; each transition an exact draw."""

    def __init__(self, theta: torch.Tensor) -> None:
        self.theta = theta
        self.log_z_base = theta.numel() * math.log(2.0)

    def sample_base(self, n_runs, generator):
        return (torch.rand(n_runs, self.theta.numel(), generator=generator) < 0.5).double()

    def from_samples(self, x):
        return torch.as_tensor(x, dtype=torch.float64)

    def step(self, x, beta_prev, beta, generator, transition):
        increment = (beta - beta_prev) * (x @ self.theta)
        if transition:
            u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
            x = (u < torch.sigmoid(beta * self.theta)).double()
        return increment, x


class IndependentUnits(torch.nn.Module):
    """A model that supplies its own path; its fully visible attributes are decoys."""

    spin_values = (0.0, 1.0)

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(theta)
        self.n_units = theta.numel()

    def energy(self, x):
        raise AssertionError("the model's own path comes first")

    def annealing_path(self, data=None, base_bias=None):
        return IndependentPath(self.theta.detach())


def test_a_model_joins_ais_through_its_own_path():
    theta = torch.linspace(-2.0, 3.0, 12, dtype=torch.float64)
    model = IndependentUnits(theta)
    exact = float(F.softplus(theta).sum())
    result = ais(model, n_betas=200, n_runs=200, seed=0)
    assert abs(result.log_z - exact) < 5 * result.log_z_se + 1e-9
    assert result.log_z_base == pytest.approx(12 * math.log(2.0))


@torch.no_grad()
@pytest.mark.parametrize("delta", [1e-5, 1e-4, 1e-3])
def test_the_midpoint_increment_stays_within_its_error_bound(delta):
    # float32 pre-activations at their bound: where the midpoint rule is used, its error against
    # the float64 softplus difference is within MIDPOINT_TOLERANCE (plus float32 rounding of
    # the sum); where the bound is too loose for it, the exact form is used instead
    bound = 30.0
    a = (torch.rand(100, 500, generator=torch.Generator().manual_seed(3)) * 2 - 1) * bound
    beta_prev, beta = 0.9, 0.9 + delta
    got = paths._hidden_log_ratio(a, torch.sigmoid(beta * a), beta, beta_prev, bound)
    a64 = a.double()
    want = (F.softplus(beta * a64) - F.softplus(beta_prev * a64)).sum(-1)
    midpoint = 500 * paths._MIDPOINT_CONSTANT * (delta * bound) ** 3 <= paths.MIDPOINT_TOLERANCE
    assert midpoint == (delta <= 1e-4)
    rounding = 1e-6 * want.abs().max()
    assert (got - want).abs().max() <= paths.MIDPOINT_TOLERANCE + rounding
