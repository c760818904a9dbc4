"""Normalizing flows: invertible transforms with their log-determinants, and RealNVP.

A flow models x through a bijection z = f(x) onto a simple base density (here N(0, I)):

    log q(x) = log N(f(x); 0, I) + log |det df/dx|.

Every ``Transform`` computes its output and its log-absolute-determinant-Jacobian (``ladj``) in
one pass, in both directions (as in zuko's ``call_and_ladj``):

    forward(x) -> (y, log|det dy/dx|),     inverse(y) -> (x, log|det dx/dy|),

so density evaluation (data -> latent) and sampling (latent -> data) each cost one pass. Direction
convention: ``forward`` goes from data to latent (the normalizing direction); sampling runs the
``inverse``.

Pieces:
  * ``AffineCoupling`` (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP"):
    the coordinates where ``mask`` is 1 pass unchanged and condition a scale and shift of the
    others, y = x * exp(s(x_m)) + t(x_m); ladj = sum s. The log-scale is soft-clamped,
    s = bound * tanh(raw / bound), so one step can never overflow exp (Dinh et al. use tanh
    too). The conditioner's last layer starts at zero: a new coupling is the identity.
  * ``ElementwiseAffine``: y = (x - loc) * exp(-log_scale), a learnable standardization
    (initialized from data with ``RealNVP.standardize``).
  * ``Permutation``: reorders the coordinates (ladj 0).
  * ``ComposedTransform``: a chain; ladjs add.
  * ``Flow`` (a ``Model``): a transform onto N(0, I), with ``log_prob``, ``sample``,
    ``sample_and_log_prob`` (reparameterized, for adversarial training of the flow) and
    ``inverse``; ``energy(x) = -log_prob(x)``, so a flow is an energy-based model whose log Z is 0.
  * ``RealNVP(dim, n_layers, hidden, depth)``: standardization then ``n_layers`` couplings with
    alternating masks (even and odd coordinates) and a reversal between them.

Used as the learned noise distribution of flow contrastive estimation
(``ebmlab.objectives.nce.FlowContrastiveEstimation``, Gao et al. 2020). A new transform joins the
shared test suite (tests/test_flows.py: inverse, ladj against the autograd Jacobian) by one list
entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..validation import (
    Integral,
    OneOf,
    Real,
    as_generator,
    as_tensor,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model

#: Soft bound on a coupling's log-scale per coordinate and layer (exp(+-5) ~ 150x at most).
DEFAULT_SCALE_BOUND = 5.0
#: what a soft bound on a log-scale may be
SCALE_BOUND = Real(0, closed="neither")

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def activation_layer(name: str) -> nn.Module:
    """The activation module called ``name`` (silu, tanh, relu, gelu, softplus)."""
    OneOf(*_ACTIVATIONS).check(name, "activation")
    return _ACTIVATIONS[name]()


def mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` between ``n_in`` inputs and ``n_out`` outputs."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation_layer(activation)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension, shape (batch,)."""
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class Transform(nn.Module):
    """A bijection of R^dim that returns its log-absolute-determinant with its output.

    Subclasses implement ``forward(x) -> (y, ladj)`` and ``inverse(y) -> (x, ladj)``, each ladj
    of shape (batch,) and the inverse's equal to minus the forward's at the matching point.
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ElementwiseAffine(Transform):
    """y = (x - loc) * exp(-log_scale); ladj = -sum log_scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = (x - self.loc) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = y * torch.exp(self.log_scale) + self.loc
        return x, self.log_scale.sum().expand(y.shape[0])


class Permutation(Transform):
    """y = x[:, order]; volume preserving."""

    def __init__(self, order: Sequence[int]) -> None:
        super().__init__()
        order_t = torch.as_tensor(list(order), dtype=torch.long)
        if sorted(order_t.tolist()) != list(range(len(order_t))):
            raise ValueError(
                f"order: expected a permutation of 0..{len(order_t) - 1}, got {list(order)}"
            )
        self.register_buffer("order", order_t)
        self.register_buffer("inverse_order", torch.argsort(order_t))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, self.order], x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y[:, self.inverse_order], y.new_zeros(y.shape[0])


class MaskedAffineCoupling(Transform):
    """y_m = x_m, y_u = x_u * exp(s(x_m)) + t(x_m) on the entries where the ``mask`` buffer is 0;
    ladj = sum of s over those entries. Subclasses give the raw (s, t) of the kept entries
    (``conditioner_output``); s is soft-bounded by ``scale_bound`` (s = bound * tanh(raw / bound))
    and both are zeroed on the kept entries here."""

    mask: torch.Tensor
    scale_bound: float

    def conditioner_output(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.conditioner_output(kept)
        free = 1.0 - self.mask
        s = self.scale_bound * torch.tanh(raw_s / self.scale_bound) * free
        return s, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x * self.mask)
        return x * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(y * self.mask)
        return (y - t) * torch.exp(-s), -s.sum(-1)


