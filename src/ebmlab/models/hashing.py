"""Semantic hashing: binary codes, an address table, Hamming-ball and Hamming-ranking retrieval,
and the linear baselines (sign of PCA projections, random-hyperplane LSH, ITQ).

Salakhutdinov & Hinton (2009), "Semantic hashing" (lecture 002): the deepest layer of an
RBM-pretrained deep autoencoder gives each item a short binary code, so that similar items lie
at nearby addresses of a memory. ``HashingAutoencoder`` is a ``DeepAutoencoder`` with logistic
code units driven to binary values during fine-tuning by Gaussian noise added before the code
sigmoid, z = sigmoid(a + eps), eps ~ N(0, ``code_noise``^2) (the paper's deterministic noise
plays the same role): the decoder can only read the code reliably when each unit sits far from
1/2, so the units saturate. After training the code is 1[z > 1/2] = 1[a > 0].

Retrieval. An ``AddressTable`` maps each B-bit code (packed into one integer) to the items that
have it. The Hamming ball of radius r around a query code q is read by visiting the
sum_{j <= r} C(B, j) addresses q XOR m, m over all masks of at most r bits (529 for B = 32,
r = 2), independently of the number of items: no linear scan. Hamming ranking sorts all items by
d(q, x) = popcount(q XOR x) (a linear scan, computed here from +-1 codes as (B - s_q . s_x) / 2).

Metrics, with a relevance matrix (query, item) (e.g. same class label): the precision and
recall of the Hamming ball for every radius (a precision-recall curve), precision within radius
2 (a query whose ball is empty scores precision 0, the convention of Gong & Lazebnik 2011), and
mean average precision of the Hamming ranking (ties broken by item index).

Baselines (``LinearHasher``: code = 1[(x - mu) P > 0]):

* PCA-sign: P = the top B principal directions.
* LSH (Charikar 2002): P has i.i.d. N(0, 1) entries (random hyperplanes through the mean).
* ITQ (Gong & Lazebnik 2011): V = (x - mu) P_pca, then alternate B = sign(V R) and
  R = argmin_{R orthogonal} ||B - V R||_F^2 = U W^T, with U S W^T the SVD of V^T B (orthogonal
  Procrustes). Each half-step cannot raise the quantization loss ||B - V R||_F^2, so it is
  non-increasing; R starts at a random rotation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..validation import (
    Integral,
    Real,
    as_generator,
    as_tensor,
    check_nonempty,
    check_positive_int,
    validate,
)
from .autoencoder import DeepAutoencoder

#: Largest code length an ``AddressTable`` packs into one int64 key.
MAX_BITS = 64


# ----- codes -------------------------------------------------------------------------------------
def _check_codes(codes: Any, name: str, n_bits: int | None = None) -> torch.Tensor:
    c = torch.as_tensor(codes)
    if c.dim() != 2:
        raise ValueError(
            f"{name}: expected a 2-d array of codes (n, bits), got shape {tuple(c.shape)}"
        )
    if n_bits is not None and c.shape[1] != n_bits:
        raise ValueError(f"{name}: expected codes of {n_bits} bits, got {c.shape[1]}")
    if c.dtype != torch.bool:
        if not ((c == 0) | (c == 1)).all():
            raise ValueError(f"{name}: expected binary codes (bool or 0/1)")
        c = c.bool()
    return c


def pack_codes(codes: Any) -> np.ndarray:
    """Pack binary codes (n, B <= 64) into int64 keys, bit j of the key = code bit j."""
    c = _check_codes(codes, "codes")
    bits = c.shape[1]
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"codes: expected 1..{MAX_BITS} bits, got {bits}")
    weights = np.left_shift(np.uint64(1), np.arange(bits, dtype=np.uint64))
    packed = (c.numpy().astype(np.uint64) * weights).sum(1, dtype=np.uint64)
    return packed.view(np.int64)


def hamming_distances(queries: Any, items: Any) -> torch.Tensor:
    """d(q, x) = number of differing bits, (n_queries, n_items) int64: (B - s_q . s_x) / 2 with
    s = 2 c - 1 (one matrix product)."""
    q = _check_codes(queries, "queries")
    x = _check_codes(items, "items", q.shape[1])
    sq, sx = q.float() * 2 - 1, x.float() * 2 - 1
    return ((q.shape[1] - sq @ sx.T) / 2).round().long()


def hamming_ranking(queries: Any, items: Any) -> torch.Tensor:
    """Items sorted by Hamming distance to each query (ties by index), (n_queries, n_items)."""
    return torch.sort(hamming_distances(queries, items), dim=1, stable=True).indices


def ball_masks(n_bits: int, radius: int) -> np.ndarray:
    """Every B-bit mask with at most ``radius`` bits set, as int64 (0 first, then by weight)."""
    check_positive_int(n_bits, "n_bits")
    if not 0 <= radius <= n_bits:
        raise ValueError(f"radius: expected 0..{n_bits}, got {radius}")
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << i for i in bits) for bits in itertools.combinations(range(n_bits), r))
    return np.array(masks, dtype=np.uint64).view(np.int64)


class AddressTable:
    """Items stored at the addresses given by their binary codes (a hash table keyed by the
    packed code); ``ball`` reads the addresses within a Hamming radius of a query's code."""

    def __init__(self, codes: Any) -> None:
        c = _check_codes(codes, "codes")
        self.n_bits = c.shape[1]
        self.n_items = c.shape[0]
        keys = pack_codes(c)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(keys)]
        self.table: dict[int, np.ndarray] = {
            int(sorted_keys[s]): order[s:e] for s, e in zip(starts, ends)
        }
        # the same table as sorted arrays, for a vectorised lookup of all addresses of a ball
        self._addresses = sorted_keys[starts]
        self._starts, self._ends, self._order = starts, ends, order
        self._masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.n_items

    def masks(self, radius: int) -> np.ndarray:
        if radius not in self._masks:
            self._masks[radius] = ball_masks(self.n_bits, radius)
        return self._masks[radius]

    def ball(self, code: Any, radius: int = 2) -> np.ndarray:
        """Indices of the items within Hamming distance ``radius`` of ``code`` (B,), sorted."""
        key = int(
            pack_codes(_check_codes(torch.as_tensor(code).reshape(1, -1), "code", self.n_bits))[0]
        )
        wanted = np.bitwise_xor(self.masks(radius), np.int64(key))
        pos = np.searchsorted(self._addresses, wanted).clip(max=len(self._addresses) - 1)
        pos = pos[self._addresses[pos] == wanted]  # the occupied addresses of the ball
        if pos.size == 0:
            return np.empty(0, dtype=np.int64)
        found = [self._order[a:b] for a, b in zip(self._starts[pos], self._ends[pos])]
        return np.sort(np.concatenate(found))

    def ball_many(self, codes: Any, radius: int = 2) -> list[np.ndarray]:
        """``ball`` for every row of ``codes``."""
        c = _check_codes(codes, "codes", self.n_bits)
        return [self.ball(row, radius) for row in c]


