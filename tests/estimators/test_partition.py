"""Partition functions: exact enumeration vs brute force, AIS and reverse AIS vs exact log Z."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab.models.ising import Ising
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.partition import (
    AISResult,
    AISWarning,
    ais,
    ais_schedule,
    base_rate_bias,
    enumerate_states,
    exact_log_probs,
    exact_log_z,
    exact_sample,
    log_likelihood,
    reverse_ais,
)

# ----- models ------------------------------------------------------------------------------------
# Models are built from seeds far from the samplers' (0, 1, 2, ...): a model whose parameters
# come from the same random stream as AIS's first draws starts some runs exactly in its modes.
MODEL_SEED = 1_000_003


def random_rbm(n_visible: int, n_hidden: int, sigma: float, seed: int) -> BernoulliRBM:
    """Random weights N(0, sigma^2), visible biases N(-1, 1), hidden biases N(0, 1)."""
    rbm = BernoulliRBM(n_visible, n_hidden, init_std=sigma, seed=MODEL_SEED + seed)
    g = torch.Generator().manual_seed(MODEL_SEED + seed + 1000)
    with torch.no_grad():
        rbm.b.normal_(-1.0, 1.0, generator=g)
        rbm.c.normal_(0.0, 1.0, generator=g)
    return rbm


def hopfield_rbm(n_patterns: int, weight: float, seed: int) -> BernoulliRBM:
    """A multimodal 784 x 2P RBM: hidden pairs with weights +-w (2 p - 1) for P random patterns
    p and c = -sum_i W_ij / 2, so that F(v) = F(1 - v) and the free energy is about
    -(w/2) sum_j |m_j| in the overlaps m_j with the patterns: modes near +-every pattern,
    separated by barriers that grow with w (about 4 nats at w = 0.2, 9 at 0.3)."""
    g = torch.Generator().manual_seed(MODEL_SEED + seed)
    patterns = (torch.rand(n_patterns, 784, generator=g) < 0.5).float()
    columns = weight * (2 * patterns - 1)
    W = torch.cat([columns, -columns]).T.contiguous()
    rbm = BernoulliRBM(784, 2 * n_patterns)
    with torch.no_grad():
        rbm.W.copy_(W)
        rbm.b.zero_()
        rbm.c.copy_(-W.sum(0) / 2)
    return rbm


class TinyBoltzmann(torch.nn.Module):
    """Fully visible Boltzmann machine E(s) = -s^T W s / 2 - b^T s on {0,1}^n (the protocol)."""

    spin_values = (0.0, 1.0)

    def __init__(self, n: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(MODEL_SEED + seed)
        W = torch.randn(n, n, generator=g)
        self.W = torch.nn.Parameter((W + W.T) / 2 * (1 - torch.eye(n)))
        self.b = torch.nn.Parameter(torch.randn(n, generator=g))
        self.n_units = n

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((s @ self.W) * s).sum(-1) - s @ self.b


def brute_rbm_log_z(rbm: BernoulliRBM) -> float:
    """log sum over every joint (v, h) of exp(-E(v, h)), float64."""
    m = BernoulliRBM(rbm.n_visible, rbm.n_hidden).double()
    m.load_state_dict(rbm.state_dict())
    v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=rbm.n_visible)), dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=rbm.n_hidden)), dtype=torch.float64)
    vv = v.repeat_interleave(h.shape[0], 0)
    hh = h.repeat(v.shape[0], 1)
    with torch.no_grad():
        return float(torch.logsumexp(-m.energy(vv, hh), 0))


# ----- exact enumeration -------------------------------------------------------------------------
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


def test_exact_log_z_errors():
    with pytest.raises(ValueError, match="2\\^30 states"):
        exact_log_z(BernoulliRBM(30, 30))
    with pytest.raises(TypeError, match="fully visible binary model"):
        exact_log_z(torch.nn.Linear(2, 2))


def test_exact_sample_matches_exact_probabilities():
    from scipy.stats import chi2

    # 4 visible < 5 hidden: exact_log_probs gives the visible marginal p(v) (16 states), while
    # exact_sample draws h from its exact marginal (32 states) and then v ~ p(v | h)
    rbm = random_rbm(4, 5, sigma=1.5, seed=1)
    v = exact_sample(rbm, 20000, torch.Generator().manual_seed(0))
    index = (v * 2 ** torch.arange(4)).sum(1).long()
    counts = torch.bincount(index, minlength=16).double()
    expected = 20000 * exact_log_probs(rbm).exp()
    small = expected < 5  # merge rare states into one bin
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert chi2.sf(stat, counts.numel() - 1) > 1e-6


# ----- schedules and base model ------------------------------------------------------------------
def test_ais_schedule_is_salakhutdinov_murray():
    betas = ais_schedule(14500)
    assert betas.dtype == torch.float64 and betas.numel() == 14501
    steps = betas.diff()
    assert steps[:500].allclose(torch.full((500,), 1e-3, dtype=torch.float64))
    assert steps[500:4500].allclose(torch.full((4000,), 1e-4, dtype=torch.float64))
    assert steps[4500:].allclose(torch.full((10000,), 1e-5, dtype=torch.float64))
    assert float(betas[500]) == 0.5 and float(betas[4500]) == pytest.approx(0.9)
    short = ais_schedule(1450)  # scaled by 1/10: steps 1e-2, 1e-3, 1e-4
    assert short.numel() == 1451 and float(short.diff()[0]) == pytest.approx(1e-2)
    assert float(short[0]) == 0.0 and float(short[-1]) == 1.0 and (short.diff() > 0).all()


def test_schedule_errors():
    rbm = random_rbm(5, 3, 0.1, 0)
    with pytest.raises(ValueError, match="n_betas"):
        ais_schedule(0)
    with pytest.raises(ValueError, match="betas"):
        ais(rbm, betas=[])
    with pytest.raises(ValueError, match="start at 0 and end at 1"):
        ais(rbm, betas=[0.0, 0.5])
    with pytest.raises(ValueError, match="non-decreasing"):
        ais(rbm, betas=[0.0, 0.6, 0.5, 1.0])
    with pytest.raises(ValueError, match="n_runs"):
        ais(rbm, n_runs=0)
    with pytest.raises(ValueError, match="data"):
        ais(rbm, n_betas=10, data=torch.zeros(4, 6))
    with pytest.raises(ValueError, match="v_init"):
        reverse_ais(rbm, torch.zeros(4, 6), n_betas=10)


def test_base_rate_bias_formula():
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    # N = 4, one batch: p = (count + 5) / (4 + 5)
    p = (torch.tensor([3.0, 0.0, 3.0], dtype=torch.float64) + 5) / 9
    torch.testing.assert_close(base_rate_bias(data), torch.log(p / (1 - p)))


# ----- AIS ---------------------------------------------------------------------------------------
def test_ais_exact_on_tiny_rbm_is_unbiased_in_z():
    # E[w] = Z_B / Z_A for any schedule: with 100k runs of a 2-step schedule the mean weight
    # matches exactly within its standard error (5 se)
    rbm = random_rbm(6, 3, sigma=2.0, seed=0)
    exact = exact_log_z(rbm)
    # (the weights are uneven, ESS 5-20% of the runs, but 100k runs make the mean precise)
    result = ais(rbm, n_betas=2, n_runs=100_000, seed=0, ess_warn_fraction=0.01)
    assert abs(result.log_z - exact) < 5 * result.log_z_se
    assert result.ess > 1_000


def test_ais_random_rbm_784x10_within_0p1_nats():
    rbm = random_rbm(784, 10, sigma=0.1, seed=0)
    exact = exact_log_z(rbm)
    result = ais(rbm, n_betas=1000, n_runs=100, seed=0)
    assert isinstance(result, AISResult)
    assert abs(result.log_z - exact) < 0.1
    assert result.log_z_low < exact < result.log_z_high
    assert result.ess > 50 and result.n_betas == 1000 and result.n_runs == 100


def test_ais_and_reverse_ais_on_multimodal_rbm_784x16():
    # large weights: modes near +- each of 8 patterns; 3,000 betas suffice here (ESS ~ 90 of 100)
    rbm = hopfield_rbm(8, 0.2, seed=0)
    exact = exact_log_z(rbm)
    forward = ais(rbm, n_betas=3000, n_runs=100, seed=0)
    reverse = reverse_ais(
        rbm, exact_sample(rbm, 100, torch.Generator().manual_seed(0)), n_betas=3000, seed=0
    )
    assert abs(forward.log_z - exact) < 0.1
    assert abs(reverse.log_z - exact) < 0.1
    # the bracket, each side within 3 of its standard errors
    assert forward.log_z - 3 * forward.log_z_se < exact < reverse.log_z + 3 * reverse.log_z_se


def test_short_schedule_brackets_exact_value_and_warns():
    # with 10 betas the Jensen gaps are nats wide (7 to 12 nats over seeds 0-3): forward AIS
    # falls below log Z and reverse AIS (from exact samples) above it; both have ESS < 10% of
    # the runs (1 to 6) and must warn
    rbm = hopfield_rbm(8, 0.3, seed=0)
    exact = exact_log_z(rbm)
    with pytest.warns(AISWarning, match="effective sample size"):
        forward = ais(rbm, n_betas=10, n_runs=100, seed=1)
    with pytest.warns(AISWarning, match="effective sample size"):
        reverse = reverse_ais(
            rbm, exact_sample(rbm, 100, torch.Generator().manual_seed(1)), n_betas=10, seed=1
        )
    assert forward.log_z < exact < reverse.log_z
    assert forward.ess < 10 and reverse.ess < 10


def test_ais_with_data_base_rate():
    rbm = random_rbm(784, 10, sigma=0.1, seed=1)
    data = exact_sample(rbm, 500, torch.Generator().manual_seed(2))
    result = ais(rbm, n_betas=1000, n_runs=100, seed=1, data=data)
    assert abs(result.log_z - exact_log_z(rbm)) < 0.1
    p = torch.sigmoid(base_rate_bias(data))
    assert result.log_z_base == pytest.approx(
        float(-torch.log1p(-p).sum()) + 10 * math.log(2.0), rel=1e-9
    )


def test_ais_on_fully_visible_models():
    ising = Ising(3, coupling=0.5, field=0.1, boundary="free")
    result = ais(ising, n_betas=300, n_runs=200, seed=0)
    assert abs(result.log_z - exact_log_z(ising)) < max(0.05, 5 * result.log_z_se)
    bm = TinyBoltzmann(8, seed=1)
    x = exact_sample(bm, 200, torch.Generator().manual_seed(0))
    reverse = reverse_ais(bm, x, n_betas=300, seed=0)
    assert abs(reverse.log_z - exact_log_z(bm)) < max(0.05, 5 * reverse.log_z_se)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: random_rbm(784, 20, sigma=0.1, seed=4), id="random-784x20"),
        pytest.param(lambda: random_rbm(784, 16, sigma=0.3, seed=0), id="random-784x16-s0.3"),
        pytest.param(lambda: hopfield_rbm(8, 0.3, seed=0), id="multimodal-784x16-w0.3"),
    ],
)
def test_ais_full_protocol_within_0p1_nats(model):
    rbm = model()
    exact = exact_log_z(rbm)
    result = ais(rbm, n_betas=14500, n_runs=100, seed=0)
    assert abs(result.log_z - exact) < 0.1


# ----- log-likelihood ----------------------------------------------------------------------------
def test_log_likelihood_matches_exact_and_combines_errors():
    rbm = random_rbm(5, 4, sigma=1.0, seed=2)
    x = exact_sample(rbm, 50, torch.Generator().manual_seed(1))
    log_z = exact_log_z(rbm)
    m = BernoulliRBM(5, 4).double()
    m.load_state_dict(rbm.state_dict())
    with torch.no_grad():
        per_example = -m.free_energy(x.double()) - log_z
    result = log_likelihood(rbm, x, log_z, log_z_se=0.3)
    assert result.mean == pytest.approx(float(per_example.mean()), abs=1e-5)
    var = float(per_example.var(correction=1))
    assert result.se == pytest.approx(math.sqrt(var / 50 + 0.09), rel=1e-5)
    aisr = ais(rbm, n_betas=200, n_runs=100, seed=0)
    from_ais = log_likelihood(rbm, x, aisr)
    assert from_ais.log_z == aisr.log_z and from_ais.log_z_se == aisr.log_z_se
    with pytest.raises(ValueError, match="log_z"):
        log_likelihood(rbm, x, float("nan"))
    with pytest.raises(ValueError, match="x"):
        log_likelihood(rbm, x[0], log_z)


def prototype_rbm(seed: int) -> BernoulliRBM:
    """12 hidden units, each a +-2 prototype of 392 on-pixels, hidden biases about -250: the
    mass sits on 'one unit on' states (v near a prototype), but at every beta < 1 the state with
    all hidden units off dominates, so annealing never finds the prototypes (a first-order
    transition)."""
    g = torch.Generator().manual_seed(MODEL_SEED + seed)
    patterns = (torch.rand(12, 784, generator=g).argsort(1) < 392).float()
    rbm = BernoulliRBM(784, 12)
    with torch.no_grad():
        rbm.W.copy_((2.0 * (2 * patterns - 1)).T)
        rbm.b.zero_()
        rbm.c.copy_(-250.0 + torch.randn(12, generator=g))
    return rbm


def test_missed_modes_fool_ess_but_not_the_bracket():
    # forward AIS misses every mode: its weights are all alike (ESS = 100%, no warning, a tiny
    # standard error) and it is ~90 nats low; reverse AIS from exact samples lands far above,
    # and the width of the bracket is what gives the failure away
    rbm = prototype_rbm(0)
    exact = exact_log_z(rbm)
    forward = ais(rbm, n_betas=1000, n_runs=100, seed=0)
    reverse = reverse_ais(
        rbm,
        exact_sample(rbm, 100, torch.Generator().manual_seed(1)),
        n_betas=1000,
        seed=1,
        ess_warn_fraction=0.0,
    )
    assert forward.ess > 90 and forward.log_z_se < 0.1
    assert forward.log_z < exact - 50
    assert reverse.log_z > exact
    assert reverse.log_z - forward.log_z > 50


def _random_grbm(d: int, h: int, scale: float, seed: int):
    from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM

    g = torch.Generator().manual_seed(seed)
    grbm = GaussianBernoulliRBM(d, h, seed=seed).double()
    with torch.no_grad():
        grbm.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64) * scale)
        grbm.b.copy_(torch.rand(d, generator=g, dtype=torch.float64))
        grbm.c.copy_(torch.randn(h, generator=g, dtype=torch.float64) * 0.5)
        grbm.log_sigma.copy_(torch.randn(d, generator=g, dtype=torch.float64) * 0.2 - 1.0)
    return grbm


def test_ais_on_a_gaussian_rbm_is_unbiased_in_z():
    # E[w] = Z / Z_base for any schedule: 100k runs of a 2-step schedule pin the mean weight
    grbm = _random_grbm(4, 3, scale=0.3, seed=0)
    exact = exact_log_z(grbm)
    result = ais(grbm, n_betas=2, n_runs=100_000, seed=0, ess_warn_fraction=0.01)
    assert abs(result.log_z - exact) < 5 * result.log_z_se


def test_ais_and_reverse_ais_on_a_gaussian_rbm_64x12():
    grbm = _random_grbm(64, 12, scale=0.05, seed=1)
    exact = exact_log_z(grbm)
    forward = ais(grbm, n_betas=1000, n_runs=100, seed=0)
    assert abs(forward.log_z - exact) < 0.1
    # reverse AIS from (approximate) model samples: 2,000 Gibbs sweeps from N(b, sigma^2)
    g = torch.Generator().manual_seed(2)
    v = grbm.sample_v(grbm.sample_h(grbm.sample(100, n_steps=2000, generator=g), g), g)
    reverse = reverse_ais(grbm, v, n_betas=1000, seed=0)
    assert abs(reverse.log_z - exact) < 0.1
