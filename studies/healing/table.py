"""The healing table: what healing buys a hybrid made from a pretrained BERT, over seeds, against its teacher.

    python -m studies.healing.table --probes results/heal/probe-*.json --finetuned results/heal/finetuned/*.json \\
        --output results/heal/table.md

Rows are encoders as `recipes/probe.py` describes them: the teacher; each variant healed by an objective
(distillation, MLM) for a number of steps, with its own settings or the teacher's; each unhealed conversion. A row
pools its seeds (a healed student's training seed; for the teacher and the unhealed conversions, the probe's or the
fine-tuning's seed). Per task it shows the frozen-embedding probe accuracy and, from `recipes/finetune.py` records,
the fine-tuned test accuracy: mean ± standard deviation over seeds, and the accuracy as a share of the teacher's,
paired by seed (seed s of a row against the teacher's seed s), with its Student-t interval. A fine-tuning record
joins a row by the run key of the student it started from (probe records name it), by its `--convert_to` settings,
or, started from no run, as the teacher. Agreement with the teacher and the latency ratio at the longest timed
length come from the probe records. A second table shows what healing buys: each healed row minus the same variant,
with the same settings, not healed, paired by seed, in accuracy points with its Student-t interval.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from recipes.cards.markdown import markdown_table, ratio, ratio_and_range
from recipes.evaluation.healing_rows import (
    TEACHER,
    agreement_text,
    conversion_name,
    gain_cell,
    protocol_text,
    row_name,
)
from recipes.evaluation.stats import mean_interval, paired_difference
from recipes.records import FinetuningRecord, FrontierRecord, HealingTable, ProbeRecord, write_text_atomic
from recipes.training.arguments import parse_args

SAME_IMPLEMENTATION_SHAPES = ("1x512", "8x512")  # the probe's one sequence, and the frontier's target shape


@dataclass
class HealTableArguments:
    probes: list[str] = field(metadata={"help": "recipes/probe.py JSON records (one per seed)"})
    finetuned: list[str] = field(default_factory=list, metadata={"help": "recipes/finetune.py downstream records"})
    confidence: float = field(default=0.95, metadata={"help": "Of the intervals of the share of the teacher"})
    output: str | None = field(default=None, metadata={"help": "The markdown table (a .json beside it)"})
    frontier: str | None = field(
        default=None,
        metadata={
            "help": "A healing frontier record (studies/healing/frontier.py): each conversion's latency against the "
            "teacher in this implementation, at batch 1 and 8 × 512 tokens"
        },
    )


@dataclass
class Scores:
    """Per row and task, one score per seed."""

    by_row: dict[str, dict[str, dict[int, float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )

    def add(self, row: str, task: str, seed: int, value: float, source: str, repeatable: bool = False) -> None:
        """A `repeatable` score may come again in another record if it is the same (the teacher, probed with the same
        seed beside each variant); any other second score for a row, task and seed is an error."""
        earlier = self.by_row[row][task].get(seed)
        if earlier is not None:
            if repeatable and earlier == value:
                return
            different = f", {value} after {earlier}," if repeatable else ""
            raise ValueError(f"{source}: a second score{different} for {row!r} on {task} at seed {seed}.")
        self.by_row[row][task][seed] = value


@dataclass
class Collected:
    probe: Scores = field(default_factory=Scores)
    finetuned: Scores = field(default_factory=Scores)
    agreement: Scores = field(default_factory=Scores)
    # per row and task, the seeds whose fine-tuned model answered one class for every test example
    one_class: dict[str, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    # fine-tuning records made before they carried the one-class flag: not checked
    unflagged: int = 0
    latency_ratio: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    latency_seq: int | None = None
    # each row's architecture, as the frontier record names it
    conversion: dict[str, str] = field(default_factory=dict)
    frontier: FrontierRecord | None = None
    rows: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    rows_by_run_key: dict[str, str] = field(default_factory=dict)
    # each healed row's unhealed counterpart: the same variant and settings, converted and not trained
    unhealed_row: dict[str, str] = field(default_factory=dict)
    # per task, the fine-tuning settings every record shares, and the record that set them
    finetuning_settings: dict[str, tuple[dict, str]] = field(default_factory=dict)

    def see(self, row: str, task: str | None = None) -> None:
        if row not in self.rows:
            self.rows.append(row)
        if task is not None and task not in self.tasks:
            self.tasks.append(task)


def collect_probe(collected: Collected, path: str) -> None:
    record = ProbeRecord.read(path)
    longest = str(max(int(seq) for seq in record.latency_ms))
    collected.latency_seq = int(longest)
    for name, described in record.encoders.items():
        row = row_name(described)
        collected.see(row)
        if described.get("run_key"):
            collected.rows_by_run_key[described["run_key"]] = row
        if described["kind"] == "healed":
            collected.unhealed_row[row] = row_name({**described, "kind": "unhealed"})
        if described["kind"] == TEACHER:
            collected.conversion[row] = FrontierRecord.HF_BERT
        elif described["kind"] in ("healed", "unhealed"):
            collected.conversion[row] = conversion_name(described["variant"], described["keep_source_settings"])
        for task, scores in record.tasks.items():
            collected.see(row, task)
            repeatable = described["kind"] == TEACHER
            for kind, score in (("probe", "accuracy"), ("agreement", "agreement")):
                getattr(collected, kind).add(row, task, described["seed"], scores[name][score], path, repeatable)
        collected.latency_ratio[row].append(record.latency_ms[longest][name]["ratio_vs"][TEACHER])


def finetuned_row(collected: Collected, record: FinetuningRecord, path: str) -> tuple[str, int]:
    converted = record.model.get("converted")
    if converted is not None:
        described = {"kind": "unhealed", "variant": record.model["variant"], **converted}
        return row_name(described), record.seed
    if record.pretraining is None:
        return TEACHER, record.seed
    row = collected.rows_by_run_key.get(record.pretraining.run_key)
    if row is None:
        raise ValueError(
            f"{path} fine-tuned {record.pretraining.run_dir} (run key {record.pretraining.run_key}), which no probe "
            "record describes: probe it, or leave the record out."
        )
    if record.seed != record.pretraining.seed:
        raise ValueError(
            f"{path}: fine-tuning seed {record.seed} of a student trained with seed {record.pretraining.seed}; the "
            "table pairs seed s with the teacher's seed s, so fine-tune each student with its own seed."
        )
    return row, record.pretraining.seed


def collect(args: HealTableArguments) -> Collected:
    if not args.probes:
        raise ValueError("--probes: at least one probe record.")
    collected = Collected(frontier=FrontierRecord.read(args.frontier) if args.frontier else None)
    for path in args.probes:
        collect_probe(collected, path)
    for path in args.finetuned:
        record = FinetuningRecord.read(path)
        settings, first = collected.finetuning_settings.setdefault(record.task, (record.training, path))
        if record.training != settings:
            raise ValueError(
                f"{path} was fine-tuned with {record.training}, {first} with {settings}: one table compares one "
                f"fine-tuning protocol per task; leave out the records of the other."
            )
        row, seed = finetuned_row(collected, record, path)
        collected.see(row, record.task)
        collected.finetuned.add(row, record.task, seed, record.test["accuracy"], path)
        if "one_class" not in record.test:
            collected.unflagged += 1
        elif record.test["one_class"]:
            collected.one_class[row][record.task].append(seed)
    return collected


def spread(scores: dict[int, float]) -> dict | None:
    """Seeds, mean and sd (from 2 seeds) of one score per seed."""
    if not scores:
        return None
    values = list(scores.values())
    return {
        "seeds": sorted(scores),
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
    }


def summary(scores: dict[int, float], teacher: dict[int, float], confidence: float) -> dict | None:
    """Mean, sd, seeds; and the share of the teacher's score, paired by seed, with its interval (from 2 pairs)."""
    result = spread(scores)
    if result is None:
        return None
    shares = [scores[seed] / teacher[seed] for seed in sorted(scores) if seed in teacher]
    if shares:
        result["share_of_teacher"] = {"mean": statistics.fmean(shares), "pairs": len(shares)}
        if len(shares) > 1:
            mean, half_width = mean_interval(shares, confidence)
            result["share_of_teacher"] |= {"low": mean - half_width, "high": mean + half_width}
    return result


