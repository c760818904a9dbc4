"""Greedy layer-wise training as stages: each layer on the one below, the DBN's, the deep
autoencoder's and the DBM's pretraining, and their arguments."""

from __future__ import annotations

import pytest
import torch

from ebmlab import data
from ebmlab.models.autoencoder import DeepAutoencoder, GaussianHiddenRBM
from ebmlab.models.dbm import DeepBoltzmannMachine
from ebmlab.models.dbn import DeepBeliefNet
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.objectives.autoencoder import ReconstructionObjective
from ebmlab.objectives.contrastive import ContrastiveDivergence
from ebmlab.objectives.dbm import VariationalPCD, copies_for_layer
from ebmlab.training import TrainConfig, run_stages
from ebmlab.training.greedy import (
    autoencoder_stages,
    dbm_stages,
    dbn_stages,
    fit_greedy,
    propagate_up,
)


def _digits(split: str = "train", binarize: str | None = "threshold") -> torch.Tensor:
    x, _ = data.load("digits", split, binarize=binarize)
    return x


def test_each_layer_trains_on_the_layer_below(tmp_path) -> None:
    """With 0 epochs the loop only runs ``setup``, which sets each RBM's visible biases to the
    logits of its training data's marginals: layer 2 must have seen layer 1's probabilities."""
    x = _digits()
    for propagate in ("probabilities", "samples"):
        dbn = DeepBeliefNet([64, 16, 8], seed=0)
        config = TrainConfig(epochs=0, progress=False, device="cpu")
        plan = dbn_stages(dbn, x, config, propagate=propagate, seed=3)
        run_stages(dbn, plan, tmp_path / propagate)
        generator = torch.Generator().manual_seed(3)
        h1 = propagate_up(dbn.rbms[0], x, propagate, generator)
        p = h1.mean(0).clamp(1e-3, 1 - 1e-3)
        torch.testing.assert_close(dbn.rbms[1].b.detach(), torch.log(p) - torch.log1p(-p))
        if propagate == "samples":
            assert ((h1 == 0) | (h1 == 1)).all()
        for layer in ("layer1", "layer2"):
            assert (tmp_path / propagate / "stages" / f"{layer}.safetensors").exists()
        assert (tmp_path / propagate / "checkpoint.safetensors").exists()  # the whole DBN


def test_greedy_training_improves_the_exact_likelihood() -> None:
    x, x_test = _digits(), _digits("test")
    dbn = DeepBeliefNet([64, 12, 16], seed=0)
    before = dbn.exact_log_prob(x_test).mean()
    config = TrainConfig(epochs=5, batch_size=20, lr=0.05, optimizer="sgd", progress=False)
    results = run_stages(dbn, dbn_stages(dbn, x, config, method="cd", seed=0), None)
    after = dbn.exact_log_prob(x_test).mean()
    assert len(results) == 2 and all(r is not None and r.epochs_done == 5 for r in results)
    assert after > before + 5.0  # about -44 nats (uniform) to about -30


