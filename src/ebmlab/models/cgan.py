"""Conditional GAN: generator G(z, y) and discriminator D(x, y) both given the class y.

Mirza & Osindero (2014), lecture 004. The game of a GAN (``ebmlab.models.gan``) with the class
label fed to both players,

    min_G max_D V(D, G) = E_{(x, y) ~ data}[log D(x, y)] + E_{z, y}[log(1 - D(G(z, y), y))],

so that for a fixed generator the optimal discriminator is D*(x, y) = p_data(x | y) /
(p_data(x | y) + p_g(x | y)) for every class: at the equilibrium p_g(x | y) = p_data(x | y), and
G(z, y) draws an image of class y. The label enters as its one-hot code e_y (K classes):

  * ``mlp``: G = MLP on [z, e_y]; D = MLP on [x, e_y] (concatenation, as in the paper);
  * ``conv`` (DCGAN-style, Radford et al. 2016): G = the DCGAN generator on [z, e_y]; D = the
    DCGAN discriminator on the image stacked with K constant planes, plane k equal to
    (e_y)_k (the label seen by every filter of the first layer).

``discriminator_batch_norm`` puts BatchNorm in the discriminator (DCGAN's guideline: after every
layer but the first); off by default, as in ``GAN``, so that every example is judged alone (the
R1 penalty of the training objective is per example). The training objective is
``ebmlab.objectives.cgan.ConditionalGANObjective``; as for every GAN there is no density, no
energy and no likelihood: samples are scored by the Frechet digit distance and by the class a
classifier trained on real labels assigns them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import Boolean, Integral, as_generator, check_positive_int, validate
from .base import Model
from .gan import (
    CONSTRAINTS,
    check_image_shape,
    conv_discriminator,
    conv_generator,
    initialize_weights,
    latent_normal,
    mlp_discriminator,
    mlp_generator,
)


class LabelConcat(nn.Module):
    """net([inputs, e_y]): the one-hot code appended to every input vector."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([inputs, one_hot], 1))


