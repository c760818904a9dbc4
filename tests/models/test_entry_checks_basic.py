"""Argument checks at the entry points of the baselines, the neural energies, the Ising model, the
Boltzmann machine and the Hopfield networks: counts, generators, empty batches, constructor
settings. Each refusal names its argument and comes from ``ebmlab.validation``."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ebmlab.models import (
    BoltzmannMachine,
    DiagonalGaussian,
    Hopfield,
    IndependentBernoulli,
    Ising,
    MLPEnergy,
    ModernHopfield,
)
from ebmlab.models.hopfield import clock_updates, flip_bits
from ebmlab.models.neural import ConvEnergy, QuadraticEnergy
from ebmlab.validation import InvalidArgumentError


def refused(name: str, start: str = "expected", error: type[Exception] = ValueError):
    """``pytest.raises`` for a message that starts with "<name>: <start>"."""
    return pytest.raises(error, match="^" + re.escape(f"{name}: {start}"))


GENERATOR_MESSAGE = "expected a torch.Generator, an integer seed or None, got"


# ----- models built small ------------------------------------------------------------------------
def small_bm(labels: int = 0) -> BoltzmannMachine:
    return BoltzmannMachine(3, n_hidden=1, n_labels=labels, seed=0)


def mlp() -> MLPEnergy:
    torch.manual_seed(0)
    return MLPEnergy(2, hidden=4, depth=1, langevin_steps=2)


def stored_hopfield() -> Hopfield:
    patterns = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    return Hopfield(4).store(patterns)


def stored_modern() -> ModernHopfield:
    return ModernHopfield(4).store(torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]]))


#: name -> a call ``sample``-like of that model taking ``generator=``.
SAMPLERS = {
    "DiagonalGaussian": lambda g: DiagonalGaussian(3).sample(2, generator=g),
    "IndependentBernoulli": lambda g: IndependentBernoulli(3).sample(2, generator=g),
    "QuadraticEnergy": lambda g: QuadraticEnergy(2).sample(2, generator=g),
    "Ising": lambda g: Ising(2).sample(2, n_steps=1, generator=g),
    "BoltzmannMachine": lambda g: small_bm().sample(2, n_sweeps=1, generator=g),
    "BoltzmannMachine.random_states": lambda g: small_bm().random_states(2, generator=g),
    "BoltzmannMachine.anneal": lambda g: small_bm().anneal(
        n_chains=2, t_start=1.0, t_end=0.5, generator=g
    ),
    "BoltzmannMachine.p_class_given_v": lambda g: small_bm(2).p_class_given_v(
        torch.zeros(2, 3), n_sweeps=1, burn_in=0, generator=g, exact=False
    ),
    "BoltzmannMachine.generate_class": lambda g: small_bm(2).generate_class(
        1, 2, n_sweeps=1, generator=g
    ),
    "MLPEnergy": lambda g: mlp().sample(2, generator=g),
    "MLPEnergy.noise": lambda g: mlp().noise(2, generator=g),
    "MLPEnergy.inpaint": lambda g: mlp().inpaint(
        torch.zeros(2, 2), torch.tensor([True, False]), n_steps=1, generator=g
    ),
    "Hopfield": lambda g: stored_hopfield().sample(2, n_steps=2, generator=g),
    "flip_bits": lambda g: flip_bits(torch.ones(2, 4), 0.5, generator=g),
    "clock_updates": lambda g: clock_updates(4, generator=g),
}


# ----- generators (a torch.Generator, an integer seed or None) -----------------------------------
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_an_integer_seed_is_a_generator(name: str) -> None:
    draw = SAMPLERS[name]
    first, second = draw(7), draw(7)
    first = first if isinstance(first, torch.Tensor) else first[0]
    second = second if isinstance(second, torch.Tensor) else second[0]
    torch.testing.assert_close(first, second)  # the same seed, the same draws
    draw(torch.Generator().manual_seed(0))
    draw(None)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("bad", [2.5, True, "0", np.random.default_rng(0)])
def test_other_generators_are_refused_by_name(name: str, bad: object) -> None:
    with refused("generator", GENERATOR_MESSAGE):
        SAMPLERS[name](bad)


def test_hopfield_sample_keeps_taking_a_seed() -> None:
    net = stored_hopfield()
    torch.testing.assert_close(
        net.sample(3, n_steps=2, generator=5), net.sample(3, n_steps=2, generator=5)
    )
    with refused("generator", GENERATOR_MESSAGE):
        net.sample(3, n_steps=2, generator=np.random.default_rng(0))


# ----- sample counts -----------------------------------------------------------------------------
COUNTS = {
    "DiagonalGaussian": lambda n: DiagonalGaussian(3).sample(n),
    "IndependentBernoulli": lambda n: IndependentBernoulli(3).sample(n),
    "QuadraticEnergy": lambda n: QuadraticEnergy(2).sample(n),
    "Ising": lambda n: Ising(2).sample(n, n_steps=1),
    "BoltzmannMachine": lambda n: small_bm().sample(n, n_sweeps=1),
    "BoltzmannMachine.random_states": lambda n: small_bm().random_states(n),
    "BoltzmannMachine.generate_class": lambda n: small_bm(2).generate_class(0, n, n_sweeps=1),
    "MLPEnergy.noise": lambda n: mlp().noise(n),
    "Hopfield": lambda n: stored_hopfield().sample(n, n_steps=1),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "2"])
def test_n_is_a_positive_integer(name: str, bad: object) -> None:
    with refused("n", "expected a positive integer, got"):
        COUNTS[name](bad)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_n_accepts_numpy_integers(name: str) -> None:
    out = COUNTS[name](np.int64(2))
    assert out.shape[0] == 2


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda k: Ising(2).sample(2, n_steps=k), "n_steps"),
        (lambda k: small_bm().sample(2, n_sweeps=k), "n_sweeps"),
        (lambda k: small_bm(2).generate_class(0, 2, n_sweeps=k), "n_sweeps"),
        (lambda k: small_bm(2).p_class_given_v(torch.zeros(1, 3), burn_in=k), "burn_in"),
    ],
)
@pytest.mark.parametrize("bad", [-1, True, 2.5])
def test_step_counts_are_non_negative_integers(call, name: str, bad: object) -> None:
    with refused(name, "expected a non-negative integer, got"):
        call(bad)


def test_zero_steps_give_the_starting_states() -> None:
    assert Ising(2).sample(3, n_steps=0, generator=0).shape == (3, 4)
    assert small_bm().sample(3, n_sweeps=0, generator=0).shape == (3, 4)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda k: stored_hopfield().sample(2, n_steps=k), "n_steps"),
        (lambda k: small_bm(2).p_class_given_v(torch.zeros(1, 3), n_sweeps=k), "n_sweeps"),
        (lambda k: small_bm().anneal(n_chains=k), "n_chains"),
        (
            lambda k: small_bm().anneal(n_chains=2, sweeps_per_temperature=k),
            "sweeps_per_temperature",
        ),
        (
            lambda k: stored_hopfield().anneal(torch.ones(1, 4), sweeps_per_temperature=k),
            "sweeps_per_temperature",
        ),
        (lambda k: stored_hopfield().recall_stochastic(torch.ones(1, 4), n_sweeps=k), "n_sweeps"),
        (lambda k: stored_hopfield().gibbs(torch.ones(1, 4), [1.0, 1.0], n_average=k), "n_average"),
    ],
)
@pytest.mark.parametrize("bad", [0, True, 2.5])
def test_positive_counts(call, name: str, bad: object) -> None:
    with refused(name, "expected a positive integer, got"):
        call(bad)


def test_hopfield_sample_zero_steps_names_n_steps() -> None:
    with refused("n_steps", "expected a positive integer, got 0"):
        stored_hopfield().sample(3, n_steps=0)


def test_sample_temperatures() -> None:
    with refused("temperature", "expected a non-negative number, got -1"):
        stored_hopfield().sample(2, n_steps=1, temperature=-1.0)
    with refused("temperature", "expected a positive number, got 0"):
        mlp().sample(2, temperature=0.0)


# ----- empty batches -----------------------------------------------------------------------------
EMPTY = {
    "DiagonalGaussian.log_prob": (lambda: DiagonalGaussian(4).log_prob(torch.empty(0, 4)), "x"),
    "QuadraticEnergy.log_prob": (lambda: QuadraticEnergy(4).log_prob(torch.empty(0, 4)), "x"),
    "IndependentBernoulli.log_prob": (
        lambda: IndependentBernoulli(4).log_prob(torch.empty(0, 4)),
        "v",
    ),
    "IndependentBernoulli.fit": (lambda: IndependentBernoulli(4).fit(torch.empty(0, 4)), "v"),
    "BoltzmannMachine.log_likelihood": (lambda: small_bm().log_likelihood(torch.empty(0, 3)), "v"),
    "BoltzmannMachine.exact_gradient": (lambda: small_bm().exact_gradient(torch.empty(0, 3)), "v"),
    "BoltzmannMachine.p_class_given_v": (
        lambda: small_bm(2).p_class_given_v(torch.empty(0, 3)),
        "v",
    ),
    "BoltzmannMachine.sample": (lambda: small_bm().sample(2, states=torch.empty(0, 4)), "states"),
    "BoltzmannMachine.anneal": (lambda: small_bm().anneal(states=torch.empty(0, 4)), "states"),
    "MLPEnergy.sample": (lambda: mlp().sample(2, x0=torch.empty(0, 2)), "x0"),
    "MLPEnergy.inpaint": (
        lambda: mlp().inpaint(torch.empty(0, 2), torch.ones(0, 2, dtype=torch.bool)),
        "x",
    ),
    "Hopfield.recall": (lambda: stored_hopfield().recall(torch.empty(0, 4)), "probes"),
    "Hopfield.gibbs": (lambda: stored_hopfield().gibbs(torch.empty(0, 4), [1.0]), "states"),
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_empty_batches_are_refused(name: str) -> None:
    call, argument = EMPTY[name]
    with refused(argument, "expected at least one row, got shape (0,"):
        call()


def test_boltzmann_free_energy_of_an_empty_batch_is_empty() -> None:
    # a per-row function that samplers call at every step: no refusal, an empty result
    assert small_bm().free_energy(torch.empty(0, 3)).shape == (0,)


def test_scores_still_work() -> None:
    bm = small_bm()
    v = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert bm.log_likelihood(v).shape == (2,)
    assert set(bm.exact_gradient(v)) == {"W", "theta"}
    assert IndependentBernoulli(3).log_prob(v).shape == (2,)
    assert DiagonalGaussian(3).log_prob(v).shape == (2,)
    q = QuadraticEnergy(3)
    torch.testing.assert_close(q.log_prob(v), -q.energy(v) - q.log_partition())


def test_quadratic_log_prob_checks_its_input() -> None:
    with refused("x", "expected 3 features"):
        QuadraticEnergy(3).log_prob(torch.zeros(2, 4))
    with refused("x", "contains 1 NaN"):
        QuadraticEnergy(3).log_prob(torch.tensor([[0.0, float("nan"), 0.0]]))


def test_independent_bernoulli_pseudocount() -> None:
    v = torch.tensor([[0.0, 1.0, 1.0]])
    with refused("pseudocount", "expected a non-negative number, got -1"):
        IndependentBernoulli(3).fit(v, pseudocount=-1.0)
    with refused("pseudocount", "expected a non-negative number, got nan"):
        IndependentBernoulli(3).fit(v, pseudocount=float("nan"))


# ----- Ising states ------------------------------------------------------------------------------
def test_ising_magnetization_checks_states() -> None:
    model = Ising(3)
    with refused("s", "Ising spins must be -1 or +1"):
        model.magnetization(torch.zeros(2, 9))
    with refused("s", "expected 9 features"):
        model.magnetization(torch.ones(2, 8))
    with refused("s", "contains 2 NaN"):
        model.magnetization(torch.tensor([[float("nan")] * 2 + [1.0] * 7]))
    assert model.magnetization(torch.ones(2, 9)).tolist() == [1.0, 1.0]


def test_ising_check_states_is_the_checked_entry_to_energy() -> None:
    model = Ising(3)
    with refused("s", "Ising spins must be -1 or +1"):
        model.energy(model.check_states(torch.zeros(2, 9)))
    s = torch.ones(2, 9)
    torch.testing.assert_close(model.energy(model.check_states(s)), model.energy(s))


# ----- constructors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name, start",
    [
        ({"init_std": float("nan")}, "init_std", "expected a non-negative number, got nan"),
        ({"init_std": -1.0}, "init_std", "expected a non-negative number, got -1"),
        ({"init_std": float("inf")}, "init_std", "expected a non-negative number, got inf"),
        ({"seed": True}, "seed", "expected an integer or None, got True"),
        ({"seed": 2.5}, "seed", "expected an integer or None, got 2.5"),
        ({"n_hidden": -1}, "n_hidden", "expected a non-negative integer, got -1"),
        ({"n_labels": 2.0}, "n_labels", "expected a non-negative integer, got 2.0"),
        ({"temperature": float("nan")}, "temperature", "expected a positive number, got nan"),
    ],
)
def test_boltzmann_constructor(kwargs: dict, name: str, start: str) -> None:
    with refused(name, start):
        BoltzmannMachine(4, **{"n_hidden": 1, **kwargs})


def test_boltzmann_constructor_keeps_its_messages() -> None:
    with refused("n_visible", "expected a positive integer, got 0"):
        BoltzmannMachine(0)
    with refused("n_labels", "a one-hot label group needs at least 2 classes"):
        BoltzmannMachine(3, n_labels=1)
    a, b = BoltzmannMachine(4, 1, seed=np.int64(3)), BoltzmannMachine(4, 1, seed=3)
    torch.testing.assert_close(a.W, b.W)


@pytest.mark.parametrize(
    "kwargs, name, start",
    [
        ({"data_range": []}, "data_range", "expected [low, high] (two finite numbers"),
        ({"data_range": [1.0, 0.0]}, "data_range", "expected [low, high]"),
        ({"data_range": [0.0, float("inf")]}, "data_range", "expected [low, high]"),
        ({"data_range": ["a", "b"]}, "data_range", "expected [low, high]"),
        ({"clamp": "yes"}, "clamp", "expected True or False, got 'yes'"),
        ({"clamp": 1}, "clamp", "expected True or False, got 1"),
        ({"bernoulli_base": "no"}, "bernoulli_base", "expected True or False, got 'no'"),
        ({"langevin_noise": float("nan")}, "langevin_noise", "expected a non-negative number"),
        ({"langevin_noise": "a"}, "langevin_noise", "expected a non-negative number"),
        ({"langevin_steps": True}, "langevin_steps", "expected a positive integer, got True"),
        ({"noise_scaling": "log"}, "noise_scaling", "expected one of inverse, none, got 'log'"),
        ({"hidden": 2.5}, "hidden", "expected a positive integer, got 2.5"),
        ({"sigmas": [float("inf"), 1.0]}, "sigmas", "expected positive, strictly decreasing"),
    ],
)
def test_energy_network_settings(kwargs: dict, name: str, start: str) -> None:
    with refused(name, start):
        MLPEnergy(2, **kwargs)


def test_energy_network_data_range_is_kept() -> None:
    model = MLPEnergy(2, hidden=4, depth=1, data_range=[-1, 2], clamp=np.bool_(True))
    assert model.data_range == (-1.0, 2.0)
    assert model.clamp is True


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"image_shape": [8, 8.5]}, "image_shape"),
        ({"image_shape": [8, True]}, "image_shape"),
        ({"image_shape": 8}, "image_shape"),
        ({"image_shape": [8, 8], "channels": []}, "channels"),
        ({"image_shape": [8, 8], "channels": [4.5]}, "channels"),
    ],
)
def test_conv_energy_shapes(kwargs: dict, name: str) -> None:
    with refused(name):
        ConvEnergy(**kwargs)


def test_inpaint_known_mask() -> None:
    model = mlp()
    with refused("known", "expected a bool tensor", TypeError):
        model.inpaint(torch.zeros(2, 2), torch.zeros(2, 2))
    with refused("known", "expected shape (2,) or (2, 2)"):
        model.inpaint(torch.zeros(2, 2), torch.ones(3, dtype=torch.bool))
    x = torch.tensor([[0.5, 0.0], [0.25, 0.0]])
    filled = model.inpaint(x, [True, False], n_steps=1, generator=0)
    torch.testing.assert_close(filled[:, 0], x[:, 0])


@pytest.mark.parametrize(
    "kwargs, name, start",
    [
        ({"learned_lr": float("nan")}, "learned_lr", "expected a positive number or None, got nan"),
        ({"learned_lr": float("inf")}, "learned_lr", "expected a positive number or None, got inf"),
        ({"learned_lr": -1.0}, "learned_lr", "expected a positive number or None, got -1"),
        ({"learned_batch_size": 0}, "learned_batch_size", "expected a positive integer or None"),
        ({"learned_batch_size": -1}, "learned_batch_size", "expected a positive integer or None"),
        ({"learned_batch_size": 2.5}, "learned_batch_size", "expected a positive integer or None"),
        ({"learned_batch_size": True}, "learned_batch_size", "expected a positive integer or None"),
        ({"learned_epochs": 2.5}, "learned_epochs", "expected a non-negative integer, got 2.5"),
        ({"learned_epochs": True}, "learned_epochs", "expected a non-negative integer, got True"),
        ({"learned_epochs": -1}, "learned_epochs", "expected a non-negative integer, got -1"),
        ({"learned_steps": 0}, "learned_steps", "expected a positive integer, got 0"),
        ({"learned_steps": 1.5}, "learned_steps", "expected a positive integer, got 1.5"),
        ({"seed": 2.5}, "seed", "expected an integer or None, got 2.5"),
        ({"seed": True}, "seed", "expected an integer or None, got True"),
        ({"learned_noise": 1.5}, "learned_noise", "expected a fraction in [0, 1], got 1.5"),
        ({"rule": "oja"}, "rule", "expected one of hebbian, storkey, pseudoinverse, learned"),
        ({"learned_mode": "clock"}, "learned_mode", "expected one of sync, async, got 'clock'"),
        ({"n_units": True}, "n_units", "expected a positive integer, got True"),
    ],
)
def test_hopfield_constructor(kwargs: dict, name: str, start: str) -> None:
    with refused(name, start):
        Hopfield(**{"n_units": 4, "rule": "learned", **kwargs})


def test_hopfield_learned_rule_with_valid_settings() -> None:
    torch.manual_seed(0)
    patterns = torch.where(torch.rand(3, 16) < 0.5, -1.0, 1.0)
    net = Hopfield(
        16, rule="learned", learned_lr=0.05, learned_batch_size=2, learned_epochs=5, seed=None
    ).store(patterns)
    assert torch.isfinite(net.W).all()
    Hopfield(16, rule="learned", seed=np.int64(1), learned_epochs=np.int64(2)).store(patterns)


def test_hopfield_other_settings() -> None:
    net = stored_hopfield()
    with refused("return_info", "expected True or False, got 1"):
        net.recall(torch.ones(1, 4), return_info=1)
    with refused("temperature", "expected a non-negative number, got -1"):
        net.recall_stochastic(torch.ones(1, 4), temperature=-1.0)
    with refused("alpha", "expected a positive number, got 0"):
        net.recall_stochastic(torch.ones(1, 4), alpha=0.0)
    with refused("alpha", "expected a number in (0, 1), got 1"):
        net.anneal(torch.ones(1, 4), alpha=1.0)
    with refused("fraction", "expected a number in [0, 1], got 2"):
        flip_bits(torch.ones(1, 4), 2.0)
    with refused("fraction", "expected a number in [0, 1], got 'a'"):
        flip_bits(torch.ones(1, 4), "a")


# ----- Boltzmann machine: other arguments ---------------------------------------------------------
def test_boltzmann_anneal_settings() -> None:
    bm = small_bm()
    with refused("t_start", "expected a positive number, got inf"):
        bm.anneal(t_start=float("inf"))
    with refused("cooling", "expected a number in (0, 1), got 1"):
        bm.anneal(cooling=1.0)
    with refused("clamp", "expected a number of leading units in [0, 4]"):
        bm.anneal(clamp=2.5)
    with refused("clamp", "expected a number of leading units in [0, 4]"):
        bm.anneal(clamp=True)
    with refused("t_start, t_end, cooling", "expected t_start >= t_end"):
        bm.anneal(t_start=0.1, t_end=1.0)


def test_boltzmann_generate_class_labels() -> None:
    bm = small_bm(2)
    with refused("label", "expected an integer in [0, 1], got 2"):
        bm.generate_class(2, 3)
    with refused("label", "expected an integer in [0, 1], got 0.5"):
        bm.generate_class(0.5, 3)
    with refused("label", "expected an integer in [0, 1], got True"):
        bm.generate_class(True, 3)
    with refused("label", "expected an integer tensor"):
        bm.generate_class(torch.tensor([0.0, 1.0, 1.0]), 3)
    with refused("label", "expected shape () or (3,)"):
        bm.generate_class(torch.tensor([0, 1]), 3)
    with refused("generate_class", "the machine has no label units"):
        small_bm().generate_class(0, 3)
    out = bm.generate_class([0, 1, 1], 3, n_sweeps=1, generator=0)
    assert out.shape == (3, 3)
    assert bm.generate_class(torch.tensor([0, 1, 1]), 3, n_sweeps=1, generator=0).shape == (3, 3)


def test_boltzmann_p_class_given_v_exact_flag() -> None:
    with refused("exact", "expected True or False or None, got 'yes'"):
        small_bm(2).p_class_given_v(torch.zeros(1, 3), exact="yes")


# ----- modern Hopfield ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_modern_recall_chunk(bad: object) -> None:
    with refused("chunk", "expected a positive integer, got"):
        stored_modern().recall(torch.ones(2, 4), chunk=bad)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_modern_recall_binary(bad: object) -> None:
    with refused("binary", "expected True or False, got"):
        stored_modern().recall(torch.ones(2, 4), binary=bad)


def test_modern_recall_still_works() -> None:
    net = stored_modern()
    out = net.recall(torch.ones(3, 4), chunk=2, binary=True)
    assert out.shape == (3, 4)
    assert set(out.unique().tolist()) <= {-1.0, 1.0}


def test_refusals_are_invalid_argument_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        Ising(2).sample(True)
    with pytest.raises(InvalidArgumentError):
        DiagonalGaussian(2).sample(2, generator=0.5)
