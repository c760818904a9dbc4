"""Hopfield networks: the lectures' worked example, energy descent, 2-cycles, spurious states,
storage rules, capacity, stochastic retrieval, the modern network, pattern completion, bad input,
checkpoints, the recipe and the CLI."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ebmlab.app.hopfield_experiments import (
    capacity_summary,
    capacity_sweep,
    completion_rows,
    crossing_load,
    hide_half,
    plot_capacity,
    select_patterns,
    write_capacity,
)
from ebmlab.models.hopfield import (
    ASYNC_BLOCK,
    Hopfield,
    HopfieldCapacityWarning,
    ModernHopfield,
    amit_capacity,
    capacity_bounds,
    clock_updates,
    flip_bits,
    hebbian_bit_error_probability,
    hebbian_fixed_point_probability,
    hebbian_weights,
    mceliece_capacity,
    projection_capacity,
    storkey_weights,
    to_binary,
    to_spins,
)
from ebmlab.samplers import Gibbs, SimulatedAnnealing, geometric_schedule


def spins(p: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(p, n, generator=g) < 0.5, -1.0, 1.0)


def all_states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)))


# ----- lecture 004's worked example --------------------------------------------------------------
LECTURE_PATTERNS = torch.tensor([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
# the matrix printed in the lecture: w_ij = (1/N) sum_k P_i^k P_j^k, diagonal (2/4) included
LECTURE_W = torch.tensor([[2.0, 2, 2, 0], [2, 2, 2, 0], [2, 2, 2, 0], [0, 0, 0, 2]]) / 4


def test_lecture_worked_example_weights():
    net = Hopfield(4).store(LECTURE_PATTERNS)
    # convention: 1/N normalisation and a zero diagonal, i.e. the lecture's matrix minus (P/N) I
    assert torch.equal(net.W, LECTURE_W - 0.5 * torch.eye(4))
    assert net.W[0, 1] == 2 / 4  # the lecture's w_12 = (1/4)(-1 x -1 + 1 x 1)
    # the printed matrix (diagonal kept) gives the same network: the diagonal is dropped
    given = Hopfield(4).set_weights(LECTURE_W)
    assert torch.equal(given.W, net.W)


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("seed", range(5))
def test_lecture_worked_example_recalls(mode, seed):
    net = Hopfield(4).store(LECTURE_PATTERNS)
    probes = torch.tensor([[-1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])  # P^3, P^4
    recalled, info = net.recall(probes, mode=mode, seed=seed, return_info=True)
    assert torch.equal(recalled[0], torch.tensor([-1.0, -1.0, -1.0, 1.0]))
    assert torch.equal(recalled[1], torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert info.converged.all() and not info.cycle2.any()
    # E = -1/2 y^T W y with the zero-diagonal W: both stored patterns have E = -3/2
    assert torch.allclose(info.energy, torch.tensor([-1.5, -1.5]))


def test_hebbian_formula():
    x = spins(7, 30, 0)
    w = hebbian_weights(x)
    expected = x.T @ x / 30 - 7 / 30 * torch.eye(30)
    assert torch.allclose(w, expected, atol=1e-6)
    assert torch.equal(w, w.T)


# ----- lecture 001's Hebbian example: three patterns in four units, and their "fake" memories -----
LECTURE_001_PATTERNS = torch.tensor(
    [[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
)


def test_lecture_001_hebbian_example_and_its_spurious_states():
    """Lecture 001 stores three patterns in a 4-unit network with the Hebbian rule and shows a
    stable state that is none of them (a "fake" memory). The transcript keeps the slide's text
    but not its picture of the patterns, so this checks every choice at once, by enumerating the
    16 states: for each of the 448 sets of three distinct patterns (no pattern with its
    negation), either all three are fixed points, and then they are pairwise orthogonal and the
    fixed points are exactly the patterns and their negations (64 sets), or some pattern is not
    stable (384 sets). The spurious states of the example are the negations, the lecture's
    "redundancy: y and -y are both stored": E(-y) = E(y) without biases."""
    states = all_states(4)
    stable_sets = 0
    for rows in itertools.combinations(range(16), 3):
        patterns = states[list(rows)]
        if any(torch.equal(a, -b) for a, b in itertools.combinations(patterns, 2)):
            continue
        net = Hopfield(4).store(patterns)
        fixed = states[net.is_fixed_point(states)]
        if net.is_fixed_point(patterns).all():
            stable_sets += 1
            gram = patterns @ patterns.T
            assert torch.equal(gram, 4 * torch.eye(3))  # pairwise orthogonal
            expected = {tuple(r.tolist()) for r in torch.cat([patterns, -patterns])}
            assert {tuple(r.tolist()) for r in fixed} == expected
        else:
            # every fixed point is still one of the patterns or a negation
            known = {tuple(r.tolist()) for r in torch.cat([patterns, -patterns])}
            assert {tuple(r.tolist()) for r in fixed} <= known
    assert stable_sets == 64
    # one such set, with the lecture's 1/N_p normalization (a positive factor: same dynamics)
    x = LECTURE_001_PATTERNS
    w = x.T @ x / 3
    w.fill_diagonal_(0.0)
    net = Hopfield(4).set_weights(w)
    assert torch.equal(net.W, -(torch.ones(4, 4) - torch.eye(4)) / 3)
    fixed = states[net.is_fixed_point(states)]
    assert fixed.shape[0] == 6 and net.is_fixed_point(x).all() and net.is_fixed_point(-x).all()
    torch.testing.assert_close(net.energy(-x), net.energy(x))
    # the 3-pattern mixture sign(x1 + x2 + x3) is not stable at N = 4 (it is at large N)
    assert not net.is_fixed_point(torch.sign(x.sum(0, keepdim=True))).any()
    # a fake memory attracts like a stored one: (1, -1, 1, 1) is one flip from -x_1, x_2 and
    # x_3, and the random update order decides which of the three it falls into
    start = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    ends = {tuple(net.recall(start, seed=seed)[0].tolist()) for seed in range(20)}
    assert ends == {tuple(r.tolist()) for r in (-x[0], x[1], x[2])}


# ----- asynchronous dynamics: energy never increases ---------------------------------------------
def naive_async(net: Hopfield, y: torch.Tensor, order: torch.Tensor, tol: float):
    """Reference: one unit at a time; returns the states and every intermediate energy."""
    y = y.clone()
    energies = [net.energy(y)]
    for i in order.tolist():
        z = y @ net.W[:, i] + net.b[i]
        y[:, i] = torch.where(y[:, i] * z < -tol, -y[:, i], y[:, i])
        energies.append(net.energy(y))
    return y, torch.stack(energies)


@st.composite
def symmetric_networks(draw):
    n = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    # integer weights: energies are exact in float64, so "never increases" is checked exactly
    a = torch.randint(-3, 4, (n, n), generator=g).double()
    b = torch.randint(-2, 3, (n,), generator=g).double() * draw(st.sampled_from([0.0, 1.0]))
    net = Hopfield(n).double().set_weights(a + a.T, b)
    states = torch.where(torch.rand(5, n, generator=g) < 0.5, -1.0, 1.0).double()
    order = torch.randperm(n, generator=g)
    return net, states, order, seed


@settings(max_examples=60, deadline=None)
@given(symmetric_networks())
def test_async_updates_never_increase_energy(case):
    net, y, order, seed = case
    tol = net._tie_tolerance()
    reference, energies = naive_async(net, y, order, tol)
    assert (energies[1:] <= energies[:-1]).all()  # every single-unit update
    blocked, flips = net.sweep_async(y, order)
    assert torch.equal(blocked, reference)  # the vectorised sweep is the same dynamics
    assert torch.equal(flips, (blocked != y).sum(1))
    # full recall: the energy after each sweep never increases, and it ends at fixed points
    current, previous_energy = y, net.energy(y)
    for sweep in range(50):
        current = net.recall(current, max_sweeps=1, seed=seed + sweep)
        energy = net.energy(current)
        assert (energy <= previous_energy).all()
        previous_energy = energy
    final, info = net.recall(y, seed=seed, return_info=True)
    assert info.converged.all() and not info.cycle2.any()
    assert net.is_fixed_point(final).all()
    assert torch.equal(net.sweep_sync(final), final)


def test_block_boundaries_do_not_change_the_dynamics():
    n = 2 * ASYNC_BLOCK + 5
    x = spins(10, n, 1)
    net = Hopfield(n).store(x)
    y = flip_bits(x, 0.3, torch.Generator().manual_seed(2))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    reference, energies = naive_async(net, y, order, net._tie_tolerance())
    assert torch.equal(net.sweep_async(y, order)[0], reference)
    assert (energies[1:] <= energies[:-1] + 1e-5).all()


# ----- unit clocks (lecture 004's "asynchronous II") ----------------------------------------------
def test_clock_updates_are_poisson_clocks():
    """Each unit rings as a Poisson process of the given rate: counts over [0, t) have mean and
    variance rate * t, the waiting times are exponential, and the rings come in time order."""
    n, duration, rate = 400, 5.0, 2.0
    units, times = clock_updates(n, duration, torch.Generator().manual_seed(0), rate=rate)
    assert (times[1:] >= times[:-1]).all() and times.min() >= 0 and times.max() < duration
    counts = torch.bincount(units, minlength=n).double()
    mean = rate * duration
    assert abs(counts.mean().item() - mean) < 4 * math.sqrt(mean / n)
    # var of a sample variance of a Poisson(mu): about (mu + 2 mu^2) / n
    assert abs(counts.var().item() - mean) < 4 * math.sqrt((mean + 2 * mean**2) / n)
    waits = torch.cat([torch.diff(times[units == i], prepend=torch.zeros(1)) for i in range(n)])
    assert stats.kstest(waits.numpy(), "expon", args=(0, 1 / rate)).pvalue > 1e-4
    # short horizons still work (some units never ring)
    few, _ = clock_updates(50, 0.01, torch.Generator().manual_seed(1))
    assert few.numel() < 50


@settings(max_examples=40, deadline=None)
@given(symmetric_networks())
def test_clock_updates_never_increase_energy(case):
    """The rings are single-unit updates (a unit may ring again before another rings once):
    the energy never increases, and recall ends at a fixed point of the same energy."""
    net, y, _, seed = case
    tol = net._tie_tolerance()
    units, _ = clock_updates(net.n_units, 3.0, torch.Generator().manual_seed(seed))
    reference, energies = naive_async(net, y, units, tol)
    assert (energies[1:] <= energies[:-1]).all()  # every ring
    stepped, flips = net.sweep_events(y, units)
    assert torch.equal(stepped, reference)
    assert (flips >= (stepped != y).sum(1)).all()
    final, info = net.recall(y, mode="clock", seed=seed, return_info=True)
    assert info.converged.all() and not info.cycle2.any()
    assert net.is_fixed_point(final).all()
    assert (net.energy(final) <= net.energy(y)).all()
    torch.testing.assert_close(info.energy, net.energy(final))
    # time step by time step, the energy never increases either
    current, previous = y, net.energy(y)
    for step in range(20):
        current = net.recall(current, mode="clock", max_sweeps=1, seed=seed + step)
        energy = net.energy(current)
        assert (energy <= previous).all()
        previous = energy


def test_clock_recall_beside_permutation_sweeps():
    """Lecture 004's worked example and noisy probes of a larger network: both asynchronous
    schemes retrieve the stored patterns, and clamped units stay put."""
    net = Hopfield(4).store(LECTURE_PATTERNS)
    probes = torch.tensor([[-1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])
    for seed in range(5):
        recalled = net.recall(probes, mode="clock", seed=seed)
        assert torch.equal(recalled, torch.tensor([[-1.0, -1, -1, 1], [1.0, 1, 1, 1]]))
    x = spins(10, 300, 21)
    big = Hopfield(300).store(x)
    noisy = flip_bits(x, 0.1, torch.Generator().manual_seed(22))
    by_clock, info = big.recall(noisy, mode="clock", seed=23, return_info=True)
    assert torch.equal(by_clock, x) and info.converged.all()
    assert torch.equal(big.recall(noisy, mode="async", seed=23), x)
    known = torch.zeros(300, dtype=torch.bool)
    known[:150] = True
    clamped = big.recall(noisy, mode="clock", seed=24, clamp=known)
    assert torch.equal(clamped[:, :150], noisy[:, :150])


def test_gibbs_sweep_matches_sequential_gibbs():
    """With the same uniforms (drawn per block, as the sweep does), sequential Gibbs agrees."""
    n, temperature = 2 * ASYNC_BLOCK + 3, 0.7
    net = Hopfield(n).store(spins(10, n, 4))
    y = spins(6, n, 5)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(6))
    got, _ = net.sweep_async(
        y, order, temperature=temperature, generator=torch.Generator().manual_seed(7)
    )
    g = torch.Generator().manual_seed(7)
    ref = y.clone()
    for block in order.split(ASYNC_BLOCK):
        u = torch.rand(y.shape[0], block.numel(), generator=g)
        for j, i in enumerate(block.tolist()):
            z = ref @ net.W[:, i] + net.b[i]
            ref[:, i] = torch.where(u[:, j] < torch.sigmoid(2 * z / temperature), 1.0, -1.0)
    assert torch.equal(got, ref)


# ----- synchronous dynamics: 2-cycles ------------------------------------------------------------
def test_sync_two_cycle_detected():
    net = Hopfield(2).set_weights(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    probes = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    recalled, info = net.recall(probes, mode="sync", return_info=True)
    assert info.cycle2.tolist() == [True, False]
    assert info.converged.tolist() == [False, True]
    assert info.sweeps.tolist() == [2, 1]
    # asynchronous updates of the same network always settle
    recalled, info = net.recall(probes, mode="async", seed=0, return_info=True)
    assert info.converged.all()
    assert (recalled.sum(1) == 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_sync_ends_in_fixed_point_or_two_cycle(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(40, 40, generator=g)
    net = Hopfield(40).set_weights(a + a.T)
    y = spins(200, 40, seed + 10)
    final, info = net.recall(y, mode="sync", max_sweeps=500, return_info=True)
    assert (info.converged | info.cycle2).all()  # Goles et al. (1985)
    assert info.cycle2.any() and info.converged.any()
    cyc = final[info.cycle2]
    once = net.sweep_sync(cyc)
    assert torch.equal(net.sweep_sync(once), cyc)
    assert (once != cyc).any(1).all()


# ----- spurious states ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_hebbian_spurious_states_are_stable(seed):
    n = 1000
    x = spins(3, n, seed)
    net = Hopfield(n).store(x)
    assert net.is_fixed_point(x).all()
    assert net.is_fixed_point(-x).all()  # reversed patterns
    mixtures = torch.stack(
        [
            torch.sign(s1 * x[0] + s2 * x[1] + s3 * x[2])
            for s1, s2, s3 in itertools.product([1, -1], repeat=3)
        ]
    )
    assert net.is_fixed_point(mixtures).all()  # 3-pattern mixture states
    # they are attractors: a few flipped bits lead back to the mixture
    probes = flip_bits(mixtures, 0.05, torch.Generator().manual_seed(seed))
    assert torch.equal(net.recall(probes, seed=seed), mixtures)
    # energies (Amit et al. 1985): patterns -N/2, mixtures -3N/8, random states about 0
    e_pattern, e_mix = net.energy(x).mean(), net.energy(mixtures).mean()
    e_random = net.energy(spins(50, n, seed + 1)).mean()
    assert e_pattern < e_mix < e_random
    assert abs(e_mix / n + 3 / 8) < 0.03 and abs(e_pattern / n + 0.5) < 0.03


# ----- storage rules -----------------------------------------------------------------------------
def test_storkey_matches_the_formula():
    x = spins(4, 7, 3).double()
    n = 7
    w = torch.zeros(n, n, dtype=torch.float64)
    for xi in x:
        new = w.clone()
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                h_ij = sum(w[i, k] * xi[k] for k in range(n) if k not in (i, j))
                h_ji = sum(w[j, k] * xi[k] for k in range(n) if k not in (i, j))
                new[i, j] = w[i, j] + (xi[i] * xi[j] - xi[i] * h_ji - h_ij * xi[j]) / n
        w = new
    assert torch.allclose(storkey_weights(x), w, atol=1e-12)


def test_pseudoinverse_projects_onto_the_patterns():
    x = spins(60, 100, 7)
    net = Hopfield(100, rule="pseudoinverse").double().store(x.double())
    projector = net.W + torch.diag(torch.diag(torch.linalg.pinv(x.double()) @ x.double()))
    assert torch.allclose(projector @ x.double().T, x.double().T, atol=1e-8)
    assert net.is_fixed_point(x.double()).all()


def test_pseudoinverse_singular_and_full_rank():
    x = spins(5, 40, 8)
    with pytest.warns(HopfieldCapacityWarning, match="singular"):
        net = Hopfield(40, rule="pseudoinverse").store(torch.cat([x, x[:2]]))
    assert net.is_fixed_point(x).all()
    with pytest.raises(ValueError, match="span all of R"):
        Hopfield(10, rule="pseudoinverse").store(spins(12, 10, 9))


def test_hebbian_overload_warns():
    with pytest.warns(HopfieldCapacityWarning, match="0.138"):
        Hopfield(100, rule="hebbian").store(spins(20, 100, 1))


def test_learned_rule_stores_more_than_hebbian():
    n, p = 200, 40  # load 0.2, past the Hebbian capacity
    x = spins(p, n, 11)
    with pytest.warns(HopfieldCapacityWarning):
        hebb = Hopfield(n).store(x)
    learned = Hopfield(n, rule="learned").store(x)  # the lecture's rule: starts at the patterns
    assert hebb.is_fixed_point(x).float().mean() < 0.2
    assert learned.is_fixed_point(x).all()
    # no epochs: the Hebbian starting point; patterns already stable: no change
    assert torch.equal(
        Hopfield(n, rule="learned", learned_epochs=0).store(x[:5]).W, hebbian_weights(x[:5])
    )
    for negatives in ("patterns", "random"):
        net = Hopfield(n, rule="learned", learned_negatives=negatives, learned_epochs=3)
        assert torch.isfinite(net.store(x[:10]).W).all()


# ----- capacity ----------------------------------------------------------------------------------
def test_capacity_sweep_orders_the_rules():
    rows = capacity_sweep(
        n_units=200, loads=(0.05, 0.3), modern_loads=(2.0,), min_probes=60, max_probes=60, seed=0
    )
    get = {(r["rule"], round(r["load"], 3)): r for r in rows}
    hebb_low, hebb_high = get[("hebbian", 0.05)], get[("hebbian", 0.3)]
    assert hebb_low["fixed_point_fraction"] > 0.9 and hebb_low["recall_fraction"] > 0.9
    assert hebb_high["fixed_point_fraction"] < 0.05 and hebb_high["recall_fraction"] < 0.05
    for rule in ("storkey", "pseudoinverse", "learned"):
        row = get[(rule, 0.3)]
        assert row["fixed_point_fraction"] > 0.8, rule
        assert row["recall_fraction"] > hebb_high["recall_fraction"] + 0.5, rule
    modern = get[("modern", 2.0)]  # 400 patterns in 200 units
    assert modern["fixed_point_fraction"] == 1.0 and modern["recall_fraction"] == 1.0
    summary = capacity_summary(rows)
    assert 0.05 < summary["hebbian"]["recall_half_load"] < 0.3


@pytest.mark.slow
def test_hebbian_collapses_near_0138():
    """N = 500: the fraction of stable / recalled patterns falls through 1/2 near 0.138."""
    loads = (0.05, 0.08, 0.1, 0.12, 0.138, 0.16, 0.2, 0.3)
    rows = capacity_sweep(n_units=500, loads=loads, rules=("hebbian",), min_probes=300)
    fixed = crossing_load(rows, "hebbian", "fixed_point_fraction")
    recall = crossing_load(rows, "hebbian", "recall_fraction")
    assert 0.09 < fixed < 0.16 and 0.09 < recall < 0.16
    overlap = {round(r["load"], 3): r["recall_overlap"] for r in rows}
    assert overlap[0.1] > 0.95 and overlap[0.2] < 0.7


def test_projection_rule_reaches_the_mostafa_st_jacques_bound():
    """Any K < N patterns in general position are all stable with the projection weights (the
    zero-diagonal rule stops one short of K = N, where the projector is the identity); the
    Hebbian rule does not come close."""
    n = 16
    assert projection_capacity(n) == n
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        for k in range(1, projection_capacity(n)):
            x = torch.where(torch.rand(k, n, generator=g) < 0.5, -1.0, 1.0)
            if torch.linalg.matrix_rank(x) < k:
                continue
            assert Hopfield(n, rule="pseudoinverse").store(x).is_fixed_point(x).all(), k
    x = spins(n - 1, n, 6)
    assert not Hopfield(n).store(x).is_fixed_point(x).all()
    with pytest.raises(ValueError, match="span all of R"):
        Hopfield(n, rule="pseudoinverse").store(2 * torch.eye(n) - 1)  # N independent patterns


def test_hebbian_bit_error_probability_against_simulation():
    """The exact binomial crosstalk law against random networks: the error rate of the stored
    patterns' bits, with a standard error from the spread over independent networks."""
    n, k, networks = 60, 12, 300
    g = torch.Generator().manual_seed(8)
    rates = []
    for _ in range(networks):
        x = torch.where(torch.rand(k, n, generator=g) < 0.5, -1.0, 1.0).double()
        net = Hopfield(n).double().store(x)
        rates.append(((x * net.local_field(x)) < -net._tie_tolerance()).double().mean().item())
    rates = torch.tensor(rates)
    p = hebbian_bit_error_probability(n, k)
    assert abs(rates.mean().item() - p) < 4 * rates.std().item() / math.sqrt(networks)
    assert hebbian_bit_error_probability(n, 1) == 0.0  # one pattern is always stable
    # ties keep the bit: N = 3, K = 2 gives M = 2 and y z = (2 + C) / 3, C in {-2, 0, 2}
    assert hebbian_bit_error_probability(3, 2) == 0.0
    assert hebbian_bit_error_probability(3, 4) == pytest.approx(stats.binom.cdf(1, 6, 0.5))
    # the normal approximation Phi(-sqrt(N / K)) is the large-N limit at a fixed load
    p_large = hebbian_bit_error_probability(10**6, 10**5)
    assert p_large == pytest.approx(stats.norm.cdf(-math.sqrt(10)), rel=1e-3)


