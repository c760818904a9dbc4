"""Exact normalized log densities of the 2-D toy sets of ``toy2d_generators.py``.

Each density is that of the generative process (FFJORD's, Grathwohl et al. 2019) with its latent
variables integrated out:

- 8gaussians, rings, circles, checkerboard: closed form. A ring of radius R with a uniform angle
  convolved with N(0, s^2 I) has density exp(-(r^2 + R^2) / 2s^2) I_0(r R / s^2) / (2 pi s^2),
  computed with the exponentially scaled Bessel function ``i0e`` to stay in log space.
- moons, swissroll: a curve parameter t convolved with isotropic Gaussian noise,
  p(x) = E_t N(x; c(t), s^2 I), integrated by composite Gauss-Legendre quadrature in t.
- 2spirals: the same over t (density 2t / (3 pi)^2 on [0, 3 pi]), with the uniform offset
  u / 3 in [0, 1/6]^2 integrated in closed form: each coordinate contributes the kernel
  6 (Phi(d / s) - Phi((d - 1/6) / s)), d = x_i - c_i(t).
- pinwheel: change of variables. With rho = |x| / 2 and theta the angle of x, the latent of arm k
  is f = rho (cos(theta + a), sin(theta + a)) where a = 2 pi k / 5 + 0.25 exp(f_0), so f_0 solves
  F(f_0) = f_0 - rho cos(theta + 2 pi k / 5 + 0.25 exp(f_0)) = 0 on [-rho, rho]. Every root
  contributes N(f_0; 1, 0.3^2) N(f_1; 0, 0.1^2) / |det| with det = 4 F'(f_0)
  = 4 (1 + 0.25 e^{f_0} f_1). Roots are bracketed on a grid fine enough that the phase
  0.25 e^{f_0} moves at most 0.05 rad per cell, refined by bisection, and a last Newton step keeps
  the result differentiable in x. Two roots inside one cell can only occur next to a fold of the
  map (F' = 0), which lies where the latent density is below ~1e-8 (|x| beyond the data); at
  least one root always exists and is found, so the log density is finite everywhere. Beyond
  |x| ~ 19 (log density below -400) the bracketing grid is capped and float64 cannot resolve the
  phase e^{f_0}, so there the value is only a finite stand-in for "essentially zero".

Quadrature: 8-point Gauss-Legendre panels, each one noise std of arc length long. Where the
density exceeds 1e-6 of its peak this is exact to ~1e-12 relative; far from the data (the
corners of [-4.5, 4.5]^2) the integrand narrows and the log density is exact to ~1e-3 nats
(both checked in the tests against 4x finer quadrature).

Curve mixtures are summed in linear space (fast ``erfc``/``exp``) and only rows whose density
falls below 1e-250 (far outside the data) are recomputed in log space, so every value is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import as_tensor
from .registry import dataset_info, toy2d_names
from .toy2d_generators import (
    CHECKERBOARD_SCALE,
    CIRCLES_RADII,
    CIRCLES_STD,
    EIGHT_GAUSSIANS_DIVISOR,
    EIGHT_GAUSSIANS_STD,
    MOONS_STD,
    PINWHEEL_ARMS,
    PINWHEEL_RADIAL_STD,
    PINWHEEL_RATE,
    PINWHEEL_SCALE,
    PINWHEEL_TANGENTIAL_STD,
    RINGS_RADII,
    RINGS_STD,
    SPIRALS_BOX,
    SPIRALS_DIVISOR,
    SPIRALS_STD,
    SPIRALS_T_MAX,
    SWISSROLL_SCALE,
    SWISSROLL_STD,
    SWISSROLL_T_RANGE,
    eight_gaussians_centers,
    moons_curve,
    spiral_curve,
    swissroll_curve,
)

LOG_2PI = math.log(2 * math.pi)
GAUSS_LEGENDRE_ORDER = 8
PANEL_STDS = 1.0  # quadrature panel length along a curve, in noise standard deviations
TINY = 1e-250  # below this a linear-space mixture may have lost terms to underflow (< 1e-308)
PINWHEEL_MIN_BRACKETS = 64
PINWHEEL_MAX_BRACKETS = 1 << 16  # reached only for |x| > 20, where the density is ~exp(-400)
PINWHEEL_PHASE_STEP = 0.05  # radians of 0.25 exp(f_0) per bracketing cell
PINWHEEL_BISECTIONS = 60  # halves a bracket of width <= 2 rho / 64 below float64 resolution
_CHUNK_ELEMENTS = 1 << 16  # rows * nodes per block: temporaries stay in cache (~0.5 MB)
_PINWHEEL_CHUNK_ELEMENTS = 1 << 18  # rows * arms * bracket points per block


def toy2d_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """Normalized log density log p(x) (n,) of the toy set ``name`` at points ``x`` (n, 2).

    Computed in float64 on ``x``'s device and returned in ``x``'s floating dtype. Checkerboard
    gives -inf outside its support. Differentiable in ``x`` (the gradient is the score).
    """
    check_toy2d_name(name)
    x = as_tensor(x, "x", dim=2, n_features=2)
    return _LOG_DENSITIES[name](x.to(torch.float64)).to(x.dtype)


def check_toy2d_name(name: str) -> None:
    if dataset_info(name).kind != "toy2d":
        raise ValueError(
            f"name: {name!r} is not a 2-D toy density; valid: {', '.join(toy2d_names())}"
        )


def _chunks(n_rows: int, n_nodes: int) -> list[slice]:
    size = max(1, _CHUNK_ELEMENTS // max(1, n_nodes))
    return [slice(i, min(i + size, n_rows)) for i in range(0, n_rows, size)]


# ----- separable kernels and curve mixtures -----------------------------------------------------


@dataclass(frozen=True)
class GaussianKernel:
    """N(d; 0, std^2) per coordinate."""

    std: float

    def density(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * (d / self.std) ** 2) / (self.std * math.sqrt(2 * math.pi))

    def log_density(self, d: torch.Tensor) -> torch.Tensor:
        return -0.5 * (d / self.std) ** 2 - math.log(self.std) - 0.5 * LOG_2PI


@dataclass(frozen=True)
class BoxGaussianKernel:
    """Density of sign * (w + e) per coordinate, w ~ U[0, width], e ~ N(0, std^2)."""

    width: float
    std: float
    sign: float = 1.0

    def density(self, d: torch.Tensor) -> torch.Tensor:
        # (Phi(a) - Phi(b)) / width, a = d / std, b = (d - width) / std, as erfc(u) - erfc(v)
        # over 2 with u < v both on the side where erfc is small (no cancellation)
        a = self.sign * d / self.std
        b = a - self.width / self.std
        right = b > 0
        u, v = torch.where(right, b, -a), torch.where(right, a, -b)
        return (
            0.5
            * (torch.special.erfc(u / math.sqrt(2)) - torch.special.erfc(v / math.sqrt(2)))
            / self.width
        )

    def log_density(self, d: torch.Tensor) -> torch.Tensor:
        a = self.sign * d / self.std
        return _log_ndtr_diff(a, a - self.width / self.std) - math.log(self.width)


def _log1mexp(z: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(z)) for z < 0, accurate at both ends (Maechler 2012)."""
    return torch.where(z > -math.log(2), torch.log(-torch.expm1(z)), torch.log1p(-torch.exp(z)))


