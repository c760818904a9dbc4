"""Runs ``ebmlab train`` in this process with faults injected, for the fault-injection tests.

    python fault_driver.py DIVERGE_STEP KILL ARGS...

- DIVERGE_STEP: the optimizer step at which the first attempt of the run diverges (the loss
  becomes NaN), so that ``--restarts`` restarts it; the restarted attempt (another learning
  rate) runs through. 0: no divergence.
- KILL: where this process kills itself with SIGKILL, as ``kill -9`` would:
  ``none``; ``step:N`` before optimizer step N of the first attempt; ``restarted-step:N``
  before step N of a restarted attempt; ``write:N`` inside the N-th atomic file write (the
  temporary file is complete, the rename into place has not happened); ``restart`` right after
  a restart was recorded, before training goes on.
- ARGS: the ``ebmlab`` command line.
"""

from __future__ import annotations

import os
import signal
import sys

import torch

from ebmlab.app import cli
from ebmlab.training import TrainingDiverged, loop, restarts


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    diverge_step, kill, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    what, _, value = kill.partition(":")
    step_of_attempt = loop._train_step

    def train_step(run, batch, epoch, b):
        step = run.state.step + 1
        restarted = bool(run.meta.get("restarts"))  # the restarts made so far, as recorded
        if what == "step" and not restarted and step == int(value):
            _die()
        if what == "restarted-step" and restarted and step == int(value):
            _die()
        if diverge_step and not restarted and step == diverge_step:
            raise TrainingDiverged(f"injected divergence at step {step}", step, "loss")
        return step_of_attempt(run, batch, epoch, b)

    loop._train_step = train_step

    if what == "write":
        writes = [0]
        replace = os.replace

        def replace_then_maybe_die(src, dst):
            writes[0] += 1
            if writes[0] == int(value):
                _die()
            return replace(src, dst)

        os.replace = replace_then_maybe_die

    if what == "restart":
        record = restarts._record_attempt

        def record_then_die(*args, **kwargs):
            record(*args, **kwargs)
            _die()

        restarts._record_attempt = record_then_die

    torch.use_deterministic_algorithms(True)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
