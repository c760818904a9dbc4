"""``DeepBeliefNet.init_from_below`` and ``dbn_stages(init_from_below=True)``: right after the
second RBM is initialized from the trained first one (Hinton, Osindero & Teh 2006), the DBN's
exact log-likelihood, and its variational and importance-weighted bounds with the exact log Z of
the top RBM, equal the first RBM's exact log-likelihood, by enumeration on tiny models."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ebmlab import estimators
from ebmlab.models.dbn import DeepBeliefNet
from ebmlab.training import TrainConfig, run_stages
from ebmlab.training.greedy import dbn_stages


def all_binary(n: int) -> torch.Tensor:
    return estimators.enumerate_states(n, dtype=torch.float64)


def random_dbn(sizes: list[int], seed: int = 0) -> DeepBeliefNet:
    """A DBN in float64 with every parameter N(0, 1): far from the small initial weights."""
    dbn = DeepBeliefNet(sizes, seed=seed).double()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in dbn.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return dbn


def rbm1_log_prob(dbn: DeepBeliefNet, v: torch.Tensor) -> torch.Tensor:
    rbm = dbn.rbms[0]
    return -rbm.free_energy(v) - estimators.exact_log_z(rbm)


@pytest.mark.parametrize("sizes", [[6, 4, 6], [6, 4, 8], [5, 3, 7]])
def test_dbn_equals_its_first_rbm_after_init(sizes: list[int]) -> None:
    dbn = random_dbn(sizes)
    v = all_binary(sizes[0])
    before = rbm1_log_prob(dbn, v)
    dbn.init_from_below(1)
    assert torch.allclose(dbn.exact_log_prob(v), before, atol=1e-10)
    # the exact log-likelihood is normalized: the DBN is a distribution, like RBM 1
    assert float(torch.logsumexp(dbn.exact_log_prob(v), 0)) == pytest.approx(0.0, abs=1e-10)


def test_a_third_rbm_starts_the_stack_of_two() -> None:
    """init_from_below(2): the DBN 4-3-5-3 equals the DBN 4-3-5 made of its first two RBMs."""
    dbn = random_dbn([4, 3, 5, 3])
    two = DeepBeliefNet([4, 3, 5]).double()
    two.rbms.load_state_dict(dbn.rbms[:2].state_dict())
    v = all_binary(4)
    dbn.init_from_below(2)
    assert torch.allclose(dbn.exact_log_prob(v), two.exact_log_prob(v), atol=1e-10)


def test_extra_hidden_units_do_not_change_the_marginal_whatever_their_biases() -> None:
    dbn = random_dbn([6, 4, 9])
    v = all_binary(6)
    dbn.init_from_below(1)
    with torch.no_grad():
        dbn.top.c[6:] = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    assert torch.allclose(dbn.exact_log_prob(v), rbm1_log_prob(dbn, v), atol=1e-10)
    with torch.no_grad():
        dbn.top.W[0, 7] = 0.5  # a weight on an extra unit does change it: the test can fail
    assert not torch.allclose(dbn.exact_log_prob(v), rbm1_log_prob(dbn, v), atol=1e-3)


def test_the_copy_is_the_transposed_rbm() -> None:
    dbn = random_dbn([6, 4, 8])
    dbn.init_from_below(1)
    low, top = dbn.rbms
    assert torch.equal(top.W[:, :6], low.W.T) and torch.equal(top.W[:, 6:], torch.zeros(4, 2))
    assert torch.equal(top.b, low.c)
    assert torch.equal(top.c[:6], low.b) and torch.equal(top.c[6:], torch.zeros(2))


@pytest.mark.parametrize("method", ["variational", "importance"])
def test_bounds_are_tight_after_init(method: str) -> None:
    """With the top RBM equal to RBM 1 upside down, q(h^1 | v) is the DBN's exact posterior, so
    every sample of either bound is log p(v) exactly (the variational form's control variate
    is then exact too)."""
    dbn = random_dbn([6, 4, 6])
    v = all_binary(6)
    dbn.init_from_below(1)
    log_z = estimators.exact_log_z(dbn.top)
    g = torch.Generator().manual_seed(0)
    bound = dbn.lower_bound(v, log_z, n_samples=3, generator=g, method=method)
    assert torch.allclose(bound, rbm1_log_prob(dbn, v), atol=1e-9)


def test_without_init_the_dbn_differs_from_rbm1() -> None:
    dbn = random_dbn([6, 4, 6])
    v = all_binary(6)
    assert not torch.allclose(dbn.exact_log_prob(v), rbm1_log_prob(dbn, v), atol=1e-3)


def test_dbn_stages_initialize_the_second_rbm_from_the_trained_first() -> None:
    """Through the stages: RBM 1 trained, RBM 2 initialized when its stage comes and not trained
    (0 epochs, but set up by its objective): the DBN equals the trained RBM 1."""
    g = torch.Generator().manual_seed(1)
    patterns = torch.tensor([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    x = patterns[torch.randint(2, (200,), generator=g)]
    x = (x + (torch.rand(200, 6, generator=g) < 0.1).float()) % 2  # 10% of the pixels flipped
    dbn = DeepBeliefNet([6, 4, 8], seed=0)
    w0 = dbn.rbms[0].W.detach().clone()
    first = TrainConfig(epochs=3, batch_size=20, lr=0.1, optimizer="sgd", progress=False)
    configs = [first, dataclasses.replace(first, epochs=0)]
    plan = dbn_stages(dbn, x, configs, method="pcd", centering=True, init_from_below=True)
    run_stages(None, plan, None)
    assert not torch.allclose(dbn.rbms[0].W.detach(), w0, atol=1e-3)  # RBM 1 was trained
    dbn = dbn.double()
    v = all_binary(6)
    assert torch.allclose(dbn.exact_log_prob(v), rbm1_log_prob(dbn, v), atol=1e-8)
    assert torch.equal(dbn.top.b, dbn.rbms[0].c)  # setup kept the visible biases


def test_dbn_stages_without_init_reset_the_visible_biases() -> None:
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(200, 6, generator=g) < 0.4).float()
    dbn = DeepBeliefNet([6, 4, 8], seed=0)
    first = TrainConfig(epochs=2, batch_size=20, lr=0.1, optimizer="sgd", progress=False)
    plan = dbn_stages(dbn, x, [first, dataclasses.replace(first, epochs=0)], method="pcd")
    run_stages(None, plan, None)
    assert not torch.equal(dbn.top.b, dbn.rbms[0].c)


def test_bad_sizes_and_indices_are_named() -> None:
    dbn = DeepBeliefNet([6, 4, 5])
    with pytest.raises(ValueError, match=r"layer_sizes\[2\] >= layer_sizes\[0\] = 6, got 5"):
        dbn.init_from_below(1)
    with pytest.raises(ValueError, match=r"k: expected a layer index in 1\.\.1"):
        dbn.init_from_below(0)
    x = torch.zeros(10, 6)
    with pytest.raises(ValueError, match=r"init_from_below: layer_sizes\[2\] = 5"):
        dbn_stages(dbn, x, TrainConfig(epochs=1), init_from_below=True)
