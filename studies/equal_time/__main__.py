"""`python -m studies.equal_time calibrate|pretrain|finetune|status`: see the package docstring."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from recipes import finetune
from recipes.evaluation.finetune_arguments import planned_training_settings
from recipes.records import FinetuningRecord, PretrainingRecord
from recipes.run_folder.recorded_runs import RecordedRun
from recipes.training import calibration
from recipes.training.clock import parse_budget
from recipes.training.curves import CURVE_FILE
from recipes.training.pretrain_arguments import parse_args, recorded_arguments
from studies.equal_time import (
    ADDED_ARGUMENTS,
    CALIBRATION_DIR,
    RECORDS_DIR,
    Plan,
    PlannedFinetuning,
    PlannedRun,
    finetuning_argv,
    finetunings,
)
from studies.planner import Step, finetuning_current, planned_finetuning

CALIBRATION_ROUNDS = ["--rounds", "8", "--steps_per_turn", "5", "--warmup_steps", "3"]


def calibrate(plan: Plan, output_dir: Path, rounds: list[str] = CALIBRATION_ROUNDS) -> None:
    """Every arm measured in one interleaved measurement, at the plan's thread count."""
    argvs = []
    for arm in plan.arms.values():
        argv = plan.pretraining_argv(plan.first_run(arm), Path("unused"))
        argvs.append(calibration.argv_matching(argv, output_dir / f"{arm.name}.json") + rounds)
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        calibration.calibrate_together(argvs)
    finally:
        torch.set_num_threads(threads)


def planned_steps(plan: Plan, run: PlannedRun, root: Path) -> int:
    record = calibration.load_record(plan.calibration_file(run.arm, root))
    return calibration.calibrated_steps(record, run.arm.variant, parse_budget(run.budget))


def pretraining_state(plan: Plan, run: PlannedRun, output_dir: Path, root: Path) -> str:
    """The state of the run's folder under `output_dir` (see `recorded_state`)."""
    return recorded_state(plan, run, output_dir / run.name, root)


def recorded_state(plan: Plan, run: PlannedRun, directory: Path, root: Path) -> str:
    """'done' (the run folder, or its gathered records, hold the planned arguments and steps), 'partial' (a folder
    without a finished record) or 'todo'."""
    if not directory.exists():
        return "todo"
    if not (PretrainingRecord.exists(directory) and (directory / CURVE_FILE).is_file()):
        return "partial"
    record = PretrainingRecord.read(directory)
    model_args, data_args, budget_args, _ = parse_args(plan.pretraining_argv(run, directory.parent, root))
    planned = recorded_arguments(model_args, data_args, budget_args)
    # The calibration is compared by its content: the study may run from a worktree at another path.
    measured = calibration.file_sha256(plan.calibration_file(run.arm, root))
    same_arguments = arguments_agree(without_calibration_path(record.arguments), without_calibration_path(planned))
    if not same_arguments or record.run_record.training["calibration"]["sha256"] != measured:
        return "partial"
    return "done" if record.steps == planned_steps(plan, run, root) else "partial"


def arguments_agree(recorded: dict, planned: dict) -> bool:
    """Whether a record holds the planned arguments. An argument the record lacks was added to the recipes after the
    record was made: it counts as agreeing when it is planned at the value that keeps the behaviour the record was made
    with (`ADDED_ARGUMENTS`, else unset)."""
    for name, value in planned.items():
        if name not in recorded:
            if value != ADDED_ARGUMENTS.get(name):
                return False
        elif isinstance(value, dict) and isinstance(recorded[name], dict):
            if not arguments_agree(recorded[name], value):
                return False
        elif recorded[name] != value:
            return False
    return set(recorded) <= set(planned)


def without_calibration_path(arguments: dict) -> dict:
    return {**arguments, "budget": {**arguments["budget"], "calibration": None}}


def finetuning_state(plan: Plan, step: PlannedFinetuning, output_dir: Path) -> str:
    """'done' (the pretraining run's downstream record holds the planned settings and cites its weights), 'waiting'
    (the pretraining run is not finished), 'partial' or 'todo'."""
    run_dir = output_dir / step.run.name
    if not PretrainingRecord.exists(run_dir) or PretrainingRecord.read(run_dir).stop_reason == "signal":
        return "waiting"
    path = FinetuningRecord.downstream_path(run_dir, step.task, step.init, step.seed)
    argv = finetuning_argv(plan, step, output_dir)
    run_key = PretrainingRecord.read(run_dir).run_record.run_key()
    if Step(
        step.name,
        finetune.main,
        argv,
        path,
        finetuning_current(planned_finetuning(argv, step.task, step.init, step.seed, run_key)),
    ).done:
        return "done"
    return "partial" if (output_dir / "finetuned" / step.name).exists() else "todo"


@dataclass
class Job:
    name: str
    command: list[str]  # after `python -m`
    log: Path
    succeeded: Callable[[], bool]
    gather: Callable[[], None]
    followups: Callable[[], list[Job]] = list  # run next once this job succeeds


