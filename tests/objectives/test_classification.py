"""The classifier's cross-entropy: its value and gradient against the closed form, finite
differences through the hidden layers, the minibatch error, and the row layout [x, e_y]."""

from __future__ import annotations

import pytest
import torch

from ebmlab.models import DBNClassifier
from ebmlab.objectives import CrossEntropyClassification
from ebmlab.objectives.classification import classifier_rows


def _case(layers: list[int], n: int = 6, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = DBNClassifier(layers, n_classes=k, init_std=0.7, seed=seed).double()
    x = torch.rand(n, layers[0], generator=g, dtype=torch.float64)
    y = torch.randint(k, (n,), generator=g)
    return model, x, y, classifier_rows(x, y, k)


def test_softmax_regression_gradient_is_the_closed_form():
    # no hidden layer: z = x V^T + b, L = mean_n [logsumexp(z_n) - z_{n, y_n}],
    # dL/dV = (1/N) (P - Y)^T X and dL/db = (1/N) sum_n (p_n - e_{y_n})
    model, x, y, rows = _case([3], n=5, k=4)
    objective = CrossEntropyClassification()
    loss, _ = objective.loss(model, rows, torch.Generator())
    loss.backward()
    z = x @ model.output.weight.detach().T + model.output.bias.detach()
    p = torch.softmax(z, -1)
    onehot = torch.nn.functional.one_hot(y, 4).double()
    expected_loss = (torch.logsumexp(z, -1) - z[torch.arange(5), y]).mean()
    torch.testing.assert_close(loss.detach(), expected_loss)
    torch.testing.assert_close(model.output.weight.grad, (p - onehot).T @ x / 5)
    torch.testing.assert_close(model.output.bias.grad, (p - onehot).mean(0))


def test_gradient_through_the_hidden_layers_matches_finite_differences():
    model, _, _, rows = _case([5, 4, 3], n=7, k=3, seed=1)
    objective = CrossEntropyClassification()
    loss, _ = objective.loss(model, rows, torch.Generator())
    loss.backward()
    eps = 1e-6
    for name, param in model.named_parameters():
        flat, grad = param.data.view(-1), param.grad.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 5)):
            saved = float(flat[i])
            flat[i] = saved + eps
            up = float(objective.loss(model, rows, torch.Generator())[0].detach())
            flat[i] = saved - eps
            down = float(objective.loss(model, rows, torch.Generator())[0].detach())
            flat[i] = saved
            assert grad[i].item() == pytest.approx((up - down) / (2 * eps), abs=1e-7), name


def test_the_minibatch_error_is_the_fraction_misclassified():
    model, x, y, rows = _case([5, 4], n=40, k=3)
    _, metrics = CrossEntropyClassification().loss(model, rows, torch.Generator())
    predicted = model(x).argmax(-1)
    assert metrics["minibatch_error"] == pytest.approx(float((predicted != y).double().mean()))
    assert 0 < metrics["minibatch_error"] < 1  # a random network gets some right and some wrong


def test_rows_and_setup_refuse_bad_layouts_and_labels():
    model, x, _, rows = _case([5, 4], n=8, k=3)
    objective = CrossEntropyClassification()
    objective.setup(model, rows)  # the right layout passes
    with pytest.raises(ValueError, match=r"5 \+ 3 = 8 columns"):
        objective.setup(model, rows[:, :-1])
    twice = rows.clone()
    twice[0, 5:] = 1.0
    with pytest.raises(ValueError, match="one-hot"):
        objective.setup(model, twice)
    with pytest.raises(ValueError, match=r"class labels in 0\.\.2"):
        classifier_rows(x, torch.full((8,), -1), 3)
    with pytest.raises(ValueError, match="expected class labels, got None"):
        classifier_rows(x, None, 3)
    with pytest.raises(TypeError, match="trains a DBNClassifier"):
        objective.setup(torch.nn.Linear(2, 2), rows)
