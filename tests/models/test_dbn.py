"""DeepBeliefNet: exact enumeration of tiny DBNs, the variational (Salakhutdinov & Murray 2008) and
importance-weighted bounds, sampling, greedy training, the ``dbn`` recipe, save/load, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

import ebmlab
from ebmlab import data, estimators
from ebmlab.models.dbn import (
    DeepBeliefNet,
    bernoulli_entropy,
    bernoulli_log_prob,
)


def all_binary(n: int) -> torch.Tensor:
    return estimators.enumerate_states(n, dtype=torch.float64)


def random_dbn(sizes: list[int], seed: int = 0, scale: float = 1.0) -> DeepBeliefNet:
    dbn = DeepBeliefNet(sizes, seed=seed).double()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in dbn.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return dbn


def joint_log_prob_table(dbn: DeepBeliefNet, v: torch.Tensor) -> torch.Tensor:
    """log p(v, h^1, ..., h^L) for every hidden configuration, from the definition
    p(h^{L-1}, h^L) prod p(h^{k-1} | h^k) with the top RBM's joint energy: (batch, n_configs)."""
    sizes = dbn.layer_sizes[1:]
    configs = all_binary(sum(sizes))
    layers = list(configs.split(sizes, dim=1))
    top = dbn.top
    top_pairs = all_binary(top.n_visible + top.n_hidden)
    log_z = torch.logsumexp(-top.energy(*top_pairs.split([top.n_visible, top.n_hidden], 1)), 0)
    batch = (v.shape[0], configs.shape[0], -1)
    below = [v[:, None, :].expand(batch), *(h.expand(batch) for h in layers[:-1])]
    log_p = (-top.energy(layers[-2], layers[-1]) - log_z).expand(v.shape[0], -1)
    for k in range(1, dbn.n_layers):  # directed layers: p(h^{k-1} | h^k)
        logits = dbn.rbms[k - 1].visible_logits(layers[k - 1]).expand(batch)
        log_p = log_p + bernoulli_log_prob(logits, below[k - 1])
    return log_p


def enumerated_bound(dbn: DeepBeliefNet, v: torch.Tensor) -> torch.Tensor:
    """E_q[log p(v, h^1..h^{L-1})] + H(q), summing over every h^1..h^{L-1} (top units summed out
    by the top RBM's free energy), with q(h^1 | v) q(h^2 | h^1) ...: exact, (batch,)."""
    sizes = dbn.layer_sizes[1:-1]
    configs = all_binary(sum(sizes))
    layers = list(configs.split(sizes, dim=1))
    log_z = estimators.exact_log_z(dbn.top)
    batch = (v.shape[0], configs.shape[0], -1)
    below = [v[:, None, :].expand(batch), *(h.expand(batch) for h in layers[:-1])]
    log_p = (-dbn.top.free_energy(layers[-1]) - log_z).expand(v.shape[0], -1)
    log_q = torch.zeros_like(log_p)
    for k in range(1, dbn.n_layers):
        p_logits = dbn.rbms[k - 1].visible_logits(layers[k - 1]).expand(batch)
        log_p = log_p + bernoulli_log_prob(p_logits, below[k - 1])
        flat_below = below[k - 1].reshape(-1, below[k - 1].shape[-1])
        q_logits = dbn.rbms[k - 1].hidden_logits(flat_below).view(batch)
        log_q = log_q + bernoulli_log_prob(q_logits, layers[k - 1].expand(batch))
    return (log_q.exp() * (log_p - log_q)).sum(1)


def repeated(dbn: DeepBeliefNet, v: torch.Tensor, repeats: int, **kwargs) -> torch.Tensor:
    """Independent estimates, (repeats, batch)."""
    out = dbn.lower_bound(v.repeat(repeats, 1), **kwargs)
    return out.view(repeats, v.shape[0])