def test_mceliece_bound_from_the_bit_error_probability():
    """At K = c N / ln N the expected number of unstable bits over all patterns, N K p_err,
    vanishes as N grows for c below 1/4 and grows for c above it: N / (4 ln N) is the bound."""

    def unstable_bits(n: int, c: float) -> float:
        k = max(2, round(c * n / math.log(n)))
        return n * k * hebbian_bit_error_probability(n, k)

    sizes = (10**3, 10**4, 10**5)
    below = [unstable_bits(n, 0.15) for n in sizes]
    above = [unstable_bits(n, 0.35) for n in sizes]
    assert below[0] > below[1] > below[2] and below[2] < 1e-8
    assert above[0] < above[1] < above[2] and above[2] > 1
    at_bound = [
        n
        * round(mceliece_capacity(n))
        * hebbian_bit_error_probability(n, round(mceliece_capacity(n)))
        for n in sizes
    ]
    assert max(at_bound) < 0.01
    assert mceliece_capacity(1000, all_patterns=False) == pytest.approx(2 * mceliece_capacity(1000))
    bounds = capacity_bounds(500)
    assert bounds["mceliece"] < bounds["amit"] < bounds["mostafa_st_jacques"] == 500
    assert amit_capacity(500) == pytest.approx(0.138 * 500)


