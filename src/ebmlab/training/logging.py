"""What a run reports as it goes: ``metrics.jsonl`` (and TensorBoard scalars when installed), and
the tqdm progress bar with the live loss.

One ``metrics.jsonl`` per run directory holds every stage: records carry ``"stage"`` when the run
has stages (greedy pretraining of each layer, then joint training or fine-tuning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_NAME = "metrics.jsonl"


class MetricsWriter:
    """Appends JSON lines to ``metrics.jsonl`` (and TensorBoard scalars when it is installed)."""

    def __init__(self, out_dir: Path | None, enabled: bool, stage: str | None = None) -> None:
        self.path = out_dir / METRICS_NAME if (out_dir is not None and enabled) else None
        self.stage = stage
        self.tb = None
        if self.path is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except (ImportError, ModuleNotFoundError):
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self.stage is not None:
            record = {"stage": self.stage, **record}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tb is not None and "step" in record:
            prefix = f"{self.stage}/" if self.stage else ""
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "epoch"):
                    kind = record.get("kind", "train")
                    self.tb.add_scalar(f"{prefix}{kind}/{key}", value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def reset_metrics(out_dir: Path, stage: str | None, step: int | None) -> None:
    """Drop what a restarted or resumed stage will write again.

    A fresh run without stages starts a new file; a fresh stage drops its own earlier records; a
    resumed one drops its records written after the checkpoint at ``step``. Other stages' records
    are kept.
    """
    path = out_dir / METRICS_NAME
    if not path.exists():
        return
    if stage is None and step is None:
        path.unlink()
        return
    kept = []
    for record, line in read_records(path):
        if record.get("stage") != stage or (step is not None and record.get("step", 0) <= step):
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def read_records(path: Path) -> list[tuple[dict[str, Any], str]]:
    """The records of ``metrics.jsonl`` with their lines. A last line cut short (the process was
    killed while appending it) is dropped; a malformed line elsewhere is an error naming the
    file and the line."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            if number == len(lines):
                break  # torn by a kill during the write
            raise ValueError(f"{path}: line {number} is not a metrics record ({error})") from None
        records.append((record, line))
    return records


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds of training per stage, resumes included, from the last epoch record of each in
    ``metrics.jsonl`` (records without a stage under "None"; empty when there is no file)."""
    path = Path(run_dir) / METRICS_NAME
    seconds: dict[str, float] = {}
    if not path.exists():
        return seconds
    for record, _ in read_records(path):
        if record.get("kind") == "epoch" and isinstance(record.get("seconds"), int | float):
            seconds[str(record.get("stage"))] = float(record["seconds"])
    return seconds


def training_seconds(run_dir: Path) -> float:
    """Seconds of training of the whole run, every stage and resume included (0.0: none
    recorded)."""
    return sum(stage_seconds(run_dir).values())


def append_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Append one record to ``out_dir/metrics.jsonl`` (e.g. what a resume changed)."""
    with (out_dir / METRICS_NAME).open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def progress_bar(enabled: bool, total: int, description: str) -> Any:
    """A tqdm bar (None when disabled); no bar when stderr is not a terminal (logs, CI)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False, dynamic_ncols=True, disable=None)
