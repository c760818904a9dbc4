"""Diffusion models: DDPM (Ho, Jain & Abbeel 2020) on grey levels, Bernoulli diffusion on bits.

Forward process. Pixels x in {0, 1/(K-1), ..., 1} (K grey levels: 256 for MNIST, 17 for the
digits) are scaled to y_0 = 2x - 1 in [-1, 1], then noised in T steps,

    q(y_t | y_{t-1}) = N(sqrt(1 - beta_t) y_{t-1}, beta_t I),
    q(y_t | y_0)     = N(sqrt(abar_t) y_0, (1 - abar_t) I),   abar_t = prod_{s<=t} (1 - beta_s),

and the posterior of one step back given y_0 is Gaussian:

    q(y_{t-1} | y_t, y_0) = N(mu~_t, beta~_t I),
    mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) y_0
            + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) y_t,
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t.

Reverse process. p(y_T) = N(0, I) and p(y_{t-1} | y_t) = N(mu_theta(y_t, t), sigma_t^2 I) with
the epsilon parameterization

    mu_theta(y_t, t) = (y_t - beta_t / sqrt(1 - abar_t) eps_theta(y_t, t)) / sqrt(alpha_t),

eps_theta a small U-Net (``UNet``) and sigma_t^2 fixed: ``variance="beta"`` (sigma_t^2 = beta_t)
or ``"posterior"`` (sigma_t^2 = beta~_t); both use sigma_1^2 = beta~_2 at t = 1, where beta~_1 = 0
(as in Ho et al.'s code). Training minimizes the simplified loss E ||eps - eps_theta(y_t, t)||^2,
t uniform in 1..T (``ebmlab.objectives.diffusion.DiffusionLoss``). Sampling is ancestral:
y_T ~ N(0, I), y_{t-1} = mu_theta(y_t, t) + sigma_t z, and the image is the decoder's mean at
t = 1 (``sample``); with ``n_steps`` < T it runs the same chain on a respaced subsequence of the
timesteps (Nichol & Dhariwal 2021, section 4: betas recomputed from the abar of the kept steps).

The variational bound (Ho et al., eq. 5), in nats per image,

    -log P(x) <= L = L_T + sum_{t=2}^T L_{t-1} + L_0,
    L_T = KL(q(y_T | y_0) || N(0, I)),
    L_{t-1} = E_q KL(q(y_{t-1} | y_t, y_0) || p(y_{t-1} | y_t)),
    L_0 = -E_q log p(x | y_1),

with the discretized Gaussian decoder of Ho et al. (section 3.3): the probability of each pixel
is the mass of N(mu_theta(y_1, 1), sigma_1^2) on the pixel's bin of width 2 / (K - 1) on [-1, 1]
(the outer bins reach -inf and +inf). The bound is then on the discrete probability P(x) of the
K-level image itself: no dequantization noise is added. ``bound_terms`` returns the three
parts per image; L_T is exact, L_0 and the L_{t-1} are estimated with one draw of y_t each, and
the sum over t is either every t (``n_timesteps=None``) or a stratified sample of it (one t drawn
uniformly from each of ``n_timesteps`` equal blocks of 2..T, weighted by the block's size):
unbiased for L either way.

A DDPM has no tractable energy or density; its ``likelihood_kind`` is "diffusion-elbo".

``BernoulliDiffusion`` (below) is the same construction on binary images, with every term of its
bound an exact sum over two values; ``DiffusionModel`` holds what the two share (timesteps, the
sum of the terms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..samplers import bernoulli_draw
from ..validation import (
    ImageShape,
    Integral,
    OneOf,
    SequenceOf,
    as_generator,
    as_tensor,
    check_binary,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model

SCHEDULES = ("linear", "cosine")
VARIANCES = ("beta", "posterior")


# ----- noise schedules ----------------------------------------------------------------------------
def beta_schedule(kind: str, n_steps: int) -> torch.Tensor:
    """beta_1..beta_T in float64.

    * "linear" (Ho et al. 2020): linear from 1e-4 to 0.02 for T = 1000, both ends scaled by
      1000 / T for other T (Nichol & Dhariwal 2021), so that abar_T stays near 4e-5.
    * "cosine" (Nichol & Dhariwal 2021): abar_t = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s)/(1 + s)),
      s = 0.008, betas clipped at 0.999.
    """
    check_positive_int(n_steps, "n_steps")
    if kind == "linear":
        scale = 1000.0 / n_steps
        return torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), n_steps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        t = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {kind!r}")


def gaussian_kl(
    mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) elementwise:
    1/2 [log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1]."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def log_normal_interval(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """log(Phi(upper) - Phi(lower)) for lower < upper (either may be infinite), Phi the standard
    normal distribution function; computed on the side of zero where the difference keeps its
    precision (Phi(b) - Phi(a) = Phi(-a) - Phi(-b))."""
    flip = lower > 0
    a = torch.where(flip, -upper, lower)
    b = torch.where(flip, -lower, upper)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    # log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b)))
    return log_b + torch.log(-torch.expm1(log_a - log_b))


def discretized_gaussian_log_likelihood(
    y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, levels: int
) -> torch.Tensor:
    """log of the mass N(mean, std^2) puts on the bin of each value of ``y`` on the K-level grid
    of [-1, 1] (spacing 2 / (K - 1)); the lowest bin reaches -inf and the highest +inf, so the
    masses of the K bins sum to 1. Elementwise."""
    half = 1.0 / (levels - 1)
    lower = torch.where(y <= -1 + half / 2, -math.inf, (y - half - mean) / std)
    upper = torch.where(y >= 1 - half / 2, math.inf, (y + half - mean) / std)
    return log_normal_interval(lower, upper)


# ----- the network --------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the timesteps t (batch,) (Vaswani et al. 2017), shape (batch, dim):
    [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half, 1))
    angles = t.to(torch.float32)[:, None] * freqs[None]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


def _groups(channels: int) -> int:
    """Groups of GroupNorm: 8 where they divide the channels, else the largest divisor <= 8."""
    return max(g for g in range(1, 9) if channels % g == 0)


class ResidualBlock(nn.Module):
    """GroupNorm, SiLU, 3 x 3 conv, plus a projection of the time embedding, GroupNorm, SiLU,
    3 x 3 conv; added to the input (through a 1 x 1 conv where the channels change)."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """A small U-Net eps_theta(y, t) (Ronneberger et al. 2015, as in Ho et al. without attention):
    per resolution ``n_blocks`` residual blocks of ``channels * mult`` channels, halving the size
    between resolutions (stride-2 convolutions) and back (nearest upsampling then a convolution),
    skip connections from every block of the way down to the way up, the timestep embedding fed
    to every block. The last convolution starts at zero (eps_theta = 0 at initialization)."""

    def __init__(
        self, channels: int, channel_mults: Sequence[int], n_blocks: int, in_channels: int = 1
    ) -> None:
        super().__init__()
        time_dim = 4 * channels
        self.channels = channels
        self.time_mlp = nn.Sequential(
            nn.Linear(channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [channels]
        current = channels
        for level, width in enumerate(widths):
            for _ in range(n_blocks):
                self.down.append(ResidualBlock(current, width, time_dim))
                current = width
                skips.append(current)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(current, current, 3, stride=2, padding=1))
                skips.append(current)
        self.middle = nn.ModuleList(
            [ResidualBlock(current, current, time_dim), ResidualBlock(current, current, time_dim)]
        )
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(n_blocks + 1):
                self.up.append(ResidualBlock(current + skips.pop(), width, time_dim))
                current = width
            if level > 0:
                self.upsample.append(nn.Conv2d(current, current, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(current), current)
        self.conv_out = nn.Conv2d(current, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.n_blocks = n_blocks
        self.n_levels = len(widths)

    def forward(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels).to(y.dtype))
        h = self.conv_in(y)
        saved = [h]
        blocks = iter(self.down)
        for level in range(self.n_levels):
            for _ in range(self.n_blocks):
                h = next(blocks)(h, emb)
                saved.append(h)
            if level < self.n_levels - 1:
                h = self.downsample[level](h)
                saved.append(h)
        for block in self.middle:
            h = block(h, emb)
        blocks = iter(self.up)
        ups = iter(self.upsample)
        for level in reversed(range(self.n_levels)):
            for _ in range(self.n_blocks + 1):
                skip = saved.pop()
                h = next(blocks)(torch.cat([h, skip], dim=1), emb)
            if level > 0:
                h = F.interpolate(h, size=saved[-1].shape[-2:], mode="nearest")
                h = next(ups)(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# ----- what the diffusion models share -----------------------------------------------------------
#: What the U-Net arguments of both models accept (checked by ``validate``).
NETWORK_ARGUMENTS = {
    "channels": Integral(1),
    "channel_mults": SequenceOf(Integral(1)).where(
        lambda v: len(v) >= 1, "a non-empty list of positive integers"
    ),
    "n_blocks": Integral(1),
}


class DiffusionModel(Model):
    """The timesteps and the variational bound of a diffusion model over T steps.

    A subclass sets ``n_steps`` (T), the schedule buffers ``betas`` and ``alpha_bars`` (index
    t - 1 holds step t), and gives the three kinds of terms of the bound on a clean input x_0
    (``bound_input``): ``prior_kl`` (L_T), ``step_kl`` (L_{t-1}, t >= 2) and ``decoder_nll``
    (L_0). ``bound_terms`` adds them up, every t or a stratified sample of t."""

    likelihood_kind = "diffusion-elbo"
    n_steps: int
    n_visible: int
    betas: torch.Tensor
    alpha_bars: torch.Tensor

    def _setup(
        self,
        image_shape: Sequence[int],
        n_steps: int,
        betas: torch.Tensor,
        network: tuple[int, Sequence[int], int],
    ) -> None:
        """Image size, T, the U-Net (channels, channel multiples, blocks) and the float64
        schedule buffers ``betas`` and ``alpha_bars`` = cumprod(1 - betas) (index t - 1 holds
        step t; cast where used)."""
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.n_visible = self.image_shape[0] * self.image_shape[1]
        self.n_steps = int(n_steps)
        channels, mults, blocks = network
        self.network = UNet(channels, list(mults), blocks)
        self.register_buffer("betas", betas)
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, 0))

    def bound_input(self, x: torch.Tensor) -> torch.Tensor:
        """x_0 as the terms of the bound take it, after the model's checks."""
        raise NotImplementedError

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def step_kl(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def decoder_nll(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _check_t(self, t: object, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"t: expected integer timesteps, got {t.dtype}")
        t = t.expand(batch) if t.dim() == 0 else t
        if t.shape != (batch,) or bool(((t < 1) | (t > self.n_steps)).any()):
            raise ValueError(
                f"t: expected timesteps in 1..{self.n_steps}, one per image (shape ({batch},))"
            )
        return t

    def _at(self, values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """values[t - 1] as a (batch, 1) column in the model's dtype (values[-1] := 1 at t = 0)."""
        padded = torch.cat([values.new_ones(1), values])
        return padded[t].to(self.dtype)[:, None]

    def _randint(self, high: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        return torch.randint(high, (n,), generator=generator, device=device).to(self.device)

    @torch.no_grad()
    def bound_terms(
        self,
        x: torch.Tensor,
        generator: torch.Generator | int | None = None,
        n_timesteps: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The parts of L per image (nats): "prior" L_T, "diffusion" sum_{t=2}^T L_{t-1} (every
        t, or a stratified sample of ``n_timesteps`` of them), "decoder" L_0, and "total".
        ``x``: at least one image; ``generator``: a ``torch.Generator``, an integer seed or
        None."""
        y0 = check_nonempty(self.bound_input(x), "x")
        if n_timesteps is not None:
            check_positive_int(n_timesteps, "n_timesteps")
        generator = as_generator(generator, self.device)
        n = y0.shape[0]
        steps = torch.arange(2, self.n_steps + 1, device=y0.device)
        diffusion = torch.zeros(n, dtype=self.dtype, device=y0.device)
        if n_timesteps is None or n_timesteps >= steps.numel():
            for t in steps.tolist():
                diffusion += self.step_kl(y0, torch.full((n,), t, device=y0.device), generator)
        else:
            for block in steps.tensor_split(n_timesteps):
                pick = self._randint(block.numel(), n, generator)
                diffusion += block.numel() * self.step_kl(y0, block[pick], generator)
        prior = self.prior_kl(y0)
        decoder = self.decoder_nll(y0, generator)
        return {
            "prior": prior,
            "diffusion": diffusion,
            "decoder": decoder,
            "total": prior + diffusion + decoder,
        }

    def log_likelihood_bound(
        self,
        x: torch.Tensor,
        generator: torch.Generator | int | None = None,
        n_timesteps: int | None = None,
    ) -> torch.Tensor:
        """-L per image (nats): an estimate (unbiased for -L) of a lower bound on log P(x)."""
        return -self.bound_terms(x, generator, n_timesteps)["total"]


# ----- the Gaussian model -------------------------------------------------------------------------
class DDPM(DiffusionModel):
    """A DDPM over grey-level images of shape ``image_shape`` with ``levels`` grey levels.

    Args:
        image_shape: [H, W].
        levels: K, the grey levels of the data, {0, 1/(K-1), ..., 1} (256 for 8-bit images).
        n_steps: T, the diffusion steps.
        schedule: "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal) betas.
        variance: the reverse variances, "beta" (sigma_t^2 = beta_t) or "posterior" (beta~_t).
        channels: channels of the U-Net's first resolution.
        channel_mults: channel multiples per resolution (each halves the image size).
        n_blocks: residual blocks per resolution.

    Data are (batch, H * W) tensors of grey levels in [0, 1].
    """

    @validate(
        image_shape=ImageShape(),
        levels=Integral(2),
        n_steps=Integral(2),
        schedule=OneOf(*SCHEDULES),
        variance=OneOf(*VARIANCES),
        **NETWORK_ARGUMENTS,
    )
    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        levels: int = 256,
        n_steps: int = 1000,
        schedule: str = "linear",
        variance: str = "beta",
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_blocks: int = 1,
    ) -> None:
        super().__init__()
        network = (channels, channel_mults, n_blocks)
        self._setup(image_shape, n_steps, beta_schedule(schedule, n_steps), network)
        self.levels = int(levels)
        self.variance = variance

    # ----- validation -----------------------------------------------------------------------------
    def check_images(self, x: object, name: str = "x") -> torch.Tensor:
        """(batch, H * W) images with values in [0, 1] on the model's device and dtype."""
        x = as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        if bool(((x < 0) | (x > 1)).any()):
            raise ValueError(
                f"{name}: expected grey levels in [0, 1], found values in "
                f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
            )
        return x

    def check_levels(self, x: object, name: str = "x") -> torch.Tensor:
        """Images on the K-level grid {0, 1/(K-1), ..., 1}, snapped onto it, or an error."""
        x = self.check_images(x, name)
        q = x * (self.levels - 1)
        if bool(((q - torch.round(q)).abs() > 1e-3).any()):
            raise ValueError(
                f"{name}: expected images on the {self.levels}-level grid "
                f"{{0, 1/{self.levels - 1}, ..., 1}} (levels={self.levels}); the bound is on "
                "the discrete probability of such images"
            )
        return torch.round(q) / (self.levels - 1)

    def bound_input(self, x: torch.Tensor) -> torch.Tensor:
        """y_0 = 2x - 1 of images on the K-level grid."""
        return self.scale(self.check_levels(x))

    # ----- schedule -------------------------------------------------------------------------------
    def schedule(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """beta_t, alpha_t, abar_t, abar_{t-1}, beta~_t and sigma_t^2 at timesteps t, as
        (batch, 1) columns."""
        beta = self._at(self.betas, t)
        abar = self._at(self.alpha_bars, t)
        abar_prev = self._at(self.alpha_bars, t - 1)
        posterior = (1 - abar_prev) / (1 - abar) * beta
        # beta~_2 stands in at t = 1, where beta~_1 = 0
        tilde2 = float((1 - self.alpha_bars[0]) / (1 - self.alpha_bars[1]) * self.betas[1])
        sigma2 = beta if self.variance == "beta" else posterior
        return {
            "beta": beta,
            "alpha": 1 - beta,
            "abar": abar,
            "abar_prev": abar_prev,
            "posterior_variance": posterior,
            "sigma2": torch.where((t == 1)[:, None], torch.full_like(sigma2, tilde2), sigma2),
        }

    # ----- forward process ------------------------------------------------------------------------
    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] to y in [-1, 1]."""
        return 2.0 * x - 1.0

    def q_sample(
        self, y0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y_t ~ q(y_t | y_0) = N(sqrt(abar_t) y_0, (1 - abar_t) I) (scaled images y_0)."""
        t = self._check_t(t, y0.shape[0])
        if noise is None:
            noise = torch.randn_like(y0)
        abar = self._at(self.alpha_bars, t)
        return abar.sqrt() * y0 + (1 - abar).sqrt() * noise

    def q_posterior(
        self, y0: torch.Tensor, yt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean mu~_t (batch, D) and variance beta~_t (batch, 1) of q(y_{t-1} | y_t, y_0)."""
        s = self.schedule(self._check_t(t, y0.shape[0]))
        c0 = s["abar_prev"].sqrt() * s["beta"] / (1 - s["abar"])
        ct = s["alpha"].sqrt() * (1 - s["abar_prev"]) / (1 - s["abar"])
        return c0 * y0 + ct * yt, s["posterior_variance"]

    # ----- reverse process ------------------------------------------------------------------------
    def predict_noise(self, yt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(y_t, t), shape (batch, D)."""
        h, w = self.image_shape
        t = self._check_t(t, yt.shape[0])
        return self.network(yt.reshape(-1, 1, h, w), t).reshape(yt.shape[0], self.n_visible)

    def p_mean_variance(
        self, yt: torch.Tensor, t: torch.Tensor, noise_prediction: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean mu_theta(y_t, t) (batch, D) and variance sigma_t^2 (batch, 1) of
        p(y_{t-1} | y_t)."""
        t = self._check_t(t, yt.shape[0])
        eps = self.predict_noise(yt, t) if noise_prediction is None else noise_prediction
        s = self.schedule(t)
        mean = (yt - s["beta"] / (1 - s["abar"]).sqrt() * eps) / s["alpha"].sqrt()
        return mean, s["sigma2"]

    # ----- the bound ------------------------------------------------------------------------------
    def prior_kl(self, y0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(y_T | y_0) || N(0, I)) per image (nats), exact."""
        abar = self._at(self.alpha_bars, torch.full((y0.shape[0],), self.n_steps, device=y0.device))
        zero = torch.zeros_like(y0)
        return gaussian_kl(abar.sqrt() * y0, (1 - abar).expand_as(y0), zero, zero + 1).sum(-1)

    def decoder_nll(self, y0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """L_0 = -log p(x | y_1) per image (nats), one draw of y_1 ~ q(y_1 | y_0)."""
        t = torch.ones(y0.shape[0], dtype=torch.long, device=y0.device)
        y1 = self.q_sample(y0, t, self.noise_like(y0, generator))
        mean, var = self.p_mean_variance(y1, t)
        return -discretized_gaussian_log_likelihood(y0, mean, var.sqrt(), self.levels).sum(-1)

    def step_kl(
        self, y0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """L_{t-1} = KL(q(y_{t-1} | y_t, y_0) || p(y_{t-1} | y_t)) per image (nats), t >= 2, one
        draw of y_t ~ q(y_t | y_0)."""
        t = self._check_t(t, y0.shape[0])
        if bool((t < 2).any()):
            raise ValueError("t: the KL terms are for t >= 2 (t = 1 is the decoder)")
        yt = self.q_sample(y0, t, self.noise_like(y0, generator))
        mean_q, var_q = self.q_posterior(y0, yt, t)
        mean_p, var_p = self.p_mean_variance(yt, t)
        return gaussian_kl(mean_q, var_q.expand_as(y0), mean_p, var_p.expand_as(y0)).sum(-1)

    # ----- sampling -------------------------------------------------------------------------------
    def noise_like(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal noise of the shape, device and dtype of ``like``, from ``generator``
        (which may live on another device) or torch's global generator."""
        if generator is None:
            return torch.randn_like(like)
        noise = torch.randn(like.shape, generator=generator, device=generator.device)
        return noise.to(like.device, like.dtype)

    def respaced(self, n_steps: int) -> torch.Tensor:
        """``n_steps`` timesteps of 1..T, evenly spaced, T and 1 included (increasing)."""
        check_positive_int(n_steps, "n_steps")
        n_steps = min(n_steps, self.n_steps)
        if n_steps == 1:
            return torch.tensor([self.n_steps])
        grid = torch.linspace(1, self.n_steps, n_steps, dtype=torch.float64)
        return torch.unique(torch.round(grid).long())

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | int | None = None,
        n_steps: int | None = None,
        **_: object,
    ) -> torch.Tensor:
        """n images (n, H * W) in [0, 1] by ancestral sampling: y_T ~ N(0, I), then
        y_{t-1} = mu_theta(y_t, t) + sigma_t z, and the decoder's mean mu_theta(y_1, 1), clipped
        to [-1, 1], as the image. ``n_steps`` < T runs the chain on ``respaced(n_steps)``: the
        kept steps tau_1 < ... < tau_S with beta'_i = 1 - abar_{tau_i} / abar_{tau_{i-1}}.
        ``n``: a positive integer; ``generator``: a ``torch.Generator``, an integer seed or
        None."""
        check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        taus = self.respaced(self.n_steps if n_steps is None else n_steps).tolist()
        y = torch.zeros(n, self.n_visible, device=self.device, dtype=self.dtype)
        y = self.noise_like(y, generator)
        abars = self.alpha_bars.to(self.dtype)
        previous = [0, *taus[:-1]]
        for i in reversed(range(len(taus))):
            tau, before = taus[i], previous[i]
            abar = abars[tau - 1]
            abar_prev = abars[before - 1] if before > 0 else abar.new_ones(())
            alpha = abar / abar_prev
            beta = 1 - alpha
            t = torch.full((n,), tau, dtype=torch.long, device=self.device)
            eps = self.predict_noise(y, t)
            mean = (y - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
            if before == 0:
                y = mean
                break
            posterior = (1 - abar_prev) / (1 - abar) * beta
            var = beta if self.variance == "beta" else posterior
            y = mean + var.sqrt() * self.noise_like(y, generator)
        return ((y.clamp(-1, 1) + 1) / 2).clamp(0, 1)


# ----- the Bernoulli model ------------------------------------------------------------------------
def bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(p) || Bernoulli(q)) elementwise, p log(p / q) + (1 - p) log((1 - p) / (1 - q))
    (0 log 0 = 0)."""
    return (
        torch.xlogy(p, p)
        - torch.xlogy(p, q)
        + torch.xlogy(1 - p, 1 - p)
        - torch.xlogy(1 - p, 1 - q)
    )


class BernoulliDiffusion(DiffusionModel):
    """A diffusion over binary images (Sohl-Dickstein et al. 2015, binomial diffusion; the
    uniform discrete diffusion of Austin et al. 2021 on two states) with an exact bound.

    Forward: each step keeps a pixel with probability 1 - beta_t and otherwise redraws it from
    Bernoulli(1/2), q(x_t = 1 | x_{t-1}) = (1 - beta_t) x_{t-1} + beta_t / 2, so
    q(x_t = 1 | x_0) = abar_t x_0 + (1 - abar_t) / 2. With beta_t = 1 / (T - t + 1)
    (Sohl-Dickstein et al.'s schedule for binary data), abar_t = (T - t) / T falls linearly to
    abar_T = 0: x_T is exactly Bernoulli(1/2) noise and L_T = 0. The posterior of one step back
    is Bernoulli, by Bayes' rule on the two values of x_{t-1}.

    Reverse: the U-Net predicts logits of p~(x_0 | x_t) per pixel (the x_0 parameterization of
    Austin et al.), and p(x_{t-1} | x_t) = sum_{x_0} q(x_{t-1} | x_t, x_0) p~(x_0 | x_t), pixel by
    pixel; at t = 1, p(x_0 | x_1) = p~(x_0 | x_1). Every term of the bound is then an exact sum
    over two values:

        -log P(x) <= L_T + sum_{t=2}^T E_q KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
                     - E_q log p~(x_0 | x_1),

    a bound on the probability of the binary image itself, in the same nats as the
    autoregressive and Boltzmann models. Sampling is ancestral and exact for the model:
    x_T ~ Bernoulli(1/2), x_{t-1} ~ p(x_{t-1} | x_t), x_0 ~ p~(x_0 | x_1).

    Args:
        image_shape: [H, W].
        n_steps: T.
        channels, channel_mults, n_blocks: the U-Net, as for ``DDPM``.
    """

    @validate(
        image_shape=ImageShape(),
        n_steps=Integral(2),
        **NETWORK_ARGUMENTS,
    )
    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        n_steps: int = 100,
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_blocks: int = 1,
    ) -> None:
        super().__init__()
        t = torch.arange(1, n_steps + 1, dtype=torch.float64)
        # beta_t = 1 / (T - t + 1): abar_t = prod_s (T - s) / (T - s + 1) = (T - t) / T
        self._setup(
            image_shape, n_steps, 1.0 / (n_steps - t + 1), (channels, channel_mults, n_blocks)
        )

    # ----- validation -----------------------------------------------------------------------------
    def check_images(self, x: object, name: str = "x") -> torch.Tensor:
        """(batch, H * W) binary images on the model's device and dtype, or a clear error."""
        x = as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        return check_binary(x, name)

    def bound_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.check_images(x)

    # ----- forward process ------------------------------------------------------------------------
    def q_probs(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t = 1 | x_0) = abar_t x_0 + (1 - abar_t) / 2, shape (batch, D); t = 0 gives x_0."""
        abar = self._at(self.alpha_bars, t)
        return abar * x0 + (1 - abar) / 2

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_t ~ q(x_t | x_0)."""
        t = self._check_t(t, x0.shape[0])
        return self._draw(self.q_probs(x0, t), generator)

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_{t-1} = 1 | x_t, x_0) (batch, D), t >= 1 (x_0 itself at t = 1):
        q(x_t | x_{t-1} = 1) q(x_{t-1} = 1 | x_0) / sum over x_{t-1} in {0, 1}."""
        t = self._check_t(t, x0.shape[0])
        beta = self._at(self.betas, t)
        prior = self.q_probs(x0, t - 1)
        keep, flip = 1 - beta / 2, beta / 2
        one = torch.where(xt > 0.5, keep, flip) * prior  # x_{t-1} = 1
        zero = torch.where(xt > 0.5, flip, keep) * (1 - prior)  # x_{t-1} = 0
        return one / (one + zero)

    # ----- reverse process ------------------------------------------------------------------------
    def predict_logits(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Logits of p~(x_0 = 1 | x_t) per pixel, shape (batch, D)."""
        h, w = self.image_shape
        t = self._check_t(t, xt.shape[0])
        out = self.network((2.0 * xt - 1.0).reshape(-1, 1, h, w), t)
        return out.reshape(xt.shape[0], self.n_visible)

    def p_probs(
        self, xt: torch.Tensor, t: torch.Tensor, logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """p(x_{t-1} = 1 | x_t) = sum_{x_0} q(x_{t-1} = 1 | x_t, x_0) p~(x_0 | x_t), (batch, D);
        at t = 1 it is p~(x_0 = 1 | x_1)."""
        t = self._check_t(t, xt.shape[0])
        p0 = torch.sigmoid(self.predict_logits(xt, t) if logits is None else logits)
        ones, zeros = torch.ones_like(xt), torch.zeros_like(xt)
        return p0 * self.q_posterior(ones, xt, t) + (1 - p0) * self.q_posterior(zeros, xt, t)

    # ----- the bound ------------------------------------------------------------------------------
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || Bernoulli(1/2)) per image (0 with this schedule)."""
        t = torch.full((x0.shape[0],), self.n_steps, device=x0.device)
        return bernoulli_kl(self.q_probs(x0, t), torch.full_like(x0, 0.5)).sum(-1)

    def decoder_nll(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """L_0 = -log p~(x_0 | x_1) per image (nats), one draw of x_1 ~ q(x_1 | x_0)."""
        t = torch.ones(x0.shape[0], dtype=torch.long, device=x0.device)
        logits = self.predict_logits(self.q_sample(x0, t, generator), t)
        return F.softplus(logits).sum(-1) - (logits * x0).sum(-1)

    def step_kl(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) per image (nats), t >= 2,
        one draw of x_t ~ q(x_t | x_0)."""
        t = self._check_t(t, x0.shape[0])
        if bool((t < 2).any()):
            raise ValueError("t: the KL terms are for t >= 2 (t = 1 is the decoder)")
        xt = self.q_sample(x0, t, generator)
        return bernoulli_kl(self.q_posterior(x0, xt, t), self.p_probs(xt, t)).sum(-1)

    # ----- sampling -------------------------------------------------------------------------------
    def _draw(self, p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if generator is None or generator.device == p.device:
            return bernoulli_draw(p, generator)
        return bernoulli_draw(p.to(generator.device), generator).to(p.device)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, **_: object
    ) -> torch.Tensor:
        """n >= 1 exact draws (n, H * W) from the model: x_T ~ Bernoulli(1/2), then
        x_{t-1} ~ p(x_{t-1} | x_t) for t = T..2 and x_0 ~ p~(x_0 | x_1) (T network passes).
        ``generator``: a ``torch.Generator``, an integer seed or None; extra keyword arguments
        (e.g. ``n_steps``) are ignored."""
        check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        x = self._draw(
            torch.full((n, self.n_visible), 0.5, device=self.device, dtype=self.dtype), generator
        )
        for step in range(self.n_steps, 0, -1):
            t = torch.full((n,), step, dtype=torch.long, device=self.device)
            x = self._draw(self.p_probs(x, t), generator)
        return x
