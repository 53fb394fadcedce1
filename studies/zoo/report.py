"""The zoo's results (`zoo.md`, `mlm_curves.png`): a pure function of the gathered records, never training."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recipes.cards.markdown import markdown_table, mean_and_spread, percent
from recipes.environment import portable_path
from recipes.records import BenchmarkRecord, FinetuningRecord, PretrainingRecord, write_text_atomic
from recipes.run_folder.recorded_runs import RecordedRun, pretraining_runs
from recipes.training.curves import plot_curves
from studies.zoo.arguments import BENCHMARK_PREFIX, CURVES_FILE, REFERENCE_DIR, REFERENCE_VARIANT, RESULTS_FILE, SCRATCH


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
            (run.record.seed, record.seed): record.test["accuracy"]
            for run in self.runs
            for record in run.downstream
            if record.task == task and record.init == init
        }

    def majority_class(self, task: str) -> float | None:
        accuracies = {r.majority_class["accuracy"] for run in self.runs for r in run.downstream if r.task == task}
        return accuracies.pop() if len(accuracies) == 1 else None

    @property
    def name(self) -> str:
        return self.label if self.start == SCRATCH else f"{self.label} (init {self.start})"


def zoo_entries(records_dir: str | Path) -> list[ZooEntry]:
    """The zoo's runs grouped by variant × size × start × budget, ordered by size, variant, start, then budget."""
    groups = defaultdict(list)
    for run_dir in pretraining_runs(records_dir):
        run = RecordedRun.read(run_dir)
        spent = run.record
        start = spent.init_from or SCRATCH
        groups[(spent.size, run.label, start != SCRATCH, start, spent.budget_s, spent.budget)].append(run)
    return [
        ZooEntry(label, size, start, budget, budget_s, tuple(sorted(runs, key=lambda run: run.record.seed)))
        for (size, label, _, start, budget_s, budget), runs in sorted(groups.items())
    ]


def reference_records(records_dir: str | Path) -> dict[str, list[FinetuningRecord]]:
    """Reference checkpoints' fine-tuning records by checkpoint name."""
    records = defaultdict(list)
    for path in sorted(Path(records_dir).glob(f"{REFERENCE_DIR}/*/*.json")):
        records[path.parent.name].append(FinetuningRecord.read(path))
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
    references: dict[str, list[FinetuningRecord]],
) -> list[str]:
    """Test accuracy per entry with its baselines and the paired-seed difference to `pair_of(entry)`; the reference
    checkpoints' rows end it."""
    header = ["variant", "size", "budget", "pretrained", "no pretraining", "majority class"]
    rows = []
    for entry in entries:
        majority = entry.majority_class(task)
        rows.append(
            [
                entry.name,
                entry.size,
                entry.budget,
                summary(list(entry.accuracies(task, "pretrained").values())),
                summary(scratch_accuracies(entries, entry, task)),
                percent(majority) if majority is not None else "—",
                paired_difference(entry, pair_of(entry), task),
            ]
        )
    for model, records in references.items():
        of_task = [record for record in records if record.task == task]
        if of_task:
            accuracy = summary([record.test["accuracy"] for record in of_task])
            majority = percent(of_task[0].majority_class["accuracy"])
            rows.append([f"{model} as published (reference)", model, "—", accuracy, "—", majority, "—"])
    table = markdown_table([*header, f"Δ vs {compared_with} (paired seeds)"], rows)
    return [f"### {task}: test accuracy", "", *table, ""]


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


def mfu_cell(record: PretrainingRecord) -> str:
    """A run's model-FLOPs utilisation, "–" for runs recorded before it was."""
    return "–" if record.utilisation is None else f"{100 * record.utilisation['mfu']:.1f}%"


def mlm_table(entries: list[ZooEntry]) -> list[str]:
    header = ["variant", "size", "budget", "held-out MLM accuracy", "steps", "tokens seen", "tokens/s", "MFU"]
    header += ["threads", "load average (1 min)", "commit"]
    rows = []
    for entry in entries:
        spent = [run.record for run in entry.runs]
        rows.append(
            [
                entry.name,
                entry.size,
                entry.budget,
                summary([run.curve[-1]["accuracy"] for run in entry.runs if run.curve]),
                ", ".join(f"{record.steps:,}" for record in spent),
                ", ".join(f"{record.tokens_seen:,}" for record in spent),
                ", ".join(f"{record.tokens_per_s:,.0f}" for record in spent),
                ", ".join(mfu_cell(record) for record in spent),
                ", ".join(sorted({str(record.threads) for record in spent})),
                ", ".join(f"{record.run_record.load_average[0]:.2f}" for record in spent),
                ", ".join(sorted({short_commit(record.run_record.git_commit) for record in spent})),
            ]
        )
    return [*markdown_table(header, rows), ""]


