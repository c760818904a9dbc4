"""Hopfield networks: binary associative memories, and the modern continuous Hopfield network.

Binary network (Hopfield 1982; lecture 001 part 1, lecture 004). States are spins y in {-1, +1}^N
(0/1 data is converted explicitly with ``to_spins``). With a symmetric weight matrix W whose
diagonal is zero and biases (thresholds) b,

    E(y) = -1/2 y^T W y - b^T y,        local field  z_i = sum_{j != i} w_ij y_j + b_i.

Conventions, written down once:

* Hebbian rule with the 1/N normalisation and a zero diagonal: W = (1/N) sum_p y^p y^p^T - (P/N) I.
  The lectures' worked example (lecture 004) prints the matrix with its diagonal P/N kept; for
  +-1 states the diagonal only adds the constant sum_i w_ii to y^T W y and never changes a field
  z_i, so every rule here zeroes it (``set_weights`` drops a given diagonal too).
* Deterministic update (lecture 001): unit i flips iff y_i z_i < 0; a zero field (a tie) keeps
  the state. Each flip lowers E by 2 |z_i| > 0, so asynchronous dynamics (one unit at a time, in a
  random order per sweep) never increase the energy and stop at a fixed point. Fields within
  float rounding of zero count as ties (``_tie_tolerance``).
* Synchronous dynamics (all units at once) end in a fixed point or a 2-cycle for symmetric W
  (Goles, Fogelman-Soulie & Pellegrin 1985); ``recall(mode="sync")`` detects both.
* Unit clocks (lecture 004's "asynchronous II", ``mode="clock"``): each unit carries its own
  Poisson clock of rate 1, i.e. independent Exp(1) waiting times, and updates itself when its
  clock rings. Merged, the rings are a sequence of single-unit updates in which a unit may come
  back before another has had its turn; one "sweep" is one unit of time (N updates on average,
  as in a random-permutation sweep). Every ring is an ordinary asynchronous update, so the
  energy never increases, and the dynamics stop at a fixed point of the same energy. By the
  memorylessness of the exponential, restarting the clocks at each time unit changes nothing.
* Stochastic network at temperature T: p(y) proportional to exp(-E(y) / T). Flipping y_i changes E
  by 2 y_i z_i, so the Gibbs conditional is P(y_i = +1 | rest) = sigmoid(2 z_i / T). Annealing
  multiplies T by alpha < 1; retrieval is the sign of the average of the last M samples.

Storage rules: ``hebbian``; ``storkey`` (Storkey 1997, incremental and local); ``pseudoinverse``
(projection rule, Personnaz, Guyon & Dreyfus 1985; Kanter & Sompolinsky 1987); ``learned``, the
gradient rule of lecture 001: minimise sum_data E(y) - sum E(y') over W, i.e.
W <- W + eta (E_data[y y^T] - E[y' y'^T]) (the slide's minus sign is garbled: dE/dW = -1/2 y y^T),
with the negatives y' started at the stored patterns and evolved only a few steps, so only the
patterns' neighbourhoods are raised. The lecture's earlier variants are options: random starts
run to convergence (``learned_negatives="random"``) and pattern starts run to convergence
(``"patterns"``).

Modern Hopfield network (Ramsauer et al. 2020, "Hopfield Networks is All You Need"): stored
patterns X = (x_1, ..., x_N) in R^d, continuous state xi,

    E(xi) = -lse(beta, X^T xi) + 1/2 xi^T xi + beta^-1 log N + 1/2 M^2,   M = max_i ||x_i||,
    lse(beta, z) = beta^-1 log sum_i exp(beta z_i),

and the update xi <- X softmax(beta X^T xi), a CCCP step (convex 1/2 xi^T xi plus concave -lse),
so the energy never increases; well-separated patterns are retrieved in one step.

Capacity (the bounds lecture 001 quotes, as functions of N; ``capacity_bounds``):

* Mostafa & St. Jacques (1985): for any K <= N patterns some weights make every one stable
  (``projection_capacity``). The projection rule reaches it: W x = x for every stored x, so
  the field of unit i is x_i (1 - d_ii) with d_ii <= 1 the projector's diagonal; with the
  diagonal removed, as here, it stores up to N - 1 patterns in general position (at K = N the
  projector is the identity, which is zero without its diagonal).
* McEliece, Posner, Rodemich & Venkatesh (1987): random patterns stored by the Hebbian rule are
  all exactly stable with probability -> 1 when K <= N / (4 ln N) (N / (2 ln N) for most of
  them one at a time; ``mceliece_capacity``).
* Amit, Gutfreund & Sompolinsky (1985): retrieval with a small fraction of wrong bits survives
  up to K = 0.138 N (``amit_capacity``).
* Hebbian signal and noise, exactly: for random patterns, y_i z_i = (N - 1) / N + C / N for a
  stored pattern y, where the crosstalk C is a sum of M = (K - 1)(N - 1) independent +-1 terms,
  so bit i flips with probability P(Binomial(M, 1/2) < (M - N + 1) / 2)
  (``hebbian_bit_error_probability``; a tie keeps the bit); the normal approximation of it is
  Phi(-sqrt(N / K)), the signal-to-noise argument behind McEliece's bound.
  ``hebbian_fixed_point_probability`` treats the N bits of a pattern as independent,
  (1 - p_err)^N, the curve of the capacity plot.

References: Hopfield (1982) PNAS 79:2554; Amit, Gutfreund & Sompolinsky (1985) PRL 55:1530
(capacity 0.138 N, spurious mixture states); Storkey (1997) ICANN; Personnaz et al. (1985) J.
Physique Lett. 46:L359; Mostafa & St. Jacques (1985) IEEE Trans. Inf. Theory 31:461; McEliece,
Posner, Rodemich & Venkatesh (1987) IEEE Trans. Inf. Theory 33:461; Ramsauer et al. (2020)
arXiv:2008.02217.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..samplers import Gibbs, SimulatedAnnealing, SweepTarget, make_generator
from ..samplers.annealing import cooling_steps, geometric_schedule
from ..validation import (
    Boolean,
    Integral,
    OneOf,
    Real,
    as_generator,
    as_tensor,
    check_in_range,
    check_nonempty,
    check_positive,
    check_positive_int,
    validate,
)
from .base import Model

SPIN_VALUES = (-1.0, 1.0)
RULES = ("hebbian", "storkey", "pseudoinverse", "learned")
LEARNED_NEGATIVES = ("neighbourhood", "patterns", "random")
#: Hebbian capacity for random patterns, Amit, Gutfreund & Sompolinsky (1985).
HEBBIAN_CAPACITY = 0.138
#: Quiet epochs (no negative left its pattern) after which the learned rule with noisy starts stops.
LEARNED_PATIENCE = 5
#: Units updated between two matrix products in asynchronous sweeps (a speed knob only).
ASYNC_BLOCK = 64
#: Deterministic dynamics of ``recall``: a random permutation per sweep, all units at once, or
#: each unit on its own random clock.
RECALL_MODES = ("async", "sync", "clock")
#: Unit orders of the stochastic sweeps of ``gibbs``.
GIBBS_MODES = ("async", "clock")


class HopfieldCapacityWarning(UserWarning):
    """More patterns than a storage rule can hold reliably."""


# ----- conversions and checks --------------------------------------------------------------------
def to_spins(x: Any, name: str = "x") -> torch.Tensor:
    """Map 0/1 data to spins: y = 2 x - 1."""
    x = as_tensor(x, name)
    if not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)]
        raise ValueError(
            f"{name}: to_spins expects 0/1 data, found {bad.numel()} other values "
            f"(e.g. {bad.flatten()[0].item():.4g}); threshold first, e.g. (x > 0.5)"
        )
    return 2.0 * x - 1.0


def to_binary(y: Any, name: str = "y") -> torch.Tensor:
    """Map spins to 0/1 data: x = (y + 1) / 2."""
    y = as_tensor(y, name)
    _check_spin_values(y, name)
    return (y + 1.0) / 2.0


def _check_spin_values(y: torch.Tensor, name: str) -> None:
    ok = (y == 1) | (y == -1)
    if ok.all():
        return
    if ((y == 0) | (y == 1)).all():
        raise ValueError(
            f"{name}: looks like 0/1 data; Hopfield states are spins -1/+1: convert explicitly "
            "with ebmlab.models.hopfield.to_spins(x)"
        )
    bad = y[~ok]
    raise ValueError(
        f"{name}: expected spins -1/+1, found {bad.numel()} other values "
        f"(e.g. {bad.flatten()[0].item():.4g}); binarize and convert with to_spins"
    )


def check_spins(
    y: Any, name: str, n_units: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Validate a batch of states: shape (batch, n_units), values -1/+1."""
    y = as_tensor(y, name, dim=2, n_features=n_units, device=device, dtype=dtype)
    _check_spin_values(y, name)
    return y


