"""A calibration's record (`recipes.training.calibration`): each variant's measured throughput at the settings of the
runs whose budgets it turns into steps, and how and where it was measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class CalibrationRecord(FileRecord):
    KIND: ClassVar[str] = "calibration record"
    SCHEMA_VERSION: ClassVar[int] = 1

    settings: dict  # recipes.training.calibration.run_settings: what a run must share with the measurement
    protocol: dict  # warmup_steps, rounds, steps_per_turn, measured_with (how many commands were measured together)
    variants: dict[str, dict]  # variant -> steps_per_s, tokens_per_s, turn_seconds
    device: str
    torch: str
    measured_at: str
    format: int | None = None  # the first calibration files name their schema version so
    schema_version: int | None = SCHEMA_VERSION

    def steps_per_s(self, variant: str) -> float:
        return self.variants[variant]["steps_per_s"]
