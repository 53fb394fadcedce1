"""The equal-time study's results page, from its gathered records alone (`results/equal_time/runs/`):

- how much of the plan has run;
- when each arm leaves the plateau: the first evaluation point at which held-out accuracy at [MASK] exceeds the plan's
  multiple of the share of its plateau token among the held-out [MASK] labels, per seed, in calibrated minutes and
  tokens (or the last point reached, a lower bound);
- held-out MLM accuracy (at [MASK] and over all labelled positions) and loss per arm and budget, with each arm's
  difference to `bert` paired by seed and its 95% Student-t interval;
- per task, the fine-tuning table (`studies/equal_time/downstream.py`) and the primary endpoints
  (`studies/equal_time/endpoints.py`);
- the curves: accuracy at [MASK] against calibrated minutes and tokens, every run.

    python -m studies.equal_time.report     # writes results/equal_time/README.md, table.json and curves-*.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recipes.cards.markdown import markdown_table, mean_and_spread, signed_interval
from recipes.data.assets import default_tokenizer
from recipes.data.corpus import prepare
from recipes.evaluation.stats import paired_difference
from recipes.records import (
    BaselinesRecord,
    EqualTimeTable,
    write_text_atomic,
)
from recipes.training.clock import parse_budget
from recipes.training.pretrain_arguments import corpus_spec
from studies.equal_time import RECORDS_DIR, RESULTS_DIR, Plan, finetunings
from studies.equal_time.downstream import BASELINES_FILE, downstream, downstream_table, task_notes
from studies.equal_time.endpoints import endpoint_table
from studies.equal_time.figure import plot
from studies.equal_time.gathered import MLM_METRICS, REFERENCE_ARM, Run, by_seed, finished_runs
from studies.equal_time.replicates import REPLICATES_DIR, curve_difference, replicate_table, with_replicates


def plateau_share(plan: Plan) -> float:
    """The share of the plan's plateau token among the [MASK] labels of the evaluated held-out blocks."""
    data_args = plan.data_arguments()
    tokenizer = default_tokenizer()
    held_out = prepare(corpus_spec(data_args), tokenizer, data_args.max_seq_length, data_args.mlm_probability).held_out
    blocks = held_out.select(range(min(len(held_out), data_args.max_eval_samples or len(held_out))))
    token = tokenizer.convert_tokens_to_ids(plan.plateau["token"])
    at_mask = [
        label
        for inputs, labels in zip(blocks["input_ids"], blocks["labels"])
        for value, label in zip(inputs, labels)
        if label != -100 and value == tokenizer.mask_token_id
    ]
    return sum(label == token for label in at_mask) / len(at_mask)


def leaving_point(curve: list[dict], threshold: float) -> dict | None:
    return next((point for point in curve if point["mask_accuracy"] > threshold), None)


def plateau_table(plan: Plan, runs: dict[str, Run], threshold: float) -> tuple[list[str], dict]:
    """Per run: minutes and tokens at the first point above the threshold, or the lower bound reached."""
    cells, values = [], {}
    ordered = sorted(
        runs.values(),
        key=lambda run: (
            list(plan.arms).index(run.planned.arm.name),
            parse_budget(run.planned.budget),
            run.planned.seed,
        ),
    )
    for run in ordered:
        point = leaving_point(run.curve, threshold)
        last = run.curve[-1]
        values[run.planned.name] = {
            "arm": run.planned.arm.name,
            "budget": run.planned.budget,
            "seed": run.planned.seed,
            "left": point is not None,
            "minutes": (point or last)["elapsed_s"] / 60,
            "tokens": (point or last)["tokens_seen"],
            "mask_accuracy": (point or last)["mask_accuracy"],
            "evaluation_every_minutes": last["elapsed_s"] / 60 / max(1, len(run.curve) - 1),
        }
        shown = values[run.planned.name]
        when = "" if point else "not by "
        cells.append(
            [
                run.planned.arm.name,
                run.planned.budget,
                str(run.planned.seed),
                f"{when}{shown['minutes']:.1f} min",
                f"{when}{shown['tokens'] / 1e6:.2f}M",
                f"{100 * shown['mask_accuracy']:.2f}%",
            ]
        )
    header = ["arm", "budget", "seed", "left at (calibrated minutes)", "tokens", "accuracy at [MASK] there"]
    return markdown_table(header, cells), values


