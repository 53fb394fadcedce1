"""The zoo: pretrain every variant × budget × pretraining seed, fine-tune each run on each task (pretrained and
from-scratch, per fine-tuning seed), write its card, then build the zoo's tables and curves from the records alone.

    python -m recipes.zoo --output_dir runs/zoo --variants bert hbert-v1 bert+dropmask --size tiny --budgets 30s 2m \
        --tasks trec --finetune_seeds 1 2 3 --pretrain_seeds 1 --headline_pretrain_seeds 1 2 3 \
        --pretrain_args "--max_seq_length 64" --finetune_args "--max_train_samples 200 --num_train_epochs 1"

Run directories are `<output_dir>/<variant>-<size>-<budget>-seed<seed>` (the recipes' contract); fine-tuned models go
to `<output_dir>/finetuned/<run>/<task>/<init>-seed<seed>`, cards to `<cards_dir>/<run>/README.md`, and the tables
and curves to `<results_dir>/zoo.md` and `mlm_curves.png` (`write_results`, which reads only recorded results).

Skipping: a pretraining run is skipped when its budget.json records what this invocation would run: the same code
commit, package versions, budget, seed, model/data/budget arguments, samples per step and learning rate. The config
and data hashes of the run record are not recomputed before running (that would mean preparing the data): they
follow from those inputs under the same commit, except that a --train_file edited in place is not noticed. A
fine-tuning run is skipped when its downstream record exists for the current pretraining run key, task, init and seed.
Cards are pure functions of the run directories and are always rewritten.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, pipeline

from modeling import VARIANTS
from recipes import finetune, pretrain
from recipes.budget import BUDGET_FILE, parse_budget
from recipes.cards import CARD_FILE, RecordedRun, mean_and_spread, percent, write_card, zoo_runs
from recipes.curves import plot_curves
from recipes.run_record import git_commit, package_versions, run_key

DROP_MASK_SUFFIX = "+dropmask"
HEADLINE_VARIANTS = ("hbert-v1", "bert")  # the headline comparison, at the shortest budget
REFERENCE_VARIANT = "bert"  # paired-seed differences are taken against it
INITS = ("pretrained", "scratch")
RESULTS_FILE = "zoo.md"
CURVES_FILE = "mlm_curves.png"
FILL_MASK_EXAMPLE = "The capital of France is [MASK]."


@dataclass
class ZooArguments:
    output_dir: str = field(default="runs/zoo", metadata={"help": "Where the run directories go"})
    variants: list[str] = field(
        default_factory=lambda: ["bert", "hbert-v1"],
        metadata={"help": f"Variants ({', '.join(VARIANTS)}), each optionally with '{DROP_MASK_SUFFIX}'"},
    )
    size: str = field(default="tiny", metadata={"help": "tiny, mini, small, minilm or base"})
    budgets: list[str] = field(default_factory=lambda: ["30s", "2m"], metadata={"help": "Pretraining budgets"})
    tasks: list[str] = field(default_factory=lambda: ["trec"], metadata={"help": "Fine-tuning tasks"})
    finetune_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    pretrain_seeds: list[int] = field(default_factory=lambda: [1])
    headline_pretrain_seeds: list[int] | None = field(
        default=None, metadata={"help": "Pretraining seeds of hbert-v1 and bert at the shortest budget"}
    )
    pretrain_args: str = field(default="", metadata={"help": "Extra recipes.pretrain arguments, one string"})
    finetune_args: str = field(default="", metadata={"help": "Extra recipes.finetune arguments, one string"})
    results_dir: str = field(default="results", metadata={"help": f"Where {RESULTS_FILE} and {CURVES_FILE} go"})
    cards_dir: str | None = field(default=None, metadata={"help": "Where cards go (default <output_dir>/cards)"})
    namespace: str = field(default="hybrid-bert-zoo", metadata={"help": "The Hub namespace the cards name"})


# --- the plan -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainingStep:
    run_dir: Path
    argv: list[str]
    runs: bool


@dataclass(frozen=True)
class FinetuningStep:
    run_dir: Path
    task: str
    init: str
    seed: int
    argv: list[str]
    runs: bool


@dataclass(frozen=True)
class ZooPlan:
    pretraining: list[PretrainingStep]
    finetuning: list[FinetuningStep]

    @property
    def steps(self) -> list[PretrainingStep | FinetuningStep]:
        return [*self.pretraining, *self.finetuning]

    def describe(self) -> str:
        lines = [f"{'run ' if step.runs else 'skip'} pretrain {step.run_dir.name}" for step in self.pretraining]
        lines += [
            f"{'run ' if step.runs else 'skip'} finetune {step.run_dir.name} {step.task} {step.init} seed {step.seed}"
            for step in self.finetuning
        ]
        running = sum(step.runs for step in self.steps)
        return "\n".join([f"Zoo plan: {running} to run, {len(self.steps) - running} skipped.", *lines])


def split_variant(label: str) -> tuple[str, bool]:
    """'bert+dropmask' → ('bert', True); the variant must be a named one."""
    variant = label.removesuffix(DROP_MASK_SUFFIX)
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown variant {label!r}: one of {', '.join(VARIANTS)}, optionally with '{DROP_MASK_SUFFIX}'."
        )
    return variant, variant != label


def pretraining_seeds(args: ZooArguments, label: str, budget: str) -> list[int]:
    shortest = min(args.budgets, key=parse_budget)
    if args.headline_pretrain_seeds and label in HEADLINE_VARIANTS and budget == shortest:
        return args.headline_pretrain_seeds
    return args.pretrain_seeds


def pretraining_argv(args: ZooArguments, label: str, budget: str, seed: int, run_dir: Path) -> list[str]:
    variant, drop_mask = split_variant(label)
    return [
        "--variant", variant, "--size", args.size, "--budget", budget, "--seed", str(seed),
        "--output_dir", str(run_dir), "--overwrite_output_dir",
        *(["--drop_mask"] if drop_mask else []),
        *shlex.split(args.pretrain_args),
    ]  # fmt: skip


def planned_inputs(argv: list[str]) -> dict:
    """What the run record of a pretraining run with these arguments would hold, short of the config and data hashes."""
    model_args, data_args, budget_args, training_args = pretrain.parse_args(argv)
    arguments = {"model": asdict(model_args), "data": asdict(data_args), "budget": asdict(budget_args)}
    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "budget_s": parse_budget(budget_args.budget),
        "seed": training_args.seed,
        "arguments": json.loads(json.dumps(arguments, default=str)),
        "samples_per_step": training_args.per_device_train_batch_size
        * training_args.world_size
        * training_args.gradient_accumulation_steps,
        "learning_rate": training_args.learning_rate,
    }


def recorded_inputs(run_dir: Path) -> dict | None:
    """The same fields as `planned_inputs`, read from a finished run's budget.json (None when there is none)."""
    budget_file = run_dir / BUDGET_FILE
    if not budget_file.is_file():
        return None
    spent = json.loads(budget_file.read_text())
    record = spent["run_record"]
    return {
        "git_commit": record["git_commit"],
        "versions": record["versions"],
        "budget_s": record["budget_s"],
        "seed": record["seed"],
        "arguments": spent["arguments"],
        "samples_per_step": record["training"]["samples_per_step"],
        "learning_rate": record["training"]["learning_rate"],
    }


