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

import math
import shlex
import statistics
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

from modeling import VARIANTS
from recipes import distill, pretrain, probe
from recipes.cards.healed import write_healed_card
from recipes.cards.model_card import CARD_FILE
from recipes.data.tasks import offline_tasks
from recipes.environment import device_name
from recipes.evaluation.probing import describe_student
from recipes.records import (
    BUDGET_FILE,
    ProbeRecord,
    StepTimesRecord,
)
from recipes.run_folder.naming import run_name
from recipes.training.arguments import parse_args
from recipes.training.head_warmup import warmup_span
from studies import planner
from studies.healing import table as heal_table
from studies.healing.steps import (
    HEALING_TRAINING_ARGS,
    arguments_by_task,
    finetuning_step,
    gather,
    healing_objective,
    replacing_short_run,
    teacher_name,
    trained_for,
)
from studies.planner import Step

OBJECTIVES = ("distillation", "mlm")
DEFAULT_DATA_SEED = 42  # the recipes' default: the order every seed of the committed healing study read
SETTINGS = ("own", "source")
FINETUNED_ENCODERS = (*OBJECTIVES, "unhealed", "teacher")
STEP_TIMES_FILE = "step_times.json"


@dataclass
class HealStudyArguments:
    teacher: str = field(default="minilm", metadata={"help": "The pretrained BERT every hybrid is made from"})
    variants: list[str] = field(default_factory=lambda: ["hbert-v1", "hbert-v2", "pool-hybrid", "addbert"])
    source_settings_variants: list[str] = field(
        default_factory=lambda: ["hbert-v1", "hbert-v2"],
        metadata={"help": "Variants also distilled (and converted) keeping the teacher's settings"},
    )
    settings: list[str] = field(
        default_factory=lambda: list(SETTINGS),
        metadata={
            "help": "Heal and convert with each variant's own settings (own) and/or, for --source_settings_variants, "
            "the teacher's (source)"
        },
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    objectives: list[str] = field(
        default_factory=lambda: ["distillation"],
        metadata={"help": "distillation and/or mlm (with --step_times: MLM steps that take --steps' time)"},
    )
    steps: int = field(default=600, metadata={"help": "Distillation steps: the budget"})
    step_times: str | None = field(
        default=None,
        metadata={
            "help": "With --objectives mlm: the record --measure_step_times wrote, which gives each variant's MLM steps "
            "for the wall-clock of --steps distillation steps"
        },
    )
    measure_step_times: bool = field(
        default=False,
        metadata={
            "help": "Only measure: time each variant's distillation and MLM healing steps in alternating short runs "
            "and write the record --step_times reads (results_dir/step_times.json)"
        },
    )
    measure_steps: int = field(
        default=20,
        metadata={
            "help": "Steps per timed run when measuring; 0 times whole runs: distillation for --steps, MLM for the "
            "steps the --step_times record gives it so far (else --steps)"
        },
    )
    measure_rounds: int = field(default=2, metadata={"help": "Timed runs per variant and objective when measuring"})
    mlm_head_warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "MLM healing first trains only the new MLM head for this many steps, the encoder frozen "
            "(pretrain.py --head_warmup_steps): a teacher without an MLM head otherwise sends a random head's "
            "gradients into the converted encoder"
        },
    )
    vary_data_order: bool = field(
        default=False,
        metadata={
            "help": "Each seed also sets the healing runs' data order (--data_seed = seed); off, every seed reads the "
            "corpus in the order of --data_seed 42 and the intervals are over initialisations only"
        },
    )
    tasks: list[str] = field(default_factory=lambda: ["trec", "wiki-topics"])
    training_args: str = field(
        default=HEALING_TRAINING_ARGS, metadata={"help": "Arguments of every healing run (distill.py and pretrain.py)"}
    )
    probe_args: str = field(default="--max_train_samples 2000", metadata={"help": "Arguments of every probe"})
    finetune_args: list[str] = field(
        default_factory=lambda: [
            "trec=--num_train_epochs 4 --classifier_pooling mean",
            "wiki-topics=--num_train_epochs 3 --max_train_samples 2000 --classifier_pooling mean",
        ],
        metadata={"help": "TASK=ARGUMENTS of recipes/finetune.py per task"},
    )
    finetune: list[str] = field(
        default_factory=lambda: list(FINETUNED_ENCODERS),
        metadata={
            "help": f"Which encoders are fine-tuned on --tasks ({', '.join(FINETUNED_ENCODERS)}: the students of "
            "each objective, the unhealed conversions, the teacher); the probe measures all of them"
        },
    )
    runs_dir: str = "runs/heal"
    results_dir: str = "results/heal"
    cards_dir: str = field(default="model_cards", metadata={"help": "Where each distilled student's card goes"})
    namespace: str = field(default="hybrid-bert-zoo", metadata={"help": "The Hub namespace the cards name"})
    dry_run: bool = field(default=False, metadata={"help": "Print the plan, run nothing"})

    def __post_init__(self):
        for name, values, valid in (
            ("--variants", self.variants, VARIANTS),
            ("--source_settings_variants", self.source_settings_variants, VARIANTS),
            ("--objectives", self.objectives, OBJECTIVES),
            ("--settings", self.settings, SETTINGS),
            ("--tasks", self.tasks, offline_tasks()),
            ("--finetune", self.finetune, FINETUNED_ENCODERS),
        ):
            unknown = [value for value in values if value not in valid]
            if unknown:
                raise ValueError(f"{name}: {unknown} not among {', '.join(valid)}.")
        if self.measure_steps < 0:
            raise ValueError(f"--measure_steps {self.measure_steps}: steps per timed run, or 0 for whole runs.")
        if (
            self.measure_step_times
            and self.mlm_head_warmup_steps
            and 0 < self.measure_steps <= warmup_span(self.mlm_head_warmup_steps)
        ):
            raise ValueError(
                f"--measure_steps {self.measure_steps} would time only the head warm-up and ramp of "
                f"--mlm_head_warmup_steps {self.mlm_head_warmup_steps}: time whole runs (--measure_steps 0)."
            )
        if "mlm" in self.objectives and not self.measure_step_times:
            if not self.step_times:
                raise ValueError(
                    "--objectives mlm needs --step_times: the record of `--measure_step_times`, which turns --steps "
                    "distillation steps into the MLM steps that take the same wall-clock."
                )
            if not Path(self.step_times).is_file():
                raise ValueError(
                    f"--step_times {self.step_times} does not exist yet: make it first with the same arguments and "
                    "--measure_step_times (it is written to --results_dir/step_times.json)."
                )
            measured = StepTimesRecord.read(self.step_times)
            needed = planned_step_times_keys(self)
            missing = [key for key in needed if key not in measured.variants]
            if missing or measured.settings != step_time_settings(self):
                raise ValueError(
                    f"{self.step_times} was measured for {sorted(measured.variants)} at "
                    f"{measured.settings}; this study needs {needed} at {step_time_settings(self)}."
                )
            too_few = {
                key: measured.mlm_steps(key)
                for key in needed
                if measured.mlm_steps(key) <= warmup_span(self.mlm_head_warmup_steps or 0)
            }
            if too_few:
                raise ValueError(
                    f"{self.step_times} gives MLM healing {too_few} steps, none left after the head warm-up and the "
                    f"learning-rate ramp after it (twice --mlm_head_warmup_steps {self.mlm_head_warmup_steps})."
                )
        arguments_by_task(self.finetune_args, self.tasks)

    @property
    def finetune_args_by_task(self) -> dict[str, list[str]]:
        return arguments_by_task(self.finetune_args, self.tasks)