def mlm_table(plan: Plan, runs: dict[str, Run], budget: str) -> tuple[list[str], dict]:
    header = [
        "arm", "seeds", "steps", *MLM_METRICS.values(),
        "− bert at [MASK] (pp, mean ± 95% half-width)", "− bert, all labelled (pp)", "− bert loss (mean ± 95% half-width)",
    ]  # fmt: skip
    rows, values = [], {}
    for arm in plan.arms:
        scores = {metric: by_seed(runs, arm, budget, metric) for metric in MLM_METRICS}
        if not scores["loss"]:
            continue
        steps = sorted(
            {run.record.steps for run in runs.values() if (run.planned.arm.name, run.planned.budget) == (arm, budget)}
        )
        cells = [arm, str(len(scores["loss"])), "/".join(map(str, steps))]
        for metric in MLM_METRICS:
            scale, unit, digits = (1, "", 3) if metric == "loss" else (100, "%", 2)
            cells.append(mean_and_spread(scores[metric].values(), scale, digits, unit))
        values[arm] = {metric: scores[metric] for metric in MLM_METRICS}
        for metric, scale, digits in (("mask_accuracy", 100, 2), ("accuracy", 100, 2), ("loss", 1, 3)):
            reference = by_seed(runs, REFERENCE_ARM, budget, metric)
            if arm == REFERENCE_ARM or len(set(reference) & set(scores[metric])) < 2:
                cells.append("–")
                continue
            difference = paired_difference(scores[metric], reference)
            cells.append(f"{difference.format(scale, digits)}{' *' if difference.excludes_zero else ''}")
        rows.append(cells)
    return markdown_table(header, rows), values


def contrasts(plan: Plan, runs: dict[str, Run], budget: str) -> dict[str, dict]:
    """Exploratory paired differences at a budget: every arm against the reference, then the plan's own contrasts;
    per MLM metric the mean, its 95% Student-t interval over the seeds both arms have, and those seeds."""
    pairs = [(arm, REFERENCE_ARM) for arm in plan.arms if arm != REFERENCE_ARM] + list(plan.contrasts)
    values = {}
    for arm, reference in pairs:
        metrics = {}
        for metric in MLM_METRICS:
            scores, other = by_seed(runs, arm, budget, metric), by_seed(runs, reference, budget, metric)
            if len(set(scores) & set(other)) >= 2:
                difference = paired_difference(scores, other)
                metrics[metric] = {
                    "mean": difference.mean, "low": difference.low, "high": difference.high, "seeds": list(difference.units),
                }  # fmt: skip
        if metrics:
            values[f"{arm} − {reference}"] = metrics
    return values


def contrast_table(entries: dict[str, dict], budget: str) -> list[str]:
    """The plan's own contrasts (every arm against the reference is in the MLM table above)."""
    rows = [
        [
            name,
            *(
                signed_interval(metrics[metric], scale, digits, unit) if metric in metrics else "–"
                for metric, scale, digits, unit in (("loss", 1, 3, ""), ("accuracy", 100, 2, " pp"))
            ),
        ]
        for name, metrics in entries.items()
        if not name.endswith(f" − {REFERENCE_ARM}")
    ]
    if not rows:
        return []
    return [
        f"Settings against mixer after {budget}, exploratory (paired by seed, mean and 95% interval over seeds):",
        "",
        *markdown_table(["difference", "loss", "accuracy, all labelled"], rows),
        "",
    ]


HEADLINE_RULE = {
    True: "`bert` beats answering one class by ≥ 10 macro-F1 points: a headline task.",
    False: "`bert` does not beat answering one class by ≥ 10 macro-F1 points: not a headline task.",
    None: "Whether `bert` beats answering one class by ≥ 10 macro-F1 points, which makes a headline task, waits on "
    "its fine-tunings.",
}


