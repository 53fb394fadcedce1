"""Which checkpoint a budgeted run continues from, decided from the arguments and what its output folder holds,
with the folder claimed for the run's lifetime (pretraining and distillation share it).

A folder's `run.json` (`RunIdentity`) says what shapes the run in it; a command continues that run only when it
shapes it the same way, and is refused otherwise, before anything loads, with one message naming every differing
setting and both values. The one change a run accepts is a larger budget with an explicit `--resume_from_checkpoint`
(continuing a finished run); the identity then records the budget it grew from."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from transformers import TrainingArguments

from recipes.records import BUDGET_FILE, IDENTITY_FILE, RunIdentity, read_json_object
from recipes.run_folder.checkpoints import STAGING_PREFIX, TRAINER_STATE_FILE, incomplete_checkpoints, last_checkpoint
from recipes.run_folder.claim import check_holds_run, claim_output_dir, describe, entries, replace_run
from recipes.training.budget import BUDGET_STATE_FILE
from recipes.training.curves import CURVE_FILE

T = TypeVar("T")
REQUIRED_CHECKPOINT_FILES = (TRAINER_STATE_FILE, BUDGET_STATE_FILE)
# What a larger budget changes in a run's shapes (a calibrated budget's step count grows with it).
GROWABLE_FIELDS = ("budget.budget_s:", "budget.calibration.steps:")


class RunMismatchError(FileExistsError):
    """The output folder holds a run that this command would shape differently; nothing was changed."""


def check_same_run(output_dir: Path, requested: RunIdentity, resume: str | None) -> RunIdentity:
    """The identity to write for this command: the requested one, once the folder's run (if it has an identity) is
    found to be the same run; RunMismatchError naming every difference otherwise. A larger budget is accepted with an
    explicit --resume_from_checkpoint, and recorded."""
    recorded = RunIdentity.read(output_dir)
    if recorded is None:
        return requested
    differences = recorded.differences(requested)
    grown = grown_budget(recorded, requested)
    if resume and grown and all(line.startswith(GROWABLE_FIELDS) for line in differences):
        return replace(requested, conditions={**requested.conditions, "budget_grown_from_s": grown})
    if differences:
        raise RunMismatchError(
            f"{output_dir} holds a run that this command would shape differently:\n  "
            + "\n  ".join(differences)
            + "\nRepeat the run's command to continue it; give another --output_dir for a new run, or "
            "--overwrite_output_dir to replace it."
        )
    return replace(requested, conditions={**recorded.conditions, **requested.conditions})


def grown_budget(recorded: RunIdentity, requested: RunIdentity) -> float | None:
    """The recorded budget when the command asks for a larger one (None otherwise)."""
    before, after = (
        recorded.shapes.get("budget", {}).get("budget_s"),
        requested.shapes.get("budget", {}).get("budget_s"),
    )
    return before if before is not None and after is not None and after > before else None


def resume_point(output_dir: Path, resume: str | None, overwrite: bool, curve_file: str = CURVE_FILE) -> str | None:
    """The checkpoint this run continues from (None: a fresh start), from the arguments and what the output folder
    holds: an unfinished run (no budget.json, or one stopped by a signal) continues from its last complete
    checkpoint without being asked; a finished run, or anything else, is refused unless replaced."""
    if resume and overwrite:
        raise ValueError("--overwrite_output_dir and --resume_from_checkpoint contradict each other: pass one.")
    if overwrite:
        check_holds_run(output_dir)
        return None
    if resume and resume.lower() not in ("true", "latest"):
        return resume
    checkpoint = last_checkpoint(output_dir, REQUIRED_CHECKPOINT_FILES)
    if resume:
        if not checkpoint:
            raise FileNotFoundError(f"No complete checkpoint-* folder in {output_dir} to resume from.")
        return checkpoint
    names = entries(output_dir)
    if not names:
        return None
    # Only the stop reason matters here, and a folder left by a run that died while writing may hold a partial record.
    budget_file = output_dir / BUDGET_FILE
    stop_reason = (
        read_json_object(budget_file, "pretraining record").get("stop_reason") if budget_file.is_file() else "signal"
    )
    if stop_reason != "signal":
        raise FileExistsError(
            f"{output_dir} already holds a finished run (stop_reason {stop_reason!r}); pass --overwrite_output_dir to "
            "replace it, or --resume_from_checkpoint with a larger --budget to continue it."
        )
    if checkpoint:
        return checkpoint
    # What a run that died before its first checkpoint leaves: its curve, and writes and saves cut short.
    partial_run = (Path(curve_file).stem, f"{STAGING_PREFIX}checkpoint-", f".{BUDGET_FILE}", IDENTITY_FILE)
    if all(name.startswith(partial_run) for name in names):
        return None  # it starts again
    raise FileExistsError(
        f"{output_dir} already holds {describe(names)} and no run to resume; pass --overwrite_output_dir to "
        "replace a run of this project, or choose another --output_dir."
    )


def curve_until(points: list[dict], checkpoint: str | None) -> list[dict]:
    """A resumed run's curve up to its checkpoint (a fresh run starts an empty one)."""
    if not checkpoint:
        return []
    return [point for point in points if point["step"] <= int(Path(checkpoint).name.split("-")[1])]


@contextmanager
def claimed_output_dir(
    training_args: TrainingArguments,
    overwrite: bool,
    identity: RunIdentity,
    curve_file: str = CURVE_FILE,
    prepare: Callable[[str | None], T] = lambda checkpoint: None,
) -> Iterator[tuple[str | None, T]]:
    """Holds the output directory's lock for the body and yields the checkpoint the run continues from (None: a fresh
    start; see `resume_point`) and what `prepare(checkpoint)` returned: the recipe's own checks and data preparation,
    which run once the folder's run is found to be this command's (`check_same_run`) and before anything in the
    folder changes. The main process then replaces a run (--overwrite_output_dir), removes checkpoints cut short and
    writes the identity."""
    output_dir = Path(training_args.output_dir)
    is_main_process = training_args.process_index == 0
    with claim_output_dir(output_dir, is_main_process):
        resume = training_args.resume_from_checkpoint
        checkpoint = resume_point(output_dir, resume, overwrite, curve_file)
        if not overwrite:
            identity = check_same_run(output_dir, identity, resume)
        prepared = prepare(checkpoint)
        if is_main_process:
            if overwrite:
                replace_run(output_dir)
            for incomplete in incomplete_checkpoints(output_dir):
                shutil.rmtree(incomplete)
            identity.write(output_dir)
            if checkpoint:
                print(f"Resuming from {checkpoint}.", flush=True)
        yield checkpoint, prepared
