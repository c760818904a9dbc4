"""2-D toy densities, sampled exactly as the generators of FFJORD's ``lib/toy_data.py``.

Reference: Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud (2019), "FFJORD: Free-form
continuous dynamics for scalable reversible generative models", ICLR (github.com/rtqichen/ffjord);
moons, circles and swissroll there call scikit-learn's ``make_moons``, ``make_circles`` and
``make_swiss_roll``, reimplemented here with torch generators.

Every set is written as a latent variable model (a component, a curve parameter, noise), and
``toy2d_density.py`` integrates that latent out to give the exact normalized density.

Two deliberate differences from the reference code, which change no distribution:
- FFJORD's rings and circles (and scikit-learn's moons) place points at evenly spaced angles, a
  stratified sample; here the angle is drawn uniformly, so samples are i.i.d. from the density.
- Mixture components are drawn i.i.d. (FFJORD gives pinwheel arms and spirals equal counts and
  returns only 5 * (n // 5) pinwheel points); here exactly ``n`` i.i.d. points are returned.

Constants (all after FFJORD's final scaling):
- 8gaussians: centers 4 * (the 8 compass unit vectors) / 1.414, std 0.5 / 1.414 (1.414 as in the
  reference, not sqrt(2)).
- rings: radii 3, 2.25, 1.5, 0.75 with equal weights, uniform angle, noise std 0.08.
- circles: ``make_circles(factor=0.5, noise=0.08) * 3``: radii 3 and 1.5, noise std 0.24.
- moons: ``make_moons(noise=0.1) * 2 + (-1, -0.2)``: theta ~ U(0, pi), upper moon
  (2 cos t - 1, 2 sin t - 0.2), lower moon (1 - 2 cos t, 0.8 - 2 sin t), noise std 0.2.
- swissroll: ``make_swiss_roll(noise=1)[:, [0, 2]] / 5``: t ~ U(1.5 pi, 4.5 pi),
  (t cos t, t sin t) / 5, noise std 0.2.
- pinwheel: arm k ~ U{0..4}, f ~ N((1, 0), diag(0.3^2, 0.1^2)), a = 2 pi k / 5 + 0.25 exp(f_0),
  x = 2 R(-a) f (R(a) the rotation by a).
- 2spirals: t = 3 pi sqrt(U), u ~ U([0, 0.5]^2), s = +-1, x = s ((-t cos t, t sin t) + u) / 3
  + N(0, 0.1^2 I).
- checkerboard: x_1 ~ U[-2, 2), x_2 ~ U([0, 1) or [-2, -1)) shifted up by 1 in odd columns,
  times 2: uniform (density 1/32) on 8 squares of side 2 in [-4, 4]^2.
"""

from __future__ import annotations

import math

import torch

from ..validation import check_nonnegative_int
from .registry import dataset_info, toy2d_names

EIGHT_GAUSSIANS_SCALE = 4.0
EIGHT_GAUSSIANS_STD = 0.5
EIGHT_GAUSSIANS_DIVISOR = 1.414  # FFJORD divides by 1.414, not sqrt(2)
RINGS_RADII = (3.0, 2.25, 1.5, 0.75)
RINGS_STD = 0.08
CIRCLES_RADII = (3.0, 1.5)
CIRCLES_STD = 0.24
MOONS_STD = 0.2
SWISSROLL_T_RANGE = (1.5 * math.pi, 4.5 * math.pi)
SWISSROLL_SCALE = 5.0
SWISSROLL_STD = 0.2
PINWHEEL_ARMS = 5
PINWHEEL_RADIAL_STD = 0.3
PINWHEEL_TANGENTIAL_STD = 0.1
PINWHEEL_RATE = 0.25
PINWHEEL_SCALE = 2.0
SPIRALS_T_MAX = 3.0 * math.pi  # 540 degrees
SPIRALS_BOX = 0.5  # uniform offset in [0, 0.5]^2 before the division by 3
SPIRALS_DIVISOR = 3.0
SPIRALS_STD = 0.1
CHECKERBOARD_SCALE = 2.0


def eight_gaussians_centers(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 8 mixture means (8, 2), after the division by 1.414, in FFJORD's order."""
    s = 1.0 / math.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    centers = torch.tensor(unit, dtype=torch.float64) * EIGHT_GAUSSIANS_SCALE
    return (centers / EIGHT_GAUSSIANS_DIVISOR).to(dtype)


def moons_curve(theta: torch.Tensor, moon: torch.Tensor) -> torch.Tensor:
    """Point of moon 0 (upper) or 1 (lower) at angle ``theta`` in [0, pi], before noise."""
    c, s = torch.cos(theta), torch.sin(theta)
    upper = torch.stack([2 * c - 1, 2 * s - 0.2], dim=-1)
    lower = torch.stack([1 - 2 * c, 0.8 - 2 * s], dim=-1)
    return torch.where(moon.unsqueeze(-1) == 0, upper, lower)


def swissroll_curve(t: torch.Tensor) -> torch.Tensor:
    return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1) / SWISSROLL_SCALE


