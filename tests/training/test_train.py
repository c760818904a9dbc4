import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ebmlab
from ebmlab.io import load_checkpoint, read_checkpoint
from ebmlab.models import BernoulliRBM, DiagonalGaussian
from ebmlab.objectives import MaximumLikelihood, Objective
from ebmlab.training import TrainConfig, TrainingDiverged, train
from ebmlab.training.logging import stage_seconds

HERE = Path(__file__).parent


class NoisyFreeEnergy(Objective):
    """A stochastic objective (draws from the sampler generator every step), to check that
    resume restores the sampling stream too."""

    def loss(self, model, batch, generator):
        noise = torch.rand(batch.shape, generator=generator) < 0.5
        v_neg = noise.to(batch.dtype)
        return model.free_energy(batch).mean() - model.free_energy(v_neg).mean(), {}


def binary_data(n=50, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) < 0.3).float()


def test_maximum_likelihood_converges_to_sample_moments():
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1)) * 2 + 3
    result = train(
        DiagonalGaussian(2),
        MaximumLikelihood(),
        x,
        TrainConfig(epochs=500, batch_size=200, lr=0.05, seed=0, progress=False),
    )
    model = result.model
    torch.testing.assert_close(model.mu.detach(), x.mean(0), atol=1e-2, rtol=0)
    torch.testing.assert_close(
        torch.exp(model.log_sigma.detach()), x.std(0, unbiased=False), atol=2e-2, rtol=0
    )


def test_resume_equals_uninterrupted(tmp_path):
    x = binary_data()
    cfg = dict(
        batch_size=16,
        lr=0.05,
        optimizer="sgd",
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_epochs=1,
        schedule="linear",
        seed=3,
        progress=False,
    )
    full = train(
        BernoulliRBM(6, 4, seed=0),
        NoisyFreeEnergy(),
        x,
        TrainConfig(epochs=4, **cfg),
        tmp_path / "full",
    )

    def interrupt(model, epoch):
        if epoch == 2:  # killed during the third epoch, after the checkpoint of the second
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(
            BernoulliRBM(6, 4, seed=0),
            NoisyFreeEnergy(),
            x,
            TrainConfig(epochs=4, **cfg),
            tmp_path / "part",
            epoch_callback=interrupt,
        )
    assert load_checkpoint(tmp_path / "part").meta["meta"]["train_state"]["epoch"] == 2
    resumed = train(
        BernoulliRBM(6, 4, seed=0),
        NoisyFreeEnergy(),
        x,
        TrainConfig(epochs=4, **cfg),
        tmp_path / "part",
        resume=True,
    )
    for name, p in full.model.named_parameters():
        assert torch.equal(p, dict(resumed.model.named_parameters())[name]), name
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(steps)
    assert resumed.step == full.step == 4 * 4
    # the epochs' clock goes on from the interrupted part: seconds count the whole run
    records = [json.loads(line) for line in lines if json.loads(line)["kind"] == "epoch"]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds) and seconds[2] > seconds[1] > 0
    assert stage_seconds(tmp_path / "part") == {"None": seconds[-1]}


def test_nan_guard_names_step_and_keeps_last_checkpoint(tmp_path):
    class PoisonAt(Objective):
        def __init__(self, at: int = 5):
            super().__init__()
            self.at = at
            self.calls = 0

        def loss(self, model, batch, generator):
            self.calls += 1
            value = -model.log_prob(batch).mean()
            return (value * float("nan") if self.calls == self.at else value), {}

    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(epochs=3, batch_size=20, lr=0.01, progress=False)
    with pytest.raises(TrainingDiverged, match=r"step 5 .*loss is nan") as info:
        train(DiagonalGaussian(2), PoisonAt(), x, cfg, tmp_path)
    assert info.value.quantity == "loss"
    ckpt = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert ckpt.meta["meta"]["train_state"]["step"] == 4  # end of epoch 2, the last good one
    assert all(torch.isfinite(p).all() for p in ckpt.model.parameters())
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "diverged" and last["step"] == 5


def test_nan_parameter_is_reported_by_name():
    x = torch.randn(8, 2)

    class BigGradient(Objective):
        def loss(self, model, batch, generator):
            return model.mu.sum() * 3e38, {}  # gradient 3e38, times lr 10: overflows float32

    with pytest.raises(TrainingDiverged, match="parameter 'mu'"):
        train(
            DiagonalGaussian(2),
            BigGradient(),
            x,
            TrainConfig(epochs=1, batch_size=8, lr=10.0, optimizer="sgd", progress=False),
        )


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="warp")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_ddp_two_processes_match_single_process(tmp_path):
    sys.path.insert(0, str(HERE))
    import ddp_worker

    single = train(
        DiagonalGaussian(3),
        MaximumLikelihood(),
        ddp_worker.data(),
        ddp_worker.config(),
        tmp_path / "single",
    )
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)]),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(HERE / "ddp_worker.py"),
            str(tmp_path / "ddp"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_model = ebmlab.load(tmp_path / "ddp" / "checkpoint.safetensors")
    for name, p in single.model.named_parameters():
        torch.testing.assert_close(
            dict(ddp_model.named_parameters())[name], p, atol=1e-6, rtol=1e-6
        )
    # only rank 0 wrote: one checkpoint, one metrics file, no stray temporary files
    assert sorted(f.name for f in (tmp_path / "ddp").iterdir()) == [
        "checkpoint.safetensors",
        "metrics.jsonl",
    ]


def test_a_time_budget_stops_training_and_the_schedule_follows_the_clock(tmp_path, monkeypatch):
    """With ``max_minutes`` the loop stops once the budget is spent (the run counts as finished,
    its checkpoint records the seconds) and a cosine schedule reaches its end on the clock."""
    import ebmlab.training.loop as loop

    ticks = iter(range(10**6))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(ticks)))  # 1 s per call
    config = TrainConfig(
        epochs=50, batch_size=10, lr=0.1, schedule="cosine", max_minutes=0.5, progress=False
    )
    result = train(BernoulliRBM(6, 4, seed=0), NoisyFreeEnergy(), binary_data(), config, tmp_path)
    total = 50 * 5
    assert 0 < result.step < total
    assert "time budget of 0.5 minutes" in result.history[-1]["stopped"]
    document, _ = read_checkpoint(tmp_path / "checkpoint.safetensors")
    state = document["meta"]["train_state"]
    assert state["epoch"] == 50 and 30.0 <= state["seconds"] < 32.0
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in steps if r.get("kind") == "step"]
    assert lrs[-1] < 0.1 * 0.1  # the clock, not the step count (5% of the steps), ended it
    assert config.lr_factor(result.step, total, 15.0) == pytest.approx(0.5)
