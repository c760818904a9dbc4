"""Checkpoint metadata is verified before it is trusted: the digest covers the JSON document as
well as the tensors, and a document (even one whose digest was recomputed after the edit) is
checked for structure, classes, constructor arguments and sizes before anything is built."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import ebmlab
from ebmlab import io
from ebmlab.io import CheckpointError, LegacyCheckpointWarning, checkpoint_digest
from ebmlab.models import VAE, BernoulliRBM, DeepAutoencoder, Ising, PixelCNN, RealNVP
from ebmlab.objectives import ContrastiveDivergence
from ebmlab.training import TrainConfig
from ebmlab.training import checkpoint as run_checkpoint

sys.path.insert(0, str(Path(__file__).parent / "models"))
from test_common import FACTORIES, _library_classes

#: Constructors that compute from tensor data (which the meta device does not hold), and why;
#: their checkpoints are rebuilt under the allocation budget instead.
DATA_DEPENDENT = {
    "DeepAutoencoder": "copies seeded draws into layers allocated on the CPU by skip_init",
    "HashingAutoencoder": "a DeepAutoencoder",
    "Ising": "builds its neighbour table from bonds.tolist()",
    "PixelCNN": "finds each mask's bounding box with torch.nonzero (MaskedConv2d)",
    "PixelRNN": "its first layer is a MaskedConv2d",
    "RealNVP": "checks each coupling mask with a data-dependent test",
}


# ----- reading and rewriting headers --------------------------------------------------------------
def read_raw(path: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(safetensors header, ebmlab document, tensor bytes) of a checkpoint file: an 8-byte
    little-endian header length, the header's JSON, then the tensor data."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return header, json.loads(header["__metadata__"]["ebmlab"]), data[8 + n :]


def write_raw(path: Path, header: dict[str, Any], body: bytes, text: str) -> None:
    """Rewrite ``path`` with ``header`` whose ebmlab metadata is ``text``, and ``body``."""
    header = copy.deepcopy(header)
    header["__metadata__"]["ebmlab"] = text
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def edit(path: Path, change, *, resign: bool) -> None:
    """Apply ``change`` to the document of ``path``; ``resign`` recomputes its digest, as a
    hostile writer who knows the format would."""
    header, document, body = read_raw(path)
    change(document)
    if resign and isinstance(document, dict):
        document["sha256"] = checkpoint_digest(document, st_load(path.read_bytes()))
    write_raw(path, header, body, json.dumps(document))


def rewrite_tensors(path: Path, change) -> None:
    """Apply ``change`` to the tensors of ``path`` and write it again with a recomputed digest."""
    _, document, _ = read_raw(path)
    tensors = dict(st_load(path.read_bytes()))
    change(tensors)
    document["sha256"] = checkpoint_digest(document, tensors)
    path.write_bytes(st_save(tensors, metadata={"ebmlab": json.dumps(document)}))


def rbm_file(tmp_path: Path, name: str = "rbm.safetensors") -> Path:
    return ebmlab.save(BernoulliRBM(6, 3, seed=0), tmp_path / name, meta={"step": 1})


# ----- the digest covers the metadata -------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "key", "value"),
    [(VAE(6, hidden=[5], latent=2, seed=0), "activation", "relu"), (BernoulliRBM(6, 3), "seed", 7)],
    ids=["vae-activation", "rbm-seed"],
)
def test_an_edited_constructor_argument_is_refused(tmp_path, model, key, value):
    path = ebmlab.save(model, tmp_path / "m.safetensors")
    assert model.config[key] != value
    edit(path, lambda d: d["model_config"].__setitem__(key, value), resign=False)
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        ebmlab.load(path)


def _run_checkpoint(tmp_path: Path) -> Path:
    """A training run's checkpoint: model, objective, optimizer with a scheduled base_lr,
    generator state, and the loop's position."""
    model = BernoulliRBM(6, 3, seed=0)
    objective = ContrastiveDivergence()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.param_groups[0]["base_lr"] = 0.1
    path = tmp_path / "run" / run_checkpoint.CHECKPOINT_NAME
    state = run_checkpoint.RunState(step=12, epoch=1, history=[{"epoch": 1, "loss": 0.5}])
    generators = {"sampler0": torch.Generator().manual_seed(3).get_state()}
    config = TrainConfig(epochs=20, progress=False)
    run_checkpoint.save(path, model, objective, optimizer, generators, config, state, {})
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["meta"]["train_state"].__setitem__("epoch", 19),
        lambda d: d["optimizer"]["param_groups"][0].__setitem__("base_lr", 50),
        lambda d: d["meta"]["train_config"].__setitem__("epochs", 2000),
    ],
    ids=["train_state.epoch", "optimizer.base_lr", "train_config.epochs"],
)
def test_an_edited_run_state_is_refused_on_resume(tmp_path, change):
    path = _run_checkpoint(tmp_path)
    model, objective = BernoulliRBM(6, 3), ContrastiveDivergence()
    restored = run_checkpoint.restore(path, model, objective)  # the unedited file resumes
    assert (restored.state.step, restored.state.epoch) == (12, 1)
    edit(path, change, resign=False)
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        run_checkpoint.restore(path, model, objective)
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        run_checkpoint.finished_epochs(path)