def _log_ndtr_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(a) - Phi(b)) for a > b, using Phi(a) - Phi(b) = Phi(-b) - Phi(-a) when b > 0."""
    flip = b > 0
    hi, lo = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + _log1mexp(torch.special.log_ndtr(lo) - log_hi)


@dataclass(frozen=True)
class Family:
    """Mixture components sum_j w_j k(x_0 - c_j0) k(x_1 - c_j1) sharing one separable kernel."""

    centers: torch.Tensor  # (m, 2) float64
    log_weights: torch.Tensor  # (m,) float64
    kernel: GaussianKernel | BoxGaussianKernel


def composite_gauss_legendre(
    breaks: np.ndarray, order: int = GAUSS_LEGENDRE_ORDER
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes, weights of ``order``-point Gauss-Legendre rules on each [breaks[i], breaks[i+1]]."""
    z, w = np.polynomial.legendre.leggauss(order)
    a, b = breaks[:-1, None], breaks[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * z).ravel(), ((b - a) / 2 * w).ravel()


def _arclength_breaks(lo: float, hi: float, arclength, panel_length: float) -> np.ndarray:
    """Panel ends in t whose arc lengths are equal and at most ``panel_length``."""
    t = np.linspace(lo, hi, 20001)
    s = arclength(t) - arclength(lo)
    n_panels = math.ceil(s[-1] / panel_length)
    return np.interp(np.linspace(0.0, s[-1], n_panels + 1), s, t)