# ----- helpers -----------------------------------------------------------------------------------
def test_bernoulli_helpers_closed_forms() -> None:
    logits = torch.tensor([[-2.0, 0.0, 3.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(bernoulli_log_prob(logits, x), expected)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(bernoulli_entropy(logits).sum(-1), entropy)


# ----- exact log-likelihood ----------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[5, 3, 2], [4, 3, 3, 2], [3, 2, 2, 2, 2]])
def test_exact_log_prob_matches_joint_enumeration(sizes: list[int]) -> None:
    dbn = random_dbn(sizes, seed=len(sizes))
    vs = all_binary(sizes[0])
    expected = torch.logsumexp(joint_log_prob_table(dbn, vs), 1)
    log_p = dbn.exact_log_prob(vs)
    torch.testing.assert_close(log_p, expected)
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros((), dtype=torch.float64))


def test_single_rbm_dbn_is_the_rbm() -> None:
    dbn = random_dbn([5, 3], seed=2)
    vs = all_binary(5)
    expected = -dbn.top.free_energy(vs) - estimators.exact_log_z(dbn.top)
    torch.testing.assert_close(dbn.exact_log_prob(vs), expected)
    torch.testing.assert_close(dbn.lower_bound(vs, estimators.exact_log_z(dbn.top)), expected)


def test_exact_log_prob_in_float32_model() -> None:
    dbn = random_dbn([5, 3, 2], seed=4)
    vs = all_binary(5)
    expected = dbn.exact_log_prob(vs)
    dbn32 = dbn.float()
    torch.testing.assert_close(dbn32.exact_log_prob(vs.float()), expected)
    assert dbn32.dtype == torch.float32  # the model itself is left in float32


# ----- the bounds --------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[6, 4, 3], [5, 4, 3, 3]])
def test_variational_bound_is_below_log_prob_and_mc_estimate_converges(sizes: list[int]) -> None:
    dbn = random_dbn(sizes, seed=7, scale=0.8)
    vs = all_binary(sizes[0])[::5]
    exact = dbn.exact_log_prob(vs)
    bound = enumerated_bound(dbn, vs)
    assert (bound <= exact + 1e-10).all()
    assert (exact - bound).max() > 0.01  # q is not the posterior here: the gap is real
    log_z = estimators.exact_log_z(dbn.top)
    g = torch.Generator().manual_seed(0)
    estimates = repeated(dbn, vs, 400, log_z=log_z, n_samples=5, generator=g)
    mean, se = estimates.mean(0), estimates.std(0) / math.sqrt(estimates.shape[0])
    assert ((mean - bound).abs() <= 5 * se + 1e-9).all(), (mean - bound) / se


def test_importance_weights_are_unbiased_and_bound_tightens() -> None:
    dbn = random_dbn([6, 4, 3], seed=8, scale=0.8)
    vs = all_binary(6)[::9]
    exact = dbn.exact_log_prob(vs)
    log_z = estimators.exact_log_z(dbn.top)
    g = torch.Generator().manual_seed(1)
    one = repeated(dbn, vs, 4000, log_z=log_z, n_samples=1, generator=g, method="importance")
    ratio = torch.exp(one - exact)  # E[p(v, h) / q(h | v)] = p(v)
    se = ratio.std(0) / math.sqrt(ratio.shape[0])
    assert ((ratio.mean(0) - 1).abs() <= 5 * se).all()
    bound = enumerated_bound(dbn, vs)
    many = repeated(dbn, vs, 200, log_z=log_z, n_samples=50, generator=g, method="importance")
    mean, se = many.mean(0), many.std(0) / math.sqrt(many.shape[0])
    assert (mean <= exact + 5 * se).all()
    assert (mean > bound).all()  # IW-50 is tighter than the variational bound


def test_bound_is_exact_with_a_complementary_prior() -> None:
    """Top RBM = the first RBM transposed: the DBN is the first RBM, q(h^1 | v) is the exact
    posterior, and every importance weight equals p(v) (Hinton et al. 2006, section 3)."""
    dbn = random_dbn([5, 3, 5], seed=9)
    first, top = dbn.rbms
    with torch.no_grad():
        top.W.copy_(first.W.T)
        top.b.copy_(first.c)
        top.c.copy_(first.b)
    vs = all_binary(5)
    rbm_log_p = -first.free_energy(vs) - estimators.exact_log_z(first)
    torch.testing.assert_close(dbn.exact_log_prob(vs), rbm_log_p)
    torch.testing.assert_close(enumerated_bound(dbn, vs), rbm_log_p)
    log_z = estimators.exact_log_z(top)
    g = torch.Generator().manual_seed(2)
    for batch_size in (None, 7):  # chunked evaluation gives the same values
        iw = dbn.lower_bound(
            vs, log_z, n_samples=3, generator=g, method="importance", batch_size=batch_size
        )
        torch.testing.assert_close(iw, rbm_log_p)


def test_top_log_z_ais_agrees_with_enumeration() -> None:
    dbn = random_dbn([6, 4, 3], seed=11, scale=0.5)
    x = dbn.sample(200, n_steps=20, generator=torch.Generator().manual_seed(4)).round()
    result = dbn.top_log_z(x, n_betas=1000, n_runs=100, seed=0)
    assert abs(result.log_z - estimators.exact_log_z(dbn.top)) < 5 * result.log_z_se + 0.02


# ----- sampling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[4, 3, 3], [4, 3, 2, 3]])
def test_samples_follow_the_exact_distribution(sizes: list[int]) -> None:
    dbn = random_dbn(sizes, seed=12)
    g = torch.Generator().manual_seed(5)
    n = 20000
    p = dbn.sample(n, n_steps=40, generator=g)
    v = (torch.rand(p.shape, generator=g, dtype=p.dtype) < p).to(torch.float64)
    index = (v * 2 ** torch.arange(sizes[0], dtype=torch.float64)).sum(1).long()
    observed = torch.bincount(index, minlength=2 ** sizes[0]).double()
    expected = dbn.exact_log_prob(all_binary(sizes[0])).exp() * n
    statistic = float(((observed - expected) ** 2 / expected).sum())
    assert statistic < stats.chi2.ppf(1 - 1e-4, df=2 ** sizes[0] - 1)


def test_sample_from_data_and_reconstruct_shapes() -> None:
    dbn = random_dbn([6, 4, 3], seed=13)
    g = torch.Generator().manual_seed(6)
    v0 = all_binary(6)[:5]
    samples = dbn.sample(5, n_steps=3, generator=g, v0=v0)
    assert samples.shape == (5, 6) and ((samples >= 0) & (samples <= 1)).all()
    recon = dbn.reconstruct(v0)
    expected = dbn.rbms[0].p_v_given_h(dbn.rbms[1].p_v_given_h(dbn.transform(v0)))
    torch.testing.assert_close(recon, expected)
    assert [h.shape[1] for h in dbn.up_pass(v0)] == [4, 3]


def _digits(split: str = "train") -> torch.Tensor:
    x, _ = data.load("digits", split, binarize="threshold")
    return x


# ----- save / load, bad input --------------------------------------------------------------------
def test_save_load_round_trip(tmp_path) -> None:
    dbn = random_dbn([6, 4, 3], seed=14).float()
    path = ebmlab.save(dbn, tmp_path / "dbn.safetensors")
    loaded = ebmlab.load(path)
    assert type(loaded) is DeepBeliefNet and loaded.config == dbn.config
    for key, value in dbn.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    vs = all_binary(6)
    torch.testing.assert_close(loaded.exact_log_prob(vs), dbn.exact_log_prob(vs))


@pytest.mark.parametrize(
    "sizes", [[784], [], "784,500", [10, 0], [10, 2.5], [10, True], None, [[10], 3]]
)
def test_bad_layer_sizes(sizes) -> None:
    with pytest.raises(ValueError, match="layer_sizes"):
        DeepBeliefNet(sizes)


def test_bad_input_is_named() -> None:
    dbn = random_dbn([6, 4, 3], seed=15)
    v = all_binary(6)[:3]
    with pytest.raises(ValueError, match="v: a Bernoulli model needs binary"):
        dbn.lower_bound(v * 0.5)
    with pytest.raises(ValueError, match="v: expected 6 features"):
        dbn.lower_bound(v[:, :5])
    with pytest.raises(ValueError, match="n_samples"):
        dbn.lower_bound(v, n_samples=0)
    with pytest.raises(ValueError, match="method"):
        dbn.lower_bound(v, method="elbo")
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        dbn.sample(0)
    with pytest.raises(ValueError, match="max_units"):
        random_dbn([6, 30, 3]).exact_log_prob(v)
    bad = torch.zeros(1, 6)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="v: contains 1 NaN"):
        dbn.exact_log_prob(bad)


# ----- the recipe --------------------------------------------------------------------------------
def test_parse_layers() -> None:
    from ebmlab.app.families.deep import parse_layers

    assert parse_layers("500, 2000") == [500, 2000]
    for bad in ("", "500,x", "0,3", "-1"):
        with pytest.raises(ValueError, match="--layers"):
            parse_layers(bad)


def test_recipe_trains_evaluates_and_draws_through_the_cli(tmp_path) -> None:
    import ebmlab.app.families.deep  # noqa: F401  (registers the recipes)
    from ebmlab.app.cli import main

    out = tmp_path / "run"
    args = ["--layers", "8,8", "--layer-epochs", "2", "--ais-betas", "200", "--ais-runs", "20"]
    main(["train", "dbn", "--data", "digits", "--out", str(out), "--no-progress", *args])
    assert (out / "stages" / "layer2.safetensors").exists()
    assert (out / "samples.png").exists() and (out / "reconstructions.png").exists()
    main(["eval", str(out), "--json", "--quick"])
    metrics = json.loads((out / "eval.json").read_text())
    assert metrics["log_likelihood_method"] == "exact"  # small enough to enumerate
    slack = 5 * metrics["test_log_likelihood_bound_se"]
    assert metrics["test_log_likelihood_bound"] <= metrics["test_log_likelihood"] + slack
    assert abs(metrics["top_log_z"] - metrics["top_log_z_exact"]) < 0.5
    assert math.isfinite(metrics["first_rbm_test_log_likelihood"])


def test_recipe_reports_the_ais_bound_for_large_layers(tmp_path) -> None:
    from ebmlab.app.families import deep
    from ebmlab.app.recipes import Context
    from ebmlab.training import TrainConfig, run_stages

    options = {opt.name: opt.default for opt in deep.DBN_OPTIONS}
    options.update(layers="20,8", layer_epochs=1, ais_runs=10, bound_samples=3)
    x, x_test = _digits()[:300], _digits("test")[:50]
    ctx = Context(
        options, "digits", (8, 8), torch.Generator().manual_seed(0), tmp_path, "cpu", True, x
    )
    model, objective = deep._build_dbn(x, ctx)
    assert objective is None
    config = TrainConfig(progress=False)
    run_stages(model, deep._stages_dbn(model, objective, ctx, config), None)
    metrics = deep._evaluate_dbn(model, x, x_test, ctx)
    assert metrics["log_likelihood_method"] == "ais-lower-bound"
    assert metrics["test_log_likelihood"] <= metrics["test_log_likelihood_iw3"] + 1.0
    assert metrics["ais_betas"] == 1000  # quick mode caps the schedule
