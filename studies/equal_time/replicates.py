"""The study's fine-tuned runs made again, for the pretrained fine-tunings that were not recorded while the weights
existed (`results/equal_time/replicates/`, from `replicates.json`).

A replicate is the recorded run's own command (the same calibrated steps, seeds, data and masks), run by the code that
made the recorded run (its record's `git_commit`), into another folder; then fine-tuned by the code that made the
study's other fine-tunings. `replicates.json` is derived from `plan.json` by `replicate_plan` (a test checks it): only
the fine-tuned budgets, no long runs and no endpoints, and only the tasks the records lack, without
random-initialisation controls (those need no weights: `controls_from_records.py`).

The fine-tuning commit does not make the recorded weights: there a calibrated run prepares only the tokens its budget
uses (de67a7b), which moves the step-0 held-out loss of `bert` 15m seed 1 from 7.3468 to 7.3561. On a CPU with native
bf16, 17320a7 makes the recorded run again bit for bit. `remake` checks that for every run (its held-out curve at
every evaluation point) before it fine-tunes: a replicate that is not the recorded model is kept, not fine-tuned and
not used, and the shard goes on with its next run and exits non-zero naming it.

    git worktree add /work/pretraining 17320a7 && git worktree add /work/finetune ca95352
    python -m studies.equal_time.replicates remake --shard 0/2 --pretraining_tree /work/pretraining \\
        --finetuning_tree /work/finetune --output_dir runs/equal_time-replicates &
    python -m studies.equal_time.replicates remake --shard 1/2 ... &    # the other core

Each remade run is followed at once by its fine-tuning (weights do not outlive a session's machine) and then deleted;
the primary endpoints' arms come first, all their seeds, then the others'. A remake cut short starts again (resumed,
it would not be the uninterrupted run); one that finished is fine-tuned without pretraining again. A record that was
itself resumed from a checkpoint (`RESUMED_AT`) is remade the same way: killed after that checkpoint and resumed.
The recipe is bf16: run it where bf16 is native (AVX512-BF16 or AMX, or a GPU); elsewhere it is emulated and a
15-minute run takes hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from recipes.cards.markdown import markdown_table
from recipes.records import FinetuningRecord, PretrainingRecord
from recipes.records.files import read_json_object
from recipes.training.curves import load_curve
from studies.equal_time import PLAN_FILE, RECORDS_DIR, RESULTS_DIR, Plan, PlannedRun, finetunings
from studies.equal_time.gathered import MLM_METRICS, Run

REPLICATES_PLAN = PLAN_FILE.with_name("replicates.json")
REPLICATES_DIR = RESULTS_DIR / "replicates"
REPLICATED_TASKS = ("wiki-topics",)
# what a held-out curve says of the model; elapsed_s is the machine's
CURVE_MEASURES = ("step", "tokens_seen", "accuracy", "mask_accuracy", "loss")
# Recorded runs that were stopped and resumed from a checkpoint, and its step. A resumed run is deterministic but is not
# the uninterrupted one. Measured: made again uninterrupted, each differs from its record from the evaluation point
# after that checkpoint (hbert-v1 15m seed 2 from step 817, pool-hybrid 15m seed 3 at its last point, 932,
# pool-hybrid-dropmask 15m seed 3 from step 245, addbert 15m seed 1 from step 399, hbert-v2 15m seed 2 from step 510);
# resumed from it, each gives its record's curve, every digit.
RESUMED_AT = {
    "hbert-v1-15m-seed2": 754,
    "pool-hybrid-15m-seed3": 870,
    "pool-hybrid-dropmask-15m-seed3": 184,
    "addbert-15m-seed1": 332,
    "hbert-v2-15m-seed2": 446,
}


def replicate_plan(plan: dict, tasks: tuple[str, ...] = REPLICATED_TASKS) -> dict:
    """The plan whose runs are `plan`'s fine-tuned runs, each followed by its pretrained fine-tunings on `tasks`."""
    finetuning = plan["finetuning"]
    unknown = set(tasks) - set(finetuning["tasks"])
    if unknown:
        raise ValueError(f"Tasks {sorted(unknown)} are not among the plan's: {', '.join(finetuning['tasks'])}.")
    budgets = {budget: plan["budgets"][budget] for budget in finetuning["budgets"]}
    return {
        **{key: value for key, value in plan.items() if key not in ("primary_endpoints", "contrasts")},
        "budgets": budgets,
        "long_runs": [],
        "finetuning": {
            **finetuning,
            "scratch_seeds": [],
            "tasks": {task: finetuning["tasks"][task] for task in tasks},
        },
    }


