"""The hand-written RBM update: the one-matmul statistics against the two outer products of the
textbook formula (same draws, replayed), the fused SGD step against ``torch.optim.SGD`` on the
hand gradient, the training loop's fused path against its generic one, and the Bernoulli draw
into a buffer. Every test takes the ``device`` fixture (``pytest --device cuda`` runs them on a
GPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from ebmlab.models.rbm import BernoulliRBM
from ebmlab.objectives.contrastive import ContrastiveDivergence
from ebmlab.samplers import bernoulli_draw
from ebmlab.training import TrainConfig, train


def _rbm(device: str, d: int = 7, h: int = 5, seed: int = 0) -> BernoulliRBM:
    rbm = BernoulliRBM(d, h).double().to(device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64))
        rbm.b.copy_(torch.randn(d, generator=g, dtype=torch.float64) * 0.5)
        rbm.c.copy_(torch.randn(h, generator=g, dtype=torch.float64) * 0.5)
    return rbm


def _data(device: str, n: int = 40, d: int = 7, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) < 0.4).double().to(device)


def _two_matmul_gradient(
    rbm: BernoulliRBM, v0: torch.Tensor, vn: torch.Tensor
) -> list[torch.Tensor]:
    """mean_chains vn^T p(h | vn) - mean_data v0^T p(h | v0), and the bias terms: two outer
    products, one per phase."""
    p0, pn = rbm.p_h_given_v(v0), rbm.p_h_given_v(vn)
    return [
        vn.T @ pn / vn.shape[0] - v0.T @ p0 / v0.shape[0],
        vn.mean(0) - v0.mean(0),
        pn.mean(0) - p0.mean(0),
    ]


def _cd_negatives(rbm: BernoulliRBM, v0: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """CD-k's negative visible states, drawn in the objective's order from a copy of its
    generator: h ~ p(h | v0), then k sweeps v ~ p(v | h), h ~ p(h | v)."""
    h = bernoulli_draw(rbm.p_h_given_v(v0), g)
    for sweep in range(k):
        v = bernoulli_draw(rbm.p_v_given_h(h), g)
        if sweep < k - 1:
            h = bernoulli_draw(rbm.p_h_given_v(v), g)
    return v


def _pcd_negatives(rbm: BernoulliRBM, h: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    for sweep in range(k):
        v = bernoulli_draw(rbm.p_v_given_h(h), g)
        if sweep < k - 1:
            h = bernoulli_draw(rbm.p_h_given_v(v), g)
    return v


@pytest.mark.parametrize("method", ["cd", "pcd", "pt"])
@pytest.mark.parametrize("k", [1, 2])
@torch.no_grad()
def test_one_matmul_statistics_equal_the_two_outer_products(device, method, k):
    rbm, x = _rbm(device), _data(device)
    objective = ContrastiveDivergence(k=k, method=method, n_chains=9, n_temperatures=3)
    objective.setup(rbm, x)
    v0 = x[:11]
    for _ in range(3):  # later steps reuse the buffers of the first
        g = torch.Generator(device=device).manual_seed(5)
        replay = torch.Generator(device=device).manual_seed(5)
        chains_h = objective.chain_h[0].clone() if method == "pcd" else None
        _, grads = objective.gradients(rbm, v0, g)
        if method == "cd":
            vn = _cd_negatives(rbm, v0, k, replay)
        elif method == "pcd":
            vn = _pcd_negatives(rbm, chains_h, k, replay)
            assert torch.equal(objective.negative_samples(), vn)
        else:  # PT's chains (their swaps included) are what the objective kept
            vn = objective.negative_samples()
        for got, want in zip(grads, _two_matmul_gradient(rbm, v0, vn)):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_a_short_batch_and_back_reuse_the_right_buffers(device, method):
    """Alternating minibatch sizes (a short last batch every epoch) keep both workspaces
    apart: the full-size statistics after a short batch equal those of a fresh objective."""
    rbm, x = _rbm(device), _data(device)
    objective = ContrastiveDivergence(k=1, method=method, n_chains=9)
    objective.setup(rbm, x)
    fresh = copy.deepcopy(objective)
    objective.gradients(rbm, x[:3], torch.Generator(device=device).manual_seed(0))
    objective.load_state_dict(fresh.state_dict())  # same chains again
    got = objective.gradients(rbm, x[:11], torch.Generator(device=device).manual_seed(7))[1]
    want = fresh.gradients(rbm, x[:11], torch.Generator(device=device).manual_seed(7))[1]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "momentum, weight_decay, centering, lr_bias",
    [
        (0.0, 0.0, False, None),
        (0.9, 0.0, False, None),
        (0.5, 0.01, False, 0.02),
        (0.9, 0.01, True, None),
    ],
)
@torch.no_grad()
def test_sgd_update_is_torch_sgd_on_the_hand_gradient(
    device, momentum, weight_decay, centering, lr_bias
):
    x = _data(device)
    runs = []
    for fused in (True, False):
        rbm = _rbm(device)
        objective = ContrastiveDivergence(k=1, method="pcd", n_chains=9, centering=centering)
        objective.setup(rbm, x)
        g = torch.Generator(device=device).manual_seed(3)
        lr = 0.05
        groups = objective.param_groups(rbm, lr, weight_decay)
        if lr_bias is not None:
            groups[1]["lr"] = lr_bias
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum)
        velocity = [torch.zeros_like(p) for p in (rbm.W, rbm.b, rbm.c)]
        for step in range(4):
            batch = x[step * 10 : (step + 1) * 10]
            if fused:
                objective.sgd_update(
                    rbm, batch, g, lr, momentum, weight_decay, velocity, lr_bias=lr_bias
                )
            else:
                _, grads = objective.gradients(rbm, batch, g)
                for p, grad in zip((rbm.W, rbm.b, rbm.c), grads):
                    p.grad = grad
                optimizer.step()
        runs.append([p.detach().clone() for p in (rbm.W, rbm.b, rbm.c)])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_the_loops_fused_step_equals_its_generic_path(device, momentum, tmp_path):
    """``train`` with plain SGD takes the objective's fused step; a gradient-norm clip too large
    to act sends it down the generic path (loss.backward, optimizer.step): same parameters,
    and a resumed fused run repeats the uninterrupted one exactly."""
    x = _data(device, n=60)
    config = dict(
        epochs=3,
        batch_size=16,
        lr=0.05,
        optimizer="sgd",
        momentum=momentum,
        progress=False,
        device=device,
        weight_decay=0.001,
        seed=4,
    )
    results = []
    for clip in (None, 1e30):
        rbm = _rbm(device)
        objective = ContrastiveDivergence(k=1, method="pcd", n_chains=9)
        train(rbm, objective, x, TrainConfig(**config, max_grad_norm=clip))
        results.append(rbm)
    for a, b in zip(results[0].parameters(), results[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # interrupted after 2 epochs, resumed: bit for bit the uninterrupted fused run
    rbm = _rbm(device)
    train(
        rbm,
        ContrastiveDivergence(k=1, method="pcd", n_chains=9),
        x,
        TrainConfig(**{**config, "epochs": 2}),
        tmp_path,
    )
    resumed = _rbm(device, seed=9)
    train(
        resumed,
        ContrastiveDivergence(k=1, method="pcd", n_chains=9),
        x,
        TrainConfig(**config),
        tmp_path,
        resume=True,
    )
    for a, b in zip(results[0].parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_bernoulli_draw_into_a_buffer_is_the_same_draw(device):
    p = torch.rand(6, 5, generator=torch.Generator().manual_seed(0)).to(device)
    fresh = bernoulli_draw(p, torch.Generator(device=device).manual_seed(2))
    out = torch.full_like(p, 7.0)
    drawn = bernoulli_draw(p, torch.Generator(device=device).manual_seed(2), out=out)
    assert drawn is out and torch.equal(out, fresh)
    with pytest.raises(ValueError, match=r"out: expected a \(6, 5\) torch.float32 tensor"):
        bernoulli_draw(p, out=torch.empty(5, 6, device=device))


@pytest.mark.parametrize("method", ["cd", "pcd", "pt"])
@pytest.mark.parametrize(
    "momentum, weight_decay, centering", [(0.0, 0.0, False), (0.9, 0.01, False), (0.5, 0.01, True)]
)
@torch.no_grad()
def test_narrower_products_follow_the_same_update(
    device, method, momentum, weight_decay, centering
):
    """``matmul_dtype`` rounds only the products' operands: a float64 model updated with
    float32 products (the same draws) ends where the all-float64 update does, to float32's
    rounding; the gradients too."""
    x = _data(device)
    runs = []
    for dtype in (None, torch.float32):
        rbm = _rbm(device)
        objective = ContrastiveDivergence(
            k=2, method=method, n_chains=9, n_temperatures=3, centering=centering
        )
        objective.setup(rbm, x)
        g = torch.Generator(device=device).manual_seed(3)
        velocity = [torch.zeros_like(p) for p in (rbm.W, rbm.b, rbm.c)]
        for step in range(4):
            batch = x[step * 10 : (step + 1) * 10]
            objective.sgd_update(
                rbm, batch, g, 0.05, momentum, weight_decay, velocity, matmul_dtype=dtype
            )
        _, grads = objective.gradients(rbm, x[:10], g, matmul_dtype=dtype)
        runs.append([*(p.detach().clone() for p in (rbm.W, rbm.b, rbm.c)), *grads])
    for a, b in zip(*runs):
        assert a.dtype == b.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_bfloat16_products_move_the_weights_as_float32_does(device):
    """A float32 RBM of MNIST's size with bfloat16 products: five PCD-1 steps move W by the
    float32 steps' amount to within bfloat16's rounding (8 significant bits), not identically."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(500, 784, generator=g) < 0.13).float().to(device)
    changes = []
    for dtype in (None, torch.bfloat16):
        rbm = BernoulliRBM(784, 100, seed=0).to(device)
        objective = ContrastiveDivergence(k=1, method="pcd", n_chains=100)
        objective.setup(rbm, x)
        start = rbm.W.detach().clone()
        gen = torch.Generator(device=device).manual_seed(1)
        for step in range(5):
            objective.sgd_update(
                rbm,
                x[step * 100 : (step + 1) * 100],
                gen,
                0.05,
                0.5,
                velocity=[torch.zeros_like(p) for p in (rbm.W, rbm.b, rbm.c)],
                matmul_dtype=dtype,
            )
        assert rbm.W.dtype == torch.float32
        changes.append(rbm.W.detach() - start)
    full, half = changes
    assert not torch.equal(full, half)
    assert (full - half).norm() < 0.05 * full.norm()


def test_a_matmul_dtype_that_is_not_narrower_is_refused_by_name(device):
    rbm, x = _rbm(device), _data(device)  # float64
    objective = ContrastiveDivergence(k=1, method="pcd", n_chains=9)
    objective.setup(rbm, x)
    g = torch.Generator(device=device).manual_seed(0)
    for dtype in (torch.int32, torch.complex128):
        with pytest.raises(ValueError, match="matmul_dtype: expected a floating dtype narrower"):
            objective.sgd_update(rbm, x[:10], g, 0.05, matmul_dtype=dtype)
    objective.sgd_update(rbm, x[:10], g, 0.05, matmul_dtype=torch.float64)  # its own: fine
