"""Hopfield network with hidden neurons: storage on N + K units, retrieval from visible probes."""

from __future__ import annotations

import warnings

import pytest
import torch

from ebmlab.app.hopfield_experiments import capacity_summary, capacity_sweep
from ebmlab.models.hopfield import Hopfield, HopfieldCapacityWarning, flip_bits
from ebmlab.models.hopfield_hidden import HiddenHopfield


def _patterns(p: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(p, n, generator=g) < 0.5, -1.0, 1.0)


@pytest.mark.parametrize("rule", ["hebbian", "pseudoinverse", "storkey"])
@pytest.mark.parametrize("fill", ["random", "learned"])
def test_stored_full_patterns_are_fixed_points(rule, fill):
    x = _patterns(8, 40, 0)
    net = HiddenHopfield(40, 40, rule=rule, fill=fill, seed=3).store(x)
    assert net.patterns.shape == (8, 80)
    assert torch.equal(net.patterns[:, :40], x)
    assert net.is_fixed_point(net.patterns).all()
    # a fixed point of the full network: one asynchronous sweep changes nothing
    order = torch.randperm(80, generator=torch.Generator().manual_seed(0))
    _, flips = net.net.sweep_async(net.patterns, order)
    assert (flips == 0).all()


def test_zero_hidden_units_is_the_plain_network():
    x = _patterns(10, 60, 1)
    probes = flip_bits(x, 0.1, torch.Generator().manual_seed(2))
    hidden = HiddenHopfield(60, 0, rule="hebbian").store(x)
    plain = Hopfield(60, rule="hebbian").store(x)
    assert torch.equal(hidden.net.W, plain.W)
    assert torch.equal(hidden.recall(probes, seed=5), plain.recall(probes, seed=5))


def test_hidden_units_store_what_the_visible_network_cannot():
    """N = 100, P = 25 (load 0.25, above the Hebbian 0.138 N): the plain network recalls few
    patterns exactly from 10% flipped bits; with K = 300 random-code hidden units (load 0.0625
    of the 400 units) almost all are recalled, from probes that give only the visible part."""
    n, p = 100, 25
    x = _patterns(p, n, 4)
    probes = flip_bits(x, 0.1, torch.Generator().manual_seed(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HopfieldCapacityWarning)
        plain = Hopfield(n, rule="hebbian").store(x)
    plain_rate = (plain.recall(probes, seed=6) == x).all(1).float().mean().item()
    net = HiddenHopfield(n, 300, rule="hebbian", seed=7).store(x)
    recalled = net.recall(probes, seed=6)
    assert recalled.shape == (p, n)
    hidden_rate = (recalled == x).all(1).float().mean().item()
    assert plain_rate <= 0.3
    assert hidden_rate >= 0.9


def test_inferred_hidden_part_beats_random_start():
    """Clamped inference recovers the stored codes; a random hidden start is a large corruption."""
    n, k, p = 100, 200, 20
    x = _patterns(p, n, 8)
    probes = flip_bits(x, 0.1, torch.Generator().manual_seed(9))
    net = HiddenHopfield(n, k, rule="hebbian", seed=1).store(x)
    g = torch.Generator().manual_seed(3)
    full = net.infer_hidden(probes, torch.ones(p, k), g)
    agree = (full[:, n:] == net.patterns[:, n:]).float().mean().item()
    assert agree > 0.95
    inferred = (net.recall(probes, "infer", seed=2) == x).all(1).float().mean()
    random_start = (net.recall(probes, "random", seed=2) == x).all(1).float().mean()
    assert inferred >= random_start
    assert inferred >= 0.9


def test_learned_fill_reaches_a_self_consistent_completion():
    """After the learned filling converges, every stored hidden part is the one the network
    infers with its visible part clamped."""
    x = _patterns(10, 50, 11)
    net = HiddenHopfield(50, 50, rule="hebbian", fill="learned", seed=2).store(x)
    assert net.fill_rounds < net.fill_iterations
    full = net.infer_hidden(x, net.patterns[:, 50:], torch.Generator().manual_seed(0))
    assert torch.equal(full, net.patterns)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_hidden"):
        HiddenHopfield(10, -1)
    with pytest.raises(ValueError, match="fill"):
        HiddenHopfield(10, 2, fill="zeros")
    net = HiddenHopfield(10, 2)
    with pytest.raises(RuntimeError, match="no patterns"):
        net.recall(torch.ones(1, 10))
    net.store(_patterns(2, 10, 0))
    with pytest.raises(ValueError, match="hidden"):
        net.recall(torch.ones(1, 10), hidden="zeros")
    with pytest.raises(ValueError, match="probes"):
        net.recall(torch.ones(1, 12))


def test_capacity_sweep_has_k_as_an_axis():
    rows = capacity_sweep(
        n_units=60,
        loads=(0.1, 0.3),
        modern_loads=(),
        rules=("hebbian", "modern"),
        min_probes=20,
        max_probes=20,
        n_hidden=(0, 120),
    )
    keys = {(r["rule"], r["n_hidden"]) for r in rows}
    assert keys == {("hebbian", 0), ("hebbian", 120), ("modern", 0)}
    at = {(r["n_hidden"], r["load"]): r["recall_fraction"] for r in rows if r["rule"] == "hebbian"}
    assert at[(120, 0.3)] > at[(0, 0.3)]
    assert "hebbian, K=120" in capacity_summary(rows)
    with pytest.raises(ValueError, match="n_hidden"):
        capacity_sweep(n_units=20, rules=("hebbian",), n_hidden=(-1,))
