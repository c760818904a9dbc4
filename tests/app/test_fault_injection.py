"""kill -9 at any point of a training run with restarts, then ``--resume``: the run ends with the
parameters, chains and buffers of the uninterrupted run, bit for bit.

Each case runs ``ebmlab train`` in a subprocess (``fault_driver.py``) whose first attempt
diverges at a fixed optimizer step, so that ``--restarts 1`` restarts it (half the learning
rate, a new seed, the objective's remedies), and which kills itself with SIGKILL at the point
under test: before an optimizer step, inside an atomic file write (checkpoint or config), right
after a restart was recorded, or during the restarted attempt. The killed run is then resumed
(or, when it died before its config was written, started again) and its final checkpoint is
compared with the uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebmlab import io

DRIVER = Path(__file__).with_name("fault_driver.py")

#: family -> (command line, the step at which the first attempt diverges, steps in the run)
RUNS = {
    "rbm": (["train", "rbm", "--data", "digits", "--hidden", "16", "--epochs", "3"], 40, 45),
    "ebm": (["train", "ebm", "--data", "8gaussians", "--hidden", "32", "--epochs", "2"], 120, 158),
}


def _run(family: str, out: Path, kill: str, resume: bool = False) -> subprocess.CompletedProcess:
    argv, diverge, _ = RUNS[family]
    if resume:
        argv = ["train", family, "--resume"]
    command = [sys.executable, str(DRIVER), str(diverge), kill, *argv]
    command += ["--out", str(out), "--restarts", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _state(out: Path) -> dict[str, torch.Tensor]:
    _, tensors = io.read_checkpoint(out / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "objective."))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of each family (it restarts once)."""
    states = {}
    for family in RUNS:
        out = tmp_path_factory.mktemp(f"reference-{family}")
        done = _run(family, out, "none")
        assert done.returncode == 0, done.stderr
        assert "restarts.json" in os.listdir(out)
        states[family] = _state(out)
    return states


def _killed_then_resumed(family: str, kill: str, out: Path) -> dict[str, torch.Tensor]:
    killed = _run(family, out, kill)
    assert killed.returncode == -signal.SIGKILL, (kill, killed.returncode, killed.stderr[-2000:])
    resumed = _run(family, out, "none", resume=(out / "config.json").exists())
    assert resumed.returncode == 0, (kill, resumed.stderr[-2000:])
    assert not list(out.glob(".*.tmp")), "temporary files of the killed write are left"
    return _state(out)


def _assert_same(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], kill: str):
    assert state.keys() == expected.keys(), kill
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), f"{name} differs after kill at {kill}"


@pytest.mark.parametrize(
    "family, kill",
    [
        ("rbm", "write:2"),  # inside the first checkpoint's write
        ("rbm", "restart"),  # right after the restart was recorded
        ("rbm", "restarted-step:43"),  # during the restarted attempt
        ("ebm", "restart"),
    ],
)
def test_killed_and_resumed_runs_end_as_the_uninterrupted_run(family, kill, reference, tmp_path):
    _assert_same(_killed_then_resumed(family, kill, tmp_path / "run"), reference[family], kill)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(RUNS))
@pytest.mark.parametrize("seed", range(4))
def test_kill_at_random_points(family, seed, reference, tmp_path):
    """Random kill points: any step of either attempt, or any file write (including before
    the first checkpoint)."""
    rng = random.Random(f"{family}-{seed}")
    _, diverge, total = RUNS[family]
    kill = rng.choice(
        [
            f"step:{rng.randint(1, diverge)}",
            f"restarted-step:{rng.randint(diverge, total)}",
            f"write:{rng.randint(1, 5)}",
        ]
    )
    _assert_same(_killed_then_resumed(family, kill, tmp_path / "run"), reference[family], kill)