def linear_scan(code: Any, items: Any, radius: int = 2) -> np.ndarray:
    """The items within ``radius`` of ``code`` by computing every distance (the reference the
    address table is checked against). ``items``: codes (n, B), or their ``pack_codes`` keys,
    in which case each distance is one XOR and one popcount (the scan that is timed)."""
    if isinstance(items, np.ndarray) and items.ndim == 1:
        key = pack_codes(torch.as_tensor(code).reshape(1, -1))[0]
        # unsigned: numpy counts the bits of the absolute value of a signed integer
        diff = np.bitwise_xor(items, key).view(np.uint64)
        return np.flatnonzero(np.bitwise_count(diff) <= radius)
    d = hamming_distances(torch.as_tensor(code).reshape(1, -1), items)[0]
    return torch.nonzero(d <= radius).flatten().numpy()


# ----- retrieval metrics -------------------------------------------------------------------------
def relevance_from_labels(query_labels: Any, item_labels: Any) -> torch.Tensor:
    """relevant[q, x] = (label of query q == label of item x), (n_queries, n_items) bool."""
    a = torch.as_tensor(query_labels).flatten()
    b = torch.as_tensor(item_labels).flatten()
    return a[:, None] == b[None, :]


def _check_pair(distances: torch.Tensor, relevant: torch.Tensor) -> None:
    if distances.shape != relevant.shape:
        raise ValueError(
            f"relevant: expected the shape of distances {tuple(distances.shape)}, got "
            f"{tuple(relevant.shape)}"
        )


def precision_recall_by_radius(
    distances: Any, relevant: Any, n_bits: int | None = None
) -> dict[str, list[float]]:
    """Mean precision and recall over queries of the Hamming ball for radius 0..B.

    precision(q, r) = |relevant in ball| / |ball| (0 for an empty ball),
    recall(q, r) = |relevant in ball| / |relevant|. Returns radius, precision, recall lists
    (B: ``n_bits``, default the largest distance)."""
    d = torch.as_tensor(distances)
    rel = torch.as_tensor(relevant).bool()
    _check_pair(d, rel)
    if n_bits is None:
        n_bits = int(d.max()) if d.numel() else 0
    counts = torch.zeros(d.shape[0], n_bits + 2, dtype=torch.float64)
    hits = torch.zeros_like(counts)
    counts.scatter_add_(1, d, torch.ones_like(d, dtype=torch.float64))
    hits.scatter_add_(1, d, rel.double())
    counts, hits = counts.cumsum(1)[:, :-1], hits.cumsum(1)[:, :-1]
    precision = torch.where(counts > 0, hits / counts.clamp(min=1), torch.zeros_like(hits))
    recall = hits / rel.sum(1, keepdim=True).clamp(min=1)
    return {
        "radius": list(range(n_bits + 1)),
        "precision": precision.mean(0).tolist(),
        "recall": recall.mean(0).tolist(),
    }


