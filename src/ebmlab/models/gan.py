"""Generative adversarial network: a generator G(z) and a discriminator D(x), in one module.

Goodfellow et al. (2014), lectures 002 and 004. A generator maps latent noise z ~ N(0, I) to
data space; a discriminator outputs the logit of the probability that x came from the data. The
two play

    min_G max_D V(D, G) = E_data[log D(x)] + E_z[log(1 - D(G(z)))],

whose inner maximum, for a fixed generator density p_g, is attained by
D*(x) = p_data(x) / (p_data(x) + p_g(x)) and equals -log 4 + 2 JSD(p_data || p_g). The training
objective (non-saturating generator loss, alternating or simultaneous updates) is
``ebmlab.objectives.gan.GANObjective``.

Architectures (``architecture``):
  * ``mlp``: G = z -> [Linear, (BatchNorm), ReLU] x depth -> Linear -> output;
    D = x -> [Linear, LeakyReLU(0.2)] x depth -> Linear -> logit. For any data (2-D toys too).
  * ``conv``: DCGAN-style (Radford, Metz & Chintala 2016) for H x W images with H, W divisible by
    4 (8x8 digits, 28x28 MNIST): G = Linear to 2c x H/4 x W/4, BatchNorm, ReLU, two strided
    transposed convolutions (4x4, stride 2) with BatchNorm and ReLU between; D = two strided 4x4
    convolutions with LeakyReLU(0.2), no pooling, then a linear logit. Weights start from
    N(0, 0.02) as in DCGAN.
``output`` is ``sigmoid`` for images in [0, 1] (DCGAN's tanh on [-1, 1], shifted) or
``identity`` for unbounded data. There is no density, hence no energy and no likelihood: GANs are
scored by the Frechet distance of their samples (``ebmlab.metrics.frechet``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import Boolean, Integral, OneOf, as_generator, check_positive_int, validate
from .base import Model

ARCHITECTURES = ("mlp", "conv")
OUTPUTS = ("sigmoid", "identity")
#: slope of the discriminator's LeakyReLU (DCGAN)
LEAK = 0.2


def mlp_generator(latent: int, dim: int, hidden: int, depth: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = latent
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        if bn:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        width = hidden
    layers.append(nn.Linear(width, dim))
    return nn.Sequential(*layers)


def mlp_discriminator(dim: int, hidden: int, depth: int, bn: bool = False) -> nn.Sequential:
    """``bn``: BatchNorm after every hidden Linear but the first (DCGAN: none on the input)."""
    layers: list[nn.Module] = []
    width = dim
    for layer in range(depth):
        layers.append(nn.Linear(width, hidden))
        if bn and layer > 0:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.LeakyReLU(LEAK))
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def conv_generator(latent: int, shape: Sequence[int], c: int, bn: bool) -> nn.Sequential:
    h, w = shape[0] // 4, shape[1] // 4

    def norm(n: int) -> nn.Module:
        return nn.BatchNorm2d(n) if bn else nn.Identity()

    return nn.Sequential(
        nn.Linear(latent, 2 * c * h * w),
        nn.Unflatten(1, (2 * c, h, w)),
        norm(2 * c),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (h, w) -> (2h, 2w)
        norm(c),
        nn.ReLU(),
        nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # -> (4h, 4w) = (H, W)
        nn.Flatten(1),
    )


def conv_discriminator(
    shape: Sequence[int], c: int, in_channels: int = 1, bn: bool = False
) -> nn.Sequential:
    """Input: (batch, in_channels * H * W), channel after channel; ``bn``: BatchNorm after the
    second convolution (DCGAN puts none on the first layer)."""
    h, w = shape[0] // 4, shape[1] // 4
    norm = [nn.BatchNorm2d(2 * c)] if bn else []  # none: the layer indices of earlier versions
    return nn.Sequential(
        nn.Unflatten(1, (in_channels, shape[0], shape[1])),
        nn.Conv2d(in_channels, c, 4, stride=2, padding=1),  # (H, W) -> (H/2, W/2)
        nn.LeakyReLU(LEAK),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # -> (H/4, W/4)
        *norm,
        nn.LeakyReLU(LEAK),
        nn.Flatten(1),
        nn.Linear(2 * c * h * w, 1),
    )


def check_image_shape(image_shape: Sequence[int] | None, dim: int) -> tuple[int, int]:
    """(H, W) of the conv architecture: H * W = dim, H and W positive multiples of 4."""
    if image_shape is None or len(image_shape) != 2:
        raise ValueError(f"image_shape: the conv architecture needs [H, W], got {image_shape!r}")
    hgt, wid = int(image_shape[0]), int(image_shape[1])
    if hgt * wid != dim or hgt % 4 or wid % 4 or min(hgt, wid) < 4:
        raise ValueError(
            f"image_shape: expected [H, W] with H * W = dim = {dim} and H, W positive "
            f"multiples of 4, got {list(image_shape)}"
        )
    return hgt, wid


@torch.no_grad()
def initialize_weights(
    module: nn.Module, architecture: str, generator: torch.Generator | None
) -> None:
    """DCGAN's N(0, 0.02) for conv models; PyTorch's default U(+-1/sqrt(fan_in)) for MLPs
    (drawn from ``generator``); BatchNorm scale 1, shift 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            if architecture == "conv":
                layer.weight.normal_(0.0, 0.02, generator=generator)
                layer.bias.zero_()
            else:
                bound = 1.0 / math.sqrt(layer.weight.shape[1])
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            layer.weight.fill_(1.0)
            layer.bias.zero_()


