"""General Boltzmann machine: energy and enumeration, Gibbs sampling, labels, annealing, and the
clamped/free-phase gradient converging to the exact gradient."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab.estimators import exact_log_z
from ebmlab.models.boltzmann import BoltzmannMachine
from ebmlab.objectives.boltzmann import BoltzmannLearning


def all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=torch.float64)


def random_bm(
    v: int = 3,
    h: int = 2,
    labels: int = 0,
    scale: float = 1.0,
    seed: int = 0,
    temperature: float = 1.0,
) -> BoltzmannMachine:
    bm = BoltzmannMachine(v, h, labels, temperature=temperature).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bm.W.copy_(torch.randn(bm.n_units, bm.n_units, generator=g, dtype=torch.float64) * scale)
        bm.theta.copy_(torch.randn(bm.n_units, generator=g, dtype=torch.float64) * scale * 0.5)
    return bm


def brute_energy(bm: BoltzmannMachine, s: torch.Tensor) -> torch.Tensor:
    W, theta = bm.W.detach(), bm.theta.detach()
    e = torch.zeros(s.shape[0], dtype=s.dtype)
    for i in range(bm.n_units):
        e -= theta[i] * s[:, i]
        for j in range(i + 1, bm.n_units):
            e -= W[i, j] * s[:, i] * s[:, j]
    return e / bm.temperature


@torch.no_grad()
def test_energy_matches_the_lecture_formula() -> None:
    bm = random_bm(temperature=2.0)
    s = all_binary(bm.n_units)
    torch.testing.assert_close(bm.energy(s), brute_energy(bm, s))
    J = bm.coupling()
    torch.testing.assert_close(J, J.T)
    assert torch.equal(J.diagonal(), torch.zeros(bm.n_units, dtype=J.dtype))


@torch.no_grad()
def test_local_field_is_the_energy_gap() -> None:
    bm = random_bm()
    s = all_binary(bm.n_units)
    fields = bm.local_fields(s)
    for i in range(bm.n_units):
        on, off = s.clone(), s.clone()
        on[:, i], off[:, i] = 1.0, 0.0
        torch.testing.assert_close(fields[:, i], bm.energy(off) - bm.energy(on))


@torch.no_grad()
def test_log_z_and_free_energy_by_enumeration() -> None:
    bm = random_bm(v=3, h=3, labels=2)
    s = all_binary(bm.n_units)
    e = brute_energy(bm, s)
    valid = s[:, 3:5].sum(1) == 1
    log_z = torch.logsumexp(-e[valid], 0)
    torch.testing.assert_close(bm.log_z(), log_z)
    assert abs(exact_log_z(bm) - float(log_z)) < 1e-9  # the estimator agrees
    v = all_binary(3)
    expected = torch.stack([-torch.logsumexp(-e[valid & (s[:, :3] == row).all(1)], 0) for row in v])
    torch.testing.assert_close(bm.free_energy(v), expected)
    assert torch.isinf(bm.energy(s[~valid])).all()


# ----- lecture 004's worked example: 2 visible and 2 hidden units -------------------------------
# The slide's table, row by row (v = v1 v2, h = h1 h2 in the order printed): -E, e^-E, p(v, h),
# and p(v) on the first row of each v; "total = 39.70".
LECTURE_TABLE = [
    # v1 v2 h1 h2, -E, e^-E, p(v, h)
    ((1, 1, 1, 1), 2, 7.39, 0.186),
    ((1, 1, 1, 0), 2, 7.39, 0.186),
    ((1, 1, 0, 1), 1, 2.72, 0.069),
    ((1, 1, 0, 0), 0, 1.00, 0.025),
    ((1, 0, 1, 1), 1, 2.72, 0.069),
    ((1, 0, 1, 0), 2, 7.39, 0.186),
    ((1, 0, 0, 1), 0, 1.00, 0.025),
    ((1, 0, 0, 0), 0, 1.00, 0.025),
    ((0, 1, 1, 1), 0, 1.00, 0.025),
    ((0, 1, 1, 0), 0, 1.00, 0.025),
    ((0, 1, 0, 1), 1, 2.72, 0.069),
    ((0, 1, 0, 0), 0, 1.00, 0.025),
    ((0, 0, 1, 1), -1, 0.37, 0.009),
    ((0, 0, 1, 0), 0, 1.00, 0.025),
    ((0, 0, 0, 1), 0, 1.00, 0.025),
    ((0, 0, 0, 0), 0, 1.00, 0.025),
]
LECTURE_P_V = {(1, 1): 0.466, (1, 0): 0.305, (0, 1): 0.144, (0, 0): 0.084}
LECTURE_TOTAL = 39.70


def lecture_004_machine() -> BoltzmannMachine:
    """The weights of the slide's figure (lost in the transcript, recovered from the -E column
    below): v1-h1 = +2, v2-h2 = +1, h1-h2 = -1, no other weights, no biases. Units are ordered
    [v1, v2, h1, h2]."""
    bm = BoltzmannMachine(2, n_hidden=2).double()
    with torch.no_grad():
        bm.W.zero_()
        bm.theta.zero_()
        bm.W[0, 2], bm.W[1, 3], bm.W[2, 3] = 2.0, 1.0, -1.0
    return bm


@torch.no_grad()
def test_lecture_004_boltzmann_machine_table() -> None:
    """Every column of the slide's table from BoltzmannMachine and from exact enumeration.

    The printed numbers are rounded, and some carry the rounding of the numbers they are
    computed from: Z = 3 e^2 + 3 e + 9 + e^-1 = 39.6896 (the printed 39.70 is the sum of the
    rounded e^-E entries); p(v, h) = e / Z = 0.0685 where -E = 1 (printed .069 = 2.72 / 39.70);
    p(v = 00) = (3 + e^-1) / Z = 0.0849 (the printed 0.084 is the sum of the rounded p(v, h)
    entries .009 + 3 x .025). p(v = 11, 10, 01) = 0.4660, 0.3050, 0.1441 round to the printed
    values. Every printed number is within 0.001 of the exact one."""
    bm = lecture_004_machine()
    states = torch.tensor([row[0] for row in LECTURE_TABLE], dtype=torch.float64)
    minus_e = torch.tensor([row[1] for row in LECTURE_TABLE], dtype=torch.float64)
    torch.testing.assert_close(-bm.energy(states), minus_e)
    # e^-E and p(v, h), rounded as printed
    assert [round(math.exp(e), 2) for e in minus_e.tolist()] == [row[2] for row in LECTURE_TABLE]
    log_z = float(bm.log_z())
    closed_form = math.log(3 * math.e**2 + 3 * math.e + 9 + math.exp(-1))
    assert log_z == pytest.approx(closed_form, abs=1e-12)
    assert exact_log_z(bm) == pytest.approx(closed_form, abs=1e-12)
    p_joint = torch.exp(-bm.energy(states) - log_z)
    printed_joint = torch.tensor([row[3] for row in LECTURE_TABLE], dtype=torch.float64)
    assert ((p_joint - printed_joint).abs() < 0.001).all()
    # the printed column is the rounded e^-E over the printed total, rounded
    assert [round(row[2] / LECTURE_TOTAL, 3) for row in LECTURE_TABLE] == printed_joint.tolist()
    # the printed total and p(v): sums of the rounded entries, within rounding of the exact ones
    assert round(sum(row[2] for row in LECTURE_TABLE), 2) == LECTURE_TOTAL
    assert abs(math.exp(log_z) - LECTURE_TOTAL) < 0.015
    v = torch.tensor(list(LECTURE_P_V), dtype=torch.float64)
    p_v = torch.exp(bm.log_likelihood(v))
    for (key, printed), exact in zip(LECTURE_P_V.items(), p_v.tolist()):
        rounded_joint = [row[3] for row in LECTURE_TABLE if row[0][:2] == key]
        assert round(sum(rounded_joint), 3) == printed
        assert abs(exact - printed) < 0.001
    assert [round(p, 3) for p in p_v.tolist()] == [0.466, 0.305, 0.144, 0.085]
    torch.testing.assert_close(p_v.sum(), torch.tensor(1.0, dtype=torch.float64))


@torch.no_grad()
def test_lecture_004_weights_are_the_only_ones_that_fit_the_table() -> None:
    """-E(s) = sum_{i<j} w_ij s_i s_j + sum_i theta_i s_i is linear in the 10 parameters; the
    16 rows of the -E column determine them: the weights of ``lecture_004_machine``."""
    states = torch.tensor([row[0] for row in LECTURE_TABLE], dtype=torch.float64)
    minus_e = torch.tensor([row[1] for row in LECTURE_TABLE], dtype=torch.float64)
    pairs = list(itertools.combinations(range(4), 2))
    features = torch.cat(
        [torch.stack([states[:, i] * states[:, j] for i, j in pairs], 1), states], 1
    )
    assert torch.linalg.matrix_rank(features) == 10
    solution = torch.linalg.lstsq(features, minus_e[:, None]).solution[:, 0]
    torch.testing.assert_close(features @ solution, minus_e)  # the table is consistent
    bm = lecture_004_machine()
    expected = torch.tensor([bm.coupling()[i, j] for i, j in pairs] + bm.theta.tolist())
    torch.testing.assert_close(solution, expected.double())


def test_lecture_004_machine_through_the_samplers_and_free_energy() -> None:
    """The same p(v) as the stationary distribution of single-site Gibbs on the visible units
    (the hidden units summed out in the free energy), and -log Z as the minimum Helmholtz free
    energy of the 16 joint states."""
    from ebmlab.models import minimum_free_energy
    from ebmlab.samplers import gibbs_matrix, stationary_distribution

    bm = lecture_004_machine()
    visible = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    pi = stationary_distribution(gibbs_matrix(bm, visible, "systematic"))
    with torch.no_grad():
        torch.testing.assert_close(pi, torch.exp(bm.log_likelihood(visible)))
    assert minimum_free_energy(bm) == pytest.approx(-float(bm.log_z().detach()), abs=1e-12)


@torch.no_grad()
def test_gibbs_sweeps_sample_the_boltzmann_distribution() -> None:
    bm = random_bm(v=3, h=2, labels=2, scale=1.0, temperature=1.5)
    s = bm.all_states()
    p = torch.softmax(-bm.energy(s), 0)
    g = torch.Generator().manual_seed(0)
    samples = bm.sample(10000, n_sweeps=25, generator=g)
    weights = 2 ** torch.arange(bm.n_units - 1, -1, -1, dtype=torch.float64)
    codes = s @ weights
    order = torch.argsort(codes)
    index = order[torch.searchsorted(codes[order], samples @ weights)]
    assert torch.equal(s[index], samples)
    counts = torch.bincount(index, minlength=s.shape[0]).double()
    expected = p * samples.shape[0]
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = s.shape[0] - 1  # 63
    assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2


@torch.no_grad()
def test_p_class_given_v_exact_and_sampled() -> None:
    bm = random_bm(v=4, h=3, labels=3, scale=1.0, seed=2)
    v = all_binary(4)
    s = bm.all_states()
    e = bm.energy(s)
    exact = torch.stack(
        [
            torch.softmax(
                torch.stack(
                    [
                        torch.logsumexp(-e[(s[:, :4] == row).all(1) & (s[:, 4 + k] == 1)], 0)
                        for k in range(3)
                    ]
                ),
                0,
            )
            for row in v
        ]
    )
    torch.testing.assert_close(bm.p_class_given_v(v), exact)
    g = torch.Generator().manual_seed(1)
    rows = v[[3, 12]].repeat(200, 1)
    sampled = bm.p_class_given_v(rows, n_sweeps=20, burn_in=10, generator=g, exact=False)
    for index, row in ((3, sampled[0::2]), (12, sampled[1::2])):
        se = row.std(0) / math.sqrt(row.shape[0])
        assert ((row.mean(0) - exact[index]).abs() < 5 * se + 1e-3).all()


@torch.no_grad()
def test_class_conditional_generation_follows_p_v_given_class() -> None:
    bm = random_bm(v=3, h=2, labels=2, scale=1.5, seed=3)
    s = bm.all_states()
    e = bm.energy(s)
    rows = s[:, 4] == 1  # label 1
    p_v = torch.softmax(-e[rows], 0) @ s[rows][:, :3]  # marginals of v given class 1
    g = torch.Generator().manual_seed(0)
    probs = bm.generate_class(1, 6000, n_sweeps=30, generator=g)
    se = probs.std(0) / math.sqrt(probs.shape[0])
    assert ((probs.mean(0) - p_v).abs() < 5 * se).all()
    with pytest.raises(ValueError, match="label"):
        bm.generate_class(2, 3)


@torch.no_grad()
def test_simulated_annealing_finds_the_ground_state() -> None:
    bm = random_bm(v=10, h=0, scale=1.0, seed=5)
    s = bm.all_states()
    ground = float(bm.energy(s).min())
    g = torch.Generator().manual_seed(0)
    states, energies = bm.anneal(n_chains=32, generator=g)
    assert abs(float(energies[0]) - ground) < 1e-9
    torch.testing.assert_close(energies, bm.energy(states))
    hits = float((energies - ground).abs().lt(1e-9).double().mean())
    assert hits >= 0.5, hits


def test_exact_gradient_is_clamped_minus_free_statistics() -> None:
    bm = random_bm(v=3, h=2, scale=0.7)
    data = torch.tensor([[1.0, 0, 1], [0, 1, 1]], dtype=torch.float64)
    grad = bm.exact_gradient(data)
    with torch.no_grad():
        s = bm.all_states()
        p = torch.softmax(-bm.energy(s), 0)
        free = torch.einsum("n,ni,nj->ij", p, s, s)
        clamped = torch.zeros_like(free)
        for row in data:
            mask = (s[:, :3] == row).all(1)
            q = torch.softmax(-bm.energy(s[mask]), 0)
            clamped += torch.einsum("n,ni,nj->ij", q, s[mask], s[mask]) / data.shape[0]
    upper = torch.ones(5, 5, dtype=torch.float64).triu(1)
    torch.testing.assert_close(grad["W"], -(clamped - free) * upper)
    torch.testing.assert_close(grad["theta"], -(clamped.diagonal() - free.diagonal()))


def test_sampled_gradient_converges_to_exact_gradient() -> None:
    bm = random_bm(v=4, h=3, labels=0, scale=0.6, seed=1)  # 7 units
    data = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1]], dtype=torch.float64)
    exact = bm.exact_gradient(data)
    batch = data.repeat(400, 1)
    estimates = []
    for rep in range(12):
        objective = BoltzmannLearning(
            n_chains=1200, free_sweeps=1, clamped_burn_in=10, clamped_samples=3, seed=rep
        )
        objective.setup(bm, data)
        g = torch.Generator().manual_seed(rep)
        for _ in range(10):
            objective.free_states(bm, g)  # burn the free chains in
        bm.zero_grad(set_to_none=True)
        loss, _ = objective.loss(bm, batch, g)
        loss.backward()
        estimates.append(torch.cat([(bm.W.grad * bm.upper).flatten(), bm.theta.grad]))
    samples = torch.stack(estimates)
    target = torch.cat([exact["W"].flatten(), exact["theta"]])
    se = samples.std(0) / math.sqrt(samples.shape[0])
    assert ((samples.mean(0) - target).abs() <= 5 * se + 1e-9).all()


def test_training_increases_the_exact_likelihood() -> None:
    from ebmlab.training import TrainConfig, train

    data = torch.tensor([[1.0, 1, 0, 0, 1], [0, 0, 1, 1, 0], [1, 1, 0, 0, 0]])
    bm = BoltzmannMachine(5, n_hidden=2, seed=0)
    with torch.no_grad():
        before = float(bm.log_likelihood(data).mean())
    config = TrainConfig(
        epochs=100,
        batch_size=30,
        lr=0.1,
        optimizer="sgd",
        momentum=0.5,
        progress=False,
        device="cpu",
    )
    train(bm, BoltzmannLearning(n_chains=50, clamped_burn_in=3), data.repeat(10, 1), config)
    with torch.no_grad():
        after = float(bm.log_likelihood(data).mean())
    # uniform over 32 states: -3.47; the optimum (uniform over the 3 patterns): -1.10
    assert after > before + 1.0 and after > -2.0, (before, after)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_visible"):
        BoltzmannMachine(0)
    with pytest.raises(ValueError, match="n_labels"):
        BoltzmannMachine(3, n_labels=1)
    with pytest.raises(ValueError, match="temperature"):
        BoltzmannMachine(3, temperature=0.0)
    bm = BoltzmannMachine(3, n_hidden=2, n_labels=2)
    with pytest.raises(ValueError, match="binary"):
        bm.free_energy(torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="features"):
        bm.free_energy(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="one-hot"):
        BoltzmannLearning().setup(bm, torch.tensor([[1.0, 0, 1, 1, 1]]))
    with pytest.raises(ValueError, match="no label units"):
        BoltzmannMachine(3).p_class_given_v(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="too large"):
        BoltzmannMachine(30).log_z()
