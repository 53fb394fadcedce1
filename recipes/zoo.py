"""The zoo: pretrain every variant × start × budget × pretraining seed, fine-tune each run on each task per
fine-tuning seed (and each variant once from random weights), gather each run's records, benchmark the size, write the
cards, then build the zoo's tables and curves from the gathered records alone.

    python -m recipes.zoo --output_dir runs/zoo --variants bert hbert-v1 bert+dropmask --size tiny --budgets 30s 2m \
        --tasks trec --finetune_seeds 1 2 3 --pretrain_seeds 1 --headline_pretrain_seeds 1 2 3 \
        --pretrain_args "--max_seq_length 64" --finetune_args "--max_train_samples 200 --num_train_epochs 1"

Run directories are `<output_dir>/<variant>-<size>[-init-<checkpoint>]-<budget>-seed<seed>`; fine-tuned models go to
`<output_dir>/finetuned/<run>/<task>/<init>-seed<seed>` (a reference checkpoint's to `<output_dir>/reference/...`).
What the results are built from — each run's budget.json, config.json, mlm_curve.json and downstream records, the
references' records and the benchmark — is gathered under `<records_dir>` (default `<results_dir>/zoo_runs`, small
enough to commit); cards go to `<cards_dir>/<repo-name>/README.md` and the tables and curves to
`<results_dir>/zoo.md` and `mlm_curves.png` (`write_results`, which reads only the gathered records).

Skipping: a pretraining run is skipped when its budget.json records what this invocation would run: the same code
commit (with '+dirty' when tracked files were edited), package versions, data fingerprint (of the source bytes and the
preparation settings; a Hub dataset's is not checked before running, it needs the download), budget, seed, model/data/budget
arguments, samples per step and learning rate. The config hash is not rebuilt before running: the config follows from
the arguments and the code. A fine-tuning run is skipped when its record was made against the current pretraining run
with the same settings (`finetune.training_settings`). Results and cards are pure functions of the gathered records
and are always rewritten.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, pipeline

from modeling import VARIANTS
from recipes import assets, benchmark, finetune, pretrain
from recipes.budget import BUDGET_FILE, parse_budget
from recipes.cards import CARD_FILE, CARD_INPUTS, RecordedRun, mean_and_spread, missing_card_inputs, percent, portable_path, repo_names, write_card, zoo_runs
from recipes.curves import plot_curves
from recipes.data import planned_fingerprint
from recipes.run_record import git_commit, package_versions, run_key

DROP_MASK_SUFFIX = "+dropmask"
HEADLINE_VARIANTS = ("hbert-v1", "bert")  # the headline comparison, at the shortest budget
REFERENCE_VARIANT = "bert"  # paired-seed differences are taken against it
INITS = ("pretrained", "scratch")
SCRATCH = "scratch"  # a pretraining start: random weights
REFERENCE_DIR = "reference"  # reference checkpoints' fine-tuning, under the output and records directories
RECORDS_DIR = "zoo_runs"
BENCHMARK_PREFIX = "benchmark_"
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
    starts: list[str] = field(
        default_factory=lambda: [SCRATCH],
        metadata={
            "help": f"Where pretraining starts: '{SCRATCH}' and/or a named checkpoint "
            f"({', '.join(assets.NAMED_CHECKPOINTS)}; HBERT §4.4), each a run of its own"
        },
    )
    tasks: list[str] = field(default_factory=lambda: ["trec"], metadata={"help": "Fine-tuning tasks"})
    finetune_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    finetune_from_scratch: bool = field(
        default=True,
        metadata={"help": "Also fine-tune each variant from random weights (the no-pretraining baseline, once a variant)"},
    )
    reference_models: list[str] = field(
        default_factory=list,
        metadata={"help": f"Named checkpoints ({', '.join(assets.NAMED_CHECKPOINTS)}) fine-tuned as they are, as references"},
    )
    pretrain_seeds: list[int] = field(default_factory=lambda: [1])
    headline_pretrain_seeds: list[int] | None = field(
        default=None, metadata={"help": "Pretraining seeds of hbert-v1 and bert at the shortest budget"}
    )
    pretrain_args: str = field(default="", metadata={"help": "Extra recipes.pretrain arguments, one string"})
    finetune_args: str = field(default="", metadata={"help": "Extra recipes.finetune arguments, one string"})
    results_dir: str = field(default="results", metadata={"help": f"Where {RESULTS_FILE} and {CURVES_FILE} go"})
    records_dir: str | None = field(
        default=None,
        metadata={"help": f"Where each run's records are gathered, to build the results and cards from (default <results_dir>/{RECORDS_DIR})"},
    )
    cards_dir: str | None = field(default=None, metadata={"help": "Where cards go (default <output_dir>/cards)"})
    namespace: str = field(default="hybrid-bert-zoo", metadata={"help": "The Hub namespace the cards name"})
    benchmark: bool = field(
        default=True, metadata={"help": "Measure parameters and latency at --size for Table 2 and the cards"}
    )
    results_only: bool = field(
        default=False,
        metadata={"help": "Plan and run nothing: rebuild the results and cards from the gathered records"},
    )

    def __post_init__(self):
        for label in self.variants:
            split_variant(label)
        unknown = [start for start in self.starts if start != SCRATCH and start not in assets.NAMED_CHECKPOINTS]
        unknown += [name for name in self.reference_models if name not in assets.NAMED_CHECKPOINTS]
        if unknown:
            raise ValueError(
                f"Unknown checkpoint {', '.join(map(repr, unknown))}: --starts takes '{SCRATCH}' or one of "
                f"{', '.join(assets.NAMED_CHECKPOINTS)}; --reference_models one of {', '.join(assets.NAMED_CHECKPOINTS)}."
            )
        for budget in self.budgets:
            parse_budget(budget)
        self.records_dir = self.records_dir or str(Path(self.results_dir) / RECORDS_DIR)
        self.cards_dir = self.cards_dir or str(Path(self.output_dir) / "cards")


# --- the plan -------------------------------------------------------------------------------------------------


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


def run_name(label: str, size: str, start: str, budget: str, seed: int) -> str:
    return "-".join([label, size, *([f"init-{start}"] if start != SCRATCH else []), budget, f"seed{seed}"])


def pretraining_argv(args: ZooArguments, label: str, start: str, budget: str, seed: int, run_dir: Path) -> list[str]:
    variant, drop_mask = split_variant(label)
    return [
        "--variant", variant, "--size", args.size, "--budget", budget, "--seed", str(seed),
        "--output_dir", str(run_dir), "--overwrite_output_dir",
        *(["--drop_mask"] if drop_mask else []),
        *(["--init_from", start] if start != SCRATCH else []),
        *shlex.split(args.pretrain_args),
    ]  # fmt: skip


def planned_inputs(argv: list[str]) -> dict:
    """What the run record of a pretraining run with these arguments would hold, short of the config and data hashes."""
    model_args, data_args, budget_args, training_args = pretrain.parse_args(argv)
    arguments = {"model": asdict(model_args), "data": asdict(data_args), "budget": asdict(budget_args)}
    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "data_sha256": planned_fingerprint(
            pretrain.corpus_spec(data_args, training_args.seed),
            pretrain.load_tokenizer(model_args),
            data_args.max_seq_length,
            data_args.mlm_probability,
        ),
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
        "data_sha256": record["data_sha256"],
        "budget_s": record["budget_s"],
        "seed": record["seed"],
        "arguments": spent["arguments"],
        "samples_per_step": record["training"]["samples_per_step"],
        "learning_rate": record["training"]["learning_rate"],
    }


def pretraining_done(run_dir: Path, argv: list[str]) -> bool:
    """Whether `run_dir` holds the finished run these arguments would make."""
    recorded, planned = recorded_inputs(run_dir), planned_inputs(argv)
    if recorded is not None and planned["data_sha256"] is None:  # a Hub dataset: its fingerprint needs the download
        recorded["data_sha256"] = None
    return recorded == planned


def recorded_run_key(run_dir: Path) -> str:
    return run_key(json.loads((run_dir / BUDGET_FILE).read_text())["run_record"])


def planned_training(argv: list[str]) -> dict:
    _, task_args, training_args = finetune.parse_args(argv)
    return finetune.training_settings(task_args, training_args)


def finetuning_done(record_path: Path, pretraining_key: str | None, argv: list[str]) -> bool:
    """Whether `record_path` records this fine-tuning: of the same pretraining run (None: a reference checkpoint)
    with the same settings."""
    if not record_path.is_file():
        return False
    record = json.loads(record_path.read_text())
    return (record["pretraining"] or {}).get("run_key") == pretraining_key and record["training"] == planned_training(
        argv
    )


def finetuning_steps(
    args: ZooArguments, run_dir: Path, current_key: str | None, inits: tuple[str, ...]
) -> tuple[FinetuningStep, ...]:
    """Every fine-tuning of one pretraining run; `current_key` is None when the pretraining itself will run."""
    steps = []
    for task in args.tasks:
        for seed in args.finetune_seeds:
            for init in inits:
                output_dir = Path(args.output_dir) / "finetuned" / run_dir.name / task / f"{init}-seed{seed}"
                argv = [
                    "--model", str(run_dir), "--task", task, "--seed", str(seed), "--output_dir", str(output_dir),
                    "--overwrite_output_dir",
                    *(["--from_scratch"] if init == "scratch" else []),
                    *shlex.split(args.finetune_args),
                ]  # fmt: skip
                record_path = finetune.downstream_path(run_dir, task, init, seed)
                done = current_key is not None and finetuning_done(record_path, current_key, argv)
                steps.append(FinetuningStep(str(run_dir), task, init, seed, argv, runs=not done))
    return tuple(steps)


def reference_steps(args: ZooArguments) -> list[FinetuningStep]:
    """Each reference checkpoint fine-tuned as it is, per task and seed; its record stays in its output folder."""
    steps = []
    for model in args.reference_models:
        for task in args.tasks:
            for seed in args.finetune_seeds:
                output_dir = Path(args.output_dir) / REFERENCE_DIR / model / task / f"seed{seed}"
                argv = [
                    "--model", model, "--task", task, "--seed", str(seed), "--output_dir", str(output_dir),
                    "--overwrite_output_dir", *shlex.split(args.finetune_args),
                ]  # fmt: skip
                done = finetuning_done(output_dir / finetune.RECORD_FILE, None, argv)
                steps.append(FinetuningStep(model, task, "pretrained", seed, argv, runs=not done))
    return steps


def plan_zoo(args: ZooArguments) -> ZooPlan:
    pretraining, with_scratch_baseline = [], set()
    for label in args.variants:
        for start in args.starts:
            for budget in args.budgets:
                for seed in pretraining_seeds(args, label, budget):
                    run_dir = Path(args.output_dir) / run_name(label, args.size, start, budget, seed)
                    argv = pretraining_argv(args, label, start, budget, seed, run_dir)
                    runs = not pretraining_done(run_dir, argv)
                    # Random weights do not depend on the budget, seed or start: one baseline per variant.
                    inits = ("pretrained",)
                    if args.finetune_from_scratch and label not in with_scratch_baseline:
                        inits, _ = INITS, with_scratch_baseline.add(label)
                    steps = finetuning_steps(args, run_dir, None if runs else recorded_run_key(run_dir), inits)
                    pretraining.append(PretrainingStep(run_dir, argv, runs, steps))
    return ZooPlan(pretraining, reference_steps(args))


# --- running it -------------------------------------------------------------------------------------------------


def gather_records(run_dir: Path, records_dir: Path) -> Path:
    """Copy what the results and cards are built from (no weights) to `records_dir/<run>`, replacing what was there."""
    target = records_dir / run_dir.name
    shutil.rmtree(target, ignore_errors=True)
    for path in [*(run_dir / name for name in CARD_INPUTS), *run_dir.glob(f"{finetune.DOWNSTREAM_DIR}/*/*.json")]:
        destination = target / path.relative_to(run_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    return target


def gather_reference_record(step: FinetuningStep, records_dir: Path) -> None:
    destination = records_dir / REFERENCE_DIR / step.model / f"{step.task}-seed{step.seed}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(step.output_dir / finetune.RECORD_FILE, destination)


def run_benchmark(args: ZooArguments) -> Path:
    """Parameters and latencies of every variant at the zoo's size beside HF's BERT (Table 2, the cards)."""
    output_dir = Path(args.records_dir) / f"{BENCHMARK_PREFIX}{args.size}"
    json_path, _ = benchmark.main(
        ["--sections", "params", "infer", "--size", args.size, "--base_size", args.size, "--output_dir", str(output_dir)]
    )
    return json_path


def execute(plan: ZooPlan, args: ZooArguments) -> None:
    """Pretrain and fine-tune each run, gather its records; fine-tune the references; then benchmark and write
    every card from the gathered records. Only the steps that run are done."""
    records_dir = Path(args.records_dir)
    for pretraining in plan.pretraining:
        if pretraining.runs:
            pretrain.main(pretraining.argv)
        for step in pretraining.finetuning:
            if step.runs:
                finetune.main(step.argv)
        gather_records(pretraining.run_dir, records_dir)
    for step in plan.references:
        if step.runs:
            finetune.main(step.argv)
        gather_reference_record(step, records_dir)
    if args.benchmark:
        run_benchmark(args)
    write_cards(records_dir, Path(args.cards_dir), args.namespace)


def size_benchmark(records_dir: Path, size: str) -> Path | None:
    return next(iter(sorted(records_dir.glob(f"{BENCHMARK_PREFIX}{size}/benchmark_*.json"))), None)


def write_cards(records_dir: Path, cards_dir: Path, namespace: str) -> list[Path]:
    """A card for every gathered run, with its size's benchmark when there is one (names resolved over all runs)."""
    return [
        write_card(run_dir, f"{namespace}/{name}", cards_dir / name / CARD_FILE, size_benchmark(records_dir, size))
        for run_dir, name in repo_names(zoo_runs(records_dir)).items()
        for size in [json.loads((run_dir / BUDGET_FILE).read_text())["size"]]
    ]


