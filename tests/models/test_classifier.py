"""The DBN classifier: its layers, the unrolling of a greedily trained stack into it, and the
stages of pretraining then fine-tuning (``ebmlab.training.greedy.classifier_stages``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ebmlab.models import BernoulliRBM, DBNClassifier
from ebmlab.models.classifier import check_labels
from ebmlab.objectives import CrossEntropyClassification
from ebmlab.training import TrainConfig, run_stages
from ebmlab.training.greedy import classifier_stages

CONFIG = TrainConfig(epochs=2, batch_size=20, lr=0.1, optimizer="sgd", seed=0, progress=False)


def _data(n: int = 120, d: int = 12, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % k
    prototypes = torch.rand(k, d, generator=g)
    x = (prototypes[y] + 0.2 * torch.rand(n, d, generator=g)).clamp(0, 1)
    return x, y


def test_forward_is_sigmoid_layers_then_the_output_logits():
    model = DBNClassifier([5, 4, 3], n_classes=2, seed=0)
    x = torch.rand(7, 5, generator=torch.Generator().manual_seed(1))
    h1 = torch.sigmoid(x @ model.hidden[0].weight.T + model.hidden[0].bias)
    h2 = torch.sigmoid(h1 @ model.hidden[1].weight.T + model.hidden[1].bias)
    logits = h2 @ model.output.weight.T + model.output.bias
    torch.testing.assert_close(model(x), logits)
    torch.testing.assert_close(model.log_probs(x).exp().sum(-1), torch.ones(7))
    assert torch.equal(model.predict(x), logits.argmax(-1))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    expected = -torch.log_softmax(logits, -1)[torch.arange(7), y]
    torch.testing.assert_close(model.cross_entropy(x, y), expected)
    assert model.error_rate(x, y) == pytest.approx(float((logits.argmax(-1) != y).float().mean()))


def test_the_same_seed_gives_the_same_network_and_the_init_is_glorot():
    a, b = DBNClassifier([50, 40], 10, seed=3), DBNClassifier([50, 40], 10, seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    std = float(a.hidden[0].weight.detach().std())
    assert std == pytest.approx((2 / (50 + 40)) ** 0.5, rel=0.1)  # 2000 draws: se of std ~1.6%
    assert not torch.equal(a.output.weight, DBNClassifier([50, 40], 10, seed=4).output.weight)


def test_unrolled_layers_compute_the_rbms_up_pass_right_after_pretraining():
    x, y = _data()
    model = DBNClassifier([12, 8, 6], n_classes=3, seed=0)
    initial = [layer.weight.detach().clone() for layer in model.hidden]
    plan = classifier_stages(
        model, CrossEntropyClassification(), x, y, CONFIG, pretrain_epochs=3, seed=5
    )
    rbms, names = [], []
    for stage in plan:
        if stage.name == "finetune":
            break
        assert isinstance(stage.module, BernoulliRBM)
        before = stage.module.W.detach().clone()
        run_stages(None, [stage], None)
        assert not torch.equal(stage.module.W, before)  # the RBM was trained
        rbms.append(stage.module)
        names.append(stage.name)
    else:
        pytest.fail("no fine-tuning stage")
    assert names == ["layer1", "layer2"]
    # the fine-tuning stage is yielded with the network unrolled, before it trains
    with torch.no_grad():
        h, expected = x, []
        for rbm in rbms:
            h = rbm.p_h_given_v(h)
            expected.append(h)
        for got, want in zip(model.hidden_activities(x), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for layer, rbm, start in zip(model.hidden, rbms, initial):
        assert torch.equal(layer.weight, rbm.W.T) and torch.equal(layer.bias, rbm.c)
        assert not torch.equal(layer.weight, start)


def test_without_pretraining_no_rbm_stage_runs_and_the_finetuning_stage_is_the_same():
    x, y = _data()
    stages = {}
    for epochs in (2, 0):
        model = DBNClassifier([12, 8, 6], n_classes=3, seed=0)
        plan = list(
            classifier_stages(
                model, CrossEntropyClassification(), x, y, CONFIG, pretrain_epochs=epochs
            )
        )
        stages[epochs] = plan
    assert [s.name for s in stages[2]] == ["layer1", "layer2", "finetune"]
    assert [s.name for s in stages[0]] == ["finetune"]
    pre, random = stages[2][-1], stages[0][-1]
    assert pre.config == random.config == CONFIG  # the same budget: epochs, lr, batch, seed
    assert torch.equal(pre.data, random.data)
    assert dataclasses.asdict(pre.config) == dataclasses.asdict(random.config)
    # the RBMs got their own settings, not the fine-tuning ones
    rbm_config = stages[2][0].config
    assert rbm_config.epochs == 2 and rbm_config.lr == 0.05 and rbm_config.momentum == 0.9


def test_the_output_layer_starts_the_same_with_or_without_pretraining():
    x, y = _data()
    outputs = []
    for epochs in (1, 0):
        model = DBNClassifier([12, 8], n_classes=3, seed=0)
        plan = classifier_stages(
            model, CrossEntropyClassification(), x, y, CONFIG, pretrain_epochs=epochs
        )
        for stage in plan:
            if stage.name != "finetune":
                run_stages(None, [stage], None)
        outputs.append(model.output.weight.detach().clone())
    assert torch.equal(outputs[0], outputs[1])


def test_bad_inputs_are_named():
    x, y = _data()
    model = DBNClassifier([12, 8], n_classes=3, seed=0)
    objective = CrossEntropyClassification()
    with pytest.raises(ValueError, match=r"class labels in 0\.\.2, found labels from 1 to 3"):
        list(classifier_stages(model, objective, x, y + 1, CONFIG, pretrain_epochs=0))
    with pytest.raises(ValueError, match="expected class labels, got None"):
        list(classifier_stages(model, objective, x, None, CONFIG, pretrain_epochs=0))
    with pytest.raises(ValueError, match=r"one class per example, shape \(120,\)"):
        list(classifier_stages(model, objective, x, y[:10], CONFIG, pretrain_epochs=0))
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        list(classifier_stages(model, objective, 2 * x + 1, y, CONFIG, pretrain_epochs=1))
    with pytest.raises(ValueError, match="expected 12 features"):
        list(classifier_stages(model, objective, x[:, :5], y, CONFIG, pretrain_epochs=0))
    with pytest.raises(ValueError, match="integer class labels"):
        check_labels(torch.tensor([0.5, 1.0]), 3)
    with pytest.raises(ValueError, match="no RBM to pretrain"):
        list(classifier_stages(DBNClassifier([12], 3), objective, x, y, CONFIG, pretrain_epochs=1))
    with pytest.raises(ValueError, match="expected 1 RBMs, got 2"):
        model.init_from_rbms([BernoulliRBM(12, 8), BernoulliRBM(8, 4)])
    with pytest.raises(ValueError, match=r"expected weights of shape \(12, 8\)"):
        model.init_from_rbms([BernoulliRBM(12, 5)])
    with pytest.raises(ValueError, match="n_classes"):
        DBNClassifier([12, 8], n_classes=1)
