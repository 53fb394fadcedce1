"""The study's random-initialisation controls on a checkout whose pretrained weights are gone.

A control fine-tunes seed 1's architecture from random weights: it needs the pretraining run's config and record (which
the control's own record cites), not its weights, and those are committed under `results/equal_time/runs/`. This
restores each run folder from the gathered records and runs the frozen driver's still-missing `--from_scratch` jobs.
The frozen fine-tuning recipe (ca95352) refuses a folder without weights, so each seed-1 folder gets random weights of
the right shapes beside a `PLACEHOLDER_WEIGHTS.txt`; a control never reads them (it builds its model from the config),
and they are deleted when the jobs end. Pretrained fine-tunings are not run here: they need `pretrain` to make the
weights again.

Run it by its path from the frozen worktree: every fine-tuning is a `python -m recipes.finetune` process in the working
directory, so it runs the study's code (its record's `git_commit` says so), whichever checkout plans the jobs:

    cd /work/finetune && python /work/main/studies/equal_time/controls_from_records.py --jobs 2 \\
        --output_dir /work/main/runs/equal_time --records_dir /work/main/results/equal_time/runs
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

import modeling
from studies.equal_time import RECORDS_DIR, Plan, PlannedFinetuning, finetunings
from studies.equal_time.__main__ import Job, finetuning_jobs, run_jobs

PLACEHOLDER = "PLACEHOLDER_WEIGHTS.txt"


def restore_run_folders(plan: Plan, output_dir: Path, records_dir: Path) -> list[Path]:
    """Each fine-tuned run's folder from its gathered records where the folder is missing; seed 1's gets placeholder
    weights. Returns the folders that got them."""
    placed = []
    for run in plan.runs():
        folder, records = output_dir / run.name, records_dir / run.name
        if run.budget not in plan.finetuning["budgets"] or not records.is_dir():
            continue
        if not folder.exists():
            shutil.copytree(records, folder)
        if run.seed != plan.seeds[0]:
            continue
        # placeholders left by a run of this script that was killed are claimed again, so that this run deletes them
        if (folder / PLACEHOLDER).is_file():
            placed.append(folder)
        elif not (folder / "model.safetensors").exists():
            config = modeling.HybridBertConfig.from_pretrained(folder)
            torch.manual_seed(0)
            with tempfile.TemporaryDirectory() as scratch:
                modeling.HybridBertForMaskedLM(config).save_pretrained(scratch)
                shutil.copy(Path(scratch) / "model.safetensors", folder / "model.safetensors")
            (folder / PLACEHOLDER).write_text("Random weights: only --from_scratch controls may use this folder.\n")
            placed.append(folder)
    return placed


def pending_controls(plan: Plan, output_dir: Path, records_dir: Path) -> list[Job]:
    """The driver's jobs for the controls not recorded yet, in `control_order`."""
    steps = {step.name: step for step in finetunings(plan) if step.init == "scratch"}
    jobs = [job for job in finetuning_jobs(plan, output_dir, records_dir) if job.name in steps]
    return sorted(jobs, key=lambda job: control_order(plan, steps[job.name]))


def control_order(plan: Plan, step: PlannedFinetuning) -> tuple:
    """The plan's first task first; within a task, the primary endpoints' arms first, then the rest in plan order (the
    order changes no fine-tuning, only which results land first)."""
    endpoint_arms = {arm for endpoint in plan.primary_endpoints for arm in (endpoint["arm"], endpoint["reference"])}
    arms = list(plan.arms)
    return (
        list(plan.finetuning["tasks"]).index(step.task),
        step.run.arm.name not in endpoint_arms,
        arms.index(step.run.arm.name),
        step.seed,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studies.equal_time.controls_from_records", description=__doc__)
    parser.add_argument("--plan", type=Path, default=None, help="The plan file (default: the study's plan.json)")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/equal_time"), help="Where run folders go")
    parser.add_argument("--records_dir", type=Path, default=RECORDS_DIR, help="Where finished runs' records are")
    parser.add_argument("--jobs", type=int, default=1, help="Fine-tunings at a time")
    args = parser.parse_args(argv)
    plan = Plan.read(args.plan) if args.plan else Plan.read()
    output_dir, records_dir = args.output_dir.resolve(), args.records_dir.resolve()
    placed = restore_run_folders(plan, output_dir, records_dir)
    jobs = pending_controls(plan, output_dir, records_dir)
    try:
        run_jobs(jobs, args.jobs, plan, Path.cwd())
    finally:
        for folder in placed:
            (folder / "model.safetensors").unlink()
            (folder / PLACEHOLDER).unlink()


if __name__ == "__main__":
    main()
