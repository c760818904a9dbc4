"""Argument checks at the entry points of the RBMs, the deep stacks (DBN, DBM, autoencoders), the
autoregressive models, the VAE, the flows, the diffusion models, the GANs and the linear-Gaussian
models: counts, generators, empty batches, constructor settings. Each refusal names its argument
and comes from ``ebmlab.validation``."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ebmlab.models.autoencoder import DeepAutoencoder, GaussianHiddenRBM
from ebmlab.models.autoregressive import PixelCNN
from ebmlab.models.cgan import ConditionalGAN
from ebmlab.models.classifier import DBNClassifier
from ebmlab.models.dbm import DeepBoltzmannMachine
from ebmlab.models.dbn import DeepBeliefNet
from ebmlab.models.diffusion import DDPM, BernoulliDiffusion
from ebmlab.models.flows import RealNVP
from ebmlab.models.gan import GAN
from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.models.hashing import HashingAutoencoder
from ebmlab.models.hopfield_hidden import HiddenHopfield
from ebmlab.models.image_flows import ImageRealNVP
from ebmlab.models.linear_gaussian import FactorAnalysis, LinearGaussian, ProbabilisticPCA
from ebmlab.models.pixelrnn import PixelRNN
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.models.vae import VAE
from ebmlab.validation import InvalidArgumentError


def refused(name: str, start: str = "expected", error: type[Exception] = ValueError):
    """``pytest.raises`` for a message that starts with "<name>: <start>"."""
    return pytest.raises(error, match="^" + re.escape(f"{name}: {start}"))


GENERATOR_MESSAGE = "expected a torch.Generator, an integer seed or None, got"
EMPTY_MESSAGE = "expected at least "  # one row (two where a standard deviation is taken)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binary(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, d, generator=seeded(seed)) < 0.5).float()


# ----- models built small ------------------------------------------------------------------------
def rbm() -> BernoulliRBM:
    return BernoulliRBM(4, 3, init_std=0.1, seed=0)


def gb_rbm() -> GaussianBernoulliRBM:
    return GaussianBernoulliRBM(4, 3, seed=0)


def dbn() -> DeepBeliefNet:
    return DeepBeliefNet([4, 3, 2], init_std=0.1, seed=0)


def dbm() -> DeepBoltzmannMachine:
    return DeepBoltzmannMachine([4, 3, 2], init_std=0.1, seed=0)


def pixelcnn() -> PixelCNN:
    return PixelCNN((2, 2), channels=4, n_layers=2, kernel=3, first_kernel=3)


def pixelrnn() -> PixelRNN:
    return PixelRNN((2, 2), hidden=2, n_layers=1, first_kernel=3)


def ddpm() -> DDPM:
    return DDPM([2, 2], levels=2, n_steps=3, channels=4, channel_mults=[1])


def bernoulli_diffusion() -> BernoulliDiffusion:
    return BernoulliDiffusion([2, 2], n_steps=3, channels=4, channel_mults=[1])


def vae() -> VAE:
    return VAE(4, hidden=[4], latent=2, seed=0)


def real_nvp() -> RealNVP:
    return RealNVP(2, n_layers=2, hidden=4, depth=1)


def image_flow() -> ImageRealNVP:
    return ImageRealNVP((2, 2), levels=2, n_couplings=2, channels=2, n_blocks=0)


def gan() -> GAN:
    return GAN(4, latent_dim=2, hidden=4, depth=1, seed=0)


def cgan() -> ConditionalGAN:
    return ConditionalGAN(4, latent_dim=2, hidden=4, depth=1, n_classes=2, seed=0)


SAMPLERS = {
    "BernoulliRBM": lambda g: rbm().sample(2, n_steps=2, generator=g),
    "GaussianBernoulliRBM": lambda g: gb_rbm().sample(2, n_steps=2, generator=g),
    "DeepBeliefNet": lambda g: dbn().sample(2, n_steps=2, generator=g),
    "DeepBoltzmannMachine": lambda g: dbm().sample(2, n_steps=2, generator=g),
    "PixelCNN": lambda g: pixelcnn().sample(2, generator=g),
    "PixelRNN": lambda g: pixelrnn().sample(2, generator=g),
    "DDPM": lambda g: ddpm().sample(2, generator=g),
    "BernoulliDiffusion": lambda g: bernoulli_diffusion().sample(2, generator=g),
    "VAE": lambda g: vae().sample(2, generator=g, mean=False),
    "RealNVP": lambda g: real_nvp().sample(2, generator=g),
    "ImageRealNVP": lambda g: image_flow().sample(2, generator=g),
    "GAN": lambda g: gan().sample(2, generator=g),
    "ConditionalGAN": lambda g: cgan().sample(2, generator=g),
    "ProbabilisticPCA": lambda g: ProbabilisticPCA(3, 1).sample(2, generator=g),
}


# ----- generator= takes a torch.Generator or an integer seed -----------------------------------
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sample_takes_an_integer_seed_as_its_generator(name):
    draw = SAMPLERS[name]
    torch.manual_seed(0)
    from_seed = draw(3)
    torch.manual_seed(0)
    from_generator = draw(seeded(3))
    assert torch.equal(from_seed, from_generator)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("bad", [2.5, True, "0", np.random.default_rng(0)])
def test_sample_refuses_a_generator_that_is_neither_a_generator_nor_a_seed(name, bad):
    with refused("generator", GENERATOR_MESSAGE, InvalidArgumentError):
        SAMPLERS[name](bad)


OTHER_DRAWS = {
    "BernoulliRBM.complete": lambda g: rbm().complete(
        binary(2, 4), torch.tensor([True, True, False, False]), n_steps=2, generator=g
    ),
    "PixelCNN.complete": lambda g: pixelcnn().complete(
        binary(2, 4), torch.tensor([True, True, False, False]), generator=g
    ),
    "DeepBoltzmannMachine.sample_states": lambda g: dbm().sample_states(2, 2, generator=g)[0],
    "DeepBeliefNet.lower_bound": lambda g: dbn().lower_bound(
        binary(3, 4), n_samples=2, generator=g
    ),
    "VAE.log_prob": lambda g: vae().log_prob(binary(3, 4), k=2, generator=g),
    "VAE.elbo": lambda g: vae().elbo(binary(3, 4), generator=g),
    "VAE.iwae_bound": lambda g: vae().iwae_bound(binary(3, 4), k=3, generator=g),
    "VAE.draw_x_given_z": lambda g: vae().draw_x_given_z(torch.zeros(2, 2), generator=g),
    "VAE.reconstruct": lambda g: vae().reconstruct(binary(3, 4), generator=g, sample_z=True),
    "DDPM.log_likelihood_bound": lambda g: ddpm().log_likelihood_bound(binary(2, 4), g),
    "BernoulliDiffusion.bound_terms": lambda g: bernoulli_diffusion().bound_terms(binary(2, 4), g)[
        "total"
    ],
    "ImageRealNVP.discrete_log_likelihood_bound": lambda g: (
        image_flow().discrete_log_likelihood_bound(binary(2, 4), generator=g)
    ),
    "RealNVP.sample_and_log_prob": lambda g: real_nvp().sample_and_log_prob(2, generator=g)[1],
    "GAN.sample_latent": lambda g: gan().sample_latent(2, generator=g),
    "ConditionalGAN.sample_labels": lambda g: cgan().sample_labels(5, generator=g),
}


@pytest.mark.parametrize("name", sorted(OTHER_DRAWS))
def test_methods_that_draw_take_an_integer_seed_and_refuse_other_generators(name):
    draw = OTHER_DRAWS[name]
    torch.manual_seed(0)
    from_seed = draw(5)
    torch.manual_seed(0)
    assert torch.equal(from_seed, draw(seeded(5)))
    with refused("generator", GENERATOR_MESSAGE, InvalidArgumentError):
        draw(np.random.default_rng(0))


# ----- sample counts ---------------------------------------------------------------------------
COUNTED = {
    "PixelCNN": lambda n: pixelcnn().sample(n),
    "PixelRNN": lambda n: pixelrnn().sample(n),
    "DDPM": lambda n: ddpm().sample(n),
    "BernoulliDiffusion": lambda n: bernoulli_diffusion().sample(n),
    "RealNVP": lambda n: real_nvp().sample(n),
    "RealNVP.sample_and_log_prob": lambda n: real_nvp().sample_and_log_prob(n)[0],
    "ImageRealNVP": lambda n: image_flow().sample(n),
    "ConditionalGAN.sample_labels": lambda n: cgan().sample_labels(n),
}


@pytest.mark.parametrize("name", sorted(COUNTED))
@pytest.mark.parametrize("n", [0, -1, True, 2.0])
def test_sample_refuses_a_count_that_is_not_a_positive_integer(name, n):
    with refused("n", "expected a positive integer, got"):
        COUNTED[name](n)


def test_rbm_complete_refuses_a_negative_or_non_integer_number_of_steps():
    mask = torch.tensor([True, True, False, False])
    for bad in (-1, True, 2.5):
        with refused("n_steps", "expected a non-negative integer, got"):
            rbm().complete(binary(2, 4), mask, n_steps=bad)
    assert rbm().complete(binary(2, 4), mask, n_steps=0, generator=0).shape == (2, 4)


def test_ddpm_bound_checks_the_number_of_timesteps_whatever_its_size():
    for bad in (0, True, 1e9):
        with refused("n_timesteps", "expected a positive integer, got"):
            ddpm().bound_terms(binary(2, 4), n_timesteps=bad)


@pytest.mark.parametrize(
    "call",
    [
        lambda: DeepAutoencoder([4, 3, 2], seed=0).reconstruction_error(binary(2, 4), 0),
        lambda: HashingAutoencoder([4, 3, 2], seed=0).binary_codes(binary(2, 4), 0),
        lambda: DBNClassifier([4, 3], n_classes=2, seed=0).predict(binary(2, 4), 0),
        lambda: DBNClassifier([4, 3], n_classes=2, seed=0).cross_entropy(
            binary(2, 4), torch.tensor([0, 1]), 0
        ),
        lambda: dbn().lower_bound(binary(2, 4), batch_size=0),
    ],
)
def test_batch_sizes_must_be_positive_integers(call):
    with refused("batch_size", "expected a positive integer, got 0"):
        call()


def test_enumerations_check_their_unit_limit():
    with refused("max_units", "expected a non-negative integer, got"):
        dbm().free_energy(binary(2, 4), max_units=2.5)
    with refused("max_units", "expected a non-negative integer, got"):
        dbm().log_z(max_units=True)
    with refused("max_units", "expected a non-negative integer, got"):
        dbn().exact_log_prob(binary(2, 4), max_units="20")


# ----- empty batches ---------------------------------------------------------------------------
EMPTY4 = torch.empty(0, 4)

SCORES = {
    "BernoulliRBM.log_conditionals": ("v", lambda: rbm().log_conditionals(EMPTY4)),
    "BernoulliRBM.pseudo_log_likelihood": ("v", lambda: rbm().pseudo_log_likelihood(EMPTY4)),
    "BernoulliRBM.complete": (
        "v",
        lambda: rbm().complete(EMPTY4, torch.tensor([True, True, False, False])),
    ),
    "BernoulliRBM.sample(v0)": ("v0", lambda: rbm().sample(2, n_steps=2, v0=EMPTY4)),
    "GaussianBernoulliRBM.sample(v0)": ("v0", lambda: gb_rbm().sample(2, v0=EMPTY4)),
    "DeepBeliefNet.sample(v0)": ("v0", lambda: dbn().sample(2, n_steps=2, v0=EMPTY4)),
    "DeepBoltzmannMachine.sample(v0)": ("v0", lambda: dbm().sample(2, n_steps=2, v0=EMPTY4)),
    "DeepBeliefNet.exact_log_prob": ("v", lambda: dbn().exact_log_prob(EMPTY4)),
    "DeepBeliefNet.lower_bound": ("v", lambda: dbn().lower_bound(EMPTY4)),
    "DeepBeliefNet.lower_bound(importance)": (
        "v",
        lambda: dbn().lower_bound(EMPTY4, method="importance"),
    ),
    "DeepBoltzmannMachine.free_energy": ("v", lambda: dbm().free_energy(EMPTY4)),
    "DeepBoltzmannMachine.variational_bound": ("v", lambda: dbm().variational_bound(EMPTY4, 0.0)),
    "PixelCNN.log_prob": ("x", lambda: pixelcnn().log_prob(EMPTY4)),
    "PixelRNN.log_prob": ("x", lambda: pixelrnn().log_prob(EMPTY4)),
    "PixelCNN.complete": (
        "x",
        lambda: pixelcnn().complete(EMPTY4, torch.tensor([True, True, False, False])),
    ),
    "DeepAutoencoder.reconstruction_error": (
        "x",
        lambda: DeepAutoencoder([4, 3, 2], seed=0).reconstruction_error(EMPTY4),
    ),
    "HashingAutoencoder.binary_codes": (
        "x",
        lambda: HashingAutoencoder([4, 3, 2], seed=0).binary_codes(EMPTY4),
    ),
    "LinearGaussian.log_prob": ("x", lambda: FactorAnalysis(4, 2).log_prob(EMPTY4)),
    "LinearGaussian.log_prob_dequantized": (
        "x",
        lambda: ProbabilisticPCA(4, 2).log_prob_dequantized(EMPTY4),
    ),
    "RealNVP.log_prob": ("x", lambda: RealNVP(4, n_layers=1, hidden=4).log_prob(EMPTY4)),
    "RealNVP.standardize": ("x", lambda: RealNVP(4, n_layers=1, hidden=4).standardize(EMPTY4)),
    "ImageRealNVP.log_prob": ("x", lambda: image_flow().log_prob(EMPTY4)),
    "ImageRealNVP.discrete_log_likelihood_bound": (
        "x",
        lambda: image_flow().discrete_log_likelihood_bound(EMPTY4),
    ),
    "ImageRealNVP.standardize": ("x", lambda: image_flow().standardize(EMPTY4)),
    "VAE.log_prob": ("x", lambda: vae().log_prob(EMPTY4)),
    "VAE.elbo": ("x", lambda: vae().elbo(EMPTY4)),
    "VAE.iwae_bound": ("x", lambda: vae().iwae_bound(EMPTY4, k=3)),
    "VAE.set_output_bias": ("x", lambda: vae().set_output_bias(EMPTY4)),
    "DDPM.log_likelihood_bound": ("x", lambda: ddpm().log_likelihood_bound(EMPTY4)),
    "BernoulliDiffusion.bound_terms": ("x", lambda: bernoulli_diffusion().bound_terms(EMPTY4)),
    "DBNClassifier.error_rate": (
        "x",
        lambda: DBNClassifier([4, 3], n_classes=2).error_rate(EMPTY4, torch.empty(0)),
    ),
}


@pytest.mark.parametrize("name", sorted(SCORES))
def test_scores_and_chains_refuse_an_empty_batch(name):
    argument, call = SCORES[name]
    with refused(argument, EMPTY_MESSAGE):
        call()


INITS = {
    "BernoulliRBM": lambda: rbm(),
    "GaussianBernoulliRBM": lambda: gb_rbm(),
    "GaussianHiddenRBM": lambda: GaussianHiddenRBM(4, 2, seed=0),
    "DeepBoltzmannMachine": lambda: dbm(),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_init_visible_from_data_refuses_an_empty_batch_and_leaves_the_biases(name):
    model = INITS[name]()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with refused("x", EMPTY_MESSAGE):
        model.init_visible_from_data(EMPTY4)
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize("name", ["BernoulliRBM", "DeepBoltzmannMachine"])
@pytest.mark.parametrize("bad", [-3.0, 2.0])
def test_bernoulli_init_visible_from_data_refuses_values_outside_the_unit_interval(name, bad):
    x = torch.full((3, 4), 0.5)
    x[1, 2] = bad
    with refused("x", "expected values in [0, 1]"):
        INITS[name]().init_visible_from_data(x)


def test_bernoulli_init_visible_from_data_still_takes_probabilities():
    model = rbm()
    model.init_visible_from_data(torch.full((3, 4), 0.25))
    assert torch.allclose(model.b, torch.full((4,), float(np.log(0.25 / 0.75))))


# ----- log_conditionals bits -------------------------------------------------------------------
def test_log_conditionals_refuses_bad_bits_by_name():
    v = binary(3, 4)
    model = rbm()
    with refused("bits", "expected integer feature indices, got torch.float32", TypeError):
        model.log_conditionals(v, torch.zeros(3, 1))
    with refused("bits", "expected integer feature indices, got torch.bool", TypeError):
        model.log_conditionals(v, torch.zeros(3, 1, dtype=torch.bool))
    with refused("bits", "expected feature indices in 0..3, got values from 0 to 4"):
        model.log_conditionals(v, torch.tensor([[0], [4], [1]]))
    with refused("bits", "expected feature indices in 0..3, got values from -1 to 2"):
        model.log_conditionals(v, [[-1], [2], [1]])
    with refused("bits", "expected feature indices of shape (3, k) with k >= 1"):
        model.log_conditionals(v, torch.zeros(2, 1, dtype=torch.long))
    with refused("bits", "expected feature indices of shape (3, k) with k >= 1"):
        model.log_conditionals(v, torch.zeros(3, 0, dtype=torch.long))
    with refused("bits", "expected shape (batch, features)"):
        model.log_conditionals(v, [0, 1, 2])


def test_log_conditionals_takes_bits_as_a_list_or_an_array():
    v = binary(3, 4)
    model = rbm()
    full = model.log_conditionals(v)
    picked = torch.tensor([[0, 3], [1, 1], [2, 0]])
    expected = full.gather(1, picked)
    assert torch.allclose(model.log_conditionals(v, picked), expected)
    assert torch.allclose(model.log_conditionals(v, picked.tolist()), expected)
    assert torch.allclose(model.log_conditionals(v, picked.numpy().astype(np.int32)), expected)


# ----- constructors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda seed: DeepBoltzmannMachine([4, 3, 2], seed=seed),
        lambda seed: DeepAutoencoder([4, 3, 2], seed=seed),
        lambda seed: HashingAutoencoder([4, 3, 2], seed=seed),
        lambda seed: DeepBeliefNet([4, 3, 2], seed=seed),
        lambda seed: DeepAutoencoder([4, 3, 2]).rbm_stack(seed=seed),
    ],
)
@pytest.mark.parametrize("seed", [True, 2.5, "0"])
def test_constructors_refuse_a_seed_that_is_not_an_integer(build, seed):
    with refused("seed", "expected an integer or None, got"):
        build(seed)


def test_hidden_hopfield_refuses_a_seed_that_is_not_an_integer():
    with refused("seed", "expected an integer, got True"):
        HiddenHopfield(4, 2, seed=True)


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("learn_sigma", lambda v: GaussianBernoulliRBM(4, 3, learn_sigma=v)),
        ("linear_code", lambda v: DeepAutoencoder([4, 3, 2], linear_code=v)),
        ("isotropic", lambda v: LinearGaussian(4, 2, isotropic=v)),
    ],
)
@pytest.mark.parametrize("value", ["yes", 2, 1, None])
def test_constructor_flags_must_be_true_or_false(name, build, value):
    with refused(name, "expected True or False, got"):
        build(value)


def test_constructor_numbers_are_checked_before_any_work():
    with refused("init_std", "expected a non-negative number, got"):
        DeepBoltzmannMachine([4, 3], init_std=float("nan"))
    with refused("init_std", "expected a non-negative number, got"):
        DeepBeliefNet([4, 3], init_std=-1.0)
    with refused("init_std", "expected a non-negative number or None, got"):
        DeepAutoencoder([4, 3], init_std=float("inf"))
    with refused("code_noise", "expected a non-negative number, got"):
        HashingAutoencoder([4, 3], code_noise=True)
    with refused("min_noise", "expected a positive number, got"):
        ProbabilisticPCA(4, 2, min_noise=0.0)


def test_ppca_em_refuses_a_seed_that_is_not_an_integer():
    x = torch.randn(50, 4, generator=seeded(0), dtype=torch.float64)
    model = ProbabilisticPCA(4, 2).double()
    with refused("seed", "expected an integer, got 2.5"):
        model.fit(x, method="em", seed=2.5)


def test_valid_constructor_arguments_still_build_and_are_recorded():
    assert DeepBoltzmannMachine([4, 3], seed=np.int64(3)).config["seed"] == 3
    assert DeepAutoencoder([4, 3], linear_code=np.bool_(False)).linear_code is False
    assert GaussianBernoulliRBM(4, 3, learn_sigma=False).config["learn_sigma"] is False
    assert ProbabilisticPCA(4, 2).isotropic is True
    assert FactorAnalysis(4, 2).isotropic is False


@pytest.mark.parametrize(
    "call",
    [
        lambda x: GaussianBernoulliRBM(3, 2).init_visible_from_data(x),
        lambda x: RealNVP(3).standardize(x),
        lambda x: VAE(3, hidden=[4], latent=2, likelihood="gaussian").set_output_bias(x),
    ],
    ids=["grbm-sigma", "realnvp", "vae-gaussian"],
)
def test_a_standard_deviation_of_one_row_is_refused(call):
    with pytest.raises(ValueError, match=r"^x: expected at least 2 rows \(a standard deviation"):
        call(torch.rand(1, 3))
    call(torch.rand(2, 3))  # two rows are enough