def probe_covers(encoders: dict[str, list[str]], record: Path) -> bool:
    """Whether a probe record measured every encoder planned now, each student as it is now: a student trained again
    (say after a run stopped short of its steps) has another description (steps, run key), and is probed again."""
    probed = ProbeRecord.read(record)
    recorded = probed.arguments
    planned = all(set(values) <= set(recorded.get(name) or []) for name, values in encoders.items())
    described = probed.encoders
    return planned and all(described.get(path) == describe_student(path) for path in encoders["students"])


def step_time_settings(args: HealStudyArguments) -> dict:
    """What the measured step times depend on; a step-time record applies only where these are equal."""
    return {
        "teacher": args.teacher,
        "training_args": args.training_args,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        **({"mlm_head_warmup_steps": args.mlm_head_warmup_steps} if args.mlm_head_warmup_steps else {}),
    }


def healing_argv(
    args: HealStudyArguments, variant: str, objective: str, keep: bool, seed: int, count: int, run_dir: Path
):
    """The distill.py or pretrain.py arguments of one healing run, and its entry point."""
    common = ["--variant", variant, "--seed", str(seed), "--max_steps", str(count), *shlex.split(args.training_args)]
    common += ["--data_seed", str(data_seed(args, seed)), "--output_dir", str(run_dir)]
    common += replacing_short_run(run_dir, count, data_seed(args, seed))
    settings = ["--keep_source_settings"] if keep else []
    if objective == "distillation":
        return distill.main, ["--teacher", args.teacher, *settings, *common]
    warmup = ["--head_warmup_steps", str(args.mlm_head_warmup_steps)] if args.mlm_head_warmup_steps else []
    return pretrain.main, ["--init_from", args.teacher, *settings, *warmup, *common]


