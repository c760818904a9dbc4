"""The loop's NaN guard when the losses are read only every ``CHECK_EVERY_STEPS`` steps (and at
the end of every epoch): a bad loss is still named at its own step, the step records before it
are written and none after, the checkpoint on disk is the last good epoch's, and the loop's
metrics (epoch means, step records) equal the per-step values."""

from __future__ import annotations

import json

import pytest
import torch

from ebmlab.models import DiagonalGaussian
from ebmlab.objectives import Objective
from ebmlab.training import TrainConfig, TrainingDiverged, loop, train


class PoisonAt(Objective):
    """Negative log-likelihood, NaN at call ``at``; records every loss value it returned."""

    def __init__(self, at: int = 0) -> None:
        super().__init__()
        self.at = at
        self.calls = 0
        self.values: list[float] = []

    def loss(self, model, batch, generator):
        self.calls += 1
        value = -model.log_prob(batch).mean()
        if self.calls == self.at:
            value = value * float("nan")
        self.values.append(float(value.detach()))
        return value, {}


def _x(n: int = 400) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0))


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("at", [3, loop.CHECK_EVERY_STEPS, loop.CHECK_EVERY_STEPS + 1, 45])
def test_a_nan_between_checks_is_named_at_its_own_step(at, tmp_path):
    # 20 steps per epoch: the NaN falls inside a check window, on a check, or after the first
    # epoch's checkpoint (step 45: epoch 3)
    config = TrainConfig(epochs=3, batch_size=20, lr=0.01, progress=False, log_every_steps=1)
    with pytest.raises(TrainingDiverged, match=rf"step {at} \(epoch .*loss is nan") as info:
        train(DiagonalGaussian(2), PoisonAt(at), _x(), config, tmp_path)
    assert info.value.step == at and info.value.quantity == "loss"
    records = _records(tmp_path)
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, at))  # every good step logged, nothing at or after the NaN
    assert records[-1] == {**records[-1], "kind": "diverged", "step": at}
    checkpoint = tmp_path / "checkpoint.safetensors"
    if at <= 20:  # diverged in the first epoch: no checkpoint was ever written
        assert not checkpoint.exists()
        return
    from ebmlab.training.checkpoint import restore

    model = DiagonalGaussian(2)
    restored = restore(checkpoint, model, PoisonAt())
    assert restored.state.step == 20 * ((at - 1) // 20)  # the last completed epoch's
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_step_records_and_epoch_means_are_the_per_step_losses(tmp_path):
    objective = PoisonAt()
    config = TrainConfig(epochs=2, batch_size=40, lr=0.01, progress=False, log_every_steps=3)
    train(DiagonalGaussian(2), objective, _x(), config, tmp_path)
    records = _records(tmp_path)
    steps = {r["step"]: r["loss"] for r in records if r["kind"] == "step"}
    assert sorted(steps) == list(range(3, 21, 3))
    for step, value in steps.items():
        assert value == pytest.approx(objective.values[step - 1], rel=1e-6)
    epochs = [r for r in records if r["kind"] == "epoch"]
    for e, record in enumerate(epochs):
        mean = sum(objective.values[10 * e : 10 * (e + 1)]) / 10
        assert record["loss"] == pytest.approx(mean, rel=1e-5)


def test_a_parameter_gone_bad_is_found_by_the_next_check():
    class BigGradient(Objective):
        def loss(self, model, batch, generator):  # finite loss, a gradient that overflows
            return model.mu.sum() * 3e38 * 0 + model.mu.sum() * 3e38, {}

    config = TrainConfig(epochs=1, batch_size=8, lr=10.0, optimizer="sgd", progress=False)
    with pytest.raises(TrainingDiverged, match="parameter 'mu'") as info:
        train(DiagonalGaussian(2), BigGradient(), torch.randn(64, 2), config)
    # the first step overflows mu; its loss is finite, the next one's is not: the check names
    # the loss of step 2 and the parameter it comes from
    assert info.value.step == 2 and "by step 8" in str(info.value)
