"""Markov chains on a finite state space: hand-computed 3-state chains (stationary distribution,
detailed balance, distance to stationarity), ergodicity, Metropolis-Hastings and Gibbs matrices
against the library's kernels, "Gibbs always accepts", and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from sampler_targets import TinyBoltzmann, chi_square_p, tiny_rbm

from ebmlab.estimators import enumerate_states, exact_log_z
from ebmlab.models import Ising
from ebmlab.samplers import (
    Gibbs,
    Langevin,
    MetropolisHastings,
    acceptance_matrix,
    communicating_classes,
    detailed_balance_violation,
    distance_to_stationarity,
    flip_proposal_matrix,
    gibbs_as_metropolis_hastings,
    gibbs_matrix,
    gibbs_site_matrix,
    is_aperiodic,
    is_ergodic,
    is_irreducible,
    metropolis_hastings_matrix,
    mixing_time,
    period,
    probability_flow,
    satisfies_detailed_balance,
    stationary_distribution,
    target_log_probs,
    target_probs,
    total_variation,
    transition_matrix,
)
from ebmlab.samplers.finite import flip_neighbours

D = torch.float64

# ----- a hand-computed 3-state chain -------------------------------------------------------------
# A birth-death chain on {0, 1, 2}. By hand: detailed balance pi_0 / 2 = pi_1 / 4 and
# pi_1 / 4 = pi_2 / 2 give pi_1 = 2 pi_0 = 2 pi_2, so pi = (1/4, 1/2, 1/4). Its eigenvalues are
# 1, 1/2 (right eigenvector (1, 0, -1)) and 0 (right eigenvector (1, -1, 1)); from state 0,
# pi_t = pi + 2^-t (1/2, 0, -1/2) for t >= 1, so TV(pi_t, pi) = 2^-(t+1); from state 1 the
# chain is exactly stationary after one step.
BIRTH_DEATH = torch.tensor([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]], dtype=D)
BIRTH_DEATH_PI = torch.tensor([0.25, 0.5, 0.25], dtype=D)

# A chain that turns mostly one way round the cycle 0 -> 1 -> 2 -> 0. Its columns sum to one
# (doubly stochastic), so the uniform distribution is stationary, yet pi_0 T_01 = 0.7 / 3 while
# pi_1 T_10 = 0.1 / 3: detailed balance is sufficient for stationarity, not necessary.
CYCLIC = torch.tensor([[0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.7, 0.1, 0.2]], dtype=D)
CYCLIC_PI = torch.full((3,), 1.0 / 3.0, dtype=D)


@pytest.mark.parametrize("method", ["solve", "eigen"])
def test_stationary_distribution_of_hand_computed_chains(method):
    torch.testing.assert_close(stationary_distribution(BIRTH_DEATH, method), BIRTH_DEATH_PI)
    torch.testing.assert_close(stationary_distribution(CYCLIC, method), CYCLIC_PI)
    # pi T = pi, by the matrix itself
    torch.testing.assert_close(BIRTH_DEATH_PI @ BIRTH_DEATH, BIRTH_DEATH_PI)


def test_detailed_balance_of_hand_computed_chains():
    flow = probability_flow(BIRTH_DEATH, BIRTH_DEATH_PI)
    # by hand: pi_0 T_01 = 1/4 * 1/2 = 1/8 = pi_1 T_10 = 1/2 * 1/4, and the same for 1 <-> 2
    expected = torch.tensor([[1 / 8, 1 / 8, 0], [1 / 8, 1 / 4, 1 / 8], [0, 1 / 8, 1 / 8]], dtype=D)
    torch.testing.assert_close(flow, expected)
    assert detailed_balance_violation(BIRTH_DEATH, BIRTH_DEATH_PI) == 0.0
    assert satisfies_detailed_balance(BIRTH_DEATH, BIRTH_DEATH_PI)
    # the cyclic chain: stationary but not reversible, |0.7 - 0.1| / 3 = 0.2
    assert detailed_balance_violation(CYCLIC, CYCLIC_PI) == pytest.approx(0.2)
    assert not satisfies_detailed_balance(CYCLIC, CYCLIC_PI)
    # a wrong pi breaks the balance of the reversible chain too
    assert not satisfies_detailed_balance(BIRTH_DEATH, CYCLIC_PI)


def test_distance_to_stationarity_of_the_hand_computed_chain():
    t = torch.arange(8, dtype=D)
    from_0 = distance_to_stationarity(BIRTH_DEATH, 7, initial=0)
    expected = torch.cat([torch.tensor([0.75], dtype=D), 0.5 ** (t[1:] + 1)])
    torch.testing.assert_close(from_0, expected)
    from_1 = distance_to_stationarity(BIRTH_DEATH, 7, initial=1)
    torch.testing.assert_close(
        from_1, torch.cat([torch.tensor([0.5], dtype=D), torch.zeros(7, dtype=D)])
    )
    # the worst start is an end state; a distribution as the start mixes the two
    torch.testing.assert_close(distance_to_stationarity(BIRTH_DEATH, 7), from_0)
    half = torch.tensor([0.5, 0.5, 0.0], dtype=D)
    torch.testing.assert_close(
        distance_to_stationarity(BIRTH_DEATH, 7, initial=half)[1:], 0.5 * expected[1:]
    )
    # t_mix(eps): the first t with 2^-(t+1) <= eps
    assert mixing_time(BIRTH_DEATH, 0.25) == 1
    assert mixing_time(BIRTH_DEATH, 0.1) == 3
    assert mixing_time(BIRTH_DEATH, 1e-3) == math.ceil(math.log2(1e3)) - 1


def test_total_variation():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.0, 0.5, 0.5])
    assert float(total_variation(p, q)) == 0.5
    assert float(total_variation(p, p)) == 0.0
    batched = total_variation(torch.eye(3, dtype=D), BIRTH_DEATH_PI)
    torch.testing.assert_close(batched, torch.tensor([0.75, 0.5, 0.75], dtype=D))


def test_doeblin_bound_on_a_dense_chain():
    """min T(z -> z') >= delta > 0 (the lecture's ergodicity condition) gives
    d(t) <= (1 - K delta)^t."""
    g = torch.Generator().manual_seed(0)
    T = torch.rand(6, 6, generator=g, dtype=D) + 0.05
    T = T / T.sum(1, keepdim=True)
    delta = float(T.min())
    d = distance_to_stationarity(T, 20)
    bound = (1 - 6 * delta) ** torch.arange(21, dtype=D)
    assert (d <= bound + 1e-15).all()
    assert (d[1:] <= d[:-1] + 1e-15).all()  # never increases
    assert is_ergodic(T)


# ----- ergodicity --------------------------------------------------------------------------------
def test_ergodicity_of_small_chains():
    assert is_ergodic(BIRTH_DEATH) and is_ergodic(CYCLIC)
    assert period(BIRTH_DEATH, 1) == 1
    flip = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=D)
    assert is_irreducible(flip) and period(flip) == 2 and not is_aperiodic(flip)
    assert not is_ergodic(flip)
    # a unique stationary distribution, but the chain never forgets its start
    torch.testing.assert_close(stationary_distribution(flip), torch.tensor([0.5, 0.5], dtype=D))
    assert (distance_to_stationarity(flip, 6, initial=0) == 0.5).all()
    cycle = torch.roll(torch.eye(3, dtype=D), 1, dims=1)  # 0 -> 1 -> 2 -> 0
    assert period(cycle, 2) == 3
    lazy_cycle = 0.5 * cycle + 0.5 * torch.eye(3, dtype=D)
    assert is_ergodic(lazy_cycle)
    # a cycle of length 2 and one of length 3 through the same state: gcd 1
    mixed = torch.tensor([[0, 0.5, 0.5, 0], [1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=D)
    assert period(mixed) == 1 and is_ergodic(mixed)


def test_reducible_chains():
    two_classes = torch.eye(2, dtype=D)
    assert not is_irreducible(two_classes)
    assert communicating_classes(two_classes) == [[0], [1]]
    with pytest.raises(ValueError, match="not unique"):
        stationary_distribution(two_classes)
    with pytest.raises(ValueError, match="not unique"):
        stationary_distribution(two_classes, method="eigen")
    # a transient state leading into one absorbing state: unique pi, not irreducible
    absorbing = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=D)
    torch.testing.assert_close(
        stationary_distribution(absorbing), torch.tensor([0.0, 1.0], dtype=D)
    )
    assert not is_irreducible(absorbing) and communicating_classes(absorbing) == [[0], [1]]
    assert period(torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=D), 0) == 0  # never returns


# ----- Metropolis-Hastings with a proposal matrix ------------------------------------------------
P3 = torch.tensor([0.2, 0.3, 0.5], dtype=D)


def test_metropolis_hastings_matrix_by_hand():
    """Uniform proposal to the other two states: T_ij = 1/2 min(1, p_j / p_i)."""
    Q = (torch.ones(3, 3, dtype=D) - torch.eye(3, dtype=D)) / 2
    T = metropolis_hastings_matrix(P3.log(), Q)
    expected = torch.tensor([[0.0, 0.5, 0.5], [1 / 3, 1 / 6, 0.5], [0.2, 0.3, 0.5]], dtype=D)
    torch.testing.assert_close(T, expected)
    torch.testing.assert_close(stationary_distribution(T), P3)
    assert satisfies_detailed_balance(T, P3)
    # log p up to a constant gives the same chain
    torch.testing.assert_close(metropolis_hastings_matrix(P3.log() + 7.0, Q), T)


def test_hastings_correction_for_an_asymmetric_proposal():
    Q = torch.tensor([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]], dtype=D)
    T = metropolis_hastings_matrix(P3.log(), Q)
    torch.testing.assert_close(stationary_distribution(T), P3)
    assert satisfies_detailed_balance(T, P3)
    alpha = acceptance_matrix(P3.log(), Q)
    assert alpha[0, 1] == pytest.approx(min(1.0, 0.3 * 0.2 / (0.2 * 0.6)))
    # dropping the Hastings factor Q_ji / Q_ij (plain Metropolis) leaves the wrong distribution
    metropolis = torch.exp(torch.clamp(P3.log()[None, :] - P3.log()[:, None], max=0.0)) * Q
    metropolis.fill_diagonal_(0.0)
    metropolis += torch.diag(1.0 - metropolis.sum(1))
    assert float(total_variation(stationary_distribution(metropolis), P3)) > 0.01


def test_zero_probability_states():
    """A move out of a state of probability zero is always accepted; none enters it."""
    log_p = torch.tensor([0.0, -math.inf, 0.0], dtype=D)
    Q = torch.full((3, 3), 1.0 / 3.0, dtype=D)
    T = metropolis_hastings_matrix(log_p, Q)
    assert (T[:, 1][[0, 2]] == 0).all() and T[1, 1] == pytest.approx(1.0 / 3.0)
    torch.testing.assert_close(stationary_distribution(T), torch.tensor([0.5, 0, 0.5], dtype=D))


# ----- Gibbs on small binary targets -------------------------------------------------------------
def tiny_target():
    """TinyBoltzmann restricted to its first 3 units: a fully coupled 3-unit machine."""
    model = TinyBoltzmann()
    W, b = model.W[:3, :3].double(), model.b[:3].double()
    return lambda s: -0.5 * ((s @ W) * s).sum(-1) - s @ b


def test_gibbs_site_matrices_satisfy_detailed_balance():
    energy, states = tiny_target(), enumerate_states(3)
    p = target_probs(energy, states)
    torch.testing.assert_close(p, torch.softmax(-energy(states), 0))
    neighbours = flip_neighbours(states)
    for k in range(3):
        T_k = gibbs_site_matrix(energy, states, k)
        assert satisfies_detailed_balance(T_k, p)
        # each row moves only to itself or to the state with site k flipped, with the conditional
        rows = torch.arange(8)
        assert (T_k[rows, neighbours[:, k]] + T_k[rows, rows] == 1).all()
        torch.testing.assert_close(
            T_k[rows, neighbours[:, k]], p[neighbours[:, k]] / (p + p[neighbours[:, k]])
        )
        assert not is_irreducible(T_k)  # one site alone never reaches every state
    site = gibbs_matrix(energy, states, "site")
    assert satisfies_detailed_balance(site, p) and is_ergodic(site)
    torch.testing.assert_close(stationary_distribution(site), p)


def test_systematic_sweep_is_stationary_but_not_reversible():
    energy, states = tiny_target(), enumerate_states(3)
    p = target_probs(energy, states)
    sweep = gibbs_matrix(energy, states, "systematic")
    T = [gibbs_site_matrix(energy, states, k) for k in range(3)]
    torch.testing.assert_close(sweep, T[0] @ T[1] @ T[2])
    torch.testing.assert_close(stationary_distribution(sweep), p)
    assert is_ergodic(sweep) and (sweep > 0).all()  # every state reachable in one sweep
    assert detailed_balance_violation(sweep, p) > 1e-3
    # its time reversal diag(p)^-1 S^T diag(p) is the sweep in the opposite order
    reversal = sweep.T * p[None, :] / p[:, None]
    torch.testing.assert_close(reversal, T[2] @ T[1] @ T[0])
    random_scan = gibbs_matrix(energy, states, "random")
    torch.testing.assert_close(random_scan, torch.linalg.matrix_power(sum(T) / 3, 3))
    torch.testing.assert_close(stationary_distribution(random_scan), p)
    assert satisfies_detailed_balance(random_scan, p)
    d = distance_to_stationarity(sweep, 30)
    assert (d[1:] <= d[:-1] + 1e-15).all() and d[-1] < 1e-10


def test_gibbs_always_accepts():
    """Metropolis-Hastings with the Gibbs conditional as proposal: every acceptance is 1."""
    energy, states = tiny_target(), enumerate_states(3)
    for site in (0, 1, 2, None):
        result = gibbs_as_metropolis_hastings(energy, states, site)
        support = result.proposal > 0
        torch.testing.assert_close(
            result.acceptance[support], torch.ones(int(support.sum()), dtype=D)
        )
        torch.testing.assert_close(result.transition, result.proposal)
    # spins -1/+1 (an Ising lattice) and a random-walk flip proposal, for contrast: MH rejects
    ising = Ising(2, coupling=0.8, field=0.3)
    spins = enumerate_states(4, spin_values=(-1.0, 1.0)).float()
    result = gibbs_as_metropolis_hastings(ising, spins)
    accepted = result.acceptance[result.proposal > 0]
    torch.testing.assert_close(accepted, torch.ones_like(accepted))
    flips = flip_proposal_matrix(spins)
    alpha = acceptance_matrix(target_log_probs(ising, spins), flips)
    assert alpha[flips > 0].min() < 0.5


def test_marginal_chain_of_a_model_with_hidden_units():
    """A model with hidden units is read through its free energy: the chain on v has the
    exact marginal p(v) as its stationary distribution."""
    rbm = tiny_rbm().double()
    states = enumerate_states(5)
    pi = stationary_distribution(gibbs_matrix(rbm, states, "systematic"))
    with torch.no_grad():
        marginal = torch.exp(-rbm.free_energy(states) - exact_log_z(rbm))
    torch.testing.assert_close(pi, marginal)


def test_flip_proposal_matrix():
    states = enumerate_states(3)
    one = flip_proposal_matrix(states)
    torch.testing.assert_close(one.sum(1), torch.ones(8, dtype=D))
    torch.testing.assert_close(one, one.T)
    assert set(one.unique().tolist()) == {0.0, 1 / 3}
    two = flip_proposal_matrix(states, n_flips=2)  # 1 or 2 flips, each with probability 1/2
    hamming = (states[:, None, :] != states[None, :, :]).sum(-1)
    torch.testing.assert_close(two[hamming == 1], torch.full((24,), 1 / 6, dtype=D))
    torch.testing.assert_close(two[hamming == 2], torch.full((24,), 1 / 6, dtype=D))
    assert (two[(hamming == 0) | (hamming == 3)] == 0).all()


# ----- the matrices are the library's kernels ----------------------------------------------------
def assert_rows_match(counts, T):
    """Each row of counts is a multinomial draw from the row of T: nothing lands where T is 0,
    and a chi-square test (p > 1e-4 per row) on the rest."""
    for i in range(T.shape[0]):
        possible = T[i] > 0
        assert counts[i][~possible].sum() == 0, i
        assert chi_square_p(counts[i][possible], T[i][possible]) > 1e-4, (i, counts[i], T[i])


def empirical_rows(kernel, target, states, n_per_state, calls=1, seed=0):
    """Counts[i, j] of one kernel step from state i landing in state j."""
    g = torch.Generator().manual_seed(seed)
    k = states.shape[0]
    start = states.repeat_interleave(n_per_state, 0)
    index = torch.arange(k).repeat_interleave(n_per_state)
    counts = torch.zeros(k, k, dtype=D)
    lookup = {tuple(row.tolist()): j for j, row in enumerate(states)}
    for _ in range(calls):
        x_new, _ = kernel.step(start.clone(), target, g)
        landed = torch.tensor([lookup[tuple(row.tolist())] for row in x_new])
        counts.index_put_((index, landed), torch.ones(index.numel(), dtype=D), accumulate=True)
    return counts


@pytest.mark.parametrize(
    "kernel, n_per_state, calls",
    [
        (Gibbs(scan="systematic"), 4000, 1),
        # the random scan draws one site sequence per call, shared by the chains of that call
        (Gibbs(scan="random"), 1, 3000),
        (MetropolisHastings(proposal="flip"), 4000, 1),
        (MetropolisHastings(proposal="flip", n_flips=2), 4000, 1),
    ],
    ids=["gibbs-systematic", "gibbs-random", "mh-flip", "mh-flip-2"],
)
def test_transition_matrix_is_the_kernels_step(kernel, n_per_state, calls):
    energy, states = tiny_target(), enumerate_states(3)
    T = transition_matrix(kernel, energy, states)
    assert_rows_match(empirical_rows(kernel, energy, states, n_per_state, calls), T)
    torch.testing.assert_close(stationary_distribution(T), target_probs(energy, states))


def test_transition_matrix_through_exact_conditionals():
    """The Ising model's Gibbs kernel uses its own conditional_logits; the matrix uses only the
    energy: one step from every state agrees."""
    ising = Ising(2, coupling=0.6, field=-0.4)
    spins = enumerate_states(4, spin_values=(-1.0, 1.0)).float()
    kernel = Gibbs(scan="systematic")
    T = transition_matrix(kernel, ising, spins)
    assert_rows_match(empirical_rows(kernel, ising, spins, 3000), T)
    torch.testing.assert_close(stationary_distribution(T), target_probs(ising, spins))
    with pytest.raises(ValueError, match="block sweep"):
        transition_matrix(Gibbs(), ising, spins)  # "auto" picks the checkerboard sweep


# ----- bad input ---------------------------------------------------------------------------------
def test_bad_input():
    energy, states = tiny_target(), enumerate_states(3)
    with pytest.raises(ValueError, match="square"):
        stationary_distribution(torch.ones(2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        stationary_distribution(torch.tensor([[1.5, -0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="rows summing to 1"):
        stationary_distribution(torch.tensor([[0.5, 0.4], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="method"):
        stationary_distribution(BIRTH_DEATH, method="power")
    with pytest.raises(ValueError, match="summing to 1"):
        detailed_balance_violation(BIRTH_DEATH, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        probability_flow(BIRTH_DEATH, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="not among the states"):
        gibbs_matrix(energy, states[:-1])
    with pytest.raises(ValueError, match="distinct"):
        flip_neighbours(torch.cat([states, states[:1]]))
    with pytest.raises(ValueError, match="binary states"):
        gibbs_matrix(energy, states * 0.5 + 0.25, spin_values=(0.0, 1.0))
    with pytest.raises(ValueError, match="site"):
        gibbs_site_matrix(energy, states, 3)
    with pytest.raises(ValueError, match="scan"):
        gibbs_matrix(energy, states, "block")
    with pytest.raises(ValueError, match="n_flips"):
        flip_proposal_matrix(states, n_flips=4)
    with pytest.raises(TypeError, match="kernel"):
        transition_matrix(Langevin(0.1), energy, states)
    with pytest.raises(ValueError, match="log_p"):
        metropolis_hastings_matrix(torch.tensor([0.0, 0.0]), BIRTH_DEATH)
    with pytest.raises(ValueError, match="state"):
        period(BIRTH_DEATH, 3)
    with pytest.raises(ValueError, match="initial"):
        distance_to_stationarity(BIRTH_DEATH, 3, initial=5)
    with pytest.raises(ValueError, match="n_steps"):
        distance_to_stationarity(BIRTH_DEATH, -1)
    with pytest.raises(ValueError, match="epsilon"):
        mixing_time(BIRTH_DEATH, 0.0)
    flip = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=D)
    with pytest.raises(ValueError, match="ergodic"):
        mixing_time(flip, 0.25, max_steps=50)
    with pytest.raises(ValueError, match="one energy per state"):
        target_log_probs(lambda s: s.sum(), states)
