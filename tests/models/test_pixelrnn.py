"""PixelRNN (Row LSTM, Diagonal BiLSTM): skewing, the autoregressive property (by autograd and by
perturbing later pixels), each layer's exact context, normalization by enumeration of every 3 x 3
binary image, samples against the enumerated probabilities, cropping invariance (what
pixel-by-pixel sampling relies on), training, bad input. The sampling and completion code is
PixelCNN's (``RasterAutoregressive``), tested in depth in test_autoregressive.py."""

from __future__ import annotations

import pytest
import torch
from test_autoregressive import ALPHA, _all_images, _chi_square_p, _index

import ebmlab
from ebmlab import data
from ebmlab.models.pixelrnn import PixelRNN, skew, unskew
from ebmlab.objectives.likelihood import MaximumLikelihood
from ebmlab.training import TrainConfig, train

LAYERS = ("row", "diagonal")


def _perturbed(model: PixelRNN, seed: int = 0, scale: float = 0.5) -> PixelRNN:
    """Random weights large enough that the distribution is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _model(layer: str, shape=(5, 5), n_layers: int = 2, first_kernel: int = 3, seed: int = 0):
    model = PixelRNN(
        list(shape), hidden=4, n_layers=n_layers, layer=layer, first_kernel=first_kernel
    )
    return _perturbed(model.double(), seed)


def _dependencies(model: PixelRNN) -> torch.Tensor:
    """dep[i, j]: does logit i change with pixel j (autograd, summed over a random batch)?"""
    d = model.n_visible
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(6, d, generator=g, dtype=torch.float64) < 0.5).double().requires_grad_(True)
    rows = []
    for i in range(d):
        (grad,) = torch.autograd.grad(model.logits(x)[:, i].sum(), x)
        rows.append(grad.abs().sum(0) > 0)
    return torch.stack(rows)


# ----- skewing ------------------------------------------------------------------------------------
def test_skew_shifts_row_r_right_by_r_and_unskew_inverts_it():
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    s = skew(x)
    assert s.shape == (2, 3, 4, 8)
    for r in range(4):
        assert torch.equal(s[:, :, r, r : r + 5], x[:, :, r])
        outside = torch.cat([s[:, :, r, :r], s[:, :, r, r + 5 :]], dim=-1)
        assert torch.equal(outside, torch.zeros_like(outside))
    assert torch.equal(unskew(s, 5), x)


# ----- the autoregressive property ----------------------------------------------------------------
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", [(5, 5), (4, 7)])
def test_logit_i_ignores_pixels_from_i_on(layer, shape):
    dep = _dependencies(_model(layer, shape, n_layers=3))
    d = shape[0] * shape[1]
    future = torch.triu(torch.ones(d, d, dtype=torch.bool))  # j >= i
    assert not dep[future].any()


@pytest.mark.parametrize("layer", LAYERS)
def test_changing_pixels_from_i_on_leaves_the_logits_up_to_i_unchanged(layer):
    model = _model(layer, (4, 6), n_layers=2).requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(8, 24, generator=g) < 0.5).double()
    base = model.logits(x)
    for i in (0, 5, 6, 13, 23):
        other = x.clone()
        other[:, i:] = (torch.rand(8, 24 - i, generator=g) < 0.5).double()
        assert not torch.equal(other, x)
        changed = model.logits(other)
        assert torch.equal(changed[:, : i + 1], base[:, : i + 1]), i
        if i < 23:  # a later logit does see the change
            assert not torch.equal(changed[:, i + 1 :], base[:, i + 1 :])


def _row_lstm_context(h: int, w: int, n_layers: int, k: int) -> torch.Tensor:
    """The pixels each logit of a Row LSTM network can see, by following its stencils: the
    first features F_0(r, j) read the k x k mask-A window; in each layer the state S(r, j)
    reads F(r, j - 1), F(r, j) (the 1 x 3 mask-B input-to-state) and S(r - 1, j - 1 .. j + 1)
    (the 1 x 3 state-to-state), and the layer's output is F(r, j) plus S(r, j)."""
    pixels = [[{(r, j)} for j in range(w)] for r in range(h)]
    features = [[set() for _ in range(w)] for _ in range(h)]
    for r in range(h):
        for j in range(w):
            for a in range(-(k // 2), 1):
                for b in range(-(k // 2), k // 2 + 1):
                    if (a < 0 or b < 0) and 0 <= r + a < h and 0 <= j + b < w:
                        features[r][j] |= pixels[r + a][j + b]
    for _ in range(n_layers):
        state = [[set() for _ in range(w)] for _ in range(h)]
        for r in range(h):
            for j in range(w):
                state[r][j] |= features[r][j] | (features[r][j - 1] if j > 0 else set())
                if r > 0:
                    for b in (j - 1, j, j + 1):
                        if 0 <= b < w:
                            state[r][j] |= state[r - 1][b]
        features = [[features[r][j] | state[r][j] for j in range(w)] for r in range(h)]
    seen = torch.zeros(h * w, h * w, dtype=torch.bool)
    for r in range(h):
        for j in range(w):
            for a, b in features[r][j]:
                seen[r * w + j, a * w + b] = True
    return seen


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("first_kernel", [3, 5])
def test_row_lstm_context_is_the_triangle_its_stencils_reach(n_layers, first_kernel):
    """The Row LSTM's context (the paper's Figure 4): a triangle above the pixel, widening by
    one column each way per row up, and a few pixels to the left in its own row; far pixels of
    the rows above (up-left and up-right) are not seen."""
    h, w = 5, 8
    model = _model("row", (h, w), n_layers=n_layers, first_kernel=first_kernel)
    expected = _row_lstm_context(h, w, n_layers, first_kernel)
    assert torch.equal(_dependencies(model), expected)
    # a triangle, not the whole past: (4, 0) misses (0, 7), and (1, 7) misses (1, 0)
    assert not expected[4 * w, 7] and not expected[w + 7, w]


@pytest.mark.parametrize("first_kernel", [3, 5])
def test_diagonal_bilstm_sees_every_earlier_pixel_but_the_end_of_the_row_above(first_kernel):
    """The full context of the paper but one pixel: (r - 1, W - 1), which only the features of
    row r carry (the mask-A kernel of (r, j') reaches it for j' >= W - 1 - k // 2) and which the
    down-shifted right-to-left scan, reading row r - 1, never sees."""
    h, w = 4, 7
    dep = _dependencies(_model("diagonal", (h, w), n_layers=2, first_kernel=first_kernel))
    expected = torch.tril(torch.ones(h * w, h * w, dtype=torch.bool), diagonal=-1)
    for r in range(1, h):
        for j in range(w - 1 - first_kernel // 2):
            expected[r * w + j, (r - 1) * w + w - 1] = False
    assert torch.equal(dep, expected)


@pytest.mark.parametrize("layer", LAYERS)
def test_cropping_the_bottom_rows_leaves_the_rows_kept_unchanged(layer):
    # pixel-by-pixel sampling computes row r on rows 0..r only
    model = _model(layer, (5, 6), n_layers=2).requires_grad_(False)
    x = (torch.rand(3, 1, 5, 6, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    full = model._logit_maps(x)
    for rows in (1, 3):
        assert torch.allclose(model._logit_maps(x[:, :, :rows]), full[:, :rows], atol=1e-12)


# ----- exact likelihood and sampling --------------------------------------------------------------
def _tiny(layer: str, seed: int = 0) -> PixelRNN:
    return _model(layer, (3, 3), n_layers=2, seed=seed).requires_grad_(False)


@pytest.mark.parametrize("layer", LAYERS)
def test_probabilities_sum_to_one_over_all_images(layer):
    model = _tiny(layer)
    log_p = model.log_prob(_all_images(9))
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)
    assert torch.equal(model.energy(_all_images(9)), -log_p)
    assert float(log_p.max() - log_p.min()) > 3.0  # far from uniform: the tests below can fail


@pytest.mark.parametrize("layer", LAYERS)
def test_samples_match_exact_probabilities(layer):
    model = _tiny(layer, seed=2)
    probs = model.log_prob(_all_images(9)).exp()
    samples = model.sample(10_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (10_000, 9)
    counts = torch.bincount(_index(samples), minlength=512)
    assert _chi_square_p(counts, probs) > ALPHA


def test_completion_keeps_the_known_pixels_and_needs_a_raster_prefix():
    # exactness of the shared pixel-by-pixel completion: tests/models/test_autoregressive.py
    model = _tiny("diagonal", seed=5)
    known = torch.tensor([True] * 3 + [False] * 6)
    start = torch.tensor([[0.0, 1.0, 1.0] + [0.0] * 6], dtype=torch.float64).expand(50, 9)
    out = model.complete(start, known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :3], start[:, :3]) and len(set(map(tuple, out.tolist()))) > 1
    with pytest.raises(ValueError, match="PixelRNN completes exactly only"):
        model.complete(start[:2], ~known)


# ----- training, save/load, bad input -------------------------------------------------------------
@pytest.mark.parametrize("layer", LAYERS)
def test_training_raises_the_likelihood_of_binarized_digits(layer, tmp_path):
    x, _ = data.load("digits", "train", binarize="stochastic")
    model = PixelRNN([8, 8], hidden=8, n_layers=1, layer=layer, first_kernel=3)
    with torch.no_grad():
        before = float(model.log_prob(x).mean())
    config = TrainConfig(epochs=2, batch_size=50, lr=5e-3, seed=0, device="cpu", progress=False)
    train(model, MaximumLikelihood(), x, config, tmp_path)
    with torch.no_grad():
        after = float(model.log_prob(x).mean())
    # an untrained network is near log(1/2) per pixel (-44.4); independent pixels fitted to
    # the digits reach -26.8, and 2 epochs of the small network get most of the way there
    assert before < -40 and after > -32, (before, after)
    loaded = ebmlab.load(tmp_path / "checkpoint.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x[:5]), model.log_prob(x[:5]))


def test_bad_arguments_and_data_are_named():
    with pytest.raises(ValueError, match="layer"):
        PixelRNN([4, 4], layer="column")
    with pytest.raises(ValueError, match="first_kernel"):
        PixelRNN([4, 4], first_kernel=4)
    with pytest.raises(ValueError, match="hidden"):
        PixelRNN([4, 4], hidden=0)
    model = PixelRNN([3, 3], hidden=2, n_layers=1)
    with pytest.raises(ValueError, match="x"):
        model.log_prob(torch.full((2, 9), 0.5))
    with pytest.raises(ValueError, match="x"):
        model.log_prob(torch.zeros(2, 8))
