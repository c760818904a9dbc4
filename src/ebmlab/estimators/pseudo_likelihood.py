"""Pseudo-log-likelihood (Besag 1975) of binary data under any model with a free energy.

For binary visible units v in {0, 1}^D and a free energy F (p(v) = exp(-F(v)) / Z), the
conditional of one unit given the others does not involve Z:

    p(v_i | v_{-i}) = exp(-F(v)) / (exp(-F(v)) + exp(-F(v^(i))))
    log p(v_i | v_{-i}) = -softplus(F(v) - F(v^(i))),

with v^(i) the vector v with bit i flipped. The pseudo-log-likelihood of v is
PL(v) = sum_i log p(v_i | v_{-i}), in nats per example. With ``n_bits`` = k < D, k distinct bits
i_1..i_k are drawn uniformly per example and (D / k) sum_j log p(v_{i_j} | v_{-i_j}) is an unbiased
estimate of PL(v) (its expectation over the draw is the sum), at the cost of k + 1 free energies
per example instead of D + 1: with k = 1 it is the one-bit estimate of scikit-learn's
``BernoulliRBM.score_samples``.

A model with its own ``log_conditionals(v, bits)`` (a Bernoulli RBM: O(H) per flipped bit from
the hidden inputs, instead of a free energy's O(D H)) is scored by it; every other model with a
``free_energy`` (DBMs with their even layers enumerated, general Boltzmann machines) through the
free energies of the flipped copies.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from ..validation import as_generator, check_binary, check_positive_int
from .inputs import check_data

#: Rows (examples times flipped bits) passed to the free energy at once.
FREE_ENERGY_ROWS = 20_000


@torch.no_grad()
def pseudo_log_likelihood(
    model: Any,
    v: Any,
    n_bits: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PL(v) = sum_i log p(v_i | v_{-i}) of each row of ``v`` (nats per example), shape (n,).

    Args:
        model: a model over binary visible units with ``free_energy(v)`` (shape (n,)), or with
            ``log_conditionals(v, bits=None)`` (log p(v_i | v_-i) of the features ``bits`` of
            each row, shape (n, k); of every feature, shape (n, D), without ``bits``).
        v: (n, D) binary rows (0/1), n >= 1, checked against the model.
        n_bits: None: every bit (exact); k in 1..D: k distinct bits drawn uniformly per row, the
            unbiased estimate (D / k) sum over the drawn bits.
        generator: a ``torch.Generator`` on ``v``'s device, or an integer seed (a new
            generator there), that draws the bits when ``n_bits`` is given.
    """
    conditionals = getattr(model, "log_conditionals", None)
    if not callable(getattr(model, "free_energy", None)) and not callable(conditionals):
        raise TypeError(
            "model: expected a model with a free_energy(v) or log_conditionals(v, bits) method, "
            f"got {type(model).__name__}"
        )
    x = check_binary(check_data(model, v, "v"), "v")
    generator = as_generator(generator, x.device, "generator")
    n, d = x.shape
    if n_bits is None and callable(conditionals):
        return conditionals(x).sum(1)  # every bit, in feature order: no per-row indices
    if n_bits is None:
        bits = torch.arange(d, device=x.device).expand(n, d)
    else:
        k = check_positive_int(n_bits, "n_bits")
        if k > d:
            raise ValueError(f"n_bits: expected at most the {d} visible units, got {k}")
        noise = torch.rand(n, d, generator=generator, device=x.device)
        bits = noise.argsort(1)[:, :k]  # a uniform subset of k distinct bits per row
    k = bits.shape[1]
    if callable(conditionals):
        return conditionals(x, bits).sum(1) * (d / k)
    rows = max(1, FREE_ENERGY_ROWS // (k + 1))
    parts = [
        _block(model, x[start : start + rows], bits[start : start + rows])
        for start in range(0, n, rows)
    ]
    return torch.cat(parts) * (d / k)


def _block(model: Any, x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """sum_j log p(v_{i_j} | v_{-i_j}) of each row of ``x``, over its bits ``bits[row]``."""
    n, k = bits.shape
    flipped = x.unsqueeze(1).repeat(
        1, k, 1
    )  # (n, k, D): copy j of row r has bit bits[r, j] flipped
    index = bits.unsqueeze(2)
    flipped.scatter_(2, index, 1.0 - flipped.gather(2, index))
    f_flip = model.free_energy(flipped.reshape(n * k, -1)).reshape(n, k)
    return -F.softplus(model.free_energy(x).unsqueeze(1) - f_flip).sum(1)


__all__ = ["pseudo_log_likelihood"]
