"""Markov chains on a finite state space: the exact transition matrix of a kernel on a small
discrete target, its stationary distribution, detailed balance, ergodicity and the distance to
stationarity after t steps (lecture 001 part 3).

Convention, written down once: transition matrices are row-stochastic,

    T[i, j] = T(s_i -> s_j) = P(x_{t+1} = s_j | x_t = s_i),      sum_j T[i, j] = 1,

and a distribution over the K states is a row vector, pi_{t+1} = pi_t T. (The lecture writes
pi_{t+1} = T pi_t with column vectors: the transpose of the same matrix.) The states are rows of
a (K, d) tensor given by the caller, e.g. ``ebmlab.estimators.enumerate_states(d)`` for every
binary state of d units; a target is an energy callable or a model, read through
``ebmlab.samplers.Target`` (p(s) ∝ exp(-E(s)); a model with hidden units through its free
energy, so the chain runs on the visible states), exactly as the kernels read it.

* Stationary distribution: pi T = pi with sum(pi) = 1, the left eigenvector of T for the
  eigenvalue 1. It is unique iff the chain has one closed communicating class; the linear solve
  replaces one equation of (T^T - I) pi = 0 by sum(pi) = 1.
* Detailed balance: pi_i T_ij = pi_j T_ji for all i, j, i.e. the probability flow
  F = diag(pi) T is symmetric. It is sufficient for stationarity: sum_i pi_i T_ij =
  sum_i pi_j T_ji = pi_j.
* Ergodicity: irreducible (every state reaches every state: the graph of T > 0 is strongly
  connected) and aperiodic (the gcd of the lengths of the closed walks through a state is 1).
  A finite ergodic chain forgets its start, T^t(s, .) -> pi for every s. The lecture's
  condition min T(z -> z') >= delta > 0 is the one-step (Doeblin) form of it.
* Distance to stationarity: d(t) = max_s TV(T^t(s, .), pi) (or from a given start), with the
  total variation TV(p, q) = 1/2 sum |p - q|; d(t) never increases.

Kernels:

* Metropolis-Hastings with a proposal matrix Q: for j != i, T_ij = Q_ij alpha_ij with
  alpha_ij = min(1, p_j Q_ji / (p_i Q_ij)); T_ii collects Q_ii and every rejected move. The
  ``MetropolisHastings(proposal="flip", n_flips=m)`` kernel proposes flipping a uniform number
  1..m of distinct uniformly chosen sites (``flip_proposal_matrix``).
* Gibbs by site k: T_k moves s to s' = s with s_k redrawn from p(s_k | s_-k), i.e. to s itself
  or to s^k (site k flipped) with T_k[s, s^k] = p(s^k) / (p(s) + p(s^k)). One step of
  ``Gibbs(scan="systematic")`` is the sweep T_0 T_1 ... T_{d-1}; one step of
  ``Gibbs(scan="random")`` draws d sites uniformly with replacement, ((1/d) sum_k T_k)^d; one
  random-site update is (1/d) sum_k T_k. Each T_k and their mixture satisfy detailed balance;
  the systematic sweep leaves p invariant but is not reversible in general (its time reversal is
  the sweep in the opposite order).
* "Gibbs always accepts": Metropolis-Hastings with the Gibbs conditional as its proposal,
  Q = T_k, has p(s) Q(s -> s^k) = p(s) p(s^k) / (p(s) + p(s^k)) = p(s^k) Q(s^k -> s), so every
  acceptance ratio is 1 and the MH matrix is T_k itself (``gibbs_as_metropolis_hastings``).

Everything is computed in float64. States of zero probability (infinite energy) are allowed:
a Metropolis-Hastings move out of one is always accepted, and a Gibbs update whose two
candidates both have probability zero keeps the state.

Example (a 3-unit Boltzmann machine, systematic Gibbs):

>>> import torch
>>> from ebmlab.estimators import enumerate_states
>>> W = torch.tensor([[0.0, 1.0, -0.5], [1.0, 0.0, 0.3], [-0.5, 0.3, 0.0]])
>>> energy = lambda s: -0.5 * ((s @ W) * s).sum(-1)
>>> states = enumerate_states(3).float()
>>> T = gibbs_matrix(energy, states, scan="systematic")
>>> pi = stationary_distribution(T)
>>> bool(torch.allclose(pi, target_probs(energy, states)))
True
>>> is_ergodic(T), satisfies_detailed_balance(gibbs_matrix(energy, states, "site"), pi)
(True, True)

References: Levin, Peres & Wilmer, Markov Chains and Mixing Times (2nd ed., 2017), ch. 1-4;
Hastings (1970); Geman & Geman (1984); Robert & Casella, Monte Carlo Statistical Methods (2004),
ch. 6-7 and 10.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..validation import check_in_range, check_nonnegative_int, check_positive_int
from .base import as_target
from .gibbs import Gibbs
from .metropolis import MetropolisHastings, infer_spin_values

_FLOAT = torch.float64
GIBBS_SCANS = ("systematic", "random", "site")
#: Row sums of a transition matrix may differ from 1 by this much per state (float64 rounding).
ROW_SUM_TOLERANCE = 1e-9


# ----- inputs ------------------------------------------------------------------------------------
def check_transition_matrix(T: Any, name: str = "T") -> Tensor:
    """``T`` as a float64 row-stochastic matrix (K, K): finite, non-negative, rows summing to 1."""
    T = torch.as_tensor(T)
    if T.dim() != 2 or T.shape[0] != T.shape[1] or T.shape[0] < 1:
        raise ValueError(f"{name}: expected a square matrix (K, K), got shape {tuple(T.shape)}")
    T = T.to(_FLOAT)
    if not torch.isfinite(T).all() or (T < 0).any():
        raise ValueError(f"{name}: expected finite, non-negative transition probabilities")
    error = (T.sum(1) - 1.0).abs().max().item()
    if error > ROW_SUM_TOLERANCE * T.shape[0]:
        raise ValueError(
            f"{name}: expected rows summing to 1 (T[i, j] = P(s_j | s_i)), largest deviation "
            f"{error:.3g}"
        )
    return T


def check_distribution(p: Any, n_states: int, name: str = "pi") -> Tensor:
    """``p`` as a float64 probability vector over ``n_states`` states."""
    p = torch.as_tensor(p)
    if p.shape != (n_states,):
        raise ValueError(f"{name}: expected a distribution of shape ({n_states},), got {p.shape}")
    p = p.to(_FLOAT)
    if not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{name}: expected finite, non-negative probabilities")
    if abs(p.sum().item() - 1.0) > ROW_SUM_TOLERANCE * n_states:
        raise ValueError(f"{name}: expected probabilities summing to 1, got {p.sum().item():.6g}")
    return p


def _check_states(states: Any) -> Tensor:
    states = torch.as_tensor(states)
    if states.dim() != 2 or states.shape[0] < 1:
        raise ValueError(f"states: expected shape (n_states, n_units), got {tuple(states.shape)}")
    if not states.is_floating_point():
        states = states.to(torch.get_default_dtype())
    return states


def _check_log_p(log_p: Any, n_states: int | None = None) -> Tensor:
    log_p = torch.as_tensor(log_p).to(_FLOAT)
    if log_p.dim() != 1 or (n_states is not None and log_p.shape[0] != n_states):
        expected = "(K,)" if n_states is None else f"({n_states},)"
        raise ValueError(f"log_p: expected shape {expected}, got {tuple(log_p.shape)}")
    if torch.isnan(log_p).any() or (log_p == math.inf).any() or not torch.isfinite(log_p).any():
        raise ValueError("log_p: expected log-probabilities (-inf allowed, some state finite)")
    return log_p


# ----- the target on the enumerated states -------------------------------------------------------
@torch.no_grad()
def target_log_probs(target: Any, states: Any) -> Tensor:
    """log p(s) of every row of ``states``, normalized over them, float64 (K,).

    ``target``: an energy callable or a model (read as the kernels read it, see the module
    docstring); log p(s) = -E(s) - log sum_s' exp(-E(s')).
    """
    states = _check_states(states)
    energy = as_target(target)(states)
    if not isinstance(energy, Tensor) or energy.shape != (states.shape[0],):
        raise ValueError(f"target: expected one energy per state, shape ({states.shape[0]},)")
    neg = -energy.to(_FLOAT)
    if torch.isnan(neg).any() or (neg == math.inf).any() or not torch.isfinite(neg).any():
        raise ValueError("target: energies must be finite or +inf, and some state finite")
    return neg - torch.logsumexp(neg, 0)


def target_probs(target: Any, states: Any) -> Tensor:
    """p(s) of every row of ``states``, normalized over them, float64 (K,)."""
    return torch.exp(target_log_probs(target, states))


def _spins(target: Any, states: Tensor, spin_values: tuple[float, float] | None) -> tuple:
    spins = spin_values or getattr(target, "spin_values", None)
    spins = tuple(float(v) for v in spins) if spins is not None else infer_spin_values(states)
    if spins not in ((0.0, 1.0), (-1.0, 1.0)):
        raise ValueError(f"spin_values: expected (0.0, 1.0) or (-1.0, 1.0), got {spins}")
    if not ((states == spins[0]) | (states == spins[1])).all():
        raise ValueError(f"states: expected binary states with values {spins}")
    return spins


def flip_neighbours(states: Any, spin_values: tuple[float, float] | None = None) -> Tensor:
    """index[s, k] = the row of ``states`` equal to row s with site k flipped, (K, d) int64.

    Every single-site flip of every state must itself be a row (e.g. all of {lo, hi}^d).
    """
    states = _check_states(states)
    _, hi = _spins(None, states, spin_values)
    d = states.shape[1]
    if d > 62:
        raise ValueError(f"states: at most 62 binary units can be indexed, got {d}")
    bits = (states == hi).to(torch.int64).cpu()
    weights = torch.ones(d, dtype=torch.int64) << torch.arange(d)
    codes = (bits * weights).sum(1)
    sorted_codes, order = codes.sort()
    if (sorted_codes[1:] == sorted_codes[:-1]).any():
        raise ValueError("states: expected distinct states, found a repeated row")
    flipped = codes[:, None] ^ weights[None, :]
    position = torch.searchsorted(sorted_codes, flipped).clamp_(max=codes.numel() - 1)
    found = sorted_codes[position] == flipped
    if not found.all():
        row, site = (int(v) for v in torch.nonzero(~found)[0])
        raise ValueError(
            f"states: state {row} with site {site} flipped is not among the states; pass every "
            "binary state, e.g. ebmlab.estimators.enumerate_states(n_units)"
        )
    return order[position].to(states.device)


# ----- Metropolis-Hastings -----------------------------------------------------------------------
def acceptance_matrix(log_p: Any, proposal: Any) -> Tensor:
    """alpha[i, j] = min(1, p_j Q_ji / (p_i Q_ij)) where Q_ij > 0, else 0; float64 (K, K).

    ``log_p``: log target probabilities up to a constant (K,); ``proposal``: Q[i, j] = q(s_j |
    s_i), row-stochastic. A move out of a state of probability zero is always accepted.
    """
    Q = check_transition_matrix(proposal, "proposal")
    log_p = _check_log_p(log_p, Q.shape[0])
    log_q = torch.log(Q)
    forward = log_p[:, None] + log_q  # log p_i Q_ij
    backward = log_p[None, :] + log_q.T  # log p_j Q_ji
    alpha = torch.exp(torch.clamp(backward - forward, max=0.0))
    alpha = torch.where(forward == -math.inf, torch.ones_like(alpha), alpha)
    return torch.where(Q > 0, alpha, torch.zeros_like(alpha))


def metropolis_hastings_matrix(log_p: Any, proposal: Any) -> Tensor:
    """The Metropolis-Hastings transition matrix for target p and proposal matrix Q:
    T_ij = Q_ij alpha_ij (j != i), T_ii = 1 - sum_{j != i} T_ij; float64 (K, K)."""
    Q = check_transition_matrix(proposal, "proposal")
    T = Q * acceptance_matrix(log_p, Q)
    T.fill_diagonal_(0.0)
    T.diagonal().copy_((1.0 - T.sum(1)).clamp_(min=0.0))
    return T


def flip_proposal_matrix(
    states: Any, n_flips: int = 1, spin_values: tuple[float, float] | None = None
) -> Tensor:
    """The proposal of ``MetropolisHastings(proposal="flip", n_flips=m)`` on binary ``states``:
    Q[s, s'] = 1 / (m C(d, h)) where h = Hamming(s, s') is in 1..m, else 0; float64 (K, K).

    Rows sum to 1 only when ``states`` holds every state within m flips of each row.
    """
    states = _check_states(states)
    check_positive_int(n_flips, "n_flips")
    _, hi = _spins(None, states, spin_values)
    d = states.shape[1]
    if n_flips > d:
        raise ValueError(f"n_flips: {n_flips} exceeds the {d} sites")
    signs = torch.where(states == hi, 1.0, -1.0).to(_FLOAT)
    hamming = torch.round((d - signs @ signs.T) / 2).to(torch.int64)
    table = torch.zeros(d + 1, dtype=_FLOAT, device=states.device)
    for h in range(1, n_flips + 1):
        table[h] = 1.0 / (n_flips * math.comb(d, h))
    return table[hamming]


# ----- Gibbs -------------------------------------------------------------------------------------
def gibbs_site_matrix(
    target: Any, states: Any, site: int, spin_values: tuple[float, float] | None = None
) -> Tensor:
    """T_k: redraw site k of every state from p(s_k | s_-k); float64 (K, K) on binary states."""
    states = _check_states(states)
    d = states.shape[1]
    if isinstance(site, bool) or not isinstance(site, int) or not 0 <= site < d:
        raise ValueError(f"site: expected an integer in 0..{d - 1}, got {site!r}")
    spins = _spins(target, states, spin_values)
    neighbour = flip_neighbours(states, spins)[:, site]
    return _site_matrix(target_log_probs(target, states), neighbour)


def _site_matrix(log_p: Tensor, neighbour: Tensor) -> Tensor:
    other = log_p[neighbour]
    move = torch.sigmoid(other - log_p)  # p(s^k) / (p(s) + p(s^k))
    move = torch.where(torch.isnan(move), torch.zeros_like(move), move)  # both impossible: stay
    rows = torch.arange(log_p.shape[0], device=log_p.device)
    T = torch.zeros(log_p.shape[0], log_p.shape[0], dtype=_FLOAT, device=log_p.device)
    T[rows, neighbour] = move
    T[rows, rows] = 1.0 - move
    return T


def gibbs_matrix(
    target: Any,
    states: Any,
    scan: str = "systematic",
    spin_values: tuple[float, float] | None = None,
) -> Tensor:
    """One step of single-site Gibbs sampling as a float64 matrix (K, K).

    ``scan``: "systematic" (the sweep T_0 T_1 ... T_{d-1} of ``Gibbs(scan="systematic")``),
    "random" (``Gibbs(scan="random")``: d uniformly drawn sites, ((1/d) sum_k T_k)^d) or "site"
    (one uniformly drawn site, (1/d) sum_k T_k).
    """
    if scan not in GIBBS_SCANS:
        raise ValueError(f"scan: expected one of {GIBBS_SCANS}, got {scan!r}")
    states = _check_states(states)
    spins = _spins(target, states, spin_values)
    log_p = target_log_probs(target, states)
    neighbours = flip_neighbours(states, spins)
    d = states.shape[1]
    sites = [_site_matrix(log_p, neighbours[:, k]) for k in range(d)]
    if scan == "systematic":
        T = sites[0]
        for T_k in sites[1:]:
            T = T @ T_k
        return T
    mixture = torch.stack(sites).mean(0)
    return mixture if scan == "site" else torch.linalg.matrix_power(mixture, d)


class GibbsAsMH(NamedTuple):
    """Gibbs seen as Metropolis-Hastings: the proposal (the Gibbs conditional), its acceptance
    probabilities (1 wherever the proposal is positive) and the resulting MH matrix (equal to
    the proposal)."""

    proposal: Tensor
    acceptance: Tensor
    transition: Tensor


def gibbs_as_metropolis_hastings(
    target: Any,
    states: Any,
    site: int | None = None,
    spin_values: tuple[float, float] | None = None,
) -> GibbsAsMH:
    """Metropolis-Hastings whose proposal is the Gibbs conditional of ``site`` (None: a
    uniformly drawn site): every acceptance probability is 1 (see the module docstring)."""
    if site is None:
        proposal = gibbs_matrix(target, states, "site", spin_values)
    else:
        proposal = gibbs_site_matrix(target, states, site, spin_values)
    log_p = target_log_probs(target, states)
    return GibbsAsMH(
        proposal,
        acceptance_matrix(log_p, proposal),
        metropolis_hastings_matrix(log_p, proposal),
    )


# ----- the library's kernels ---------------------------------------------------------------------
def transition_matrix(
    kernel: Any,
    target: Any,
    states: Any,
    spin_values: tuple[float, float] | None = None,
) -> Tensor:
    """The exact matrix of one ``kernel.step`` on ``target`` over binary ``states``, (K, K).

    Supported: ``Gibbs`` with scan "systematic" or "random" ("auto" is systematic unless the
    target has a block sweep) and ``MetropolisHastings`` with the "flip" proposal.
    """
    spins = spin_values or getattr(kernel, "spin_values", None)
    if isinstance(kernel, Gibbs):
        scan = kernel.scan
        if scan == "auto":
            scan = "block" if as_target(target).has_block_gibbs else "systematic"
        if scan == "block":
            raise ValueError(
                "kernel: a block sweep has no generic transition matrix here; use "
                "Gibbs(scan='systematic') or Gibbs(scan='random')"
            )
        return gibbs_matrix(target, states, scan, spins)
    if isinstance(kernel, MetropolisHastings) and kernel.proposal == "flip":
        proposal = flip_proposal_matrix(states, kernel.n_flips, spins)
        return metropolis_hastings_matrix(target_log_probs(target, states), proposal)
    raise TypeError(
        "kernel: expected Gibbs(scan='systematic' or 'random') or MetropolisHastings("
        f"proposal='flip'), got {kernel!r}"
    )


# ----- stationary distribution and detailed balance ----------------------------------------------
def stationary_distribution(T: Any, method: str = "solve") -> Tensor:
    """The stationary distribution pi (pi T = pi, sum pi = 1) of a chain with a unique one.

    ``method``: "solve" (the linear system (T^T - I) pi = 0 with its last equation replaced by
    sum(pi) = 1) or "eigen" (the left eigenvector of T for the eigenvalue closest to 1, scaled
    to sum 1). Raises when the stationary distribution is not unique.
    """
    T = check_transition_matrix(T)
    k = T.shape[0]
    if method == "solve":
        A = T.T - torch.eye(k, dtype=_FLOAT, device=T.device)
        A[-1] = 1.0
        b = torch.zeros(k, dtype=_FLOAT, device=T.device)
        b[-1] = 1.0
        if torch.linalg.matrix_rank(A).item() < k:
            raise ValueError(
                "T: the stationary distribution is not unique (more than one closed "
                "communicating class)"
            )
        pi = torch.linalg.solve(A, b)
    elif method == "eigen":
        values, vectors = torch.linalg.eig(T.T)
        gaps = (values - 1.0).abs()
        if int((gaps < 1e-9).sum()) > 1:
            raise ValueError(
                "T: the eigenvalue 1 is repeated, so the stationary distribution is not unique"
            )
        pi = vectors[:, int(gaps.argmin())].real.to(_FLOAT)
        pi = pi / pi.sum()
    else:
        raise ValueError(f"method: expected 'solve' or 'eigen', got {method!r}")
    return pi.clamp_(min=0.0) / pi.clamp(min=0.0).sum()


def probability_flow(T: Any, pi: Any) -> Tensor:
    """F[i, j] = pi_i T_ij, the stationary probability of the move s_i -> s_j; float64 (K, K)."""
    T = check_transition_matrix(T)
    return check_distribution(pi, T.shape[0])[:, None] * T


def detailed_balance_violation(T: Any, pi: Any) -> float:
    """max_ij |pi_i T_ij - pi_j T_ji|: zero exactly when detailed balance holds."""
    F = probability_flow(T, pi)
    return float((F - F.T).abs().max())


def satisfies_detailed_balance(T: Any, pi: Any, atol: float = 1e-12) -> bool:
    """Whether pi_i T_ij = pi_j T_ji for every pair, up to ``atol``."""
    return detailed_balance_violation(T, pi) <= atol


# ----- ergodicity --------------------------------------------------------------------------------
def _graph(T: Any, atol: float) -> np.ndarray:
    check_in_range(atol, "atol", 0.0, 1.0, closed="left")
    return (check_transition_matrix(T) > atol).cpu().numpy()


def _reach(adjacency: np.ndarray, state: int) -> np.ndarray:
    """The states reachable from ``state`` in zero or more moves (breadth-first), bool (K,)."""
    seen = np.zeros(adjacency.shape[0], dtype=bool)
    seen[state] = True
    frontier = seen.copy()
    while frontier.any():
        frontier = adjacency[frontier].any(0) & ~seen
        seen |= frontier
    return seen


def _class_of(adjacency: np.ndarray, state: int) -> np.ndarray:
    """The communicating class of ``state``: reachable from it and reaching it, bool (K,)."""
    return _reach(adjacency, state) & _reach(adjacency.T, state)


def is_irreducible(T: Any, atol: float = 0.0) -> bool:
    """Whether every state can reach every other (entries above ``atol`` count as moves)."""
    return bool(_class_of(_graph(T, atol), 0).all())


def communicating_classes(T: Any, atol: float = 0.0) -> list[list[int]]:
    """The communicating classes (states reaching each other), each sorted, by first state."""
    adjacency = _graph(T, atol)
    classes, seen = [], np.zeros(adjacency.shape[0], dtype=bool)
    for s in range(adjacency.shape[0]):
        if not seen[s]:
            members = np.flatnonzero(_class_of(adjacency, s))
            seen[members] = True
            classes.append(members.tolist())
    return classes


def period(T: Any, state: int = 0, atol: float = 0.0) -> int:
    """The period of ``state``: gcd of the n >= 1 with T^n[state, state] > 0 (0 when the chain
    never returns). From the breadth-first levels l of the state's class, it is the gcd of
    l(u) + 1 - l(v) over the moves u -> v inside the class."""
    adjacency = _graph(T, atol)
    k = adjacency.shape[0]
    if isinstance(state, bool) or not isinstance(state, int) or not 0 <= state < k:
        raise ValueError(f"state: expected an integer in 0..{k - 1}, got {state!r}")
    members = _class_of(adjacency, state)
    level = np.full(k, -1, dtype=np.int64)
    level[state] = 0
    frontier, depth = np.zeros(k, dtype=bool), 0
    frontier[state] = True
    while frontier.any():
        depth += 1
        frontier = adjacency[frontier].any(0) & members & (level < 0)
        level[frontier] = depth
    inside = adjacency & members[:, None] & members[None, :]
    u, v = np.nonzero(inside)
    if u.size == 0:
        return 0
    return int(np.gcd.reduce(np.abs(level[u] + 1 - level[v])))


def is_aperiodic(T: Any, atol: float = 0.0) -> bool:
    """Whether every state has period 1 (one state per communicating class is checked)."""
    return all(period(T, c[0], atol) == 1 for c in communicating_classes(T, atol))


def is_ergodic(T: Any, atol: float = 0.0) -> bool:
    """Irreducible and aperiodic: then T^t(s, .) -> pi from every start s."""
    return is_irreducible(T, atol) and is_aperiodic(T, atol)


# ----- distance to stationarity ------------------------------------------------------------------
def total_variation(p: Any, q: Any) -> Tensor:
    """TV(p, q) = 1/2 sum |p - q| over the last dimension (batched), float64."""
    p, q = torch.as_tensor(p).to(_FLOAT), torch.as_tensor(q).to(_FLOAT)
    if p.shape[-1:] != q.shape[-1:]:
        raise ValueError(f"p, q: expected the same number of states, got {p.shape} and {q.shape}")
    return 0.5 * (p - q).abs().sum(-1)


def distance_to_stationarity(
    T: Any,
    n_steps: int,
    initial: Any = None,
    stationary: Any = None,
) -> Tensor:
    """TV(pi_t, pi) for t = 0..n_steps, float64 (n_steps + 1,).

    ``initial``: a distribution (K,), the index of a start state, or None for the worst start,
    d(t) = max_s TV(T^t(s, .), pi). ``stationary``: pi (default: ``stationary_distribution``).
    """
    T = check_transition_matrix(T)
    check_nonnegative_int(n_steps, "n_steps")
    k = T.shape[0]
    pi = stationary_distribution(T) if stationary is None else check_distribution(stationary, k)
    if initial is None:
        current = torch.eye(k, dtype=_FLOAT, device=T.device)
    elif isinstance(initial, int) and not isinstance(initial, bool):
        if not 0 <= initial < k:
            raise ValueError(f"initial: expected a state index in 0..{k - 1}, got {initial}")
        current = torch.eye(k, dtype=_FLOAT, device=T.device)[initial : initial + 1]
    else:
        current = check_distribution(initial, k, "initial")[None]
    out = torch.empty(n_steps + 1, dtype=_FLOAT)
    for t in range(n_steps + 1):
        out[t] = total_variation(current, pi).max()
        current = current @ T
    return out


def mixing_time(T: Any, epsilon: float = 0.25, max_steps: int = 100_000) -> int:
    """t_mix(epsilon): the first t with max_s TV(T^t(s, .), pi) <= epsilon."""
    T = check_transition_matrix(T)
    check_in_range(epsilon, "epsilon", 0.0, 1.0, closed="neither")
    check_positive_int(max_steps, "max_steps")
    pi = stationary_distribution(T)
    current = torch.eye(T.shape[0], dtype=_FLOAT, device=T.device)
    for t in range(max_steps + 1):
        if total_variation(current, pi).max().item() <= epsilon:
            return t
        current = current @ T
    raise ValueError(
        f"T: the distance to stationarity stays above {epsilon} for {max_steps} steps "
        "(is the chain ergodic?)"
    )
