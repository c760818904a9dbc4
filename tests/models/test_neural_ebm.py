"""Neural energies, their Langevin samplers and contrastive divergence with Langevin negatives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ebmlab
from ebmlab import data
from ebmlab.io import load_checkpoint
from ebmlab.models.neural import (
    ConvEnergy,
    MLPEnergy,
    QuadraticEnergy,
    geometric_sigmas,
)
from ebmlab.objectives.contrastive_langevin import ContrastiveLangevin
from ebmlab.objectives.nce import NoiseContrastiveEstimation
from ebmlab.training import TrainConfig, TrainingDiverged, train


def _mlp(seed: int = 0, **kwargs) -> MLPEnergy:
    torch.manual_seed(seed)
    return MLPEnergy(2, **{"hidden": 32, "depth": 2, **kwargs})


# ----- networks ---------------------------------------------------------------------------------
def test_energy_shapes_and_validation():
    x = torch.randn(5, 2)
    assert _mlp().energy(x).shape == (5,)
    conv = ConvEnergy([8, 8], channels=[4, 8])
    assert conv.energy(torch.rand(3, 64)).shape == (3,)
    assert ConvEnergy([28, 28], channels=[4, 8]).energy(torch.rand(2, 784)).shape == (2,)
    with pytest.raises(ValueError, match="activation"):
        MLPEnergy(2, activation="relu")  # score matching needs second derivatives
    with pytest.raises(ValueError, match="x"):
        _mlp().energy(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="sigma"):
        _mlp().energy(x, sigma=0.1)  # not noise-conditional
    with pytest.raises(ValueError, match="sigmas"):
        MLPEnergy(2, sigmas=[0.1, 1.0])  # must decrease


def test_temperature_divides_the_energy():
    model, x = _mlp(), torch.randn(4, 2)
    torch.testing.assert_close(model.energy(x, temperature=2.0), model.energy(x) / 2.0)


def test_noise_conditional_energy_is_scaled_by_one_over_sigma():
    sigmas = geometric_sigmas(1.0, 0.1, 4)
    model = _mlp(sigmas=sigmas)
    x = torch.randn(6, 2)
    for sigma in sigmas:
        column = torch.full((6, 1), math.log(sigma))
        raw = model.net(torch.cat([x, column], 1)).squeeze(-1)
        torch.testing.assert_close(model.energy(x, sigma), raw / sigma)
    # without sigma: the finest level
    torch.testing.assert_close(model.energy(x), model.energy(x, sigmas[-1]))


@pytest.mark.parametrize(
    "factory",
    [
        lambda: _mlp(),
        lambda: _mlp(sigmas=[1.0, 0.1]),
        lambda: ConvEnergy([8, 8], channels=[4]),
        lambda: QuadraticEnergy(3),
    ],
)
def test_save_load_round_trip(factory, tmp_path):
    model = factory()
    path = ebmlab.save(model, tmp_path / "m.safetensors")
    loaded = ebmlab.load(path)
    assert loaded.config == model.config
    x = torch.rand(4, model.dim)
    torch.testing.assert_close(loaded.energy(x), model.energy(x))


# ----- Langevin (the chains themselves: tests/samplers/test_samplers.py) -------------------
def _eight_gaussians_log_density(x: torch.Tensor) -> torch.Tensor:
    from ebmlab import data

    return data.toy2d_log_density("8gaussians", x.double())


def test_trained_energy_moves_noise_toward_the_data():
    from ebmlab import data

    x = data.toy2d("8gaussians", 4000, seed=0)
    model = _mlp(hidden=64)
    objective = NoiseContrastiveEstimation(noise_ratio=4.0)
    train(model, objective, x, TrainConfig(epochs=8, batch_size=200, lr=5e-3, progress=False))
    g = torch.Generator().manual_seed(1)
    noise = model.noise(500, g)
    samples = model.sample(500, n_steps=300, generator=g, x0=noise)
    before = _eight_gaussians_log_density(noise)
    after = _eight_gaussians_log_density(samples)
    # the samples sit where the data density is high: mean log p_data up by several nats, and
    # their mean distance to the circle of centers (radius 2.83) shrinks
    assert float(after.mean()) > float(before.mean()) + 3.0
    radius = 4 / 1.414
    gap_before = (noise.norm(dim=1) - radius).abs().mean()
    gap_after = (samples.norm(dim=1) - radius).abs().mean()
    assert float(gap_after) < 0.5 * float(gap_before)


@pytest.mark.parametrize("sigmas", [None, [1.0, 0.1]])
def test_inpainting_keeps_the_known_entries(sigmas):
    model = ConvEnergy([8, 8], channels=[4], langevin_steps=5, sigmas=sigmas)
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(0))
    known = torch.zeros(3, 64, dtype=torch.bool)
    known[:, :32] = True
    filled = model.inpaint(x, known, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(filled[known], x[known])
    assert float(filled.min()) >= 0.0 and float(filled.max()) <= 1.0


# ----- contrastive divergence -------------------------------------------------------------------
def _toy(n: int = 512) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0))


def test_replay_buffer_is_a_checkpointed_buffer(tmp_path):
    model, x = _mlp(), _toy()
    objective = ContrastiveLangevin(n_steps=2, buffer_size=300)
    train(model, objective, x, TrainConfig(epochs=1, batch_size=128, progress=False), tmp_path)
    assert "buffer" in dict(objective.named_buffers())
    ckpt = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert isinstance(ckpt.objective, ContrastiveLangevin)
    torch.testing.assert_close(ckpt.objective.buffer, objective.buffer)
    assert ckpt.objective.buffer.shape == (300, 2)
    assert int(ckpt.objective.steps_done) == 4


def test_reinitialization_fraction():
    objective = ContrastiveLangevin(reinit_fraction=0.05)
    objective.setup(_mlp(), torch.rand(100, 2))  # noise box inside [-0.1, 1.1]^2
    far = torch.full((20_000, 2), 50.0)
    out = objective._reinitialize(far, torch.Generator().manual_seed(0))
    fraction = float((out[:, 0] < 2).double().mean())
    se = math.sqrt(0.05 * 0.95 / far.shape[0])
    assert abs(fraction - 0.05) < 5 * se


def test_independence_jumps_leave_the_target_invariant():
    # exp(-E) on the box [0, 1]^2 with E = 3 x_1: chains started from it stay distributed so
    objective = ContrastiveLangevin()
    objective.setup(_mlp(), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    objective.box_low, objective.box_high = torch.zeros(2), torch.ones(2)

    class Tilted(torch.nn.Module):
        def energy(self, y):
            return 3.0 * y[:, 0]

    g = torch.Generator().manual_seed(0)
    u = torch.rand(40_000, generator=g)
    # inverse CDF of the truncated exponential density 3 e^{-3 t} / (1 - e^{-3}) on [0, 1]
    start = torch.stack(
        [-torch.log1p(-u * (1 - math.exp(-3))) / 3, torch.rand(40_000, generator=g)], 1
    )
    x = start
    for _ in range(3):
        x = objective.jump(Tilted(), x, g)
    mean = (1 / 3) - math.exp(-3) / (1 - math.exp(-3))
    second = 2 / 9 - (1 + 2 / 3) * math.exp(-3) / (1 - math.exp(-3))
    sd = math.sqrt(second - mean**2)
    assert abs(float(x[:, 0].mean()) - mean) < 5 * sd / math.sqrt(x.shape[0])
    # and it mixes: a chain started at the heavy end moves
    assert float((x != start).any(1).double().mean()) > 0.2


def test_cd_gradient_is_positive_minus_negative_phase():
    model, x = _mlp(), _toy(64)
    objective = ContrastiveLangevin(n_steps=3, chains="noise", alpha=0.0)
    objective.setup(model, x)
    g = torch.Generator().manual_seed(3)
    loss, _ = objective.loss(model, x, g)
    got = torch.autograd.grad(loss, list(model.parameters()))
    x_neg = objective.negatives(model, 64, torch.Generator().manual_seed(3))
    want = torch.autograd.grad(
        model.energy(x).mean() - model.energy(x_neg).mean(), list(model.parameters())
    )
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("chains", ["buffer", "persistent", "noise"])
def test_cd_runs_in_every_chain_mode(chains):
    model, x = _mlp(), _toy(256)
    objective = ContrastiveLangevin(n_steps=2, chains=chains, buffer_size=100, n_chains=50)
    result = train(model, objective, x, TrainConfig(epochs=1, batch_size=64, progress=False))
    assert result.step == 4


def test_energy_explosion_is_reported_with_its_step(tmp_path):
    model, x = _mlp(), _toy(256)
    objective = ContrastiveLangevin(n_steps=2, alpha=0.0, energy_bound=3.0)
    config = TrainConfig(epochs=30, batch_size=64, lr=0.05, progress=False)
    with pytest.raises(TrainingDiverged) as caught:
        train(model, objective, x, config, tmp_path)
    error = caught.value
    assert error.step == int(objective.steps_done) + 1
    assert "energy" in error.quantity and f"step {error.step}" in str(error)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1] == {
        "kind": "diverged",
        "step": error.step,
        "quantity": error.quantity,
        "message": str(error),
    }


def test_remedies_restart_from_the_checkpoint_with_new_settings(tmp_path):
    from ebmlab.training import train_with_restarts

    model, x = _mlp(), _toy(64)  # one step per epoch: a checkpoint after every step
    objective = ContrastiveLangevin(n_steps=2, alpha=0.0, energy_bound=3.0)
    config = TrainConfig(epochs=100, batch_size=64, lr=0.05, progress=False, seed=0)
    try:  # the restart may or may not diverge again; what it changed is logged either way
        train_with_restarts(model, objective, x, config, tmp_path, max_restarts=1)
    except TrainingDiverged:
        pass
    log = json.loads((tmp_path / "restarts.json").read_text())
    assert len(log) == 1 and log[0]["attempt"] == 1
    assert log[0]["lr"] == pytest.approx(0.025) and log[0]["seed"] == 1000
    assert objective.n_steps == 4 and objective.alpha == pytest.approx(0.1)
    assert objective.config["n_steps"] == 4  # a checkpoint rebuilds the strengthened objective
    assert (tmp_path / "metrics-attempt0.jsonl").exists()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="chains"):
        ContrastiveLangevin(chains="nope")
    with pytest.raises(ValueError, match="reinit_fraction"):
        ContrastiveLangevin(reinit_fraction=1.5)
    with pytest.raises(ValueError, match="step_size"):
        ContrastiveLangevin(step_size=0.0)
    with pytest.raises(RuntimeError, match="setup"):
        ContrastiveLangevin().negatives(_mlp(), 4, torch.Generator())


# ----- the ebm recipe ---------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["cd", "sm", "ssm", "dsm", "ncsn", "nsm", "nce", "fce"])
def test_recipe_builds_every_objective(objective, tmp_path):
    from ebmlab.app.families.ebm import OBJECTIVES, build_model, build_objective
    from ebmlab.app.recipes import RECIPES, Context

    assert objective in OBJECTIVES
    options = {opt.name: opt.default for opt in RECIPES["ebm"].options}
    options.update(objective=objective, hidden=16, depth=1, buffer_size=50)
    ctx = Context(
        options=options,
        data_name="8gaussians",
        image_shape=None,
        generator=torch.Generator().manual_seed(0),
        out_dir=tmp_path,
        device=torch.device("cpu"),
    )
    x = _toy(128)
    torch.manual_seed(0)
    model, obj = build_model(2, ctx), build_objective(2, ctx)
    if objective == "fce":
        obj.flow_pretrain_steps = 2
    obj.setup(model, x)
    loss, _ = obj.loss(model, x[:32], torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss)
    # every weight learns (the output bias does not for score matching: E + c has the same score)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in weights)
    assert model.noise_conditional == (objective in ("ncsn", "nsm"))


@pytest.mark.slow
def test_noise_augmented_score_matching_weighs_the_rings():
    """The must-show for score matching on `rings`: KL <= 0.1 nats with the recipe's defaults
    (plain exact score matching stays above 0.14: it cannot weigh separated modes)."""
    from ebmlab.app.families.ebm import build_model, build_objective
    from ebmlab.app.recipes import RECIPES, Context
    from ebmlab.estimators.grid import grid_log_likelihood

    recipe = RECIPES["ebm"]
    options = {opt.name: opt.default for opt in recipe.options}
    options["objective"] = "nsm"
    ctx = Context(
        options, "rings", None, torch.Generator().manual_seed(17), Path("."), torch.device("cpu")
    )
    x_train, x_test = data.toy2d("rings", 20_000, 0), data.toy2d("rings", 5_000, 1)
    torch.manual_seed(0)
    model, objective = build_model(2, ctx), build_objective(2, ctx)
    config = TrainConfig(**{**recipe.train_defaults, "seed": 0, "progress": False})
    train(model, objective, x_train, config)
    assert grid_log_likelihood(model, "rings", x_test)["kl"] <= 0.1