@pytest.mark.parametrize("k", [20, 30, 40])
def test_hebbian_fixed_point_probability_tracks_simulation(k):
    """(1 - p_err)^N treats a pattern's bits as independent; they are positively correlated
    through the shared crosstalk, so it runs a little low (by up to about 0.07 at N = 200)."""
    n, networks = 200, 40
    g = torch.Generator().manual_seed(9 + k)
    fractions = []
    for _ in range(networks):
        x = torch.where(torch.rand(k, n, generator=g) < 0.5, -1.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HopfieldCapacityWarning)  # overload is the point
            net = Hopfield(n).store(x)
        fractions.append(net.is_fixed_point(x).float().mean().item())
    measured = sum(fractions) / networks
    assert abs(measured - hebbian_fixed_point_probability(n, k)) < 0.1


def test_crossing_load_interpolates():
    rows = [{"rule": "a", "load": x, "f": y} for x, y in [(0.1, 1.0), (0.2, 0.8), (0.3, 0.2)]]
    assert crossing_load(rows, "a", "f") == pytest.approx(0.25)
    assert crossing_load(rows, "a", "f", level=0.1) == math.inf


def test_write_capacity(tmp_path):
    rows = capacity_sweep(
        n_units=60,
        loads=(0.05, 0.2),
        modern_loads=(1.0,),
        rules=("hebbian", "modern"),
        min_probes=10,
        max_probes=10,
    )
    json_path, png_path = write_capacity(rows, tmp_path, {"n_units": 60})
    document = json.loads(json_path.read_text())
    assert document["config"] == {"n_units": 60} and len(document["rows"]) == 5
    assert set(document["summary"]) == {"hebbian", "modern"}
    assert png_path.stat().st_size > 1000


