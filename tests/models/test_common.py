"""Shared suite: every model saves and loads (bit-exact, without pickle), gives its parameters
gradients where it has an energy, moves between devices, and draws its samples from a generator
or an integer seed (anything else, and a count that is not positive, refused by name).

A new model joins by adding one entry to FACTORIES (its class name and small constructor
arguments). Every class of ``ebmlab.models.MODEL_CLASSES`` that the library defines (the
Frechet distance's classifier included) must be an entry or be listed in EXEMPT with the reason;
an entry that cannot be built fails, naming the class.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from typing import Any

import pytest
import torch

import ebmlab
from ebmlab.io import load_checkpoint
from ebmlab.metrics.frechet import FeatureClassifier
from ebmlab.models import MODEL_CLASSES, DBNClassifier, Model
from ebmlab.validation import InvalidArgumentError

#: Class name (in ``MODEL_CLASSES``) -> small constructor arguments.
FACTORIES: dict[str, dict[str, Any]] = {
    "DiagonalGaussian": {"dim": 3},
    "IndependentBernoulli": {"n_visible": 5},
    "BernoulliRBM": {"n_visible": 6, "n_hidden": 4, "seed": 1},
    "GaussianBernoulliRBM": {"n_visible": 6, "n_hidden": 4},
    "BoltzmannMachine": {"n_visible": 4, "n_hidden": 2},
    "Hopfield": {"n_units": 8},
    "HiddenHopfield": {"n_visible": 6, "n_hidden": 2},
    "ModernHopfield": {"n_units": 8},
    "Ising": {"size": 3},
    "MLPEnergy": {"dim": 2},
    "ConvEnergy": {"image_shape": [8, 8]},
    "QuadraticEnergy": {"dim": 3},
    "RealNVP": {"dim": 2},
    "PCA": {"n_visible": 6, "n_components": 2},
    "LinearGaussian": {"n_visible": 6, "n_components": 2},
    "ProbabilisticPCA": {"n_visible": 6, "n_components": 2},
    "FactorAnalysis": {"n_visible": 6, "n_components": 2},
    "VAE": {"n_visible": 6, "hidden": [5], "latent": 2, "seed": 0},
    "DeepBeliefNet": {"layer_sizes": [6, 4, 3], "seed": 0},
    "DeepBoltzmannMachine": {"layer_sizes": [6, 4, 3], "seed": 0},
    "DeepAutoencoder": {"layer_sizes": [6, 4, 2], "seed": 0},
    "HashingAutoencoder": {"layer_sizes": [6, 4, 3], "seed": 0},
    "GaussianHiddenRBM": {"n_visible": 6, "n_hidden": 2},
    "PixelCNN": {"image_shape": [4, 4], "channels": 4, "n_layers": 2, "first_kernel": 3},
    "PixelRNN": {"image_shape": [4, 4], "hidden": 2, "n_layers": 1, "first_kernel": 3},
    "BernoulliDiffusion": {
        "image_shape": [4, 4],
        "n_steps": 10,
        "channels": 4,
        "channel_mults": [1, 2],
    },
    "DDPM": {
        "image_shape": [4, 4],
        "levels": 5,
        "n_steps": 10,
        "channels": 4,
        "channel_mults": [1, 2],
    },
    "ImageRealNVP": {
        "image_shape": [4, 4],
        "levels": 2,
        "n_couplings": 2,
        "channels": 4,
        "n_blocks": 1,
    },
    "GAN": {"dim": 6, "latent_dim": 2, "hidden": 8, "seed": 0},
    "ConditionalGAN": {"dim": 6, "n_classes": 3, "latent_dim": 2, "hidden": 8, "seed": 0},
    "CycleGAN": {"dim": 64, "image_shape": [8, 8], "channels": 2, "n_blocks": 1, "seed": 0},
    "FeatureClassifier": {"n_inputs": 6, "hidden": [5], "n_classes": 3},
    "DBNClassifier": {"layer_sizes": [6, 4, 3], "n_classes": 3, "seed": 0},
}

#: Registered classes that are not entries, and why.
EXEMPT: dict[str, str] = {
    "EnergyNetwork": "abstract base: network() is left to MLPEnergy and ConvEnergy (entries)",
    "Flow": "abstract base: the transform is set by RealNVP and ImageRealNVP (entries)",
    "RasterAutoregressive": "abstract base: the network is set by PixelCNN and PixelRNN (entries)",
    "DiffusionModel": "abstract base: the terms are set by DDPM and BernoulliDiffusion (entries)",
}


@functools.cache
def _library_classes() -> dict[str, type]:
    """Every ``Model`` subclass the library defines: its modules are imported first (the
    application layer and ``__main__`` excepted), so that none is missed for not being imported
    yet; classes that tests define (toy subclasses of Model) register too, and are left out."""
    for module in pkgutil.walk_packages(ebmlab.__path__, "ebmlab."):
        if not module.name.startswith("ebmlab.app") and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return {
        name: cls for name, cls in MODEL_CLASSES.items() if cls.__module__.startswith("ebmlab.")
    }


def _build(name: str) -> torch.nn.Module:
    cls = _library_classes().get(name)
    if cls is None:
        pytest.fail(f"{name}: suite entry names no model class of the library")
    try:
        return cls(**FACTORIES[name])
    except Exception as error:
        pytest.fail(f"{name}: cannot be built from its suite entry {FACTORIES[name]}: {error!r}")


def test_every_model_class_is_in_the_suite_or_exempt():
    classes = _library_classes()
    missing = sorted(set(classes) - set(FACTORIES) - set(EXEMPT))
    assert not missing, f"model classes with no entry in FACTORIES nor EXEMPT: {missing}"
    stale = sorted((set(FACTORIES) | set(EXEMPT)) - set(classes))
    assert not stale, f"entries naming no class of MODEL_CLASSES: {stale}"
    assert not set(FACTORIES) & set(EXEMPT)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_entry_builds(name):
    model = _build(name)
    assert type(model).__name__ == name
    assert isinstance(model, Model)


def _perturbed(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in list(model.parameters()) + [
            b for b in model.buffers() if b.is_floating_point()
        ]:
            tensor.add_(torch.randn(tensor.shape, generator=g, dtype=tensor.dtype))
    return model


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_save_load_round_trip(name, tmp_path):
    model = _perturbed(_build(name))
    path = ebmlab.save(model, tmp_path / "m.safetensors", meta={"dataset": "digits", "seed": 3})
    loaded = ebmlab.load(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    original = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, original[key]), key
    ckpt = load_checkpoint(path)
    assert ckpt.meta["meta"] == {"dataset": "digits", "seed": 3}
    assert ckpt.meta["ebmlab_version"] == ebmlab.__version__
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_moves_between_devices_and_dtypes(name):
    model = _build(name).to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    model.to("cpu")
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines
        model.to("cuda")
        assert all(p.device.type == "cuda" for p in model.parameters())


def _scalar_objective(model):
    dim = next(
        (
            getattr(model, a)
            for a in ("n_visible", "dim", "n_units", "n_inputs")
            if hasattr(model, a)
        ),
        None,
    )
    if dim is None and hasattr(model, "image_shape"):
        dim = int(torch.tensor(model.image_shape).prod())
    g = torch.Generator().manual_seed(0)
    if hasattr(model, "n_visible"):
        x = (torch.rand(5, dim, generator=g) < 0.5).float()
    elif getattr(model, "spin_values", None) is not None:
        x = torch.where(torch.rand(5, dim, generator=g) < 0.5, 1.0, model.spin_values[0])
    else:
        x = torch.randn(5, dim, generator=g)
    if isinstance(model, FeatureClassifier | DBNClassifier):
        # a classifier: the log-partition of its logits reaches every weight
        return model(x).logsumexp(-1).sum()
    if hasattr(model, "n_classes") and hasattr(model, "value"):
        # a conditional GAN: the value of the game on labelled data
        labels = torch.arange(5) % model.n_classes
        return model.value(x, labels, torch.randn(5, model.latent_dim, generator=g))
    if hasattr(model, "translate"):
        # a CycleGAN: each discriminator judges a translation, reaching all four networks
        return (
            model.discriminate_y(model.translate(x)).sum()
            + model.discriminate_x(model.translate_back(x)).sum()
        )
    if hasattr(model, "latent_dim") and hasattr(model, "value"):
        # a GAN: the value of the game involves both networks
        return model.value(x, torch.randn(5, model.latent_dim, generator=g))
    if hasattr(model, "rbms"):
        # a DBN is a stack of RBMs, each trained on the layer below's hidden probabilities
        total = torch.zeros(())
        for rbm in model.rbms:
            total = total + rbm.free_energy(x).sum()
            x = rbm.p_h_given_v(x).detach()
        return total
    if hasattr(model, "predict_noise") or hasattr(model, "predict_logits"):
        # a diffusion model: the network's output at several timesteps reaches every weight
        t = torch.arange(5) % model.n_steps + 1
        predict = getattr(model, "predict_noise", None) or model.predict_logits
        return predict(2 * x - 1, t).pow(2).sum()
    if hasattr(model, "free_energy"):
        return model.free_energy(x).sum()
    if hasattr(model, "energy"):
        return model.energy(x).sum()
    return -model.log_prob(x).sum()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_parameter_gets_a_gradient(name):
    model = _perturbed(_build(name))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        pytest.skip(f"{name} has no trainable parameters (weights are set by a rule)")
    _scalar_objective(model).backward()
    for pname, p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def _sampler(name):
    """The model's ``sample`` with a short chain where it runs one (None: it draws nothing)."""
    model = _build(name)
    sample = getattr(model, "sample", None)
    if sample is None:
        return None
    parameters = inspect.signature(sample).parameters
    chain = {
        key: 3
        for key in ("n_steps", "n_sweeps")
        if key in parameters and isinstance(parameters[key].default, int)
    }
    return functools.partial(sample, **chain)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_sample_takes_a_seed_and_refuses_what_is_not_one(name):
    sample = _sampler(name)
    if sample is None:
        pytest.skip(f"{name} draws no samples")
    with torch.no_grad():
        first, again = sample(2, generator=5), sample(2, generator=5)
        assert torch.equal(first, again)  # an integer seed is a seeded generator
        for bad in (2.5, True, "0"):
            with pytest.raises(InvalidArgumentError, match=r"^generator: expected a torch\.Gen"):
                sample(2, generator=bad)
        for bad in (0, -1, True):
            with pytest.raises(InvalidArgumentError, match=r"^n: expected a positive integer"):
                sample(bad, generator=5)
