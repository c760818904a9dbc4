"""Exact log Z, log-probabilities and samples of small binary models by enumeration.

``exact_log_z`` sums exp(-E) over every state with a chunked log-sum-exp in float64:

* RBMs: log Z = logsumexp_v -F(v) = logsumexp_h -F(h), over the smaller layer (the visible layer
  only when it is binary), at most 25 units;
* deep Boltzmann machines: logsumexp over the even layers (v, h_2, ...) of -F_even, the odd layers
  summed out analytically;
* fully visible binary models (``n_units``, ``energy(states)``, ``spin_values``): Ising, Hopfield,
  Boltzmann machines (with hidden units, ``n_units`` counts all of them).

``exact_sample`` draws exact samples by inverse CDF over the enumerated states, then the remaining
layer from its conditional. Exact samples start reverse AIS (``ebmlab.estimators.reverse_ais``),
whose estimate is then a stochastic upper bound on log Z.

References: Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks" (ICML
2008); Burda, Grosse & Salakhutdinov, "Accurate and conservative estimates of MRF log-likelihood
using reverse annealing" (AISTATS 2015).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..samplers import bernoulli_draw, inverse_cdf_categorical
from ..samplers.base import check_spin_choice
from ..validation import Integral, as_generator, check_positive_int
from . import kinds
from .inputs import check_parameters

#: Largest number of binary units ``exact_log_z`` enumerates (2^25 = 33.5 million states).
MAX_EXACT_UNITS = 25
#: Elements per enumeration chunk (32 MB in float64).
_CHUNK_ELEMENTS = 1 << 22
#: Units ``enumerate_states`` can index: bit i of an int64 state number.
_N_UNITS = Integral(0, 62)


def enumerate_states(
    n_units: int,
    start: int = 0,
    stop: int | None = None,
    spin_values: tuple[float, float] = (0.0, 1.0),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """States number ``start``..``stop``-1 of {lo, hi}^n_units; unit i is bit i of the index.

    ``n_units``: an integer in [0, 62] (state indices are int64); ``0 <= start <= stop <=
    2**n_units`` (``stop`` None: 2**n_units); ``spin_values``: (0.0, 1.0) or (-1.0, 1.0)."""
    _N_UNITS.check(n_units, "n_units")
    total = 1 << n_units
    Integral(0, total, description=f"an integer in [0, 2**n_units] = [0, {total}]").check(
        start, "start"
    )
    stop = total if stop is None else stop
    Integral(
        start, total, description=f"an integer in [start, 2**n_units] = [{start}, {total}]"
    ).check(stop, "stop")
    spin_values = check_spin_choice(spin_values, optional=False)
    index = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = (index[:, None] >> torch.arange(n_units, device=device)) & 1
    lo, hi = spin_values
    return (lo + (hi - lo) * bits).to(dtype)


class _LayerView:
    """A model seen through the layer(s) that are enumerated: ``n_units`` binary units with
    ``energy`` the free energy of those units (the other layers summed out)."""

    spin_values = (0.0, 1.0)

    def __init__(self, model: Any, n_units: int, free_energy: str) -> None:
        self.model = model
        self.n_units = n_units
        self.free_energy = free_energy

    def energy(self, states: torch.Tensor) -> torch.Tensor:
        if self.free_energy == "even":
            return self.model.free_energy_even(_even_layers(self.model, states))
        return getattr(self.model, self.free_energy)(states)

    def to(self, dtype: torch.dtype) -> _LayerView:
        self.model = self.model.to(dtype)
        return self

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    def named_parameters(self) -> Any:
        return self.model.named_parameters()

    def named_buffers(self) -> Any:
        return self.model.named_buffers()


def _even(model: Any) -> list[int]:
    return list(range(0, len(model.layer_sizes), 2))


def _even_layers(model: Any, states: torch.Tensor) -> list[torch.Tensor | None]:
    """Concatenated even-layer states (batch, sum of even sizes) as a full list of layers, the
    odd entries None."""
    even = _even(model)
    layers: list[torch.Tensor | None] = [None] * len(model.layer_sizes)
    for l, h in zip(even, torch.split(states, [model.layer_sizes[l] for l in even], 1)):
        layers[l] = h
    return layers


def _enumerated(model: Any) -> tuple[Any, int]:
    """(a fully visible view of what is enumerated, width of the intermediates per state)."""
    if kinds.is_rbm(model):
        width = max(model.n_visible, model.n_hidden)
        # visible units can be enumerated only when they are binary (Bernoulli RBMs)
        if kinds.is_bernoulli_rbm(model) and model.n_visible <= model.n_hidden:
            return _LayerView(model, model.n_visible, "free_energy"), width
        return _LayerView(model, model.n_hidden, "free_energy_hidden"), width
    if kinds.is_dbm(model):
        n_even = sum(model.layer_sizes[l] for l in _even(model))
        return _LayerView(model, n_even, "even"), sum(model.layer_sizes)
    if kinds.is_fully_visible(model):
        return model, 4 * int(model.n_units)
    raise TypeError(
        f"model: exact_log_z needs an RBM (free_energy, free_energy_hidden, n_visible, n_hidden), "
        f"a DBM or a fully visible binary model (n_units, energy, spin_values); got "
        f"{type(model).__name__}"
    )


def _negative_energies(model: Any, max_units: int) -> Iterator[torch.Tensor]:
    """-E (or -F) of every enumerated state, chunk by chunk, in float64, once the model's
    parameters are known to be finite."""
    check_positive_int(max_units, "max_units")
    check_parameters(model)
    view, width = _enumerated(model)
    n = int(view.n_units)
    if n > max_units:
        raise ValueError(
            f"model: exact enumeration needs 2^{n} states, above the limit of 2^{max_units}; "
            "use ebmlab.estimators.ais for larger models"
        )
    view64 = copy.deepcopy(view).to(torch.float64)
    spins, device = kinds.spin_values(view), kinds.model_device(view64)
    chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    total = 1 << n
    for start in range(0, total, chunk):
        states = enumerate_states(n, start, min(start + chunk, total), spins, device=device)
        yield -view64.energy(states)


@torch.no_grad()
def exact_log_z(model: Any, max_units: int = MAX_EXACT_UNITS) -> float:
    """log Z by enumerating every state (RBMs: of the smaller layer; DBMs: of the even layers), in
    float64, with a chunked log-sum-exp. Up to ``max_units`` (an integer >= 1, default 25)
    enumerated units."""
    partial = [torch.logsumexp(values, 0) for values in _negative_energies(model, max_units)]
    return _finite_log_z(float(torch.logsumexp(torch.stack(partial), 0)))


def _finite_log_z(log_z: float) -> float:
    """``log_z`` if finite: with finite parameters only a setting outside them (a NaN
    temperature, say) or an overflow of the energies can make it NaN or infinite."""
    if not math.isfinite(log_z):
        raise ValueError(
            f"model: log Z by enumeration is {log_z}: the energies are not finite (the "
            "parameters are; check the model's other settings)"
        )
    return log_z


@torch.no_grad()
def exact_log_probs(model: Any, max_units: int = 20) -> torch.Tensor:
    """log p of every enumerated state, indexed as in ``enumerate_states``, float64: every state
    of a fully visible model, the marginal of the smaller layer of an RBM, of the even layers
    (concatenated) of a DBM. ``max_units``: an integer >= 1."""
    log_p = torch.cat(list(_negative_energies(model, max_units)))
    return log_p - _finite_log_z(float(torch.logsumexp(log_p, 0)))


def _draw_states(view: Any, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` states of ``view``'s units from their exact marginal, float64 on the model's device."""
    log_p = exact_log_probs(view, max_units=MAX_EXACT_UNITS)
    index = inverse_cdf_categorical(torch.exp(log_p - log_p.max()), n, generator)
    spins = kinds.spin_values(view)
    return enumerate_states(int(view.n_units), spin_values=spins, device=log_p.device)[index]