def test_greedy_checks_its_arguments() -> None:
    x = _digits()[:50]
    dbn = DeepBeliefNet([64, 4, 3], seed=0)
    config = TrainConfig(epochs=0, progress=False)
    with pytest.raises(ValueError, match="objectives"):
        fit_greedy(dbn.rbms, x, config, [ContrastiveDivergence()])
    with pytest.raises(ValueError, match="configs"):
        fit_greedy(dbn.rbms, x, [config], [ContrastiveDivergence(), ContrastiveDivergence()])
    with pytest.raises(ValueError, match="propagate"):
        list(dbn_stages(dbn, x, config, propagate="means"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layers"):
        fit_greedy([], x, config, [])
    with pytest.raises(ValueError, match=r"x: .*\[0, 1\]"):
        list(dbn_stages(dbn, x * 2, config))


def test_autoencoder_pretraining_unrolls_the_trained_stack() -> None:
    x = _digits(binarize=None)[:200]
    model = DeepAutoencoder([64, 16, 2], seed=0)
    config = TrainConfig(epochs=0, progress=False)
    stages = list(
        _drain(autoencoder_stages(model, ReconstructionObjective(), x, config, 1, batch_size=50))
    )
    rbms = [s.module for s in stages[:-1]]
    assert [s.name for s in stages] == ["pretrain1", "pretrain2", "finetune"]
    assert isinstance(rbms[-1], GaussianHiddenRBM) and stages[-1].module is model
    for k, rbm in enumerate(rbms):
        torch.testing.assert_close(model.encoder[k].weight, rbm.W.T)
        torch.testing.assert_close(model.decoder[-1 - k].bias, rbm.b)


def _drain(plan):
    """Run a plan's stages without writing anything, yielding each stage after it trained."""
    from ebmlab.training import train

    for stage in plan:
        if stage.name != "finetune":
            train(stage.module, stage.objective, stage.data, stage.config)
        yield stage


def _fine_tuned_error(pretrain: bool, seed: int) -> float:
    x, x_test = _digits(binarize=None), _digits("test", binarize=None)
    model = DeepAutoencoder([64, 100, 50, 25, 2], seed=seed)
    config = TrainConfig(epochs=5, batch_size=20, lr=1e-3, seed=seed, progress=False)
    plan = autoencoder_stages(
        model, ReconstructionObjective(), x, config, 5 if pretrain else 0, batch_size=20, seed=seed
    )
    run_stages(model, plan, None)
    return float(model.reconstruction_error(x_test).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_pretraining_beats_random_initialisation_at_a_small_budget(seed: int) -> None:
    """Hinton & Salakhutdinov's point on digits (64-100-50-25-2, 5 pretraining epochs per RBM,
    5 fine-tuning epochs, Adam 1e-3): about 4.0 against 4.7 summed squared error (the random
    Glorot start is still near the mean image) for seeds 0..4; the margin is over 10 times the
    seed-to-seed spread."""
    assert _fine_tuned_error(True, seed) < _fine_tuned_error(False, seed) - 0.3


def test_dbm_composes_pretrained_rbms():
    assert copies_for_layer(0, 1) == (1, 1)
    assert [copies_for_layer(l, 3) for l in range(3)] == [(2, 1), (2, 2), (1, 2)]
    g = torch.Generator().manual_seed(7)
    rbms = [BernoulliRBM(5, 4, init_std=1.0, seed=1), BernoulliRBM(4, 3, init_std=1.0, seed=2)]
    with torch.no_grad():
        for rbm in rbms:
            rbm.b.normal_(generator=g)
            rbm.c.normal_(generator=g)
    dbm = DeepBoltzmannMachine([5, 4, 3])
    dbm.init_from_rbms(rbms)
    assert torch.equal(dbm.weights[0], rbms[0].W) and torch.equal(dbm.weights[1], rbms[1].W)
    assert torch.equal(dbm.biases[0], rbms[0].b) and torch.equal(dbm.biases[2], rbms[1].c)
    torch.testing.assert_close(dbm.biases[1], (rbms[0].c + rbms[1].b) / 2)
    with pytest.raises(ValueError, match="rbms"):
        dbm.init_from_rbms(rbms[:1])


def test_dbm_pretraining_stages_feed_the_joint_stage():
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(40, 5, generator=g) < 0.5).float()
    dbm = DeepBoltzmannMachine([5, 4, 3])
    pretrain = TrainConfig(epochs=2, batch_size=10, lr=0.05, optimizer="sgd", progress=False)
    joint = TrainConfig(epochs=0, progress=False)
    stages = []
    for stage in dbm_stages(dbm, VariationalPCD(n_chains=10), x, joint, pretrain, seed=3):
        stages.append(stage)
        if stage.name.startswith("pretrain"):
            run_stages(None, [stage], None)
    assert [s.name for s in stages] == ["pretrain1", "pretrain2", "train"]
    assert stages[-1].module is dbm
    assert torch.equal(dbm.weights[1], stages[1].module.W)
    assert not torch.equal(stages[0].module.W, BernoulliRBM(5, 4, init_std=0.01, seed=3).W)
