"""Flows: every transform inverts and has the right log-determinant (checked against the autograd
Jacobian); RealNVP's density integrates to one and agrees with its sampler. A new transform
joins the suite by one entry in TRANSFORMS."""

from __future__ import annotations

import math

import pytest
import torch

import ebmlab
from ebmlab.models.flows import (
    AffineCoupling,
    ComposedTransform,
    ElementwiseAffine,
    Permutation,
    RealNVP,
    Transform,
)


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Random parameters (couplings start as the identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


TRANSFORMS = {
    "elementwise-affine": lambda: ElementwiseAffine(3),
    "permutation": lambda: Permutation([2, 0, 1]),
    "coupling-even": lambda: AffineCoupling([1, 0, 1], hidden=16, depth=2),
    "coupling-odd-tanh": lambda: AffineCoupling([0, 1, 0], hidden=8, depth=1, activation="tanh"),
    "composed": lambda: ComposedTransform(
        [
            ElementwiseAffine(3),
            AffineCoupling([1, 0, 0]),
            Permutation([1, 2, 0]),
            AffineCoupling([0, 1, 1]),
        ]
    ),
    "realnvp-3d": lambda: RealNVP(3, n_layers=3, hidden=16).transform,
}


def _make(name: str) -> Transform:
    return _perturb(TRANSFORMS[name](), seed=len(name)).double()


def _points(n: int = 7, dim: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_inverse_undoes_forward(name):
    transform = _make(name)
    x = _points()
    y, ladj = transform(x)
    x_back, ladj_back = transform.inverse(y)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ladj_back, -ladj, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_log_det_matches_autograd_jacobian(name):
    transform = _make(name)
    x = _points()
    _, ladj = transform(x)
    for i in range(x.shape[0]):
        jacobian = torch.autograd.functional.jacobian(lambda row: transform(row[None])[0][0], x[i])
        expected = torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(ladj[i], expected, rtol=1e-9, atol=1e-9)
    y = transform(x)[0]
    _, ladj_inverse = transform.inverse(y)
    for i in range(y.shape[0]):
        jacobian = torch.autograd.functional.jacobian(
            lambda row: transform.inverse(row[None])[0][0], y[i]
        )
        torch.testing.assert_close(
            ladj_inverse[i], torch.linalg.slogdet(jacobian)[1], rtol=1e-9, atol=1e-9
        )


def _flow_2d(seed: int = 3) -> RealNVP:
    return _perturb(RealNVP(2, n_layers=4, hidden=16), seed, scale=0.2).double()


def test_realnvp_density_integrates_to_one():
    flow = _flow_2d()
    n, bound = 500, 10.0
    h = 2 * bound / n
    centers = -bound + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(centers, centers)
    with torch.no_grad():
        mass = torch.exp(torch.logsumexp(flow.log_prob(grid), 0)) * h * h
    # midpoint rule with cells of 0.04 on a smooth density: error well below 1e-3
    assert abs(float(mass) - 1.0) < 1e-3


def test_sample_and_log_prob_agree_with_log_prob():
    flow = _flow_2d()
    x, log_q = flow.sample_and_log_prob(50, torch.Generator().manual_seed(1))
    torch.testing.assert_close(log_q, flow.log_prob(x), rtol=1e-9, atol=1e-9)
    assert log_q.requires_grad  # reparameterized: differentiable in the flow's parameters
    torch.testing.assert_close(flow.energy(x), -flow.log_prob(x))


def test_samples_follow_the_elementwise_affine_layer():
    flow = RealNVP(2, n_layers=2, hidden=8).double()
    with torch.no_grad():
        flow.standardization.loc.copy_(torch.tensor([1.0, -2.0]))
        flow.standardization.log_scale.copy_(torch.log(torch.tensor([0.5, 3.0])))
    x = flow.sample(20_000, torch.Generator().manual_seed(0))
    # couplings are the identity at initialization: x = loc + scale z exactly in law
    n = x.shape[0]
    mean_se = torch.tensor([0.5, 3.0]) / math.sqrt(n)
    assert ((x.mean(0) - torch.tensor([1.0, -2.0])).abs() < 5 * mean_se).all()
    var_se = torch.tensor([0.25, 9.0]) * math.sqrt(2 / n)
    assert ((x.var(0) - torch.tensor([0.25, 9.0])).abs() < 5 * var_se).all()


def test_maximum_likelihood_fit_reaches_the_entropy():
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    chol = torch.linalg.cholesky(cov)
    x = torch.randn(4000, 2, generator=g) @ chol.T + torch.tensor([2.0, -1.0])
    torch.manual_seed(0)
    flow = RealNVP(2, n_layers=2, hidden=16)
    flow.standardize(x)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = -flow.log_prob(x).mean()
        loss.backward()
        optimizer.step()
    entropy = 0.5 * math.log(torch.linalg.det(2 * math.pi * math.e * cov).item())
    # a correlated Gaussian is within RealNVP's reach: the fitted NLL reaches its entropy
    # (within sampling noise ~ 1/sqrt(4000) and a little optimization slack)
    assert abs(float(loss.detach()) - entropy) < 0.05


def test_save_and_load_round_trip(tmp_path):
    flow = _flow_2d().float()
    path = ebmlab.save(flow, tmp_path / "flow.safetensors")
    loaded = ebmlab.load(path)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dim"):
        RealNVP(1)
    with pytest.raises(ValueError, match="mask"):
        AffineCoupling([1, 1])
    with pytest.raises(ValueError, match="order"):
        Permutation([0, 0, 1])
    with pytest.raises(ValueError, match="x"):
        RealNVP(2).log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="activation"):
        AffineCoupling([1, 0], activation="nope")