def flip_bits(
    y: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip exactly round(fraction * N) randomly chosen units of each row of ``y`` (+-1 states);
    ``generator``: a torch.Generator or a seed. ``y`` is not checked (the learned rule calls this
    in its loop): check states given by hand with ``check_spins``."""
    check_in_range(fraction, "fraction", 0, 1)
    generator = as_generator(generator, y.device)
    n_flip = round(fraction * y.shape[1])
    scores = torch.rand(y.shape, generator=generator, device=y.device)
    chosen = scores.argsort(dim=1)[:, :n_flip]
    signs = torch.ones_like(y)
    signs.scatter_(1, chosen, -1.0)
    return y * signs


# ----- storage rules -----------------------------------------------------------------------------
def hebbian_weights(patterns: torch.Tensor) -> torch.Tensor:
    """W = (1/N) sum_p y^p y^p^T with a zero diagonal; patterns (P, N) of +-1."""
    x = patterns.double()
    w = x.T @ x / x.shape[1]
    w.fill_diagonal_(0.0)
    return w.to(patterns.dtype)


def storkey_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Storkey (1997): for each pattern xi in turn,

    w_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N,  h_ij = sum_{k != i, j} w_ik xi_k,

    computed as h_ij = h_i - w_ij xi_j with h = W xi (the diagonal is kept at zero).
    """
    x = patterns.double()
    n = x.shape[1]
    w = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for xi in x:
        h = w @ xi
        h_ij = h[:, None] - w * xi[None, :]
        w += (torch.outer(xi, xi) - xi[:, None] * h_ij.T - h_ij * xi[None, :]) / n
        w.fill_diagonal_(0.0)
    return w.to(patterns.dtype)


def pseudoinverse_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Projection rule W = X^T (X X^T)^+ X (the projector onto the patterns' span), zero diagonal.

    Every stored pattern satisfies W x = x before the diagonal d is removed, so its fields are
    x_i (1 - d_ii) and it stays a fixed point while d_ii < 1. Linearly dependent patterns make
    X X^T singular: the Moore-Penrose inverse is used with a warning. Patterns spanning all of
    R^N give W = I, i.e. nothing once the diagonal is removed: that is an error.
    """
    x = patterns.double()
    p, n = x.shape
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    # numpy's matrix_rank tolerance: singular values below s_max * max(P, N) * eps are zero
    rank = int((s > s.max() * max(p, n) * torch.finfo(torch.float64).eps).sum())
    if rank >= n:
        raise ValueError(
            f"patterns: the pseudoinverse rule cannot store {p} patterns that span all of R^{n} "
            f"(rank {rank}): W would be the identity, which is zero without its diagonal; store "
            f"at most {n - 1} linearly independent patterns"
        )
    if rank < p:
        warnings.warn(
            f"patterns: the {p} x {p} overlap matrix X X^T is singular (rank {rank}: the patterns "
            "are linearly dependent, e.g. repeated); using the Moore-Penrose pseudo-inverse, "
            "which projects onto their span",
            HopfieldCapacityWarning,
            stacklevel=3,
        )
    v = vh[:rank]
    w = v.T @ v
    w.fill_diagonal_(0.0)
    return w.to(patterns.dtype)


# ----- capacity ----------------------------------------------------------------------------------
def projection_capacity(n_units: int) -> int:
    """K = N: the most patterns that suitable weights make stable whatever the patterns
    (Mostafa & St. Jacques 1985); see the module docstring for the projection rule."""
    return check_positive_int(n_units, "n_units")


def mceliece_capacity(n_units: int, all_patterns: bool = True) -> float:
    """N / (4 ln N): random patterns the Hebbian rule stores with every one exactly stable, with
    probability -> 1 as N grows (McEliece et al. 1987); N / (2 ln N) with ``all_patterns=False``
    (each given pattern stable). N >= 2."""
    n = check_positive_int(n_units, "n_units")
    if n < 2:
        raise ValueError(f"n_units: expected at least 2 (ln N > 0), got {n}")
    return n / ((4.0 if all_patterns else 2.0) * math.log(n))


def amit_capacity(n_units: int) -> float:
    """0.138 N: the Hebbian rule's capacity for retrieval with few errors (Amit et al. 1985)."""
    return HEBBIAN_CAPACITY * check_positive_int(n_units, "n_units")


def capacity_bounds(n_units: int) -> dict[str, float]:
    """The three capacities lecture 001 quotes, in patterns, for a network of ``n_units``."""
    return {
        "mceliece": mceliece_capacity(n_units),
        "amit": amit_capacity(n_units),
        "mostafa_st_jacques": float(projection_capacity(n_units)),
    }


def hebbian_bit_error_probability(n_units: int, n_patterns: int) -> float:
    """P(a given bit of a stored random pattern flips) under the Hebbian rule, exactly:
    P(B < (M - N + 1) / 2) for B ~ Binomial(M, 1/2), M = (K - 1)(N - 1) (module docstring).

    Summed in log space over the 80 standard deviations of B below the threshold (the rest is
    below float64's resolution)."""
    n = check_positive_int(n_units, "n_units")
    k = check_positive_int(n_patterns, "n_patterns")
    m = (k - 1) * (n - 1)
    top = math.ceil((m - n + 1) / 2) - 1  # the largest B that flips the bit
    if top < 0:
        return 0.0
    low = max(0, top - math.ceil(40 * math.sqrt(m)) - 10)
    b = torch.arange(low, top + 1, dtype=torch.float64)
    log_pmf = math.lgamma(m + 1) - torch.lgamma(b + 1) - torch.lgamma(m - b + 1) - m * math.log(2.0)
    return float(torch.logsumexp(log_pmf, 0).exp().clamp(max=1.0))


def hebbian_fixed_point_probability(n_units: int, n_patterns: int) -> float:
    """(1 - p_err)^N: a stored random pattern is a fixed point of the Hebbian network, treating
    its N bits as independent. They are positively correlated through the crosstalk they share,
    so at small N this runs a little low (by up to about 0.07 at N = 200)."""
    p = hebbian_bit_error_probability(n_units, n_patterns)
    return math.exp(n_units * math.log1p(-p)) if p < 1.0 else 0.0


def clock_updates(
    n_units: int,
    duration: float = 1.0,
    generator: torch.Generator | None = None,
    rate: float = 1.0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rings of ``n_units`` independent Poisson clocks over [0, ``duration``): each unit's
    waiting times are Exp(``rate``). Returns (units int64, times float64), in time order.
    ``generator``: a torch.Generator or a seed."""
    n = check_positive_int(n_units, "n_units")
    check_positive(duration, "duration")
    check_positive(rate, "rate")
    generator = as_generator(generator, device)
    mean = rate * duration
    per_unit = max(1, math.ceil(mean + 6.0 * math.sqrt(mean) + 6.0))
    waits = torch.empty(n, per_unit, dtype=torch.float64, device=device)
    times = waits.exponential_(rate, generator=generator).cumsum(1)
    while (times[:, -1] < duration).any():  # a unit whose clock outran the draws: draw more
        more = torch.empty(n, per_unit, dtype=torch.float64, device=device)
        more = more.exponential_(rate, generator=generator).cumsum(1) + times[:, -1:]
        times = torch.cat([times, more], 1)
    units = torch.arange(n, device=device)[:, None].expand_as(times)
    inside = times < duration
    ring_times, order = times[inside].sort()
    return units[inside][order], ring_times


def _distinct_runs(units: torch.Tensor) -> list[torch.Tensor]:
    """Split a sequence of units into consecutive runs in which no unit repeats."""
    runs, seen, start = [], set(), 0
    for position, unit in enumerate(units.tolist()):
        if unit in seen:
            runs.append(units[start:position])
            seen, start = set(), position
        seen.add(unit)
    if start < units.numel():
        runs.append(units[start:])
    return runs


@dataclass
class RecallInfo:
    """Per-probe outcome of ``Hopfield.recall``.

    ``sweeps`` counts the sweeps run (a probe that is already a fixed point needs 1 to find out);
    ``converged`` marks fixed points, ``cycle2`` synchronous 2-cycles; ``energy`` is final.
    """

    converged: torch.Tensor
    sweeps: torch.Tensor
    cycle2: torch.Tensor
    energy: torch.Tensor


class Hopfield(Model):
    """Binary Hopfield network with ``n_units`` +-1 units (see the module docstring).

    Args:
        n_units: number of units N.
        rule: storage rule used by ``store``: "hebbian", "storkey", "pseudoinverse", "learned".
        learned_epochs: most passes over the patterns for the learned rule; it stops early once
            every negative stays at its pattern (with ``learned_noise``: for 5 epochs in a row).
        learned_lr: step size eta per pattern (None: 0.2 / N, a fifth of the weight one Hebbian
            pattern adds; the update sums over the batch).
        learned_steps: evolution steps of the negatives (the lecture's 2-4).
        learned_negatives: "neighbourhood" (start at the patterns, ``learned_steps`` steps),
            "patterns" (start at the patterns, run to a fixed point) or "random" (random starts
            run to a fixed point).
        learned_noise: fraction of bits flipped in the negatives' starts (0: the lecture's rule;
            > 0 raises a wider neighbourhood, giving larger basins).
        learned_mode: "async" (a step is a random-order sweep: energy descent, stable) or "sync"
            (a step updates all units at once: faster, but past capacity its 2-cycles feed back
            into W and the weights can blow up).
        learned_batch_size: patterns per gradient step (None: all).
        seed: seed for the learned rule's randomness (None: fresh entropy).

    Example (lecture 004's worked example):

    >>> net = Hopfield(4).store(torch.tensor([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    >>> net.recall(torch.tensor([[-1.0, 1.0, 1.0, 1.0]]), seed=0)
    tensor([[1., 1., 1., 1.]])
    """

    likelihood_kind = "none"
    spin_values = SPIN_VALUES

    @validate(
        n_units=Integral(1),
        rule=OneOf(*RULES),
        learned_epochs=Integral(0),
        learned_lr=Real(0, closed="neither") | None,
        learned_steps=Integral(1),
        learned_negatives=OneOf(*LEARNED_NEGATIVES),
        learned_noise=Real(0, 1, description="a fraction in [0, 1]"),
        learned_mode=OneOf("sync", "async"),
        learned_batch_size=Integral(1) | None,
        seed=Integral() | None,
    )
    def __init__(
        self,
        n_units: int,
        rule: str = "hebbian",
        learned_epochs: int = 100,
        learned_lr: float | None = None,
        learned_steps: int = 3,
        learned_negatives: str = "neighbourhood",
        learned_noise: float = 0.0,
        learned_mode: str = "async",
        learned_batch_size: int | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        self.n_units = n_units
        self.rule = rule
        self.learned = dict(
            epochs=learned_epochs,
            lr=0.2 / n_units if learned_lr is None else float(learned_lr),
            steps=learned_steps,
            negatives=learned_negatives,
            noise=learned_noise,
            mode=learned_mode,
            batch_size=learned_batch_size,
            seed=seed,
        )
        self.register_buffer("W", torch.zeros(n_units, n_units))
        self.register_buffer("b", torch.zeros(n_units))
        self.register_buffer("patterns", torch.zeros(0, n_units))

    # ----- weights -----------------------------------------------------------------------------
    def set_weights(self, W: Any, b: Any = None) -> Hopfield:
        """Use a given symmetric weight matrix (its diagonal is dropped) and optional biases."""
        w = as_tensor(W, "W", dim=2, device=self.W.device, dtype=self.W.dtype)
        if w.shape != (self.n_units, self.n_units):
            raise ValueError(
                f"W: expected shape ({self.n_units}, {self.n_units}), got {tuple(w.shape)}"
            )
        # asymmetric weights have no energy function and need not converge
        asym = (w - w.T).abs().max().item()
        if asym > 1e-6 * max(w.abs().max().item(), 1e-30):
            raise ValueError(
                f"W: a Hopfield network needs symmetric weights (w_ij = w_ji), got max "
                f"|W - W^T| = {asym:.3g}; symmetrise with (W + W.T) / 2"
            )
        w = (w + w.T) / 2
        w.fill_diagonal_(0.0)
        self.W = w
        if b is not None:
            self.b = as_tensor(
                b, "b", dim=1, n_features=self.n_units, device=self.W.device, dtype=self.W.dtype
            )
        return self

    def store(self, patterns: Any, append: bool = False) -> Hopfield:
        """Set W from +-1 patterns (P, N) with the model's rule; ``append`` adds to those stored."""
        x = check_spins(patterns, "patterns", self.n_units, self.W.device, self.W.dtype)
        if x.shape[0] == 0:
            raise ValueError("patterns: expected at least one pattern, got 0")
        if append:
            x = torch.cat([self.patterns, x])
        load = x.shape[0] / self.n_units
        # 0.138 is a large-N result for random patterns; tiny networks (the lectures') are exempt
        if self.rule == "hebbian" and load > HEBBIAN_CAPACITY and self.n_units >= 100:
            warnings.warn(
                f"patterns: load P/N = {load:.3g} exceeds the Hebbian capacity "
                f"{HEBBIAN_CAPACITY} (Amit, Gutfreund & Sompolinsky 1985): most patterns will "
                "not be retrieved; use fewer patterns or another rule",
                HopfieldCapacityWarning,
                stacklevel=2,
            )
        if self.rule == "hebbian":
            w = hebbian_weights(x)
        elif self.rule == "storkey":
            w = storkey_weights(x)
        elif self.rule == "pseudoinverse":
            w = pseudoinverse_weights(x)
        else:
            w = self._learned_weights(x)
        self.W = w
        self.patterns = x
        return self

    def _learned_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Lecture 001's rule W += eta (E_data[y y^T] - E[y' y'^T]) starting from Hebbian W."""
        opts = self.learned
        generator = make_generator(opts["seed"], x.device)
        self.W = hebbian_weights(x)
        p = x.shape[0]
        batch = p if opts["batch_size"] is None else opts["batch_size"]
        quiet = 0  # consecutive epochs in which no negative left its pattern
        for _ in range(opts["epochs"]):
            changed = 0
            for idx in torch.randperm(p, generator=generator, device=x.device).split(batch):
                y = x[idx]
                if opts["negatives"] == "random":
                    u = torch.rand(y.shape, generator=generator, device=y.device)
                    start = torch.where(u < 0.5, -1.0, 1.0)
                else:
                    start = flip_bits(y, opts["noise"], generator) if opts["noise"] else y
                sweeps = opts["steps"] if opts["negatives"] == "neighbourhood" else 100
                neg = self._evolve(start.to(y.dtype), opts["mode"], sweeps, generator)[0]
                differs = (neg != y).any(1)
                changed += int(differs.sum())
                if opts["negatives"] != "random" and not differs.any():
                    continue
                # summed, not averaged, over the batch: eta is a step per pattern
                grad = y.T @ y - neg.T @ neg
                w = self.W + opts["lr"] * grad
                w.fill_diagonal_(0.0)
                self.W = w
            quiet = quiet + 1 if changed == 0 else 0
            # exact starts that all stay put cannot change any more; noisy starts are random, so
            # stop only after LEARNED_PATIENCE quiet epochs in a row
            patience = 1 if opts["noise"] == 0 else LEARNED_PATIENCE
            if opts["negatives"] != "random" and quiet >= patience:
                break
        return self.W

    # ----- energy and fields -------------------------------------------------------------------
    def energy(self, states: Any) -> torch.Tensor:
        """E(y) = -1/2 y^T W y - b^T y for a batch of +-1 states; shape (batch,)."""
        y = check_spins(states, "states", self.n_units, self.W.device, self.W.dtype)
        return self._energy(y)

    def _energy(self, y: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((y @ self.W) * y).sum(-1) - y @ self.b

    def local_field(self, states: Any) -> torch.Tensor:
        """z = y W + b (W has a zero diagonal, so z_i excludes unit i itself); (batch, N)."""
        y = check_spins(states, "states", self.n_units, self.W.device, self.W.dtype)
        return y @ self.W + self.b

    def _tie_tolerance(self) -> float:
        # a field is a sum of N terms; rounding can turn an exact tie (e.g. the lecture's example
        # with 1/N weights) into +-1e-7, so fields within a few ulps of the largest possible field
        # count as ties; a flip still lowers E by more than this margin
        scale = (self.W.abs().sum(1) + self.b.abs()).max().item()
        return 64 * torch.finfo(self.W.dtype).eps * max(scale, 1e-30)

    def is_fixed_point(self, states: Any) -> torch.Tensor:
        """True where no single-unit flip is allowed (y_i z_i >= 0 for every i); (batch,) bool."""
        y = check_spins(states, "states", self.n_units, self.W.device, self.W.dtype)
        z = y @ self.W + self.b
        return ((y * z) >= -self._tie_tolerance()).all(1)

    # ----- deterministic dynamics --------------------------------------------------------------
    def sweep_sync(self, states: torch.Tensor, tol: float | None = None) -> torch.Tensor:
        """One synchronous update of every unit: flip where y_i z_i < 0 (one matrix product)."""
        tol = self._tie_tolerance() if tol is None else tol
        z = torch.addmm(self.b, states, self.W)  # fields (W symmetric)
        flip = z.mul_(states).lt_(-tol)  # in place: 1.0 where y_i z_i < 0, else 0.0
        return flip.mul_(-2.0).add_(1.0).mul_(states)  # y * (1 - 2 flip)

    def sweep_async(
        self,
        states: torch.Tensor,
        order: torch.Tensor,
        clamp: torch.Tensor | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        tol: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the units one at a time in ``order`` (the same order for every row).

        ``states`` (batch, N) are trusted to be +-1 (no checks: this is the inner loop).
        With ``temperature`` T > 0 unit i is resampled from P(+1) = sigmoid(2 z_i / T) instead
        of the greedy flip. ``clamp`` (batch, N) bool marks units that never change. Returns the
        new states and the number of changed units per row.

        Exactly equivalent to single-unit updates in ``order``, but vectorised: units are taken in
        blocks of ``ASYNC_BLOCK``; one matrix product gives the block's fields. A unit whose update
        leaves it unchanged affects nobody, so for every row we find the *first* unit of the block
        (at or after the row's position) that would change, apply that change to the row and to
        the block's fields (a rank-one update with the block's weights), move the row's position
        past it, and repeat; rows with no pending change drop out. The loop runs as many times as
        the largest number of changes in one row within the block, not once per unit. For Gibbs
        sweeps the uniforms are drawn for the whole block up front, so each unit still sees the
        fields left by the units before it.
        """
        y = states.clone()
        batch = y.shape[0]
        tol = self._tie_tolerance() if tol is None else tol
        flips = torch.zeros(batch, dtype=torch.long, device=y.device)
        rows_all = torch.arange(batch, device=y.device)
        for block in order.split(ASYNC_BLOCK):
            k = block.numel()
            w_block = self.W[block][:, block]  # (k, k), symmetric with a zero diagonal
            z = y @ self.W[:, block] + self.b[block]  # (batch, k) fields of the block's units
            y_block = y[:, block]
            keep = None if clamp is None else clamp[:, block]
            u = None
            if temperature > 0:
                u = torch.rand(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            position = torch.zeros(batch, dtype=torch.long, device=y.device)
            unit = torch.arange(k, device=y.device)
            rows = rows_all
            while rows.numel():
                ya, za = y_block[rows], z[rows]
                if u is None:
                    change = ya * za < -tol
                else:
                    up = u[rows] < torch.sigmoid(2.0 * za / temperature)
                    change = up != (ya > 0)
                change &= unit[None, :] >= position[rows, None]
                if keep is not None:
                    change &= ~keep[rows]
                pending = change.any(1)
                rows = rows[pending]
                if rows.numel() == 0:
                    break
                first = change[pending].to(torch.uint8).argmax(1)  # first pending unit per row
                delta = -2.0 * y_block[rows, first]
                y_block[rows, first] += delta
                z[rows] += delta[:, None] * w_block[first]
                position[rows] = first + 1
                flips[rows] += 1
            y[:, block] = y_block
        return y, flips

    def sweep_events(
        self,
        states: torch.Tensor,
        units: torch.Tensor,
        clamp: torch.Tensor | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        tol: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-unit updates in the order of ``units``, in which a unit may appear many times
        (the rings of ``clock_updates``): ``sweep_async`` on each run without a repeated unit.
        Arguments and results as in ``sweep_async``."""
        y = states
        flips = torch.zeros(states.shape[0], dtype=torch.long, device=states.device)
        for run in _distinct_runs(units):
            y, changed = self.sweep_async(y, run, clamp, temperature, generator, tol)
            flips += changed
        return (y.clone() if y is states else y), flips

    def _stable(self, y: torch.Tensor, keep: torch.Tensor | None, tol: float) -> torch.Tensor:
        """Rows where no unit that may move would flip (a fixed point of the dynamics)."""
        ok = y * torch.addmm(self.b, y, self.W) >= -tol
        return (ok if keep is None else ok | keep).all(1)

    def _evolve(
        self,
        y: torch.Tensor,
        mode: str,
        max_sweeps: int,
        generator: torch.Generator,
        clamp: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deterministic dynamics on the unfinished rows; returns (y, converged, sweeps, cycle2).

        The unfinished rows are kept compacted in ``current``; finished rows are written out only
        when some finish, so a sweep costs one product plus a few elementwise passes.
        """
        batch = y.shape[0]
        out = y.clone()
        converged = torch.zeros(batch, dtype=torch.bool, device=y.device)
        cycle2 = torch.zeros_like(converged)
        sweeps = torch.zeros(batch, dtype=torch.long, device=y.device)
        active = torch.arange(batch, device=y.device)
        current, previous = y, None  # previous: the state one sweep back (sync 2-cycles)
        keep = None if clamp is None else (clamp if clamp.dim() == 2 else clamp.expand_as(y))
        tol = self._tie_tolerance()
        for _ in range(max_sweeps):
            if active.numel() == 0:
                break
            if mode == "sync":
                new = self.sweep_sync(current, tol)
                if keep is not None:
                    new = torch.where(keep, current, new)
                done = (new == current).all(1)
                cyc = torch.zeros_like(done)
                if previous is not None:
                    cyc = (new == previous).all(1) & ~done
            elif mode == "clock":
                # one unit of time: some units ring twice, some not at all, so a quiet interval
                # does not prove a fixed point; the fields do
                units = clock_updates(self.n_units, 1.0, generator, device=y.device)[0]
                new, _ = self.sweep_events(current, units, keep, tol=tol)
                done = self._stable(new, keep, tol)
                cyc = torch.zeros_like(done)
            else:
                order = torch.randperm(self.n_units, generator=generator, device=y.device)
                new, flips = self.sweep_async(current, order, keep, tol=tol)
                done, cyc = flips == 0, torch.zeros_like(flips, dtype=torch.bool)
            sweeps[active] += 1
            finished = done | cyc
            if finished.any():
                out[active[finished]] = new[finished]
                converged[active[done]] = True
                cycle2[active[cyc]] = True
                still = ~finished
                active, previous, current = active[still], current[still], new[still]
                keep = None if keep is None else keep[still]
            else:
                previous, current = current, new
        out[active] = current  # rows still moving after max_sweeps
        return out, converged, sweeps, cycle2

    def recall(
        self,
        probes: Any,
        mode: str = "async",
        max_sweeps: int = 100,
        seed: int | torch.Generator | None = None,
        clamp: Any = None,
        return_info: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, RecallInfo]:
        """Run the deterministic dynamics from each probe until a fixed point (or 2-cycle).

        Args:
            probes: (batch, N) +-1 starting states.
            mode: "async" (random order, one unit at a time; energy never increases), "sync"
                (all units at once; one matrix product per sweep; may end in a 2-cycle) or
                "clock" (each unit on its own random clock, lecture 004's "asynchronous II";
                a sweep is one unit of time; energy never increases).
            max_sweeps: at most this many sweeps over all units (time units with "clock").
            seed: seed or generator for the asynchronous order (or the clocks).
            clamp: optional bool mask (N,) or (batch, N) of units held fixed (known pixels).
            return_info: also return a ``RecallInfo`` (converged, sweeps, cycle2, energy).
        """
        _check_choice(mode, RECALL_MODES, "mode")
        check_positive_int(max_sweeps, "max_sweeps")
        Boolean().check(return_info, "return_info")
        y = check_spins(probes, "probes", self.n_units, self.W.device, self.W.dtype)
        check_nonempty(y, "probes")
        mask = self._check_clamp(clamp, y.shape[0])
        generator = make_generator(seed, y.device)
        y, converged, sweeps, cycle2 = self._evolve(y, mode, max_sweeps, generator, mask)
        if not return_info:
            return y
        return y, RecallInfo(converged, sweeps, cycle2, self._energy(y))

    def _check_clamp(self, clamp: Any, batch: int) -> torch.Tensor | None:
        if clamp is None:
            return None
        mask = torch.as_tensor(clamp, device=self.W.device)
        if mask.dtype != torch.bool or mask.shape not in (
            (self.n_units,),
            (batch, self.n_units),
        ):
            raise ValueError(
                f"clamp: expected a bool mask of shape ({self.n_units},) or ({batch}, "
                f"{self.n_units}), got dtype {mask.dtype} and shape {tuple(mask.shape)}"
            )
        return mask

    # ----- stochastic dynamics -----------------------------------------------------------------
    def gibbs(
        self,
        states: Any,
        temperatures: Sequence[float] | torch.Tensor,
        seed: int | torch.Generator | None = None,
        clamp: Any = None,
        n_average: int = 1,
        mode: str = "async",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random-order Gibbs sweeps, one per entry of ``temperatures`` (T = 0: greedy sweep),
        run by ``ebmlab.samplers.SimulatedAnnealing`` with that schedule.

        Samples p(y) proportional to exp(-E(y) / T): P(y_i = +1 | rest) = sigmoid(2 z_i / T).
        ``mode``: "async" (each sweep a random permutation of the units) or "clock" (each sweep
        one unit of time of the units' own random clocks; a state-independent random order of
        exact single-site updates, so still a valid Gibbs sampler).
        Returns the final states and the mean of the last ``n_average`` states (batch, N).
        """
        _check_choice(mode, GIBBS_MODES, "mode")
        check_positive_int(n_average, "n_average")
        y = check_spins(states, "states", self.n_units, self.W.device, self.W.dtype)
        check_nonempty(y, "states")
        temps = torch.as_tensor(temperatures, dtype=torch.float64).flatten()
        if temps.numel() == 0 or (temps < 0).any() or not torch.isfinite(temps).all():
            raise ValueError("temperatures: expected a non-empty sequence of finite values >= 0")
        if not 1 <= n_average <= temps.numel():
            raise ValueError(
                f"n_average: expected 1..{temps.numel()} (the number of sweeps), got {n_average}"
            )
        mask = self._check_clamp(clamp, y.shape[0])
        mask = None if mask is None else (mask if mask.dim() == 2 else mask.expand_as(y))
        generator = make_generator(seed, y.device)
        annealing = SimulatedAnnealing(Gibbs("block"), temps)
        target = self._sweep_target(mask, mode)
        return annealing.anneal(y, target, generator, n_average=n_average)

    def _sweep_target(self, mask: torch.Tensor | None, mode: str = "async") -> SweepTarget:
        """The network as a sampler target: one random-order asynchronous sweep (or one time
        unit of the unit clocks) at inverse temperature beta (beta = inf: the greedy update),
        units in ``mask`` held fixed."""
        tol = self._tie_tolerance()

        def sweep(y: torch.Tensor, generator: torch.Generator | None, beta: float) -> torch.Tensor:
            if mode == "clock":
                units = clock_updates(self.n_units, 1.0, generator, device=y.device)[0]
                return self.sweep_events(y, units, mask, 1.0 / beta, generator, tol)[0]
            order = torch.randperm(self.n_units, generator=generator, device=y.device)
            return self.sweep_async(y, order, mask, 1.0 / beta, generator, tol)[0]

        return SweepTarget(self._energy, sweep, SPIN_VALUES)

    def recall_stochastic(
        self,
        probes: Any,
        temperature: float = 0.5,
        n_sweeps: int = 50,
        n_average: int = 10,
        alpha: float = 1.0,
        min_temperature: float = 0.0,
        seed: int | torch.Generator | None = None,
        clamp: Any = None,
    ) -> torch.Tensor:
        """Stochastic retrieval (lecture 001): Gibbs sweeps at T_t = max(T alpha^t, T_min), then
        the sign of the average of the last ``n_average`` samples (a zero average keeps the last
        sample)."""
        check_in_range(temperature, "temperature", 0)
        check_positive_int(n_sweeps, "n_sweeps")
        check_positive(alpha, "alpha")
        check_in_range(min_temperature, "min_temperature", 0)
        temps = geometric_schedule(temperature, alpha, n_sweeps, min_temperature)
        last, mean = self.gibbs(probes, temps, seed, clamp, n_average)
        return torch.where(mean == 0, last, torch.sign(mean))

    def anneal(
        self,
        probes: Any,
        t_max: float = 2.0,
        alpha: float = 0.9,
        t_min: float = 0.05,
        sweeps_per_temperature: int = 2,
        seed: int | torch.Generator | None = None,
        clamp: Any = None,
    ) -> torch.Tensor:
        """Simulated annealing: Gibbs sweeps with T <- alpha T from ``t_max`` down to ``t_min``,
        then greedy asynchronous sweeps to a fixed point (the retrieved state)."""
        check_positive_int(sweeps_per_temperature, "sweeps_per_temperature")
        check_positive(t_max, "t_max")
        check_positive(t_min, "t_min")
        check_in_range(alpha, "alpha", 0, 1, closed="neither")
        if not 0 < alpha < 1 or not 0 < t_min <= t_max:
            raise ValueError(
                f"alpha, t_min, t_max: expected 0 < alpha < 1 and 0 < t_min <= t_max, got "
                f"{alpha}, {t_min}, {t_max}"
            )
        n_levels = cooling_steps(t_max, t_min, alpha)
        temps = geometric_schedule(t_max, alpha, n_levels).repeat_interleave(sweeps_per_temperature)
        generator = make_generator(seed, self.W.device)
        y, _ = self.gibbs(probes, temps, generator, clamp)
        return self.recall(y, "async", 1000, generator, clamp)  # type: ignore[return-value]

    def sample(
        self,
        n: int,
        n_steps: int = 200,
        temperature: float = 1.0,
        generator: int | torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` states from p(y) proportional to exp(-E(y)/T): ``n_steps`` Gibbs sweeps
        from uniformly random starts (``generator``: a torch.Generator or a seed)."""
        n = check_positive_int(n, "n")
        n_steps = check_positive_int(n_steps, "n_steps")
        check_in_range(temperature, "temperature", 0)
        generator = make_generator(as_generator(generator, self.W.device), self.W.device)
        start = torch.rand(n, self.n_units, generator=generator, device=self.W.device)
        y = torch.where(start < 0.5, -1.0, 1.0).to(self.W.dtype)
        return self.gibbs(y, [temperature] * n_steps, generator)[0]


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


class ModernHopfield(Model):
    """Modern (continuous) Hopfield network of Ramsauer et al. (2020); see the module docstring.

    Args:
        n_units: pattern dimension d.
        beta: inverse temperature of the softmax (None: 1 / sqrt(d), the attention scaling).
    """

    likelihood_kind = "none"

    def __init__(self, n_units: int, beta: float | None = None) -> None:
        super().__init__()
        check_positive_int(n_units, "n_units")
        if beta is not None:
            check_positive(beta, "beta")
        self.n_units = n_units
        self.beta = 1.0 / math.sqrt(n_units) if beta is None else float(beta)
        self.register_buffer("patterns", torch.zeros(0, n_units))

    def store(self, patterns: Any, append: bool = False) -> ModernHopfield:
        """Store real-valued patterns X as rows (n_patterns, n_units)."""
        x = as_tensor(
            patterns,
            "patterns",
            dim=2,
            n_features=self.n_units,
            device=self.patterns.device,
            dtype=self.patterns.dtype,
        )
        if x.shape[0] == 0:
            raise ValueError("patterns: expected at least one pattern, got 0")
        self.patterns = torch.cat([self.patterns, x]) if append else x
        return self

    def _check_state(self, xi: Any, name: str) -> torch.Tensor:
        if self.patterns.shape[0] == 0:
            raise RuntimeError("ModernHopfield: no patterns stored; call store(patterns) first")
        return as_tensor(
            xi,
            name,
            dim=2,
            n_features=self.n_units,
            device=self.patterns.device,
            dtype=self.patterns.dtype,
        )

    def update(self, xi: Any) -> torch.Tensor:
        """One CCCP step xi <- X softmax(beta X^T xi), for a batch (batch, n_units)."""
        xi = self._check_state(xi, "xi")
        return self._update(xi)

    def _update(self, xi: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.beta * xi @ self.patterns.T, dim=-1) @ self.patterns

    def energy(self, xi: Any) -> torch.Tensor:
        """E(xi) = -lse(beta, X^T xi) + 1/2 xi^T xi + log(N) / beta + 1/2 M^2; shape (batch,)."""
        xi = self._check_state(xi, "xi")
        x = self.patterns
        lse = torch.logsumexp(self.beta * xi @ x.T, dim=-1) / self.beta
        m = x.norm(dim=1).max()
        return -lse + 0.5 * (xi * xi).sum(-1) + math.log(x.shape[0]) / self.beta + 0.5 * m**2

    def recall(
        self, probes: Any, max_steps: int = 1, binary: bool = False, chunk: int = 1024
    ) -> torch.Tensor:
        """Apply ``max_steps`` updates (one suffices for well-separated patterns); ``binary``
        returns the sign of the result (ties to +1) for +-1 patterns. Probes are processed
        ``chunk`` at a time to bound the (chunk, n_patterns) score matrix."""
        check_positive_int(max_steps, "max_steps")
        Boolean().check(binary, "binary")
        check_positive_int(chunk, "chunk")
        xi = self._check_state(probes, "probes")
        out = []
        for part in xi.split(chunk):
            for _ in range(max_steps):
                part = self._update(part)
            out.append(part)
        result = torch.cat(out)
        return torch.where(result >= 0, 1.0, -1.0).to(result.dtype) if binary else result