def recorded_run_key(run_dir: Path) -> str:
    return run_key(json.loads((run_dir / BUDGET_FILE).read_text())["run_record"])


def finetuning_steps(args: ZooArguments, run_dir: Path, current_key: str | None) -> list[FinetuningStep]:
    """Every fine-tuning of one pretraining run; `current_key` is None when the pretraining itself will run."""
    steps = []
    for task in args.tasks:
        for seed in args.finetune_seeds:
            for init in INITS:
                record_path = finetune.downstream_path(run_dir, task, init, seed)
                done = (
                    current_key is not None
                    and record_path.is_file()
                    and json.loads(record_path.read_text())["pretraining"]["run_key"] == current_key
                )
                output_dir = Path(args.output_dir) / "finetuned" / run_dir.name / task / f"{init}-seed{seed}"
                argv = [
                    "--model", str(run_dir), "--task", task, "--seed", str(seed), "--output_dir", str(output_dir),
                    "--overwrite_output_dir",
                    *(["--from_scratch"] if init == "scratch" else []),
                    *shlex.split(args.finetune_args),
                ]  # fmt: skip
                steps.append(FinetuningStep(run_dir, task, init, seed, argv, runs=not done))
    return steps


def plan_zoo(args: ZooArguments) -> ZooPlan:
    pretraining, finetuning = [], []
    for label in args.variants:
        for budget in args.budgets:
            for seed in pretraining_seeds(args, label, budget):
                run_dir = Path(args.output_dir) / f"{label}-{args.size}-{budget}-seed{seed}"
                argv = pretraining_argv(args, label, budget, seed, run_dir)
                runs = recorded_inputs(run_dir) != planned_inputs(argv)
                pretraining.append(PretrainingStep(run_dir, argv, runs))
                finetuning += finetuning_steps(args, run_dir, None if runs else recorded_run_key(run_dir))
    return ZooPlan(pretraining, finetuning)


