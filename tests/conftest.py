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


# ----- the device the device-taking tests run on --------------------------------------------------
# Tests that take the ``device`` fixture run on the CPU by default and on CUDA with
# ``pytest --device cuda`` (or EBMLAB_TEST_DEVICE=cuda); they carry the ``device`` marker, so that
# ``pytest -m device --device cuda`` is the CUDA subset (``make gpu-check``).
import pytest  # noqa: E402  (after the environment settings above)


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=os.environ.get("EBMLAB_TEST_DEVICE", "cpu"),
        choices=("cpu", "cuda"),
        help="device of the tests that take one (default cpu, or $EBMLAB_TEST_DEVICE)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "device: the test takes the device fixture (--device cpu|cuda)"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def device(request):
    """'cpu', or 'cuda' under --device cuda (skipped, with the reason, where there is no GPU)."""
    import torch

    name = request.config.getoption("--device")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    return name