@torch.no_grad()
def exact_sample(model: Any, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` exact samples by enumeration: fully visible models directly; RBMs (Bernoulli and
    Gaussian-Bernoulli) by drawing h from its exact marginal, then v ~ p(v | h); DBMs by drawing
    the even layers from their exact marginal, then the odd ones given them (the result: every
    layer concatenated, (n, sum of layer sizes)). ``n``: a positive integer; ``generator``: a
    ``torch.Generator``, an integer seed (a generator on the model's device) or None."""
    check_positive_int(n, "n")
    if hasattr(model, "parameters"):
        generator = as_generator(generator, kinds.model_device(model), "generator")
    else:
        generator = as_generator(generator, None, "generator")
    if kinds.is_rbm(model):
        W = model.W
        h = _draw_states(_LayerView(model, model.n_hidden, "free_energy_hidden"), n, generator)
        h = h.to(device=W.device, dtype=W.dtype)
        if kinds.is_gaussian_rbm(model):
            mean = model.mean_v_given_h(h)
            noise = torch.randn(mean.shape, generator=generator, device=W.device, dtype=W.dtype)
            return mean + model.sigma() * noise
        if not kinds.is_bernoulli_rbm(model):
            raise TypeError("model: exact_sample supports Bernoulli and Gaussian-Bernoulli RBMs")
        return bernoulli_draw(torch.sigmoid(torch.addmm(model.b, h, W.T)), generator)
    if kinds.is_dbm(model):
        return _dbm_sample(model, n, generator)
    states = _draw_states(model, n, generator)
    return states.to(getattr(model, "dtype", torch.get_default_dtype()))


def _dbm_sample(model: Any, n: int, generator: torch.Generator | None) -> torch.Tensor:
    W = model.weights[0]
    even = _draw_states(_enumerated(model)[0], n, generator).to(device=W.device, dtype=W.dtype)
    layers = _even_layers(model, even)
    for l in range(1, len(model.layer_sizes), 2):  # odd layers given their even neighbours
        layers[l] = bernoulli_draw(torch.sigmoid(model.layer_input(layers, l)), generator)
    return torch.cat(layers, 1)
