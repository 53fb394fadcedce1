"""A benchmark run's record and its key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from recipes.records.files import FileRecord, digest


def benchmark_key(metadata: dict) -> str:
    """What a benchmark's numbers depend on: its metadata (code, versions, device, threads, arguments) but the date."""
    return digest({name: value for name, value in metadata.items() if name != "date"})


@dataclass(frozen=True)
class BenchmarkRecord(FileRecord):
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

    def section(self, name: str) -> dict:
        """A section's results ({} when it was not run)."""
        return getattr(self, name) or {}

    def key(self) -> str:
        return benchmark_key(self.metadata)