def test_capacity_plot_marks_the_bounds(tmp_path, monkeypatch):
    """Each panel draws the three bounds at their loads for this N, and the first panel the
    Hebbian (1 - p_err)^N curve over the Hebbian loads."""
    import matplotlib.axes

    lines, curves = [], []
    axvline, plot = matplotlib.axes.Axes.axvline, matplotlib.axes.Axes.plot

    def record_line(self, x=0, *args, **kwargs):
        lines.append((kwargs.get("label"), x))
        return axvline(self, x, *args, **kwargs)

    def record_curve(self, *args, **kwargs):
        curves.append((kwargs.get("label"), args))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", record_line)
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record_curve)
    n = 60
    rows = capacity_sweep(n_units=n, loads=(0.05, 0.2), rules=("hebbian",), min_probes=5)
    assert plot_capacity(rows, tmp_path / "capacity.png").stat().st_size > 1000
    drawn = {}
    for label, x in lines:
        drawn.setdefault(label, set()).add(round(x, 12))
    assert len(lines) == 9  # three bounds on three panels
    assert drawn == {
        "N / (4 ln N), McEliece et al. 1987": {round(1 / (4 * math.log(n)), 12)},
        "0.138 N, Amit et al. 1985": {round(0.138, 12)},
        "N, Mostafa & St. Jacques 1985": {1.0},
    }
    ((xs, ys),) = [args for label, args in curves if label == "hebbian, (1 - p_err)^N"]
    assert min(xs) == pytest.approx(0.05) and max(xs) == pytest.approx(0.2)
    assert ys == [hebbian_fixed_point_probability(n, round(x * n)) for x in xs]


