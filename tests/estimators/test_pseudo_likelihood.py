"""Pseudo-log-likelihood from the free energy: against exact enumeration of tiny models, the
random-bit estimate unbiased, bad input named."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from estimator_models import all_binary, random_dbm, random_rbm

from ebmlab.estimators import pseudo_log_likelihood


def _enumerated_pll(log_p_unnormalized: dict[tuple[int, ...], float], v: torch.Tensor) -> list:
    """sum_i log p(v_i | v_-i) from the table of log p~(state) over every binary state."""
    out = []
    for row in v.tolist():
        state = tuple(int(x) for x in row)
        total = 0.0
        for i in range(len(state)):
            other = list(state)
            other[i] = 1 - other[i]
            a, b = log_p_unnormalized[state], log_p_unnormalized[tuple(other)]
            total += a - math.log(math.exp(a) + math.exp(b))
        out.append(total)
    return out


def _rbm_table(rbm) -> dict[tuple[int, ...], float]:
    """log sum_h exp(-E(v, h)) for every v, summing the hidden states one by one (not through
    the model's free energy)."""
    table = {}
    hidden = list(itertools.product((0.0, 1.0), repeat=rbm.n_hidden))
    h = torch.tensor(hidden, dtype=torch.float64)
    for state in itertools.product((0, 1), repeat=rbm.n_visible):
        v = torch.tensor([state], dtype=torch.float64).expand(len(hidden), -1)
        with torch.no_grad():
            table[state] = float(torch.logsumexp(-rbm.energy(v, h), 0))
    return table


def test_every_bit_matches_exact_enumeration_of_a_tiny_rbm():
    rbm = random_rbm(5, 3, sigma=1.5, seed=11).double()
    v = all_binary(5).double()
    expected = torch.tensor(_enumerated_pll(_rbm_table(rbm), v), dtype=torch.float64)
    got = pseudo_log_likelihood(rbm, v)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    # and the RBM's own exact method (from the hidden inputs) agrees
    with torch.no_grad():
        own = rbm.pseudo_log_likelihood(v)
    torch.testing.assert_close(got, own, rtol=0, atol=1e-10)


def test_every_bit_of_a_dbm_through_its_enumerated_free_energy():
    dbm = random_dbm([4, 3, 2], scale=1.0, seed=5)
    hidden = torch.tensor(list(itertools.product((0.0, 1.0), repeat=5)), dtype=torch.float64)
    table = {}
    for state in itertools.product((0, 1), repeat=4):  # every (h1, h2) summed by brute force
        v = torch.tensor([state], dtype=torch.float64).expand(len(hidden), -1)
        with torch.no_grad():
            energies = dbm.energy(v, hidden[:, :3], hidden[:, 3:])
        table[state] = float(torch.logsumexp(-energies, 0))
    v = all_binary(4).double()
    expected = torch.tensor(_enumerated_pll(table, v), dtype=torch.float64)
    torch.testing.assert_close(pseudo_log_likelihood(dbm, v), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_bits", [1, 3])
def test_random_bits_are_unbiased_for_the_sum(n_bits):
    rbm = random_rbm(6, 4, sigma=1.5, seed=12).double()
    v = all_binary(6).double()[::7]  # 10 states
    exact = pseudo_log_likelihood(rbm, v)
    reps = 4000
    g = torch.Generator().manual_seed(123)
    draws = pseudo_log_likelihood(rbm, v.repeat(reps, 1), n_bits=n_bits, generator=g)
    draws = draws.view(reps, -1)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(reps)
    assert bool((se > 0).all())  # the draws do vary
    assert bool(((mean - exact).abs() <= 4 * se + 1e-9).all())
    # with k = D the "random" subset is every bit: exact
    torch.testing.assert_close(
        pseudo_log_likelihood(rbm, v, n_bits=6, generator=g), exact, rtol=0, atol=1e-10
    )


class _FreeEnergyOnly:
    """An RBM seen through its free energy alone (no ``log_conditionals``)."""

    def __init__(self, rbm) -> None:
        self.free_energy, self.check_visible = rbm.free_energy, rbm.check_visible


@pytest.mark.parametrize("n_bits", [None, 2])
def test_an_rbms_own_conditionals_agree_with_its_flipped_free_energies(n_bits):
    rbm = random_rbm(7, 5, sigma=1.0, seed=14).double()
    v = all_binary(7).double()[::5]
    fast = pseudo_log_likelihood(rbm, v, n_bits, torch.Generator().manual_seed(9))
    slow = pseudo_log_likelihood(_FreeEnergyOnly(rbm), v, n_bits, torch.Generator().manual_seed(9))
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-10)


def test_bad_input_is_named():
    rbm = random_rbm(4, 2, sigma=1.0, seed=13)
    with pytest.raises(ValueError, match="n_bits"):
        pseudo_log_likelihood(rbm, torch.zeros(2, 4), n_bits=5)
    with pytest.raises(ValueError, match="n_bits"):
        pseudo_log_likelihood(rbm, torch.zeros(2, 4), n_bits=0)
    with pytest.raises(ValueError, match="v"):
        pseudo_log_likelihood(rbm, torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="v"):
        pseudo_log_likelihood(rbm, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="free_energy"):
        pseudo_log_likelihood(object(), torch.zeros(2, 4))
