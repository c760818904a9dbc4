"""Semantic hashing: address table, Hamming ball and ranking, metrics, baselines, the model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ebmlab.models.hashing import (
    AddressTable,
    HashingAutoencoder,
    ball_masks,
    hamming_distances,
    hamming_ranking,
    itq,
    linear_scan,
    mean_average_precision,
    pack_codes,
    pca_sign,
    precision_at_radius,
    precision_recall_by_radius,
    quantization_loss,
    random_hyperplanes,
)


def _codes(n: int, bits: int, seed: int) -> torch.Tensor:
    return torch.rand(n, bits, generator=torch.Generator().manual_seed(seed)) < 0.5


def test_pack_codes_is_a_bijection_up_to_64_bits():
    c = _codes(500, 64, 0)
    keys = pack_codes(c)
    assert keys.dtype == np.int64
    unpacked = (keys.view(np.uint64)[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    assert np.array_equal(unpacked.astype(bool), c.numpy())


def test_hamming_distances_match_counting():
    a, b = _codes(7, 20, 1), _codes(9, 20, 2)
    d = hamming_distances(a, b)
    expected = (a[:, None, :] != b[None, :, :]).sum(-1)
    assert torch.equal(d, expected)
    order = hamming_ranking(a, b)
    assert (torch.gather(d, 1, order).diff(dim=1) >= 0).all()


def test_ball_masks_count_is_the_binomial_sum():
    for bits, r in [(32, 2), (16, 3), (8, 8)]:
        masks = ball_masks(bits, r)
        assert len(masks) == sum(math.comb(bits, j) for j in range(r + 1))
        assert len(set(masks.tolist())) == len(masks)
        assert max(bin(int(m) & (2**bits - 1)).count("1") for m in masks) == r


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_address_table_ball_equals_linear_scan(bits):
    # clustered codes, so that balls hold many items at every distance up to the radius
    centres = _codes(20, bits, 3)
    g = torch.Generator().manual_seed(4)
    items = centres[torch.randint(20, (3000,), generator=g)]
    items = items ^ (torch.rand(items.shape, generator=g) < 1.5 / bits)
    table = AddressTable(items)
    keys = pack_codes(items)
    queries = torch.cat([items[:30], _codes(10, bits, 5)])
    for radius in (0, 1, 2, 3):
        for q in queries:
            found = table.ball(q, radius)
            assert np.array_equal(found, linear_scan(q, items, radius))
            assert np.array_equal(found, linear_scan(q, keys, radius))
    assert sum(len(v) for v in table.table.values()) == len(items)


def test_metrics_on_a_hand_computed_case():
    d = torch.tensor([[0, 1, 1, 3]])
    rel = torch.tensor([[True, False, True, True]])
    # ranking 0,1,2,3 -> relevant at ranks 1,3,4: AP = (1 + 2/3 + 3/4) / 3
    assert mean_average_precision(d, rel) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert precision_at_radius(d, rel, 1) == pytest.approx(2 / 3)
    assert precision_at_radius(torch.tensor([[5, 6]]), torch.tensor([[True, True]]), 2) == 0.0
    curve = precision_recall_by_radius(d, rel, n_bits=3)
    assert curve["precision"] == pytest.approx([1.0, 2 / 3, 2 / 3, 3 / 4])
    assert curve["recall"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0])


def test_perfect_codes_score_one_and_random_codes_score_the_base_rate():
    labels = torch.arange(400) % 4
    class_codes = _codes(4, 32, 6)
    codes = class_codes[labels]
    rel = labels[:, None] == labels[None, :]
    d = hamming_distances(codes, codes)
    assert mean_average_precision(d, rel) == pytest.approx(1.0)
    assert precision_at_radius(d, rel) == pytest.approx(1.0)
    noise = hamming_distances(_codes(400, 32, 7), _codes(400, 32, 8))
    # random codes: mAP near the base rate 1/4 (a few standard errors)
    assert abs(mean_average_precision(noise, rel) - 0.25) < 0.03


def _clustered_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 30, generator=g) * 3
    labels = torch.randint(6, (900,), generator=g)
    x = centres[labels] + torch.randn(900, 30, generator=g)
    return x, labels


def test_itq_rotation_is_orthogonal_and_lowers_the_quantization_loss():
    x, _ = _clustered_data()
    hasher, rotation, losses = itq(x, 8, iterations=30, seed=1)
    eye = torch.eye(8, dtype=torch.float64)
    assert torch.allclose(rotation.T @ rotation, eye, atol=1e-10)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0]
    xd = x.double()
    v = (xd - hasher.mean) @ pca_sign(x, 8).projection
    # the learned rotation quantizes better than none (PCA-sign) and than the random start
    assert quantization_loss(v, rotation) < quantization_loss(v, eye)
    assert hasher.codes(x).shape == (900, 8)


def test_baselines_retrieve_clusters_better_than_chance():
    x, labels = _clustered_data(2)
    rel = labels[:100, None] == labels[None, :]
    for hasher in (pca_sign(x, 16), random_hyperplanes(x, 16, 0), itq(x, 16)[0]):
        d = hamming_distances(hasher.codes(x[:100]), hasher.codes(x))
        assert mean_average_precision(d, rel) > 0.5, hasher.name


def test_hashing_autoencoder_noise_only_in_training_and_codes_binary():
    model = HashingAutoencoder([12, 6, 4], code_noise=4.0, seed=0)
    x = torch.rand(5, 12)
    model.eval()
    assert torch.equal(model.encode(x), model.encode(x))
    model.train()
    assert not torch.equal(model.encode(x), model.encode(x))
    codes = model.binary_codes(x)
    assert codes.dtype == torch.bool and codes.shape == (5, 4)
    assert model.training
    with pytest.raises(ValueError, match="code_noise"):
        HashingAutoencoder([12, 4], code_noise=-1.0)
    with pytest.raises(ValueError, match="bits"):
        AddressTable(torch.zeros(3, 65, dtype=torch.bool))
    with pytest.raises(ValueError, match="binary"):
        pack_codes(torch.full((2, 3), 2))
