"""The precision benchmark's records (tiny sizes: what it reports, not how fast)."""

import pytest
import torch

from ebmlab.app.benchmarks import bench_precision


def test_records_compare_the_two_precisions_of_each_case(monkeypatch):
    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(
        bench_precision,
        "binarized_mnist",
        lambda split, n: (torch.rand(32, 784, generator=g) < 0.13).float(),
    )

    # the benchmark's own case builder: the same initial network for both precisions
    tiny = bench_precision._pixelcnn(channels=4, n_layers=2, first_kernel=7, batch=16)
    monkeypatch.setattr(bench_precision, "CASES", {"tiny-pixelcnn": tiny})
    records = bench_precision.run(quick=True)
    assert [r["impl"] for r in records] == ["ebmlab-train-float32", "ebmlab-train-bfloat16"]
    f32, bf16 = records
    assert f32["speedup_over_float32"] == 1.0
    assert bf16["speedup_over_float32"] == pytest.approx(f32["seconds"] / bf16["seconds"], rel=0.01)
    # the same training in both arithmetics: nearly the same loss
    assert bf16["final_loss"] == pytest.approx(f32["final_loss"], rel=0.02)