def precision_at_radius(distances: Any, relevant: Any, radius: int = 2) -> float:
    """Mean over queries of the precision of the Hamming ball of ``radius`` (empty ball: 0)."""
    d = torch.as_tensor(distances)
    rel = torch.as_tensor(relevant).bool()
    _check_pair(d, rel)
    inside = d <= radius
    n = inside.sum(1)
    hit = (inside & rel).sum(1)
    return float(
        torch.where(n > 0, hit / n.clamp(min=1), torch.zeros_like(n, dtype=torch.float)).mean()
    )


def mean_average_precision(distances: Any, relevant: Any) -> float:
    """mAP of the Hamming ranking: AP(q) = mean over relevant items of the precision at their
    rank (items sorted by distance, ties by index); queries without relevant items are skipped."""
    d = torch.as_tensor(distances)
    rel = torch.as_tensor(relevant).bool()
    _check_pair(d, rel)
    order = torch.sort(d, dim=1, stable=True).indices
    ranked = torch.gather(rel, 1, order).double()
    cum = ranked.cumsum(1)
    ranks = torch.arange(1, d.shape[1] + 1, dtype=torch.float64)
    n_rel = ranked.sum(1)
    ap = (ranked * cum / ranks).sum(1) / n_rel.clamp(min=1)
    keep = n_rel > 0
    return float(ap[keep].mean()) if keep.any() else 0.0


# ----- linear baselines --------------------------------------------------------------------------
class LinearHasher:
    """code(x) = 1[(x - mean) projection > 0], projection (D, B)."""

    def __init__(self, mean: torch.Tensor, projection: torch.Tensor, name: str = "linear") -> None:
        self.mean = mean.double()
        self.projection = projection.double()
        self.name = name

    @property
    def n_bits(self) -> int:
        return self.projection.shape[1]

    def codes(self, x: Any) -> torch.Tensor:
        x = as_tensor(x, "x", dim=2, n_features=self.mean.shape[0], dtype=torch.float64)
        return (x - self.mean) @ self.projection > 0


def _check_fit(x: Any, n_bits: int) -> torch.Tensor:
    x = as_tensor(x, "x", dim=2, dtype=torch.float64)
    check_positive_int(n_bits, "n_bits")
    if n_bits > x.shape[1]:
        raise ValueError(
            f"n_bits: expected at most {x.shape[1]} (the data dimension), got {n_bits}"
        )
    return x


