"""A benchmark run's record and its key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from recipes.records.files import digest, from_dict, read_json_object, set_fields, write_json


def benchmark_key(metadata: dict) -> str:
    """What a benchmark's numbers depend on: its metadata (code, versions, device, threads, arguments) but the date."""
    return digest({name: value for name, value in metadata.items() if name != "date"})


@dataclass(frozen=True)
class BenchmarkRecord:
    """A `recipes.benchmark` run: its metadata, the seconds each section took, each section run, and the targets."""

    KIND: ClassVar[str] = "benchmark record"
    SCHEMA_VERSION: ClassVar[int] = 1

    metadata: dict
    section_seconds: dict[str, float]
    params: dict | None = None
    train: dict | None = None
    infer: dict | None = None
    memory: dict | None = None
    scaling: dict | None = None
    bf16: dict | None = None
    recipe: dict | None = None
    targets: list[dict] = field(default_factory=list)

    schema_version: int | None = SCHEMA_VERSION

    @classmethod
    def read(cls, path: str | Path) -> BenchmarkRecord:
        return from_dict(cls, read_json_object(path, cls.KIND), path)

    def to_dict(self) -> dict:
        """The sections that were run, in the order they run."""
        return set_fields(self)

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def section(self, name: str) -> dict:
        """A section's results ({} when it was not run)."""
        return getattr(self, name) or {}

    def key(self) -> str:
        return benchmark_key(self.metadata)
