"""PixelCNN: an autoregressive model of binary images with an exact likelihood.

The image is read in raster order (row by row, left to right) and factorized by the chain rule,

    p(x) = prod_i p(x_i | x_<i),    p(x_i = 1 | x_<i) = sigmoid(l_i(x_<i)),

so log p(x) = sum_i [x_i l_i - softplus(l_i)] is exact and normalized by construction (lecture
004, "PixelRNN/PixelCNN"). All D logits come from one pass of a convolutional network whose
kernels are masked so that l_i never sees x_j for j >= i: the first layer uses mask A (the
centre pixel excluded), later layers mask B (the centre included, since their centre feature
already depends only on earlier pixels). Training is parallel over pixels; sampling is sequential,
one pixel per pass (``sample``, ``complete``).

Two architectures:
  * ``"plain"``: the PixelCNN of van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel
    Recurrent Neural Networks", ICML: a mask-A convolution, then residual blocks of mask-B
    convolutions. Stacked masked k x k kernels leave a "blind spot" (pixels up and to the right
    that never reach l_i, whatever the depth).
  * ``"gated"`` (default): the Gated PixelCNN of van den Oord et al. (2016), "Conditional Image
    Generation with PixelCNN Decoders", NeurIPS: a vertical stack (rows strictly above the
    current one) feeding a horizontal stack (the current row, to the left), gated activations
    tanh(a) * sigmoid(b), residual connections in the horizontal stack. No blind spot.

Energy convention: ``energy(x) = -log p(x)``, so log Z = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import (
    ImageShape,
    Integral,
    OneOf,
    as_generator,
    as_tensor,
    check_binary,
    check_known_mask,
    check_nonempty,
    check_positive_int,
    validate,
)
from .base import Model

ARCHITECTURES = ("gated", "plain")


# ----- masks --------------------------------------------------------------------------------------
def raster_mask(kernel: int, include_centre: bool) -> torch.Tensor:
    """k x k mask of the plain PixelCNN: rows above the centre, and the centre row left of the
    centre (mask A) or up to and including it (mask B)."""
    mask = torch.zeros(kernel, kernel)
    c = kernel // 2
    mask[:c] = 1.0
    mask[c, : c + int(include_centre)] = 1.0
    return mask


def vertical_mask(kernel: int, include_centre_row: bool) -> torch.Tensor:
    """k x k mask of the vertical stack: rows strictly above the centre (first layer) or up to
    and including the centre row (later layers, whose inputs already see only earlier rows)."""
    mask = torch.zeros(kernel, kernel)
    mask[: kernel // 2 + int(include_centre_row)] = 1.0
    return mask


def horizontal_mask(kernel: int, include_centre: bool) -> torch.Tensor:
    """1 x k mask of the horizontal stack: pixels left of the centre (mask A) or up to and
    including it (mask B)."""
    mask = torch.zeros(1, kernel)
    mask[0, : kernel // 2 + int(include_centre)] = 1.0
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-size convolution whose k x k kernel is multiplied by a fixed 0/1 ``mask``.

    Only the mask's bounding box is convolved (with the padding shifted to match), so the
    kernel taps that are always zero cost nothing: half the work of a vertical-stack kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, mask: torch.Tensor) -> None:
        kh, kw = mask.shape
        super().__init__(in_channels, out_channels, (kh, kw))
        self.register_buffer("mask", mask.reshape(1, 1, kh, kw).clone())
        rows = torch.nonzero(mask.sum(1)).flatten()
        cols = torch.nonzero(mask.sum(0)).flatten()
        if rows.numel() == 0:
            raise ValueError("mask: expected at least one nonzero entry")
        r0, r1, q0, q1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        self._box = (r0, r1 + 1, q0, q1 + 1)
        # output (i, j) reads input (i + a - kh//2, j + b - kw//2) for tap (a, b) in the box;
        # a negative pad (a box entirely above the centre row) crops instead
        self._pad = (kw // 2 - q0, q1 - kw // 2, kh // 2 - r0, r1 - kh // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r0, r1, q0, q1 = self._box
        weight = (self.weight * self.mask)[:, :, r0:r1, q0:q1]
        return F.conv2d(F.pad(x, self._pad), weight, self.bias)


def gate(a: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a_1) * sigmoid(a_2) over the two halves of the channels."""
    value, gate_ = a.chunk(2, dim=1)
    return torch.tanh(value) * torch.sigmoid(gate_)