def healing_gain(healed: dict[int, float], unhealed: dict[int, float], confidence: float) -> dict | None:
    """Healed minus unhealed score over the seeds both have: the mean and, from 2 seeds, its paired interval."""
    seeds = sorted(set(healed) & set(unhealed))
    if len(seeds) < 2:
        return {"seeds": seeds, "mean": healed[seeds[0]] - unhealed[seeds[0]]} if seeds else None
    difference = paired_difference(healed, unhealed, confidence)
    return {"seeds": seeds, "mean": difference.mean, "low": difference.low, "high": difference.high}


def summarise_healing(collected: Collected, confidence: float) -> dict:
    """Per healed row whose unhealed counterpart was measured, the healing gain per task on probe and fine-tuning."""
    return {
        row: {
            "against": against,
            "tasks": {
                task: {
                    kind: healing_gain(
                        getattr(collected, kind).by_row[row][task],
                        getattr(collected, kind).by_row[against][task],
                        confidence,
                    )
                    for kind in ("probe", "finetuned")
                }
                for task in collected.tasks
            },
        }
        for row, against in collected.unhealed_row.items()
        if against in collected.rows
    }


def same_implementation_latency(collected: Collected, row: str) -> dict[str, list[float]] | None:
    """The row's latency ÷ the teacher in this implementation per shape, one ratio per frontier measurement; None
    without a frontier record or for an architecture it did not time."""
    name = collected.conversion.get(row)
    if collected.frontier is None or name is None:
        return None
    ratios = {shape: collected.frontier.latency_ratios(shape, name) for shape in SAME_IMPLEMENTATION_SHAPES}
    return ratios if all(ratios.values()) else None