def latent_normal(model: Model, n: int, generator: torch.Generator | int | None) -> torch.Tensor:
    """z ~ N(0, I), shape (n, model.latent_dim), drawn on the generator's device and moved to
    the model's. ``generator``: a ``torch.Generator``, an integer seed (a new generator on the
    model's device) or None."""
    n = check_positive_int(n, "n")
    generator = as_generator(generator, model.device)
    device = generator.device if generator is not None else model.device
    z = torch.randn(n, model.latent_dim, generator=generator, device=device, dtype=model.dtype)
    return z.to(model.device)


#: The constructor arguments of a GAN (the conditional GAN's too) and what each must be.
CONSTRAINTS = {
    "dim": Integral(1),
    "latent_dim": Integral(1),
    "architecture": OneOf(*ARCHITECTURES),
    "hidden": Integral(1),
    "depth": Integral(1),
    "channels": Integral(1),
    "output": OneOf(*OUTPUTS),
    "batch_norm": Boolean(),
    "seed": Integral() | None,
}


class GAN(Model):
    """Generator and discriminator of a GAN.

    Args:
        dim: data dimension D (pixels H*W for images).
        latent_dim: dimension of z ~ N(0, I).
        architecture: ``mlp`` or ``conv`` (DCGAN-style; needs ``image_shape``).
        hidden: width of the MLP layers.
        depth: hidden layers of each MLP.
        channels: c, the channels of the first conv layer of D (and the last of G); 2c next.
        image_shape: [H, W] with H * W = dim (needed by ``conv``; H and W divisible by 4).
        output: ``sigmoid`` (images in [0, 1]) or ``identity`` (unbounded data).
        batch_norm: BatchNorm in the generator (DCGAN); the discriminator has none, so that a
            batch of data and a batch of samples are judged one example at a time.
        seed: seed of the initial weights (None: PyTorch's global generator).
    """

    @validate(**CONSTRAINTS)
    def __init__(
        self,
        dim: int,
        latent_dim: int = 32,
        architecture: str = "mlp",
        hidden: int = 256,
        depth: int = 2,
        channels: int = 32,
        image_shape: list[int] | None = None,
        output: str = "sigmoid",
        batch_norm: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.output = output
        if architecture == "conv":
            hgt, wid = check_image_shape(image_shape, dim)
            self.generator = conv_generator(latent_dim, (hgt, wid), channels, batch_norm)
            self.discriminator = conv_discriminator((hgt, wid), channels)
        else:
            self.generator = mlp_generator(latent_dim, dim, hidden, depth, batch_norm)
            self.discriminator = mlp_discriminator(dim, hidden, depth)
        seeded = as_generator(seed, "cpu", "seed")
        initialize_weights(self, architecture, seeded)

    # ----- the two players ---------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """z ~ N(0, I), shape (n, latent_dim), on the model's device."""
        return latent_normal(self, n, generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (batch, latent_dim) -> (batch, dim)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (batch, {self.latent_dim}), got {tuple(z.shape)}")
        out = self.generator(z)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit, log D(x) - log(1 - D(x)), shape (batch,)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (batch, {self.dim}), got {tuple(x.shape)}")
        return self.discriminator(x).squeeze(-1)

    def value(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """V(D, G) = mean log D(x) + mean log(1 - D(G(z))), through softplus:
        log D = -softplus(-logit), log(1 - D) = -softplus(logit)."""
        return (
            -F.softplus(-self.discriminate(x)).mean()
            - F.softplus(self.discriminate(self.generate(z))).mean()
        )

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | int | None = None, n_steps: int | None = None
    ) -> torch.Tensor:
        """n independent samples G(z), z ~ N(0, I) (one pass, no Markov chain).

        The generator's BatchNorm layers use their running statistics in eval mode and the
        batch's statistics in train mode (call ``model.eval()`` after training).
        """
        if n_steps is not None:
            raise ValueError(
                "n_steps: a GAN draws independent samples in one pass, it has no chain to run"
            )
        return self.generate(self.sample_latent(n, generator))


__all__ = ["GAN"]
