"""Bad options of ``ebmlab hopfield`` and ``ebmlab hash`` are refused up front (exit status 2,
``ebmlab: error: --flag: ...``), before any data is read or anything trained."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ebmlab.app.cli import main


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ebmlab: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in err
    return err


def _patterns() -> np.ndarray:
    return (np.random.default_rng(0).random((3, 4, 4)) > 0.5).astype(np.float32)


# ----- hopfield store --npy ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_store_refuses_npy_with_nan_or_inf(tmp_path, capsys, bad):
    array = _patterns()
    array[1, 2, 3] = bad
    path = tmp_path / "bad.npy"
    np.save(path, array)
    out = tmp_path / "mem.safetensors"
    _refused(
        ["hopfield", "store", "--npy", str(path), "--out", str(out)],
        capsys,
        "--npy:",
        "1 NaN or infinite values",
    )
    assert not out.exists()


def _write_object(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _write_pickle(path):
    path.write_bytes(pickle.dumps([1, 2, 3]))


def _write_garbage(path):
    path.write_bytes(b"this is not an array at all")


def _write_empty(path):
    path.write_bytes(b"")


def _write_npz(path):
    with open(path, "wb") as file:
        np.savez(file, a=np.zeros(3))


def _write_strings(path):
    np.save(path, np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize(
    "write",
    [_write_object, _write_pickle, _write_garbage, _write_empty, _write_npz, _write_strings],
)
def test_store_refuses_unreadable_npy_without_suggesting_pickle(tmp_path, capsys, write):
    path = tmp_path / "bad.npy"
    write(path)
    err = _refused(
        ["hopfield", "store", "--npy", str(path), "--out", str(tmp_path / "m.safetensors")],
        capsys,
        f"--npy: {path} is not a readable .npy array (",
    )
    assert "allow_pickle" not in err


def test_store_refuses_npy_without_patterns(tmp_path, capsys):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, 16), dtype=np.float32))
    _refused(
        ["hopfield", "store", "--npy", str(path), "--out", str(tmp_path / "m.safetensors")],
        capsys,
        "--npy:",
        "holds no patterns",
    )


def test_store_refuses_n_patterns_below_one(tmp_path, capsys):
    _refused(
        [
            "hopfield",
            "store",
            "--data",
            "digits",
            "--n-patterns",
            "0",
            "--out",
            str(tmp_path / "m"),
        ],
        capsys,
        "--n-patterns: expected an integer >= 1, got 0",
    )


def test_store_and_recall_a_good_npy(tmp_path, capsys):
    path = tmp_path / "good.npy"
    np.save(path, _patterns())
    ckpt = tmp_path / "mem.safetensors"
    assert main(["hopfield", "store", "--npy", str(path), "--out", str(ckpt)]) == 0
    png = tmp_path / "recall.png"
    assert main(["hopfield", "recall", str(ckpt), "--noise", "0", "--out", str(png)]) == 0
    assert png.stat().st_size > 0
    capsys.readouterr()


# ----- hopfield recall ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--noise", "-0.1"], "--noise: expected a fraction in [0, 1], got -0.1"),
        (["--noise", "1.5"], "--noise: expected a fraction in [0, 1], got 1.5"),
        (["--noise", "nan"], "--noise: expected a fraction in [0, 1]"),
        (["--temperature", "-1"], "--temperature: expected a finite number >= 0"),
        (["--temperature", "inf"], "--temperature: expected a finite number >= 0"),
        (["--n", "0"], "--n: expected an integer >= 1, got 0"),
        (["--max-sweeps", "0"], "--max-sweeps: expected an integer >= 1, got 0"),
        (["--sweeps", "0"], "--sweeps: expected an integer >= 1, got 0"),
        (["--average", "0"], "--average: expected an integer >= 1, got 0"),
        (
            ["--temperature", "0.5", "--sweeps", "5", "--average", "10"],
            "--average: expected at most --sweeps (5) samples, got 10",
        ),
        (["--alpha", "0"], "--alpha: expected an annealing factor in (0, 1]"),
        (["--alpha", "1.5"], "--alpha: expected an annealing factor in (0, 1]"),
        (["--alpha", "-0.5"], "--alpha: expected an annealing factor in (0, 1]"),
    ],
)
def test_recall_refuses_bad_numbers_before_reading_the_checkpoint(tmp_path, capsys, flags, message):
    missing = tmp_path / "no-such-checkpoint.safetensors"  # the options are checked first
    _refused(
        ["hopfield", "recall", str(missing), *flags, "--out", str(tmp_path / "r.png")],
        capsys,
        message,
    )


def test_recall_accepts_average_above_sweeps_without_temperature(tmp_path, capsys):
    path = tmp_path / "good.npy"
    np.save(path, _patterns())
    ckpt = tmp_path / "mem.safetensors"
    assert main(["hopfield", "store", "--npy", str(path), "--out", str(ckpt)]) == 0
    argv = ["hopfield", "recall", str(ckpt), "--sweeps", "5", "--out", str(tmp_path / "r.png")]
    assert main(argv) == 0  # --average 10 only matters with --temperature
    capsys.readouterr()


# ----- hopfield capacity -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n-units", "0"], "--n-units: expected an integer >= 2, got 0"),
        (["--n-units", "1"], "--n-units: expected an integer >= 2, got 1"),
        (["--noise", "-0.1"], "--noise: expected a fraction in [0, 1], got -0.1"),
        (["--noise", "1.5"], "--noise: expected a fraction in [0, 1], got 1.5"),
        (["--loads", "0.1", "0"], "--loads: expected positive loads P/N, got 0.1 0.0"),
        (["--loads", "-0.1"], "--loads: expected positive loads P/N"),
        (["--modern-loads", "0"], "--modern-loads: expected positive loads P/N"),
        (["--min-probes", "0"], "--min-probes: expected an integer >= 1, got 0"),
        (["--max-probes", "0"], "--max-probes: expected an integer >= 1, got 0"),
        (["--learned-noise", "2"], "--learned-noise: expected a fraction in [0, 1], got 2.0"),
        (["--modern-beta", "0"], "--modern-beta: expected a finite number > 0, got 0.0"),
        (["--n-hidden", "0", "-4"], "--n-hidden: expected integers K >= 0, got 0 -4"),
        (["--rules", "hebbian", "bogus"], "--rules: expected names among"),
    ],
)
def test_capacity_refuses_bad_numbers(tmp_path, capsys, flags, message):
    _refused(["hopfield", "capacity", "--quick", *flags, "--out", str(tmp_path)], capsys, message)
    assert not (tmp_path / "hopfield_capacity.json").exists()


# ----- hash --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--queries", "0"], "--queries: expected an integer >= 1, got 0"),
        (["--queries", "-5"], "--queries: expected an integer >= 1, got -5"),
        (["--hidden", "abc"], "--hidden: expected comma-separated sizes like 500,250, got 'abc'"),
        (["--hidden", "32,0"], "--hidden: expected positive sizes"),
        (["--bits", "0"], "--bits: expected 1..64, got 0"),
        (["--bits", "65"], "--bits: expected 1..64, got 65"),
        (["--n-train", "-1000"], "--n-train: expected an integer >= 1, got -1000"),
        (["--n-train", "0"], "--n-train: expected an integer >= 1, got 0"),
        (["--pretrain-epochs", "-1"], "--pretrain-epochs: expected an integer >= 0, got -1"),
        (["--finetune-epochs", "-1"], "--finetune-epochs: expected an integer >= 0, got -1"),
        (["--code-noise", "-1"], "--code-noise: expected a finite number >= 0, got -1.0"),
        (["--code-noise", "nan"], "--code-noise: expected a finite number >= 0"),
        (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
        # checked before any data is read: a dataset that does not exist is not reached
        (["--data", "no-such-dataset", "--queries", "0"], "--queries:"),
    ],
)
def test_hash_refuses_bad_options_before_training(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    _refused(["hash", "--data", "digits", *flags, "--out", str(out)], capsys, message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--queries", "100000"], "--queries: expected at most"),
        (["--n-train", "100000"], "--n-train: expected at most"),
    ],
)
def test_hash_refuses_more_images_than_the_dataset_has(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    _refused(["hash", "--data", "digits", *flags, "--out", str(out)], capsys, message)
    assert not out.exists()


def test_hash_help_states_the_bits_range(capsys):
    with pytest.raises(SystemExit):
        main(["hash", "--help"])
    assert "code length (1 to 64)" in capsys.readouterr().out