class LabelPlanes(nn.Module):
    """net([image, K constant planes]): plane k of an example is (e_y)_k at every pixel; the
    input of ``net`` is (batch, (1 + K) * H * W), channel after channel."""

    def __init__(self, net: nn.Module, pixels: int) -> None:
        super().__init__()
        self.net = net
        self.pixels = pixels

    def forward(self, image: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        planes = one_hot.repeat_interleave(self.pixels, dim=1)
        return self.net(torch.cat([image, planes], 1))


class ConditionalGAN(Model):
    """Class-conditional generator and discriminator.

    Args:
        dim: data dimension D (pixels H*W for images).
        n_classes: K, the number of classes.
        latent_dim: dimension of z ~ N(0, I).
        architecture: ``mlp`` or ``conv`` (DCGAN-style; needs ``image_shape``).
        hidden: width of the MLP layers.
        depth: hidden layers of each MLP.
        channels: c, the channels of the first conv layer of D (and the last of G); 2c next.
        image_shape: [H, W] with H * W = dim (needed by ``conv``; H and W divisible by 4).
        output: ``sigmoid`` (images in [0, 1]) or ``identity`` (unbounded data).
        batch_norm: BatchNorm in the generator (DCGAN).
        discriminator_batch_norm: BatchNorm in the discriminator (DCGAN; not on its first layer).
        seed: seed of the initial weights (None: PyTorch's global generator).
    """

    @validate(**CONSTRAINTS, n_classes=Integral(2), discriminator_batch_norm=Boolean())
    def __init__(
        self,
        dim: int,
        n_classes: int = 10,
        latent_dim: int = 32,
        architecture: str = "mlp",
        hidden: int = 256,
        depth: int = 2,
        channels: int = 32,
        image_shape: list[int] | None = None,
        output: str = "sigmoid",
        batch_norm: bool = True,
        discriminator_batch_norm: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.n_classes = n_classes
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.output = output
        inputs = latent_dim + n_classes
        self.discriminator: LabelConcat | LabelPlanes
        if architecture == "conv":
            shape = check_image_shape(image_shape, dim)
            self.generator = LabelConcat(conv_generator(inputs, shape, channels, batch_norm))
            body = conv_discriminator(shape, channels, 1 + n_classes, discriminator_batch_norm)
            self.discriminator = LabelPlanes(body, dim)
        else:
            self.generator = LabelConcat(mlp_generator(inputs, dim, hidden, depth, batch_norm))
            self.discriminator = LabelConcat(
                mlp_discriminator(dim + n_classes, hidden, depth, discriminator_batch_norm)
            )
        seeded = as_generator(seed, "cpu", "seed")
        initialize_weights(self, architecture, seeded)

    # ----- labels --------------------------------------------------------------------------------
    def one_hot(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """e_y of ``labels``: class indices (n,) in 0..K-1, or one-hot rows (n, K) (returned
        as they are), in the model's dtype and on its device."""
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels: expected a tensor, got {type(labels).__name__}")
        k = self.n_classes
        if labels.dim() == 2 and labels.shape == (n, k) and labels.is_floating_point():
            return labels.to(self.device, self.dtype)
        if labels.dim() != 1 or labels.shape[0] != n or labels.is_floating_point():
            raise ValueError(
                f"labels: expected {n} class indices (shape ({n},), integers) or one-hot rows "
                f"of shape ({n}, {k}), got {tuple(labels.shape)} {labels.dtype}"
            )
        if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ValueError(
                f"labels: expected classes in 0..{k - 1}, got the range "
                f"{int(labels.min())}..{int(labels.max())}"
            )
        return F.one_hot(labels.long(), k).to(self.device, self.dtype)

    def sample_labels(self, n: int, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """n >= 1 classes drawn uniformly from 0..K-1 (long, on the model's device).
        ``generator``: a ``torch.Generator``, an integer seed or None."""
        n = check_positive_int(n, "n")
        generator = as_generator(generator, self.device)
        device = generator.device if generator is not None else self.device
        labels = torch.randint(self.n_classes, (n,), generator=generator, device=device)
        return labels.to(self.device)

    # ----- the two players ---------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """z ~ N(0, I), shape (n, latent_dim), on the model's device."""
        return latent_normal(self, n, generator)

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """G(z, y): (batch, latent_dim) and (batch,) classes or (batch, K) one-hot rows ->
        (batch, dim)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (batch, {self.latent_dim}), got {tuple(z.shape)}")
        out = self.generator(z, self.one_hot(labels, z.shape[0]))
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit log D(x, y) - log(1 - D(x, y)), shape (batch,)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (batch, {self.dim}), got {tuple(x.shape)}")
        return self.discriminator(x, self.one_hot(labels, x.shape[0])).squeeze(-1)

    def value(self, x: torch.Tensor, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """V(D, G) = mean log D(x, y) + mean log(1 - D(G(z, y), y)) on data (x, y) and as many
        latent draws z with the same labels, through softplus."""
        return (
            -F.softplus(-self.discriminate(x, labels)).mean()
            - F.softplus(self.discriminate(self.generate(z, labels), labels)).mean()
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | int | None = None,
        n_steps: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n independent samples G(z, y), z ~ N(0, I), of the classes ``labels`` ((n,) class
        indices; None: drawn uniformly). One pass, no Markov chain; call ``model.eval()`` after
        training so that BatchNorm uses its running statistics. ``generator``: a
        ``torch.Generator``, an integer seed or None (one generator draws z and the labels)."""
        if n_steps is not None:
            raise ValueError(
                "n_steps: a GAN draws independent samples in one pass, it has no chain to run"
            )
        generator = as_generator(generator, self.device)
        z = self.sample_latent(n, generator)
        if labels is None:
            labels = self.sample_labels(n, generator)
        return self.generate(z, labels)


__all__ = ["ConditionalGAN", "LabelConcat", "LabelPlanes"]
