"""The healing frontier's runs (issue 34; the protocol, fixed before any score: `FRONTIER.md`).

    python -m studies.healing.frontier_runs --dry_run     # the plan: which steps are done, which would run
    python -m studies.healing.frontier_runs               # runs what is not done; the same command resumes

For every point of the frontier (a mixer and k, its layout read from `results/heal/frontier/frontier.json`) and every
seed: the conversion of MiniLM with that layout and MiniLM's settings, fine-tuned as it is (unhealed), and the same
conversion distilled from MiniLM for `--steps` steps (healed), then fine-tuned. A seed sets the new mixers'
initialisation, the distillation's data order (`--data_seed`) and the fine-tuning's seed. The denominators, at the
same seeds and tasks: MiniLM itself. MiniLM's fine-tuning at `--choosing_seed` (1) chooses its learning rate on validation from
the grid in `--finetune_args`, per task; every other fine-tuning trains at that rate (`--learning_rate_from_teacher`,
the default; false: each chooses its own from the grid); at the largest k and that seed, both arms are fine-tuned over
the grid as well, to size what the one rate costs them. Every fine-tuning keeps its per-example test predictions.
Records (no weights) are gathered into `--results_dir` (`runs/`, `finetuned/`) as steps finish.

The plan is made of units: a fine-tuning of MiniLM, or a point at a seed (its distillation and its four fine-tunings),
the points in ascending k so that the primary endpoint's sequence is complete first. `--shard INDEX/COUNT` runs every
COUNT-th unit from INDEX, so that COUNT processes share the plan without overlapping; the rate choice is shard 0's,
and the other shards refuse to start until it is recorded. Every shard needs the same arguments but `--shard`. A run
holds its shard's lock in `--runs_dir` while it runs: a second process for the same shard, or one that deals the plan
into another number of shards (a plain run is `0/1`) while any shard runs, is refused, since its units would overlap.

Run folders do not outlive a session's machine; the gathered records do. On a new checkout a step whose gathered
record is current counts as done, except a distillation with a healed fine-tuning still missing: it runs again, to
make the weights that fine-tuning needs (and that fine-tuning then cites the new run's key).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from filelock import FileLock, Timeout

from recipes import distill
from recipes.data.tasks import offline_tasks
from recipes.records import BUDGET_FILE, FinetuningRecord, FrontierRecord, PretrainingRecord
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
    choosing_seed: int = field(
        default=1, metadata={"help": "The seed of the teacher's fine-tunings that choose the rates (one of --seeds)"}
    )
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
    learning_rate_from_teacher: bool = field(
        default=True,
        metadata={
            "help": "Every fine-tuning but the teacher's at --choosing_seed trains at the learning rate that one chose "
            "on validation from its task's grid; false: each chooses its own from the grid"
        },
    )
    shard: str = field(
        default="0/1",
        metadata={"help": "INDEX/COUNT: run every COUNT-th unit of the plan from INDEX (COUNT processes share it)"},
    )
    runs_dir: str = "runs/heal/frontier"
    results_dir: str = str(RESULTS)
    dry_run: bool = field(default=False, metadata={"help": "Print the plan, run nothing"})

    def __post_init__(self):
        for name, values, valid in (("--mixers", self.mixers, MIXERS), ("--tasks", self.tasks, offline_tasks())):
            unknown = [value for value in values if value not in valid]
            if unknown:
                raise ValueError(f"{name}: {unknown} not among {', '.join(valid)}.")
        by_task = arguments_by_task(self.finetune_args, self.tasks)
        if self.learning_rate_from_teacher and not all("--learning_rates" in by_task.get(t, []) for t in self.tasks):
            raise ValueError(
                "--learning_rate_from_teacher: the teacher chooses the rate from a grid, so every task's "
                f"--finetune_args needs --learning_rates; got {self.finetune_args}."
            )
        if self.choosing_seed not in self.seeds:
            raise ValueError(f"--choosing_seed {self.choosing_seed}: one of --seeds {self.seeds}.")
        index, _, count = self.shard.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise ValueError(f"--shard: INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/2; got {self.shard!r}.")

    @property
    def shard_index_count(self) -> tuple[int, int]:
        index, count = self.shard.split("/")
        return int(index), int(count)


def point_label(mixer: str, k: int) -> str:
    return f"{mixer}-k{k}"


ARMS = ("unhealed", "healed")
RATE_CHECK = "rate-check"  # the suffix of the models fine-tuned over the grid as well (FRONTIER.md)


def model_name(args: FrontierRunArguments, label: str | None, arm: str | None, seed: int) -> str:
    """The name of a model the frontier fine-tunes (its fine-tunings are `<name>-<task>`): the teacher (no label), or
    a point's label with its arm."""
    teacher = teacher_name(args.teacher)
    if label is None:
        return run_name(teacher, seed=seed)
    if arm not in ARMS:
        raise ValueError(f"arm {arm!r}: one of {', '.join(ARMS)}.")
    return run_name(label, teacher, f"distill-{args.steps}steps" if arm == "healed" else "unhealed", seed=seed)


