"""A run directory as one unit: its config, its checkpoint and the one process writing it.

``ebmlab train`` writes ``RUN/config.json`` (what was asked for: family, data, options, loop
settings, restarts) and checkpoints whose metadata carry the same run record (``meta["run"]``),
so that the two can be checked against each other:

- a new run goes only into an empty directory, or replaces an earlier run with ``--force``
  (every file of the run directory goes, so no stale figure or stage survives); a non-empty
  folder that holds no run is refused, ``--force`` or not;
- ``--resume`` continues the run recorded there: another family, dataset or setting is refused
  with a message saying what differs, and a config.json that does not match the checkpoint
  (edited, or left by another run) is refused too;
- a lock file (``RUN/.lock``, holding the writer's process id and host) keeps a second writer
  out; a lock left by a process that is gone is noticed and taken over;
- temporary files of an interrupted checkpoint write are removed when the next run starts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from .. import io
from ..training import CHECKPOINT_NAME
from ..training.logging import METRICS_NAME, read_records

CONFIG_NAME = "config.json"
LOCK_NAME = ".lock"
#: Run-record fields that identify a run (``--resume`` refuses a change of any of them).
IDENTITY = ("model", "data", "binarize", "image_shape", "options")
#: Loop settings ``--resume`` may change (they apply to the rest of the run and are recorded).
RESUMABLE_SETTINGS = ("epochs", "progress", "device")


class RunDirectoryError(Exception):
    """The run directory cannot be used as asked (with what to do instead)."""


# ----- the lock ---------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class RunLock:
    """Exclusive ownership of a run directory while a process writes it (a context manager).

    The lock is a file created atomically (``O_CREAT | O_EXCL``) holding the owner's pid and
    host. A lock whose process is gone (same host, pid not running) is stale and taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and not self._stale(owner):
                    raise RunDirectoryError(
                        f"--out: {self.path.parent} is being written by process {owner['pid']} "
                        f"on {owner['host']}; wait for it to finish, or use another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale or unreadable: take it over
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, handle)
            self.held = True
            return
        raise RunDirectoryError(f"--out: could not take the lock {self.path}")

    def _owner(self) -> dict[str, Any] | None:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stale(owner: dict[str, Any]) -> bool:
        return owner.get("host") == socket.gethostname() and not _alive(owner["pid"])

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ----- reading and checking ---------------------------------------------------------------------
def read_config(run_dir: Path) -> dict[str, Any]:
    """``RUN/config.json``, refused with a clear error when missing, unreadable or incomplete."""
    path = run_dir / CONFIG_NAME
    if not path.exists():
        raise RunDirectoryError(
            f"RUN: {run_dir} is not a run directory (no {CONFIG_NAME}); train one with "
            "`ebmlab train`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunDirectoryError(f"{path}: unreadable or corrupt ({error})") from None
    missing = [k for k in ("model", "data", "options", "train") if k not in config]
    if not isinstance(config, dict) or missing:
        raise RunDirectoryError(
            f"{path}: incomplete run config (missing {', '.join(missing) or 'everything'})"
        )
    return config


def checkpoint_record(run_dir: Path) -> dict[str, Any] | None:
    """The run record stored in ``RUN/checkpoint.safetensors`` (None: no checkpoint, or one
    written before checkpoints carried it)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    document, _ = io.read_checkpoint(path)
    record = document.get("meta", {}).get("run")
    return record if isinstance(record, dict) else None


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def differences(recorded: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """What ``asked`` changes in the ``recorded`` run, one phrase per setting."""
    found = []
    for key in ("model", "data", "binarize"):
        if recorded.get(key) != asked.get(key):
            found.append(f"{key} {recorded.get(key)!r} (asked: {asked.get(key)!r})")
    for scope in ("options", "train"):
        saved, new = recorded.get(scope, {}), asked.get(scope, {})
        for key in sorted(set(saved) | set(new)):
            if scope == "train" and key in RESUMABLE_SETTINGS:
                continue
            if saved.get(key) != new.get(key):
                found.append(f"{_flag(key)} {saved.get(key)!r} (asked: {new.get(key)!r})")
    return found


def check_binding(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a config.json that does not describe the run its checkpoint holds."""
    record = checkpoint_record(run_dir)
    if record is None:
        return
    if record.get("run_id") != config.get("run_id") or differences(record, config):
        changed = differences(record, config) or ["the run id"]
        raise RunDirectoryError(
            f"RUN: {run_dir / CONFIG_NAME} does not match the run its checkpoint holds "
            f"({'; '.join(changed)}); the file was edited or left by another run. Replace the "
            "run with --force, or train into another --out"
        )


# ----- preparing a run directory ----------------------------------------------------------------
def is_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (the start of) a run."""
    return any((run_dir / name).exists() for name in (CONFIG_NAME, CHECKPOINT_NAME, "stages"))


def check_writable(run_dir: Path) -> None:
    """``--out`` is a directory this process can create and write."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--out: {run_dir} is a file; expected a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"--out: cannot create {run_dir} ({error.strerror})") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"--out: cannot write to {run_dir} (permission denied)")


def clear(run_dir: Path) -> None:
    """Remove every file an earlier run wrote (checkpoints, stages, metrics, figures, report)."""
    for path in run_dir.iterdir():
        if path.name == LOCK_NAME:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that were interrupted (``io.save`` writes
    ``.NAME.*.tmp`` beside its target and renames it only once complete)."""
    removed = []
    for folder in (run_dir, run_dir / "stages"):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def checkpoint_digest(run_dir: Path) -> str | None:
    """SHA-256 of ``RUN/checkpoint.safetensors`` (None: the run has no checkpoint yet); what
    ``eval.json`` records as ``checkpoint_sha256`` to say which checkpoint it scored."""
    import hashlib

    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluation_is_stale(run_dir: Path, metrics: dict[str, Any]) -> bool:
    """Whether ``metrics`` (``RUN/eval.json``) scored another checkpoint than the run's own: an
    evaluation written before the run was resumed and trained further. One that records no
    checkpoint digest is taken as current."""
    scored = metrics.get("checkpoint_sha256")
    return isinstance(scored, str) and scored != checkpoint_digest(run_dir)


def divergence(run_dir: Path) -> str | None:
    """The message of the run's last divergence (``metrics.jsonl``'s "diverged" record), None
    when it has none or its records cannot be read."""
    path = run_dir / METRICS_NAME
    try:
        records = read_records(path) if path.is_file() else []
    except (OSError, ValueError):
        return None
    diverged = [record for record, _ in records if record.get("kind") == "diverged"]
    return str(diverged[-1].get("message", "no message")) if diverged else None


def new_run_id() -> str:
    return uuid.uuid4().hex


def prepare_new(run_dir: Path, force: bool) -> None:
    """Make ``run_dir`` ready for a new run: empty, or emptied with ``force`` when it holds an
    earlier run. A folder that holds other files and no run is refused even with ``force``:
    ``--force`` replaces runs, it never deletes what ebmlab did not write."""
    if not is_run(run_dir):
        others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise RunDirectoryError(
                f"--out: {run_dir} is not empty ({len(others)} entries: {shown}) and holds no "
                "ebmlab run; a new run goes into an empty or new folder (--force replaces only "
                "an earlier run)"
            )
        return
    if not force:
        described = ""
        try:
            saved = read_config(run_dir)
            described = f"a {saved['model']} run on {saved['data']}"
        except RunDirectoryError:
            described = "an earlier run"
        raise RunDirectoryError(
            f"--out: {run_dir} already holds {described}; continue it with --resume, replace "
            "it with --force, or choose another --out"
        )
    clear(run_dir)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically: a hidden temporary file beside it
    (removed by ``remove_temporaries`` if the process dies) renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write ``RUN/config.json`` (atomically)."""
    write_json(run_dir / CONFIG_NAME, config)