# ----- stochastic network ------------------------------------------------------------------------
@pytest.mark.parametrize("temperature, mode", [(1.0, "async"), (2.5, "async"), (1.0, "clock")])
def test_gibbs_samples_the_boltzmann_distribution(temperature, mode):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g).double()
    net = Hopfield(4).double().set_weights((a + a.T) / 2, torch.randn(4, generator=g).double())
    states = all_states(4).double()
    log_p = -net.energy(states) / temperature
    prob = torch.softmax(log_p, 0)
    chains = 20_000
    if mode == "async":
        samples = net.sample(chains, n_steps=20, temperature=temperature, generator=1)
    else:  # the unit clocks give a random, state-independent order of exact updates
        g1 = torch.Generator().manual_seed(1)
        start = torch.where(torch.rand(chains, 4, generator=g1) < 0.5, -1.0, 1.0).double()
        samples = net.gibbs(start, [temperature] * 20, g1, mode="clock")[0]
    index = ((samples > 0).long() * (2 ** torch.arange(3, -1, -1))).sum(1)
    counts = torch.bincount(index, minlength=16).double()
    # independent chains: multinomial counts; a false failure at this level is 1 in 10^6
    p_value = stats.chisquare(counts.numpy(), (prob * chains).numpy()).pvalue
    assert p_value > 1e-6