def _spiral_arclength(t: np.ndarray, divisor: float) -> np.ndarray:
    # arc length of t (cos t, sin t) / divisor from 0: (t sqrt(1 + t^2) + asinh t) / (2 divisor)
    return (t * np.sqrt(1 + t**2) + np.arcsinh(t)) / (2 * divisor)


def _moons_families(panel_stds: float) -> list[Family]:
    # each moon is a half circle of radius 2, arc length 2 pi; moon and angle are uniform
    n_panels = math.ceil(2 * math.pi / (panel_stds * MOONS_STD))
    theta, w = composite_gauss_legendre(np.linspace(0.0, math.pi, n_panels + 1))
    theta_t = torch.from_numpy(np.concatenate([theta, theta]))
    moon = torch.cat([torch.zeros(theta.size), torch.ones(theta.size)])
    log_w = torch.from_numpy(np.log(np.concatenate([w, w]) / (2 * math.pi)))
    return [Family(moons_curve(theta_t, moon), log_w, GaussianKernel(MOONS_STD))]


def _swissroll_families(panel_stds: float) -> list[Family]:
    lo, hi = SWISSROLL_T_RANGE
    breaks = _arclength_breaks(
        lo, hi, lambda t: _spiral_arclength(t, SWISSROLL_SCALE), panel_stds * SWISSROLL_STD
    )
    t, w = composite_gauss_legendre(breaks)
    log_w = torch.from_numpy(np.log(w / (hi - lo)))
    return [Family(swissroll_curve(torch.from_numpy(t)), log_w, GaussianKernel(SWISSROLL_STD))]


def _spirals_families(panel_stds: float) -> list[Family]:
    breaks = _arclength_breaks(
        0.0,
        SPIRALS_T_MAX,
        lambda t: _spiral_arclength(t, SPIRALS_DIVISOR),
        panel_stds * SPIRALS_STD,
    )
    t, w = composite_gauss_legendre(breaks)
    # t = 3 pi sqrt(U)  =>  p(t) = 2 t / (3 pi)^2; each spiral has probability 1/2
    log_w = torch.from_numpy(np.log(w * 2 * t / SPIRALS_T_MAX**2 / 2))
    c = spiral_curve(torch.from_numpy(t))
    width = SPIRALS_BOX / SPIRALS_DIVISOR
    # spiral s = -1 is x = -(c + w) + e: components centered at -c with the mirrored kernel
    return [
        Family(c, log_w, BoxGaussianKernel(width, SPIRALS_STD, 1.0)),
        Family(-c, log_w, BoxGaussianKernel(width, SPIRALS_STD, -1.0)),
    ]


def _8gaussians_families(panel_stds: float) -> list[Family]:
    log_w = torch.full((8,), -math.log(8), dtype=torch.float64)
    kernel = GaussianKernel(EIGHT_GAUSSIANS_STD / EIGHT_GAUSSIANS_DIVISOR)
    return [Family(eight_gaussians_centers(), log_w, kernel)]


_FAMILY_BUILDERS = {
    "8gaussians": _8gaussians_families,
    "moons": _moons_families,
    "swissroll": _swissroll_families,
    "2spirals": _spirals_families,
}
_FAMILY_CACHE: dict[tuple[str, float], list[Family]] = {}


def mixture_families(name: str, panel_stds: float = PANEL_STDS) -> list[Family] | None:
    """The separable mixture that represents ``name`` exactly or by quadrature, else None."""
    if name not in _FAMILY_BUILDERS:
        return None
    key = (name, panel_stds)
    if key not in _FAMILY_CACHE:
        _FAMILY_CACHE[key] = _FAMILY_BUILDERS[name](panel_stds)
    return _FAMILY_CACHE[key]


