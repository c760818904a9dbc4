"""Real NVP for images: dequantization, the logit transform and checkerboard couplings.

A flow is a density on R^D, images are discrete. With K intensity levels, x_int in {0..K-1}^D,
uniform dequantization (Theis, van den Oord & Bethge 2016, "A note on the evaluation of
generative models"; Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP")
models the continuous y = (x_int + u) / K, u ~ U[0, 1)^D, in the unit cube; by Jensen,

    log P(x_int) = log int_[0,1)^D p(x_int + u) du >= E_u[log p_y((x_int + u) / K)] - D log K,

so the reported log-likelihood (``discrete_log_likelihood_bound``) is a lower bound, in nats, on
the discrete log-likelihood: tagged ``"dequantized"`` in the cross-family comparison. Binary
images are the case K = 2, 8-bit intensities K = 256, the digits' 0..16 scale K = 17.

The flow (``forward``: data -> latent) is

    y in [0, 1]^D -> logit(alpha + (1 - 2 alpha) y)     (``LogitTransform``, Dinh et al. 3.6)
      -> per-pixel affine standardization               (``ElementwiseAffine``, set from data)
      -> n checkerboard affine couplings, parity alternating (``CheckerboardCoupling``)
      -> N(0, I).

Each coupling keeps the pixels of one checkerboard colour and scales and shifts the others by
s, t from a small convolutional ResNet of the kept ones (Dinh et al. 2017, section 3.4); the
log-scale is soft-bounded (bound * tanh(raw / bound)) and the output convolution starts at zero, so
a new coupling is the identity. Single scale: no squeezing, enough for 8 x 8 and 28 x 28.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import (
    ImageShape,
    Integral,
    Real,
    as_generator,
    check_nonempty,
    check_positive,
    check_positive_int,
    validate,
)
from .flows import (
    DEFAULT_SCALE_BOUND,
    SCALE_BOUND,
    ComposedTransform,
    ElementwiseAffine,
    Flow,
    MaskedAffineCoupling,
    Transform,
)


def checkerboard(image_shape: Sequence[int], parity: int) -> torch.Tensor:
    """(H * W,) float mask, 1 where (row + column) % 2 == parity."""
    h, w = image_shape
    rows = torch.arange(h)[:, None]
    cols = torch.arange(w)[None, :]
    return ((rows + cols) % 2 == parity).to(torch.float32).flatten()


class LogitTransform(Transform):
    """y in [0, 1] -> z = logit(s), s = alpha + (1 - 2 alpha) y.

    alpha keeps s away from 0 and 1, where the logit is infinite (y = 0 occurs in dequantized
    data). log|dz/dy| = log(1 - 2 alpha) - log s - log(1 - s) per coordinate.
    """

    @validate(alpha=Real(0, 0.5, closed="neither"))
    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * x
        log_s, log_1ms = torch.log(s), torch.log1p(-s)
        ladj = (math.log(1 - 2 * self.alpha) - log_s - log_1ms).sum(-1)
        return log_s - log_1ms, ladj

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        ladj = (F.logsigmoid(y) + F.logsigmoid(-y) - math.log(1 - 2 * self.alpha)).sum(-1)
        return x, ladj


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class CheckerboardCoupling(MaskedAffineCoupling):
    """Affine coupling on flattened images: pixels where the checkerboard mask is 1 are kept and
    condition y_u = x_u * exp(s) + t on the others; ladj = sum s over the free pixels.

    The conditioner sees the kept pixels (free ones zeroed) and the mask itself as two input
    channels: 3 x 3 convolution, ``n_blocks`` residual blocks, 3 x 3 convolution to (s, t).
    """

    @validate(scale_bound=SCALE_BOUND)
    def __init__(
        self,
        image_shape: Sequence[int],
        parity: int,
        channels: int = 32,
        n_blocks: int = 2,
        scale_bound: float = DEFAULT_SCALE_BOUND,
    ) -> None:
        super().__init__()
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.scale_bound = float(scale_bound)
        self.register_buffer("mask", checkerboard(self.image_shape, parity))
        self.inp = nn.Conv2d(2, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResidualBlock(channels) for _ in range(n_blocks)])
        self.out = nn.Conv2d(channels, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # a fresh coupling is the identity
        nn.init.zeros_(self.out.bias)

    def conditioner_output(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.image_shape
        n = kept.shape[0]
        mask_map = self.mask.reshape(1, 1, h, w).expand(n, 1, h, w).to(kept.dtype)
        features = torch.cat([kept.reshape(n, 1, h, w), mask_map], dim=1)
        raw = self.out(F.relu(self.blocks(self.inp(features))))
        return raw[:, 0].reshape(n, -1), raw[:, 1].reshape(n, -1)


class ImageRealNVP(Flow):
    """Real NVP density on dequantized images y in [0, 1]^(H * W) (flattened, raster order).

    Args:
        image_shape: [H, W].
        levels: K, the number of intensity levels of the discrete data (2 for binary images,
            256 for 8-bit, 17 for the digits' 0..16).
        n_couplings: checkerboard couplings, parity alternating.
        channels, n_blocks: each coupling's convolutional ResNet.
        alpha: the logit transform's margin.
        scale_bound: soft bound on each coupling's log-scale.

    ``log_prob(y)`` is the continuous density of y; ``discrete_log_likelihood_bound(x, g)`` the
    dequantized bound on log P(x) for data x on the K-level grid {0, 1/(K-1), ..., 1} that
    ``ebmlab.data.load`` returns; ``sample`` returns images on that grid.
    """

    likelihood_kind = "dequantized"

    @validate(
        image_shape=ImageShape(min_pixels=2),
        levels=Integral(2),
        n_couplings=Integral(1),
        channels=Integral(1),
        n_blocks=Integral(0),
    )
    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        levels: int = 2,
        n_couplings: int = 8,
        channels: int = 32,
        n_blocks: int = 2,
        alpha: float = 0.05,
        scale_bound: float = DEFAULT_SCALE_BOUND,
    ) -> None:
        super().__init__()
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.dim = self.image_shape[0] * self.image_shape[1]
        self.levels = int(levels)
        layers: list[Transform] = [LogitTransform(alpha), ElementwiseAffine(self.dim)]
        layers += [
            CheckerboardCoupling(self.image_shape, k % 2, channels, n_blocks, scale_bound)
            for k in range(n_couplings)
        ]
        self.transform = ComposedTransform(layers)

    @property
    def n_visible(self) -> int:
        """Pixels per image (the name image models share)."""
        return self.dim

    # ----- validation -----------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = super()._check(x, name)
        if ((x < 0) | (x > 1)).any():
            raise ValueError(
                f"{name}: expected values in [0, 1] (dequantized images), found values in "
                f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
            )
        return x

    def check_discrete(self, x: object, name: str = "x") -> torch.Tensor:
        """x on the K-level grid {0, 1/(K-1), ..., 1}, as integer levels (float), or an error."""
        x = super()._check(x, name)  # type: ignore[arg-type]
        q = x * (self.levels - 1)
        levels = torch.round(q)
        # data arrive as float32 fractions i/(K-1): allow their rounding error, nothing more
        if (
            ((q - levels).abs() > 1e-3).any()
            or (levels < 0).any()
            or (levels > self.levels - 1).any()
        ):
            raise ValueError(
                f"{name}: expected images on the {self.levels}-level grid "
                f"{{0, 1/{self.levels - 1}, ..., 1}} (levels={self.levels}); binarize the data "
                "or build the model with the data's number of levels"
            )
        return levels

    # ----- dequantization -------------------------------------------------------------------------
    def dequantize(
        self, x: torch.Tensor, generator: torch.Generator | int | None = None
    ) -> torch.Tensor:
        """y = (x_int + u) / K with u ~ U[0, 1)^D: a draw in the cell of x_int. ``generator``:
        a ``torch.Generator``, an integer seed or None."""
        levels = self.check_discrete(x)
        generator = as_generator(generator, self.device)
        u = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=levels.dtype)
        return (levels + u) / self.levels

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """The cell of y on the data's grid: floor(K y) / (K - 1), clamped to the K levels."""
        return torch.clamp(torch.floor(y * self.levels), 0, self.levels - 1) / (self.levels - 1)

    def discrete_log_likelihood_bound(
        self, x: torch.Tensor, generator: torch.Generator | int | None = None, n_samples: int = 1
    ) -> torch.Tensor:
        """E_u[log p_y((x_int + u) / K)] - D log K, estimated with ``n_samples`` draws of u per
        image: a lower bound on log P(x_int) in nats (unbiased for the bound), shape (batch,).
        ``x``: at least one image."""
        check_positive_int(n_samples, "n_samples")
        generator = as_generator(generator, self.device)
        total = 0.0
        for _ in range(n_samples):
            total = total + self.log_prob(self.dequantize(x, generator))
        return total / n_samples - self.dim * math.log(self.levels)

    # ----- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_continuous(
        self, n: int, generator: torch.Generator | int | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n >= 1 draws of y in [0, 1]^D; ``temperature`` scales the base noise (1 = exact).
        ``generator``: a ``torch.Generator``, an integer seed or None."""
        check_positive_int(n, "n")
        check_positive(temperature, "temperature")
        generator = as_generator(generator, self.device)
        z = temperature * torch.randn(
            n, self.dim, generator=generator, device=self.device, dtype=self.dtype
        )
        return self.transform.inverse(z)[0]

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, **_: object
    ) -> torch.Tensor:
        """n >= 1 images on the data's K-level grid (the cell of each continuous draw)."""
        return self.quantize(self.sample_continuous(n, generator))

    @torch.no_grad()
    def standardize(self, x: torch.Tensor, generator: torch.Generator | int | None = None) -> None:
        """Set the standardization layer so dequantized, logit-transformed data have zero mean
        and unit variance per pixel; ``x``: at least two images."""
        y = check_nonempty(self.dequantize(x, generator), "x", 2)
        logit, _ = self.transform.transforms[0](y)
        layer = self.transform.transforms[1]
        assert isinstance(layer, ElementwiseAffine)
        layer.loc.copy_(logit.mean(0))
        # a pixel constant after dequantization cannot occur (u is continuous); floor anyway
        layer.log_scale.copy_(torch.log(logit.std(0).clamp_min(1e-6)))


def infer_levels(x: torch.Tensor, candidates: Sequence[int] = (2, 17, 256)) -> int:
    """The smallest K in ``candidates`` such that every value of x (in [0, 1]) is on the grid
    {0, 1/(K-1), ..., 1} (2: binary images; 17: digits; 256: 8-bit images)."""
    for k in candidates:
        q = x * (k - 1)
        if ((q - torch.round(q)).abs() <= 1e-3).all():
            return int(k)
    raise ValueError(
        f"x: values are not on any of the grids with {list(candidates)} levels; pass levels"
    )
