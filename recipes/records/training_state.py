"""Small records the training loop keeps: a checkpoint's budget clock (`budget_state.json`, beside Trainer's
`trainer_state.json`) and the cache of measured matmul peaks that MFU is taken against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class BudgetState(FileRecord):
    KIND: ClassVar[str] = "checkpoint budget state"
    SCHEMA_VERSION: ClassVar[int] = 1

    elapsed_s: float  # budget clock: training time spent
    paused_s: dict  # time charged apart (evaluation, checkpointing, …), by kind
    evaluations_done: int = 0
    resumed_at: list[int] = field(default_factory=list)  # the steps the run was resumed at before this checkpoint
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class MatmulPeaks(FileRecord):
    KIND: ClassVar[str] = "matmul peak cache"
    SCHEMA_VERSION: ClassVar[int] = 1

    peaks: dict[str, float] = field(default_factory=dict)  # "device, threads, dtype" -> FLOP/s
    schema_version: int | None = SCHEMA_VERSION
