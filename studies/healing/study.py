"""The healing study (HBERT §4.4): hybrids made from a pretrained BERT, healed or not, against their teacher.

    python -m studies.healing.study --variants hbert-v1 --seeds 1 2 3 --objectives distillation --dry_run
    python -m studies.healing.study                      # the whole of `make zoo-heal`

For each seed and variant, the plan is: heal the variant made from the teacher by distillation for `--steps` steps
(with the variant's settings, and for `--source_settings_variants` also keeping the teacher's) and, with
`--objectives mlm`, by MLM at the same settings for the steps that take the same wall-clock (`--step_times`); probe
every healed student beside the teacher and the unhealed conversions (`recipes/probe.py`); fine-tune each healed
student, each unhealed conversion (`recipes.finetune --convert_to`) and the teacher on every task with the seed
(`--finetune` picks which of these are fine-tuned; the probe measures all). A fine-tuning whose record was made with
other settings (`--finetune_args`) is made again. Budgets are step counts, so a rerun trains the same
models whatever else the machine does; the clock (`--budget` in `--training_args`) only caps a runaway run. A step
whose record is current is skipped (`studies/planner.py`; a healing run's record is current when it made its planned
steps, so records made at earlier commits stand), so the same command resumes the study; stopping one mid-run loses only that run (the
recipes resume from their checkpoints). The records (no weights) are gathered into `--results_dir`, the table
(`studies/healing/table.py`) is written from them, and each distilled student's card (`recipes/cards/healed.py`) from its
gathered records and the table, into `--cards_dir/<run name>/README.md`.
"""

from __future__ import annotations

import shlex
from functools import partial
from pathlib import Path

from recipes import distill, probe
from recipes.cards.healed import write_healed_card
from recipes.cards.model_card import CARD_FILE
from recipes.evaluation.probing import describe_student
from recipes.records import BUDGET_FILE, ProbeRecord, StepTimesRecord
from recipes.run_folder.naming import run_name
from recipes.training.arguments import parse_args
from studies import planner
from studies.healing import table as heal_table
from studies.healing.arguments import (
    HealStudyArguments,
    data_seed,
    healing_argv,
    settings_covered,
    settings_label,
    step_times_key,
)
from studies.healing.step_times import write_step_times
from studies.healing.steps import finetuning_step, gather, healing_objective, teacher_name, trained_for
from studies.planner import Step


def probe_covers(encoders: dict[str, list[str]], record: Path) -> bool:
    """Whether a probe record measured every encoder planned now, each student as it is now: a student trained again
    (say after a run stopped short of its steps) has another description (steps, run key), and is probed again."""
    probed = ProbeRecord.read(record)
    recorded = probed.arguments
    planned = all(set(values) <= set(recorded.get(name) or []) for name, values in encoders.items())
    described = probed.encoders
    return planned and all(described.get(path) == describe_student(path) for path in encoders["students"])


def mlm_label(args: HealStudyArguments) -> str:
    return f"mlm-warmhead{args.mlm_head_warmup_steps}" if args.mlm_head_warmup_steps else "mlm"


def healing_steps(args: HealStudyArguments, variant: str, seed: int) -> list[Step]:
    steps = []
    for objective in args.objectives:
        for keep in settings_covered(args, variant):
            count = args.steps if objective == "distillation" else mlm_steps(args, variant, keep)
            objective_label = "distill" if objective == "distillation" else mlm_label(args)
            label = run_name(
                variant, teacher_name(args.teacher), objective_label + settings_label(keep), f"{count}steps", seed=seed
            )
            run_dir = Path(args.runs_dir) / label
            entry, argv = healing_argv(args, variant, objective, keep, seed, count, run_dir)
            done = partial(trained_for, count, data_seed(args, seed))
            steps.append(Step(label, entry, argv, run_dir / BUDGET_FILE, done))
    return steps


def mlm_steps(args: HealStudyArguments, variant: str, keep: bool) -> int:
    return StepTimesRecord.read(args.step_times).mlm_steps(step_times_key(variant, keep))


def unhealed_models(args: HealStudyArguments, variant: str) -> list[tuple[str, list[str]]]:
    """(name, finetune.py arguments) of each unhealed conversion of `variant`."""
    return [
        (
            run_name(variant, teacher_name(args.teacher), "unhealed" + settings_label(keep)),
            ["--convert_to", variant, *(["--keep_source_settings"] if keep else [])],
        )
        for keep in settings_covered(args, variant)
    ]


def plan(args: HealStudyArguments) -> list[Step]:
    steps = []
    finetuned = partial(finetuning_step, Path(args.runs_dir), args.finetune_args_by_task)
    for seed in args.seeds:
        for variant in args.variants:
            healed = healing_steps(args, variant, seed)
            steps += healed
            covered = settings_covered(args, variant)
            encoders = {
                "students": [str(step.record.parent) for step in healed],
                "unhealed": [variant] if False in covered else [],
                "unhealed_source_settings": [variant] if True in covered else [],
            }
            probe_argv = ["--teacher", args.teacher]
            for name, values in encoders.items():
                probe_argv += [f"--{name}", *values] if values else []
            probe_argv += ["--tasks", *args.tasks, "--seed", str(seed)]
            output = Path(args.results_dir) / f"{run_name('probe', variant, seed=seed)}.json"
            probe_argv += [*shlex.split(args.probe_args), "--output_file", str(output)]
            steps.append(Step(output.name, probe.main, probe_argv, output, partial(probe_covers, encoders)))
            students = [step for step in healed if healing_objective(step) in args.finetune]
            unhealed = unhealed_models(args, variant) if "unhealed" in args.finetune else []
            for task in args.tasks:
                for step in students:
                    weights = step.record.parent
                    steps.append(finetuned(step.name, ["--model", str(weights)], task, seed, (weights,)))
                for name, convert in unhealed:
                    steps.append(finetuned(run_name(name, seed=seed), ["--model", args.teacher, *convert], task, seed))
        for task in args.tasks if "teacher" in args.finetune else []:
            steps.append(
                finetuned(run_name(teacher_name(args.teacher), seed=seed), ["--model", args.teacher], task, seed)
            )
    return steps


def main(argv: list[str] | None = None) -> list[Step]:
    (args,) = parse_args((HealStudyArguments,), argv)
    if args.measure_step_times:
        print(f"Step times written to {write_step_times(args)}.", flush=True)
        return []
    steps = plan(args)
    print(planner.summary("Healing study", steps), flush=True)
    if args.dry_run:
        return steps
    results_dir = Path(args.results_dir)
    planner.run(steps, after=partial(gather, results_dir=results_dir))
    probes = sorted(str(path) for path in results_dir.glob("probe-*.json"))
    finetuned = sorted(str(path) for path in (results_dir / "finetuned").glob("*.json"))
    table = results_dir / "table.md"
    frontier = results_dir / "frontier" / "frontier.json"  # the conversions' latency against the same implementation
    same_implementation = ["--frontier", str(frontier)] if frontier.is_file() else []
    heal_table.main(["--probes", *probes, "--finetuned", *finetuned, "--output", str(table), *same_implementation])
    for step in steps:
        if step.main is distill.main:
            card = Path(args.cards_dir) / step.name / CARD_FILE
            write_healed_card(
                results_dir / "runs" / step.name, f"{args.namespace}/{step.name}", card, table.with_suffix(".json")
            )
    return steps


if __name__ == "__main__":
    main()