def mixture_log_density(families: list[Family], x: torch.Tensor) -> torch.Tensor:
    """log sum over all families and components, summed in linear space; tiny rows in log space."""
    n_nodes = sum(f.centers.shape[0] for f in families)
    out = []
    for rows in _chunks(x.shape[0], n_nodes):
        xb = x[rows]
        total = torch.zeros(xb.shape[0], dtype=x.dtype, device=x.device)
        for f in families:
            c, w = f.centers.to(x.device), f.log_weights.to(x.device).exp()
            k = f.kernel.density(xb[:, None, 0] - c[:, 0]) * f.kernel.density(
                xb[:, None, 1] - c[:, 1]
            )
            total = total + k @ w
        log_p = torch.log(total)
        tiny = torch.nonzero(total < TINY).flatten()
        if tiny.numel():
            log_p = log_p.index_put((tiny,), _mixture_log_density_logspace(families, xb[tiny]))
        out.append(log_p)
    return torch.cat(out) if out else x.new_zeros(0)


def _mixture_log_density_logspace(families: list[Family], x: torch.Tensor) -> torch.Tensor:
    parts = []
    for f in families:
        c, log_w = f.centers.to(x.device), f.log_weights.to(x.device)
        kernel = f.kernel
        parts.append(
            log_w
            + kernel.log_density(x[:, None, 0] - c[:, 0])
            + kernel.log_density(x[:, None, 1] - c[:, 1])
        )
    return torch.logsumexp(torch.cat(parts, dim=1), dim=1)


# ----- closed forms -----------------------------------------------------------------------------


def _log_ring(x: torch.Tensor, radius: float, std: float) -> torch.Tensor:
    """log density of R (cos U, sin U) + N(0, std^2 I) with U ~ Uniform(0, 2 pi)."""
    r = x.norm(dim=-1)
    z = r * radius / std**2
    # exp(-(r^2 + R^2)/2s^2) I0(z) = exp(-(r - R)^2/2s^2) * i0e(z), with i0e(z) = exp(-z) I0(z)
    log_bessel = torch.log(torch.special.i0e(z))
    return -(LOG_2PI + 2 * math.log(std)) - (r - radius) ** 2 / (2 * std**2) + log_bessel


def _log_ring_mixture(x: torch.Tensor, radii: tuple[float, ...], std: float) -> torch.Tensor:
    parts = torch.stack([_log_ring(x, radius, std) for radius in radii], dim=-1)
    return torch.logsumexp(parts, dim=-1) - math.log(len(radii))


def _log_density_checkerboard(x: torch.Tensor) -> torch.Tensor:
    y = x / CHECKERBOARD_SCALE
    inside = ((y >= -2) & (y < 2)).all(dim=-1)
    on_black = torch.remainder(torch.floor(y).sum(dim=-1), 2) == 0  # column + row even
    area = 8 * CHECKERBOARD_SCALE**2  # 8 squares of side 2
    log_p = -math.log(area) + 0 * x.sum(-1)  # 0 * x keeps the autograd graph (gradient 0)
    return torch.where(inside & on_black, log_p, torch.full_like(log_p, -math.inf))


# ----- pinwheel ---------------------------------------------------------------------------------