def summarise(collected: Collected, confidence: float) -> dict:
    rows = {}
    for row in collected.rows:
        entry = {"tasks": {}}
        for task in collected.tasks:
            entry["tasks"][task] = {
                kind: summary(
                    getattr(collected, kind).by_row[row][task],
                    getattr(collected, kind).by_row[TEACHER][task],
                    confidence,
                )
                for kind in ("probe", "finetuned")
            }
            entry["tasks"][task]["agreement"] = spread(collected.agreement.by_row[row][task])
            entry["tasks"][task]["one_class_seeds"] = sorted(collected.one_class[row][task])
        ratios = collected.latency_ratio.get(row)
        entry["latency_ratio"] = statistics.fmean(ratios) if ratios else None
        entry["latency_ratio_range"] = [min(ratios), max(ratios)] if ratios else None
        entry["latency_vs_same_implementation"] = same_implementation_latency(collected, row)
        rows[row] = entry
    return {
        "confidence": confidence,
        "latency_seq": collected.latency_seq,
        "tasks": collected.tasks,
        "finetuned_records": sum(
            len(by_seed) for tasks in collected.finetuned.by_row.values() for by_seed in tasks.values()
        ),
        "unflagged_finetuned_records": collected.unflagged,
        "finetuning": {task: settings for task, (settings, _) in collected.finetuning_settings.items()},
        "rows": rows,
        "healing": summarise_healing(collected, confidence),
    }


def one_class_text(seeds: list[int]) -> str:
    return f" ⚠ one class (seed {', '.join(map(str, seeds))})" if seeds else ""


def cell(result: dict | None, is_teacher: bool) -> str:
    if result is None:
        return "–"
    deviation = f" ± {100 * result['sd']:.1f}" if result["sd"] is not None else ""
    text = f"{100 * result['mean']:.1f}{deviation} (n={len(result['seeds'])})"
    share = result.get("share_of_teacher")
    if is_teacher or share is None:
        return text
    interval = f" [{100 * share['low']:.1f}, {100 * share['high']:.1f}]" if "low" in share else ""
    return f"{text}; {100 * share['mean']:.1f}%{interval}"


def healing_markdown(summarised: dict) -> str:
    """The second table: what healing buys over the same conversion not healed."""
    header = ["healed encoder"]
    for task in summarised["tasks"]:
        header += [f"{task} probe", f"{task} fine-tuned"]
    body = [
        [row]
        + [gain_cell(gain["tasks"][task][kind]) for task in summarised["tasks"] for kind in ("probe", "finetuned")]
        for row, gain in summarised["healing"].items()
    ]
    legend = (
        "What healing buys: the healed row's accuracy minus that of the same variant with the same settings not "
        f"healed, in points, paired by seed, with its {100 * summarised['confidence']:.0f}% Student-t interval over "
        "seeds; an interval on one side of 0 is a gain (or a loss) these seeds tell from none, each comparison on its "
        "own (no correction for the table's many; an sd from few seeds is itself uncertain)."
    )
    return "\n".join(markdown_table(header, body)) + "\n\n" + legend + "\n"