def execute(plan: ZooPlan, cards_dir: Path, namespace: str) -> None:
    """Pretrain, fine-tune and write the card of each run, in order, doing only the steps that run."""
    for pretraining in plan.pretraining:
        if pretraining.runs:
            pretrain.main(pretraining.argv)
        for step in plan.finetuning:
            if step.run_dir == pretraining.run_dir and step.runs:
                finetune.main(step.argv)
        name = pretraining.run_dir.name
        write_card(pretraining.run_dir, f"{namespace}/{name}", cards_dir / name / CARD_FILE)


# --- results, from the records only -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    """One variant × budget: its pretraining runs (one per pretraining seed), read from their run directories."""

    label: str
    budget: str
    budget_s: float
    runs: tuple[RecordedRun, ...]

    def accuracies(self, task: str, init: str) -> dict[tuple[int, int], float]:
        """Test accuracy by (pretraining seed, fine-tuning seed)."""
        return {
            (run.spent["run_record"]["seed"], record["seed"]): record["test"]["accuracy"]
            for run in self.runs
            for record in run.downstream
            if record["task"] == task and record["init"] == init
        }

    def majority_class(self, task: str) -> float | None:
        accuracies = {r["majority_class"]["accuracy"] for run in self.runs for r in run.downstream if r["task"] == task}
        return accuracies.pop() if len(accuracies) == 1 else None


def variant_label(run: RecordedRun) -> str:
    return run.spent["variant"] + (DROP_MASK_SUFFIX if run.config.get("drop_mask") else "")


def zoo_entries(zoo_dir: str | Path) -> list[ZooEntry]:
    """The zoo's runs grouped by variant × budget, ordered by variant then budget."""
    groups = defaultdict(list)
    for run_dir in zoo_runs(zoo_dir):
        run = RecordedRun.read(run_dir)
        groups[(variant_label(run), run.spent["budget_s"], run.spent["budget"])].append(run)
    return [
        ZooEntry(label, budget, budget_s, tuple(sorted(runs, key=lambda run: run.spent["run_record"]["seed"])))
        for (label, budget_s, budget), runs in sorted(groups.items())
    ]


def summary(values: list[float]) -> str:
    return f"{mean_and_spread(values)} (n={len(values)})" if values else "—"


def paired_difference(entry: ZooEntry, reference: ZooEntry | None, task: str) -> str:
    """Mean ± std of the accuracy difference to the reference over the seed pairs both have, in points."""
    if reference is None or reference is entry:
        return "—"
    ours, theirs = entry.accuracies(task, "pretrained"), reference.accuracies(task, "pretrained")
    differences = [ours[seeds] - theirs[seeds] for seeds in sorted(ours.keys() & theirs.keys())]
    return summary(differences).replace("%", " pts") if differences else "—"


def downstream_table(entries: list[ZooEntry], task: str) -> list[str]:
    references = {entry.budget_s: entry for entry in entries if entry.label == REFERENCE_VARIANT}
    lines = [
        f"### {task}: test accuracy",
        "",
        "| variant | budget | pretrained | no pretraining | majority class "
        f"| Δ vs {REFERENCE_VARIANT} (paired seeds) |",
        "|---|---|---|---|---|---|",
    ]
    for entry in entries:
        majority = entry.majority_class(task)
        lines.append(
            f"| {entry.label} | {entry.budget} | {summary(list(entry.accuracies(task, 'pretrained').values()))} "
            f"| {summary(list(entry.accuracies(task, 'scratch').values()))} "
            f"| {percent(majority) if majority is not None else '—'} "
            f"| {paired_difference(entry, references.get(entry.budget_s), task)} |"
        )
    return [*lines, ""]


