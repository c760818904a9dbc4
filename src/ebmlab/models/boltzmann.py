"""General Boltzmann machine with visible, label and hidden units (lecture 001 part 2, lecture 004).

Units take values in {0, 1} and are ordered [visible (D), labels (L), hidden (H)]. The energy is

    E(s) = -sum_{i<j} W_ij s_i s_j - sum_i theta_i s_i,

symmetric weights with a zero diagonal (only the strict upper triangle of the parameter ``W`` is
used), and the machine at temperature T samples p(s) = exp(-E(s) / T) / Z. ``energy(states)``
returns E(s) / T, so p(s) ~ exp(-energy(s)) as everywhere in ebmlab.

A stochastic unit update sets s_i = 1 with probability sigmoid((sum_j W_ij s_j + theta_i) / T);
one sweep updates the units one after the other (Gibbs sampling). Label units, when present, are
one-hot (lecture 001: "c as a one-hot vector"): the group is updated as one categorical variable
with p(label = k | rest) ~ exp(field_k / T), and states whose label group is not one-hot have
infinite energy (probability 0), so enumeration over all 2^n states stays exact.

Maximum-likelihood training (``ebmlab.objectives.BoltzmannLearning``) follows lecture 001: the
clamped phase runs Gibbs over the hidden units with the visible (and label) units fixed to each
training vector, the free phase runs persistent chains over all units, and
dL/dW_ij = <s_i s_j>_clamped - <s_i s_j>_free (divided by T). For machines of up to about 20
units the likelihood, its exact gradient, log Z and p(class | v) come from enumeration.

References: Ackley, Hinton & Sejnowski, "A learning algorithm for Boltzmann machines" (1985);
Kirkpatrick, Gelatt & Vecchi, "Optimization by simulated annealing" (1983).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..samplers import Gibbs, SimulatedAnnealing, SweepTarget, bernoulli_draw
from ..samplers.annealing import cooling_steps, geometric_schedule
from ..validation import (
    Boolean,
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_binary,
    check_in_range,
    check_nonempty,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    validate,
)
from .base import Model

#: Enumeration is refused beyond this many free units (2^22 states, about 4 million).
MAX_ENUMERATION_UNITS = 22
#: The temperature of the final sweep of ``anneal``: T -> 0, a greedy descent.
GREEDY_TEMPERATURE = 1e-6


class BoltzmannMachine(Model):
    """Fully connected binary Boltzmann machine with optional one-hot label units.

    Args:
        n_visible: visible units D.
        n_hidden: hidden units H (0 for a fully visible machine).
        n_labels: one-hot label units L (0 for none); p(class | v) and class-conditional
            generation use them.
        temperature: T in p(s) ~ exp(-E(s) / T).
        init_std: standard deviation of the initial weights.
        seed: seed for the initial weights.
    """

    likelihood_kind = "exact"
    spin_values = (0.0, 1.0)

    @validate(
        n_visible=Integral(1),
        n_hidden=Integral(0),
        n_labels=Integral(0),
        temperature=Real(0, closed="neither"),
        init_std=Real(0),
        seed=Integral() | None,
    )
    def __init__(
        self,
        n_visible: int,
        n_hidden: int = 0,
        n_labels: int = 0,
        temperature: float = 1.0,
        init_std: float = 0.01,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if n_labels == 1:
            raise ValueError("n_labels: a one-hot label group needs at least 2 classes, got 1")
        self.n_visible, self.n_hidden, self.n_labels = n_visible, n_hidden, n_labels
        self.n_units = n_visible + n_labels + n_hidden
        self.temperature = float(temperature)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        weights = torch.randn(self.n_units, self.n_units, generator=generator) * init_std
        self.W = nn.Parameter(torch.triu(weights, diagonal=1))
        self.theta = nn.Parameter(torch.zeros(self.n_units))
        # the strict upper triangle: a constant, so not saved (and not a float for perturbations)
        upper = torch.ones(self.n_units, self.n_units, dtype=torch.bool).triu(1)
        self.register_buffer("upper", upper, persistent=False)

    # ----- structure ----------------------------------------------------------------------------
    @property
    def label_slice(self) -> slice:
        return slice(self.n_visible, self.n_visible + self.n_labels)

    @property
    def hidden_slice(self) -> slice:
        return slice(self.n_visible + self.n_labels, self.n_units)

    def coupling(self) -> torch.Tensor:
        """The symmetric weight matrix with zero diagonal, (n_units, n_units)."""
        upper = self.W * self.upper
        return upper + upper.T

    def check_states(self, states: torch.Tensor, name: str = "states") -> torch.Tensor:
        s = as_tensor(
            states, name, dim=2, n_features=self.n_units, device=self.W.device, dtype=self.W.dtype
        )
        return check_binary(s, name)

    # ----- energy -------------------------------------------------------------------------------
    def energy(self, states: torch.Tensor) -> torch.Tensor:
        """E(s) / T for full states (batch, n_units); +inf where the label group is not one-hot."""
        upper = self.W * self.upper
        e = -((states @ upper) * states).sum(-1) - states @ self.theta
        e = e / self.temperature
        if self.n_labels:
            one_hot = states[:, self.label_slice].sum(-1) == 1
            e = torch.where(one_hot, e, torch.full_like(e, math.inf))
        return e

    def local_fields(self, states: torch.Tensor) -> torch.Tensor:
        """sum_j W_ij s_j + theta_i for every unit: the energy drop of switching unit i on."""
        return torch.addmm(self.theta, states, self.coupling())

    # ----- Gibbs sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def gibbs_sweep(
        self,
        states: torch.Tensor,
        generator: torch.Generator | None = None,
        clamp: int | torch.Tensor = 0,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """One sequential sweep of stochastic unit updates at ``temperature`` (default: the
        model's T). ``clamp``: the first ``clamp`` units stay fixed, or a bool mask of units.

        Fields are updated incrementally (f += delta_s_i * W_i), so a sweep costs O(n^2) per chain.
        This is the inner loop of sampling and training: ``states`` and ``generator`` (a
        torch.Generator or None) are not checked here; ``sample`` checks them.
        """
        T = self.temperature if temperature is None else temperature
        J = self.coupling()
        states = states.clone()
        fields = torch.addmm(self.theta, states, J)
        fixed = self._clamp_mask(clamp, states.device)
        uniforms = torch.rand(
            states.shape, generator=generator, device=states.device, dtype=states.dtype
        )
        labels_done = False
        for i in range(self.n_units):
            if fixed[i]:
                continue
            if self.n_labels and self.label_slice.start <= i < self.label_slice.stop:
                if labels_done:
                    continue
                labels_done = True
                self._update_labels(states, fields, J, T, generator)
                continue
            new = (uniforms[:, i] < torch.sigmoid(fields[:, i] / T)).to(states.dtype)
            delta = new - states[:, i]
            states[:, i] = new
            fields.addr_(delta, J[i])
        return states

    def _clamp_mask(self, clamp: int | torch.Tensor, device: torch.device) -> torch.Tensor:
        if isinstance(clamp, torch.Tensor):
            if clamp.dtype != torch.bool or clamp.shape != (self.n_units,):
                raise ValueError(
                    f"clamp: expected an int or a bool mask of shape "
                    f"({self.n_units},), got {clamp.dtype} {tuple(clamp.shape)}"
                )
            return clamp.to("cpu")
        Integral(
            0,
            self.n_units,
            description=f"a number of leading units in [0, {self.n_units}] or a bool mask",
        ).check(clamp, "clamp")
        mask = torch.zeros(self.n_units, dtype=torch.bool)
        mask[:clamp] = True
        return mask

    def _update_labels(
        self,
        states: torch.Tensor,
        fields: torch.Tensor,
        J: torch.Tensor,
        T: float,
        generator: torch.Generator | None,
    ) -> None:
        ls = self.label_slice
        # p(label = k | rest) ~ exp(field_k / T): label-label weights never act in one-hot states
        # but sit in the fields; remove the current label's contribution first
        own = fields[:, ls] - states[:, ls] @ J[ls, ls]
        choice = torch.multinomial(torch.softmax(own / T, -1), 1, generator=generator)[:, 0]
        new = F.one_hot(choice, self.n_labels).to(states.dtype)
        delta = new - states[:, ls]
        states[:, ls] = new
        fields.addmm_(delta, J[ls])

    def random_states(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniformly random states (a random one-hot label), shape (n, n_units); ``generator``: a
        torch.Generator or a seed."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.W.device)
        s = bernoulli_draw(
            torch.full((n, self.n_units), 0.5, device=self.W.device, dtype=self.W.dtype), generator
        )
        if self.n_labels:
            choice = torch.randint(self.n_labels, (n,), generator=generator, device=s.device)
            s[:, self.label_slice] = F.one_hot(choice, self.n_labels).to(s.dtype)
        return s

    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_sweeps: int = 1000,
        generator: int | torch.Generator | None = None,
        states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full states after ``n_sweeps`` Gibbs sweeps from ``n`` random states (or from the rows
        of ``states``); ``generator``: a torch.Generator or a seed."""
        n_sweeps = check_nonnegative_int(n_sweeps, "n_sweeps")
        generator = as_generator(generator, self.W.device)
        if states is None:
            s = self.random_states(check_positive_int(n, "n"), generator)
        else:
            s = check_nonempty(self.check_states(states), "states")
        for _ in range(n_sweeps):
            s = self.gibbs_sweep(s, generator)
        return s

    @torch.no_grad()
    def anneal(
        self,
        n_chains: int = 16,
        t_start: float = 10.0,
        t_end: float = 0.05,
        cooling: float = 0.9,
        sweeps_per_temperature: int = 2,
        generator: int | torch.Generator | None = None,
        states: torch.Tensor | None = None,
        clamp: int | torch.Tensor = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Simulated annealing (lecture 001) with ``ebmlab.samplers.SimulatedAnnealing``:
        ``sweeps_per_temperature`` sweeps at each T = t_start, cooling * t_start, ... down to the
        first level at or below t_end, then one greedy sweep at T -> 0. Returns (states, energies
        at T = 1), best first. The temperatures are absolute (the model's own T is not used).
        ``n_chains`` chains start from random states (or from the rows of ``states``)."""
        check_positive(t_start, "t_start")
        check_positive(t_end, "t_end")
        check_in_range(cooling, "cooling", 0, 1, closed="neither")
        check_positive_int(sweeps_per_temperature, "sweeps_per_temperature")
        self._clamp_mask(clamp, self.W.device)
        generator = as_generator(generator, self.W.device)
        if not t_start >= t_end:
            raise ValueError(
                f"t_start, t_end, cooling: expected t_start >= t_end > 0 and cooling "
                f"in (0, 1), got {t_start}, {t_end}, {cooling}"
            )
        levels = cooling_steps(t_start, t_end, cooling, past_end=True)
        ladder = geometric_schedule(t_start, cooling, levels)
        schedule = torch.cat(
            [
                ladder.repeat_interleave(sweeps_per_temperature),
                torch.tensor([GREEDY_TEMPERATURE], dtype=torch.float64),
            ]
        )
        s = (
            self.random_states(check_positive_int(n_chains, "n_chains"), generator)
            if states is None
            else check_nonempty(self.check_states(states), "states").clone()
        )
        target = SweepTarget(
            lambda x: self.energy(x) * self.temperature,  # E(s): the schedule's T is absolute
            lambda x, g, beta: self.gibbs_sweep(x, g, clamp=clamp, temperature=1.0 / beta),
            self.spin_values,
        )
        s, _ = SimulatedAnnealing(Gibbs("block"), schedule).anneal(s, target, generator)
        e = self.energy(s) * self.temperature
        order = torch.argsort(e)
        return s[order], e[order]

    # ----- enumeration --------------------------------------------------------------------------
    def _free_states(self, n_free: int, labels: bool) -> torch.Tensor:
        """All assignments of ``n_free`` binary units (labels one-hot when ``labels``)."""
        if n_free > MAX_ENUMERATION_UNITS:
            raise ValueError(
                f"enumeration over {n_free} units is too large (max "
                f"{MAX_ENUMERATION_UNITS}); use sampling instead"
            )
        grid = torch.tensor(
            list(itertools.product((0.0, 1.0), repeat=n_free)),
            dtype=self.W.dtype,
            device=self.W.device,
        ).reshape(-1, n_free)
        if labels and self.n_labels:
            ls = slice(0, self.n_labels)
            grid = grid[grid[:, ls].sum(-1) == 1]
        return grid

    def all_states(self) -> torch.Tensor:
        """Every valid state (labels one-hot), (n_states, n_units)."""
        grid = self._free_states(self.n_units, labels=False)
        if self.n_labels:
            grid = grid[grid[:, self.label_slice].sum(-1) == 1]
        return grid

    def log_z(self) -> torch.Tensor:
        """log Z by enumeration of all states (differentiable)."""
        return torch.logsumexp(-self.energy(self.all_states()), 0)

    def _check_visible(self, v: torch.Tensor, name: str = "v") -> torch.Tensor:
        """``v`` as binary (batch, D) or (batch, D + L) rows on the model's device."""
        v = as_tensor(v, name, dim=2, device=self.W.device, dtype=self.W.dtype)
        if v.shape[1] not in (self.n_visible, self.n_visible + self.n_labels):
            raise ValueError(
                f"{name}: expected {self.n_visible} (or {self.n_visible + self.n_labels} "
                f"with labels) features, got {v.shape[1]}"
            )
        return check_binary(v, name)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_{labels, h} exp(-E(v, labels, h) / T) by enumeration, shape (batch,).
        ``v`` may also carry the label units (D + L columns): then only h is summed out.

        A per-row function (samplers call it at every step): an empty batch gives an empty
        result; ``log_likelihood`` and ``exact_gradient`` refuse one."""
        return self._free_energy(self._check_visible(v))

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``free_energy`` of rows already checked."""
        n_free = self.n_units - v.shape[1]
        if n_free == 0:
            return self.energy(v)
        rest = self._free_states(n_free, labels=v.shape[1] == self.n_visible)
        # chunk the rows so that (rows, states, units) stays near 4 million elements
        rows = max(1, (1 << 22) // (rest.shape[0] * self.n_units))
        out = []
        for start in range(0, v.shape[0], rows):
            v_k = v[start : start + rows]
            full = torch.cat(
                [
                    v_k[:, None, :].expand(-1, rest.shape[0], -1),
                    rest[None].expand(v_k.shape[0], -1, -1),
                ],
                -1,
            )
            e = self.energy(full.reshape(-1, self.n_units)).view(v_k.shape[0], -1)
            out.append(-torch.logsumexp(-e, -1))
        return torch.cat(out) if out else v.new_zeros(0)

    def log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """Exact log p(v) (or log p(v, label) with D + L columns) in nats, shape (batch,)."""
        v = check_nonempty(self._check_visible(v), "v")
        return -self._free_energy(v) - self.log_z()

    def exact_gradient(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gradient of the mean negative log-likelihood of ``v`` by enumeration: {"W", "theta"}
        (W's strict upper triangle). Equals <dE/dtheta>_clamped - <dE/dtheta>_free."""
        W, theta = self.W, self.theta
        with torch.enable_grad():
            nll = -self.log_likelihood(v).mean()
            gw, gt = torch.autograd.grad(nll, [W, theta])
        return {"W": gw * self.upper, "theta": gt}

    # ----- labels -------------------------------------------------------------------------------
    @torch.no_grad()
    def p_class_given_v(
        self,
        v: torch.Tensor,
        n_sweeps: int = 200,
        burn_in: int = 50,
        generator: int | torch.Generator | None = None,
        exact: bool | None = None,
    ) -> torch.Tensor:
        """p(class | v), shape (batch, n_labels). Exact by enumeration of the hidden units when
        ``exact`` (default: when H <= 16), else Gibbs with v clamped, averaging the label
        conditionals over ``n_sweeps`` sweeps after ``burn_in`` (Rao-Blackwellized)."""
        if not self.n_labels:
            raise ValueError("p_class_given_v: the machine has no label units (n_labels=0)")
        check_positive_int(n_sweeps, "n_sweeps")
        check_nonnegative_int(burn_in, "burn_in")
        (Boolean() | None).check(exact, "exact")
        generator = as_generator(generator, self.W.device)
        v = as_tensor(
            v, "v", dim=2, n_features=self.n_visible, device=self.W.device, dtype=self.W.dtype
        )
        check_nonempty(check_binary(v, "v"), "v")
        exact = self.n_hidden <= 16 if exact is None else exact
        eye = torch.eye(self.n_labels, dtype=v.dtype, device=v.device)
        if exact:
            scores = torch.stack(
                [
                    -self._free_energy(torch.cat([v, eye[k].expand(v.shape[0], -1)], -1))
                    for k in range(self.n_labels)
                ],
                -1,
            )
            return torch.softmax(scores, -1)
        s = self.random_states(v.shape[0], generator)
        s[:, : self.n_visible] = v
        J = self.coupling()
        total = torch.zeros(v.shape[0], self.n_labels, dtype=v.dtype, device=v.device)
        ls = self.label_slice
        for sweep in range(burn_in + n_sweeps):
            s = self.gibbs_sweep(s, generator, clamp=self.n_visible)
            if sweep >= burn_in:
                fields = torch.addmm(self.theta, s, J)
                own = fields[:, ls] - s[:, ls] @ J[ls, ls]
                total += torch.softmax(own / self.temperature, -1)
        return total / n_sweeps

    @torch.no_grad()
    def generate_class(
        self,
        label: int | torch.Tensor,
        n: int,
        n_sweeps: int = 500,
        generator: int | torch.Generator | None = None,
    ) -> torch.Tensor:
        """Class-conditional generation: Gibbs with the label units clamped to ``label`` (an int,
        or one label per chain as an int tensor of shape (n,)); returns p(v_i = 1 | rest) of the
        last sweep, shape (n, n_visible). ``generator``: a torch.Generator or a seed."""
        if not self.n_labels:
            raise ValueError("generate_class: the machine has no label units (n_labels=0)")
        n = check_positive_int(n, "n")
        n_sweeps = check_nonnegative_int(n_sweeps, "n_sweeps")
        generator = as_generator(generator, self.W.device)
        classes = Integral(0, self.n_labels - 1)
        if isinstance(label, list | tuple | np.ndarray):
            label = torch.as_tensor(label)
        if isinstance(label, torch.Tensor):
            if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
                raise ValueError(f"label: expected an integer tensor, got {label.dtype}")
            if label.shape not in ((), (n,)):
                raise ValueError(
                    f"label: expected shape () or ({n},) (one label per chain), got "
                    f"{tuple(label.shape)}"
                )
            for value in label.reshape(-1).unique().tolist():
                classes.check(value, "label")
        else:
            classes.check(label, "label")
        labels = torch.as_tensor(label, device=self.W.device).long().expand(n)
        s = self.random_states(n, generator)
        s[:, self.label_slice] = F.one_hot(labels, self.n_labels).to(s.dtype)
        mask = torch.zeros(self.n_units, dtype=torch.bool)
        mask[self.label_slice] = True
        for _ in range(n_sweeps):
            s = self.gibbs_sweep(s, generator, clamp=mask)
        fields = self.local_fields(s)[:, : self.n_visible]
        return torch.sigmoid(fields / self.temperature)