def _pinwheel_residual(f0: torch.Tensor, rho: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    # exp capped below float64 overflow so F stays finite (and a bracket exists) for any |x|
    return f0 - rho * torch.cos(phase + PINWHEEL_RATE * torch.exp(f0.clamp(max=700.0)))


def _pinwheel_brackets(rho: torch.Tensor) -> torch.Tensor:
    """Grid points per row: the phase 0.25 e^{f_0} spans 0.25 (e^rho - e^-rho) on [-rho, rho]."""
    span = PINWHEEL_RATE * 2 * torch.sinh(rho.clamp(max=30.0))  # clamp: the cap applies anyway
    points = torch.ceil(span / PINWHEEL_PHASE_STEP).clamp(
        PINWHEEL_MIN_BRACKETS, PINWHEEL_MAX_BRACKETS
    )
    return points.to(torch.int64)


def _log_density_pinwheel(x: torch.Tensor) -> torch.Tensor:
    rho_all = x.norm(dim=-1) / PINWHEEL_SCALE
    order = torch.argsort(rho_all.detach())
    points = _pinwheel_brackets(rho_all.detach()[order]).tolist()  # nondecreasing
    budget = _PINWHEEL_CHUNK_ELEMENTS // PINWHEEL_ARMS
    out, start, n = [], 0, x.shape[0]
    while start < n:
        size = max(1, budget // points[min(n, start + budget // points[start]) - 1])
        rows = order[start : start + size]
        out.append(_pinwheel_chunk(x[rows], points[min(n, start + size) - 1]))
        start += size
    if not out:
        return x.new_zeros(0)
    return torch.cat(out)[torch.argsort(order)]


def _pinwheel_chunk(x: torch.Tensor, n_points: int) -> torch.Tensor:
    arms = torch.arange(PINWHEEL_ARMS, dtype=torch.float64, device=x.device)
    rho = x.norm(dim=-1) / PINWHEEL_SCALE
    phase = torch.atan2(x[:, 1], x[:, 0])[:, None] + 2 * math.pi * arms / PINWHEEL_ARMS
    with torch.no_grad():
        row, arm, root = _pinwheel_roots(rho, phase, n_points)
    r, p = rho[row], phase[row, arm]
    # one Newton step from the detached root: the same value, and d f0 / d x by the implicit
    # function theorem, so the log density is differentiable in x
    slope = 1 + PINWHEEL_RATE * torch.exp(root) * r * torch.sin(p + PINWHEEL_RATE * torch.exp(root))
    f0 = root - _pinwheel_residual(root, r, p) / slope.detach()
    f1 = r * torch.sin(p + PINWHEEL_RATE * torch.exp(f0))
    log_det = math.log(PINWHEEL_SCALE**2) + torch.log(
        torch.abs(1 + PINWHEEL_RATE * torch.exp(f0) * f1)
    )
    log_latent = (
        -0.5 * ((f0 - 1) / PINWHEEL_RADIAL_STD) ** 2
        - 0.5 * (f1 / PINWHEEL_TANGENTIAL_STD) ** 2
        - LOG_2PI
        - math.log(PINWHEEL_RADIAL_STD * PINWHEEL_TANGENTIAL_STD)
    )
    total = _scatter_logsumexp(log_latent - log_det, row, x.shape[0])
    return total - math.log(PINWHEEL_ARMS)


def _pinwheel_roots(
    rho: torch.Tensor, phase: torch.Tensor, n_points: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All roots f0 of F for every (row, arm), bracketed on a grid then bisected."""
    # the margin makes F(-rho - m) <= -m < 0 and F(rho + m) >= m > 0: a bracket always exists
    margin = 1e-9 * (1 + rho)
    u = torch.linspace(0, 1, n_points, dtype=torch.float64, device=rho.device)
    grid = (-(rho + margin))[:, None] + 2 * (rho + margin)[:, None] * u  # (B, M)
    F = _pinwheel_residual(grid[:, None, :], rho[:, None, None], phase[:, :, None])  # (B, K, M)
    left, right = F[..., :-1], F[..., 1:]
    rising = (left <= 0) & (right > 0)
    falling = (left >= 0) & (right < 0)
    row, arm, cell = torch.nonzero(rising | falling, as_tuple=True)
    lo, hi = grid[row, cell], grid[row, cell + 1]
    up = rising[row, arm, cell]
    r, p = rho[row], phase[row, arm]
    for _ in range(PINWHEEL_BISECTIONS):
        mid = (lo + hi) / 2
        f_mid = _pinwheel_residual(mid, r, p)
        move_lo = torch.where(up, f_mid <= 0, f_mid >= 0)
        lo = torch.where(move_lo, mid, lo)
        hi = torch.where(move_lo, hi, mid)
    return row, arm, (lo + hi) / 2


def _scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """out[i] = logsumexp of values[index == i] (-inf where there is none)."""
    neg_inf = torch.full((size,), -math.inf, dtype=values.dtype, device=values.device)
    peak = neg_inf.scatter_reduce(0, index, values.detach(), reduce="amax", include_self=True)
    safe_peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros_like(peak).index_add(0, index, torch.exp(values - safe_peak[index]))
    return safe_peak + torch.log(total)


# ----- dispatch ---------------------------------------------------------------------------------


def _log_density_mixture(name: str):
    return lambda x: mixture_log_density(mixture_families(name), x)


_LOG_DENSITIES = {
    "8gaussians": _log_density_mixture("8gaussians"),
    "rings": lambda x: _log_ring_mixture(x, RINGS_RADII, RINGS_STD),
    "circles": lambda x: _log_ring_mixture(x, CIRCLES_RADII, CIRCLES_STD),
    "moons": _log_density_mixture("moons"),
    "checkerboard": _log_density_checkerboard,
    "pinwheel": _log_density_pinwheel,
    "swissroll": _log_density_mixture("swissroll"),
    "2spirals": _log_density_mixture("2spirals"),
}
