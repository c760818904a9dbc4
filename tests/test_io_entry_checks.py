"""``save`` and ``load`` refuse arguments of the wrong type by name before touching a file, and
``train`` checks a ``TrainConfig`` again when a setting was changed after it was made."""

from __future__ import annotations

import re

import pytest
import torch

import ebmlab
from ebmlab.io import load_checkpoint, read_checkpoint
from ebmlab.models import BernoulliRBM, DiagonalGaussian
from ebmlab.objectives import MaximumLikelihood
from ebmlab.training import TrainConfig, train
from ebmlab.validation import InvalidArgumentError


def _refused(name: str, start: str, error: type[Exception] = InvalidArgumentError):
    return pytest.raises(error, match="^" + re.escape(f"{name}: {start}"))


@pytest.fixture
def target(tmp_path):
    return tmp_path / "rbm.safetensors"


@pytest.mark.parametrize("optimizer", ["adam", torch.optim.Adam, 3])
def test_save_refuses_an_optimizer_of_another_type(target, optimizer):
    with _refused("optimizer", "expected a torch.optim.Optimizer or None"):
        ebmlab.save(BernoulliRBM(4, 3), target, optimizer=optimizer)
    assert not target.exists()


@pytest.mark.parametrize("objective", ["cd", MaximumLikelihood, torch.nn.Linear(2, 2)])
def test_save_refuses_an_objective_of_another_type(target, objective):
    with _refused("objective", "expected an ebmlab objective"):
        ebmlab.save(BernoulliRBM(4, 3), target, objective=objective)
    assert not target.exists()


def test_save_refuses_generators_that_are_not_a_dict_of_generators(target):
    with _refused("generators", "expected a dict of names to torch.Generators"):
        ebmlab.save(BernoulliRBM(4, 3), target, generators=[torch.Generator()])
    with _refused("generators['a']", "expected a torch.Generator or its get_state() tensor"):
        ebmlab.save(BernoulliRBM(4, 3), target, generators={"a": 3})
    with _refused("generators", "expected str keys"):
        ebmlab.save(BernoulliRBM(4, 3), target, generators={0: torch.Generator()})
    assert not target.exists()


def test_save_keeps_generators_and_their_states(target):
    g = torch.Generator().manual_seed(1)
    path = ebmlab.save(BernoulliRBM(4, 3), target, generators={"g": g, "s": g.get_state()})
    tensors = load_checkpoint(path).tensors
    assert torch.equal(tensors["rng.g"], tensors["rng.s"])


@pytest.mark.parametrize("path", [None, 3, object()])
def test_load_refuses_a_path_that_is_not_a_path(path):
    start = "expected a checkpoint file or run directory path (str or os.PathLike)"
    for reader in (ebmlab.load, load_checkpoint, read_checkpoint):
        with _refused("path", start, TypeError):
            reader(path)


# ----- a TrainConfig edited after it was made --------------------------------------------------
@pytest.mark.parametrize(
    "name, value, start",
    [
        ("batch_size", 0, "expected a positive integer"),
        ("epochs", -1, "expected a non-negative integer"),
        ("lr", float("nan"), "expected a positive learning rate"),
        ("optimizer", "rmsprop", "expected one of sgd, adam"),
        ("progress", "no", "expected True or False"),
    ],
)
def test_train_checks_a_config_changed_after_it_was_made(name, value, start):
    config = TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu")
    setattr(config, name, value)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    with _refused(name, start):
        train(DiagonalGaussian(2), MaximumLikelihood(), x, config)


def test_load_checks_the_device_before_reading_the_file(tmp_path):
    path = tmp_path / "missing.safetensors"  # never read: the device is refused first
    with pytest.raises(ValueError, match=r"^device: expected auto, cpu, cuda or mps, got 'gpu'"):
        ebmlab.load(path, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device: 'cuda' was asked for but no CUDA device"):
            ebmlab.load(path, device="cuda")