def test_stochastic_retrieval_and_annealing():
    x = spins(5, 200, 2)
    net = Hopfield(200).store(x)
    probes = flip_bits(x, 0.2, torch.Generator().manual_seed(3))
    cold = net.recall_stochastic(probes, temperature=0.2, n_sweeps=30, n_average=10, seed=4)
    assert torch.equal(cold, x)
    annealed = net.recall_stochastic(
        probes, temperature=0.6, alpha=0.9, n_sweeps=40, n_average=5, seed=5
    )
    assert torch.equal(annealed, x)
    assert torch.equal(net.anneal(probes, t_max=0.5, seed=6), x)
    # at a high temperature the average magnetisation is near zero: retrieval fails
    hot = net.recall_stochastic(probes, temperature=50.0, n_sweeps=30, n_average=10, seed=7)
    assert (hot * x).mean() < 0.3


def test_annealing_finds_lower_energies_than_greedy_descent():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 12, generator=g)
    net = Hopfield(12).double().set_weights((a + a.T).double())
    ground = net.energy(all_states(12).double()).min()
    starts = spins(200, 12, 2).double()
    greedy = net.energy(net.recall(starts, seed=3))
    annealed = net.energy(net.anneal(starts, t_max=5.0, alpha=0.95, t_min=0.05, seed=4))
    assert annealed.mean() < greedy.mean()
    assert (annealed - ground < 1e-9).float().mean() > (greedy - ground < 1e-9).float().mean()


def test_stochastic_dynamics_run_through_the_samplers_annealing():
    # gibbs() is SimulatedAnnealing over the given temperatures with the network's own sweep:
    # the same generator gives the same states as running the sampler by hand
    net = Hopfield(16).store(
        to_spins((torch.rand(2, 16, generator=torch.Generator().manual_seed(0)) < 0.5).float())
    )
    probes = to_spins((torch.rand(5, 16, generator=torch.Generator().manual_seed(1)) < 0.5).float())
    temps = geometric_schedule(2.0, 0.5, 5, t_min=0.3)
    last, mean = net.gibbs(probes, temps, seed=3, n_average=2)
    by_hand = SimulatedAnnealing(Gibbs("block"), temps).anneal(
        probes, net._sweep_target(None), torch.Generator().manual_seed(3), n_average=2
    )
    assert torch.equal(last, by_hand[0]) and torch.equal(mean, by_hand[1])
    # T = 0 entries are greedy sweeps: from a fixed point nothing moves
    stored = net.patterns
    assert torch.equal(net.gibbs(stored, [0.0, 0.0], seed=0)[0], stored)


def test_exact_log_z_interface():
    from ebmlab.estimators import exact_log_z

    net = Hopfield(5).store(spins(2, 5, 0))
    expected = torch.logsumexp(-net.energy(all_states(5)).double(), 0).item()
    assert exact_log_z(net) == pytest.approx(expected, abs=1e-6)


