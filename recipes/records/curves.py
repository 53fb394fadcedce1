"""A run's evaluation curve (`mlm_curve.json`, `agreement_curve.json`): the fields of each point, and the points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recipes.records.files import from_dict, read_json_object, set_fields, write_json


@dataclass(frozen=True)
class CurveRecord:
    KIND: ClassVar[str] = "curve record"
    SCHEMA_VERSION: ClassVar[int] = 1

    fields: list[str]
    points: list[dict]
    schema_version: int | None = SCHEMA_VERSION

    @classmethod
    def read(cls, path: str | Path) -> CurveRecord:
        return from_dict(cls, read_json_object(path, cls.KIND), path)

    def write(self, path: str | Path) -> Path:
        return write_json(path, set_fields(self))
