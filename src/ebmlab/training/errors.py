"""Errors raised by training: ``TrainingDiverged`` (defined with the objectives' divergence
guards, which raise it too, and re-exported here)."""

from __future__ import annotations

from ..objectives.guards import TrainingDiverged

__all__ = ["TrainingDiverged"]
