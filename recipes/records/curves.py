"""A run's evaluation curve (`mlm_curve.json`, `agreement_curve.json`): the fields of each point, and the points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class CurveRecord(FileRecord):
    KIND: ClassVar[str] = "curve record"
    SCHEMA_VERSION: ClassVar[int] = 1

    fields: list[str]
    points: list[dict]
    schema_version: int | None = SCHEMA_VERSION
