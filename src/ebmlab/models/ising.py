"""The Ising model on an L x L square lattice: the textbook bimodal binary energy.

Spins s_i in {-1, +1}, nearest-neighbour coupling J, external field h, temperature T:

    E(s) = -(1/T) [ J sum_<ij> s_i s_j + h sum_i s_i ],      p(s) = exp(-E(s)) / Z.

Bonds ``<ij>`` join every site to its right and lower neighbours; with ``boundary="periodic"``
the lattice wraps around (for L = 2 the wrap-around bond repeats the direct one, the usual
convention), with ``"free"`` the edge sites have fewer neighbours. For J > 0 and h = 0 the
distribution has two symmetric modes (all up, all down) once J / T exceeds about 0.44 (Onsager's
critical coupling ln(1 + sqrt 2) / 2 of the infinite lattice): a standard test of MCMC mixing.

Exact conditionals for Gibbs sampling (the protocol of ``ebmlab.samplers.gibbs``): with the local
field f_i = J sum_{j ~ i} s_j + h,

    logit p(s_i = +1 | s_-i) = E(s_i = -1) - E(s_i = +1) = 2 f_i / T.

On a bipartite lattice (free boundary, or periodic with even L) the two checkerboard colours are
conditionally independent given each other: ``block_gibbs`` updates each colour at once.

``n_units``, ``energy(states)`` and ``spin_values`` make ``ebmlab.partition.exact_log_z``
enumerate small lattices exactly (L <= 5).

References: Ising (1925); Onsager (1944); MacKay, Information Theory, Inference, and Learning
Algorithms (2003), ch. 31.
"""

from __future__ import annotations

import torch

from ..samplers import bernoulli_draw
from ..validation import (
    Integral,
    OneOf,
    Real,
    as_generator,
    as_tensor,
    check_nonnegative_int,
    check_positive_int,
    validate,
)
from .base import Model


def lattice_bonds(size: int, periodic: bool) -> torch.Tensor:
    """Bonds (i, j) of an L x L square lattice, sites numbered row-major; shape (n_bonds, 2)."""
    index = torch.arange(size * size).reshape(size, size)
    if periodic:
        right = torch.stack([index, index.roll(-1, dims=1)], -1).reshape(-1, 2)
        down = torch.stack([index, index.roll(-1, dims=0)], -1).reshape(-1, 2)
    else:
        right = torch.stack([index[:, :-1], index[:, 1:]], -1).reshape(-1, 2)
        down = torch.stack([index[:-1, :], index[1:, :]], -1).reshape(-1, 2)
    return torch.cat([right, down])


