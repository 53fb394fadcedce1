"""The equal-time study's finished runs, as its gathered records give them (`results/equal_time/runs/`): each planned
run whose record, config and curve are there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.records import PretrainingRecord
from recipes.training.curves import load_curve
from studies.equal_time import Plan, PlannedRun

REFERENCE_ARM = "bert"  # the arm every other is compared with
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


def by_seed(runs: dict[str, Run], arm: str, budget: str, metric: str) -> dict[int, float]:
    return {
        run.planned.seed: run.final(metric)
        for run in runs.values()
        if run.planned.arm.name == arm and run.planned.budget == budget
    }
