"""The healing study's step times (`results/heal/step_times.json`): per variant and settings, the seconds a distillation
step and an MLM step take, and the MLM steps that take a distillation budget's wall-clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class StepTimesRecord(FileRecord):
    KIND: ClassVar[str] = "step-time record"
    SCHEMA_VERSION: ClassVar[int] = 1

    settings: dict  # what the times depend on (teacher, training arguments, steps, threads)
    protocol: dict  # steps_per_run, rounds
    # key -> distillation_s_per_step, mlm_s_per_step, runs_s_per_step, mlm_steps, measured_at
    variants: dict[str, dict]
    device: str
    measured_at: str
    schema_version: int | None = SCHEMA_VERSION

    def mlm_steps(self, key: str) -> int:
        return self.variants[key]["mlm_steps"]
