"""DeepAutoencoder and its linear-code RBM: closed forms, enumeration and quadrature, unrolling,
pretraining vs random initialisation, resume, the ``autoencoder`` recipe, save/load, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

import ebmlab
from ebmlab import data, estimators
from ebmlab.app.families.deep import pca_reconstruction
from ebmlab.models.autoencoder import DeepAutoencoder, GaussianHiddenRBM
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.objectives.autoencoder import GaussianHiddenCD, ReconstructionObjective


def random_grbm(d: int = 4, h: int = 2, seed: int = 0, scale: float = 0.7) -> GaussianHiddenRBM:
    rbm = GaussianHiddenRBM(d, h, seed=seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in rbm.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return rbm


def digits(split: str = "train") -> torch.Tensor:
    x, _ = data.load("digits", split)
    return x


# ----- the Gaussian-hidden RBM -------------------------------------------------------------------
def test_free_energy_matches_quadrature() -> None:
    """-F(v) = log of the integral of exp(-E(v, h)) over h in R^2, on a fine grid."""
    rbm = random_grbm(d=3, h=2)
    vs = estimators.enumerate_states(3)
    grid = torch.linspace(-12.0, 12.0, 301, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    h = torch.cartesian_prod(grid, grid)  # (301^2, 2)
    for v in vs:
        neg_e = -rbm.energy(v.expand(h.shape[0], -1), h)
        log_integral = torch.logsumexp(neg_e, 0) + 2 * math.log(step)
        torch.testing.assert_close(-rbm.free_energy(v[None])[0], log_integral)


def test_free_energy_hidden_and_visible_conditional_match_enumeration() -> None:
    rbm = random_grbm(d=4, h=2, seed=1)
    vs = estimators.enumerate_states(4)
    h = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    neg_e = torch.stack([-rbm.energy(vs, row.expand(vs.shape[0], -1)) for row in h])  # (5, 16)
    torch.testing.assert_close(rbm.free_energy_hidden(h), -torch.logsumexp(neg_e, 1))
    torch.testing.assert_close(rbm.p_v_given_h(h), torch.softmax(neg_e, 1) @ vs)


def test_hidden_conditional_is_the_stated_gaussian() -> None:
    rbm = random_grbm(d=4, h=2, seed=2)
    v = estimators.enumerate_states(4)[[3, 9]]
    g = torch.Generator().manual_seed(1)
    n = 20000
    draws = torch.stack([rbm.sample_h(v, g) for _ in range(n)])  # (n, 2, 2)
    mean = rbm.mean_h_given_v(v)
    se = 1.0 / math.sqrt(n)  # unit variance
    assert ((draws.mean(0) - mean).abs() < 5 * se).all()
    var_se = math.sqrt(2.0 / n)  # sd of a sample variance of N(., 1)
    assert ((draws.var(0) - 1.0).abs() < 5 * var_se).all()
    torch.testing.assert_close(mean, rbm.c + v @ rbm.W)


def test_cd_gradient_is_the_contrastive_statistic() -> None:
    """d/dW [mean F(v0) - mean F(v1)] = <v1 a1^T> - <v0 a0^T> with a = c + W^T v, for the same
    noise (Hinton & Salakhutdinov's rbmhidlinear.m)."""
    rbm = random_grbm(d=5, h=3, seed=3)
    v0 = torch.rand(7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    objective = GaussianHiddenCD()
    loss, metrics = objective.loss(rbm, v0, torch.Generator().manual_seed(4))
    loss.backward()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        a0 = rbm.c + v0 @ rbm.W
        h = a0 + torch.randn(a0.shape, generator=g, dtype=torch.float64)
        v1 = torch.sigmoid(rbm.b + h @ rbm.W.T)
        a1 = rbm.c + v1 @ rbm.W
    n = v0.shape[0]
    torch.testing.assert_close(rbm.W.grad, (v1.T @ a1 - v0.T @ a0) / n)
    torch.testing.assert_close(rbm.b.grad, (v1 - v0).mean(0))
    torch.testing.assert_close(rbm.c.grad, (a1 - a0).mean(0))
    assert metrics["reconstruction_error"] == pytest.approx(float((v1 - v0).square().sum(1).mean()))


# ----- the autoencoder ---------------------------------------------------------------------------
def trained_like_stack(sizes: list[int], seed: int = 0) -> list[torch.nn.Module]:
    model = DeepAutoencoder(sizes)
    stack = model.rbm_stack(seed=seed)
    g = torch.Generator().manual_seed(seed + 5)
    with torch.no_grad():
        for rbm in stack:
            for p in rbm.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    return stack


def test_unrolled_network_is_the_rbm_stack() -> None:
    sizes = [6, 5, 4, 2]
    stack = trained_like_stack(sizes)
    assert [type(r) for r in stack] == [BernoulliRBM, BernoulliRBM, GaussianHiddenRBM]
    model = DeepAutoencoder(sizes, seed=1)
    model.init_from_rbms(stack)
    x = torch.rand(8, 6, generator=torch.Generator().manual_seed(0))
    up = stack[1].p_h_given_v(stack[0].p_h_given_v(x))
    codes = stack[2].mean_h_given_v(up)
    torch.testing.assert_close(model.encode(x), codes)
    down = stack[0].p_v_given_h(stack[1].p_v_given_h(stack[2].p_v_given_h(codes)))
    torch.testing.assert_close(model(x), down)


def test_logistic_code_and_closed_form_scores() -> None:
    model = DeepAutoencoder([6, 4, 3], linear_code=False, seed=2)
    x = torch.rand(5, 6, generator=torch.Generator().manual_seed(1))
    codes = model.encode(x)
    assert ((codes > 0) & (codes < 1)).all()
    r = model(x)
    torch.testing.assert_close(model.squared_error(x), ((r - x) ** 2).sum(1))
    ce = -(x * r.log() + (1 - x) * (1 - r).log()).sum(1)
    torch.testing.assert_close(model.cross_entropy(x), ce)
    torch.testing.assert_close(model.energy(x), model.squared_error(x))
    torch.testing.assert_close(model.reconstruction_error(x, batch_size=2), model.squared_error(x))


def test_glorot_initialisation_scale() -> None:
    model = DeepAutoencoder([400, 300], seed=0)
    std = float(model.encoder[0].weight.detach().std())
    assert std == pytest.approx(math.sqrt(2.0 / 700), rel=0.02)  # 120,000 weights: se 0.2%
    assert float(
        DeepAutoencoder([400, 300], init_std=0.01, seed=0).encoder[0].weight.detach().std()
    ) == (pytest.approx(0.01, rel=0.02))
    torch.testing.assert_close(  # seeded: the same weights twice
        DeepAutoencoder([5, 3], seed=4).decoder[0].weight,
        DeepAutoencoder([5, 3], seed=4).decoder[0].weight,
    )


def test_squared_error_loss_and_objective_checks() -> None:
    x = digits()[:20]
    model = DeepAutoencoder([64, 8, 2], seed=0)
    g = torch.Generator().manual_seed(0)
    loss, _ = ReconstructionObjective(loss="squared_error").loss(model, x, g)
    torch.testing.assert_close(loss, model.squared_error(x).mean())
    loss, metrics = ReconstructionObjective().loss(model, x, g)
    torch.testing.assert_close(loss, model.cross_entropy(x).mean())
    expected = float(model.reconstruction_error(x).mean())
    assert metrics["squared_error"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="loss"):
        ReconstructionObjective(loss="l1")
    with pytest.raises(TypeError, match="model: ReconstructionObjective trains a DeepAutoencoder"):
        ReconstructionObjective().setup(BernoulliRBM(64, 3), x)
    with pytest.raises(TypeError, match="model: GaussianHiddenCD trains a GaussianHiddenRBM"):
        GaussianHiddenCD().setup(BernoulliRBM(64, 3), x)
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        GaussianHiddenCD(k=0)


# ----- PCA reference -----------------------------------------------------------------------------
def test_pca_reconstruction_closed_forms() -> None:
    x = digits()[:300].double()
    torch.testing.assert_close(pca_reconstruction(x, x, 64), x)
    k = 5
    error = (pca_reconstruction(x, x, k) - x).square().sum(1).mean()
    centred = x - x.mean(0)
    eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / (len(x) - 1))
    expected = eigenvalues[:-k].sum() * (len(x) - 1) / len(x)  # discarded variance
    torch.testing.assert_close(error, expected)


# ----- save / load, bad input --------------------------------------------------------------------
@pytest.mark.parametrize(
    "model",
    [DeepAutoencoder([6, 4, 2], linear_code=False, seed=3), GaussianHiddenRBM(5, 2, seed=1)],
)
def test_save_load_round_trip(model, tmp_path) -> None:
    path = ebmlab.save(model, tmp_path / "m.safetensors")
    loaded = ebmlab.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bad_input_is_named() -> None:
    model = DeepAutoencoder([6, 4, 2], seed=0)
    with pytest.raises(ValueError, match=r"x: logistic units model values in \[0, 1\]"):
        model.reconstruction_error(torch.full((2, 6), 2.0))
    with pytest.raises(ValueError, match="x: expected 6 features"):
        model.transform(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="layer_sizes"):
        DeepAutoencoder([6])
    with pytest.raises(ValueError, match="init_std"):
        DeepAutoencoder([6, 2], init_std=-1.0)
    with pytest.raises(ValueError, match="rbms: expected 2 RBMs"):
        model.init_from_rbms([BernoulliRBM(6, 4)])
    with pytest.raises(ValueError, match=r"rbms\[1\]: expected weights of shape \(4, 2\)"):
        model.init_from_rbms([BernoulliRBM(6, 4), GaussianHiddenRBM(4, 3)])
    with pytest.raises(TypeError, match="GaussianHiddenRBM on top"):
        model.init_from_rbms([BernoulliRBM(6, 4), BernoulliRBM(4, 2)])
    with pytest.raises(ValueError, match="v: logistic units"):
        GaussianHiddenRBM(3, 2).transform(torch.full((1, 3), -0.5))
    with pytest.raises(ValueError, match="n_hidden: expected a positive integer, got 0"):
        GaussianHiddenRBM(3, 0)


# ----- the recipe --------------------------------------------------------------------------------
def test_recipe_through_the_cli(tmp_path) -> None:
    import ebmlab.app.families.deep  # noqa: F401  (registers the recipes)
    from ebmlab.app.cli import main

    out = tmp_path / "run"
    args = ["--layers", "16,2", "--pretrain-epochs", "1", "--epochs", "1", "--no-progress"]
    main(["train", "autoencoder", "--data", "digits", "--out", str(out), *args])
    assert (out / "reconstructions.png").exists() and (out / "codes.png").exists()
    main(["eval", str(out), "--json"])
    metrics = json.loads((out / "eval.json").read_text())
    assert metrics["log_likelihood_method"] == "none"
    assert "test_log_likelihood" not in metrics
    assert 0 < metrics["test_reconstruction_error"] < 64
    assert metrics["pca2_reconstruction_error"] > 0