def write_report(plan: Plan, records_dir: Path, results_dir: Path, replicates_dir: Path = REPLICATES_DIR) -> str:
    runs = finished_runs(plan, records_dir)
    replicas = finished_runs(plan, replicates_dir)
    found, replicated = with_replicates(downstream(runs, records_dir), downstream(replicas, replicates_dir))
    share = plateau_share(plan)
    threshold = plan.plateau["multiple"] * share
    lines = [
        "# Equal-time study: results",
        "",
        "Generated by `python -m studies.equal_time.report` from the records in `runs/` (plan and endpoints: "
        "`studies/equal_time/README.md`). Budgets are calibrated minutes of one idle core; every difference "
        "between arms is paired by pretraining seed (same initialisation seed and data order), with its 95% Student-t "
        "interval over seeds; a pretrained arm against its random-initialisation control is a difference of two "
        "independent groups (the control's seeds are fine-tuning seeds, matched to no pretraining seed), with Welch's "
        "95% interval; `*` marks an interval that excludes zero (uncorrected: exploratory except the primary endpoints); "
        "one of width 0, from values without spread, is not marked: it measures no uncertainty.",
        "",
        f"Pretraining runs finished: {len(runs)} of {len(plan.runs())} "
        f"({sum(run.record.budget_s for run in runs.values()) / 60:.0f} of "
        f"{sum(parse_budget(run.budget) for run in plan.runs()) / 60:.0f} calibrated core-minutes). Fine-tunings "
        f"recorded: {sum(map(len, found.values()))} of {len(finetunings(plan))}.",
        "",
        "## Leaving the plateau",
        "",
        f"The plateau token {plan.plateau['token']!r} is {100 * share:.2f}% of the held-out [MASK] labels; an arm "
        f"leaves the plateau at the first evaluation point where its accuracy at [MASK] exceeds "
        f"{plan.plateau['multiple']} × that = {100 * threshold:.2f}%.",
        "",
    ]
    table, plateau_values = plateau_table(plan, runs, threshold)
    lines += [*table, ""]
    mlm_values = {}
    for budget in sorted(plan.budgets, key=parse_budget):
        table, mlm_values[budget] = mlm_table(plan, runs, budget)
        if mlm_values[budget]:
            lines += [f"## Held-out MLM after {budget} (mean ± sd over seeds)", "", *table, ""]
            for metric, suffix in (("mask_accuracy", ""), ("accuracy", "-all-labelled")):
                figure = results_dir / f"curves-{budget}{suffix}.png"
                plot(plan, runs, budget, figure, threshold, metric)
                lines += [f"![{MLM_METRICS[metric]}, {budget}]({figure.name})", ""]
            lines += contrast_table(contrasts(plan, runs, budget), budget)
    baselines = BaselinesRecord.read(BASELINES_FILE)
    downstream_values = {}
    for budget in sorted(plan.budgets, key=parse_budget):
        for task in (plan.finetuning or {}).get("tasks", {}):
            table, downstream_values[f"{budget}/{task}"] = downstream_table(plan, found, budget, task, baselines)
            from_replicates = sorted(
                {arm for arm, run_budget, run_task, _ in replicated if (run_budget, run_task) == (budget, task)}
            )
            downstream_values[f"{budget}/{task}"]["replicated_arms"] = from_replicates
            downstream_values[f"{budget}/{task}"]["replicates_identical"] = bool(from_replicates) and all(
                curve_difference(runs[name].curve, replica.curve) is None
                for name, replica in replicas.items()
                if replica.planned.arm.name in from_replicates and replica.planned.budget == budget
            )
            if downstream_values[f"{budget}/{task}"]["rows"]:
                verdict = downstream_values[f"{budget}/{task}"]["informative"]
                lines += [
                    f"## {task} after {budget} of pretraining (mean ± sd; test split scored once)",
                    "",
                    HEADLINE_RULE[verdict],
                    "",
                    *table,
                    "",
                    task_notes(task, downstream_values[f"{budget}/{task}"]),
                    "",
                ]
                if from_replicates:
                    lines += [
                        f"The pretrained {task} rows of {', '.join(f'`{arm}`' for arm in from_replicates)} come from "
                        "replicates: their runs made again by the same command and code after the weights were gone"
                        + (
                            ", each identical to its record at every held-out evaluation point"
                            if downstream_values[f"{budget}/{task}"]["replicates_identical"]
                            else ""
                        )
                        + " (see 'Replicate runs').",
                        "",
                    ]
    table, endpoint_values = endpoint_table(plan, runs, found)
    lines += ["## Primary endpoints", "", *table, ""]
    if replicas:
        lines += [
            "## Replicate runs",
            "",
            "Runs made again, by their recorded command and the code that made them, for fine-tunings the records "
            "lacked (`studies/equal_time/replicates.py`); a remade run whose held-out curve is not its record's is not "
            "fine-tuned. Final held-out MLM:",
            "",
            *replicate_table(runs, replicas),
            "",
        ]
    text = "\n".join(lines)
    write_text_atomic(results_dir / "README.md", text)
    EqualTimeTable(
        plateau_share=share,
        plateau_threshold=threshold,
        plateau=plateau_values,
        mlm=mlm_values,
        downstream=downstream_values,
        primary_endpoints=endpoint_values,
        reference_arm=REFERENCE_ARM,
        contrasts={budget: contrasts(plan, runs, budget) for budget in sorted(plan.budgets, key=parse_budget)},
    ).write(results_dir / "table.json")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records_dir", type=Path, default=RECORDS_DIR)
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--replicates_dir", type=Path, default=REPLICATES_DIR)
    args = parser.parse_args(argv)
    print(write_report(Plan.read(), args.records_dir, args.results_dir, args.replicates_dir))


if __name__ == "__main__":
    main()