def markdown(summarised: dict) -> str:
    header = ["encoder"]
    for task in summarised["tasks"]:
        header += [f"{task} probe", f"{task} fine-tuned", f"{task} agreement"]
    header.append(f"latency at {summarised['latency_seq']} tokens ÷ teacher")
    same_implementation = any(entry.get("latency_vs_same_implementation") for entry in summarised["rows"].values())
    if same_implementation:
        header.append(
            f"latency ÷ teacher in this implementation ({' / '.join(shape.replace('x', ' × ') for shape in SAME_IMPLEMENTATION_SHAPES)})"
        )
    body = []
    for row, entry in summarised["rows"].items():
        line = [row]
        for task in summarised["tasks"]:
            scores = entry["tasks"][task]
            finetuned = cell(scores["finetuned"], row == TEACHER) + one_class_text(scores["one_class_seeds"])
            line += [cell(scores["probe"], row == TEACHER), finetuned, agreement_text(scores["agreement"])]
        low, high = entry["latency_ratio_range"] or (None, None)
        spread_text = f" ({ratio(low)}–{ratio(high)})" if ratio(low) != ratio(high) else ""
        line.append(ratio(entry["latency_ratio"]) + spread_text)
        if same_implementation:
            by_shape = entry.get("latency_vs_same_implementation")
            cells = [ratio_and_range(by_shape[shape]) for shape in SAME_IMPLEMENTATION_SHAPES] if by_shape else ["–"]
            line.append(" / ".join(cells))
        body.append(line)
    legend = (
        f"Accuracy on the test split, % (mean ± sd over seeds, n seeds); after ';' the share of the teacher's accuracy "
        f"paired by seed, with its {100 * summarised['confidence']:.0f}% Student-t interval over seeds (every seed "
        "is scored on the same test rows: the interval leaves out which rows the test split holds). Probe: "
        "frozen mean-pooled embeddings, logistic regression. Agreement: mean cosine with the teacher's embeddings of "
        "the test texts (mean ± sd over seeds). Latency ÷ teacher: mean over the probe records' interleaved timings "
        "of one sequence, with their range; the teacher is HF's `BertModel`, every other row this project's "
        "implementation, so the ratio mixes the mixers' cost with the two implementations' difference"
    )
    if same_implementation:
        legend += (
            '. Latency ÷ teacher in this implementation: against `from_bert(teacher, "bert")` timed in the same '
            "turns, at batch 1 and 8 (the frontier's target shape) × 512 tokens, the mean and range over the healing "
            "frontier record's measurements (results/heal/frontier/README.md has every shape); an architecture's "
            "ratio, the same for every row of it"
        )
    legend += ". ⚠ one class: a fine-tuned model that gave every test example the same class, at the seeds named"
    unflagged = summarised.get("unflagged_finetuned_records")
    if unflagged:
        legend += (
            f" ({unflagged} of the {summarised['finetuned_records']} fine-tuning records predate this flag and are "
            "not checked)"
        )
    legend += "."
    if summarised.get("finetuning"):
        protocols = "; ".join(protocol_text(task, settings) for task, settings in summarised["finetuning"].items())
        legend += f" Fine-tuned: {protocols}."
    text = "\n".join(markdown_table(header, body)) + "\n\n" + legend + "\n"
    return text + ("\n" + healing_markdown(summarised) if summarised["healing"] else "")


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((HealTableArguments,), argv)
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must be between 0 and 1, got {args.confidence}.")
    summarised = summarise(collect(args), args.confidence)
    text = markdown(summarised)
    print(text, flush=True)
    if args.output:
        write_text_atomic(args.output, text)
        HealingTable(**summarised).write(Path(args.output).with_suffix(".json"))
    return summarised


if __name__ == "__main__":
    main()
