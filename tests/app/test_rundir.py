"""A run directory is one unit: config and checkpoint bound together, one writer at a time,
resume that continues the recorded run, and environment failures as one clear line."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from ebmlab import io
from ebmlab.app import cli, rundir
from ebmlab.app.cli import main


def _toy(run, *extra, epochs=2):
    args = ["train", "gaussian", "--data", "8gaussians", "--epochs", str(epochs)]
    return main([*args, "--out", str(run), "--no-progress", *extra])


def _digits(family, run, *extra):
    return main(["train", family, "--data", "digits", "--out", str(run), "--no-progress", *extra])


# ----- config and checkpoint bound together -------------------------------------------------------
def test_resume_with_another_family_is_refused_and_leaves_the_run_intact(tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("independent", run) == 0
    before = (run / "config.json").read_text()
    assert main(["train", "vae", "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds a independent run, not vae" in err and "ebmlab train independent" in err
    assert (run / "config.json").read_text() == before
    assert main(["eval", str(run), "--json"]) == 0


def test_a_new_run_does_not_overwrite_a_run_without_force(tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("rbm", run, "--hidden", "8", "--epochs", "1") == 0
    assert (run / "filters.png").exists()
    assert _digits("independent", run) == 2
    err = capsys.readouterr().err
    assert "already holds a rbm run on digits" in err and "--force" in err
    assert json.loads((run / "config.json").read_text())["model"] == "rbm"
    assert _digits("independent", run, "--force") == 0
    assert not (run / "filters.png").exists()  # nothing of the replaced run is left
    assert json.loads((run / "config.json").read_text())["model"] == "independent"


def test_a_folder_of_other_files_is_never_a_run_folder_even_with_force(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("important")
    (folder / "sub" / "data.csv").write_text("x")
    for extra in ((), ("--force",)):
        assert _digits("independent", folder, *extra) == 2
        err = capsys.readouterr().err
        assert "is not empty (2 entries: notes.txt, sub)" in err and "holds no ebmlab run" in err
    assert (folder / "notes.txt").read_text() == "important"
    assert (folder / "sub" / "data.csv").exists() and not (folder / "config.json").exists()
    assert _digits("independent", tmp_path / "empty") == 0  # a new or empty folder is fine


def test_an_evaluation_of_the_checkpoint_before_a_resume_is_not_shown_as_the_runs(tmp_path, capsys):
    from ebmlab.app import compare, report

    run = tmp_path / "r"
    assert _digits("rbm", run, "--hidden", "8", "--epochs", "1", "--eval") == 0
    first = json.loads((run / "eval.json").read_text())["test_log_likelihood"]
    assert compare.collect([run])[0]["evaluated"]
    flags = ["--out", str(run), "--resume", "--epochs", "2", "--no-progress"]
    assert main(["train", "rbm", *flags]) == 0  # trains on, no new evaluation
    (record,) = compare.collect([run])
    assert not record["evaluated"] and record["stale_evaluation"]
    assert "test_log_likelihood" not in record
    assert "evaluated before the run went on" in compare.markdown_table([record])
    section = report.section_from_run(run)
    assert "test_log_likelihood" not in section.metrics
    assert any("trained on after its last evaluation" in note for note in section.notes)
    capsys.readouterr()
    assert main(["compare", str(run), "--eval", "--json"]) == 0  # scores the current checkpoint
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["evaluated"] and record["test_log_likelihood"] != first


def test_resume_to_fewer_epochs_than_done_is_refused_and_leaves_the_record(tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("rbm", run, "--hidden", "8", "--epochs", "3") == 0
    before = (run / "config.json").read_text()
    flags = ["--out", str(run), "--resume", "--no-progress"]
    assert main(["train", "rbm", *flags, "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--epochs: " in err and "trained 3 epochs already" in err and "at least 3" in err
    assert (run / "config.json").read_text() == before
    assert main(["train", "rbm", *flags, "--epochs", "4"]) == 0  # on to 4 in all


def test_a_precision_the_device_cannot_run_is_refused_before_the_folder_is_touched(
    tmp_path, capsys
):
    run = tmp_path / "r"
    assert _digits("rbm", run, "--epochs", "1", "--precision", "tf32") == 2
    assert "--precision: 'tf32' runs on CUDA tensor cores only" in capsys.readouterr().err
    assert not run.exists()
    assert _digits("independent", run) == 0  # an earlier run is not replaced by a refused one
    assert _digits("rbm", run, "--epochs", "1", "--precision", "tf32", "--force") == 2
    assert json.loads((run / "config.json").read_text())["model"] == "independent"


def test_resume_refuses_changed_settings_and_names_them(tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("rbm", run, "--hidden", "8", "--epochs", "1") == 0
    flags = ["--out", str(run), "--resume", "--no-progress"]
    for extra, named in [(["--lr", "0.5"], "--lr"), (["--hidden", "9"], "--hidden")]:
        assert main(["train", "rbm", *flags, *extra]) == 2
        err = capsys.readouterr().err
        assert named in err and "--resume continues the run" in err
    # given the values the run recorded, the same flags are accepted
    recorded = json.loads((run / "config.json").read_text())
    same = ["--lr", str(recorded["train"]["lr"]), "--hidden", "8"]
    assert main(["train", "rbm", *flags, *same]) == 0


def test_epochs_on_resume_apply_and_are_recorded(tmp_path, capsys):
    run = tmp_path / "r"
    assert _toy(run, epochs=2) == 0
    assert main(["train", "gaussian", "--out", str(run), "--resume", "--epochs", "3"]) == 0
    assert "--epochs 2 -> 3" in capsys.readouterr().err
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"kind": "resume", "changed": {"epochs": [2, 3]}} in records
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 3


def test_an_edited_config_no_longer_matching_the_checkpoint_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("rbm", run, "--hidden", "8", "--epochs", "1") == 0
    config = json.loads((run / "config.json").read_text())
    config["options"]["hidden"] = 50
    (run / "config.json").write_text(json.dumps(config))
    assert main(["train", "rbm", "--out", str(run), "--resume", "--hidden", "50"]) == 2
    err = capsys.readouterr().err
    assert "does not match the run its checkpoint holds" in err and "--hidden 8" in err


def test_the_checkpoint_carries_the_run_record(tmp_path):
    run = tmp_path / "r"
    assert _toy(run) == 0
    config = json.loads((run / "config.json").read_text())
    record = rundir.checkpoint_record(run)
    assert record is not None and record["run_id"] == config["run_id"]
    assert record["options"] == config["options"] and record["model"] == "gaussian"


def test_a_corrupt_config_is_named(tmp_path, capsys):
    run = tmp_path / "r"
    assert _toy(run) == 0
    (run / "config.json").write_text('{"model": "gaussian", "da')
    assert main(["eval", str(run)]) == 2
    assert "config.json: unreadable or corrupt" in capsys.readouterr().err
    (run / "config.json").write_text('{"model": "gaussian"}')
    assert main(["train", "gaussian", "--out", str(run), "--resume"]) == 2
    assert "incomplete run config" in capsys.readouterr().err


# ----- one writer ---------------------------------------------------------------------------------
def test_a_second_writer_is_kept_out_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        assert _toy(run) == 2
        assert f"being written by process {holder.pid}" in capsys.readouterr().err
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _toy(run) == 0  # the holder is gone: its lock is stale
    assert not (run / ".lock").exists()


def test_temporary_files_of_a_killed_write_are_removed(tmp_path):
    run = tmp_path / "r"
    assert _toy(run) == 0
    leftover = run / ".checkpoint.safetensors.abc123.tmp"
    leftover.write_bytes(b"partial")
    assert main(["train", "gaussian", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert not leftover.exists()


def test_a_torn_last_metrics_line_does_not_block_resume(tmp_path):
    run = tmp_path / "r"
    assert _toy(run, epochs=1) == 0
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "step", "st')  # the process died while appending
    assert main(["train", "gaussian", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)


# ----- environment failures -----------------------------------------------------------------------
def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert _toy(target) == 2
    assert "is a file; expected a directory" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert _toy(folder / "run") == 2
        assert "cannot create" in capsys.readouterr().err
    finally:
        folder.chmod(0o700)


def test_eval_prints_its_metrics_when_the_run_cannot_be_written(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    assert _toy(run) == 0
    capsys.readouterr()

    def read_only(path, value):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(cli, "_write_json", read_only)
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert "could not write" in captured.err
    assert "test_log_likelihood" in json.loads(captured.out)


@pytest.mark.parametrize(
    "failure, said",
    [
        (OSError(errno.ENOSPC, "No space left on device", "RUN/checkpoint"), "no space left"),
        (MemoryError(), "out of memory"),
        (PermissionError(errno.EACCES, "Permission denied", "RUN/x"), "permission denied"),
    ],
)
def test_environment_failures_are_one_line(failure, said, tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(cli, "run_family", fail)
    assert _toy(tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    assert _toy(run) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_family", interrupted)
    assert main(["train", "gaussian", "--out", str(run), "--resume", "--epochs", "4"]) == 130
    assert f"--out {run} --resume" in capsys.readouterr().err


def test_divergence_message_says_whether_a_good_checkpoint_exists(tmp_path, capsys):
    # lr 1e30 overflows the Gaussian's log-variance within the first epoch: no checkpoint yet
    assert _toy(tmp_path / "early", "--lr", "1e30") == 3
    assert "No checkpoint was written before the divergence" in capsys.readouterr().err
    # scoring that run says it diverged, and does not suggest resuming it
    assert main(["eval", str(tmp_path / "early")]) == 2
    err = capsys.readouterr().err
    assert "training diverged before the first one was written" in err and "--resume" not in err
    assert "--force" in err


def test_divergence_after_the_restarts_are_spent_does_not_suggest_the_same(tmp_path, capsys):
    # each restart halves the learning rate: 1e30 stays far too large after two of them
    assert _toy(tmp_path / "spent", "--lr", "1e30", "--restarts", "2") == 3
    err = capsys.readouterr().err
    assert "diverged again after the 2 restart(s) the run allows" in err
    assert "--restarts N" not in err and "lower --lr" in err


def test_threads_zero_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--threads", "0", "list"])
    assert "--threads: expected a positive integer" in capsys.readouterr().err


# ----- benchmarks ---------------------------------------------------------------------------------
def test_bench_never_runs_files_of_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "benchmarks" / "bench_rbm.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
        "def run(quick):\n    return []\n"
    )
    (tmp_path / "benchmarks" / "bench_mine.py").write_text(
        "def run(quick):\n    return [{'a': 1}]\n"
    )
    assert main(["bench", "mine"]) == 2
    assert "unknown benchmark 'mine'" in capsys.readouterr().err
    assert not marker.exists()
    # named explicitly, a folder's benchmarks run
    assert main(["bench", "--folder", str(tmp_path / "benchmarks"), "mine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"a": 1}


def test_checkpoint_of_a_finished_run_loads_with_its_record(tmp_path):
    run = tmp_path / "r"
    assert _toy(run) == 0
    checkpoint = io.load_checkpoint(run / "checkpoint.safetensors")
    assert checkpoint.meta["meta"]["run"]["model"] == "gaussian"


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--n", "-3", "--sampler", "mh"], "--n: expected a positive integer"),
        (["--steps", "-5"], "--steps: expected a non-negative integer"),
        (["--burn-in", "-1"], "--burn-in: expected a non-negative integer"),
        (["--thin", "0"], "--thin: expected a positive integer"),
    ],
)
def test_sample_refuses_negative_counts(flags, named, tmp_path, capsys):
    run = tmp_path / "r"
    assert _digits("independent", run) == 0
    capsys.readouterr()
    assert main(["sample", str(run), *flags, "--out", str(tmp_path / "s.png")]) == 2
    assert named in capsys.readouterr().err


def test_interleaved_references_time_the_code_in_every_round():
    from ebmlab.app.bench import Measured, interleaved

    calls = []
    timing = interleaved(lambda: calls.append(1), (8, 8, 8), rounds=3, peak_size=64)
    assert len(calls) == 4  # one warm-up, then one per round
    assert timing.seconds > 0 and timing.peak_flops > 0 and timing.shape_flops > 0
    ratios = Measured(seconds=2.0, peak_flops=4e9, shape_flops=2e9).ratios(flops=4e9)
    assert ratios["gflops"] == 2.0
    assert ratios["fraction_of_matmul_peak"] == 0.5
    assert ratios["fraction_of_same_shape_matmul"] == 1.0