# --- results, from the records only -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    """One variant × size × start × budget: its pretraining runs (one per pretraining seed), read from their records."""

    label: str
    size: str
    start: str
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

    @property
    def name(self) -> str:
        return self.label if self.start == SCRATCH else f"{self.label} (init {self.start})"


def variant_label(run: RecordedRun) -> str:
    return run.spent["variant"] + (DROP_MASK_SUFFIX if run.config.get("drop_mask") else "")


def zoo_entries(records_dir: str | Path) -> list[ZooEntry]:
    """The zoo's runs grouped by variant × size × start × budget, ordered by size, variant, start, then budget."""
    groups = defaultdict(list)
    for run_dir in zoo_runs(records_dir):
        run = RecordedRun.read(run_dir)
        start = run.arguments["model"]["init_from"] or SCRATCH
        key = (run.spent["size"], variant_label(run), start != SCRATCH, start, run.spent["budget_s"], run.spent["budget"])
        groups[key].append(run)
    return [
        ZooEntry(label, size, start, budget, budget_s, tuple(sorted(runs, key=lambda run: run.spent["run_record"]["seed"])))
        for (size, label, _, start, budget_s, budget), runs in sorted(groups.items())
    ]


def reference_records(records_dir: str | Path) -> dict[str, list[dict]]:
    """Reference checkpoints' fine-tuning records by checkpoint name."""
    records = defaultdict(list)
    for path in sorted(Path(records_dir).glob(f"{REFERENCE_DIR}/*/*.json")):
        records[path.parent.name].append(json.loads(path.read_text()))
    return dict(records)


