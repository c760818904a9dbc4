"""Training in stages: a run interrupted during pretraining and resumed ends with the parameters
of the uninterrupted run (DBM and deep autoencoder on digits), metrics.jsonl holds every stage,
finished stages are not trained again, and a fresh run never reuses another run's stages."""

from __future__ import annotations

import json

import pytest
import torch

from ebmlab import io
from ebmlab.app.cli import run_family
from ebmlab.app.recipes import get_recipe
from ebmlab.training import TrainConfig, loop

CASES = {
    # family: (options, loop settings, the stage and its step at which the run is killed)
    "dbm": (
        {"layers": "12,6", "pretrain_epochs": 3, "ais_betas": 100, "sample_steps": 5},
        {"epochs": 2, "batch_size": 100, "lr": 0.02},
        ("pretrain2", 30),
    ),
    "autoencoder": (
        {"layers": "16,2", "pretrain_epochs": 3, "pretrain_batch_size": 100},
        {"epochs": 2, "batch_size": 100},
        ("pretrain1", 25),
    ),
}


class Killed(BaseException):
    """Stands in for kill -9: nothing after it runs (not even ``except Exception``)."""


def _run(name: str, out, *, resume: bool = False) -> dict[str, torch.Tensor]:
    options_, settings, _ = CASES[name]
    recipe = get_recipe(name)
    options = {opt.name: opt.default for opt in recipe.options}
    options.update(options_)
    config = TrainConfig(**{**recipe.train_defaults, **settings, "progress": False, "seed": 3})
    run_family(recipe, "digits", options, config, out, resume=resume)
    return io.load(out / "checkpoint.safetensors").state_dict()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_run_killed_during_pretraining_resumes_to_the_same_parameters(
    name, tmp_path, monkeypatch
):
    whole = _run(name, tmp_path / "whole")

    stage, at_step = CASES[name][2]
    real_step = loop._train_step

    def step_then_die(run, batch, epoch, b):
        if run.stage == stage and run.state.step == at_step:
            raise Killed
        return real_step(run, batch, epoch, b)

    monkeypatch.setattr(loop, "_train_step", step_then_die)
    with pytest.raises(Killed):
        _run(name, tmp_path / "cut")
    monkeypatch.setattr(loop, "_train_step", real_step)
    assert not (tmp_path / "cut" / "checkpoint.safetensors").exists()
    resumed = _run(name, tmp_path / "cut", resume=True)

    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0, msg=key)
    stages = [r["stage"] for r in _records(tmp_path / "cut") if r["kind"] == "epoch"]
    expected = [r["stage"] for r in _records(tmp_path / "whole") if r["kind"] == "epoch"]
    assert stages == expected  # every stage, each epoch once, in order
    assert len(set(stages)) == 3  # two pretraining stages and the joint / fine-tuning stage


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_finished_stages_are_restored_not_trained_again(tmp_path, monkeypatch):
    _run("dbm", tmp_path)
    calls = []
    real = loop._train_step

    def counting(run, batch, epoch, b):
        calls.append(run.stage)
        return real(run, batch, epoch, b)

    monkeypatch.setattr(loop, "_train_step", counting)
    _run("dbm", tmp_path, resume=True)
    assert calls == []


def test_a_fresh_run_drops_the_stages_of_an_earlier_run(tmp_path):
    _run("dbm", tmp_path)
    stale = tmp_path / "stages" / "pretrain2.safetensors"
    stamp = stale.stat().st_mtime_ns
    _run("dbm", tmp_path)
    assert stale.stat().st_mtime_ns != stamp  # written again, not reused
    assert (
        sum(r["kind"] == "epoch" for r in _records(tmp_path)) == 3 + 3 + 2
    )  # one run's records only