def test_a_reserialized_header_still_loads(tmp_path):
    """The digest is over canonical JSON: key order and whitespace are not content."""
    path = rbm_file(tmp_path)
    header, document, body = read_raw(path)
    text = json.dumps(dict(reversed(list(document.items()))), indent=3)
    write_raw(path, header, body, text)
    assert ebmlab.load(path).config == BernoulliRBM(6, 3, seed=0).config


# ----- sizes are checked before anything is allocated ---------------------------------------------
#: (model as saved, recorded argument, value written over it, what the refusal must say); the
#: file stores a few dozen elements where the arguments ask for 1e7 to 1e14.
INFLATED = {
    "rbm-1e7": (
        lambda: BernoulliRBM(8, 4),
        "n_hidden",
        10**7,
        "model.W: the checkpoint stores (8, 4) but the recorded arguments give (8, 10000000) "
        "(recorded n_hidden = 10000000)",
    ),
    "rbm-1e8": (
        lambda: BernoulliRBM(8, 4),
        "n_hidden",
        10**8,
        "model.W: the checkpoint stores (8, 4) but the recorded arguments give (8, 100000000) "
        "(recorded n_hidden = 100000000)",
    ),
    "vae": (
        lambda: VAE(6, hidden=[5], latent=2),
        "hidden",
        [10**8],
        "give (100000000, 6) (recorded hidden = [100000000])",
    ),
    # constructors that compute from data: refused by the allocation budget
    "realnvp": (
        lambda: RealNVP(2, hidden=4, n_layers=2),
        "hidden",
        10**6,
        "give a tensor of shape (1000000, 1000000) (recorded hidden = 1000000); refused before",
    ),
    "ising": (lambda: Ising(3), "size", 10**5, "refused before allocating it"),
    "pixelcnn": (
        lambda: PixelCNN([4, 4], channels=4, n_layers=2),
        "channels",
        10**5,
        "refused before allocating it",
    ),
    "autoencoder": (
        lambda: DeepAutoencoder([6, 4, 2]),
        "layer_sizes",
        [6, 10**7, 2],
        "model.encoder.0.weight: the checkpoint stores (4, 6) but the recorded arguments give "
        "(10000000, 6) (recorded layer_sizes = [6, 10000000, 2])",
    ),
}


def _inflated(tmp_path: Path, case: str) -> Path:
    build, key, value, _ = INFLATED[case]
    path = ebmlab.save(build(), tmp_path / f"{case}.safetensors")
    edit(path, lambda d: d["model_config"].__setitem__(key, value), resign=True)
    return path


@pytest.mark.parametrize("case", sorted(INFLATED))
def test_declared_sizes_far_above_the_stored_tensors_are_refused(tmp_path, case):
    """The digest is recomputed: the sizes themselves are what is refused, naming the tensor
    and the argument where one stored tensor differs in one dimension."""
    path = _inflated(tmp_path, case)
    with pytest.raises(CheckpointError, match=re.escape(INFLATED[case][3])):
        ebmlab.load(path)


