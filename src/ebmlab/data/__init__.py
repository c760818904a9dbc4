"""Datasets: image sets (digits, MNIST, Fashion-MNIST, binarized MNIST) and 2-D toy densities.

Image data: ``load(name, split, binarize, data_dir) -> (x, y)`` with x float32 (N, D) in [0, 1].
Files live under ``data_dir`` / ``$EBMLAB_DATA`` / ``~/.cache/ebmlab`` as
``<dataset>/<original file name>``, are checked against the published SHA-256 sums and, when
missing, downloaded (unless ``EBMLAB_OFFLINE=1``).

Toy data: ``toy2d(name, n, seed)`` samples FFJORD's generators (Grathwohl et al. 2019);
``toy2d_log_density(name, x)`` is their exact normalized log density; ``toy2d_grid`` builds the
grid on which models are normalized and compared with the data (KL, log-likelihood in nats).
"""

from __future__ import annotations

from .binarize import BINARIZATIONS, binarize, stochastic_seed
from .files import ENV_DATA_DIR, ENV_OFFLINE, ChecksumError, DatasetNotFoundError, resolve_data_dir
from .images import digits_split_indices, load
from .registry import DATASETS, DatasetInfo, image_shape, is_toy2d, list_datasets
from .toy2d_density import toy2d_log_density
from .toy2d_generators import toy2d
from .toy2d_grid import Grid2D, toy2d_grid

__all__ = [
    "BINARIZATIONS",
    "DATASETS",
    "ENV_DATA_DIR",
    "ENV_OFFLINE",
    "ChecksumError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "Grid2D",
    "binarize",
    "digits_split_indices",
    "image_shape",
    "is_toy2d",
    "list_datasets",
    "load",
    "resolve_data_dir",
    "stochastic_seed",
    "toy2d",
    "toy2d_grid",
    "toy2d_log_density",
]