# ----- layers -------------------------------------------------------------------------------------
class GatedLayer(nn.Module):
    """One gated PixelCNN layer on (vertical, horizontal) feature maps.

    v' = gate(V * v);  h' = h + 1x1(gate(H * h + 1x1(V * v)))  (no residual in the first layer,
    whose input is the image). The vertical features at row r depend on rows < r only, so
    feeding them into the horizontal stack at the same position is causal.
    """

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.vertical = MaskedConv2d(in_channels, 2 * channels, vertical_mask(kernel, not first))
        self.horizontal = MaskedConv2d(
            in_channels, 2 * channels, horizontal_mask(kernel, not first)
        )
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        h_new = self.horizontal_out(gate(h_pre))
        return gate(v_pre), h_new if self.first else h + h_new


class ResidualMaskedBlock(nn.Module):
    """x + 1x1(relu(mask-B conv(relu(x)))): the plain PixelCNN's residual block."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, raster_mask(kernel, include_centre=True))
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.relu(self.conv(F.relu(x))))


#: kernel sizes with a centre pixel
ODD_KERNEL = Integral(1).where(lambda k: k % 2 == 1, "an odd positive kernel size (1, 3, 5, ...)")


# ----- the autoregressive family ------------------------------------------------------------------
class RasterAutoregressive(Model):
    """A normalized model of binary images factorized in raster order,
    p(x) = prod_i p(x_i | x_<i) with p(x_i = 1 | x_<i) = sigmoid(l_i(x_<i)).

    A subclass sets ``image_shape`` and ``n_visible`` and gives ``_logit_maps``: the logits of
    every pixel from (batch, 1, h, W) images, for any height h, such that l_i depends only on the
    pixels before i and cropping the bottom rows leaves the logits of the rows kept unchanged.
    Here: the exact log-likelihood, the energy -log p(x) (log Z = 0), exact sampling and
    completion, pixel by pixel. PixelCNN (below) and PixelRNN (``ebmlab.models.pixelrnn``) are
    the two networks.
    """

    likelihood_kind = "exact"
    #: binary states, as the MCMC runner's Gibbs and bit-flip kernels expect
    spin_values = (0.0, 1.0)
    image_shape: tuple[int, int]
    n_visible: int

    def _logit_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (batch, h, W) of images (batch, 1, h, W)."""
        raise NotImplementedError

    # ----- validation -----------------------------------------------------------------------------
    def check_images(self, x: object, name: str = "x") -> torch.Tensor:
        """(batch, H * W) binary tensor on the model's device and dtype, or a clear error."""
        x = as_tensor(
            x, name, dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        return check_binary(x, name)

    # ----- density --------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """l_i(x_<i) for every pixel, shape (batch, H * W): p(x_i = 1 | x_<i) = sigmoid(l_i).
        ``x``: binary images, at least one."""
        x = check_nonempty(self.check_images(x), "x")
        h, w = self.image_shape
        return self._logit_maps(x.reshape(-1, 1, h, w)).reshape(x.shape[0], -1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, shape (batch,): sum_i x_i l_i - softplus(l_i); ``x``: binary
        images, at least one."""
        x = check_nonempty(self.check_images(x), "x")
        logits = self.logits(x)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x): the model is normalized, log Z = 0."""
        return -self.log_prob(x)

    # ----- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def _fill(
        self, x: torch.Tensor, free: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Draw the pixels where ``free`` (batch, D) is True, in raster order, each from
        p(x_i | x_<i); pixels not free are kept. Row r is computed on rows 0..r only."""
        w = self.image_shape[1]
        x = x.clone()
        active = torch.nonzero(free.any(0)).flatten().tolist()
        for i in active:
            row, col = divmod(i, w)
            top = x[:, : (row + 1) * w].reshape(-1, 1, row + 1, w)
            logit = self._logit_maps(top)[:, row, col]
            u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            draw = (u < torch.sigmoid(logit)).to(x.dtype)
            x[:, i] = torch.where(free[:, i], draw, x[:, i])
        return x

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, **_: object
    ) -> torch.Tensor:
        """n >= 1 exact draws (n, H * W), pixel by pixel (D network passes); ``generator``: a
        ``torch.Generator``, an integer seed or None. Extra keyword arguments (e.g.
        ``n_steps``) are ignored."""
        check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        x = torch.zeros(n, self.n_visible, device=self.device, dtype=self.dtype)
        return self._fill(x, torch.ones_like(x, dtype=torch.bool), generator)

    @torch.no_grad()
    def complete(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        n_steps: int | None = None,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """Complete images given the known pixels: exact draws from p(x_unknown | x_known).

        Args:
            x: (batch, H * W) binary images, at least one; only the entries where ``mask`` is
                True are read.
            mask: bool, (H * W,) or (batch, H * W); True marks a known pixel. The known pixels
                must come first in raster order (e.g. the top half), where the autoregressive
                factorization makes ancestral sampling exact.
            n_steps: ignored (accepted for the signature other families share).
            generator: a ``torch.Generator``, an integer seed or None.

        Returns:
            (batch, H * W): known pixels unchanged, the others drawn.
        """
        x = as_tensor(
            x, "x", dim=2, n_features=self.n_visible, device=self.device, dtype=self.dtype
        )
        check_nonempty(x, "x")
        mask = check_known_mask(mask, x).expand_as(x)
        generator = as_generator(generator, self.device)
        # a known pixel after an unknown one would condition on the future: not ancestral
        later_known = mask & (torch.cumsum((~mask).to(torch.int64), dim=1) > 0)
        if later_known.any():
            raise ValueError(
                f"mask: {type(self).__name__} completes exactly only when the known pixels "
                "precede the unknown ones in raster order (e.g. the top half known, the bottom "
                "half unknown)"
            )
        check_binary(x[mask], "x (known pixels)")
        return self._fill(torch.where(mask, x, torch.zeros_like(x)), ~mask, generator)

    inpaint = complete


# ----- the model ----------------------------------------------------------------------------------
class PixelCNN(RasterAutoregressive):
    """PixelCNN over binary images of shape ``image_shape``, flattened in raster order.

    Args:
        image_shape: [H, W].
        channels: feature maps per layer.
        n_layers: masked layers, the first (mask A) included.
        kernel: size of the later layers' kernels (odd).
        first_kernel: size of the first layer's kernel (odd; 7 in the papers).
        architecture: "gated" (vertical + horizontal stacks, no blind spot) or "plain".

    Data are (batch, H * W) tensors of 0/1, as ``ebmlab.data.load(..., binarize=...)`` returns.
    """

    @validate(
        image_shape=ImageShape(),
        channels=Integral(1),
        n_layers=Integral(1),
        kernel=ODD_KERNEL,
        first_kernel=ODD_KERNEL,
        architecture=OneOf(*ARCHITECTURES),
    )
    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        channels: int = 32,
        n_layers: int = 5,
        kernel: int = 3,
        first_kernel: int = 7,
        architecture: str = "gated",
    ) -> None:
        super().__init__()
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.n_visible = self.image_shape[0] * self.image_shape[1]
        self.architecture = architecture
        if architecture == "gated":
            self.layers = nn.ModuleList(
                [GatedLayer(1, channels, first_kernel, first=True)]
                + [GatedLayer(channels, channels, kernel, first=False) for _ in range(n_layers - 1)]
            )
        else:
            self.first = MaskedConv2d(1, channels, raster_mask(first_kernel, include_centre=False))
            self.layers = nn.ModuleList(
                [ResidualMaskedBlock(channels, kernel) for _ in range(n_layers - 1)]
            )
        # 1x1 output layers: per pixel, so causal (mask B of size 1)
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
        )
        # channels-last feature maps: the layout the CPU and GPU convolution kernels are fastest
        # on (about 1.1x a step here); checkpoints store the weights contiguous either way
        self.to(memory_format=torch.channels_last)

    # ----- network -------------------------------------------------------------------------------
    def _logit_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (batch, h, W) for images (batch, 1, h, W); any height h works, since no layer
        looks down: cropping the bottom rows leaves the logits of the rows kept unchanged."""
        # +-1, so the zero padding differs from both pixel values
        x = (2.0 * images - 1.0).contiguous(memory_format=torch.channels_last)
        if self.architecture == "gated":
            v = h = x
            for layer in self.layers:
                v, h = layer(v, h)
            features = h
        else:
            features = self.first(x)
            for layer in self.layers:
                features = layer(features)
        return self.head(features)[:, 0]