def has_layout(overrides: str, record: Path) -> bool:
    """Whether a distillation record was made with the point's layout (a frontier record made again may give a point
    another layout): its `--config_overrides`, read from the record because a run stopped by a signal has no config
    beside it yet, only in its checkpoint (and `from_pretrained` on a folder without one returns the default config
    rather than failing, huggingface/transformers#45864)."""
    return PretrainingRecord.read(record.parent).arguments["distillation"]["config_overrides"] == overrides


def converted_with(expected: str, record: Path) -> bool:
    """Whether an unhealed conversion's fine-tuning record was converted with the point's layout."""
    return FinetuningRecord.read(record).model.get("converted", {}).get("overrides") == expected


def at_rate(argv: list[str], rate: float) -> list[str]:
    """Fine-tuning arguments with their learning-rate grid replaced by one rate."""
    start = end = argv.index("--learning_rates") + 1
    while end < len(argv) and not argv[end].startswith("--"):
        end += 1
    return [*argv[: start - 1], "--learning_rate", str(rate), *argv[end:]]


def finetuned(args: FrontierRunArguments, task_arguments: dict[str, list[str]], *step_args) -> Step:
    step = finetuning_step(Path(args.runs_dir), task_arguments, *step_args)
    return replace(step, gathered=gathered_record(step, Path(args.results_dir)))


def teacher_units(args: FrontierRunArguments, task_arguments: dict[str, list[str]], seed: int) -> list[list[Step]]:
    name, model = model_name(args, None, None, seed), ["--model", args.teacher]
    return [[finetuned(args, task_arguments, name, model, task, seed)] for task in args.tasks]


def chosen_rates(args: FrontierRunArguments) -> dict[str, float] | None:
    """{task: the learning rate the teacher's fine-tuning at the choosing seed chose on validation from the grid}; None until
    every task's is recorded (in the run folder or gathered)."""
    rates = {}
    for (step,) in teacher_units(args, arguments_by_task(args.finetune_args, args.tasks), args.choosing_seed):
        record = next((path for path in (step.record, step.gathered) if path.is_file() and step.current(path)), None)
        if record is None:
            return None
        finetuning = FinetuningRecord.read(record)
        if finetuning.selected_search_entry is None:
            raise ValueError(f"{record} holds no learning-rate search to take the rate from.")
        rates[finetuning.task] = finetuning.selected_search_entry["learning_rate"]
    return rates


