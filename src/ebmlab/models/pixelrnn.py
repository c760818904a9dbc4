"""PixelRNN: autoregressive models of binary images whose layers are two-dimensional LSTMs.

van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel Recurrent Neural Networks", ICML.
The factorization, exact log-likelihood and pixel-by-pixel sampling are those of PixelCNN
(``ebmlab.models.autoregressive.RasterAutoregressive``):

    p(x) = prod_i p(x_i | x_<i),    p(x_i = 1 | x_<i) = sigmoid(l_i(x_<i)),

and the network that computes the D logits in one pass is, as in the paper (section 3.4):
a 7 x 7 convolution with mask A (the PixelCNN layer, ``MaskedConv2d``), ``n_layers`` LSTM
layers with residual connections, then ReLU, 1 x 1 convolution, ReLU, 1 x 1 convolution to one
logit per pixel. Each LSTM layer reads a map of 2h features and keeps a state of h features per
pixel,

    [o, f, i, g] = sigma(K_ss * h_prev + K_is * x),  c = f . c_prev + i . g,  h = o . tanh(c)

(sigmoid for o, f, i; tanh for g), and adds a 1 x 1 convolution of h back to its input. Two
layers (section 3.1, 3.2):

* ``"row"`` (Row LSTM): the map is processed one row at a time, top to bottom; K_is is a 1 x 3
  convolution with mask B over the row (the current and left features), computed for the whole
  map at once, and K_ss a 1 x 3 convolution over the previous row's states. The state at (r, j)
  sees the previous row at columns j - 1 .. j + 1: the context is a triangle above the pixel
  (it misses pixels far to the upper right), as in the paper's Figure 4.
* ``"diagonal"`` (Diagonal BiLSTM, the default): the map is skewed (row r shifted right by r), so
  that each column of the skewed map is a diagonal of the image, and processed one diagonal at a
  time; K_is is 1 x 1 and K_ss a 2 x 1 convolution over the previous diagonal, so the state at
  (r, j) reads the states at (r, j - 1) and (r - 1, j). A second LSTM scans the mirrored image
  (from the right); its output map is shifted down one row, so that it sees only rows above, and
  added to the first. The context is every earlier pixel.

Both directions of the Diagonal BiLSTM run in one loop (grouped convolutions), and both layers
run H (Row) or H + W - 1 (Diagonal) small steps per layer: training is parallel over the batch
and the pixels of a row or diagonal, not over the rows.

Energy convention: ``energy(x) = -log p(x)``, so log Z = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import ImageShape, Integral, OneOf, validate
from .autoregressive import (
    ODD_KERNEL,
    MaskedConv2d,
    RasterAutoregressive,
    horizontal_mask,
    raster_mask,
)

LSTM_LAYERS = ("diagonal", "row")


# ----- skewing ------------------------------------------------------------------------------------
def skew(x: torch.Tensor) -> torch.Tensor:
    """(batch, C, H, W) -> (batch, C, H, H + W - 1), row r shifted right by r (zeros elsewhere):
    ``skew(x)[..., r, r + j] = x[..., r, j]``. Column c of the result is the diagonal
    {(r, c - r)} of the image."""
    b, c, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, c, h * (w + h))
    return flat[..., : h * (w + h - 1)].reshape(b, c, h, w + h - 1)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """The inverse of ``skew`` for images of ``width`` columns: (batch, C, H, H + W - 1) ->
    (batch, C, H, W), ``out[..., r, j] = x[..., r, r + j]``."""
    b, c, h, length = x.shape
    flat = F.pad(x.reshape(b, c, h * length), (0, h))
    return flat.reshape(b, c, h, length + 1)[..., :width]


def lstm_update(
    gates: torch.Tensor, cell: torch.Tensor, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from the pre-activations ``gates`` = [o, f, i, g] stacked along ``dim``:
    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c'); returns (h', c')."""
    o, f, i, g = gates.unbind(dim)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


