"""What every study plans with. A study is a list of steps, each one recipe run (its entry point and arguments) that
writes one record; a step is done when that record exists and is current: its key (`recipes.records`) is the key of
what the step would make now. Running a study runs the steps that are not done, in order, so the same command resumes
it (the recipes themselves resume a run cut short from its checkpoints).

The rules for "current", one per record type:
- a pretraining or distillation run (`budget.json`): it finished (not stopped by a signal) and its key, which names
  the code, versions, data, budget, seed and arguments, matches the planned one (`recipes.training.pretraining_run.planned_key`);
- a fine-tuning (`downstream_record.json`, or a run's `downstream/<task>/<init>-seed<seed>.json`): its key (task, init,
  seed, the weights' run key and the training settings) is the planned one.
A study that spans commits on purpose (the equal-time study runs from a frozen worktree) states its own rule beside
its plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from recipes.evaluation.finetune_arguments import planned_training_settings
from recipes.records import FinetuningKey, FinetuningRecord, PretrainingRecord
from recipes.training.pretraining_run import planned_key


def always_current(record: Path) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One recipe run: its name (the run folder's), entry point and arguments, the record it writes, and the rule that
    says whether that record is what the step would make now. `gathered` is where the study keeps a copy of the record
    (committed, unlike the run folder); `needed_by` are the steps that read this run's outputs (its weights)."""

    name: str
    main: Callable[[list[str]], object]
    argv: list[str]
    record: Path
    current: Callable[[Path], bool] = always_current
    gathered: Path | None = None
    needed_by: tuple[Step, ...] = ()

    @property
    def done(self) -> bool:
        if self.record.is_file() and self.current(self.record):
            return True
        # A new checkout has the gathered records and no run folders: a gathered run counts as done while every step
        # that needs its weights is done too; otherwise it runs again to make them.
        return (
            self.gathered is not None
            and self.gathered.is_file()
            and self.current(self.gathered)
            and all(step.done for step in self.needed_by)
        )


def finished_run(run_dir: Path) -> bool:
    """Whether the folder holds a run's record of a run that was not stopped by a signal."""
    return PretrainingRecord.exists(run_dir) and PretrainingRecord.read(run_dir).stop_reason != "signal"


def pretraining_current(argv: list[str]) -> Callable[[Path], bool]:
    """The rule for a pretraining record (the run folder's `budget.json`): finished, with the planned key."""

    def current(record: Path) -> bool:
        run_dir = record.parent
        return finished_run(run_dir) and PretrainingRecord.read(run_dir).key().matches(planned_key(argv))

    return current


def planned_finetuning(argv: list[str], task: str, init: str, seed: int, run_key: str | None) -> FinetuningKey:
    """The key of the fine-tuning these arguments would make, on the weights of the run with `run_key`."""
    return FinetuningKey(task, init, seed, run_key, planned_training_settings(argv))


def finetuning_current(planned: FinetuningKey | Callable[[], FinetuningKey]) -> Callable[[Path], bool]:
    """The rule for a fine-tuning record: its key is the planned one (given, or computed when asked: the run key of
    weights that a step before it makes is known only once they exist)."""

    def current(record: Path) -> bool:
        return FinetuningRecord.read(record).key() == (planned() if callable(planned) else planned)

    return current


def summary(title: str, steps: Iterable[Step]) -> str:
    steps = list(steps)
    lines = [f"{'skip' if step.done else 'run '} {step.name}" for step in steps]
    return "\n".join([f"{title}: {sum(not step.done for step in steps)} of {len(steps)} steps to run.", *lines])


def run(steps: Iterable[Step], after: Callable[[Step], None] = lambda step: None) -> None:
    """Runs each step that is not done, in order; `after` follows every step, run or skipped (gathering its records).
    A step that ends without a current record (a run stopped by a signal checkpoints and records so) stops the study
    there, ungathered, so that no later step reads what it did not make; the same command resumes it."""
    for step in steps:
        if not step.done:
            step.main(step.argv)
            if not step.done:
                raise SystemExit(f"{step.name} ended without a current record (stopped?): the study stops here.")
        after(step)