def units(args: FrontierRunArguments, rates: dict[str, float] | None) -> list[list[Step]]:
    """The plan's units in order: the teacher's fine-tunings (with `--learning_rate_from_teacher`, those of the choosing
    seed choose the rates, and are all there is until `rates` are known), then per k, mixer and seed a point."""
    grid = arguments_by_task(args.finetune_args, args.tasks)
    if args.learning_rate_from_teacher:
        choosing = teacher_units(args, grid, args.choosing_seed)
        if rates is None:
            return choosing
        at_rates = {task: at_rate(argv, rates[task]) for task, argv in grid.items()}
        others = [seed for seed in args.seeds if seed != args.choosing_seed]
        planned = choosing + [unit for seed in others for unit in teacher_units(args, at_rates, seed)]
    else:
        at_rates = grid
        planned = [unit for seed in args.seeds for unit in teacher_units(args, grid, seed)]
    layouts = FrontierRecord.read(args.layouts).layouts
    for k in args.counts:
        for mixer in args.mixers:
            if str(k) not in layouts[mixer]:
                raise ValueError(
                    f"{args.layouts} has no layout for {mixer} k={k} (it has k = {', '.join(layouts[mixer])})."
                )
            for seed in args.seeds:
                # the rate check (FRONTIER.md): the largest k at the choosing seed, fine-tuned over the grid as well
                checked = args.learning_rate_from_teacher and k == max(args.counts) and seed == args.choosing_seed
                planned.append(point(args, at_rates, mixer, k, layouts[mixer][str(k)], seed, grid if checked else None))
    return planned


def point(
    args: FrontierRunArguments,
    task_arguments: dict[str, list[str]],
    mixer: str,
    k: int,
    layout: list[str],
    seed: int,
    rate_check: dict[str, list[str]] | None = None,
) -> list[Step]:
    """A point at a seed: its distillation, and per task the fine-tunings of the healed and the unhealed conversion;
    with `rate_check` (the grid's arguments) both fine-tuned over the grid as well, as `<model>-rate-check-<task>`. A
    distillation is done when it made its steps with the point's layout; an unhealed fine-tuning when it converted
    with that layout."""
    label, variant = point_label(mixer, k), MIXERS[mixer]
    overrides = "mixer_types=" + "+".join(layout)
    name = model_name(args, label, "healed", seed)
    run_dir = Path(args.runs_dir) / name
    argv = ["--teacher", args.teacher, "--variant", variant, "--keep_source_settings"]
    argv += ["--config_overrides", overrides, "--seed", str(seed), "--data_seed", str(seed)]
    argv += ["--max_steps", str(args.steps), *shlex.split(args.training_args), "--output_dir", str(run_dir)]
    record = run_dir / BUDGET_FILE
    relaid = record.is_file() and not has_layout(overrides, record)
    argv += ["--overwrite_output_dir"] if relaid else replacing_short_run(run_dir, args.steps, seed)

    def done(record: Path) -> bool:
        return trained_for(args.steps, seed, record) and has_layout(overrides, record)

    distillation = Step(name, distill.main, argv, record, done)
    distillation = replace(distillation, gathered=gathered_record(distillation, Path(args.results_dir)))
    weights = (run_dir, distillation.gathered.parent)
    convert = ["--convert_to", variant, "--keep_source_settings", "--convert_overrides", overrides]
    unhealed = model_name(args, label, "unhealed", seed)

    def healed_step(arguments: dict[str, list[str]], model: str, task: str) -> Step:
        return finetuned(args, arguments, model, ["--model", str(run_dir)], task, seed, weights)

    def unhealed_step(arguments: dict[str, list[str]], model: str, task: str) -> Step:
        step = finetuned(args, arguments, model, ["--model", args.teacher, *convert], task, seed)

        def converted(record: Path, current=step.current) -> bool:
            return current(record) and converted_with(overrides, record)

        return replace(step, current=converted)

    grids = [(task_arguments, "")] + ([(rate_check, f"-{RATE_CHECK}")] if rate_check is not None else [])
    healed, finetunings = [], []
    for arguments, suffix in grids:
        for task in args.tasks:
            healed.append(healed_step(arguments, name + suffix, task))
            finetunings += [healed[-1], unhealed_step(arguments, unhealed + suffix, task)]
    return [replace(distillation, needed_by=tuple(healed)), *finetunings]