def benchmark_table(benchmark_json: Path, shown_as: str) -> list[str]:
    """Encoder parameters and latencies of every model the benchmark measured, with ratios to `bert` and HF's BERT."""
    measured = BenchmarkRecord.read(benchmark_json)
    metadata, params = measured.metadata, measured.section("params")["models"]
    settings = measured.section("infer")["settings"]
    header = ["model", "encoder parameters"]
    header += [f"latency {s['batch']}×{s['seq']} (vs bert, vs HF BERT)" for s in settings]
    rows = []
    for name in settings[0]["models"]:
        latencies = []
        for setting in settings:
            record = setting["models"][name]
            ratios = record["ratio_vs"]
            latencies.append(
                f"{record['latency_ms']:,.2f} ms ({ratios.get('bert', 1.0):.2f}×, {ratios.get('hf-bert', 1.0):.2f}×)"
            )
        rows.append([name, f"{params[name]['encoder_total']:,}" if name in params else "—", *latencies])
    introduction = (
        f"Size `{measured.section('params')['size']}`, from `{shown_as}`: {metadata['device_name']}, "
        f"{metadata['threads']} threads, {metadata['dtype']}, median of {metadata['arguments']['repeats']} turns; a "
        "ratio is this model's latency over the other's (below 1: faster)."
    )
    return [introduction, "", *markdown_table(header, rows), ""]


def fine_tuned_tasks(entries: list[ZooEntry], references: dict[str, list[FinetuningRecord]]) -> list[str]:
    """The tasks any of these entries or reference checkpoints was fine-tuned on; a table lists only those."""
    return sorted(
        {record.task for entry in entries for run in entry.runs for record in run.downstream}
        | {record.task for records in references.values() for record in records}
    )


def render_results(
    entries: list[ZooEntry], references: dict[str, list[FinetuningRecord]], benchmarks: dict[Path, str]
) -> str:
    """The results page; `benchmarks` maps each benchmark JSON to the path the page names it by."""
    init_sizes = {entry.size for entry in entries if entry.start != SCRATCH}
    matrix = [entry for entry in entries if entry.size not in init_sizes]
    initialised = [entry for entry in entries if entry.size in init_sizes]
    lines = [
        "# The tiny zoo (`make zoo`): results",
        "",
        (
            "Generated by `python -m studies.zoo` from the records gathered in this folder's run records (budget.json, "
            "mlm_curve.json, downstream/); do not edit by hand. Mean ± standard deviation over fine-tuning seeds and, "
            "where several, pretraining seeds; `n` counts the fine-tuned models. The no-pretraining baseline is the "
            "same architecture fine-tuned from random weights (one per variant and fine-tuning seed)."
        ),
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
            (
                "Each variant pretrained for the same budget from the checkpoint's weights (where its layers match) "
                "and from scratch, and the checkpoint itself fine-tuned as the reference."
            ),
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
        (
            "The last evaluation of each run (steps, tokens seen, training tokens/s, model-FLOPs utilisation against "
            'the measured matmul peak of the precision it ran in — "–" where the record predates it — and the load '
            "average at its start listed per pretraining seed, with the code commit each ran at); curves in "
            f"`{CURVES_FILE}`."
        ),
        "",
        *mlm_table(entries),
        "## Table 2: parameters and latency",
        "",
    ]
    for path, shown_as in benchmarks.items():
        lines += benchmark_table(path, shown_as)
    if not benchmarks:
        lines += ["Not measured in this zoo (`--benchmark false`); see `results/benchmark_cpu.md`.", ""]
    return "\n".join(lines)


def figure_curves(entries: list[ZooEntry]) -> dict[str, list[dict]]:
    """One line per variant (and size and start): its run with the longest budget, first pretraining seed."""
    longest = {}
    for entry in entries:  # ordered by budget within a variant
        longest[(entry.size, entry.name)] = entry
    return {
        f"{name} ({size}, {entry.budget})": entry.runs[0].curve
        for (size, name), entry in longest.items()
        if entry.runs[0].curve
    }


def write_results(records_dir: str | Path, results_dir: str | Path) -> Path:
    """Write `zoo.md` and `mlm_curves.png` from the gathered records and benchmarks alone; never trains."""
    entries = zoo_entries(records_dir)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(figure_curves(entries), results_dir / CURVES_FILE, title="Held-out MLM accuracy (Figure 3 analogue)")
    benchmarks = sorted(Path(records_dir).glob(f"{BENCHMARK_PREFIX}*/benchmark_*.json"))
    page = render_results(entries, reference_records(records_dir), {path: portable_path(path) for path in benchmarks})
    return write_text_atomic(results_dir / RESULTS_FILE, page)


def best_run_dir(zoo_dir: str | Path) -> str:
    """The finished run directory whose last evaluation reached the highest held-out MLM accuracy (an interrupted
    run, which the next plan redoes, has no config.json yet)."""
    finished = [run_dir for run_dir in pretraining_runs(zoo_dir) if not RecordedRun.missing_inputs(run_dir)]
    scored = [(RecordedRun.read(run_dir).curve, run_dir) for run_dir in finished]
    return max((curve[-1]["accuracy"], str(run_dir)) for curve, run_dir in scored if curve)[1]