# ----- layers -------------------------------------------------------------------------------------
def _uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, the default of torch's linear layers."""
    bound = fan_in**-0.5
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class RowLSTMLayer(nn.Module):
    """Row LSTM on a (batch, 2h, H, W) map, with a residual 1 x 1 convolution back to 2h.

    K_ss, the 1 x 3 convolution over the previous row, is one matrix product per row on the
    states of the columns j - 1, j, j + 1 side by side (zeros beyond the borders)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        # mask B over the row: the current feature (which sees only earlier pixels) and its left
        self.input_to_state = MaskedConv2d(channels, 4 * hidden, horizontal_mask(3, True))
        self.state_to_state = _uniform((3 * hidden, 4 * hidden), 3 * hidden)
        self.out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, rows, width = x.shape
        hid = self.hidden
        # rows first, then (batch, column) pairs: every step reads one contiguous block
        # (unbound once: indexing each row would make its backward write a zero map per row)
        pre = self.input_to_state(x).permute(2, 0, 3, 1).reshape(rows, b * width, 4 * hid)
        pre_rows = pre.unbind(0)
        h = x.new_zeros(b, width, hid)
        c = x.new_zeros(b * width, hid)
        states = []
        for r in range(rows):
            padded = F.pad(h, (0, 0, 1, 1))  # zero states left of column 0 and right of W - 1
            around = torch.cat([padded[:, :-2], h, padded[:, 2:]], dim=-1).reshape(b * width, -1)
            gates = torch.addmm(pre_rows[r], around, self.state_to_state).view(b * width, 4, hid)
            out, c = lstm_update(gates, c, dim=1)
            states.append(out)
            h = out.view(b, width, hid)
        maps = torch.stack(states).view(rows, b, width, hid).permute(1, 3, 0, 2)
        return x + self.out(maps)


class DiagonalBiLSTMLayer(nn.Module):
    """Diagonal BiLSTM on a (batch, 2h, H, W) map, with a residual 1 x 1 convolution back to
    2h. Direction 0 scans from the left, direction 1 the mirrored map (from the right); both
    share the loop, one batched matrix product per diagonal for the two directions' K_ss on
    the states of rows r - 1 and r side by side."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        # 1 x 1 input-to-state (mask B of size 1 on one colour channel: the plain 1 x 1), both
        # directions: channels [0, 4h) for the left scan, [4h, 8h) for the right one
        self.input_to_state = nn.Conv2d(channels, 8 * hidden, 1)
        # 2 x 1 over the previous diagonal, per direction: (state of row r - 1, state of row r)
        self.state_to_state = _uniform((2, 2 * hidden, 4 * hidden), 2 * hidden)
        self.out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, rows, width = x.shape
        hid = self.hidden
        length = rows + width - 1
        pre = self.input_to_state(x)
        # the right scan is the left scan of the mirrored map (a 1 x 1 convolution commutes
        # with the mirror)
        pre = torch.cat([pre[:, : 4 * hid], pre[:, 4 * hid :].flip(-1)], dim=1)
        # diagonals first, then (direction, row, batch): every step reads one contiguous block
        pre = skew(pre).view(b, 2, 4 * hid, rows, length).permute(4, 1, 3, 0, 2)
        diagonals = pre.reshape(length, 2, rows * b, 4 * hid).unbind(0)
        h = x.new_zeros(2, rows, b, hid)
        c = x.new_zeros(2, rows * b, hid)
        states = []
        for diagonal in diagonals:
            above = F.pad(h, (0, 0, 0, 0, 1, 0))[:, :rows]  # row r - 1 (zeros above row 0)
            pair = torch.cat([above, h], dim=-1).view(2, rows * b, 2 * hid)
            gates = torch.baddbmm(diagonal, pair, self.state_to_state).view(2, rows * b, 4, hid)
            out, c = lstm_update(gates, c, dim=2)
            states.append(out)
            h = out.view(2, rows, b, hid)
        # (length, 2, rows, b, hid) -> (b, 2 * hid, rows, length)
        maps = torch.stack(states).view(length, 2, rows, b, hid).permute(3, 1, 4, 2, 0)
        maps = unskew(maps.reshape(b, 2 * hid, rows, length), width)
        left, right = maps[:, :hid], maps[:, hid:].flip(-1)
        # shifted down one row: the right scan at (r, j) saw (r, j + 1 ...), later pixels
        right = F.pad(right, (0, 0, 1, 0))[:, :, :rows]
        return x + self.out(left + right)


# ----- the model ----------------------------------------------------------------------------------
class PixelRNN(RasterAutoregressive):
    """PixelRNN over binary images of shape ``image_shape``, flattened in raster order.

    Args:
        image_shape: [H, W].
        hidden: h, the LSTM state features per pixel (the maps between layers have 2h).
        n_layers: LSTM layers (the paper's MNIST model: 7 Diagonal BiLSTM layers, h = 16).
        layer: "diagonal" (Diagonal BiLSTM, every earlier pixel in context) or "row" (Row LSTM,
            a triangular context).
        first_kernel: size of the first, mask-A convolution (odd; 7 in the paper).

    Data are (batch, H * W) tensors of 0/1, as ``ebmlab.data.load(..., binarize=...)`` returns.
    """

    @validate(
        image_shape=ImageShape(),
        hidden=Integral(1),
        n_layers=Integral(1),
        layer=OneOf(*LSTM_LAYERS),
        first_kernel=ODD_KERNEL,
    )
    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        hidden: int = 16,
        n_layers: int = 7,
        layer: str = "diagonal",
        first_kernel: int = 7,
    ) -> None:
        super().__init__()
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.n_visible = self.image_shape[0] * self.image_shape[1]
        self.layer = layer
        channels = 2 * hidden
        self.first = MaskedConv2d(1, channels, raster_mask(first_kernel, include_centre=False))
        block = DiagonalBiLSTMLayer if layer == "diagonal" else RowLSTMLayer
        self.layers = nn.ModuleList([block(channels, hidden) for _ in range(n_layers)])
        # 1 x 1 output layers: per pixel, so causal
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
        )

    def _logit_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (batch, h, W) for images (batch, 1, h, W); any height h works, since no layer
        looks down: cropping the bottom rows leaves the logits of the rows kept unchanged."""
        features = self.first(2.0 * images - 1.0)  # +-1, so the zero padding differs from both
        for layer in self.layers:
            features = layer(features)
        return self.head(features)[:, 0]