def plan(args: FrontierRunArguments, rates: dict[str, float] | None = None) -> list[Step]:
    """This shard's steps, in order. With `--learning_rate_from_teacher` and no `rates` given, the rates are read from
    the teacher's records; until they are there, the plan is the fine-tunings that choose them, shard 0's."""
    index, count = args.shard_index_count
    if args.learning_rate_from_teacher:
        rates = chosen_rates(args) if rates is None else rates
        if rates is not None and set(rates) != set(args.tasks):
            raise ValueError(f"rates {rates}: one for each of --tasks {args.tasks}.")
    waiting = args.learning_rate_from_teacher and rates is None
    if waiting and index != 0:
        raise ValueError(
            f"--shard {args.shard}: the other shards wait for the teacher's learning-rate choice, which shard 0 makes "
            "first; start this one once its fine-tunings are recorded."
        )
    planned = units(args, rates)
    # the units that choose the rates come first and are shard 0's; the rest are dealt in turn
    choosing = len(args.tasks) if args.learning_rate_from_teacher else 0
    shard = (planned[:choosing] if index == 0 else []) + planned[choosing:][index::count]
    return [step for unit in shard for step in unit]


SHARD_LOCK = ".shard-{index}-of-{count}.lock"  # in --runs_dir, held while a shard runs
SHARD_LOCK_NAME = re.compile(
    re.escape(SHARD_LOCK).replace(re.escape("{index}"), r"(\d+)").replace(re.escape("{count}"), r"(\d+)")
)


def held_by_another(path: Path) -> bool:
    probe = FileLock(path)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def hold_shard(args: FrontierRunArguments) -> FileLock:
    """Takes this shard's lock, held until it is released or the process ends (an OS lock: a killed run leaves none
    held). Refused while the same shard runs, or a shard of another count: its units would overlap this one's."""
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    index, count = args.shard_index_count
    with FileLock(runs_dir / ".shards.lock"):  # one process at a time checks the others and takes its own
        lock = FileLock(runs_dir / SHARD_LOCK.format(index=index, count=count))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise SystemExit(f"--shard {args.shard}: another process runs this shard in {runs_dir} already.") from None
        for other in sorted(runs_dir.iterdir()):
            name = SHARD_LOCK_NAME.fullmatch(other.name)
            if name and int(name[2]) != count and held_by_another(other):
                lock.release()
                raise SystemExit(
                    f"--shard {args.shard}: shard {name[1]}/{name[2]} runs in {runs_dir}, and a plan dealt into "
                    f"{count} would repeat its units; start every process with --shard INDEX/{name[2]}, or wait."
                )
    return lock


def main(argv: list[str] | None = None) -> list[Step]:
    (args,) = parse_args((FrontierRunArguments,), argv)
    waiting = args.learning_rate_from_teacher and chosen_rates(args) is None
    steps = plan(args)
    print(planner.summary(f"Healing frontier (shard {args.shard})", steps), flush=True)
    if args.dry_run:
        return steps
    lock = hold_shard(args)
    try:
        return run_shard(args, steps, waiting)
    finally:
        lock.release()


def run_shard(args: FrontierRunArguments, steps: list[Step], waiting: bool) -> list[Step]:
    """Runs the shard's steps; when they chose the rates, then the rest of the plan at them. Returns the last plan."""
    planner.run(steps, after=partial(gather, results_dir=Path(args.results_dir)))
    if waiting:  # the rates are chosen now, and with them the rest of the plan
        rates = chosen_rates(args)
        if rates is None:
            raise RuntimeError("The teacher's fine-tunings ran but left no current record to take the rates from.")
        steps = plan(args, rates)
        print(planner.summary(f"Healing frontier (shard {args.shard}), at the rates {rates}", steps), flush=True)
        planner.run(steps, after=partial(gather, results_dir=Path(args.results_dir)))
    return steps


if __name__ == "__main__":
    main()
