"""The steps a healing study is made of, shared by the healing study (`study.py`) and the frontier
(`frontier_runs.py`): when a healing run is done or must be replaced, a fine-tuning step, and gathering a finished
step's records (no weights) into the results."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from transformers.utils import CONFIG_NAME

from recipes import distill, finetune, probe
from recipes.records import BUDGET_FILE, FinetuningKey, FinetuningRecord, PretrainingRecord
from recipes.training.curves import CURVE_FILE
from studies.planner import Step, finetuning_current, planned_finetuning

# The arguments of every healing run (distill.py, and pretrain.py for MLM healing) of the healing study and the frontier.
HEALING_TRAINING_ARGS = "--max_seq_length 128 --per_device_train_batch_size 32 --budget 3h"
CURVE_FILES = {"distillation": [distill.AGREEMENT_CURVE_FILE, "agreement_curve.png"], "mlm": [CURVE_FILE]}


def trained_for(steps: int, data_seed: int, record: Path) -> bool:
    """Whether a healing run's record is of a run that made its planned steps in its planned data order (one stopped
    by a signal, or by the wall-clock fallback, also leaves a record; the study runs it again)."""
    recorded = PretrainingRecord.read(record.parent)
    return recorded.steps == steps and recorded.run_record.training.get("data_seed") == data_seed


def replacing_short_run(run_dir: Path, steps: int, data_seed: int) -> list[str]:
    """A healing run stopped part-way by a signal continues from its checkpoint; one that ended short of its planned
    steps any other way (the wall-clock fallback), or one in another data order, is the study's to replace: it is run
    again from the start."""
    record = run_dir / BUDGET_FILE
    if not record.is_file():
        return []
    finished = PretrainingRecord.read(run_dir)
    short = finished.stop_reason != "signal" and finished.steps != steps
    reordered = finished.run_record.training.get("data_seed") != data_seed
    return ["--overwrite_output_dir"] if short or reordered else []


def teacher_name(teacher: str) -> str:
    return Path(teacher).name


def arguments_by_task(entries: list[str], tasks: list[str]) -> dict[str, list[str]]:
    """'TASK=ARGUMENTS' entries (a study's --finetune_args) as {task: argv}; every task must be one of `tasks`."""
    if not all("=" in entry for entry in entries):
        raise ValueError(f"--finetune_args: TASK=ARGUMENTS for tasks among {tasks}; got {entries}.")
    by_task = {task: shlex.split(rest) for task, rest in (entry.split("=", 1) for entry in entries)}
    if set(by_task) - set(tasks):
        raise ValueError(f"--finetune_args: TASK=ARGUMENTS for tasks among {tasks}; got {entries}.")
    return by_task


def finetuning_step(
    runs_dir: Path,
    task_arguments: dict[str, list[str]],
    name: str,
    model_argv: list[str],
    task: str,
    seed: int,
    weights: tuple[Path, ...] = (),
) -> Step:
    """Fine-tuning the teacher, a conversion of it, or a healed student (whose run key the record must cite: known
    once the student is trained, from the first of the folders in `weights` that holds its record: the run folder, or
    the gathered copy of its records), with the task's arguments."""
    output_dir = runs_dir / "finetuned" / f"{name}-{task}"
    argv = [*model_argv, "--task", task, "--seed", str(seed), *task_arguments.get(task, [])]
    argv += ["--output_dir", str(output_dir), "--overwrite_output_dir"]

    def planned() -> FinetuningKey:
        trained = next((folder for folder in weights if PretrainingRecord.exists(folder)), None)
        run_key = PretrainingRecord.read(trained).run_record.run_key() if trained else None
        return planned_finetuning(argv, task, "pretrained", seed, run_key)

    return Step(output_dir.name, finetune.main, argv, output_dir / FinetuningRecord.FILE, finetuning_current(planned))


def healing_objective(step: Step) -> str:
    return "distillation" if step.main is distill.main else "mlm"


def gathered_record(step: Step, results_dir: Path) -> Path:
    """Where `gather` keeps the copy of a step's record: a fine-tuning's as `finetuned/<name>.json`, a healing run's
    in `runs/<name>/` beside its config and curves. A probe writes its record into the results itself."""
    if step.main is finetune.main:
        return results_dir / "finetuned" / f"{step.name}.json"
    return results_dir / "runs" / step.name / step.record.name


def gather(step: Step, results_dir: Path) -> None:
    """A healing run's record and curve, or a fine-tuning's record, copied into the results (no weights). A step done
    from its gathered copy (a new checkout) has nothing to copy."""
    if not step.record.is_file():
        return
    if step.main is finetune.main:
        destination = gathered_record(step, results_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(step.record, destination)
    elif step.main is not probe.main:
        run_dir, destination = step.record.parent, gathered_record(step, results_dir).parent
        destination.mkdir(parents=True, exist_ok=True)
        for name in [BUDGET_FILE, CONFIG_NAME, *CURVE_FILES[healing_objective(step)]]:
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, destination / name)