class AffineCoupling(MaskedAffineCoupling):
    """Real NVP affine coupling: y_m = x_m, y_u = x_u * exp(s(x_m)) + t(x_m) (m: mask == 1).

    Args:
        mask: 0/1 per coordinate; coordinates with 1 are kept and condition the others.
        hidden, depth, activation: the conditioner MLP (mask-ed input -> (s, t)).
        scale_bound: soft bound on |s| (s = bound * tanh(raw / bound)).
    """

    @validate(scale_bound=SCALE_BOUND)
    def __init__(
        self,
        mask: Sequence[int],
        hidden: int = 64,
        depth: int = 2,
        activation: str = "silu",
        scale_bound: float = DEFAULT_SCALE_BOUND,
    ) -> None:
        super().__init__()
        mask_t = torch.as_tensor(list(mask), dtype=torch.float32)
        if not ((mask_t == 0) | (mask_t == 1)).all() or mask_t.sum() in (0, mask_t.numel()):
            raise ValueError(
                f"mask: expected 0/1 entries with both values present, got {list(mask)}"
            )
        dim = mask_t.numel()
        self.register_buffer("mask", mask_t)
        self.scale_bound = float(scale_bound)
        self.conditioner = mlp(dim, 2 * dim, hidden, depth, activation)
        last = self.conditioner[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # a fresh coupling is the identity
        nn.init.zeros_(last.bias)

    def conditioner_output(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.conditioner(kept).chunk(2, dim=-1)
        return raw_s, t


class ComposedTransform(Transform):
    """f = f_n o ... o f_1 (``transforms`` in the forward order); ladjs add."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, ladj = transform(x)
            total = total + ladj
        return x, total

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = y.new_zeros(y.shape[0])
        for transform in reversed(self.transforms):
            y, ladj = transform.inverse(y)
            total = total + ladj
        return y, total


class Flow(Model):
    """A density q(x) = N(f(x); 0, I) |det df/dx|. Subclasses set ``self.transform`` and
    ``self.dim``."""

    likelihood_kind = "exact"
    transform: Transform
    dim: int

    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_tensor(x, name, dim=2, n_features=self.dim, device=self.device, dtype=self.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f(x) and log|det df/dx|."""
        return self.transform(x)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f^-1(z) and log|det df^-1/dz|, in one pass."""
        return self.transform.inverse(z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized log density in nats, shape (batch,), of at least one row ``x``."""
        z, ladj = self.transform(check_nonempty(self._check(x, "x"), "x"))
        return standard_normal_log_prob(z) + ladj

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """-log q(x): a flow is an energy-based model with log Z = 0."""
        return -self.log_prob(x)

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n >= 1 reparameterized draws x = f^-1(z) and their log q(x) (differentiable in the
        flow's parameters), with log q(x) = log N(z) - log|det df^-1/dz|. ``generator``: a
        ``torch.Generator``, an integer seed or None."""
        check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        z = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        x, ladj = self.transform.inverse(z)
        return x, standard_normal_log_prob(z) - ladj

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, **_: object
    ) -> torch.Tensor:
        """n >= 1 draws (n, dim); extra keyword arguments (e.g. ``n_steps``) are ignored."""
        return self.sample_and_log_prob(n, generator)[0]


class RealNVP(Flow):
    """Real NVP for low-dimensional vectors (Dinh et al. 2017).

    Args:
        dim: number of coordinates (>= 2).
        n_layers: affine couplings, alternating between even and odd coordinates kept.
        hidden, depth, activation: each coupling's conditioner MLP.
        scale_bound: soft bound on each coupling's log-scale.
    """

    @validate(
        dim=Integral(2, description="an integer >= 2 (a coupling flow splits the coordinates)"),
        n_layers=Integral(1),
        hidden=Integral(1),
        depth=Integral(1),
        activation=OneOf(*_ACTIVATIONS),
        scale_bound=SCALE_BOUND,
    )
    def __init__(
        self,
        dim: int,
        n_layers: int = 6,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "silu",
        scale_bound: float = DEFAULT_SCALE_BOUND,
    ) -> None:
        super().__init__()
        self.dim = int(dim)
        layers: list[Transform] = [ElementwiseAffine(dim)]
        even = [1 - i % 2 for i in range(dim)]
        for k in range(n_layers):
            mask = even if k % 2 == 0 else [1 - m for m in even]
            layers.append(AffineCoupling(mask, hidden, depth, activation, scale_bound))
            if k < n_layers - 1 and dim > 2:
                # with more than 2 coordinates, mix which ones meet in a coupling
                layers.append(Permutation(list(reversed(range(dim)))))
        self.transform = ComposedTransform(layers)

    @property
    def standardization(self) -> ElementwiseAffine:
        """The first layer, a learnable per-coordinate standardization."""
        first = self.transform.transforms[0]
        assert isinstance(first, ElementwiseAffine)
        return first

    @torch.no_grad()
    def standardize(self, x: torch.Tensor) -> None:
        """Set the first layer to map the data to zero mean and unit variance per coordinate;
        ``x``: at least two rows."""
        x = check_nonempty(self._check(x, "x"), "x", 2)
        self.standardization.loc.copy_(x.mean(0))
        # a constant coordinate would give log(0): floor its std at 1e-6
        self.standardization.log_scale.copy_(torch.log(x.std(0).clamp_min(1e-6)))