class Ising(Model):
    """Square-lattice Ising model with ±1 spins.

    Args:
        size: lattice side L (>= 2); n_units = L * L.
        coupling: J (> 0 ferromagnetic).
        field: h.
        temperature: T (> 0); the energy is divided by T.
        boundary: "periodic" or "free".
    """

    likelihood_kind = "exact"
    spin_values = (-1.0, 1.0)

    @validate(
        size=Integral(2),
        coupling=Real(),
        field=Real(),
        temperature=Real(0, closed="neither"),
        boundary=OneOf("periodic", "free"),
    )
    def __init__(
        self,
        size: int,
        coupling: float = 1.0,
        field: float = 0.0,
        temperature: float = 1.0,
        boundary: str = "periodic",
    ) -> None:
        super().__init__()
        self.size = int(size)
        self.n_units = self.size * self.size
        self.coupling = float(coupling)
        self.field = float(field)
        self.temperature = float(temperature)
        self.boundary = boundary
        bonds = lattice_bonds(self.size, boundary == "periodic")
        self.register_buffer("bonds", bonds, persistent=False)
        # neighbour table padded to degree 4; padding points at site 0 with weight 0
        neighbours = [[] for _ in range(self.n_units)]
        for i, j in bonds.tolist():
            neighbours[i].append(j)
            neighbours[j].append(i)
        table = torch.zeros(self.n_units, 4, dtype=torch.long)
        weight = torch.zeros(self.n_units, 4)
        for i, nbrs in enumerate(neighbours):
            table[i, : len(nbrs)] = torch.tensor(nbrs, dtype=torch.long)
            weight[i, : len(nbrs)] = 1.0
        self.register_buffer("neighbours", table, persistent=False)
        self.register_buffer("neighbour_weight", weight, persistent=False)
        sites = torch.arange(self.n_units)
        row, col = sites // self.size, sites % self.size
        self.register_buffer("colour", (row + col) % 2, persistent=False)
        self.bipartite = boundary == "free" or self.size % 2 == 0

    def check_states(self, s: torch.Tensor, name: str = "s") -> torch.Tensor:
        """``s`` as a (batch, L*L) tensor of -1/+1 spins on the model's device, else an error
        that names ``name``."""
        s = as_tensor(s, name, dim=2, n_features=self.n_units, device=self.neighbours.device)
        if not ((s == 1) | (s == -1)).all():
            raise ValueError(f"{name}: Ising spins must be -1 or +1")
        return s

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """E(s) for a batch of spin configurations (batch, L*L); shape (batch,).

        Does not check its input: it is the inner loop of the samplers and of exact enumeration.
        Check states given by hand with ``check_states`` first, e.g.
        ``model.energy(model.check_states(s))``."""
        pair = (s[:, self.bonds[:, 0]] * s[:, self.bonds[:, 1]]).sum(-1)
        return -(self.coupling * pair + self.field * s.sum(-1)) / self.temperature

    def local_field(self, s: torch.Tensor) -> torch.Tensor:
        """f_i = J sum_{j ~ i} s_j + h for every site, shape (batch, L*L)."""
        weight = self.neighbour_weight.to(s.dtype)
        return self.coupling * (s[:, self.neighbours] * weight).sum(-1) + self.field

    def conditional_logits(self, s: torch.Tensor, i: int) -> torch.Tensor:
        """logit p(s_i = +1 | rest) = 2 f_i / T, shape (batch,)."""
        weight = self.neighbour_weight[i].to(s.dtype)
        f = self.coupling * (s[:, self.neighbours[i]] * weight).sum(-1) + self.field
        return 2.0 * f / self.temperature

    def block_gibbs(
        self,
        s: torch.Tensor,
        generator: torch.Generator | None = None,
        beta: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """One checkerboard sweep (both colours), exact on bipartite lattices; ``beta`` scales
        the energy (a float or a (batch, 1) column)."""
        if not self.bipartite:
            raise ValueError(
                "block_gibbs: a periodic lattice with odd size is not bipartite; "
                "use single-site Gibbs"
            )
        s = s.clone()
        for colour in (0, 1):
            sites = self.colour == colour
            logits = beta * 2.0 * self.local_field(s)[:, sites] / self.temperature
            s[:, sites] = 2.0 * bernoulli_draw(torch.sigmoid(logits), generator) - 1.0
        return s

    def magnetization(self, s: torch.Tensor) -> torch.Tensor:
        """Mean spin per configuration (batch, L*L) of -1/+1 spins, shape (batch,)."""
        return self.check_states(s).mean(-1)

    @torch.no_grad()
    def sample(
        self, n: int, n_steps: int = 1000, generator: int | torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` configurations after ``n_steps`` Gibbs sweeps from random spins (checkerboard
        sweeps on bipartite lattices); shape (n, L*L). ``generator``: a torch.Generator or a
        seed. Slow to mix between the two modes at low temperature: use
        ``ebmlab.samplers.ParallelTempering`` there."""
        n = check_positive_int(n, "n")
        n_steps = check_nonnegative_int(n_steps, "n_steps")
        device = self.neighbours.device
        generator = as_generator(generator, device)
        u = torch.rand(n, self.n_units, generator=generator, device=device)
        s = torch.where(u < 0.5, 1.0, -1.0)
        for _ in range(n_steps):
            if self.bipartite:
                s = self.block_gibbs(s, generator)
            else:
                for i in range(self.n_units):
                    p = torch.sigmoid(self.conditional_logits(s, i))
                    s[:, i] = 2.0 * bernoulli_draw(p, generator) - 1.0
        return s
