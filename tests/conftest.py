"""Test-suite settings applied before torch is imported."""

import os
from pathlib import Path

# OpenMP threads that spin while waiting make loop-heavy tests crawl when the cores are shared
# (CI runners, parallel jobs); a passive wait policy costs nothing when they are not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _find_shared_data() -> str | None:
    """The offline dataset copies: $EBMLAB_TEST_DATA, else shared/data beside the checkout."""
    root = Path(__file__).resolve().parents[1]
    candidates = [
        os.environ.get("EBMLAB_TEST_DATA"),
        root.parent / "shared" / "data",
        root / "shared" / "data",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist").is_dir():
            return str(candidate)
    return None


# tests never touch the network; MNIST and friends come from the offline copies
os.environ["EBMLAB_OFFLINE"] = "1"
_shared = _find_shared_data()
if _shared is not None:
    os.environ.setdefault("EBMLAB_TEST_DATA", _shared)
    os.environ.setdefault("EBMLAB_DATA", _shared)
