"""Small models with known log Z shared by the estimator tests.

Models are built from seeds far from the samplers' (0, 1, 2, ...): a model whose parameters come
from the same random stream as AIS's first draws starts some runs exactly in its modes.
"""

from __future__ import annotations

import itertools

import torch

from ebmlab.models.dbm import DeepBoltzmannMachine
from ebmlab.models.gaussian_rbm import GaussianBernoulliRBM
from ebmlab.models.rbm import BernoulliRBM

MODEL_SEED = 1_000_003


def random_rbm(n_visible: int, n_hidden: int, sigma: float, seed: int) -> BernoulliRBM:
    """Random weights N(0, sigma^2), visible biases N(-1, 1), hidden biases N(0, 1)."""
    rbm = BernoulliRBM(n_visible, n_hidden, init_std=sigma, seed=MODEL_SEED + seed)
    g = torch.Generator().manual_seed(MODEL_SEED + seed + 1000)
    with torch.no_grad():
        rbm.b.normal_(-1.0, 1.0, generator=g)
        rbm.c.normal_(0.0, 1.0, generator=g)
    return rbm


def hopfield_rbm(n_patterns: int, weight: float, seed: int) -> BernoulliRBM:
    """A multimodal 784 x 2P RBM: hidden pairs with weights +-w (2 p - 1) for P random patterns
    p and c = -sum_i W_ij / 2, so that F(v) = F(1 - v) and the free energy is about
    -(w/2) sum_j |m_j| in the overlaps m_j with the patterns: modes near +-every pattern,
    separated by barriers that grow with w (about 4 nats at w = 0.2, 9 at 0.3)."""
    g = torch.Generator().manual_seed(MODEL_SEED + seed)
    patterns = (torch.rand(n_patterns, 784, generator=g) < 0.5).float()
    columns = weight * (2 * patterns - 1)
    W = torch.cat([columns, -columns]).T.contiguous()
    rbm = BernoulliRBM(784, 2 * n_patterns)
    with torch.no_grad():
        rbm.W.copy_(W)
        rbm.b.zero_()
        rbm.c.copy_(-W.sum(0) / 2)
    return rbm


def prototype_rbm(seed: int) -> BernoulliRBM:
    """12 hidden units, each a +-2 prototype of 392 on-pixels, hidden biases about -250: the
    mass sits on 'one unit on' states (v near a prototype), but at every beta < 1 the state with
    all hidden units off dominates, so annealing never finds the prototypes (a first-order
    transition)."""
    g = torch.Generator().manual_seed(MODEL_SEED + seed)
    patterns = (torch.rand(12, 784, generator=g).argsort(1) < 392).float()
    rbm = BernoulliRBM(784, 12)
    with torch.no_grad():
        rbm.W.copy_((2.0 * (2 * patterns - 1)).T)
        rbm.b.zero_()
        rbm.c.copy_(-250.0 + torch.randn(12, generator=g))
    return rbm


def random_grbm(d: int, h: int, scale: float, seed: int) -> GaussianBernoulliRBM:
    """float64 Gaussian-Bernoulli RBM with random weights, biases and standard deviations."""
    g = torch.Generator().manual_seed(seed)
    grbm = GaussianBernoulliRBM(d, h, seed=seed).double()
    with torch.no_grad():
        grbm.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64) * scale)
        grbm.b.copy_(torch.rand(d, generator=g, dtype=torch.float64))
        grbm.c.copy_(torch.randn(h, generator=g, dtype=torch.float64) * 0.5)
        grbm.log_sigma.copy_(torch.randn(d, generator=g, dtype=torch.float64) * 0.2 - 1.0)
    return grbm


def random_dbm(sizes: list[int], scale: float = 1.0, seed: int = 0) -> DeepBoltzmannMachine:
    """float64 DBM with weights N(0, scale^2) and biases N(0, 1)."""
    dbm = DeepBoltzmannMachine(sizes, init_std=scale, seed=MODEL_SEED + seed).double()
    g = torch.Generator().manual_seed(MODEL_SEED + seed + 1000)
    with torch.no_grad():
        for b in dbm.biases:
            b.normal_(0.0, 1.0, generator=g)
    return dbm


class TinyBoltzmann(torch.nn.Module):
    """Fully visible Boltzmann machine E(s) = -s^T W s / 2 - b^T s on {0,1}^n (the protocol)."""

    spin_values = (0.0, 1.0)

    def __init__(self, n: int, seed: int, scale: float = 1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(MODEL_SEED + seed)
        W = torch.randn(n, n, generator=g) * scale
        self.W = torch.nn.Parameter((W + W.T) / 2 * (1 - torch.eye(n)))
        self.b = torch.nn.Parameter(torch.randn(n, generator=g))
        self.n_units = n

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((s @ self.W) * s).sum(-1) - s @ self.b


def all_binary(n: int) -> torch.Tensor:
    """Every state of {0,1}^n, float64, in itertools.product order (unit 0 most significant)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def brute_rbm_log_z(rbm: BernoulliRBM) -> float:
    """log sum over every joint (v, h) of exp(-E(v, h)), float64."""
    m = BernoulliRBM(rbm.n_visible, rbm.n_hidden).double()
    m.load_state_dict(rbm.state_dict())
    v, h = all_binary(rbm.n_visible), all_binary(rbm.n_hidden)
    vv = v.repeat_interleave(h.shape[0], 0)
    hh = h.repeat(v.shape[0], 1)
    with torch.no_grad():
        return float(torch.logsumexp(-m.energy(vv, hh), 0))


def state_index(x: torch.Tensor) -> torch.Tensor:
    """Index of {0,1} states as in ``enumerate_states`` (unit i is bit i)."""
    return (x.double() @ (2.0 ** torch.arange(x.shape[1], dtype=torch.float64))).long()


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """p-value of a chi-square goodness-of-fit test, rare cells (expected < 5) merged."""
    from scipy.stats import chi2

    counts = counts.double()
    expected = counts.sum() * probs.double()
    small = expected < 5
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, counts.numel() - 1))
