"""The HTML report: one self-contained page (figures inlined as base64 PNG) per run or per demo,
with the configuration, training curves, figures and a metrics table."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import viz

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #345; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 90%; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; image-rendering: pixelated; }
figcaption { font-size: 85%; color: #555; max-width: 520px; }
.note { background: #fff7e0; border-left: 4px solid #e0a000; padding: .5em 1em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


@dataclass
class Section:
    """One run in a report: its title, configuration, metrics, metric history and figures."""

    title: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: list[tuple[Path, str, str]] = field(default_factory=list)  # (png, title, caption)
    notes: list[str] = field(default_factory=list)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def _table(rows: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_format(v)}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def section_from_run(run_dir: str | os.PathLike[str], title: str | None = None) -> Section:
    """Collect a run directory's config.json, eval.json, metrics.jsonl and figures.json."""
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    metrics = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
    figures: list[tuple[Path, str, str]] = []
    if (run / "figures.json").exists():
        for entry in json.loads((run / "figures.json").read_text()):
            path = run / entry["path"]
            if not path.exists():  # manifests written with paths relative to another folder
                path = run / Path(entry["path"]).name
            if path.exists():
                figures.append((path, entry.get("title", path.stem), entry.get("caption", "")))
    else:
        figures = [(p, p.stem, "") for p in sorted(run.glob("*.png"))]
    name = title or f"{config.get('model', run.name)} on {config.get('data', '?')}"
    section = Section(title=name, config=config, metrics=metrics, history=read_history(run))
    section.figures = figures
    diverged = [r for r in section.history if r.get("kind") == "diverged"]
    if diverged:
        section.notes.append(
            f"Training stopped: {diverged[-1]['message']} The checkpoint is the last good one."
        )
    return section


def _curves(section: Section, work_dir: Path, index: int) -> str:
    epochs = [r for r in section.history if r.get("kind") == "epoch"]
    if len(epochs) < 2:
        return ""
    keys = [
        k
        for k in epochs[-1]
        if k not in ("kind", "step", "epoch", "seconds") and isinstance(epochs[-1][k], int | float)
    ]
    path = viz.plot_curves(epochs, keys[:4], work_dir / f".curves_{index}.png")
    out = (
        f"<figure>{_img(path)}<figcaption>Training curves (per-epoch means).</figcaption></figure>"
    )
    path.unlink(missing_ok=True)
    return out


def write_report(
    sections: Sequence[Section],
    path: str | os.PathLike[str],
    title: str = "ebmlab report",
    intro: str = "",
) -> Path:
    """Write one self-contained HTML page with every section; returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    if intro:
        parts.append(f"<p>{intro}</p>")
    if len(sections) > 1:
        parts.append(
            "<ul>"
            + "".join(
                f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>"
                for i, s in enumerate(sections)
            )
            + "</ul>"
        )
    for i, section in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(section.title)}</h2>")
        for note in section.notes:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        if section.metrics:
            parts.append("<h3>Metrics</h3>" + _table(section.metrics))
        for png, fig_title, caption in section.figures:
            parts.append(
                f"<figure>{_img(png)}<figcaption><b>{html.escape(fig_title)}</b> "
                f"{html.escape(caption)}</figcaption></figure>"
            )
        parts.append(_curves(section, target.parent, i))
        if section.config:
            parts.append("<h3>Configuration</h3>" + _table(section.config))
    parts.append("</body></html>")
    target.write_text("\n".join(parts))
    return target
