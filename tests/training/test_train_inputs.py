"""``train`` refuses arguments of the wrong kind up front, naming the argument (no internal
attribute errors from deep in the loop), accepts NumPy data and an epoch callback that returns
None, and refuses a model its objective cannot train before any step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ebmlab.models import BernoulliRBM, DiagonalGaussian
from ebmlab.objectives import (
    ContrastiveDivergence,
    ContrastiveLangevin,
    DenoisingScoreMatching,
    MaximumLikelihood,
    NoiseAugmentedScoreMatching,
    NoiseConditionalScoreMatching,
    NoiseContrastiveEstimation,
)
from ebmlab.training import TrainConfig, train
from ebmlab.validation import InvalidArgumentError

CONFIG = TrainConfig(epochs=1, batch_size=16, lr=1e-2, progress=False, device="cpu")


def _data(n: int = 32, d: int = 4) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def _binary(n: int = 32, d: int = 4) -> torch.Tensor:
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(0)) < 0.5).float()


def test_objective_class_instead_of_instance_is_refused():
    with pytest.raises(
        InvalidArgumentError,
        match=r"objective: expected an Objective instance, "
        r"got the class MaximumLikelihood \(call it: MaximumLikelihood\(\)\)",
    ):
        train(DiagonalGaussian(4), MaximumLikelihood, _data(), CONFIG)


def test_objective_of_another_type_is_refused():
    with pytest.raises(TypeError, match=r"objective: expected an Objective .*got str"):
        train(DiagonalGaussian(4), "ml", _data(), CONFIG)


@pytest.mark.parametrize("config", [{"epochs": 1}, {}])
def test_dict_config_is_refused(config):
    """Even an empty dict (falsy) is refused rather than silently replaced by the defaults."""
    with pytest.raises(
        InvalidArgumentError,
        match=r"config: expected a TrainConfig, got dict "
        r"\(TrainConfig\(\*\*\.\.\.\)\)",
    ):
        train(DiagonalGaussian(4), MaximumLikelihood(), _data(), config)


def test_plain_module_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"model: expected an ebmlab Model .*got Linear"):
        train(nn.Linear(4, 1), MaximumLikelihood(), _data(), CONFIG)


def test_model_class_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"model: .*the class DiagonalGaussian"):
        train(DiagonalGaussian, MaximumLikelihood(), _data(), CONFIG)


def test_numpy_data_is_accepted_in_the_model_dtype():
    x = _data().numpy().astype(np.float64)
    result = train(DiagonalGaussian(4), MaximumLikelihood(), x, CONFIG)
    assert result.step == 2
    assert np.isfinite(result.history[-1]["loss"])


def test_numpy_data_of_the_wrong_shape_names_its_shape():
    with pytest.raises(
        ValueError,
        match=r"x_train: expected a tensor of shape \(N, D\), got shape "
        r"\(32,\)",
    ):
        train(DiagonalGaussian(4), MaximumLikelihood(), np.zeros(32), CONFIG)


def test_non_array_data_is_refused_by_type():
    with pytest.raises(
        TypeError,
        match=r"x_train: expected a torch.Tensor or a NumPy array of shape \(N, D\), got object",
    ):
        train(DiagonalGaussian(4), MaximumLikelihood(), object(), CONFIG)


def test_epoch_callback_returning_none_adds_no_metrics(tmp_path):
    seen = []
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress=False, device="cpu")
    result = train(
        DiagonalGaussian(4),
        MaximumLikelihood(),
        _data(),
        config,
        tmp_path,
        epoch_callback=lambda model, epoch: seen.append(epoch),
    )
    assert seen == [0, 1]
    assert len(result.history) == 2
    assert not any(k.startswith("eval_") for record in result.history for k in record)
    assert result.checkpoint is not None and result.checkpoint.exists()


def test_epoch_callback_metrics_are_still_logged():
    result = train(
        DiagonalGaussian(4),
        MaximumLikelihood(),
        _data(),
        CONFIG,
        epoch_callback=lambda model, epoch: {"score": 1.5},
    )
    assert result.history[-1]["eval_score"] == 1.5


def test_epoch_callback_returning_another_type_is_refused():
    with pytest.raises(TypeError, match=r"epoch_callback: expected it to return a dict .*got int"):
        train(
            DiagonalGaussian(4),
            MaximumLikelihood(),
            _data(),
            CONFIG,
            epoch_callback=lambda model, epoch: 3,
        )


def test_rbm_with_maximum_likelihood_is_refused_before_training(tmp_path):
    with pytest.raises(
        TypeError,
        match=r"model: MaximumLikelihood trains a model with a "
        r"normalized density \(log_prob\), got BernoulliRBM.*ContrastiveDivergence",
    ):
        train(BernoulliRBM(4, 3, seed=0), MaximumLikelihood(), _binary(), CONFIG, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists() or not (tmp_path / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    "objective",
    [
        lambda: DenoisingScoreMatching(),
        lambda: ContrastiveLangevin(),
        lambda: NoiseContrastiveEstimation(),
        lambda: NoiseConditionalScoreMatching(),
        lambda: NoiseAugmentedScoreMatching(),
    ],
    ids=["dsm", "contrastive-langevin", "nce", "ncsn", "nsm"],
)
def test_rbm_with_an_energy_objective_is_refused(objective):
    made = objective()
    name = type(made).__name__
    with pytest.raises(
        TypeError,
        match=rf"model: {name} trains an energy-based model of the data "
        r"\(energy\(x\)\), got BernoulliRBM, a latent-variable model",
    ):
        train(BernoulliRBM(4, 3, seed=0), made, _binary(), CONFIG)


def test_a_fitting_model_still_trains():
    result = train(BernoulliRBM(4, 3, seed=0), ContrastiveDivergence(), _binary(), CONFIG)
    assert result.step == 2


def test_complex_numpy_data_is_refused():
    with pytest.raises(ValueError, match=r"x_train: expected real values, got (torch\.)?complex"):
        train(DiagonalGaussian(4), MaximumLikelihood(), np.ones((8, 4), dtype=complex), CONFIG)
