"""Read IDX files (the MNIST / Fashion-MNIST container), gzip-compressed.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 =
unsigned byte), the number of dimensions, one big-endian uint32 per dimension, then the data in
C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_UNSIGNED_BYTE = 0x08


def read_idx_gz(path: Path) -> np.ndarray:
    """Decode a gzip-compressed IDX file of unsigned bytes into a read-only uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UNSIGNED_BYTE:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header says shape {shape} but the data size differs")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    array.flags.writeable = False
    return array