def spiral_curve(t: torch.Tensor) -> torch.Tensor:
    """The first spiral before the uniform offset, divided by 3: (-t cos t, t sin t) / 3."""
    return torch.stack([-t * torch.cos(t), t * torch.sin(t)], dim=-1) / SPIRALS_DIVISOR


def pinwheel_map(f: torch.Tensor, arm: torch.Tensor) -> torch.Tensor:
    """x = 2 R(-a) f with a = 2 pi arm / 5 + 0.25 exp(f_0)."""
    a = 2 * math.pi * arm / PINWHEEL_ARMS + PINWHEEL_RATE * torch.exp(f[:, 0])
    c, s = torch.cos(a), torch.sin(a)
    return PINWHEEL_SCALE * torch.stack(
        [f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], dim=-1
    )


def as_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator: ``seed`` itself if it is one, else a new one seeded with ``seed``."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def toy2d(name: str, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
    """Draw ``n`` i.i.d. points of the 2-D toy density ``name`` as a float32 tensor (n, 2).

    ``seed`` is an int or a ``torch.Generator`` (CPU); the same seed gives the same points.
    """
    if dataset_info(name).kind != "toy2d":
        raise ValueError(
            f"name: {name!r} is not a 2-D toy density; valid: {', '.join(toy2d_names())}"
        )
    check_nonnegative_int(n, "n")
    g = as_generator(seed)
    return _SAMPLERS[name](n, g).to(torch.float32)


def _randn(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=g, dtype=torch.float64)


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _sample_8gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    std = EIGHT_GAUSSIANS_STD / EIGHT_GAUSSIANS_DIVISOR
    return eight_gaussians_centers()[k] + std * _randn(n, g)


def _sample_circles_of(
    radii: tuple[float, ...], std: float, n: int, g: torch.Generator
) -> torch.Tensor:
    k = torch.randint(0, len(radii), (n,), generator=g)
    r = torch.tensor(radii, dtype=torch.float64)[k]
    angle = 2 * math.pi * _rand(n, g)
    return r.unsqueeze(-1) * torch.stack([torch.cos(angle), torch.sin(angle)], -1) + std * _randn(
        n, g
    )


def _sample_rings(n: int, g: torch.Generator) -> torch.Tensor:
    return _sample_circles_of(RINGS_RADII, RINGS_STD, n, g)


def _sample_circles(n: int, g: torch.Generator) -> torch.Tensor:
    return _sample_circles_of(CIRCLES_RADII, CIRCLES_STD, n, g)


def _sample_moons(n: int, g: torch.Generator) -> torch.Tensor:
    moon = torch.randint(0, 2, (n,), generator=g)
    theta = math.pi * _rand(n, g)
    return moons_curve(theta, moon) + MOONS_STD * _randn(n, g)


def _sample_swissroll(n: int, g: torch.Generator) -> torch.Tensor:
    lo, hi = SWISSROLL_T_RANGE
    t = lo + (hi - lo) * _rand(n, g)
    return swissroll_curve(t) + SWISSROLL_STD * _randn(n, g)


def _sample_pinwheel(n: int, g: torch.Generator) -> torch.Tensor:
    arm = torch.randint(0, PINWHEEL_ARMS, (n,), generator=g).to(torch.float64)
    std = torch.tensor([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD], dtype=torch.float64)
    f = _randn(n, g) * std + torch.tensor([1.0, 0.0], dtype=torch.float64)
    return pinwheel_map(f, arm)


def _sample_2spirals(n: int, g: torch.Generator) -> torch.Tensor:
    sign = 1.0 - 2.0 * torch.randint(0, 2, (n, 1), generator=g).to(torch.float64)
    t = SPIRALS_T_MAX * torch.sqrt(_rand(n, g))
    box = SPIRALS_BOX * torch.rand(n, 2, generator=g, dtype=torch.float64)
    return sign * (spiral_curve(t) + box / SPIRALS_DIVISOR) + SPIRALS_STD * _randn(n, g)


def _sample_checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = 4 * _rand(n, g) - 2
    lower_band = torch.randint(0, 2, (n,), generator=g).to(torch.float64)
    x2 = _rand(n, g) - 2 * lower_band + torch.remainder(torch.floor(x1), 2)
    return CHECKERBOARD_SCALE * torch.stack([x1, x2], dim=-1)


_SAMPLERS = {
    "8gaussians": _sample_8gaussians,
    "rings": _sample_rings,
    "circles": _sample_circles,
    "moons": _sample_moons,
    "checkerboard": _sample_checkerboard,
    "pinwheel": _sample_pinwheel,
    "swissroll": _sample_swissroll,
    "2spirals": _sample_2spirals,
}
