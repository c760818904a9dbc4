"""Deep belief nets: a stack of RBMs trained greedily and read as one directed generative model.

Hinton, Osindero & Teh (2006); lecture 002 ("Deep Belief Networks"). With h^0 = v and hidden
layers h^1, ..., h^L, the DBN is

    p(v, h^1, ..., h^L) = p(h^{L-1}, h^L) prod_{k=1}^{L-1} p(h^{k-1} | h^k):

the top two layers form an RBM (undirected) and every lower layer is a sigmoid belief net,
p(h^{k-1}_i = 1 | h^k) = sigmoid(b^k_i + (W^k h^k)_i), with W^k, b^k the weights and visible
biases of the k-th RBM of the stack. The hidden biases c^k of the lower RBMs are not part of the
generative model: with W^k they define the factorial recognition model
q(h^k | h^{k-1}) = prod_j Bernoulli(sigmoid(c^k_j + (h^{k-1} W^k)_j)).

Greedy layer-wise training fits RBM 1 to the data, then RBM k+1 to the hidden activities of RBM k
(mean-field probabilities by default, as in the authors' code, or one binary sample per example),
each RBM with the one training loop (``fit_greedy``). RBM k+1 may start as the RBM below turned
upside down (``init_from_below``, Hinton, Osindero & Teh 2006, section 4): the DBN then starts
equal to the stack below it, and training the new RBM on samples of q(h^k | h^{k-1}) raises the
variational bound from there. Generation: block-Gibbs sampling in the top
RBM, then one top-down pass through the directed layers.

Log-likelihood (Salakhutdinov & Murray 2008, section 4). For any q, by Jensen's inequality,

    log p(v) >= E_q[log p(v | h^1) + sum_{k=2}^{L-1} log p(h^{k-1} | h^k) - F_top(h^{L-1})]
                + H(q) - log Z_top,

with F_top(h^{L-1}) the free energy of the top RBM with h^{L-1} as its visible layer (its top
units summed out) and Z_top its partition function, estimated by AIS on the top RBM alone. For
the two-hidden-layer DBN of their paper (784-500-2000), q = q(h^1 | v) is factorial: the entropy
H(q) and the terms linear in h^1 (v^T W^1 h^1 and the top RBM's b^T h^1) are taken exactly and
only the softplus terms are averaged over samples of h^1. The importance-weighted form
log (1/K) sum_k p(v, h_k) / q(h_k | v) (Burda, Grosse & Salakhutdinov 2016) is also a lower bound
in expectation, tighter with K, and tends to log p(v) as K grows.

Which way the errors go: AIS underestimates log Z_top in expectation, so a bound computed with
the AIS value of log Z_top can exceed the true bound by the AIS error; the bound itself is below
log p(v) by KL(q || p(h | v)). For small models ``exact_log_prob`` gives log p(v) by enumeration.

References: Hinton, Osindero & Teh, "A fast learning algorithm for deep belief nets" (Neural
Computation 2006); Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks"
(ICML 2008); Burda, Grosse & Salakhutdinov, "Importance weighted autoencoders" (ICLR 2016).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from .. import estimators
from ..samplers import bernoulli_draw as bernoulli
from ..validation import (
    Integral,
    Real,
    as_generator,
    check_nonempty,
    check_nonnegative_int,
    check_positive_int,
    validate,
)
from .base import GibbsSampled, Model
from .rbm import BernoulliRBM, bernoulli_entropy, bernoulli_log_prob

Propagate = Literal["probabilities", "samples"]

#: Elements of the (samples x examples x units) tensors the bounds build at once (16 MB float32).
_BOUND_CHUNK = 4_000_000
#: Largest hidden layer ``exact_log_prob`` enumerates (2^20 states).
EXACT_MAX_UNITS = 20


def check_layer_sizes(layer_sizes: Any, name: str = "layer_sizes", min_len: int = 2) -> list[int]:
    """A list of at least ``min_len`` positive integers (visible size first)."""
    if isinstance(layer_sizes, str) or not isinstance(layer_sizes, Sequence):
        raise ValueError(f"{name}: expected a list of layer sizes, got {layer_sizes!r}")
    sizes = list(layer_sizes)
    if len(sizes) < min_len or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes
    ):
        raise ValueError(
            f"{name}: expected at least {min_len} positive integers (visible units first), "
            f"got {layer_sizes!r}"
        )
    return sizes


class DeepBeliefNet(GibbsSampled, Model):
    """A DBN with ``layer_sizes = [n_visible, n_1, ..., n_L]``: L RBMs, the last one undirected.

    Args:
        layer_sizes: units per layer, visible first (at least two entries; two entries make a
            single RBM).
        init_std: standard deviation of every RBM's initial weights.
        seed: seeds the initial weights (RBM i gets ``seed + i``); None: torch's global generator.

    Attributes:
        rbms: ``nn.ModuleList`` of ``BernoulliRBM``; ``rbms[k]`` connects layers k and k+1.
    """

    likelihood_kind = "ais-lower-bound"

    @validate(init_std=Real(0), seed=Integral() | None)
    def __init__(
        self, layer_sizes: list[int], init_std: float = 0.01, seed: int | None = None
    ) -> None:
        super().__init__()
        sizes = check_layer_sizes(layer_sizes)
        self.layer_sizes = sizes
        self.rbms = nn.ModuleList(
            BernoulliRBM(a, b, init_std=init_std, seed=None if seed is None else seed + i)
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        )

    @property
    def n_visible(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_layers(self) -> int:
        """Number of RBMs (hidden layers) L."""
        return len(self.rbms)

    @property
    def top(self) -> BernoulliRBM:
        """The undirected top RBM, between layers L-1 and L."""
        return self.rbms[-1]

    def check_visible(self, v: Any, name: str = "v", binary: bool = True) -> torch.Tensor:
        """Validate a batch of visible vectors: shape (batch, n_visible), finite, binary (or in
        [0, 1] with ``binary=False``)."""
        return self.rbms[0].check_visible(v, name, binary=binary)

    # ----- greedy initialization ---------------------------------------------------------------
    @torch.no_grad()
    def init_from_below(self, k: int) -> None:
        """Start ``rbms[k]`` (k >= 1) as ``rbms[k - 1]`` turned upside down (Hinton, Osindero &
        Teh 2006). In the notation of the module, ``rbms[k - 1]`` is RBM k with (W^k, b^k, c^k)
        between h^{k-1} and h^k; the new RBM k+1 gets W^{k+1} = (W^k)^T, visible biases c^k, and
        on its first n_{k-1} hidden units the biases b^k; its other hidden units (n_{k+1} >
        n_{k-1}, e.g. the 2000 of 784-500-2000) get zero weights and zero biases.

        Its marginal on its visible layer h = h^k is then RBM k's marginal on its hidden layer:

            p_{k+1}(h) prop. to e^{c^k . h} prod_{i <= n_{k-1}} (1 + e^{b^k_i + (W^k h)_i})
                                  prod_{j > n_{k-1}} (1 + e^{c_j})
                       prop. to sum_{h^{k-1}} exp(-E_k(h^{k-1}, h)),

        since summing out a hidden unit with zero weights gives the factor 1 + e^{c_j}, the same
        for every h, which the normalization cancels, whatever c_j. So p(h^{k-1}, h^k) =
        p_{k+1}(h^k) p(h^{k-1} | h^k) is RBM k's joint: the stack up to RBM k+1 is the stack up
        to RBM k (for k = 1: the DBN's log p(v) is RBM 1's log-likelihood), and greedy training
        of RBM k+1 on samples of q(h^k | h^{k-1}) can only raise the variational bound (in
        expectation).

        Raises:
            ValueError: ``k`` is not an index in 1..L-1, or ``rbms[k]`` has fewer hidden units
                than ``rbms[k - 1]`` has visible units (the copy would not fit).
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < self.n_layers:
            raise ValueError(f"k: expected a layer index in 1..{self.n_layers - 1}, got {k!r}")
        lower, upper = self.rbms[k - 1], self.rbms[k]
        n = lower.n_visible
        if upper.n_hidden < n:
            raise ValueError(
                f"layer_sizes: initializing RBM {k + 1} from the one below needs "
                f"layer_sizes[{k + 1}] >= layer_sizes[{k - 1}] = {n}, got {upper.n_hidden}"
            )
        upper.W.zero_()
        upper.W[:, :n] = lower.W.T
        upper.b.copy_(lower.c)
        upper.c.zero_()
        upper.c[:n] = lower.b

    # ----- inference (bottom-up) ----------------------------------------------------------------
    @torch.no_grad()
    def up_pass(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Mean-field recognition probabilities of every hidden layer, [q(h^1), ..., q(h^L)]:
        each layer's p(h = 1 | .) applied to the previous layer's probabilities."""
        h = self.check_visible(v, binary=False)
        out = []
        for rbm in self.rbms:
            h = rbm.p_h_given_v(h)
            out.append(h)
        return out

    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """The top-layer features of ``v`` (mean-field up-pass), shape (batch, n_L)."""
        return self.up_pass(v)[-1]

    # ----- generation (top-down) ----------------------------------------------------------------
    # ----- generation (``GibbsSampled.sample``): chains of the top RBM, then a top-down pass ----
    def start_chains(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform noise on the top RBM's visible layer."""
        p = torch.full((n, self.top.n_visible), 0.5, device=self.device, dtype=self.dtype)
        return bernoulli(p, generator)

    def chains_from(self, v0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The up-pass samples of ``v0`` at the top RBM's visible layer."""
        h = v0
        for rbm in self.rbms[:-1]:
            h = rbm.sample_h(h, generator)
        return h

    def run_chains(
        self, state: torch.Tensor, n_steps: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """``n_steps`` block-Gibbs sweeps of the top RBM."""
        for _ in range(n_steps):
            state, _ = self.top.gibbs_vhv(state, generator)
        return state

    def chains_output(self, state: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A top-down pass sampling each directed layer; p(v = 1 | h^1) of the last step."""
        h = state
        if self.n_layers == 1:
            return self.top.p_v_given_h(self.top.sample_h(h, generator))
        for rbm in reversed(self.rbms[1:-1]):
            h = rbm.sample_v(h, generator)
        return self.rbms[0].p_v_given_h(h)

    @torch.no_grad()
    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field up-pass to the top layer, then down through every RBM's p(v | h):
        a picture of what the stack keeps of ``v``, not a sample."""
        h = self.up_pass(v)[-1]
        for rbm in reversed(self.rbms):
            h = rbm.p_v_given_h(h)
        return h

    # ----- log-likelihood -----------------------------------------------------------------------
    def _directed_log_prob(self, k: int, below: torch.Tensor, above: torch.Tensor) -> torch.Tensor:
        """log p(h^{k-1} = below | h^k = above) of the directed layer k (k >= 1)."""
        return bernoulli_log_prob(self.rbms[k - 1].visible_logits(above), below)

    def _path_log_weights(
        self, v: torch.Tensor, n_samples: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw h^1..h^{L-1} ~ q(. | v), ``n_samples`` paths per example. Returns
        (log w, log q(h^1 | v), h^1, logits of q(h^1 | v)) with shapes (K, N), (K, N),
        (K, N, n_1), (N, n_1), where log w = log p(v | h^1) + sum_{k=2}^{L-1} [log p(h^{k-1} | h^k)
        - log q(h^k | h^{k-1})] - F_top(h^{L-1}) (everything but log q(h^1 | v) and log Z_top)."""
        K, N = n_samples, v.shape[0]
        logits1 = self.rbms[0].hidden_logits(v)  # (N, n_1)
        flat_logits1 = logits1.repeat(K, 1)  # (K N, n_1), sample-major
        h1 = bernoulli(torch.sigmoid(flat_logits1), generator)
        log_q1 = bernoulli_log_prob(flat_logits1, h1)
        log_w = self._directed_log_prob(1, v.repeat(K, 1), h1)
        h = h1
        for k in range(2, self.n_layers):  # layers 2..L-1: drawn from q, scored by p
            q_logits = self.rbms[k - 1].hidden_logits(h)
            h_next = bernoulli(torch.sigmoid(q_logits), generator)
            log_w += self._directed_log_prob(k, h, h_next) - bernoulli_log_prob(q_logits, h_next)
            h = h_next
        log_w -= self.top.free_energy(h)
        return log_w.view(K, N), log_q1.view(K, N), h1.view(K, N, -1), logits1

    def _chunked(
        self, v: torch.Tensor, n_samples: int, fn: Any, batch_size: int | None
    ) -> torch.Tensor:
        width = max(self.layer_sizes)
        rows = batch_size or max(1, _BOUND_CHUNK // (n_samples * width))
        return torch.cat([fn(v[i : i + rows]) for i in range(0, v.shape[0], rows)])

    @torch.no_grad()
    def lower_bound(
        self,
        v: torch.Tensor,
        log_z: float = 0.0,
        n_samples: int = 10,
        generator: torch.Generator | int | None = None,
        method: Literal["variational", "importance"] = "variational",
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Per-example estimate of a lower bound on log p(v) in nats, float64, shape (batch,).

        Args:
            v: binary data (batch, n_visible), at least one row.
            log_z: log partition function of the top RBM (``top_log_z`` or exact).
            n_samples: samples of the hidden path per example (K).
            generator: a ``torch.Generator``, an integer seed or None.
            method: "variational": the bound of Salakhutdinov & Murray (2008), its expectation
                estimated with K samples (terms linear in h^1 and H(q(h^1 | v)) exact);
                "importance": log (1/K) sum_k p(v, h_k) / q(h_k | v), a stochastic lower bound
                that tightens as K grows.
            batch_size: examples per chunk (None: as many as fit a fixed budget of memory).
        """
        v = check_nonempty(self.check_visible(v), "v")
        check_positive_int(n_samples, "n_samples")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        generator = as_generator(generator, self.device)
        if method not in ("variational", "importance"):
            raise ValueError(f"method: expected 'variational' or 'importance', got {method!r}")
        if self.n_layers == 1:  # a single RBM: log p(v) = -F(v) - log Z, no bound needed
            return (-self.top.free_energy(v)).to(torch.float64) - float(log_z)

        def chunk(rows: torch.Tensor) -> torch.Tensor:
            log_w, log_q1, h1, logits1 = self._path_log_weights(rows, n_samples, generator)
            if method == "importance":
                log_w = (log_w - log_q1).to(torch.float64)
                return torch.logsumexp(log_w, 0) - math.log(n_samples)
            # control variate: the terms linear in h^1 are replaced by their mean under q
            q1 = torch.sigmoid(logits1)
            linear = rows @ self.rbms[0].W  # v^T W^1 h^1 = (v^T W^1) . h^1
            if self.n_layers == 2:
                linear = linear + self.top.b  # the top RBM's b^T h^1 when h^1 is its visible
            centred = ((h1 - q1) * linear).sum(-1)  # zero mean under q
            value = (log_w - centred).to(torch.float64).mean(0)
            return value + bernoulli_entropy(logits1).sum(-1).to(torch.float64)

        return self._chunked(v, n_samples, chunk, batch_size) - float(log_z)

    @torch.no_grad()
    def top_log_z(
        self,
        x_train: torch.Tensor,
        n_betas: int = 14500,
        n_runs: int = 100,
        seed: int | None = None,
    ) -> estimators.AISResult:
        """AIS estimate of log Z of the top RBM (Salakhutdinov & Murray's protocol), its
        base-rate model fitted to the mean-field activities of ``x_train`` at layer L-1."""
        x = self.check_visible(x_train, "x_train", binary=False)
        data = x if self.n_layers == 1 else self.up_pass(x)[-2]
        return estimators.ais(self.top, n_betas=n_betas, n_runs=n_runs, seed=seed, data=data)

    @torch.no_grad()
    def exact_log_prob(self, v: torch.Tensor, max_units: int = EXACT_MAX_UNITS) -> torch.Tensor:
        """log p(v) exactly, float64, shape (batch,), for small models (tests, 8x8 demos).

        The marginal of layer L-1 is the top RBM's, -F_top(h) - log Z_top (both by enumeration);
        each directed layer then gives log p(h^{k-1}) = logsumexp_{h^k} [log p(h^{k-1} | h^k) +
        log p(h^k)], down to v. Every hidden layer below the top is enumerated (at most
        ``max_units`` units each). ``v``: at least one row."""
        check_nonnegative_int(max_units, "max_units")
        v = check_nonempty(self.check_visible(v), "v").to(torch.float64)
        too_big = [n for n in self.layer_sizes[1:-1] if n > max_units]
        if too_big:
            raise ValueError(
                f"model: exact log p(v) enumerates every hidden layer below the top; layers of "
                f"{too_big} units exceed max_units={max_units}; use lower_bound with AIS"
            )
        m = copy.deepcopy(self).to(torch.float64)
        log_z = estimators.exact_log_z(m.top)
        if m.n_layers == 1:
            return -m.top.free_energy(v) - log_z
        states = estimators.enumerate_states(self.layer_sizes[-2], device=v.device)
        log_p = -m.top.free_energy(states) - log_z  # marginal of h^{L-1}
        for k in range(m.n_layers - 1, 0, -1):  # marginal of h^{k-1} from that of h^k
            logits = m.rbms[k - 1].visible_logits(states)  # (S_k, n_{k-1})
            normalizer = F.softplus(logits).sum(-1) - log_p  # -log p(h^k) + log-normalizers
            below = (
                v
                if k == 1
                else estimators.enumerate_states(self.layer_sizes[k - 1], device=v.device)
            )
            rows = max(1, _BOUND_CHUNK // max(states.shape[0], 1))
            log_p = torch.cat(
                [
                    torch.logsumexp(below[i : i + rows] @ logits.T - normalizer, 1)
                    for i in range(0, below.shape[0], rows)
                ]
            )
            states = below
        return log_p
