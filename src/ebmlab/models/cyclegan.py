"""CycleGAN: two generators G: X -> Y, F: Y -> X and two discriminators D_X, D_Y, in one module.

Zhu, Park, Isola & Efros (2017), lecture 004. From two unpaired image collections X and Y, G
learns to make images that D_Y cannot tell from Y's and F images that D_X cannot tell from X's,
while each undoes the other: F(G(x)) ~ x and G(F(y)) ~ y. The full objective,

    L(G, F, D_X, D_Y) = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda L_cyc(G, F),
    L_cyc = E_x ||F(G(x)) - x||_1 + E_y ||G(F(y)) - y||_1,

is ``ebmlab.objectives.cyclegan.CycleGANObjective``. The adversarial terms alone allow any map
onto Y's distribution; the cycle term asks for a map that keeps enough of x to get it back.

Networks (``architecture``), scaled down for small grey images (28 x 28 MNIST, 8 x 8 digits):

  * ``conv``: the residual generator of Johnson et al. (2016) that CycleGAN uses: a 3 x 3
    convolution to c channels, one strided 4 x 4 convolution to 2c at half resolution,
    ``n_blocks`` residual blocks (two 3 x 3 convolutions each), a transposed 4 x 4 convolution
    back to c at full resolution and a 3 x 3 convolution to the image, with instance
    normalization and ReLU between (reflection padding); the discriminators are PatchGANs (Isola
    et al. 2017): two strided 4 x 4 convolutions (c, then 2c with instance normalization,
    LeakyReLU 0.2) and a 3 x 3 convolution to one logit per patch, (H/4) x (W/4) patches that
    each judge a window of the image. H and W must be divisible by 4.
  * ``mlp``: generators x -> [Linear, ReLU] x depth -> Linear, discriminators
    x -> [Linear, LeakyReLU] x depth -> Linear -> one logit (any data).

``output`` is ``sigmoid`` for images in [0, 1] or ``identity``. A CycleGAN has no density, no
energy and no likelihood; it is scored by what its translations are (``ebmlab.app.families
.cyclegan``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..validation import Integral, OneOf, as_generator, check_positive_int, validate
from .base import Model
from .gan import LEAK, OUTPUTS, check_image_shape, initialize_weights, mlp_discriminator

ARCHITECTURES = ("conv", "mlp")


class _Residual(nn.Module):
    """x + conv(relu(norm(conv(x)))) at constant width (normalized), as in Johnson et al."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(width, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_translator(shape: tuple[int, int], c: int, n_blocks: int) -> nn.Sequential:
    """(batch, H * W) -> (batch, H * W) pre-activations: the residual generator, scaled down."""
    h, w = shape
    return nn.Sequential(
        nn.Unflatten(1, (1, h, w)),
        nn.Conv2d(1, c, 3, padding=1, padding_mode="reflect"),
        nn.InstanceNorm2d(c, affine=True),
        nn.ReLU(),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (H, W) -> (H/2, W/2)
        nn.InstanceNorm2d(2 * c, affine=True),
        nn.ReLU(),
        *[_Residual(2 * c) for _ in range(n_blocks)],
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # -> (H, W)
        nn.InstanceNorm2d(c, affine=True),
        nn.ReLU(),
        nn.Conv2d(c, 1, 3, padding=1, padding_mode="reflect"),
        nn.Flatten(1),
    )


def patch_discriminator(shape: tuple[int, int], c: int) -> nn.Sequential:
    """(batch, H * W) -> (batch, H/4 * W/4) logits, one per overlapping patch (PatchGAN)."""
    h, w = shape
    return nn.Sequential(
        nn.Unflatten(1, (1, h, w)),
        nn.Conv2d(1, c, 4, stride=2, padding=1),  # (H, W) -> (H/2, W/2)
        nn.LeakyReLU(LEAK),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # -> (H/4, W/4)
        nn.InstanceNorm2d(2 * c, affine=True),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(2 * c, 1, 3, padding=1),  # one logit per patch
        nn.Flatten(1),
    )


def mlp_translator(dim: int, hidden: int, depth: int) -> nn.Sequential:
    """(batch, D) -> (batch, D) pre-activations through ``depth`` ReLU layers."""
    layers: list[nn.Module] = []
    width = dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, dim))
    return nn.Sequential(*layers)


