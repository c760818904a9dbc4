"""Recipe ``pixelrnn``: PixelRNN (Row LSTM or Diagonal BiLSTM) on binary images, trained by
maximum likelihood.

``ebmlab train pixelrnn --data mnist --eval`` (stochastically binarized MNIST by default;
``--layer row`` for the Row LSTM, ``--layer diagonal`` for the Diagonal BiLSTM).

As for PixelCNN (same factorization, same evaluation and figures, from the ``pixelcnn``
recipe): the exact test log-likelihood in nats per image over the whole test set (tag
``"exact"``) with its standard error, the training log-likelihood on up to 2,000 training images,
exact samples drawn pixel by pixel, and exact completions of the bottom half of test images.

Published figures (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", Table 4,
stochastically binarized MNIST): Diagonal BiLSTM, 7 layers, h = 16: 79.20 nats; 1 layer, h = 32:
80.75 nats; PixelCNN: 81.30 nats.
"""

from __future__ import annotations

import torch

from ...models.pixelrnn import LSTM_LAYERS, PixelRNN
from ...objectives.likelihood import MaximumLikelihood
from ..recipes import RECIPES, Context, Option, Recipe, register
from .autoregressive import _evaluate, _figures


def _build(x_train: torch.Tensor, ctx: Context) -> tuple[PixelRNN, MaximumLikelihood]:
    if ctx.image_shape is None:
        raise ValueError(
            f"data: pixelrnn models images; {ctx.data_name!r} has no image shape "
            "(use digits, mnist, fashion-mnist or binarized-mnist)"
        )
    o = ctx.options
    model = PixelRNN(
        list(ctx.image_shape),
        hidden=o["hidden"],
        n_layers=o["layers"],
        layer=o["layer"],
        first_kernel=o["first_kernel"],
    )
    model.check_images(x_train[:1000], "x_train")
    return model, MaximumLikelihood()


register(
    Recipe(
        name="pixelrnn",
        summary="PixelRNN (Row LSTM or Diagonal BiLSTM): exact autoregressive likelihood",
        build=_build,
        evaluate=_evaluate,
        figures=_figures,
        binarize="stochastic",
        options=(
            Option(
                "hidden", int, 16, "LSTM state features h per pixel (maps of 2h between layers)"
            ),
            Option("layers", int, 7, "LSTM layers (residual)"),
            Option(
                "layer",
                str,
                "diagonal",
                "diagonal: Diagonal BiLSTM, every earlier pixel in context; row: Row LSTM, a "
                "triangular context, about 6x cheaper per image on CPU",
                LSTM_LAYERS,
            ),
            Option("first_kernel", int, 7, "kernel size of the first, mask-A convolution (odd)"),
        ),
        # PixelCNN's loop settings: the same likelihood, the same kind of budget
        train_defaults=dict(RECIPES["pixelcnn"].train_defaults),
        demo={
            "data": "digits",
            "options": {"hidden": 8, "layers": 2, "layer": "diagonal", "first_kernel": 5},
            "epochs": 5,
            "batch_size": 32,
            "lr": 3e-3,
        },
    )
)
