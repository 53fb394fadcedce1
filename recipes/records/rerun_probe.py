"""The rerun probe's record (`studies/rerun_probe.py`): each case's outcome when a run is killed, rerun with a changed
command, pointed at a folder that is not its own, or given a bad input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class RerunProbeRecord(FileRecord):
    KIND: ClassVar[str] = "rerun probe record"
    SCHEMA_VERSION: ClassVar[int] = 1

    cases: list[dict]  # case, group, description, expected, outcome, detail, seconds
    device: str
    git_commit: str
    seconds: float
    schema_version: int | None = SCHEMA_VERSION
