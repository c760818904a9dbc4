"""What the loop refuses and what a restored run keeps: bad data named as such, runaway losses
stopped, and every tensor of a checkpoint restored as saved (the objective's ``setup`` runs
only for a new run)."""

from __future__ import annotations

import pytest
import torch

from ebmlab import data, io
from ebmlab.models import BernoulliRBM, DeepBoltzmannMachine, DiagonalGaussian, MLPEnergy
from ebmlab.models.gan import GAN
from ebmlab.objectives import (
    ContrastiveDivergence,
    ContrastiveLangevin,
    GANObjective,
    Objective,
    VariationalPCD,
)
from ebmlab.training import TrainConfig, TrainingDiverged, train, train_with_restarts


def _binary(n=120, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) < 0.4).float()


def _config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 20, "lr": 0.05, "progress": False, **kw})


# ----- data ---------------------------------------------------------------------------------------
def test_float64_and_integer_data_are_converted_to_the_models_dtype():
    x = _binary()
    for given in (x.double(), x.long(), x.bool()):
        model = BernoulliRBM(8, 4, seed=0)
        train(model, ContrastiveDivergence(k=1), given, _config(seed=1))
        reference = BernoulliRBM(8, 4, seed=0)
        train(reference, ContrastiveDivergence(k=1), x, _config(seed=1))
        assert torch.equal(model.W, reference.W)


def test_data_computed_by_a_module_trains_on_its_values_not_its_graph():
    # e.g. the hidden probabilities of a trained layer, computed with autograd on
    below = BernoulliRBM(8, 6, seed=2)
    x = below.p_h_given_v(_binary())
    assert x.requires_grad
    model = BernoulliRBM(6, 4, seed=0)
    train(model, ContrastiveDivergence(k=1, binary_data=False), x, _config(seed=1))
    reference = BernoulliRBM(6, 4, seed=0)
    train(reference, ContrastiveDivergence(k=1, binary_data=False), x.detach(), _config(seed=1))
    assert torch.equal(model.W, reference.W)
    assert below.W.grad is None


def test_nan_in_the_data_is_named_as_bad_data_not_divergence():
    x = torch.randn(64, 2)
    x[5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x_train: 1 entries are NaN or infinite .*\(5, 1\)"):
        train(MLPEnergy(2, hidden=8, depth=1), ContrastiveLangevin(n_steps=2), x, _config())


# ----- runaway losses -----------------------------------------------------------------------------
class Runaway(Objective):
    """A finite loss that grows past any healthy value."""

    def loss(self, model, batch, generator):
        return model.log_prob(batch).sum() * 0 + 1e12, {}


def test_a_finite_but_runaway_loss_stops_the_run():
    with pytest.raises(TrainingDiverged, match="beyond the bound 1e\\+08 of Runaway"):
        train(DiagonalGaussian(2), Runaway(), torch.randn(40, 2), _config())


def test_a_gan_at_an_absurd_learning_rate_is_stopped_not_finished():
    x = data.toy2d("8gaussians", 512, seed=0)
    gan = GAN(2, latent_dim=2, hidden=16, depth=1, output="identity")
    objective = GANObjective()
    config = _config(epochs=5, batch_size=64, lr=1e4, optimizer="adam", seed=0)
    with pytest.raises(TrainingDiverged, match="loss"):
        train(gan, objective, x, config)


# ----- restored runs keep what they saved ---------------------------------------------------------
def _saved_tensors(path):
    _, tensors = io.read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "objective."))}


def _live_tensors(model, objective):
    live = {f"model.{k}": v for k, v in model.state_dict().items()}
    live.update({f"objective.{k}": v for k, v in objective.state_dict().items()})
    return live


def _rbm():
    return BernoulliRBM(8, 5, seed=0), ContrastiveDivergence(method="pcd", k=1, n_chains=10)


def _dbm():
    return DeepBoltzmannMachine([8, 5, 3], seed=0), VariationalPCD(n_chains=10)


def _ebm():
    return MLPEnergy(8, hidden=8, depth=1), ContrastiveLangevin(n_steps=2, buffer_size=50)


@pytest.mark.parametrize("build", [_rbm, _dbm, _ebm], ids=["rbm-pcd-centered", "dbm", "ebm"])
def test_a_restored_run_keeps_every_tensor_it_saved(build, tmp_path):
    x = _binary()
    model, objective = build()
    train(model, objective, x, _config(seed=2), tmp_path)
    saved = _saved_tensors(tmp_path / "checkpoint.safetensors")
    assert any(k.startswith("objective.") for k in saved)  # chains, offsets or buffer
    fresh_model, fresh_objective = build()
    # epochs already done: restore and save again without a step; setup must not run
    train(fresh_model, fresh_objective, x, _config(seed=2), tmp_path, resume=True)
    live = _live_tensors(fresh_model, fresh_objective)
    for name, tensor in saved.items():
        assert torch.equal(live[name], tensor), f"{name} changed on restore"


def test_a_restart_starts_from_exactly_the_last_good_checkpoint(tmp_path, monkeypatch):
    """The state the restarted attempt begins with is the checkpoint's, tensor for tensor."""
    from ebmlab.training import loop

    x = _binary()
    model, objective = _rbm()
    seen = {}
    step_once = loop._train_step

    def diverge_once(run, batch, epoch, b):
        if run.state.step == 6 and not run.meta.get("restarts"):
            raise TrainingDiverged("injected", run.state.step + 1, "loss")
        if run.meta.get("restarts") and "start" not in seen:
            seen["start"] = {
                k: v.clone() for k, v in _live_tensors(run.model, run.objective).items()
            }
            seen["saved"] = _saved_tensors(tmp_path / "checkpoint.safetensors")
        return step_once(run, batch, epoch, b)

    monkeypatch.setattr(loop, "_train_step", diverge_once)
    train_with_restarts(model, objective, x, _config(epochs=2, seed=2), tmp_path, max_restarts=1)
    assert seen, "the run did not restart"
    for name, tensor in seen["saved"].items():
        assert torch.equal(seen["start"][name], tensor), f"{name} differs from the checkpoint"