class CycleGAN(Model):
    """The four networks of a CycleGAN between two domains of the same dimension.

    Args:
        dim: data dimension D of both domains (pixels H*W for images).
        architecture: ``conv`` (residual generators, PatchGAN discriminators; needs
            ``image_shape``) or ``mlp``.
        channels: c, the width of the conv networks' first layer (2c after downsampling).
        n_blocks: residual blocks of each conv generator.
        hidden: width of the MLP layers.
        depth: hidden layers of each MLP.
        image_shape: [H, W] with H * W = dim (needed by ``conv``; H and W divisible by 4).
        output: ``sigmoid`` (images in [0, 1]) or ``identity`` (unbounded data).
        seed: seed of the initial weights (None: PyTorch's global generator).
    """

    @validate(
        dim=Integral(1),
        architecture=OneOf(*ARCHITECTURES),
        channels=Integral(1),
        n_blocks=Integral(0),
        hidden=Integral(1),
        depth=Integral(1),
        output=OneOf(*OUTPUTS),
        seed=Integral() | None,
    )
    def __init__(
        self,
        dim: int,
        architecture: str = "conv",
        channels: int = 16,
        n_blocks: int = 2,
        hidden: int = 256,
        depth: int = 2,
        image_shape: list[int] | None = None,
        output: str = "sigmoid",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.architecture = architecture
        self.output = output
        if architecture == "conv":
            shape = check_image_shape(image_shape, dim)

            def generator() -> nn.Module:
                return conv_translator(shape, channels, n_blocks)

            def discriminator() -> nn.Module:
                return patch_discriminator(shape, channels)
        else:

            def generator() -> nn.Module:
                return mlp_translator(dim, hidden, depth)

            def discriminator() -> nn.Module:
                return mlp_discriminator(dim, hidden, depth)

        self.generator_xy = generator()  # G: X -> Y
        self.generator_yx = generator()  # F: Y -> X
        self.discriminator_x = discriminator()  # D_X: is it an image of X?
        self.discriminator_y = discriminator()  # D_Y: is it an image of Y?
        seeded = as_generator(seed, "cpu", "seed")
        initialize_weights(self, architecture, seeded)

    @property
    def generators(self) -> tuple[nn.Module, nn.Module]:
        """(G, F)."""
        return self.generator_xy, self.generator_yx

    @property
    def discriminators(self) -> tuple[nn.Module, nn.Module]:
        """(D_X, D_Y)."""
        return self.discriminator_x, self.discriminator_y

    def _check(self, x: torch.Tensor, name: str) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected shape (batch, {self.dim}), got {tuple(x.shape)}")

    def _out(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(pre) if self.output == "sigmoid" else pre

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """G(x): images of domain X (batch, D) -> images of domain Y."""
        self._check(x, "x")
        return self._out(self.generator_xy(x))

    def translate_back(self, y: torch.Tensor) -> torch.Tensor:
        """F(y): images of domain Y (batch, D) -> images of domain X."""
        self._check(y, "y")
        return self._out(self.generator_yx(y))

    def discriminate_x(self, x: torch.Tensor) -> torch.Tensor:
        """D_X's logits (batch, patches): is each patch from an image of domain X?"""
        self._check(x, "x")
        return self.discriminator_x(x)

    def discriminate_y(self, y: torch.Tensor) -> torch.Tensor:
        """D_Y's logits (batch, patches): is each patch from an image of domain Y?"""
        self._check(y, "y")
        return self.discriminator_y(y)

    @torch.no_grad()
    def translate_all(self, x: torch.Tensor, back: bool = False, chunk: int = 2000) -> torch.Tensor:
        """G(x) (or F(x) with ``back``) of many images, in chunks, without gradients."""
        chunk = check_positive_int(chunk, "chunk")
        step = self.translate_back if back else self.translate
        return torch.cat([step(part) for part in x.split(chunk)]) if x.shape[0] else x.clone()


__all__ = ["ARCHITECTURES", "CycleGAN", "conv_translator", "mlp_translator", "patch_discriminator"]