def mlm_table(entries: list[ZooEntry]) -> list[str]:
    lines = [
        "| variant | budget | held-out MLM accuracy | steps | tokens seen |",
        "|---|---|---|---|---|",
    ]
    for entry in entries:
        finals = [run.curve[-1]["accuracy"] for run in entry.runs if run.curve]
        steps = ", ".join(f"{run.spent['steps']:,}" for run in entry.runs)
        tokens = ", ".join(f"{run.spent['tokens_seen']:,}" for run in entry.runs)
        lines.append(f"| {entry.label} | {entry.budget} | {summary(finals)} | {steps} | {tokens} |")
    return [*lines, ""]


def render_results(entries: list[ZooEntry]) -> str:
    tasks = sorted({record["task"] for entry in entries for run in entry.runs for record in run.downstream})
    lines = [
        "# HybridBERT zoo results",
        "",
        "Generated by `recipes/zoo.py` from the run directories' records (budget.json, mlm_curve.json, downstream/); "
        "do not edit by hand. Mean ± standard deviation over fine-tuning seeds and, where several, pretraining seeds.",
        "",
        "## Table 1: downstream accuracy per variant × budget",
        "",
        *(line for task in tasks for line in downstream_table(entries, task)),
        "## Held-out MLM accuracy reached per variant × budget",
        "",
        "The last evaluation of each run (steps and tokens seen listed per pretraining seed); curves in "
        f"`{CURVES_FILE}`.",
        "",
        *mlm_table(entries),
        "## Table 2: parameters and latency",
        "",
        "See `results/benchmark_cpu.md` (`recipes/benchmark.py`).",
    ]
    return "\n".join(lines) + "\n"


def write_results(zoo_dir: str | Path, results_dir: str | Path) -> Path:
    """Write `zoo.md` and `mlm_curves.png` from the zoo's recorded results; never trains."""
    entries = zoo_entries(zoo_dir)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    curves = {
        f"{entry.label} {entry.budget} seed {run.spent['run_record']['seed']}": run.curve
        for entry in entries
        for run in entry.runs
    }
    plot_curves(curves, results_dir / CURVES_FILE, title="Held-out MLM accuracy")
    path = results_dir / RESULTS_FILE
    path.write_text(render_results(entries), encoding="utf-8")
    return path


def best_run_dir(zoo_dir: str | Path) -> str:
    """The run directory whose last evaluation reached the highest held-out MLM accuracy."""
    scored = [(RecordedRun.read(run_dir).curve, run_dir) for run_dir in zoo_runs(zoo_dir)]
    return max((curve[-1]["accuracy"], str(run_dir)) for curve, run_dir in scored if curve)[1]


def report(args: ZooArguments, cards_dir: Path, results_path: Path) -> None:
    best = best_run_dir(args.output_dir)
    fill_mask = pipeline("fill-mask", model=str(best), trust_remote_code=True)
    predictions = ", ".join(f"{p['token_str']} ({p['score']:.3f})" for p in fill_mask(FILL_MASK_EXAMPLE, top_k=3))
    print(
        f"Checkpoints and per-run curves (mlm_curve.png): {args.output_dir}/<variant>-<size>-<budget>-seed<seed>\n"
        f"Cards: {cards_dir}\nTables: {results_path}\nCurves: {results_path.parent / CURVES_FILE}\n\n"
        f"{results_path.read_text(encoding='utf-8')}\n"
        f"Fill-mask with the best model ({best}): {FILL_MASK_EXAMPLE!r} → {predictions}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> ZooPlan:
    (args,) = HfArgumentParser(ZooArguments).parse_args_into_dataclasses(argv)
    cards_dir = Path(args.cards_dir or Path(args.output_dir) / "cards")
    plan = plan_zoo(args)
    print(plan.describe(), flush=True)
    execute(plan, cards_dir, args.namespace)
    report(args, cards_dir, write_results(args.output_dir, args.results_dir))
    return plan


if __name__ == "__main__":
    main()
