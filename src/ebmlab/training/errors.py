"""Errors raised by training."""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a parameter becomes NaN or infinite; says where and what.

    The checkpoint on disk is then the last good one, so the run can be resumed (with a lower
    learning rate or another seed) or restarted automatically (``train_with_restarts``).
    """

    def __init__(self, message: str, step: int, quantity: str) -> None:
        super().__init__(message)
        self.step = step
        self.quantity = quantity
