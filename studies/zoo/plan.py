"""The zoo's plan: every pretraining and fine-tuning step, each marked to run or skip by the studies' shared rule
(`studies/planner.py`): the key of its record on disk is the key of what it would run now."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from recipes import finetune, pretrain
from recipes.records import BUDGET_FILE, FinetuningKey, FinetuningRecord, PretrainingRecord
from recipes.run_folder.naming import init_part, run_name, split_variant
from recipes.training.clock import parse_budget
from studies.planner import Step, finetuning_current, finished_run, planned_finetuning, pretraining_current
from studies.zoo.arguments import HEADLINE_VARIANTS, INITS, REFERENCE_DIR, SCRATCH, ZooArguments


@dataclass(frozen=True)
class FinetuningStep:
    model: str  # a pretraining run directory, or a reference checkpoint's name
    task: str
    init: str
    seed: int
    argv: list[str]
    runs: bool

    @property
    def output_dir(self) -> Path:
        return Path(self.argv[self.argv.index("--output_dir") + 1])


@dataclass(frozen=True)
class PretrainingStep:
    run_dir: Path
    argv: list[str]
    runs: bool
    finetuning: tuple[FinetuningStep, ...]


@dataclass(frozen=True)
class ZooPlan:
    pretraining: list[PretrainingStep]
    references: list[FinetuningStep]

    @property
    def finetuning(self) -> list[FinetuningStep]:
        return [step for pretraining in self.pretraining for step in pretraining.finetuning] + self.references

    @property
    def steps(self) -> list[PretrainingStep | FinetuningStep]:
        return [*self.pretraining, *self.finetuning]

    def describe(self) -> str:
        lines = [f"{'run ' if step.runs else 'skip'} pretrain {step.run_dir.name}" for step in self.pretraining]
        lines += [
            f"{'run ' if step.runs else 'skip'} finetune {Path(step.model).name} {step.task} {step.init} seed {step.seed}"
            for step in self.finetuning
        ]
        running = sum(step.runs for step in self.steps)
        return "\n".join([f"Zoo plan: {running} to run, {len(self.steps) - running} skipped.", *lines])


def pretraining_seeds(args: ZooArguments, label: str, budget: str) -> list[int]:
    shortest = min(args.budgets, key=parse_budget)
    if args.headline_pretrain_seeds and label in HEADLINE_VARIANTS and budget == shortest:
        return args.headline_pretrain_seeds
    return args.pretrain_seeds


def pretraining_argv(args: ZooArguments, label: str, start: str, budget: str, seed: int, run_dir: Path) -> list[str]:
    variant, drop_mask = split_variant(label)
    return [
        "--variant",
        variant,
        "--size",
        args.size,
        "--budget",
        budget,
        "--seed",
        str(seed),
        "--output_dir",
        str(run_dir),
        *(["--drop_mask"] if drop_mask else []),
        *(["--init_from", start] if start != SCRATCH else []),
        *shlex.split(args.pretrain_args),
    ]


def pretraining_done(run_dir: Path, argv: list[str]) -> bool:
    """Whether `run_dir` holds the finished run these arguments would make."""
    return Step(run_dir.name, pretrain.main, argv, run_dir / BUDGET_FILE, pretraining_current(argv)).done


class StaleRunError(FileExistsError):
    """A finished run the zoo would make differently now; replacing it is the user's explicit choice."""


def replacing(argv: list[str], run_dir: Path, replace_stale: bool) -> list[str]:
    """The command that replaces the finished run in `run_dir`, with --replace_stale; StaleRunError otherwise."""
    if not replace_stale:
        raise StaleRunError(
            f"{run_dir} holds a finished run made by other code or settings than this zoo's plan (its record's key "
            "differs). Pass --replace_stale to run it again, or another --output_dir to keep it."
        )
    return [*argv, "--overwrite_output_dir"]


