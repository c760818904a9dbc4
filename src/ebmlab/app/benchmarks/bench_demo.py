"""Wall time of `ebmlab demo` (every family on digits); the target is under 3 minutes on 2 CPU
cores. Prints one JSON line."""

from __future__ import annotations

import json
import os
import tempfile
import time

import torch


def run(quick: bool = False) -> list[dict]:
    from ebmlab.app.cli import main

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        main(["demo", "--out", out, "--no-progress"])
        seconds = time.perf_counter() - start
        with open(os.path.join(out, "summary.json")) as handle:
            families = json.load(handle)["families"]
    return [
        {
            "benchmark": "demo",
            "seconds": round(seconds, 1),
            "target_seconds": 180,
            "ratio_to_target": round(seconds / 180, 3),
            "threads": torch.get_num_threads(),
            "families": {k: v.get("seconds") for k, v in families.items()},
        }
    ]


if __name__ == "__main__":
    for record in run():
        print(json.dumps(record))