# ----- modern Hopfield network -------------------------------------------------------------------
def test_modern_energy_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    net = ModernHopfield(5, beta=0.7).double().store(x)
    xi = torch.randn(3, 5, generator=g, dtype=torch.float64)
    beta = 0.7
    lse = torch.log(torch.exp(beta * xi @ x.T).sum(1)) / beta
    m = x.norm(dim=1).max()
    expected = -lse + 0.5 * (xi**2).sum(1) + math.log(7) / beta + 0.5 * m**2
    assert torch.allclose(net.energy(xi), expected)
    softmax = torch.exp(beta * xi @ x.T)
    assert torch.allclose(net.update(xi), (softmax / softmax.sum(1, keepdim=True)) @ x)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 20.0), st.integers(1, 30), st.integers(1, 12))
def test_modern_update_never_increases_energy(seed, beta, n_patterns, dim):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_patterns, dim, generator=g, dtype=torch.float64) * 2
    net = ModernHopfield(dim, beta=beta).double().store(x)
    xi = torch.randn(8, dim, generator=g, dtype=torch.float64) * 3
    for _ in range(5):
        new = net.update(xi)
        assert (net.energy(new) <= net.energy(xi) + 1e-9).all()  # a CCCP step
        xi = new
    assert (net.energy(xi) >= -1e-9).all()  # Ramsauer et al.: E >= 0 with the constant terms


