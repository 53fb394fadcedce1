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

Run folders do not outlive a session's machine; the gathered records do. On a new checkout a step whose gathered
record is current counts as done, except a distillation with a healed fine-tuning still missing: it runs again, to
make the weights that fine-tuning needs (and that fine-tuning then cites the new run's key).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from modeling import HybridBertConfig
from recipes import distill
from recipes.data.tasks import offline_tasks
from recipes.records import BUDGET_FILE, FinetuningRecord, FrontierRecord
from recipes.run_folder.naming import run_name
from recipes.training.arguments import parse_args
from studies import planner
from studies.healing.frontier import MIXERS, RESULTS
from studies.healing.steps import (
    HEALING_TRAINING_ARGS,
    arguments_by_task,
    finetuning_step,
    gather,
    gathered_record,
    replacing_short_run,
    teacher_name,
    trained_for,
)
from studies.planner import Step


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
        default=f"{HEALING_TRAINING_ARGS} --bf16 false",
        metadata={"help": "Arguments of every distillation (the healing study's, in fp32 on every machine)"},
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


def point_label(mixer: str, k: int) -> str:
    return f"{mixer}-k{k}"


ARMS = ("unhealed", "healed")


def model_name(args: FrontierRunArguments, label: str | None, arm: str | None, seed: int) -> str:
    """The name of a model the frontier fine-tunes (its fine-tunings are `<name>-<task>`): the teacher (no label), or
    a point's label with its arm."""
    teacher = teacher_name(args.teacher)
    if label is None:
        return run_name(teacher, seed=seed)
    if arm not in ARMS:
        raise ValueError(f"arm {arm!r}: one of {', '.join(ARMS)}.")
    return run_name(label, teacher, f"distill-{args.steps}steps" if arm == "healed" else "unhealed", seed=seed)


def has_layout(layout: list[str], record: Path) -> bool:
    """Whether the run folder of a distillation record holds the point's layout (a frontier record made again may
    give a point another layout)."""
    return HybridBertConfig.from_pretrained(record.parent).mixer_types == layout


def converted_with(expected: str, record: Path) -> bool:
    """Whether an unhealed conversion's fine-tuning record was converted with the point's layout."""
    return FinetuningRecord.read(record).model.get("converted", {}).get("overrides") == expected


def plan(args: FrontierRunArguments) -> list[Step]:
    """Per seed: the teacher's fine-tunings (the denominator), then per point its distillation and the fine-tunings of
    the healed and the unhealed conversion, so that each point is complete before the next begins. A distillation is
    done when it made its steps with the point's layout; an unhealed fine-tuning when it converted with that layout."""
    runs_dir, results_dir = Path(args.runs_dir), Path(args.results_dir)
    layouts = FrontierRecord.read(args.layouts).layouts

    def finetuned(*step_args) -> Step:
        step = finetuning_step(runs_dir, arguments_by_task(args.finetune_args, args.tasks), *step_args)
        return replace(step, gathered=gathered_record(step, results_dir))

    steps = []
    for seed in args.seeds:
        steps += [
            finetuned(model_name(args, None, None, seed), ["--model", args.teacher], task, seed) for task in args.tasks
        ]
        for mixer in args.mixers:
            for k in args.counts:
                if str(k) not in layouts[mixer]:
                    raise ValueError(
                        f"{args.layouts} has no layout for {mixer} k={k} (it has k = {', '.join(layouts[mixer])})."
                    )
                label, variant, layout = point_label(mixer, k), MIXERS[mixer], layouts[mixer][str(k)]
                overrides = "mixer_types=" + "+".join(layout)
                name = model_name(args, label, "healed", seed)
                run_dir = runs_dir / name
                argv = ["--teacher", args.teacher, "--variant", variant, "--keep_source_settings"]
                argv += ["--config_overrides", overrides, "--seed", str(seed), "--data_seed", str(seed)]
                argv += ["--max_steps", str(args.steps), *shlex.split(args.training_args), "--output_dir", str(run_dir)]
                record = run_dir / BUDGET_FILE
                relaid = record.is_file() and not has_layout(layout, record)
                argv += ["--overwrite_output_dir"] if relaid else replacing_short_run(run_dir, args.steps, seed)

                def done(record: Path, layout: list[str] = layout, seed: int = seed) -> bool:
                    return trained_for(args.steps, seed, record) and has_layout(layout, record)

                distillation = Step(name, distill.main, argv, record, done)
                distillation = replace(distillation, gathered=gathered_record(distillation, results_dir))
                weights = (run_dir, distillation.gathered.parent)
                healed = [finetuned(name, ["--model", str(run_dir)], task, seed, weights) for task in args.tasks]
                steps.append(replace(distillation, needed_by=tuple(healed)))
                convert = ["--convert_to", variant, "--keep_source_settings", "--convert_overrides", overrides]
                unhealed = model_name(args, label, "unhealed", seed)
                for task, healed_step in zip(args.tasks, healed, strict=True):
                    steps.append(healed_step)
                    step = finetuned(unhealed, ["--model", args.teacher, *convert], task, seed)
                    current = step.current

                    def converted(record: Path, current=current, overrides: str = overrides) -> bool:
                        return current(record) and converted_with(overrides, record)

                    steps.append(replace(step, current=converted))
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