_PROBE = """
import json, resource, sys
import ebmlab
from ebmlab.io import CheckpointError
paths = json.loads(sys.argv[1])
ebmlab.load(paths.pop(0))  # every code path warmed up before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
refused = 0
for path in paths:
    try:
        ebmlab.load(path)
    except CheckpointError:
        refused += 1
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"grew_kib": grew, "refused": refused}))
"""


def test_refusing_declared_sizes_allocates_nothing_large(tmp_path):
    """In a fresh process (whose peak memory no other test has raised), refusing every file of
    INFLATED raises the peak resident memory by less than 256 MiB, where building what the
    arguments ask for needs from 0.3 GB (rbm-1e7) to hundreds of terabytes."""
    paths = [str(_inflated(tmp_path, case)) for case in sorted(INFLATED)]
    warm = str(ebmlab.save(BernoulliRBM(8, 4), tmp_path / "warm.safetensors"))
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([warm, *paths])],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["refused"] == len(paths), report
    assert report["grew_kib"] < 256 * 1024, report


def test_every_model_class_builds_on_the_meta_device_with_its_real_shapes(tmp_path):
    """Each class of the shared suite either builds on the meta device with exactly the shapes
    of the real model, or is a data-dependent constructor listed above (whose oversized
    arguments the allocation budget refuses, see the test before)."""
    classes = _library_classes()
    not_on_meta = set()
    for name, config in sorted(FACTORIES.items()):
        real = classes[name](**config)
        stored = {k: v for k, v in real.state_dict().items()}
        state = io._meta_state(classes[name], config, stored, name)
        if state is None:
            not_on_meta.add(name)
            continue
        params, shapes, _ = state
        assert params == {n for n, _ in real.named_parameters(remove_duplicate=False)}, name
        assert shapes == {
            n: tuple(t.shape)
            for n, t in [
                *real.named_buffers(remove_duplicate=False),
                *real.named_parameters(remove_duplicate=False),
            ]
        }, name
    listed = set(DATA_DEPENDENT) & set(FACTORIES)
    assert not_on_meta == listed, (
        f"built on the meta device: {sorted(listed - not_on_meta)} (remove from "
        f"DATA_DEPENDENT); not: {sorted(not_on_meta - listed)}"
    )


def test_a_stored_tensor_of_another_shape_names_the_tensor_and_argument(tmp_path):
    path = rbm_file(tmp_path)
    rewrite_tensors(path, lambda t: t.__setitem__("model.W", torch.zeros(3, 3)))
    with pytest.raises(
        CheckpointError,
        match=r"model\.W: the checkpoint stores \(3, 3\) but the recorded arguments give \(6, 3\) "
        r"\(recorded n_visible = 6\)",
    ):
        ebmlab.load(path)


def test_a_missing_or_extra_stored_parameter_is_refused(tmp_path):
    path = rbm_file(tmp_path)
    rewrite_tensors(path, lambda t: t.pop("model.c"))
    with pytest.raises(CheckpointError, match=r"model\.c: .*give a parameter of shape \(3,\)"):
        ebmlab.load(path)
    path = rbm_file(tmp_path, "extra.safetensors")
    rewrite_tensors(path, lambda t: t.__setitem__("model.extra.weight", torch.zeros(2)))
    with pytest.raises(CheckpointError, match=r"'model\.extra\.weight', which the model lacks"):
        ebmlab.load(path)


# ----- malformed documents ------------------------------------------------------------------------
def _delete(key):
    return lambda d: d.pop(key)


def _set(*keys_and_value):
    *keys, last, value = keys_and_value

    def change(document):
        node = document
        for key in keys:
            node = node[key]
        node[last] = value

    return change


