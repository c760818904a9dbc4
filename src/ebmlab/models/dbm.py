"""Deep Boltzmann machines with binary units (Salakhutdinov & Hinton 2009), lecture 001 part 2.

Layers h_0 = v, h_1, ..., h_L (L >= 1 hidden layers), connections only between neighbouring
layers:

    E(h_0, ..., h_L) = -sum_{l=0}^{L} b_l^T h_l - sum_{l=0}^{L-1} h_l^T W_l h_{l+1}

Every layer's units are independent given its two neighbours,
p(h_l = 1 | h_{l-1}, h_{l+1}) = sigmoid(b_l + W_{l-1}^T h_{l-1} + W_l h_{l+1}), so the odd layers
are independent given the even ones and vice versa: Gibbs sampling alternates the two blocks, and
the odd layers sum out analytically,

    F_even(h_0, h_2, ...) = -log sum_{odd layers} exp(-E)
                          = -sum_{l even} b_l^T h_l - sum_{l odd} sum_j softplus(a_lj),
    a_l = b_l + W_{l-1}^T h_{l-1} + W_l h_{l+1}

(each odd unit contributes log(1 + e^{a})). F(v) itself is intractable for real sizes;
``free_energy`` enumerates the even hidden layers and is meant for small models and tests.

Inference is mean-field: q(h | v) = prod_l prod_j Bernoulli(mu_lj), at a fixed point of
mu_l = sigmoid(b_l + W_{l-1}^T mu_{l-1} + W_l mu_{l+1}) (mu_0 = v). ``mean_field`` starts from a
recognition pass with doubled bottom-up input (mu_l = sigmoid(b_l + 2 W_{l-1}^T mu_{l-1}) below
the top layer, the input from above being missing: Salakhutdinov & Hinton 2009, section 3.1) and
updates the odd layers, then the even ones; each block update maximizes the bound exactly in that
block, so the bound never decreases. Since E is linear in each layer and q factorizes, E_q[E] is
E at the means, and

    log p(v) >= -E(v, mu_1, ..., mu_L) + sum_l H(mu_l) - log Z = -F_q(v) - log Z,

``variational_free_energy`` being F_q(v) >= F(v). With log Z from AIS (``ebmlab.app.families.dbm``)
this is the "ais-lower-bound" of the paper's Table 1.

Parameters: ``weights[l]`` (n_l x n_{l+1}) and ``biases[l]`` (n_l), l = 0 the visible layer.

References: Salakhutdinov & Hinton, "Deep Boltzmann machines" (AISTATS 2009); Salakhutdinov &
Hinton, "An efficient learning procedure for deep Boltzmann machines" (Neural Computation 2012).
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..samplers import bernoulli_draw as bernoulli
from ..validation import (
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_binary,
    check_nonempty,
    check_nonnegative_int,
    check_positive_int,
    check_unit_interval,
    validate,
)
from .base import GibbsSampled, Model, marginal_logits
from .rbm import bernoulli_entropy

#: Elements of the (batch, states, units) tensors the enumerations build at once (32 MB float64).
_CHUNK_ELEMENTS = 1 << 22
#: Largest number of units ``free_energy`` and ``log_z`` enumerate by default.
MAX_ENUMERATED_UNITS = 20

Layers = list[torch.Tensor]


def _enumerate(n_units: int, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
    """States ``start``..``stop``-1 of {0,1}^n_units (unit i is bit i of the index)."""
    index = torch.arange(start, stop, device=like.device)
    return ((index[:, None] >> torch.arange(n_units, device=like.device)) & 1).to(like.dtype)


class DeepBoltzmannMachine(GibbsSampled, Model):
    """Binary DBM with layer sizes ``[n_visible, n_1, ..., n_L]``.

    Args:
        layer_sizes: visible units first, then each hidden layer (at least one).
        init_std: standard deviation of the initial weights.
        seed: seed for the initial weights (None: torch's global generator).
    """

    likelihood_kind = "ais-lower-bound"

    @validate(init_std=Real(0), seed=Integral() | None)
    def __init__(
        self, layer_sizes: list[int], init_std: float = 0.01, seed: int | None = None
    ) -> None:
        super().__init__()
        sizes = list(layer_sizes) if isinstance(layer_sizes, list | tuple) else None
        if (
            sizes is None
            or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
        ):
            raise ValueError(
                "layer_sizes: expected a list of positive sizes [n_visible, n_hidden_1, ...] "
                f"with at least one hidden layer, got {layer_sizes!r}"
            )
        generator = as_generator(seed, "cpu", "seed")
        self.layer_sizes = sizes
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.randn(n_in, n_out, generator=generator) * init_std)
                for n_in, n_out in itertools.pairwise(sizes)
            ]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in sizes])

    # ----- sizes and checks ---------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_layers(self) -> int:
        """Number of hidden layers L."""
        return len(self.layer_sizes) - 1

    @property
    def n_total(self) -> int:
        """Units in all layers together (the width of a concatenated state)."""
        return sum(self.layer_sizes)

    def check_visible(self, v: torch.Tensor, name: str = "v", binary: bool = True) -> torch.Tensor:
        """Validate a batch of visible vectors: shape (batch, n_visible), finite, binary."""
        w = self.weights[0]
        v = as_tensor(v, name, dim=2, n_features=self.n_visible, device=w.device, dtype=w.dtype)
        return check_binary(v, name) if binary else v

    def split(self, states: torch.Tensor) -> Layers:
        """A concatenated state (batch, n_total) as the list of its layers."""
        if states.dim() != 2 or states.shape[1] != self.n_total:
            raise ValueError(
                f"states: expected shape (batch, {self.n_total}) (all layers concatenated), "
                f"got {tuple(states.shape)}"
            )
        return list(torch.split(states, self.layer_sizes, dim=1))

    @staticmethod
    def join(layers: Layers) -> torch.Tensor:
        """The layers concatenated into one (batch, n_total) tensor."""
        return torch.cat(list(layers), 1)

    def _check_layers(self, layers: Layers, name: str = "layers") -> Layers:
        if len(layers) != len(self.layer_sizes):
            raise ValueError(
                f"{name}: expected {len(self.layer_sizes)} layers (visible first), got "
                f"{len(layers)}"
            )
        for l, (h, n) in enumerate(zip(layers, self.layer_sizes)):
            if h is not None and (h.dim() != 2 or h.shape[1] != n):
                raise ValueError(f"{name}[{l}]: expected shape (batch, {n}), got {tuple(h.shape)}")
        return list(layers)

    @torch.no_grad()
    def init_visible_from_data(self, x: torch.Tensor) -> None:
        """b_0 = logit of the data marginal (Hinton's guide, section 8), clamped to +-6.9 for
        pixels always off (or on). ``x``: at least one row of binary data or probabilities."""
        x = check_nonempty(self.check_visible(x, "x", binary=False), "x")
        self.biases[0].copy_(marginal_logits(check_unit_interval(x, "x")))

    @torch.no_grad()
    def init_from_rbms(self, rbms: list[nn.Module]) -> None:
        """Compose pretrained RBMs (bottom first) into the DBM (Salakhutdinov & Hinton 2009): the
        weights are copied, and an inner layer's bias is the average of the hidden bias of the RBM
        below and the visible bias of the RBM above, since both RBMs model that layer."""
        if len(rbms) != self.n_layers:
            raise ValueError(f"rbms: expected {self.n_layers} RBMs, got {len(rbms)}")
        for l, rbm in enumerate(rbms):
            if rbm.W.shape != self.weights[l].shape:
                raise ValueError(
                    f"rbms[{l}]: expected W of shape {tuple(self.weights[l].shape)}, "
                    f"got {tuple(rbm.W.shape)}"
                )
            self.weights[l].copy_(rbm.W)
        self.biases[0].copy_(rbms[0].b)
        self.biases[-1].copy_(rbms[-1].c)
        for l in range(1, self.n_layers):
            self.biases[l].copy_((rbms[l - 1].c + rbms[l].b) / 2)

    # ----- energies -----------------------------------------------------------------------------
    def energy(self, *layers: torch.Tensor) -> torch.Tensor:
        """E(v, h_1, ..., h_L), shape (batch,). Takes the layers as separate tensors, or one
        concatenated (batch, n_total) state. Mean-field means in place of states give E_q[E]."""
        states = self.split(layers[0]) if len(layers) == 1 else self._check_layers(list(layers))
        e = -sum(h @ b for h, b in zip(states, self.biases))
        for l, W in enumerate(self.weights):
            e = e - ((states[l] @ W) * states[l + 1]).sum(-1)
        return e

    def layer_input(
        self, layers: Layers, l: int, from_below: torch.Tensor | None = None
    ) -> torch.Tensor:
        """a_l = b_l + W_{l-1}^T h_{l-1} + W_l h_{l+1} (the terms that exist), (batch, n_l).
        ``from_below``: W_{l-1}^T h_{l-1} already computed (a clamped layer's input, reused)."""
        a = self.biases[l]
        if from_below is not None:
            a = a + from_below
        elif l > 0:
            a = torch.addmm(a, layers[l - 1], self.weights[l - 1])
        if l < self.n_layers:
            a = torch.addmm(a, layers[l + 1], self.weights[l].T)
        return a

    def free_energy_even(
        self, layers: Layers, visible_input: torch.Tensor | None = None
    ) -> torch.Tensor:
        """F_even = -sum_{l even} b_l^T h_l - sum_{l odd} sum_j softplus(a_lj): the free energy
        of the even layers with the odd ones summed out. ``layers`` has every layer's slot; the
        odd entries are ignored (may be None). ``visible_input``: v W_0, if already computed.
        Shape (batch,)."""
        layers = self._check_layers(layers)
        f = -sum(layers[l] @ self.biases[l] for l in range(0, self.n_layers + 1, 2))
        for l in range(1, self.n_layers + 1, 2):
            below = visible_input if l == 1 else None
            f = f - F.softplus(self.layer_input(layers, l, below)).sum(-1)
        return f

    def free_energy(self, v: torch.Tensor, max_units: int = MAX_ENUMERATED_UNITS) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), exactly: the odd layers summed out analytically and
        the even hidden layers enumerated (at most ``max_units`` units), in float64. For small
        models and tests; real DBMs use ``variational_free_energy`` (an upper bound). ``v``: at
        least one row."""
        check_nonnegative_int(max_units, "max_units")
        even = list(range(2, self.n_layers + 1, 2))
        n_even = sum(self.layer_sizes[l] for l in even)
        if n_even > max_units:
            raise ValueError(
                f"model: F(v) needs 2^{n_even} states of the even hidden layers, above the limit "
                f"of 2^{max_units}; use variational_free_energy (the mean-field bound)"
            )
        v = check_nonempty(self.check_visible(v, binary=False), "v").to(torch.float64)
        params = self._float64_params()
        total = 1 << n_even
        rows = max(1, _CHUNK_ELEMENTS // (v.shape[0] * max(self.layer_sizes)))
        parts = []
        for start in range(0, total, rows):
            states = _enumerate(n_even, start, min(start + rows, total), v)  # (S, n_even)
            parts.append(self._neg_free_energy_grid(v, states, even, params))
        return -torch.logsumexp(torch.cat(parts, 1), 1)

    def _float64_params(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [W.to(torch.float64) for W in self.weights], [
            b.to(torch.float64) for b in self.biases
        ]

    def _neg_free_energy_grid(
        self,
        v: torch.Tensor,
        states: torch.Tensor,
        even: list[int],
        params: tuple[list[torch.Tensor], list[torch.Tensor]],
    ) -> torch.Tensor:
        """-F_even for every (row of v, enumerated even hidden state): (batch, S)."""
        weights, biases = params
        pieces = torch.split(states, [self.layer_sizes[l] for l in even], dim=1)
        # each layer as (batch, 1, n) for v or (1, S, n) for the enumerated ones
        layers: list[torch.Tensor | None] = [v[:, None, :]] + [None] * self.n_layers
        for l, h in zip(even, pieces):
            layers[l] = h[None]
        out = (v @ biases[0])[:, None] + sum((h @ biases[l])[None] for l, h in zip(even, pieces))
        for l in range(1, self.n_layers + 1, 2):
            a = biases[l] + layers[l - 1] @ weights[l - 1]
            if l < self.n_layers:
                a = a + layers[l + 1] @ weights[l].T
            out = out + F.softplus(a).sum(-1)
        return out

    @torch.no_grad()
    def log_z(self, max_units: int = 25) -> float:
        """log Z by enumeration in float64: every state of the even layers (v included) with the
        odd layers summed out, or of the odd layers with the even ones summed out, whichever has
        fewer units (at most ``max_units``)."""
        check_nonnegative_int(max_units, "max_units")
        parities = {p: list(range(p, self.n_layers + 1, 2)) for p in (0, 1)}
        counts = {p: sum(self.layer_sizes[l] for l in ls) for p, ls in parities.items()}
        parity = min(counts, key=counts.get)
        n = counts[parity]
        if n > max_units:
            raise ValueError(
                f"model: exact log Z needs 2^{n} states, above the limit of 2^{max_units}; use "
                "ebmlab.estimators.ais"
            )
        given = parities[parity]
        weights, biases = self._float64_params()
        like = weights[0]
        total = 1 << n
        chunk = max(1, _CHUNK_ELEMENTS // max(self.layer_sizes))
        parts = []
        for start in range(0, total, chunk):
            states = _enumerate(n, start, min(start + chunk, total), like)
            layers: list[torch.Tensor | None] = [None] * (self.n_layers + 1)
            for l, h in zip(given, torch.split(states, [self.layer_sizes[l] for l in given], 1)):
                layers[l] = h
            neg_f = sum(layers[l] @ biases[l] for l in given)
            for l in parities[1 - parity]:
                a = biases[l]
                if l > 0:
                    a = a + layers[l - 1] @ weights[l - 1]
                if l < self.n_layers:
                    a = a + layers[l + 1] @ weights[l].T
                neg_f = neg_f + F.softplus(a).sum(-1)
            parts.append(torch.logsumexp(neg_f, 0))
        return float(torch.logsumexp(torch.stack(parts), 0))

    # ----- Gibbs sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def sample_layer(
        self, layers: Layers, l: int, generator: torch.Generator | None = None, beta: float = 1.0
    ) -> torch.Tensor:
        """h_l ~ p(h_l | h_{l-1}, h_{l+1}) at inverse temperature ``beta``."""
        return bernoulli(torch.sigmoid(beta * self.layer_input(layers, l)), generator)

    @torch.no_grad()
    def gibbs_step(
        self,
        layers: Layers,
        generator: torch.Generator | None = None,
        clamp_visible: bool = False,
    ) -> Layers:
        """One sweep: every odd layer given the even ones, then every even layer (v included
        unless ``clamp_visible``) given the odd ones. Returns the new list of layers."""
        layers = list(layers)
        for l in range(1, self.n_layers + 1, 2):
            layers[l] = self.sample_layer(layers, l, generator)
        for l in range(2 if clamp_visible else 0, self.n_layers + 1, 2):
            layers[l] = self.sample_layer(layers, l, generator)
        return layers

    @torch.no_grad()
    def random_layers(self, n: int, generator: torch.Generator | None = None) -> Layers:
        """Uniformly random binary states of every layer."""
        w = self.weights[0]
        return [
            bernoulli(torch.full((n, size), 0.5, device=w.device, dtype=w.dtype), generator)
            for size in self.layer_sizes
        ]

    @torch.no_grad()
    def sample_states(
        self,
        n: int,
        n_steps: int = 1000,
        generator: torch.Generator | int | None = None,
        layers: Layers | None = None,
    ) -> Layers:
        """Binary states of every layer after ``n_steps`` Gibbs sweeps of ``n`` chains started
        from uniform noise (or from ``layers``). ``generator``: a ``torch.Generator``, an
        integer seed or None."""
        check_nonnegative_int(n_steps, "n_steps")
        generator = as_generator(generator, self.device)
        if layers is None:
            layers = self.random_layers(check_positive_int(n, "n"), generator)
        layers = self._check_layers(layers, "layers")
        for _ in range(n_steps):
            layers = self.gibbs_step(layers, generator)
        return layers

    # ----- generation (``GibbsSampled.sample``): the state is every layer ----------------------
    def start_chains(self, n: int, generator: torch.Generator | None) -> Layers:
        return self.random_layers(n, generator)

    def chains_from(self, v0: torch.Tensor, generator: torch.Generator | None) -> Layers:
        """``v0`` with the hidden layers sampled from their mean-field posterior."""
        means = self.mean_field(v0, n_iters=10)
        return [v0] + [bernoulli(mu, generator) for mu in means]

    def run_chains(self, state: Layers, n_steps: int, generator: torch.Generator | None) -> Layers:
        return self.sample_states(state[0].shape[0], n_steps, generator, state)

    def chains_output(self, state: Layers, generator: torch.Generator | None) -> torch.Tensor:
        """p(v = 1 | h_1) after the last sweep."""
        return torch.sigmoid(self.layer_input(state, 0))

    # ----- mean-field inference -----------------------------------------------------------------
    def recognition(self, v: torch.Tensor) -> Layers:
        """Bottom-up pass with doubled input below the top layer (the input from above is
        missing there): mu_l = sigmoid(b_l + 2 W_{l-1}^T mu_{l-1}), mu_L with single input."""
        means = [v]
        for l in range(1, self.n_layers + 1):
            scale = 2.0 if l < self.n_layers else 1.0
            a = torch.addmm(self.biases[l], means[-1], self.weights[l - 1], alpha=scale)
            means.append(torch.sigmoid(a))
        return means[1:]

    def mean_field_logits(
        self,
        v: torch.Tensor,
        n_iters: int = 10,
        tol: float = 0.0,
        init: Literal["recognition", "zeros"] = "recognition",
    ) -> tuple[Layers, Layers]:
        """(means, logits) of the hidden layers after at most ``n_iters`` rounds of fixed-point
        updates (odd layers, then even ones), stopping early once no mean moved by more than
        ``tol``. ``init``: the doubled-input recognition pass, or all means at 1/2 ("zeros":
        zero logits). Differentiable (callers wrap it in ``no_grad`` when training)."""
        check_positive_int(n_iters, "n_iters")
        if init not in ("recognition", "zeros"):
            raise ValueError(f"init: expected 'recognition' or 'zeros', got {init!r}")
        if init == "recognition":
            hidden = self.recognition(v)
        else:
            hidden = [v.new_full((v.shape[0], n), 0.5) for n in self.layer_sizes[1:]]
        means = [v, *hidden]
        logits = list(means)  # placeholders: every hidden layer is updated in the first round
        order = [*range(1, self.n_layers + 1, 2), *range(2, self.n_layers + 1, 2)]
        visible_input = v @ self.weights[0]  # v is clamped: its input to h_1 is computed once
        for _ in range(n_iters):
            change = 0.0
            for l in order:
                logits[l] = self.layer_input(means, l, visible_input if l == 1 else None)
                new = torch.sigmoid(logits[l])
                if tol > 0:
                    change = max(change, float((new - means[l]).detach().abs().max()))
                means[l] = new
            if tol > 0 and change <= tol:
                break
        return means[1:], logits[1:]

    def mean_field(
        self,
        v: torch.Tensor,
        n_iters: int = 10,
        tol: float = 0.0,
        init: Literal["recognition", "zeros"] = "recognition",
    ) -> Layers:
        """Mean-field posterior means [mu_1, ..., mu_L] of q(h | v) (see ``mean_field_logits``)."""
        return self.mean_field_logits(v, n_iters, tol, init)[0]

    def variational_free_energy(
        self, v: torch.Tensor, n_iters: int = 50, tol: float = 1e-6
    ) -> torch.Tensor:
        """F_q(v) = E(v, mu) - sum_l H(mu_l) >= F(v) at the mean-field q, shape (batch,);
        -F_q(v) - log Z is a lower bound on log p(v)."""
        means, logits = self.mean_field_logits(v, n_iters, tol)
        entropy = sum(bernoulli_entropy(a).sum(-1) for a in logits)
        return self.energy(v, *means) - entropy

    def variational_bound(
        self, v: torch.Tensor, log_z: float, n_iters: int = 50, tol: float = 1e-6
    ) -> torch.Tensor:
        """log p(v) >= -F_q(v) - log Z per example (float64), shape (batch,)."""
        if not math.isfinite(float(log_z)):
            raise ValueError(f"log_z: expected a finite number, got {log_z}")
        v = check_nonempty(self.check_visible(v), "v")
        return -self.variational_free_energy(v, n_iters, tol).to(torch.float64) - float(log_z)