def with_replicates(found: dict, replicated: dict) -> tuple[dict, list[tuple]]:
    """The fine-tunings of the recorded runs, and those of the replicates where the records have none for that arm,
    budget, task and init; with the keys the replicates gave."""
    keys = [key for key in replicated if key not in found]
    return {**found, **{key: replicated[key] for key in keys}}, keys


def curve_difference(recorded: list[dict], remade: list[dict]) -> int | None:
    """The first step at which the remade run's held-out curve differs from the recorded one's; None where the two are
    identical at every evaluation point."""
    for ours, theirs in zip(recorded, remade):
        if any(ours[measure] != theirs[measure] for measure in CURVE_MEASURES):
            return ours["step"]
    if len(recorded) != len(remade):
        return min(recorded, remade, key=len)[-1]["step"] if min(len(recorded), len(remade)) else 0
    return None


def replicate_table(runs: dict[str, Run], replicas: dict[str, Run]) -> list[str]:
    """Each replicate's final held-out MLM beside its recorded run's, whether its curve is the recorded one, and the
    code and machine each ran on."""
    header = ["run", *(f"{label}: recorded → replicate" for label in MLM_METRICS.values()), "held-out curve", "made by"]
    rows = []
    for name, replica in replicas.items():
        recorded = runs[name]
        cells = [
            f"{recorded.final(metric):.3f} → {replica.final(metric):.3f}"
            if metric == "loss"
            else f"{100 * recorded.final(metric):.2f}% → {100 * replica.final(metric):.2f}%"
            for metric in MLM_METRICS
        ]
        differs = curve_difference(recorded.curve, replica.curve)
        curve = f"identical at all {len(replica.curve)} points" if differs is None else f"differs from step {differs}"
        made = [record.run_record for record in (recorded.record, replica.record)]
        made_by = " → ".join(f"{(run.git_commit or '?')[:7]} on {run.device}" for run in made)
        rows.append([name, *cells, curve, made_by])
    return markdown_table(header, rows)


def remake_order(plan: Plan, first_arms: list[str]) -> list[PlannedRun]:
    """The plan's runs: every seed of `first_arms` first, so that their paired comparisons are whole soonest; then the
    other arms', seed by seed."""
    return sorted(plan.runs(), key=lambda run: (run.arm.name not in first_arms, run.seed))


def unrecorded(plan: Plan, run: PlannedRun, replicates_dir: Path) -> bool:
    return any(
        not FinetuningRecord.downstream_path(replicates_dir / run.name, step.task, step.init, step.seed).is_file()
        for step in finetunings(plan)
        if step.run == run
    )


def made_already(recorded: Path, folder: Path) -> bool:
    """Whether `folder` holds a finished remake whose held-out curve is the record's (its pretraining is done)."""
    if not PretrainingRecord.exists(folder) or PretrainingRecord.read(folder).stop_reason != "budget":
        return False
    return curve_difference(load_curve(recorded), load_curve(folder)) is None


def run_resumed_at(command: list[str], cwd: Path, folder: Path, step: int | None) -> None:
    """Runs the pretraining `command`, which writes `folder`. With a `step`, as the recorded run was made: the first run
    is killed once its checkpoint at `step` is complete (SIGKILL, so that it saves nothing more), any later checkpoint
    is dropped, and the same command resumes from there."""
    if step is not None:
        process = subprocess.Popen(command, cwd=cwd, start_new_session=True)
        while not (folder / f"checkpoint-{step}").is_dir():
            if process.poll() is not None:
                raise SystemExit(f"{folder.name} ended (rc {process.returncode}) before its checkpoint at step {step}.")
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for checkpoint in folder.glob("checkpoint-*"):
            if int(checkpoint.name.partition("-")[2]) > step:
                shutil.rmtree(checkpoint)
    subprocess.run(command, cwd=cwd, check=True)


class NotTheRecordedModel(Exception):
    """A remade run whose held-out curve is not its record's."""