REQUIRED = ("format", "ebmlab_version", "model_class", "model_config", "meta", "sha256")
MALFORMED = {
    **{f"missing-{key}": (_delete(key), f"missing {key}") for key in REQUIRED},
    "model_config-list": (_set("model_config", [6, 3]), "model_config: expected a JSON object"),
    "meta-string": (_set("meta", "run"), "meta: expected a JSON object, got a string"),
    "model_class-number": (_set("model_class", 3), "model_class: expected a string, got an int"),
    "unknown-entry": (_set("pickle", "x"), "unknown entries 'pickle'"),
    "objective-half": (_set("objective_class", "ContrastiveDivergence"), "go together"),
    "sha256-not-hex": (_set("sha256", "z" * 64), "64 lowercase hex digits"),
    "format-unknown": (_set("format", "ebmlab-checkpoint-99"), "unknown format"),
    "optimizer-groups": (
        _set("optimizer", {"class": "SGD", "param_groups": {"lr": 1}}),
        r"optimizer\.param_groups: expected a JSON array",
    ),
    "optimizer-params": (
        _set("optimizer", {"class": "SGD", "param_groups": [{"params": ["W"]}]}),
        r"param_groups\[0\]\.params\[0\]: expected an integer",
    ),
    "optimizer-scalars": (
        _set("optimizer", {"class": "SGD", "param_groups": [], "scalars": {"x": {}}}),
        "keys are parameter indices",
    ),
    "unknown-argument": (
        _set("model_config", "bogus", 1),
        "do not fit BernoulliRBM .*unexpected keyword argument 'bogus'.*it takes n_visible",
    ),
    "missing-argument": (
        lambda d: d["model_config"].pop("n_hidden"),
        "missing a required argument: 'n_hidden'",
    ),
    "argument-type": (_set("model_config", "n_hidden", "many"), "n_hidden: expected"),
    "argument-value": (_set("model_config", "n_hidden", -3), "n_hidden: expected"),
    "unknown-objective": (
        lambda d: d.update(objective_class="Pickled", objective_config={}),
        "unknown class 'Pickled'",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_document_is_refused_naming_what_is_wrong(tmp_path, case):
    """The digest is recomputed after each edit (but those of the digest itself): the
    structural check is what refuses."""
    change, message = MALFORMED[case]
    path = rbm_file(tmp_path)
    edit(path, change, resign="sha256" not in case)
    with pytest.raises(CheckpointError, match=message):
        ebmlab.load(path)


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "metadata: expected a JSON object, got a JSON array"),
        ('"a string"', "metadata: expected a JSON object, got a string"),
        ("{oops", "metadata: not valid JSON"),
        ("[" * 200_000 + "]" * 200_000, "nested 200000 levels deep"),
        ('{"meta": ' + json.dumps(_nested(40)) + "}", "nested 41 levels deep"),
        ('{"n": ' + "9" * 5000 + "}", "not valid JSON"),
    ],
    ids=["list", "string", "not-json", "deep-list", "deep-meta", "huge-integer"],
)
def test_a_document_that_is_not_a_json_object_is_refused(tmp_path, text, message):
    path = rbm_file(tmp_path)
    header, _, body = read_raw(path)
    write_raw(path, header, body, text)
    with pytest.raises(CheckpointError, match=message):
        ebmlab.load(path)


def test_a_header_that_is_not_utf8_is_refused(tmp_path):
    path = rbm_file(tmp_path)
    data = path.read_bytes()
    at = data.index(b"BernoulliRBM")
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at + 2 :])
    with pytest.raises(CheckpointError, match="not valid UTF-8"):
        ebmlab.load(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ([1, 2], "header: expected a JSON object, got a JSON array"),
        ({"__metadata__": {"other": "x"}}, "no ebmlab metadata"),
        ({"__metadata__": "x"}, "no ebmlab metadata"),
        ({"a": _nested(33)}, "nested 34 levels deep"),
    ],
    ids=["list", "no-ebmlab", "metadata-string", "deep"],
)
def test_a_malformed_safetensors_header_is_refused(tmp_path, header, message):
    path = tmp_path / "h.safetensors"
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(CheckpointError, match=message):
        ebmlab.load(path)


def test_a_header_larger_than_the_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = rbm_file(tmp_path)
    size = int.from_bytes(path.read_bytes()[:8], "little")
    monkeypatch.setattr(io, "MAX_HEADER_BYTES", size - 1)
    with pytest.raises(CheckpointError, match=f"header of {size} bytes, more than the {size - 1}"):
        ebmlab.load(path)


