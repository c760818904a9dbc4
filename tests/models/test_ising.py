"""The Ising model, and MCMC on it: exact checks, chi-square tests against the Boltzmann
distribution, and the mixing failure of single-site Gibbs that parallel tempering repairs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import chi2

from ebmlab.estimators import enumerate_states, exact_log_probs, exact_log_z, exact_sample
from ebmlab.models.ising import Ising
from ebmlab.samplers import (
    Gibbs,
    MetropolisHastings,
    ParallelTempering,
    SimulatedAnnealing,
    effective_sample_size,
    sample,
)


def brute_energy(model: Ising, s: torch.Tensor) -> torch.Tensor:
    """E(s) with explicit loops over sites and their right/lower neighbours."""
    L = model.size
    out = []
    for row in s.tolist():
        grid = [row[r * L : (r + 1) * L] for r in range(L)]
        pair = 0.0
        for r, c in itertools.product(range(L), range(L)):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, c + dc
                if model.boundary == "periodic":
                    r2, c2 = r2 % L, c2 % L
                elif r2 >= L or c2 >= L:
                    continue
                pair += grid[r][c] * grid[r2][c2]
        out.append(-(model.coupling * pair + model.field * sum(row)) / model.temperature)
    return torch.tensor(out)


def random_spins(n: int, n_units: int, seed: int) -> torch.Tensor:
    u = torch.rand(n, n_units, generator=torch.Generator().manual_seed(seed))
    return torch.where(u < 0.5, 1.0, -1.0)


@pytest.mark.parametrize("boundary", ["periodic", "free"])
@pytest.mark.parametrize("size", [2, 3, 4])
def test_energy_matches_brute_force(size, boundary):
    model = Ising(size, coupling=0.7, field=-0.3, temperature=1.5, boundary=boundary)
    s = random_spins(20, size * size, seed=size)
    torch.testing.assert_close(model.energy(s), brute_energy(model, s))
    n_bonds = 2 * size * size if boundary == "periodic" else 2 * size * (size - 1)
    assert model.bonds.shape == (n_bonds, 2)
    # all spins up: every bond contributes -J/T
    up = torch.ones(1, size * size)
    assert float(model.energy(up)) == pytest.approx(-(0.7 * n_bonds - 0.3 * size**2) / 1.5)


@pytest.mark.parametrize("boundary", ["periodic", "free"])
def test_conditional_logits_are_energy_differences(boundary):
    model = Ising(3, coupling=0.9, field=0.2, temperature=0.8, boundary=boundary)
    s = random_spins(16, 9, seed=0)
    for i in range(9):
        down, up = s.clone(), s.clone()
        down[:, i], up[:, i] = -1.0, 1.0
        torch.testing.assert_close(
            model.conditional_logits(s, i), model.energy(down) - model.energy(up)
        )


def test_exact_log_z_and_magnetization_symmetry():
    model = Ising(3, coupling=0.5, field=0.0, boundary="periodic")
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=9)))
    brute = float(torch.logsumexp(-brute_energy(model, spins).double(), 0))
    assert exact_log_z(model) == pytest.approx(brute, abs=1e-5)
    # h = 0: p(s) = p(-s)
    log_p = exact_log_probs(model)
    flipped = enumerate_states(9, spin_values=(-1.0, 1.0)).mul(-1)
    index = ((flipped + 1) / 2 * 2 ** torch.arange(9)).sum(1).long()
    torch.testing.assert_close(log_p, log_p[index])


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        Ising(1)
    with pytest.raises(ValueError, match="boundary"):
        Ising(3, boundary="open")
    with pytest.raises(ValueError, match="temperature"):
        Ising(3, temperature=0.0)
    with pytest.raises(ValueError, match="bipartite"):
        Ising(3).block_gibbs(torch.ones(2, 9))
    with pytest.raises(ValueError, match="-1 or \\+1"):
        Ising(2).check_states(torch.zeros(1, 4))
    assert Ising(3, coupling=0.5).config["coupling"] == 0.5


# ----- chi-square tests ------------------------------------------------------------------------
def chi_square_p(
    counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0, ess_fraction: float = 1.0
) -> float:
    """Pearson chi-square p-value; bins with expected count < min_expected merged into one. For
    correlated draws the statistic is scaled by ESS / n (<= 1): fewer effective counts."""
    counts, probs = counts.double(), probs.double()
    expected = counts.sum() * probs
    small = expected < min_expected
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    stat = float(((counts - expected) ** 2 / expected).sum()) * min(1.0, ess_fraction)
    return float(chi2.sf(stat, counts.numel() - 1))


def spin_index(s: torch.Tensor) -> torch.Tensor:
    """Index of ±1 states as in ebmlab.estimators.enumerate_states (spin i = bit i)."""
    return ((s + 1) / 2 * 2 ** torch.arange(s.shape[-1])).sum(-1).long()


def ess_fraction(model: Ising, samples: torch.Tensor) -> float:
    """ESS / n of the energy and magnetization traces (the smaller), samples (draws, chains, n)."""
    n = samples.shape[0] * samples.shape[1]
    traces = torch.stack(
        [
            model.energy(samples.reshape(-1, model.n_units)).reshape(samples.shape[:2]),
            samples.sum(-1),
        ],
        -1,
    ).transpose(0, 1)
    return float(effective_sample_size(traces).min()) / n


KERNELS_3X3 = [
    ("mh-flip", MetropolisHastings("flip"), 9),
    ("mh-multiflip", MetropolisHastings("flip", n_flips=3), 9),
    ("gibbs-systematic", Gibbs(scan="systematic"), 1),
    ("gibbs-random", Gibbs(scan="random"), 1),
    ("gibbs-checkerboard", Gibbs(scan="block"), 1),
    ("pt-gibbs", ParallelTempering(Gibbs(scan="systematic"), betas=[1.0, 0.6, 0.3]), 1),
]


@pytest.mark.parametrize("name, kernel, sweep", KERNELS_3X3, ids=[k[0] for k in KERNELS_3X3])
def test_full_state_chi_square_3x3(name, kernel, sweep):
    # 512 states, free boundary, field: every state's frequency against exp(-E) / Z
    model = Ising(3, coupling=0.5, field=0.1, boundary="free")
    x0 = random_spins(300, 9, seed=0)
    result = sample(
        kernel,
        model,
        x0,
        60 * 2 * sweep,
        burn_in=30 * sweep,
        thin=2 * sweep,
        seed=1,
        progress=False,
    )
    counts = torch.bincount(spin_index(result.samples).flatten(), minlength=512)
    p = chi_square_p(
        counts, exact_log_probs(model).exp(), ess_fraction=ess_fraction(model, result.samples)
    )
    assert p > 1e-6


KERNELS_4X4 = [
    ("mh-flip", MetropolisHastings("flip"), 16),
    ("gibbs", Gibbs(scan="systematic"), 1),
    ("pt-gibbs", ParallelTempering(Gibbs(scan="systematic"), betas=[1.0, 0.7, 0.45]), 1),
]


@pytest.mark.parametrize("name, kernel, sweep", KERNELS_4X4, ids=[k[0] for k in KERNELS_4X4])
def test_magnetization_energy_chi_square_4x4_bimodal(name, kernel, sweep):
    # J = 0.6 > 0.44 at T = 1: two modes (mostly up / mostly down); the small field gives them
    # unequal masses (0.76 / 0.22), which a chain started all down must discover by crossing
    model = Ising(4, coupling=0.6, field=0.05, boundary="free")
    states = enumerate_states(16, spin_values=(-1.0, 1.0), dtype=torch.float32)
    probs = exact_log_probs(model).exp()
    keys = torch.stack([states.sum(-1).round(), (model.energy(states) * 1000).round()], -1)
    bins, bin_of_state = torch.unique(keys, dim=0, return_inverse=True)
    bin_probs = torch.zeros(bins.shape[0], dtype=torch.float64).index_add_(0, bin_of_state, probs)

    x0 = -torch.ones(200, 16)
    result = sample(
        kernel,
        model,
        x0,
        150 * 2 * sweep,
        burn_in=150 * sweep,
        thin=2 * sweep,
        seed=2,
        progress=False,
    )
    s = result.samples.reshape(-1, 16)
    sample_keys = torch.stack([s.sum(-1).round(), (model.energy(s) * 1000).round()], -1)
    # map each sampled (m, E) to its bin (every sampled pair exists among the exact bins)
    match = (sample_keys[:, None, :] == bins[None]).all(-1)
    assert match.any(1).all()
    counts = torch.bincount(match.float().argmax(1), minlength=bins.shape[0])
    p = chi_square_p(counts, bin_probs, ess_fraction=ess_fraction(model, result.samples))
    assert p > 1e-6


# ----- mixing: plain Gibbs fails where parallel tempering succeeds -------------------------------
def test_gibbs_fails_to_mix_at_low_temperature_where_parallel_tempering_succeeds():
    # 4 x 4 periodic, J = 1 (well below the critical temperature): p(m > 0) = p(m < 0) by
    # symmetry, but leaving a mode means creating two domain walls of 4 bonds, an energy
    # barrier of 16: a single-site Gibbs chain started all up never visits m < 0.
    model = Ising(4, coupling=1.0, field=0.0, boundary="periodic")
    x0 = torch.ones(16, 16)
    n_sweeps = 1500
    gibbs = sample(Gibbs(scan="systematic"), model, x0, n_sweeps, seed=0, progress=False)
    m_gibbs = gibbs.samples.sum(-1)  # (draws, chains)
    assert float((m_gibbs < 0).double().mean()) < 0.01

    # parallel tempering: betas from 1 down to 0.3 (J_eff = 0.3, disordered), geometric
    pt = sample(
        ParallelTempering(Gibbs(scan="systematic"), n_temps=8, beta_min=0.3),
        model,
        x0,
        n_sweeps,
        burn_in=200,
        seed=0,
        progress=False,
    )
    m_pt = pt.samples.sum(-1)
    up = (m_pt > 0).double() - (m_pt < 0).double()  # sign of the magnetization (0 at m = 0)
    ess = float(effective_sample_size(up.T[..., None]))
    se = 1.0 / math.sqrt(ess)  # the sign is ±1 (or 0), so its sd is at most 1
    assert abs(float(up.mean())) < 5 * se  # symmetric: E[sign m] = 0
    assert ess > 100
    flips = ((m_pt[1:] * m_pt[:-1]) < 0).sum(0)  # sign changes per chain
    assert (flips > 0).all()
    swaps = pt.extras["swap_accept"]
    assert swaps.shape == (7,) and (swaps > 0.05).all()


def test_simulated_annealing_finds_ising_ground_state():
    # 4 x 4 periodic J = 1: ground states all up / all down, E = -32; single flips from T = 5
    model = Ising(4, coupling=1.0, boundary="periodic")
    kernel = SimulatedAnnealing(MetropolisHastings("flip"), t0=5.0, alpha=0.998, t_min=0.05)
    result = sample(kernel, model, random_spins(50, 16, seed=3), 4000, seed=0, progress=False)
    energies = model.energy(result.samples[-1])
    assert float((energies == -32.0).double().mean()) > 0.9


def test_block_gibbs_preserves_exact_distribution():
    # invariance: exact samples stay exact after a checkerboard sweep (also at beta != 1)
    model = Ising(3, coupling=0.6, field=0.2, boundary="free")
    x = exact_sample(model, 20_000, torch.Generator().manual_seed(0))
    x = model.block_gibbs(x, torch.Generator().manual_seed(1))
    counts = torch.bincount(spin_index(x), minlength=512)
    assert chi_square_p(counts, exact_log_probs(model).exp()) > 1e-6
    hot = Ising(3, coupling=0.3, field=0.1, boundary="free")  # = model at beta = 0.5
    y = exact_sample(hot, 20_000, torch.Generator().manual_seed(2))
    y = model.block_gibbs(y, torch.Generator().manual_seed(3), beta=0.5)
    counts = torch.bincount(spin_index(y), minlength=512)
    assert chi_square_p(counts, exact_log_probs(hot).exp()) > 1e-6


def test_model_sample_convenience():
    model = Ising(4, coupling=0.2, boundary="periodic")
    s = model.sample(8, n_steps=5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (8, 16) and ((s == 1) | (s == -1)).all()
    odd = Ising(3, coupling=0.2, boundary="periodic")
    assert odd.sample(4, n_steps=2, generator=torch.Generator().manual_seed(0)).shape == (4, 9)