def test_modern_one_step_retrieval():
    g = torch.Generator().manual_seed(1)
    d, n = 64, 500
    x = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1) * math.sqrt(d)
    net = ModernHopfield(d, beta=1.0).store(x)
    probes = x + 0.3 * torch.randn(n, d, generator=g)
    retrieved = net.recall(probes)
    assert ((retrieved - x).norm(dim=1) / x.norm(dim=1)).max() < 1e-3
    binary = spins(2000, 100, 2)  # 20 patterns per unit
    modern = ModernHopfield(100).store(binary)
    noisy = flip_bits(binary[:300], 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(modern.recall(noisy, binary=True, chunk=128), binary[:300])


# ----- pattern completion ------------------------------------------------------------------------
def digits_binary() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    return (x > 0.5).float(), torch.tensor(digits.target)


@pytest.mark.parametrize(
    "rule, options",
    [("pseudoinverse", {}), ("storkey", {}), ("learned", {"learned_noise": 0.2})],
)
def test_digit_completion_from_20_percent_flips(rule, options):
    x, _ = digits_binary()
    patterns = to_spins(x[select_patterns(x, 4, "farthest", seed=0)])
    net = Hopfield(64, rule=rule, **options).store(patterns)
    for seed in range(5):
        probes = flip_bits(patterns, 0.2, torch.Generator().manual_seed(seed))
        assert torch.equal(net.recall(probes, seed=seed), patterns)
    rows, metrics = completion_rows(
        net, patterns, (8, 8), generator=torch.Generator().manual_seed(9)
    )
    assert [label for label, _ in rows][:3] == ["stored", "20% flipped", "recalled"]
    assert metrics["fixed_point_fraction"] == 1.0 and metrics["flip_recall_fraction"] == 1.0


def test_mnist_completion():
    from ebmlab import data

    root = os.environ.get("EBMLAB_DATA")
    if root is None or not Path(root, "mnist").exists():
        pytest.skip("MNIST not available (set EBMLAB_DATA)")
    x, y = data.load("mnist", "train", data_dir=root)
    binary = (x[:3000] > 0.5).float()
    idx = select_patterns(binary, 10, "per-class", labels=y[:3000])
    assert sorted(y[:3000][idx].tolist()) == list(range(10))
    patterns = to_spins(binary[idx])
    net = Hopfield(784, rule="pseudoinverse").store(patterns)
    _, metrics = completion_rows(
        net, patterns, (28, 28), generator=torch.Generator().manual_seed(0)
    )
    assert metrics["flip_recall_fraction"] == 1.0
    assert metrics["half_overlap"] > 0.7


def test_hide_half_and_clamped_completion():
    x, _ = digits_binary()
    patterns = to_spins(x[select_patterns(x, 3, "farthest", seed=1)])
    probes, known = hide_half(patterns, (8, 8), "bottom")
    assert known.sum() == 32 and (probes[:, ~known] == -1).all()
    assert torch.equal(probes[:, known], patterns[:, known])
    net = Hopfield(64, rule="pseudoinverse").store(patterns)
    recalled = net.recall(probes, clamp=known, seed=0)
    assert torch.equal(recalled[:, known], patterns[:, known])  # clamped units never move
    _, left = hide_half(
        patterns, (8, 8), "left", fill="random", generator=torch.Generator().manual_seed(0)
    )
    assert left.reshape(8, 8)[:, 4:].all() and not left.reshape(8, 8)[:, :4].any()


# ----- conversions and bad input -----------------------------------------------------------------
def test_conversions():
    x = torch.tensor([[0.0, 1.0, 1.0]])
    assert torch.equal(to_spins(x), torch.tensor([[-1.0, 1.0, 1.0]]))
    assert torch.equal(to_binary(to_spins(x)), x)
    with pytest.raises(ValueError, match="0/1"):
        to_spins(torch.tensor([[0.5, 1.0]]))


def test_bad_input():
    net = Hopfield(4)
    with pytest.raises(ValueError, match="patterns: expected 4 features"):
        net.store(torch.ones(2, 5))
    with pytest.raises(ValueError, match="patterns: expected shape"):
        net.store(torch.ones(4))
    with pytest.raises(ValueError, match="to_spins"):
        net.store(torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="spins -1/\\+1"):
        net.store(torch.tensor([[0.3, 1.0, -1.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        net.store(torch.tensor([[float("nan"), 1.0, -1.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        net.set_weights(torch.triu(torch.ones(4, 4)))
    with pytest.raises(ValueError, match="W: expected shape"):
        net.set_weights(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="rule"):
        Hopfield(4, rule="hebian")
    with pytest.raises(ValueError, match="mode"):
        net.recall(torch.ones(1, 4), mode="parallel")
    with pytest.raises(ValueError, match="mode"):
        net.gibbs(torch.ones(1, 4), [1.0], mode="sync")
    with pytest.raises(ValueError, match="n_units"):
        mceliece_capacity(1)
    with pytest.raises(ValueError, match="n_patterns"):
        hebbian_bit_error_probability(10, 0)
    with pytest.raises(ValueError, match="duration"):
        clock_updates(4, 0.0)
    with pytest.raises(ValueError, match="probes: expected 4 features"):
        net.recall(torch.ones(1, 3))
    with pytest.raises(ValueError, match="clamp"):
        net.recall(torch.ones(1, 4), clamp=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_average"):
        net.gibbs(torch.ones(1, 4), [1.0, 1.0], n_average=3)
    with pytest.raises(RuntimeError, match="no patterns stored"):
        ModernHopfield(4).update(torch.ones(1, 4))
    with pytest.raises(ValueError, match="n_units"):
        ModernHopfield(0)


# ----- checkpoints, recipe, CLI ------------------------------------------------------------------
def test_save_and_load(tmp_path):
    import ebmlab

    net = Hopfield(30, rule="storkey").store(spins(4, 30, 0))
    loaded = ebmlab.load(ebmlab.save(net, tmp_path / "h.safetensors"))
    assert isinstance(loaded, Hopfield) and loaded.rule == "storkey"
    assert torch.equal(loaded.W, net.W) and torch.equal(loaded.patterns, net.patterns)
    modern = ModernHopfield(30, beta=2.0).store(spins(9, 30, 1))
    again = ebmlab.load(ebmlab.save(modern, tmp_path / "m.safetensors"))
    assert again.beta == 2.0 and torch.equal(again.patterns, modern.patterns)


def test_recipe_on_digits(tmp_path):
    from ebmlab.app.recipes import Context, get_recipe

    recipe = get_recipe("hopfield")
    x, _ = digits_binary()
    options = {opt.name: opt.default for opt in recipe.options}
    ctx = Context(
        options=options,
        data_name="digits",
        image_shape=(8, 8),
        generator=torch.Generator().manual_seed(17),
        out_dir=tmp_path,
        device=torch.device("cpu"),
        quick=True,
    )
    model, objective = recipe.build(x[:1500], ctx)
    assert objective is None and recipe.fit is not None
    fitted = recipe.fit(model, x[:1500], ctx)
    assert fitted["n_patterns"] == 10
    metrics = recipe.evaluate(model, x[:1500], x[1500:], ctx)
    assert metrics["fixed_point_fraction"] == 1.0
    assert metrics["flip_recall_fraction"] >= 0.5
    figures = recipe.figures(model, x[1500:], ctx)
    assert all(Path(f.path).exists() for f in figures) and len(figures) == 2


def run_cli(*argv: str) -> int:
    from ebmlab.app.hopfield_cli import add_hopfield_parser

    parser = argparse.ArgumentParser(prog="ebmlab")
    add_hopfield_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_store_recall_capacity(tmp_path, capsys):
    x, _ = digits_binary()
    np.save(tmp_path / "p.npy", x[select_patterns(x, 5, "farthest")].reshape(5, 8, 8).numpy())
    ckpt = tmp_path / "mem.safetensors"
    assert run_cli("hopfield", "store", "--npy", str(tmp_path / "p.npy"), "--out", str(ckpt)) == 0
    assert "stored 5 patterns of 64 units" in capsys.readouterr().out
    out = tmp_path / "recall.png"
    assert (
        run_cli("hopfield", "recall", str(ckpt), "--noise", "0.1", "--json", "--out", str(out)) == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["recalled_source_exactly"] == 1.0 and out.exists()
    clock = ("--noise", "0.1", "--mode", "clock", "--json", "--out", str(tmp_path / "clock.png"))
    assert run_cli("hopfield", "recall", str(ckpt), *clock) == 0
    assert json.loads(capsys.readouterr().out)["recalled_source_exactly"] == 1.0
    assert (
        run_cli(
            "hopfield",
            "recall",
            str(ckpt),
            "--noise",
            "0",
            "--hide",
            "bottom",
            "--temperature",
            "0.2",
            "--out",
            str(tmp_path / "half.png"),
        )
        == 0
    )
    assert (
        run_cli(
            "hopfield",
            "capacity",
            "--n-units",
            "50",
            "--loads",
            "0.05",
            "0.2",
            "--modern-loads",
            "1",
            "--rules",
            "hebbian",
            "modern",
            "--min-probes",
            "10",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    table = json.loads((tmp_path / "hopfield_capacity.json").read_text())
    assert {r["rule"] for r in table["rows"]} == {"hebbian", "modern"}
    assert (tmp_path / "hopfield_capacity.png").exists()
    with pytest.raises(ValueError, match="--npy"):
        np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5)))
        run_cli("hopfield", "store", "--npy", str(tmp_path / "bad.npy"), "--out", str(ckpt))
