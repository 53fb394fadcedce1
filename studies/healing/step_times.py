"""Timing the two healing objectives: the seconds a distillation step and an MLM step take, from alternating runs of
both recipes, and the MLM steps that take the wall-clock of the study's distillation (`results_dir/step_times.json`,
`StepTimesRecord`), which the study's MLM runs are given.

The rounds a measurement has finished are kept (`<runs_dir>/timed_rounds.json`), so that a timing stopped part-way (a
signal, a session's end) goes on from its next round rather than from the start. Only whole rounds are kept: a round
times both objectives back to back, so each round's ratio is taken in one state of the machine, while a round split
between two sessions could time one objective on a faster machine than the other. Nor is a run ever resumed inside:
its clock would include the restart. Rounds timed in another context (the settings, the protocol, the device, or the
step counts of the timed runs) are not carried over."""

from __future__ import annotations

import math
import shlex
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from recipes.environment import device_name
from recipes.records import StepTimesRecord
from recipes.records.files import read_json_object, write_json
from studies.healing.arguments import (
    OBJECTIVES,
    HealStudyArguments,
    healing_argv,
    settings_covered,
    step_time_settings,
    step_times_key,
)

STEP_TIMES_FILE = "step_times.json"
TIMED_ROUNDS_FILE = "timed_rounds.json"


def write_step_times(args: HealStudyArguments) -> Path:
    """Measure (`measure_step_times`) and write the record into --results_dir, keeping the entries of the one there."""
    path = Path(args.results_dir) / STEP_TIMES_FILE
    earlier = StepTimesRecord.read(path) if path.is_file() else None
    path = measure_step_times(args, earlier).write(path)
    TimedRounds.discard(args.runs_dir)  # the record now holds its rounds
    return path


class TimedRounds:
    """The rounds of a measurement finished so far: per round, {step-time key: {objective: seconds per step}}, written
    after every round with the context they were timed in."""

    KIND = "step-time measurement in progress"

    def __init__(self, runs_dir: str | Path, context: dict):
        self.path, self.context = Path(runs_dir) / TIMED_ROUNDS_FILE, context
        saved = read_json_object(self.path, self.KIND) if self.path.is_file() else {}
        self.rounds: list[dict[str, dict[str, float]]] = saved["rounds"] if saved.get("context") == context else []
        if self.rounds:
            print(f"{len(self.rounds)} round(s) timed earlier are kept ({self.path}).", flush=True)
        elif saved:
            print(f"The rounds in {self.path} were timed in another context: timing from the first.", flush=True)

    def add(self, timed: dict[str, dict[str, float]]) -> None:
        self.rounds.append(timed)
        write_json(self.path, {"context": self.context, "rounds": self.rounds})

    @staticmethod
    def discard(runs_dir: str | Path) -> None:
        (Path(runs_dir) / TIMED_ROUNDS_FILE).unlink(missing_ok=True)


def training_device(args: HealStudyArguments) -> torch.device:
    if "--use_cpu" in shlex.split(args.training_args) or not torch.accelerator.is_available():
        return torch.device("cpu")
    return torch.accelerator.current_accelerator()


def measure_step_times(args: HealStudyArguments, earlier: StepTimesRecord | None = None) -> StepTimesRecord:
    """Seconds per training step of each planned variant's (and settings') distillation and MLM healing, from
    alternating runs of the two recipes (the budget clock's training time over the steps; the order alternates
    between rounds, so a change in the machine's load falls on both), and the MLM steps that take the time of --steps
    distillation steps. The runs are --measure_steps long, or whole runs with --measure_steps 0 (MLM for the steps
    the `earlier` record gives it, so that the head warm-up's cheaper steps weigh as in the study's run). Entries of
    an `earlier` record made at the same settings and steps per run are kept unless measured again. Finished rounds
    are kept in --runs_dir (`TimedRounds`): the same command goes on from the next round."""
    protocol = {"steps_per_run": args.measure_steps or "whole runs", "rounds": args.measure_rounds}
    same_protocol = earlier and earlier.protocol["steps_per_run"] == protocol["steps_per_run"]
    current = earlier if same_protocol and earlier.settings == step_time_settings(args) else None
    timed = {
        step_times_key(variant, keep): (variant, keep)
        for variant in args.variants
        for keep in settings_covered(args, variant)
    }
    counts = {key: {objective: timed_steps(args, objective, key, current) for objective in OBJECTIVES} for key in timed}
    device = device_name(training_device(args))
    context = {"settings": step_time_settings(args), "protocol": protocol, "device": device, "steps": counts}
    progress = TimedRounds(args.runs_dir, context)
    with tempfile.TemporaryDirectory() as scratch:
        while len(progress.rounds) < args.measure_rounds:
            round_index, seconds = len(progress.rounds), {}
            for key, (variant, keep) in timed.items():
                for objective in OBJECTIVES if round_index % 2 == 0 else OBJECTIVES[::-1]:
                    run_dir = Path(scratch) / f"{key}-{objective}-{round_index}"
                    entry, argv = healing_argv(args, variant, objective, keep, 0, counts[key][objective], run_dir)
                    spent = entry([*argv, "--num_eval_points", "0", "--max_eval_samples", "16"])
                    if spent["steps"] != counts[key][objective]:
                        raise SystemExit(
                            f"The timed {objective} run of {key} stopped ({spent['stop_reason']}) after "
                            f"{spent['steps']} of {counts[key][objective]} steps: a part-run is not a timing. "
                            f"{len(progress.rounds)} finished round(s) are kept; the same command goes on from there."
                        )
                    seconds.setdefault(key, {})[objective] = spent["elapsed_s"] / spent["steps"]
            progress.add(seconds)
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    variants = {}
    if current:
        # each kept entry says when it was measured; an entry without its own date carries the record's
        variants = {key: {"measured_at": current.measured_at, **entry} for key, entry in current.variants.items()}
    for key in counts:
        measured = {
            objective: [timed_round[key][objective] for timed_round in progress.rounds] for objective in OBJECTIVES
        }
        distillation, mlm = (statistics.median(measured[objective]) for objective in OBJECTIVES)
        variants[key] = {
            "distillation_s_per_step": distillation,
            "mlm_s_per_step": mlm,
            "runs_s_per_step": measured,
            "mlm_steps": max(1, math.floor(args.steps * distillation / mlm)),
            "measured_at": measured_at,
        }
    return StepTimesRecord(
        settings=step_time_settings(args),
        protocol=protocol,
        variants=variants,
        device=device,
        measured_at=measured_at,
    )


def timed_steps(args: HealStudyArguments, objective: str, key: str, current: StepTimesRecord | None) -> int:
    """The steps of one timed run: --measure_steps, or with 0 the whole run the study would make."""
    if args.measure_steps:
        return args.measure_steps
    if objective == "mlm" and current and key in current.variants:
        return current.mlm_steps(key)
    return args.steps
