"""Hopfield network with hidden neurons (lecture 001, the expanded network).

N visible units carry the patterns; K hidden units are added to raise the capacity. The full
network is an ordinary binary Hopfield network (``ebmlab.models.hopfield.Hopfield``) on N + K
spins s = (v, h),

    E(s) = -1/2 s^T W s - b^T s,     W symmetric, zero diagonal, (N + K) x (N + K),

so every storage rule, update mode and capacity result of that module applies to the N + K units:
the Hebbian rule holds about 0.138 (N + K) random patterns, the projection rule up to N + K - 1.
The lecture's two questions, and the answers here:

* How to store patterns with K extra units? Each visible pattern v^p gets a hidden part h^p and
  the full state (v^p, h^p) is stored with the rule. ``fill="random"``: h^p uniform random
  spins (random codes). ``fill="learned"``: the hidden parts are learned together with W by
  alternating the two phases of a Boltzmann machine at zero temperature: with the visible part
  clamped to v^p, the hidden part relaxes to a minimum of E given the current W (the clamped
  phase; ``infer_sweeps`` deterministic sweeps from the previous h^p), then W is re-stored from
  the completed states (for ``rule="learned"`` this is lecture 001's rule, whose negatives are
  the free phase). The alternation stops once no hidden part changes (a fixed point of both
  steps: every (v^p, h^p) is then the completion the network itself infers), or after
  ``fill_iterations`` rounds.
* How to retrieve them? The probe gives only the visible part; its hidden part is unknown.
  ``hidden="random"``: start h from random spins; ``hidden="infer"`` (default): start from
  random spins and run ``infer_sweeps`` sweeps with the visible part clamped, which sets h_k to
  sign(sum_i w_ki v_i + sum_l w_kl h_l + b_k), mostly the code of the stored pattern nearest the
  probe. Then all N + K units evolve freely to a fixed point and the visible part is the answer.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..samplers import make_generator
from ..validation import Integral, check_positive_int, validate
from .base import Model
from .hopfield import (
    RECALL_MODES,
    Hopfield,
    HopfieldCapacityWarning,
    RecallInfo,
    _check_choice,
    check_spins,
)

FILLS = ("random", "learned")
HIDDEN_STARTS = ("infer", "random")


def _random_spins(shape: tuple[int, int], generator: torch.Generator, like: torch.Tensor) -> Any:
    u = torch.rand(shape, generator=generator, device=like.device)
    return torch.where(u < 0.5, -1.0, 1.0).to(like.dtype)


class HiddenHopfield(Model):
    """Hopfield network of ``n_visible`` visible and ``n_hidden`` hidden +-1 units.

    Args:
        n_visible: visible units N (the pattern size).
        n_hidden: hidden units K (0: the plain N-unit network).
        rule: storage rule of the full network ("hebbian", "storkey", "pseudoinverse",
            "learned"; see ``Hopfield``).
        fill: how the hidden parts of the stored patterns are chosen: "random" codes or
            "learned" by alternating clamped inference and storage (module docstring).
        fill_iterations: most rounds of the "learned" filling.
        infer_sweeps: deterministic sweeps with the visible part clamped, to infer a hidden part
            (in the "learned" filling and in ``recall(hidden="infer")``).
        seed: seed of the random codes (and of the learned rule's randomness).
        **options: further ``Hopfield`` arguments (``learned_epochs``, ``learned_noise``, ...).
    """

    likelihood_kind = "none"

    @validate(seed=Integral())
    def __init__(
        self,
        n_visible: int,
        n_hidden: int = 0,
        rule: str = "hebbian",
        fill: str = "random",
        fill_iterations: int = 10,
        infer_sweeps: int = 3,
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__()
        check_positive_int(n_visible, "n_visible")
        if not isinstance(n_hidden, int) or isinstance(n_hidden, bool) or n_hidden < 0:
            raise ValueError(f"n_hidden: expected an integer >= 0, got {n_hidden!r}")
        _check_choice(fill, FILLS, "fill")
        check_positive_int(fill_iterations, "fill_iterations")
        check_positive_int(infer_sweeps, "infer_sweeps")
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.rule = rule
        self.fill = fill
        self.fill_iterations = fill_iterations
        self.infer_sweeps = infer_sweeps
        self.seed = seed
        self.fill_rounds = 0
        self.net = Hopfield(n_visible + n_hidden, rule=rule, seed=seed, **options)

    @property
    def n_units(self) -> int:
        """N + K, the size of the full network."""
        return self.n_visible + self.n_hidden

    @property
    def patterns(self) -> torch.Tensor:
        """The stored full states (P, N + K): visible patterns and their hidden parts."""
        return self.net.patterns

    def _visible_mask(self, batch: int) -> torch.Tensor:
        mask = torch.zeros(batch, self.n_units, dtype=torch.bool, device=self.net.W.device)
        mask[:, : self.n_visible] = True
        return mask

    def infer_hidden(
        self,
        visible: torch.Tensor,
        hidden: torch.Tensor,
        generator: torch.Generator,
        mode: str = "async",
    ) -> torch.Tensor:
        """``infer_sweeps`` sweeps of the hidden units with the visible part clamped (the
        zero-temperature clamped phase); returns the full states (batch, N + K)."""
        full = torch.cat([visible, hidden], 1)
        if self.n_hidden == 0:
            return full
        mask = self._visible_mask(full.shape[0])
        return self.net.recall(full, mode, self.infer_sweeps, generator, mask)  # type: ignore[return-value]

    def store(self, patterns: Any) -> HiddenHopfield:
        """Store visible +-1 patterns (P, N), each with a hidden part chosen by ``fill``."""
        device, dtype = self.net.W.device, self.net.W.dtype
        v = check_spins(patterns, "patterns", self.n_visible, device, dtype)
        if v.shape[0] == 0:
            raise ValueError("patterns: expected at least one pattern, got 0")
        generator = make_generator(self.seed, device)
        h = _random_spins((v.shape[0], self.n_hidden), generator, v)
        self.net.store(torch.cat([v, h], 1))
        self.fill_rounds = 0
        if self.fill == "learned" and self.n_hidden > 0:
            for _ in range(self.fill_iterations):
                self.fill_rounds += 1
                full = self.infer_hidden(v, h, generator)
                new_h = full[:, self.n_visible :]
                if torch.equal(new_h, h):
                    break
                h = new_h
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", HopfieldCapacityWarning)  # warned once above
                    self.net.store(torch.cat([v, h], 1))
        return self

    def energy(self, states: Any) -> torch.Tensor:
        """E(s) of full states (batch, N + K)."""
        return self.net.energy(states)

    def is_fixed_point(self, states: Any) -> torch.Tensor:
        """Full states (batch, N + K) that no single flip changes; (batch,) bool."""
        return self.net.is_fixed_point(states)

    def recall(
        self,
        probes: Any,
        hidden: str = "infer",
        mode: str = "async",
        max_sweeps: int = 100,
        seed: int | torch.Generator | None = None,
        return_full: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, RecallInfo]:
        """Retrieve from visible probes (batch, N) whose hidden part is unknown.

        The hidden part starts at random spins, then (``hidden="infer"``) ``infer_sweeps`` sweeps
        run with the visible part clamped; all units then evolve freely (``mode``, at most
        ``max_sweeps`` sweeps). Returns the visible part (batch, N), or with ``return_full`` the
        full states (batch, N + K) and the ``RecallInfo`` of the free run.
        """
        _check_choice(hidden, HIDDEN_STARTS, "hidden")
        _check_choice(mode, RECALL_MODES, "mode")
        check_positive_int(max_sweeps, "max_sweeps")
        if self.net.patterns.shape[0] == 0:
            raise RuntimeError("HiddenHopfield: no patterns stored; call store(patterns) first")
        device, dtype = self.net.W.device, self.net.W.dtype
        v = check_spins(probes, "probes", self.n_visible, device, dtype)
        generator = make_generator(seed, device)
        h = _random_spins((v.shape[0], self.n_hidden), generator, v)
        full = (
            self.infer_hidden(v, h, generator, mode) if hidden == "infer" else torch.cat([v, h], 1)
        )
        out, info = self.net.recall(full, mode, max_sweeps, generator, return_info=True)  # type: ignore[misc]
        return (out, info) if return_full else out[:, : self.n_visible]
