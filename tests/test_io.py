import json
import os

import pytest
import torch

import ebmlab
from ebmlab.io import CheckpointError, load_checkpoint
from ebmlab.models import BernoulliRBM


@pytest.fixture
def checkpoint(tmp_path):
    model = BernoulliRBM(6, 3, seed=0)
    return ebmlab.save(model, tmp_path / "rbm.safetensors", meta={"step": 1})


def test_truncated_checkpoint_is_refused(checkpoint):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) - 7])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        ebmlab.load(checkpoint)


def test_tampered_tensor_bytes_are_refused(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor's payload
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        ebmlab.load(checkpoint)


def test_unknown_class_is_refused_without_importing_anything(checkpoint):
    data = checkpoint.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["ebmlab"])
    doc["model_class"] = "os.system"
    header["__metadata__"]["ebmlab"] = json.dumps(doc)
    raw = json.dumps(header, separators=(",", ":")).encode()
    assert len(raw) <= n  # the class name got shorter, so the header can be padded in place
    raw += b" " * (n - len(raw))
    checkpoint.write_bytes(data[:8] + raw + data[8 + n :])
    with pytest.raises(CheckpointError, match=r"unknown class 'os\.system'"):
        ebmlab.load(checkpoint)


def test_missing_file_and_non_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ebmlab.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        ebmlab.load(junk)


def test_failed_write_keeps_the_previous_checkpoint(checkpoint, monkeypatch):
    before = checkpoint.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ebmlab.save(BernoulliRBM(6, 3, seed=5), checkpoint)
    assert checkpoint.read_bytes() == before
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["rbm.safetensors"]


def test_optimizer_and_generator_state_round_trip(tmp_path):
    model = BernoulliRBM(4, 2, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.free_energy(torch.ones(3, 4)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(11)
    torch.rand(5, generator=g)
    path = ebmlab.save(model, tmp_path / "c.safetensors", optimizer=opt, generators={"g": g})
    ckpt = load_checkpoint(path)
    from ebmlab.io import optimizer_state_from_tensors

    opt2 = torch.optim.Adam(ckpt.model.parameters(), lr=0.1)
    opt2.load_state_dict(
        optimizer_state_from_tensors(ckpt.group("optimizer"), ckpt.meta["optimizer"])
    )
    for p in (model, ckpt.model):
        p.zero_grad()
        p.free_energy(torch.ones(3, 4)).sum().backward()
    opt.step()
    opt2.step()
    assert torch.equal(model.W, ckpt.model.W)
    g2 = torch.Generator()
    g2.set_state(ckpt.group("rng")["g"])
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g2))


def test_save_rejects_non_ebmlab_modules(tmp_path):
    with pytest.raises(TypeError, match=r"model: expected an ebmlab\.models\.Model"):
        ebmlab.save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def test_save_and_load_import_nothing_of_the_application_layer(tmp_path) -> None:
    """``ebmlab.save`` / ``ebmlab.load`` in a fresh interpreter: the class registry belongs to
    the library, so neither matplotlib nor any family recipe is imported."""
    import subprocess
    import sys

    code = (
        "import sys, ebmlab\n"
        "from ebmlab.models import BernoulliRBM\n"
        f"ebmlab.save(BernoulliRBM(6, 3), {str(tmp_path / 'm.safetensors')!r})\n"
        "ebmlab.load({path!r})\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('matplotlib', 'ebmlab.app')))\n"
        "print(bad)\n"
    ).replace("{path!r}", repr(str(tmp_path / "m.safetensors")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _leaves(node, path=()):
    """(path, value) of every number, string and boolean in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path, node


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if value is None:
        return 0
    return value + "x"


def test_every_entry_of_the_metadata_is_covered_by_the_digest(tmp_path):
    """Changing any one value of a full checkpoint's document (model, objective, optimizer,
    run information), the digest left as written, is refused."""
    from ebmlab.objectives import ContrastiveDivergence

    model = BernoulliRBM(4, 2, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.free_energy(torch.ones(3, 4)).sum().backward()
    opt.step()
    meta = {"dataset": "digits", "train_state": {"step": 3, "epoch": 1, "history": [{"l": 0.5}]}}
    path = ebmlab.save(
        model,
        tmp_path / "c.safetensors",
        objective=ContrastiveDivergence(),
        optimizer=opt,
        generators={"g": torch.Generator().manual_seed(1)},
        meta=meta,
    )
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    document = json.loads(header["__metadata__"]["ebmlab"])
    leaves = [(p, v) for p, v in _leaves(document) if p != ("sha256",)]
    assert len(leaves) > 30
    for where, value in leaves:
        edited = json.loads(json.dumps(document))
        node = edited
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = _changed(value)
        header["__metadata__"]["ebmlab"] = json.dumps(edited)
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
        with pytest.raises(CheckpointError, match=r"modified or corrupted|unknown (format|class)"):
            load_checkpoint(path)


def test_every_library_class_loads_after_importing_ebmlab_alone():
    """``ebmlab.load`` in a fresh process knows every Model and Objective class that
    ``ebmlab.models`` and ``ebmlab.objectives`` define, not only those some other import happened
    to register (the metrics' feature classifier is loaded by ``ebmlab.metrics`` itself)."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil
import ebmlab
from ebmlab.models.base import MODEL_CLASSES
from ebmlab.objectives.base import OBJECTIVE_CLASSES
before = set(MODEL_CLASSES) | set(OBJECTIVE_CLASSES)
import ebmlab.models, ebmlab.objectives
for package in (ebmlab.models, ebmlab.objectives):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
print(sorted((set(MODEL_CLASSES) | set(OBJECTIVE_CLASSES)) - before))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", f"registered only by importing their module: {out.strip()}"


def test_save_refuses_a_directory_as_the_path(tmp_path):
    """A directory is named as such before anything is written (no temporary file left)."""
    with pytest.raises(
        IsADirectoryError,
        match=r"path: .* is a directory; give a file name "
        r"such as .*model\.safetensors",
    ):
        ebmlab.save(BernoulliRBM(4, 3, seed=0), tmp_path)
    assert list(tmp_path.iterdir()) == []
