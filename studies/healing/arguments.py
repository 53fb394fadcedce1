"""The healing study's arguments (`HealStudyArguments`, checked whole before anything runs) and what follows from them
alone: which settings each variant is healed and converted with, the key of its step times, each seed's data order, and
the recipe arguments of one healing run."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modeling import VARIANTS
from recipes import distill, pretrain
from recipes.data.tasks import offline_tasks
from recipes.records import StepTimesRecord
from recipes.training.head_warmup import warmup_span
from studies.healing.steps import HEALING_TRAINING_ARGS, arguments_by_task, replacing_short_run

OBJECTIVES = ("distillation", "mlm")
DEFAULT_DATA_SEED = 42  # the recipes' default: the order every seed of the committed healing study read
SETTINGS = ("own", "source")
FINETUNED_ENCODERS = (*OBJECTIVES, "unhealed", "teacher")


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
            "help": "Only measure: time each variant's distillation and MLM healing steps in alternating runs and write "
            "the record --step_times reads (results_dir/step_times.json; studies/healing/step_times.py); finished "
            "rounds are kept, so the same command goes on from the next"
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


def settings_covered(args: HealStudyArguments, variant: str) -> list[bool]:
    """Whether each distilled and unhealed row of `variant` keeps the teacher's settings: False for the variant's own
    (with --settings own), True for the teacher's (with --settings source, for --source_settings_variants)."""
    covered = [False] if "own" in args.settings else []
    return covered + ([True] if "source" in args.settings and variant in args.source_settings_variants else [])


def settings_label(keep: bool) -> str:
    return "-source-settings" if keep else ""


def step_times_key(variant: str, keep: bool) -> str:
    """A variant's entry in the step-time record: its own settings under its name, the teacher's under a suffix."""
    return variant + settings_label(keep)


def planned_step_times_keys(args: HealStudyArguments) -> list[str]:
    return [step_times_key(variant, keep) for variant in args.variants for keep in settings_covered(args, variant)]


def step_time_settings(args: HealStudyArguments) -> dict:
    """What the measured step times depend on; a step-time record applies only where these are equal."""
    return {
        "teacher": args.teacher,
        "training_args": args.training_args,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        **({"mlm_head_warmup_steps": args.mlm_head_warmup_steps} if args.mlm_head_warmup_steps else {}),
    }


def data_seed(args: HealStudyArguments, seed: int) -> int:
    return seed if args.vary_data_order else DEFAULT_DATA_SEED


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