def pca_directions(x: torch.Tensor, n_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, top ``n_bits`` principal directions (D, B)) of the rows of ``x``."""
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, vh[:n_bits].T


def pca_sign(x: Any, n_bits: int) -> LinearHasher:
    """Sign of the top-B principal projections."""
    x = _check_fit(x, n_bits)
    mean, directions = pca_directions(x, n_bits)
    return LinearHasher(mean, directions, "pca-sign")


def random_hyperplanes(x: Any, n_bits: int, seed: int = 0) -> LinearHasher:
    """Random-hyperplane LSH (Charikar 2002): Gaussian directions through the data mean."""
    x = _check_fit(x, n_bits)
    g = as_generator(seed, "cpu", "seed")
    projection = torch.randn(x.shape[1], n_bits, generator=g, dtype=torch.float64)
    return LinearHasher(x.mean(0), projection, "lsh")


def quantization_loss(v: torch.Tensor, rotation: torch.Tensor) -> float:
    """||sign(V R) - V R||_F^2, the objective ITQ minimises (sign(0) taken as +1)."""
    vr = v @ rotation
    b = torch.where(vr >= 0, 1.0, -1.0).to(vr.dtype)
    return float((b - vr).square().sum())


def itq(
    x: Any, n_bits: int, iterations: int = 50, seed: int = 0
) -> tuple[LinearHasher, torch.Tensor, list[float]]:
    """Iterative quantization (Gong & Lazebnik 2011), see the module docstring.

    Returns the hasher, the rotation R (B, B) and the quantization loss before each iteration
    and after the last (``iterations + 1`` values, non-increasing)."""
    x = _check_fit(x, n_bits)
    check_positive_int(iterations, "iterations")
    mean, directions = pca_directions(x, n_bits)
    v = (x - mean) @ directions
    g = as_generator(seed, "cpu", "seed")
    rotation, _ = torch.linalg.qr(torch.randn(n_bits, n_bits, generator=g, dtype=torch.float64))
    losses = [quantization_loss(v, rotation)]
    for _ in range(iterations):
        vr = v @ rotation
        b = torch.where(vr >= 0, 1.0, -1.0).to(v.dtype)
        u, _, wh = torch.linalg.svd(v.T @ b)
        rotation = u @ wh
        losses.append(quantization_loss(v, rotation))
    return LinearHasher(mean, directions @ rotation, "itq"), rotation, losses


# ----- the learned codes -------------------------------------------------------------------------
class HashingAutoencoder(DeepAutoencoder):
    """``DeepAutoencoder`` with logistic code units and Gaussian noise of standard deviation
    ``code_noise`` added to the code's input during training (module docstring); pretrained by
    the same RBM stack (all logistic), fine-tuned by the same objective.

    Args:
        layer_sizes: units per layer, input first, code bits last.
        code_noise: standard deviation of the noise before the code sigmoid in training mode.
        init_std, seed: as for ``DeepAutoencoder``.
    """

    @validate(code_noise=Real(0), init_std=Real(0) | None, seed=Integral() | None)
    def __init__(
        self,
        layer_sizes: list[int],
        code_noise: float = 4.0,
        init_std: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(layer_sizes, linear_code=False, init_std=init_std, seed=seed)
        if self.code_size > MAX_BITS:
            raise ValueError(
                f"layer_sizes: expected a code of at most {MAX_BITS} bits, got {self.code_size}"
            )
        self.code_noise = float(code_noise)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code probabilities sigmoid(a + eps); eps ~ N(0, code_noise^2) only in training mode."""
        h = x
        last = len(self.encoder) - 1
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i == last and self.training and self.code_noise > 0:
                h = h + self.code_noise * torch.randn_like(h)
            h = torch.sigmoid(h)
        return h

    @torch.no_grad()
    def binary_codes(self, x: Any, batch_size: int = 10_000) -> torch.Tensor:
        """1[code input > 0] (= 1[z > 1/2] without noise), (n, bits) bool, for at least one
        row of ``x``, in batches of ``batch_size`` rows."""
        x = check_nonempty(self.check_input(x), "x")
        check_positive_int(batch_size, "batch_size")
        was = self.training
        self.eval()
        try:
            return torch.cat(
                [self.encode(x[i : i + batch_size]) > 0.5 for i in range(0, len(x), batch_size)]
            )
        finally:
            self.train(was)


def code_saturation(probabilities: torch.Tensor) -> float:
    """Fraction of code units within 0.1 of 0 or 1 (how binary the codes are)."""
    p = torch.as_tensor(probabilities)
    return float(((p < 0.1) | (p > 0.9)).float().mean())


def evaluate_codes(
    query_codes: torch.Tensor,
    item_codes: torch.Tensor,
    relevant: torch.Tensor,
    radius: int = 2,
    chunk: int = 100,
) -> dict[str, Any]:
    """mAP, precision within ``radius`` and the precision-recall curve of one code set, the
    queries taken ``chunk`` at a time (each metric is a mean over queries)."""
    q = _check_codes(query_codes, "query_codes")
    n_bits = q.shape[1]
    total = {"map": 0.0, f"precision_r{radius}": 0.0}
    precision = torch.zeros(n_bits + 1, dtype=torch.float64)
    recall = torch.zeros_like(precision)
    for start in range(0, q.shape[0], chunk):
        part = slice(start, start + chunk)
        d = hamming_distances(q[part], item_codes)
        rel = torch.as_tensor(relevant[part]).bool()
        w = d.shape[0]
        total["map"] += w * mean_average_precision(d, rel)
        total[f"precision_r{radius}"] += w * precision_at_radius(d, rel, radius)
        curve = precision_recall_by_radius(d, rel, n_bits)
        precision += w * torch.tensor(curve["precision"], dtype=torch.float64)
        recall += w * torch.tensor(curve["recall"], dtype=torch.float64)
    n = q.shape[0]
    return {
        **{k: v / n for k, v in total.items()},
        "pr_curve": {
            "radius": list(range(n_bits + 1)),
            "precision": (precision / n).tolist(),
            "recall": (recall / n).tolist(),
        },
    }


__all__: Sequence[str] = (
    "AddressTable",
    "HashingAutoencoder",
    "LinearHasher",
    "ball_masks",
    "code_saturation",
    "evaluate_codes",
    "hamming_distances",
    "hamming_ranking",
    "itq",
    "linear_scan",
    "mean_average_precision",
    "pack_codes",
    "pca_sign",
    "precision_at_radius",
    "precision_recall_by_radius",
    "quantization_loss",
    "random_hyperplanes",
    "relevance_from_labels",
)
