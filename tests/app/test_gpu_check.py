"""The GPU check (``ebmlab bench --gpu``, ``make gpu-check``) runs here as its dry run: the same
code on the CPU with tiny sizes, so that it cannot rot on machines without a GPU; its graph-safe
Langevin step is the library's ULA step; without CUDA the real check says why it cannot run."""

from __future__ import annotations

import json

import pytest
import torch

from ebmlab.app import bench, cli
from ebmlab.app.benchmarks.bench_samplers import eight_gaussians_energy
from ebmlab.samplers import Langevin
from ebmlab.training import PRECISIONS


def test_the_dry_run_measures_every_case_against_the_matmul_peak(capsys):
    assert cli.main(["bench", "--gpu", "--dry-run"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = {r["benchmark"] for r in records}
    assert kinds == {"gpu-rbm-pcd1", "gpu-ais", "gpu-langevin-8gaussians", "gpu-training-precision"}
    assert not [r for r in records if "error" in r]
    rbm = [r for r in records if r["benchmark"] == "gpu-rbm-pcd1"]
    assert {(r["mode"], r["precision"]) for r in rbm} >= {
        (mode, precision)
        for mode in ("eager", "cuda-graph")
        for precision in bench.TRAIN_PRECISIONS
    }
    for r in records:
        assert r["dry_run"] is True and r["device"] == "cpu"
        if r["benchmark"] == "gpu-training-precision":
            assert r["examples_per_second"] > 0
            continue  # networks timed through the training loop, not against the matmul
        assert r["matmul_peak_gflops"] > 0
        if "fraction_of_same_shape_matmul" in r:
            assert r["fraction_of_same_shape_matmul"] > 0
    training = [r for r in records if r["benchmark"] == "gpu-training-precision"]
    assert {(r["case"], r["precision"]) for r in training} == {
        (case, precision) for case in ("pixelcnn-tiny", "vae-tiny") for precision in PRECISIONS[:2]
    }
    (ais,) = [r for r in records if r["benchmark"] == "gpu-ais"]
    assert ais["log_weights_dtype"] == "torch.float64"


def test_without_cuda_the_check_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"--gpu: no CUDA device here .*--dry-run"):
        bench.gpu_check()


def test_the_check_runs_only_the_cases_named(capsys):
    assert cli.main(["bench", "--gpu", "--dry-run", "ais"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["benchmark"] for r in records] == ["gpu-ais"]
    with pytest.raises(ValueError, match=r"names: the GPU check has the cases rbm, ais.*got rmb"):
        bench.gpu_check(dry_run=True, only=["rmb"])


def test_records_come_as_each_case_finishes_and_a_failed_case_reports_its_error(monkeypatch):
    """A check cut short by its time limit keeps what it printed; on the GPU one failing case
    does not stop the others."""
    ran = []

    def fine(device, size):
        ran.append("fine")
        return [{"benchmark": "fine"}]

    def broken(device, size):
        ran.append("broken")
        raise RuntimeError("capture failed")

    monkeypatch.setattr(bench, "GPU_CASES", {"fine": fine, "broken": broken, "again": fine})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
    records = bench.gpu_check()
    assert ran == []  # nothing has run before the first record is asked for
    assert next(records)["benchmark"] == "fine" and ran == ["fine"]
    rest = list(records)
    assert rest[0]["benchmark"] == "gpu-broken"
    assert rest[0]["error"] == "RuntimeError: capture failed"
    assert rest[1]["benchmark"] == "fine" and rest[1]["machine"] == "a GPU"
    assert ran == ["fine", "broken", "fine"]
    with pytest.raises(RuntimeError, match="capture failed"):  # the dry run raises
        list(bench.gpu_check(dry_run=True, only=["broken"]))


def test_the_graph_safe_langevin_step_is_the_kernels_step(device):
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)).to(device)
    x = x0.clone()
    bench.ula_step(x, eight_gaussians_energy, 0.01, torch.Generator(device=device).manual_seed(3))
    want, _ = Langevin(step_size=0.01).step(
        x0, eight_gaussians_energy, torch.Generator(device=device).manual_seed(3)
    )
    torch.testing.assert_close(x, want)
    bad = x0.clone()
    bad[4] = float("nan")  # a non-finite row stays where it was
    bench.ula_step(bad, eight_gaussians_energy, 0.01, torch.Generator(device=device))
    assert torch.isnan(bad[4]).all() and torch.isfinite(bad[torch.arange(50) != 4]).all()


def test_graphed_runs_the_step_repeat_times_off_cuda():
    calls = []
    bench.graphed(lambda: calls.append(1), 5, "cpu")()
    assert len(calls) == 5


def test_the_clock_is_checked():
    with pytest.raises(ValueError, match="clock: expected 'auto', 'wall' or 'cpu'"):
        bench.clock_for("cpu", "sundial")
    assert bench.clock_for("cuda")[0] == "wall"
