"""``ebmlab hash``: the semantic-hashing benchmark end to end."""

from __future__ import annotations

import json
import os

import pytest

from ebmlab import data
from ebmlab.app.cli import main


def _has_mnist() -> bool:
    try:
        data.load("mnist", "test")
    except Exception:
        return False
    return True


def test_hash_command_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "hash",
            "--data",
            "digits",
            "--bits",
            "16",
            "--hidden",
            "32",
            "--pretrain-epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--queries",
            "50",
            "--n-train",
            "1000",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads((out / "semantic_hashing.json").read_text())
    # the recorded command repeats the run: the data and its size too
    assert document["command"].startswith("ebmlab hash --data digits --n-train 1000 --bits 16")
    assert set(document["benchmark"]["results"]) == {"autoencoder", "pca-sign", "lsh", "itq"}
    assert all(row["same_items"] for row in document["timing"])
    assert (out / "semantic_hashing.png").stat().st_size > 0
    assert main(["hash", "--data", "digits", "--bits", "65", "--out", str(out)]) != 0
    assert "--bits: expected 1..64" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EBMLAB_DATA"), reason="needs MNIST in $EBMLAB_DATA")
def test_learned_codes_beat_lsh_within_radius_two_on_mnist(tmp_path):
    if not _has_mnist():
        pytest.skip("MNIST files not found")
    from ebmlab.app.hashing_experiments import hashing_benchmark

    x_train, y_train = data.load("mnist", "train")
    x_test, y_test = data.load("mnist", "test")
    bench = hashing_benchmark(
        x_train[:5000],
        y_train[:5000],
        x_test,
        y_test,
        n_bits=32,
        hidden=(500, 250),
        n_queries=300,
        pretrain_epochs=1,
        finetune_epochs=1,
        seed=0,
    )
    r = bench["results"]
    assert r["autoencoder"]["precision_r2"] > r["lsh"]["precision_r2"]
    assert r["autoencoder"]["precision_r2"] > r["pca-sign"]["precision_r2"]
    assert r["autoencoder"]["map"] > r["lsh"]["map"]