def run_jobs(jobs: list[Job], parallel: int, plan: Plan, root: Path) -> None:
    """Runs the jobs `parallel` at a time, each in its own process at the plan's threads; a job counts as done when
    its process exits 0 and `succeeded()` says so, and its records are then gathered."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(plan.threads), "TOKENIZERS_PARALLELISM": "false"}
    queue, running, failed = list(jobs), {}, []
    while queue or running:
        while queue and len(running) < parallel:
            job = queue.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "a") as log:
                print(f"start {job.name}", flush=True)
                process = subprocess.Popen(
                    [sys.executable, "-m", *job.command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=root,
                )
            running[process] = job
        time.sleep(5)
        for process in [p for p in running if p.poll() is not None]:
            job = running.pop(process)
            if process.returncode == 0 and job.succeeded():
                job.gather()
                print(f"done {job.name}", flush=True)
                queue[:0] = job.followups()
            else:
                failed.append(job.name)
                print(f"FAILED {job.name} (rc {process.returncode}; see {job.log})", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} jobs failed: {', '.join(failed)}")


def gather(run_name: str, output_dir: Path, records_dir: Path) -> None:
    """A pretraining run's records and config (no weights), with the records of its fine-tunings, under `records_dir`:
    what its card is generated from."""
    source, target = output_dir / run_name, records_dir / run_name
    files = [source / name for name in RecordedRun.INPUTS] + [*source.glob("downstream/*/*.json")]
    for path in files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def pretraining_jobs(plan: Plan, output_dir: Path, records_dir: Path, root: Path) -> list[Job]:
    """The pretraining runs still needed, each followed by its fine-tunings while its weights are there. A run whose
    gathered records are complete (an earlier session's, whose weights are gone) is needed again only if one of its
    fine-tunings is not recorded: the same command makes the same weights (a calibrated, seeded run)."""
    jobs = []
    for run in plan.runs():
        if pretraining_state(plan, run, output_dir, root) == "done":
            if RecordedRun.missing_inputs(records_dir / run.name):
                gather(run.name, output_dir, records_dir)
            continue
        recorded = recorded_state(plan, run, records_dir / run.name, root) == "done"
        if recorded and not (output_dir / run.name).exists() and not unrecorded_finetunings(plan, run, records_dir):
            continue
        jobs.append(
            Job(
                run.name,
                ["recipes.pretrain", *plan.pretraining_argv(run, output_dir, root)],
                output_dir / f"{run.name}.log",
                lambda run=run: pretraining_state(plan, run, output_dir, root) == "done",
                lambda run=run: gather(run.name, output_dir, records_dir),
                lambda run=run: [
                    job for job in finetuning_jobs(plan, output_dir, records_dir) if job.name.startswith(f"{run.name}/")
                ],
            )
        )
    return jobs


def unrecorded_finetunings(plan: Plan, run: PlannedRun, records_dir: Path) -> list[PlannedFinetuning]:
    """The run's planned fine-tunings whose records are not among its gathered records with the planned settings."""
    missing = []
    for step in finetunings(plan):
        if step.run != run:
            continue
        path = FinetuningRecord.downstream_path(records_dir / run.name, step.task, step.init, step.seed)
        planned = planned_training_settings(finetuning_argv(plan, step, Path("unused")))
        if not path.is_file() or FinetuningRecord.read(path).training != planned:
            missing.append(step)
    return missing


def finetuning_jobs(plan: Plan, output_dir: Path, records_dir: Path) -> list[Job]:
    """The fine-tunings whose pretraining run is finished and which are not done; one cut short starts again."""
    jobs = []
    for step in finetunings(plan):
        state = finetuning_state(plan, step, output_dir)
        if state in ("done", "waiting"):
            continue
        argv = finetuning_argv(plan, step, output_dir) + (["--overwrite_output_dir"] if state == "partial" else [])
        jobs.append(
            Job(
                step.name,
                ["recipes.finetune", *argv],
                output_dir / "finetuned" / f"{step.name.replace('/', '-')}.log",
                lambda step=step: finetuning_state(plan, step, output_dir) == "done",
                lambda step=step: gather(step.run.name, output_dir, records_dir),
            )
        )
    return jobs


def status(plan: Plan, output_dir: Path, root: Path) -> None:
    for run in plan.runs():
        print(f"{pretraining_state(plan, run, output_dir, root):8} {run.name}")
    for step in finetunings(plan):
        print(f"{finetuning_state(plan, step, output_dir):8} {step.name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studies.equal_time", description=__doc__)
    parser.add_argument("command", choices=("calibrate", "pretrain", "finetune", "status"))
    parser.add_argument("--plan", type=Path, default=None, help="The plan file (default: the study's plan.json)")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/equal_time"), help="Where run folders go")
    parser.add_argument("--records_dir", type=Path, default=RECORDS_DIR, help="Where finished runs' records go")
    parser.add_argument("--calibration_dir", type=Path, default=CALIBRATION_DIR, help="Where calibrate writes")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at a time")
    args = parser.parse_args(argv)
    plan = Plan.read(args.plan) if args.plan else Plan.read()
    root, output_dir, records_dir = Path.cwd(), args.output_dir.resolve(), args.records_dir.resolve()
    if args.command == "calibrate":
        calibrate(plan, args.calibration_dir)
    elif args.command == "pretrain":
        run_jobs(pretraining_jobs(plan, output_dir, records_dir, root), args.jobs, plan, root)
    elif args.command == "finetune":
        run_jobs(finetuning_jobs(plan, output_dir, records_dir), args.jobs, plan, root)
    else:
        status(plan, output_dir, root)


if __name__ == "__main__":
    main()