def remake(run: PlannedRun, plan_data: dict, args: argparse.Namespace) -> None:
    """Pretrains `run` again with the recorded run's code (unless a finished remake identical to the record is there),
    checks that it is the recorded model, fine-tunes it with the study's fine-tuning code into the replicates folder,
    and deletes its weights."""
    recorded = RECORDS_DIR.resolve() / run.name
    commit = PretrainingRecord.read(recorded).run_record.git_commit
    tree = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.pretraining_tree, capture_output=True, text=True)
    if tree.stdout.strip() != commit:
        raise SystemExit(f"{run.name} was made at {commit}; --pretraining_tree {args.pretraining_tree} is at "
                         f"{tree.stdout.strip() or 'no commit'}. Use a worktree at {commit}.")  # fmt: skip
    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    plan_file = output_dir / f"{run.name}.plan.json"
    plan_file.write_text(json.dumps({**plan_data, "arms": {run.arm.name: plan_data["arms"][run.arm.name]},
                                     "seeds": [run.seed]}, indent=2))  # fmt: skip
    driver = [sys.executable, "-m", "studies.equal_time", "--plan", str(plan_file), "--output_dir", str(output_dir)]
    records_dir = output_dir / "pretraining-records"
    if not made_already(recorded, output_dir / run.name):
        # a remake cut short would resume, and a resumed run is not the uninterrupted one: it starts again
        for leftover in (output_dir / run.name, records_dir / run.name):
            shutil.rmtree(leftover, ignore_errors=True)
        pretraining = [*driver, "pretrain", "--records_dir", str(records_dir)]
        run_resumed_at(pretraining, args.pretraining_tree, output_dir / run.name, RESUMED_AT.get(run.name))
    differs = curve_difference(load_curve(recorded), load_curve(output_dir / run.name))
    if differs is not None:
        raise NotTheRecordedModel(f"{run.name} made again at {commit} differs from its record from step {differs}: it "
                                  f"is not the recorded model, so it is not fine-tuned ({output_dir / run.name} is "
                                  "kept).")  # fmt: skip
    subprocess.run([*driver, "finetune", "--records_dir", str(args.replicates_dir.resolve())],
                   cwd=args.finetuning_tree, check=True)  # fmt: skip
    shutil.rmtree(output_dir / run.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    derive = commands.add_parser("plan", help="Write replicates.json from plan.json")
    derive.add_argument("--output", type=Path, default=REPLICATES_PLAN)
    run = commands.add_parser("remake", help="Make the replicates whose fine-tunings are not recorded")
    run.add_argument("--shard", default="0/1", help="i/n: this process makes every n-th run from the i-th")
    run.add_argument("--pretraining_tree", type=Path, required=True, help="A worktree at the recorded runs' commit")
    run.add_argument("--finetuning_tree", type=Path, required=True, help="A worktree at the fine-tunings' commit")
    run.add_argument("--output_dir", type=Path, default=Path("runs/equal_time-replicates"))
    run.add_argument("--replicates_dir", type=Path, default=REPLICATES_DIR)
    args = parser.parse_args(argv)
    if args.command == "plan":
        derived = replicate_plan(read_json_object(PLAN_FILE, "study plan"))
        args.output.write_text(json.dumps(derived, indent=2) + "\n")
        print(f"Wrote {args.output}")
        return
    index, _, count = args.shard.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        parser.error(f"--shard {args.shard}: i/n with 0 <= i < n, for instance 0/2.")
    index, count = int(index), int(count)
    plan, plan_data = Plan.read(REPLICATES_PLAN), read_json_object(REPLICATES_PLAN, "replicates plan")
    primary = read_json_object(PLAN_FILE, "study plan")["primary_endpoints"]
    first_arms = list(dict.fromkeys(arm for endpoint in primary for arm in (endpoint["reference"], endpoint["arm"])))
    not_remade = []
    for run in remake_order(plan, first_arms)[index::count]:
        if unrecorded(plan, run, args.replicates_dir):
            print(f"remake {run.name}", flush=True)
            try:
                remake(run, plan_data, args)
            except NotTheRecordedModel as difference:
                # the shard goes on: the other runs do not depend on this one
                print(difference, file=sys.stderr, flush=True)
                not_remade.append(run.name)
                continue
            print(f"done {run.name}", flush=True)
    if not_remade:
        raise SystemExit(f"Not the recorded model, so not fine-tuned: {', '.join(not_remade)}.")


if __name__ == "__main__":
    main()
