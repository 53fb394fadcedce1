"""The equal-time study's finished runs, as its gathered records give them (`results/equal_time/runs/`): each planned
run whose record, config and curve are there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.records import PretrainingRecord
from recipes.training.curves import load_curve
from studies.equal_time import Plan, PlannedRun

MLM_METRICS = {"mask_accuracy": "accuracy at [MASK]", "accuracy": "accuracy, all labelled", "loss": "loss"}


@dataclass(frozen=True)
class Run:
    planned: PlannedRun
    record: PretrainingRecord
    curve: list[dict]

    def final(self, metric: str) -> float:
        return self.curve[-1][metric]


def finished_runs(plan: Plan, records_dir: Path) -> dict[str, Run]:
    runs = {}
    for planned in plan.runs():
        folder = records_dir / planned.name
        if PretrainingRecord.exists(folder):
            runs[planned.name] = Run(planned, PretrainingRecord.read(folder), load_curve(folder))
    return runs
