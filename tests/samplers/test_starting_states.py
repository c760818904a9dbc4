"""Starting states are checked against the target once, where chains start (the runner, the
Langevin chains, simulated annealing's ``anneal``): the target's width, finite values, the
model's dtype (converted), and for kernels that move binary states (Gibbs, bit-flip MH and the
wrappers around them) the target's spin values. Continuous kernels check the first three only.
A converted start gives the very chains of the start it was converted to."""

from __future__ import annotations

import math

import pytest
import torch
from sampler_targets import TinyBoltzmann, gaussian_energy, tiny_rbm

from ebmlab.models.boltzmann import BoltzmannMachine
from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.models.ising import Ising
from ebmlab.samplers import (
    HMC,
    MALA,
    Gibbs,
    Langevin,
    MetropolisHastings,
    ParallelTempering,
    SimulatedAnnealing,
    SweepTarget,
    Target,
    annealed_langevin,
    initial_states,
    langevin_chain,
    sample,
)
from ebmlab.samplers.base import check_start, state_spec


def _bits(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def _run(kernel, target, x0, n_steps=5):
    return sample(kernel, target, x0, n_steps, seed=3, progress=False)


DISCRETE = {
    "mh-flip": lambda: MetropolisHastings("flip"),
    "gibbs": lambda: Gibbs(),
    "gibbs-systematic": lambda: Gibbs(scan="systematic"),
    "pt-gibbs": lambda: ParallelTempering(Gibbs(), betas=[1.0, 0.5]),
    "anneal-mh-flip": lambda: SimulatedAnnealing(MetropolisHastings("flip"), schedule=[1.0]),
}


# ----- binary targets ----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", list(DISCRETE))
def test_discrete_kernels_refuse_states_off_the_spins(kernel):
    """{-1, 2} and 0.5 are not states of a 0/1 model, nor 0/1 states of a -1/+1 one: before the
    check, bit flips s -> lo + hi - s ran such chains on {-1, 2} or left them at 0.5."""
    x = _bits(8, 5)
    for bad, value in ((x * 3 - 1, "2"), (torch.full_like(x, 0.5), "0.5")):
        with pytest.raises(ValueError, match=rf"x0: expected binary states in \{{0, 1\}}.*{value}"):
            _run(DISCRETE[kernel](), TinyBoltzmann(), bad)
    with pytest.raises(ValueError, match=r"x0: expected binary states in \{-1, 1\}.*e\.g\. 0\)"):
        _run(DISCRETE[kernel](), Ising(3), _bits(8, 9))
    assert set(_run(DISCRETE[kernel](), TinyBoltzmann(), x).samples.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize("kernel", list(DISCRETE))
def test_converted_starting_states_give_the_same_chains(kernel):
    """float64, integer and bool copies of a float32 start run the float32 chains exactly."""
    model = TinyBoltzmann()
    x = _bits(16, 5)
    reference = _run(DISCRETE[kernel](), model, x, 20).samples
    for start in (x.double(), x.long(), x.bool()):
        result = _run(DISCRETE[kernel](), model, start, 20)
        assert result.samples.dtype == torch.float32
        assert torch.equal(result.samples, reference)


def test_block_gibbs_on_rbms_goes_through_the_models_own_check():
    # a Bernoulli RBM's visible units are binary; a Gaussian RBM's are real
    with pytest.raises(ValueError, match="x0: a Bernoulli model needs binary data"):
        _run(Gibbs(), tiny_rbm(), torch.full((4, 5), 0.5))
    with pytest.raises(ValueError, match="x0: a Bernoulli model needs binary data"):
        _run(MetropolisHastings("flip"), tiny_rbm(), _bits(4, 5) * 3 - 1)
    grbm = GaussianBernoulliRBM(3, 2, seed=0)
    result = _run(Gibbs(), grbm, torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(result.samples).all()


def test_the_kernels_own_spin_values_decide_and_plain_energies_take_either_pair():
    def energy(x):  # no spin values of its own
        return x.sum(-1)

    spins = 2 * _bits(6, 4) - 1
    _run(MetropolisHastings("flip", spin_values=(-1.0, 1.0)), energy, spins)
    with pytest.raises(ValueError, match=r"x0: expected binary states in \{-1, 1\}"):
        _run(MetropolisHastings("flip", spin_values=(-1.0, 1.0)), energy, (spins + 1) / 2)
    _run(MetropolisHastings("flip"), energy, (spins + 1) / 2)
    _run(Gibbs(scan="systematic"), energy, spins)
    with pytest.raises(ValueError, match=r"x0: MetropolisHastings moves binary states.*0\.5"):
        _run(MetropolisHastings("flip"), energy, spins * 0.5)


def test_widths_follow_the_energy_the_target_is_sampled_through():
    """A Boltzmann machine with hidden units is sampled through its free energy: its chains are
    its visible units, and ``initial_states`` gives states that ``sample`` accepts."""
    bm = BoltzmannMachine(3, n_hidden=2, init_std=0.5, seed=0)
    assert state_spec(bm).width == 3 and state_spec(bm.energy).width == 5
    x0 = initial_states(bm, 6, torch.Generator().manual_seed(0))
    assert x0.shape == (6, 3)
    assert set(_run(MetropolisHastings("flip"), bm, x0).samples.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match=r"x0: expected shape \(n_chains, 3\), the 3 visible"):
        _run(MetropolisHastings("flip"), bm, _bits(6, 5))
    with pytest.raises(ValueError, match=r"x0: expected shape \(n_chains, 5\), the 5 units"):
        _run(Gibbs(scan="systematic"), TinyBoltzmann(), _bits(6, 4))
    for model in (Ising(3), tiny_rbm(), TinyBoltzmann()):
        start = initial_states(model, 4, torch.Generator().manual_seed(1))
        assert torch.equal(check_start(start, model, Gibbs()), start)


# ----- continuous kernels ------------------------------------------------------------------------
CONTINUOUS = {
    "mala": lambda: MALA(step_size=0.05),
    "ula": lambda: Langevin(step_size=0.05),
    "hmc": lambda: HMC(step_size=0.05, n_leapfrog=3),
    "mh-gaussian": lambda: MetropolisHastings("gaussian", scale=0.3),
}


@pytest.mark.parametrize("kernel", list(CONTINUOUS))
def test_continuous_kernels_check_width_finiteness_and_dtype_only(kernel):
    rbm = tiny_rbm()  # a continuous kernel on the free energy: grey levels are states too
    grey = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))
    reference = _run(CONTINUOUS[kernel](), rbm, grey).samples
    converted = _run(CONTINUOUS[kernel](), rbm, grey.double())
    assert converted.samples.dtype == torch.float32
    assert torch.equal(converted.samples, reference)
    with pytest.raises(ValueError, match=r"x0: expected shape \(n_chains, 5\)"):
        _run(CONTINUOUS[kernel](), rbm, grey[:, :4])
    with pytest.raises(ValueError, match="x0: contains 1 NaN"):
        _run(CONTINUOUS[kernel](), rbm, torch.where(torch.arange(30).view(6, 5) == 7, math.nan, 0))
    # a plain energy function declares no width and no dtype: float64 stays float64
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert _run(CONTINUOUS[kernel](), gaussian_energy, x).samples.dtype == torch.float64
    assert _run(CONTINUOUS[kernel](), gaussian_energy, x.round().long()).samples.is_floating_point()
    with pytest.raises(ValueError, match="x0: contains 12 NaN"):
        _run(CONTINUOUS[kernel](), gaussian_energy, x * math.nan)


# ----- the chains' other entry points ------------------------------------------------------------
def test_langevin_chains_check_their_start():
    """Before the check a NaN start came back as NaN chains, and an integer one failed inside
    autograd."""
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="x: contains 10 NaN"):
        langevin_chain(gaussian_energy, x * math.nan, 3, 0.1)
    assert langevin_chain(gaussian_energy, x.round().long(), 3, 0.1).is_floating_point()
    rbm = tiny_rbm()
    with pytest.raises(ValueError, match=r"x: expected shape \(n_chains, 5\)"):
        langevin_chain(rbm.free_energy, x, 3, 0.1)
    start = torch.rand(5, 5, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    reference = langevin_chain(rbm.free_energy, start, 3, 0.1, generator=g)
    converted = langevin_chain(
        rbm.free_energy, start.double(), 3, 0.1, generator=torch.Generator().manual_seed(2)
    )
    assert converted.dtype == torch.float32 and torch.equal(converted, reference)

    def energy(y, sigma):
        return 0.5 * (y * y).sum(-1) / sigma**2

    with pytest.raises(ValueError, match="x: contains 10 NaN"):
        annealed_langevin(energy, x * math.nan, [1.0, 0.5], 2, 0.01)
    with pytest.raises(ValueError, match="x: expected shape"):
        annealed_langevin(energy, torch.zeros(0, 2), [1.0, 0.5], 2, 0.01)


def test_simulated_annealing_checks_the_states_it_anneals():
    model = TinyBoltzmann()
    target = SweepTarget(
        model.energy,
        lambda x, generator, beta: Gibbs("systematic").step(x, Target(model, beta), generator)[0],
        (0.0, 1.0),
    )
    annealing = SimulatedAnnealing(Gibbs(), schedule=[2.0, 1.0])
    with pytest.raises(ValueError, match=r"x: expected binary states in \{0, 1\}"):
        annealing.anneal(torch.full((4, 5), 0.5), target, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"x: expected shape \(n_chains, 5\)"):
        annealing.anneal(_bits(4, 4), target, torch.Generator().manual_seed(0))
    last, _ = annealing.anneal(_bits(4, 5).double(), target, torch.Generator().manual_seed(0))
    assert last.dtype == torch.float32 and set(last.unique().tolist()) <= {0, 1}
