"""The healing frontier's runs (issue 34; the protocol, fixed before any score: `FRONTIER.md`).

    python -m studies.healing.frontier_runs --dry_run     # the plan: which steps are done, which would run
    python -m studies.healing.frontier_runs               # runs what is not done; the same command resumes

For every point of the frontier (a mixer and k, its layout read from `results/heal/frontier/frontier.json`) and every
seed: the conversion of MiniLM with that layout and MiniLM's settings, fine-tuned as it is (unhealed), and the same
conversion distilled from MiniLM for `--steps` steps (healed), then fine-tuned. A seed sets the new mixers'
initialisation, the distillation's data order (`--data_seed`) and the fine-tuning's seed. The denominators, at the
same seeds and tasks: MiniLM itself and `from_bert(minilm, "bert")`, MiniLM in this project's implementation. Every
fine-tuning chooses its learning rate on validation from the grid in `--finetune_args` and keeps its per-example test
predictions. Records (no weights) are gathered into `--results_dir` (`runs/`, `finetuned/`) as steps finish.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from recipes import distill
from recipes.data.tasks import offline_tasks
from recipes.records import BUDGET_FILE, FrontierRecord
from recipes.run_folder.naming import run_name
from recipes.training.arguments import parse_args
from studies import planner
from studies.healing.frontier import MIXERS, RESULTS
from studies.healing.steps import (
    arguments_by_task,
    finetuning_step,
    gather,
    replacing_short_run,
    teacher_name,
    trained_for,
)
from studies.planner import Step

SAME_IMPLEMENTATION = "bert"  # the denominator in this project's implementation: from_bert(teacher, "bert")


@dataclass
class FrontierRunArguments:
    teacher: str = field(default="minilm", metadata={"help": "The pretrained BERT every point is converted from"})
    layouts: str = field(
        default=str(RESULTS / "frontier.json"), metadata={"help": "The frontier record whose layouts the points take"}
    )
    mixers: list[str] = field(default_factory=lambda: list(MIXERS), metadata={"help": "additive and/or pooling"})
    counts: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6], metadata={"help": "k: layers replaced"})
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    steps: int = field(default=600, metadata={"help": "Distillation steps of every healed point"})
    tasks: list[str] = field(default_factory=lambda: ["trec", "wiki-topics"])
    training_args: str = field(
        default="--max_seq_length 128 --per_device_train_batch_size 32 --budget 3h",
        metadata={"help": "Arguments of every distillation (the healing study's)"},
    )
    finetune_args: list[str] = field(
        default_factory=lambda: [
            "trec=--num_train_epochs 4 --classifier_pooling mean --learning_rates 5e-5 1e-4 2e-4",
            "wiki-topics=--num_train_epochs 3 --max_train_samples 2000 --classifier_pooling mean "
            "--learning_rates 5e-5 1e-4 2e-4",
        ],
        metadata={"help": "TASK=ARGUMENTS of recipes/finetune.py per task"},
    )
    runs_dir: str = "runs/heal/frontier"
    results_dir: str = str(RESULTS)
    dry_run: bool = field(default=False, metadata={"help": "Print the plan, run nothing"})

    def __post_init__(self):
        for name, values, valid in (("--mixers", self.mixers, MIXERS), ("--tasks", self.tasks, offline_tasks())):
            unknown = [value for value in values if value not in valid]
            if unknown:
                raise ValueError(f"{name}: {unknown} not among {', '.join(valid)}.")
        arguments_by_task(self.finetune_args, self.tasks)

    def layout(self, mixer: str, k: int) -> list[str]:
        layouts = FrontierRecord.read(self.layouts).layouts[mixer]
        if str(k) not in layouts:
            raise ValueError(f"{self.layouts} has no layout for {mixer} k={k} (it has k = {', '.join(layouts)}).")
        return layouts[str(k)]


def point_label(mixer: str, k: int) -> str:
    return f"{mixer}-k{k}"


def overrides(args: FrontierRunArguments, mixer: str, k: int) -> str:
    """The point's layout as config overrides (MiniLM's settings come from --keep_source_settings)."""
    return "mixer_types=" + "+".join(args.layout(mixer, k))


TEACHER_ROW, SAME_IMPLEMENTATION_ROW = "teacher", "same implementation"  # the denominators' rows
ARMS = ("unhealed", "healed")


def model_name(args: FrontierRunArguments, row: str, arm: str | None, seed: int) -> str:
    """The name of a model the frontier fine-tunes (its fine-tunings are `<name>-<task>`): a denominator's row, or a
    point's label with its arm."""
    teacher = teacher_name(args.teacher)
    if row == TEACHER_ROW:
        return run_name(teacher, seed=seed)
    if row == SAME_IMPLEMENTATION_ROW:
        return run_name(SAME_IMPLEMENTATION, teacher, "unhealed", seed=seed)
    arm_part = f"distill-{args.steps}steps" if arm == "healed" else "unhealed"
    return run_name(row, teacher, arm_part, seed=seed)


def plan(args: FrontierRunArguments) -> list[Step]:
    """Per seed: the denominators' fine-tunings, then per point its distillation and the fine-tunings of the healed
    and the unhealed conversion, so that each point is complete before the next begins."""
    runs_dir = Path(args.runs_dir)
    finetuned = partial(finetuning_step, runs_dir, arguments_by_task(args.finetune_args, args.tasks))
    steps = []
    for seed in args.seeds:
        same_implementation = ["--convert_to", SAME_IMPLEMENTATION, "--keep_source_settings"]
        denominators = {
            model_name(args, TEACHER_ROW, None, seed): ["--model", args.teacher],
            model_name(args, SAME_IMPLEMENTATION_ROW, None, seed): ["--model", args.teacher, *same_implementation],
        }
        steps += [finetuned(name, model, task, seed) for name, model in denominators.items() for task in args.tasks]
        for mixer in args.mixers:
            for k in args.counts:
                label, variant, layout = point_label(mixer, k), MIXERS[mixer], overrides(args, mixer, k)
                name, run_dir = (
                    model_name(args, label, "healed", seed),
                    runs_dir / model_name(args, label, "healed", seed),
                )
                argv = ["--teacher", args.teacher, "--variant", variant, "--keep_source_settings"]
                argv += ["--config_overrides", layout, "--seed", str(seed), "--data_seed", str(seed)]
                argv += ["--max_steps", str(args.steps), *shlex.split(args.training_args), "--output_dir", str(run_dir)]
                argv += replacing_short_run(run_dir, args.steps)
                steps.append(Step(name, distill.main, argv, run_dir / BUDGET_FILE, partial(trained_for, args.steps)))
                convert = ["--convert_to", variant, "--keep_source_settings", "--convert_overrides", layout]
                unhealed = model_name(args, label, "unhealed", seed)
                for task in args.tasks:
                    steps.append(finetuned(name, ["--model", str(run_dir)], task, seed, run_dir))
                    steps.append(finetuned(unhealed, ["--model", args.teacher, *convert], task, seed))
    return steps


def main(argv: list[str] | None = None) -> list[Step]:
    (args,) = parse_args((FrontierRunArguments,), argv)
    steps = plan(args)
    print(planner.summary("Healing frontier", steps), flush=True)
    if not args.dry_run:
        planner.run(steps, after=partial(gather, results_dir=Path(args.results_dir)))
    return steps


if __name__ == "__main__":
    main()