def finetuning_rerun(argv: list[str], output_dir: Path, done: bool, replace_stale: bool) -> list[str]:
    """A fine-tuning that runs again replaces what its folder holds: a run cut short (no record) always, a finished
    one only with --replace_stale."""
    if done or not output_dir.is_dir() or not any(output_dir.iterdir()):
        return argv
    if (output_dir / FinetuningRecord.FILE).is_file():
        return replacing(argv, output_dir, replace_stale)
    return [*argv, "--overwrite_output_dir"]


def finetuning_done(record_path: Path, planned: FinetuningKey) -> bool:
    return Step(record_path.name, finetune.main, [], record_path, finetuning_current(planned)).done


def finetuning_argv(model: str, task: str, seed: int, output_dir: Path, args: ZooArguments, *extra: str) -> list[str]:
    return [
        "--model",
        model,
        "--task",
        task,
        "--seed",
        str(seed),
        "--output_dir",
        str(output_dir),
        *extra,
        *shlex.split(args.finetune_args),
    ]


def finetuning_steps(
    args: ZooArguments, run_dir: Path, run_key: str | None, inits: tuple[str, ...]
) -> tuple[FinetuningStep, ...]:
    """Every fine-tuning of one pretraining run; `run_key` (of its weights) is None when the pretraining will run."""
    steps = []
    for task in args.tasks:
        for seed in args.finetune_seeds:
            for init in inits:
                output_dir = Path(args.output_dir) / "finetuned" / run_dir.name / task / run_name(init, seed=seed)
                from_scratch = ["--from_scratch"] if init == "scratch" else []
                argv = finetuning_argv(str(run_dir), task, seed, output_dir, args, *from_scratch)
                record_path = FinetuningRecord.downstream_path(run_dir, task, init, seed)
                done = run_key is not None and finetuning_done(
                    record_path, planned_finetuning(argv, task, init, seed, run_key)
                )
                argv = finetuning_rerun(argv, output_dir, done, args.replace_stale)
                steps.append(FinetuningStep(str(run_dir), task, init, seed, argv, runs=not done))
    return tuple(steps)


def reference_steps(args: ZooArguments) -> list[FinetuningStep]:
    """Each reference checkpoint fine-tuned as it is, per task and seed; its record stays in its output folder."""
    steps = []
    for model in args.reference_models:
        for task in args.tasks:
            for seed in args.finetune_seeds:
                output_dir = Path(args.output_dir) / REFERENCE_DIR / model / task / run_name(seed=seed)
                argv = finetuning_argv(model, task, seed, output_dir, args)
                planned = planned_finetuning(argv, task, "pretrained", seed, None)
                done = finetuning_done(output_dir / FinetuningRecord.FILE, planned)
                argv = finetuning_rerun(argv, output_dir, done, args.replace_stale)
                steps.append(FinetuningStep(model, task, "pretrained", seed, argv, runs=not done))
    return steps


def plan_zoo(args: ZooArguments) -> ZooPlan:
    pretraining, with_scratch_baseline = [], set()
    for label in args.variants:
        for start in args.starts:
            for budget in args.budgets:
                for seed in pretraining_seeds(args, label, budget):
                    init_from = start if start != SCRATCH else None
                    run_dir = Path(args.output_dir) / run_name(
                        label, args.size, init_part(init_from), budget, seed=seed
                    )
                    argv = pretraining_argv(args, label, start, budget, seed, run_dir)
                    runs = not pretraining_done(run_dir, argv)
                    if runs and finished_run(run_dir):
                        argv = replacing(argv, run_dir, args.replace_stale)
                    # Random weights do not depend on the budget, seed or start: one baseline per variant.
                    inits = ("pretrained",)
                    if args.finetune_from_scratch and label not in with_scratch_baseline:
                        inits, _ = INITS, with_scratch_baseline.add(label)
                    run_key = None if runs else PretrainingRecord.read(run_dir).run_record.run_key()
                    pretraining.append(
                        PretrainingStep(run_dir, argv, runs, finetuning_steps(args, run_dir, run_key, inits))
                    )
    return ZooPlan(pretraining, reference_steps(args))
