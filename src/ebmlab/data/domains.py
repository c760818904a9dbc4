"""Two unpaired image collections with a known answer, for image-to-image translation.

CycleGAN (Zhu et al. 2017) learns maps G: X -> Y and F: Y -> X from two collections that are
never paired. To measure it, not only look at it, the two domains here are built from one
dataset so that the right translation is known: the training images are split in two halves by
a seeded permutation; domain X holds the images of the first half as they are, domain Y the
images of the second half after a fixed transformation T. No image of X has its transformed
self in Y, so nothing is paired; on test images x the answer is T(x), and G(x) can be compared
with it (``ebmlab.app.families.cyclegan``).

Transformations (``TRANSFORMS``), each with an exact inverse (so that F = T^-1 is the answer in
the other direction):

  * ``invert``: colour inversion, T(x) = 1 - x (white digits on black become black on white);
  * ``rotate90``: a quarter turn counterclockwise (square images).
"""

from __future__ import annotations

import torch

from ..validation import check_choice, check_positive_int

TRANSFORMS = ("invert", "rotate90")


def _check(images: torch.Tensor, image_shape: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (int(v) for v in image_shape)
    if images.dim() != 2 or images.shape[1] != h * w:
        raise ValueError(
            f"{name}: expected images of shape (n, {h * w}) for image_shape {(h, w)}, got "
            f"{tuple(images.shape)}"
        )
    return h, w


def _rotate(images: torch.Tensor, image_shape: tuple[int, int], quarter_turns: int) -> torch.Tensor:
    h, w = _check(images, image_shape, "images")
    if h != w:
        raise ValueError(f"image_shape: rotate90 needs square images, got {(h, w)}")
    grid = images.reshape(-1, h, w).rot90(quarter_turns, dims=(1, 2))
    return grid.reshape(images.shape[0], h * w)


def transform(images: torch.Tensor, kind: str, image_shape: tuple[int, int]) -> torch.Tensor:
    """T(images) for ``kind`` in ``TRANSFORMS``; images are (n, H * W) in [0, 1]."""
    check_choice(kind, "kind", TRANSFORMS)
    if kind == "invert":
        _check(images, image_shape, "images")
        return 1.0 - images
    return _rotate(images, image_shape, 1)


def inverse_transform(
    images: torch.Tensor, kind: str, image_shape: tuple[int, int]
) -> torch.Tensor:
    """T^-1(images): inverse_transform(transform(x)) == x exactly."""
    check_choice(kind, "kind", TRANSFORMS)
    if kind == "invert":
        _check(images, image_shape, "images")
        return 1.0 - images
    return _rotate(images, image_shape, -1)


def unpaired_halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint halves of n examples (n // 2 each), by a permutation seeded by
    ``seed``: the images of domain X and those whose transformations make domain Y."""
    n = check_positive_int(n, "n")
    if n < 2:
        raise ValueError(f"n: expected at least 2 examples to split in two halves, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    half = n // 2
    return order[:half], order[half : 2 * half]


def unpaired_domains(
    images: torch.Tensor, kind: str, image_shape: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(domain X, domain Y): the images of one half as they are and the transformations
    T(images) of the other half (``unpaired_halves``), n // 2 of each."""
    check_choice(kind, "kind", TRANSFORMS)
    _check(images, image_shape, "images")
    first, second = unpaired_halves(images.shape[0], seed)
    index_x, index_y = first.to(images.device), second.to(images.device)
    return images[index_x], transform(images[index_y], kind, image_shape)


__all__ = ["TRANSFORMS", "inverse_transform", "transform", "unpaired_domains", "unpaired_halves"]