@pytest.mark.parametrize(
    ("name", "tensor", "message"),
    [
        ("junk.x", torch.zeros(2), "under none of the prefixes"),
        ("rng.g", torch.zeros(4), "generator state is a 1-D uint8 tensor"),
        ("optimizer.a.b", torch.zeros(2), r"optimizer\.<parameter index>\.<key>"),
        ("objective.chains", torch.zeros(2), "no objective_class"),
    ],
    ids=["unknown-prefix", "rng-float", "optimizer-name", "objective-without-class"],
)
def test_a_tensor_outside_the_format_is_refused(tmp_path, name, tensor, message):
    path = rbm_file(tmp_path)
    rewrite_tensors(path, lambda t: t.__setitem__(name, tensor))
    with pytest.raises(CheckpointError, match=message):
        ebmlab.load(path)


# ----- writing refuses what reading would ---------------------------------------------------------
def test_save_refuses_metadata_a_reader_would_refuse(tmp_path, monkeypatch):
    model = BernoulliRBM(4, 2)
    with pytest.raises(ValueError, match="nested 41 levels deep"):
        ebmlab.save(model, tmp_path / "deep.safetensors", meta={"x": _nested(39)})
    monkeypatch.setattr(io, "MAX_HEADER_BYTES", 4096)
    with pytest.raises(ValueError, match="more than the 4096 a reader accepts"):
        ebmlab.save(model, tmp_path / "big.safetensors", meta={"notes": "x" * 5000})
    assert not list(tmp_path.iterdir())


# ----- files of the previous format ---------------------------------------------------------------
def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """The digest of ebmlab-checkpoint-1 files: tensor names, dtypes, shapes and bytes only."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        sha.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return sha.hexdigest()


def _as_legacy(path: Path) -> None:
    tensors = st_load(path.read_bytes())

    def change(document):
        document["format"] = "ebmlab-checkpoint-1"
        document["sha256"] = _tensor_digest(tensors)

    edit(path, change, resign=False)


def test_a_previous_format_file_loads_with_a_warning_and_upgrades(tmp_path):
    model = VAE(6, hidden=[5], latent=2, seed=0)
    path = ebmlab.save(model, tmp_path / "old.safetensors", meta={"dataset": "digits"})
    _as_legacy(path)
    with pytest.warns(LegacyCheckpointWarning, match="metadata .* cannot be verified"):
        loaded = ebmlab.load(path)
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values())
    )
    _, before, _ = read_raw(path)
    assert io.upgrade(path) == path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ckpt = io.load_checkpoint(path)
    assert ckpt.meta["format"] == io.FORMAT
    assert {k: v for k, v in ckpt.meta.items() if k not in ("format", "sha256")} == {
        k: v for k, v in before.items() if k not in ("format", "sha256")
    }
    edit(path, lambda d: d["model_config"].__setitem__("activation", "relu"), resign=False)
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        ebmlab.load(path)


def test_a_previous_format_file_with_edited_tensors_is_refused(tmp_path):
    path = rbm_file(tmp_path)
    _as_legacy(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        ebmlab.load(path)


# ----- reading entries of a verified document -----------------------------------------------------
def test_document_field_reads_typed_entries_and_names_a_wrong_one():
    document = {"meta": {"train_state": {"epoch": 3, "history": []}, "notes": "x"}}
    assert io.document_field(document, "meta.train_state.epoch", int, 0) == 3
    assert io.document_field(document, "meta.train_state.step", int, 0) == 0
    assert io.document_field(document, "meta.train_state.epoch", float, 0.0) == 3
    with pytest.raises(CheckpointError, match=r"meta\.train_state\.history: expected an integer"):
        io.document_field(document, "meta.train_state.history", int, 0)
    with pytest.raises(CheckpointError, match=r"meta\.notes: expected a JSON object, got a str"):
        io.document_field(document, "meta.notes.epoch", int, 0)
    with pytest.raises(CheckpointError, match="expected an integer, got a boolean"):
        io.document_field({"epoch": True}, "epoch", int, 0)