def data_seed(args: HealStudyArguments, seed: int) -> int:
    return seed if args.vary_data_order else DEFAULT_DATA_SEED


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


def settings_label(keep: bool) -> str:
    return "-source-settings" if keep else ""


def step_times_key(variant: str, keep: bool) -> str:
    """A variant's entry in the step-time record: its own settings under its name, the teacher's under a suffix."""
    return variant + settings_label(keep)


def planned_step_times_keys(args: HealStudyArguments) -> list[str]:
    return [step_times_key(variant, keep) for variant in args.variants for keep in settings_covered(args, variant)]


def mlm_steps(args: HealStudyArguments, variant: str, keep: bool) -> int:
    return StepTimesRecord.read(args.step_times).mlm_steps(step_times_key(variant, keep))


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
    an `earlier` record made at the same settings and steps per run are kept unless measured again."""
    protocol = {"steps_per_run": args.measure_steps or "whole runs", "rounds": args.measure_rounds}
    same_protocol = earlier and earlier.protocol["steps_per_run"] == protocol["steps_per_run"]
    current = earlier if same_protocol and earlier.settings == step_time_settings(args) else None
    times = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.measure_rounds):
            for variant in args.variants:
                for keep in settings_covered(args, variant):
                    key = step_times_key(variant, keep)
                    measured = times.setdefault(key, {objective: [] for objective in OBJECTIVES})
                    for objective in OBJECTIVES if round_index % 2 == 0 else OBJECTIVES[::-1]:
                        run_dir = Path(scratch) / f"{key}-{objective}-{round_index}"
                        count = timed_steps(args, objective, key, current)
                        entry, argv = healing_argv(args, variant, objective, keep, 0, count, run_dir)
                        spent = entry([*argv, "--num_eval_points", "0", "--max_eval_samples", "16"])
                        measured[objective].append(spent["elapsed_s"] / spent["steps"])
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    variants = {}
    if current:
        # each kept entry says when it was measured; an entry without its own date carries the record's
        variants = {key: {"measured_at": current.measured_at, **entry} for key, entry in current.variants.items()}
    for key, measured in times.items():
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
        device=device_name(training_device(args)),
        measured_at=measured_at,
    )


def timed_steps(args: HealStudyArguments, objective: str, key: str, current: StepTimesRecord | None) -> int:
    """The steps of one timed run: --measure_steps, or with 0 the whole run the study would make."""
    if args.measure_steps:
        return args.measure_steps
    if objective == "mlm" and current and key in current.variants:
        return current.mlm_steps(key)
    return args.steps


def settings_covered(args: HealStudyArguments, variant: str) -> list[bool]:
    """Whether each distilled and unhealed row of `variant` keeps the teacher's settings: False for the variant's own
    (with --settings own), True for the teacher's (with --settings source, for --source_settings_variants)."""
    covered = [False] if "own" in args.settings else []
    return covered + ([True] if "source" in args.settings and variant in args.source_settings_variants else [])


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
        path = Path(args.results_dir) / STEP_TIMES_FILE
        earlier = StepTimesRecord.read(path) if path.is_file() else None
        path = measure_step_times(args, earlier).write(path)
        print(f"Step times written to {path}.", flush=True)
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
