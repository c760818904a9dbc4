"""The AIS engine: schedules, base-rate model, forward and reverse AIS against exact log Z on RBMs,
Gaussian RBMs, DBMs and fully visible models, the ESS warning, and the engine's reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from estimator_models import (
    MODEL_SEED,
    TinyBoltzmann,
    hopfield_rbm,
    prototype_rbm,
    random_dbm,
    random_grbm,
    random_rbm,
)
from torch.nn import functional as F

import ebmlab.partition
from ebmlab import estimators
from ebmlab.estimators import (
    AISResult,
    AISWarning,
    ais,
    ais_schedule,
    base_rate_bias,
    exact_log_z,
    exact_sample,
    reverse_ais,
)
from ebmlab.models.dbm import DeepBoltzmannMachine
from ebmlab.models.ising import Ising
from ebmlab.samplers import UniformSource, bernoulli_draw


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
    with pytest.raises(ValueError, match="n_runs"):
        ais(rbm, n_runs=True)
    with pytest.raises(ValueError, match="data"):
        ais(rbm, n_betas=10, data=torch.zeros(4, 6))
    with pytest.raises(ValueError, match="v_init"):
        reverse_ais(rbm, torch.zeros(4, 6), n_betas=10)
    with pytest.raises(TypeError, match="model"):
        ais(torch.nn.Linear(3, 2), n_betas=10)


def test_base_rate_bias_formula():
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    # N = 4, one batch: p = (count + 5) / (4 + 5)
    p = (torch.tensor([3.0, 0.0, 3.0], dtype=torch.float64) + 5) / 9
    torch.testing.assert_close(base_rate_bias(data), torch.log(p / (1 - p)))


def test_partition_re_exports_the_estimators():
    for name in ebmlab.partition.__all__:
        assert getattr(ebmlab.partition, name) is getattr(estimators, name)


# ----- the engine reproduces the reference RBM loop ----------------------------------------------
@torch.no_grad()
def reference_rbm_log_weights(rbm, betas, b_base, n_runs, generator):
    """Salakhutdinov & Murray's loop written out for one model, the order of draws the engine
    must keep: v ~ base (from ``generator``); per beta: weight increment, h ~ p(h | v),
    v ~ p(v | h), from the uniform stream seeded by ``generator`` after the base draw."""
    W, b, c = rbm.W, rbm.b, rbm.c
    b_a = b_base.to(W.dtype)
    v = bernoulli_draw(torch.sigmoid(b_base).to(W.dtype).expand(n_runs, -1), generator)
    log_w = torch.zeros(n_runs, dtype=torch.float64)
    source = UniformSource(generator)

    def draw(p):
        return source.bernoulli(p, torch.empty_like(p))

    beta_list = betas.tolist()
    for k in range(1, len(beta_list)):
        beta, beta_prev = beta_list[k], beta_list[k - 1]
        a = torch.addmm(c, v, W).double()
        log_w += (beta - beta_prev) * (v.double() @ (b - b_a).double())
        log_w += (F.softplus(beta * a) - F.softplus(beta_prev * a)).sum(-1)
        if k < len(beta_list) - 1:
            h = draw(torch.sigmoid(beta * torch.addmm(c, v, W)))
            logits = beta * torch.addmm(b, h, W.T) + (1 - beta) * b_a
            v = draw(torch.sigmoid(logits))
    return log_w


def test_rbm_path_reproduces_the_reference_loop():
    # same seed, same draws: the log weights agree to float32 rounding of the increments (the
    # engine takes the softplus differences in float32 in a form exact to relative precision)
    rbm = random_rbm(20, 8, sigma=0.3, seed=6)
    data = exact_sample(rbm, 200, torch.Generator().manual_seed(3))
    betas = ais_schedule(300)
    result = ais(rbm, betas=betas, n_runs=50, seed=4, data=data)
    reference = reference_rbm_log_weights(
        rbm, betas, base_rate_bias(data), 50, torch.Generator().manual_seed(4)
    )
    torch.testing.assert_close(result.log_weights, reference, atol=1e-4, rtol=0)


# ----- AIS on RBMs -------------------------------------------------------------------------------
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


# ----- Gaussian-Bernoulli RBMs -------------------------------------------------------------------
def test_ais_on_a_gaussian_rbm_is_unbiased_in_z():
    # E[w] = Z / Z_base for any schedule: 100k runs of a 2-step schedule pin the mean weight
    grbm = random_grbm(4, 3, scale=0.3, seed=0)
    exact = exact_log_z(grbm)
    result = ais(grbm, n_betas=2, n_runs=100_000, seed=0, ess_warn_fraction=0.01)
    assert abs(result.log_z - exact) < 5 * result.log_z_se


def test_ais_and_reverse_ais_on_a_gaussian_rbm_64x12():
    grbm = random_grbm(64, 12, scale=0.05, seed=1)
    exact = exact_log_z(grbm)
    forward = ais(grbm, n_betas=1000, n_runs=100, seed=0)
    assert abs(forward.log_z - exact) < 0.1
    # reverse AIS from (approximate) model samples: 2,000 Gibbs sweeps from N(b, sigma^2)
    g = torch.Generator().manual_seed(2)
    v = grbm.sample_v(grbm.sample_h(grbm.sample(100, n_steps=2000, generator=g), g), g)
    reverse = reverse_ais(grbm, v, n_betas=1000, seed=0)
    assert abs(reverse.log_z - exact) < 0.1


# ----- deep Boltzmann machines -------------------------------------------------------------------
@pytest.mark.parametrize(("sizes", "seed"), [([8, 5, 4], 0), ([6, 4, 4, 3], 1)])
def test_ais_on_a_dbm_matches_exact_log_z(sizes, seed):
    dbm = random_dbm(sizes, scale=1.0, seed=seed).float()
    exact = dbm.log_z()
    data = (torch.rand(50, sizes[0], generator=torch.Generator().manual_seed(9)) < 0.3).float()
    result = ais(dbm, n_betas=2000, n_runs=200, seed=seed, data=data)
    assert abs(result.log_z - exact) < 5 * result.log_z_se + 0.01, (result.log_z, exact)
    assert result.ess > 0.5 * 200
    assert result.direction == "forward" and result.n_betas == 2000


def test_ais_on_a_784_unit_dbm_within_0p1_nats():
    """A 784-12-10 DBM (exact log Z: the 12 odd units enumerated)."""
    dbm = DeepBoltzmannMachine([784, 12, 10], init_std=0.1, seed=MODEL_SEED)
    with torch.no_grad():
        g = torch.Generator().manual_seed(MODEL_SEED)
        dbm.biases[0].normal_(-1.0, 1.0, generator=g)
        for b in dbm.biases[1:]:
            b.normal_(0.0, 0.5, generator=g)
    exact = dbm.log_z()
    result = ais(dbm, n_betas=2000, n_runs=100, seed=0)
    assert abs(result.log_z - exact) < max(5 * result.log_z_se, 0.1), (result.log_z, exact)


def test_dbm_reverse_ais_takes_every_layer():
    dbm = random_dbm([5, 3, 2], seed=3).float()
    with pytest.raises(ValueError, match="v_init"):
        reverse_ais(dbm, torch.zeros(4, 5), n_betas=10)
    with pytest.raises(ValueError, match="binary"):
        reverse_ais(dbm, torch.full((4, 10), 0.5), n_betas=10)
    layers = dbm.random_layers(4, torch.Generator().manual_seed(0))
    as_list = reverse_ais(dbm, layers, n_betas=10, seed=0, ess_warn_fraction=0.0)
    joined = reverse_ais(dbm, dbm.join(layers), n_betas=10, seed=0, ess_warn_fraction=0.0)
    torch.testing.assert_close(as_list.log_weights, joined.log_weights)


# ----- fully visible models ----------------------------------------------------------------------
def test_ais_on_fully_visible_models():
    ising = Ising(3, coupling=0.5, field=0.1, boundary="free")
    result = ais(ising, n_betas=300, n_runs=200, seed=0)
    assert abs(result.log_z - exact_log_z(ising)) < max(0.05, 5 * result.log_z_se)
    bm = TinyBoltzmann(8, seed=1)
    x = exact_sample(bm, 200, torch.Generator().manual_seed(0))
    reverse = reverse_ais(bm, x, n_betas=300, seed=0)
    assert abs(reverse.log_z - exact_log_z(bm)) < max(0.05, 5 * reverse.log_z_se)
