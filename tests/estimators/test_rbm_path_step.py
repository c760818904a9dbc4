"""One step of the Bernoulli-RBM annealing path with its reused buffers: the increment equals
log f_beta(v) - log f_beta_prev(v) from the tempered free energies in float64, the state handed
in is never written, and the transition is the tempered Gibbs sweep (same draws, replayed from
the path's uniform stream)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from ebmlab.estimators.paths import BernoulliRBMPath
from ebmlab.models.rbm import BernoulliRBM
from ebmlab.samplers import UniformSource


def _path(device: str, d: int = 9, h: int = 6) -> tuple[BernoulliRBMPath, torch.Tensor]:
    rbm = BernoulliRBM(d, h, init_std=0.8, seed=0).to(device)
    with torch.no_grad():
        rbm.c.normal_(0, 0.5, generator=torch.Generator(device=device).manual_seed(1))
    data = (torch.rand(30, d, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    return BernoulliRBMPath(rbm, data=data.to(device)), data.to(device)


def _log_f(path: BernoulliRBMPath, v: torch.Tensor, beta: float) -> torch.Tensor:
    """(1 - beta) b_A.v + beta b.v + sum_j softplus(beta (c_j + v W_j)), float64."""
    v64, W, b, c = v.double(), path.W.double(), path.b.double(), path.c.double()
    hidden = F.softplus(beta * (v64 @ W + c)).sum(-1)
    return (1 - beta) * (v64 @ path.b_base) + beta * (v64 @ b) + hidden


@pytest.mark.parametrize("betas", [(0.0, 0.001), (0.5, 0.5001), (0.9999, 1.0), (0.2, 0.9)])
def test_the_increment_is_the_log_ratio_of_the_tempered_densities(device, betas):
    path, data = _path(device)
    beta_prev, beta = betas
    v = data[:7].clone()
    given = v.clone()
    for _ in range(3):  # reused buffers: the same answer every time
        increment, _ = path.step(v, beta_prev, beta, torch.Generator(device=device), False)
        assert increment.dtype == torch.float64
        want = _log_f(path, v, beta) - _log_f(path, v, beta_prev)
        torch.testing.assert_close(increment, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(v, given)


def test_the_transition_is_the_tempered_gibbs_sweep_and_leaves_its_input(device):
    path, data = _path(device)
    v = data[:7].clone()
    given = v.clone()
    beta = 0.6
    g = torch.Generator(device=device).manual_seed(4)
    replay = UniformSource(torch.Generator(device=device).manual_seed(4))
    states = []
    for _ in range(3):  # the two visible buffers alternate; each step reads the last state
        _, v_next = path.step(v, 0.5, beta, g, True)
        ph = torch.sigmoid(beta * (v @ path.W + path.c))
        h = replay.bernoulli(ph, torch.empty_like(ph))
        pv = torch.sigmoid((1 - beta) * path.b_base_model + beta * (h @ path.W.T + path.b))
        torch.testing.assert_close(v_next, replay.bernoulli(pv, torch.empty_like(pv)))
        assert v_next is not v
        states.append(v_next.clone())
        v = v_next
    assert torch.equal(data[:7], given)
