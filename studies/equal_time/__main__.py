"""`python -m studies.equal_time calibrate|pretrain|status`: see the package docstring."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from recipes import calibration
from recipes.budget import parse_budget
from recipes.curves import CURVE_FILE
from recipes.pretrain_arguments import parse_args, recorded_arguments
from recipes.records import PretrainingRecord
from studies.equal_time import CALIBRATION_DIR, RECORDS_DIR, Plan, PlannedRun

CALIBRATION_ROUNDS = ["--rounds", "8", "--steps_per_turn", "5", "--warmup_steps", "3"]


def calibrate(plan: Plan, output_dir: Path) -> None:
    """Every arm measured in one interleaved measurement, at the plan's thread count."""
    torch.set_num_threads(plan.threads)
    argvs = []
    for arm in plan.arms.values():
        run = PlannedRun(arm, next(iter(plan.budgets)), plan.seeds[0], 1)
        argv = plan.pretraining_argv(run, Path("unused"))
        argvs.append(calibration.argv_matching(argv, output_dir / f"{arm.name}.json") + CALIBRATION_ROUNDS)
    calibration.calibrate_together(argvs)


def planned_steps(plan: Plan, run: PlannedRun, root: Path) -> int:
    record = calibration.load_record(plan.calibration_file(run.arm, root))
    return calibration.calibrated_steps(record, run.arm.variant, parse_budget(run.budget))


def state(plan: Plan, run: PlannedRun, output_dir: Path, root: Path) -> str:
    """'done' (the record holds the planned arguments and steps), 'partial' (a folder without a finished record) or
    'todo'."""
    directory = output_dir / run.name
    if not directory.exists():
        return "todo"
    if not (PretrainingRecord.exists(directory) and (directory / CURVE_FILE).is_file()):
        return "partial"
    record = PretrainingRecord.read(directory)
    model_args, data_args, budget_args, _ = parse_args(plan.pretraining_argv(run, output_dir, root))
    planned = recorded_arguments(model_args, data_args, budget_args)
    if record.arguments != planned or record.steps != planned_steps(plan, run, root):
        return "partial"
    return "done"


def gather(run: PlannedRun, output_dir: Path, records_dir: Path) -> None:
    target = records_dir / run.name
    target.mkdir(parents=True, exist_ok=True)
    for name in (PretrainingRecord.FILE, CURVE_FILE):
        shutil.copy2(output_dir / run.name / name, target / name)


def pretrain(plan: Plan, output_dir: Path, records_dir: Path, jobs: int, root: Path) -> None:
    """Runs every planned run that is not done, `jobs` at a time, each in its own process at the plan's threads."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(plan.threads), "TOKENIZERS_PARALLELISM": "false"}
    queue = [run for run in plan.runs() if state(plan, run, output_dir, root) != "done"]
    for run in plan.runs():
        if state(plan, run, output_dir, root) == "done" and not (records_dir / run.name / CURVE_FILE).is_file():
            gather(run, output_dir, records_dir)
    running: dict[subprocess.Popen, PlannedRun] = {}
    failed = []
    while queue or running:
        while queue and len(running) < jobs:
            run = queue.pop(0)
            output_dir.mkdir(parents=True, exist_ok=True)
            log = open(output_dir / f"{run.name}.log", "a")
            argv = [sys.executable, "-m", "recipes.pretrain", *plan.pretraining_argv(run, output_dir, root)]
            print(f"start {run.name}", flush=True)
            running[subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=root)] = run
        time.sleep(5)
        for process in [p for p in running if p.poll() is not None]:
            run = running.pop(process)
            if process.returncode == 0 and state(plan, run, output_dir, root) == "done":
                gather(run, output_dir, records_dir)
                print(f"done {run.name}", flush=True)
            else:
                failed.append(run.name)
                print(f"FAILED {run.name} (rc {process.returncode}; see {output_dir / run.name}.log)", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} runs failed: {', '.join(failed)}")


def status(plan: Plan, output_dir: Path, root: Path) -> None:
    for run in plan.runs():
        print(f"{state(plan, run, output_dir, root):8} {run.name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studies.equal_time", description=__doc__)
    parser.add_argument("command", choices=("calibrate", "pretrain", "status"))
    parser.add_argument("--plan", type=Path, default=None, help="The plan file (default: the study's plan.json)")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/equal_time"), help="Where run folders go")
    parser.add_argument("--records_dir", type=Path, default=RECORDS_DIR, help="Where finished runs' records go")
    parser.add_argument("--calibration_dir", type=Path, default=CALIBRATION_DIR, help="Where calibrate writes")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at a time")
    args = parser.parse_args(argv)
    plan = Plan.read(args.plan) if args.plan else Plan.read()
    root = Path.cwd()
    if args.command == "calibrate":
        calibrate(plan, args.calibration_dir)
    elif args.command == "pretrain":
        pretrain(plan, args.output_dir.resolve(), args.records_dir.resolve(), args.jobs, root)
    else:
        status(plan, args.output_dir.resolve(), root)


if __name__ == "__main__":
    main()