def summary(values: list[float]) -> str:
    return f"{mean_and_spread(values)} (n={len(values)})" if values else "—"


def paired_difference(entry: ZooEntry, reference: ZooEntry | None, task: str) -> str:
    """Mean ± std of the accuracy difference to the reference over the seed pairs both have, in points."""
    if reference is None or reference is entry:
        return "—"
    ours, theirs = entry.accuracies(task, "pretrained"), reference.accuracies(task, "pretrained")
    differences = [ours[seeds] - theirs[seeds] for seeds in sorted(ours.keys() & theirs.keys())]
    return summary(differences).replace("%", " pts") if differences else "—"


def scratch_accuracies(entries: list[ZooEntry], entry: ZooEntry, task: str) -> list[float]:
    """The no-pretraining baseline of the entry's variant and size: one per fine-tuning seed, whichever run holds it."""
    by_seed = {
        finetune_seed: accuracy
        for other in entries
        if (other.label, other.size) == (entry.label, entry.size)
        for (_, finetune_seed), accuracy in other.accuracies(task, "scratch").items()
    }
    return [by_seed[seed] for seed in sorted(by_seed)]


def downstream_table(
    entries: list[ZooEntry],
    task: str,
    pair_of: Callable[[ZooEntry], ZooEntry | None],
    compared_with: str,
    references: dict[str, list[dict]],
) -> list[str]:
    """Test accuracy per entry with its baselines and the paired-seed difference to `pair_of(entry)`; the reference
    checkpoints' rows end it."""
    lines = [
        f"### {task}: test accuracy",
        "",
        f"| variant | size | budget | pretrained | no pretraining | majority class | Δ vs {compared_with} (paired seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        majority = entry.majority_class(task)
        lines.append(
            f"| {entry.name} | {entry.size} | {entry.budget} "
            f"| {summary(list(entry.accuracies(task, 'pretrained').values()))} "
            f"| {summary(scratch_accuracies(entries, entry, task))} "
            f"| {percent(majority) if majority is not None else '—'} "
            f"| {paired_difference(entry, pair_of(entry), task)} |"
        )
    for model, records in references.items():
        of_task = [record for record in records if record["task"] == task]
        if of_task:
            lines.append(
                f"| {model} as published (reference) | {model} | — "
                f"| {summary([record['test']['accuracy'] for record in of_task])} | — "
                f"| {percent(of_task[0]['majority_class']['accuracy'])} | — |"
            )
    return [*lines, ""]


def same_budget_reference(entries: list[ZooEntry]) -> Callable[[ZooEntry], ZooEntry | None]:
    """Table 1's pairing: `bert` of the same size, start and budget."""
    references = {(e.size, e.start, e.budget_s): e for e in entries if e.label == REFERENCE_VARIANT}
    return lambda entry: references.get((entry.size, entry.start, entry.budget_s))


def same_variant_from_scratch(entries: list[ZooEntry]) -> Callable[[ZooEntry], ZooEntry | None]:
    """Table 3's pairing: an initialised entry against the same variant, size and budget pretrained from scratch."""
    from_scratch = {(e.label, e.size, e.budget_s): e for e in entries if e.start == SCRATCH}
    return lambda entry: from_scratch.get((entry.label, entry.size, entry.budget_s)) if entry.start != SCRATCH else None


def short_commit(commit: str) -> str:
    """A run record's commit as git abbreviates it, keeping '+dirty' (tracked files differed from it)."""
    head, dirty, _ = commit.partition("+dirty")
    return head[:7] + ("+dirty" if dirty else "")


def mfu_cell(spent: dict) -> str:
    """A run's model-FLOPs utilisation, "–" for runs recorded before it was."""
    return f"{100 * spent['utilisation']['mfu']:.1f}%" if "utilisation" in spent else "–"


def mlm_table(entries: list[ZooEntry]) -> list[str]:
    lines = [
        "| variant | size | budget | held-out MLM accuracy | steps | tokens seen | tokens/s | MFU | threads "
        "| load average (1 min) | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        finals = [run.curve[-1]["accuracy"] for run in entry.runs if run.curve]
        steps = ", ".join(f"{run.spent['steps']:,}" for run in entry.runs)
        tokens = ", ".join(f"{run.spent['tokens_seen']:,}" for run in entry.runs)
        rates = ", ".join(f"{run.spent['tokens_per_s']:,.0f}" for run in entry.runs)
        mfus = ", ".join(mfu_cell(run.spent) for run in entry.runs)
        threads = ", ".join(sorted({str(run.spent["threads"]) for run in entry.runs}))
        loads = ", ".join(f"{run.spent['run_record']['load_average'][0]:.2f}" for run in entry.runs)
        commits = ", ".join(sorted({short_commit(run.spent["run_record"]["git_commit"]) for run in entry.runs}))
        lines.append(
            f"| {entry.name} | {entry.size} | {entry.budget} | {summary(finals)} | {steps} | {tokens} | {rates} | {mfus} "
            f"| {threads} "
            f"| {loads} | {commits} |"
        )
    return [*lines, ""]


def benchmark_table(benchmark_json: Path) -> list[str]:
    """Encoder parameters and latencies of every model the benchmark measured, with ratios to `bert` and HF's BERT."""
    measured = json.loads(benchmark_json.read_text())
    metadata, params = measured["metadata"], measured["params"]["models"]
    settings = measured["infer"]["settings"]
    header = "| model | encoder parameters | " + " | ".join(
        f"latency {s['batch']}×{s['seq']} (vs bert, vs HF BERT)" for s in settings
    )
    lines = [
        f"Size `{measured['params']['size']}`, from `{portable_path(benchmark_json)}`: {metadata['device_name']}, "
        f"{metadata['threads']} threads, {metadata['dtype']}, median of {metadata['arguments']['repeats']} turns; a "
        "ratio is this model's latency over the other's (below 1: faster).",
        "",
        header + " |",
        "|---|---|" + "---|" * len(settings),
    ]
    for name in settings[0]["models"]:
        latencies = []
        for setting in settings:
            record = setting["models"][name]
            ratios = record["ratio_vs"]
            latencies.append(
                f"{record['latency_ms']:,.2f} ms ({ratios.get('bert', 1.0):.2f}×, {ratios.get('hf-bert', 1.0):.2f}×)"
            )
        encoder = f"{params[name]['encoder_total']:,}" if name in params else "—"
        lines.append(f"| {name} | {encoder} | " + " | ".join(latencies) + " |")
    return [*lines, ""]


def fine_tuned_tasks(entries: list[ZooEntry], references: dict[str, list[dict]]) -> list[str]:
    """The tasks any of these entries or reference checkpoints was fine-tuned on; a table lists only those."""
    return sorted(
        {record["task"] for entry in entries for run in entry.runs for record in run.downstream}
        | {record["task"] for records in references.values() for record in records}
    )


def render_results(entries: list[ZooEntry], references: dict[str, list[dict]], benchmarks: list[Path]) -> str:
    init_sizes = {entry.size for entry in entries if entry.start != SCRATCH}
    matrix = [entry for entry in entries if entry.size not in init_sizes]
    initialised = [entry for entry in entries if entry.size in init_sizes]
    lines = [
        "# HybridBERT zoo results",
        "",
        "Generated by `recipes/zoo.py` from the records gathered in this folder's run records (budget.json, "
        "mlm_curve.json, downstream/); do not edit by hand. Mean ± standard deviation over fine-tuning seeds and, "
        "where several, pretraining seeds; `n` counts the fine-tuned models. The no-pretraining baseline is the same "
        "architecture fine-tuned from random weights (one per variant and fine-tuning seed).",
        "",
        "## Table 1: downstream accuracy per variant × budget",
        "",
        *(
            line
            for task in fine_tuned_tasks(matrix, {})
            for line in downstream_table(matrix, task, same_budget_reference(matrix), REFERENCE_VARIANT, {})
        ),
    ]
    if initialised:
        lines += [
            "## Table 3: initialisation from a pretrained checkpoint (HBERT §4.4)",
            "",
            "Each variant pretrained for the same budget from the checkpoint's weights (where its layers match) and "
            "from scratch, and the checkpoint itself fine-tuned as the reference.",
            "",
            *(
                line
                for task in fine_tuned_tasks(initialised, references)
                for line in downstream_table(
                    initialised, task, same_variant_from_scratch(initialised), "same variant from scratch", references
                )
            ),
        ]
    lines += [
        "## Held-out MLM accuracy reached per variant × budget",
        "",
        "The last evaluation of each run (steps, tokens seen, training tokens/s, model-FLOPs utilisation against the "
        "measured matmul peak of the precision it ran in — \"–\" where the record predates it — and the load average "
        f"at its start listed per pretraining seed, with the code commit each ran at); curves in `{CURVES_FILE}`.",
        "",
        *mlm_table(entries),
        "## Table 2: parameters and latency",
        "",
    ]
    for path in benchmarks:
        lines += benchmark_table(path)
    if not benchmarks:
        lines += ["Not measured in this zoo (`--benchmark false`); see `results/benchmark_cpu.md`.", ""]
    return "\n".join(lines)


def figure_curves(entries: list[ZooEntry]) -> dict[str, list[dict]]:
    """One line per variant (and size and start): its run with the longest budget, first pretraining seed."""
    longest = {}
    for entry in entries:  # ordered by budget within a variant
        longest[(entry.size, entry.name)] = entry
    return {
        f"{name} ({size}, {entry.budget})": entry.runs[0].curve for (size, name), entry in longest.items() if entry.runs[0].curve
    }


def write_results(records_dir: str | Path, results_dir: str | Path) -> Path:
    """Write `zoo.md` and `mlm_curves.png` from the gathered records and benchmarks alone; never trains."""
    entries = zoo_entries(records_dir)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(figure_curves(entries), results_dir / CURVES_FILE, title="Held-out MLM accuracy (Figure 3 analogue)")
    benchmarks = sorted(Path(records_dir).glob(f"{BENCHMARK_PREFIX}*/benchmark_*.json"))
    path = results_dir / RESULTS_FILE
    path.write_text(render_results(entries, reference_records(records_dir), benchmarks), encoding="utf-8")
    return path


def best_run_dir(zoo_dir: str | Path) -> str:
    """The finished run directory whose last evaluation reached the highest held-out MLM accuracy (an interrupted
    run, which the next plan redoes, has no config.json yet)."""
    finished = [run_dir for run_dir in zoo_runs(zoo_dir) if not missing_card_inputs(run_dir)]
    scored = [(RecordedRun.read(run_dir).curve, run_dir) for run_dir in finished]
    return max((curve[-1]["accuracy"], str(run_dir)) for curve, run_dir in scored if curve)[1]


def report(args: ZooArguments, results_path: Path) -> None:
    best = best_run_dir(args.output_dir)
    fill_mask = pipeline("fill-mask", model=str(best), trust_remote_code=True)
    predictions = ", ".join(f"{p['token_str']} ({p['score']:.3f})" for p in fill_mask(FILL_MASK_EXAMPLE, top_k=3))
    print(
        f"Checkpoints and per-run curves (mlm_curve.png): {args.output_dir}/<variant>-<size>-<budget>-seed<seed>\n"
        f"Records the results and cards are built from: {args.records_dir}\nCards: {args.cards_dir}\n"
        f"Tables: {results_path}\nCurves: {results_path.parent / CURVES_FILE}\n\n"
        f"{results_path.read_text(encoding='utf-8')}\n"
        f"Fill-mask with the best model ({best}): {FILL_MASK_EXAMPLE!r} → {predictions}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> ZooPlan:
    (args,) = HfArgumentParser(ZooArguments).parse_args_into_dataclasses(argv)
    if args.results_only:
        written = write_cards(Path(args.records_dir), Path(args.cards_dir), args.namespace)
        results = write_results(args.records_dir, args.results_dir)
        print(f"Wrote {results}, {results.parent / CURVES_FILE} and {len(written)} cards in {args.cards_dir}.")
        return ZooPlan([], [])
    plan = plan_zoo(args)
    print(plan.describe(), flush=True)
    execute(plan, args)
    report(args, write_results(args.records_dir, args.results_dir))
    return plan


if __name__ == "__main__":
    main()
