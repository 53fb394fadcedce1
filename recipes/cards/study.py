"""A study model's place in its study, for its card: the equal-time study's table (`EqualTimeTable`) read for one arm
and budget. The card is seed 1's model; this section gives what all the arm's pretraining seeds measured: the mean, its
95% interval over seeds, the difference to the reference arm paired by seed, when each seed left the plateau, and the
fine-tuned accuracy beside the reference and beside the same architecture from random weights (two independent groups:
Welch's interval)."""

from __future__ import annotations

import statistics
from pathlib import Path

from recipes.cards.markdown import signed_interval
from recipes.environment import portable_path
from recipes.evaluation.stats import mean_interval, paired_difference, without_spread
from recipes.records import EqualTimeTable

# metric -> (label, scale, unit, digits)
MLM_ROWS = {
    "mask_accuracy": ("accuracy at [MASK]", 100, "%", 2),
    "accuracy": ("accuracy over all labelled positions", 100, "%", 2),
    "loss": ("loss", 1, "", 3),
}


def by_unit(scores: dict) -> dict[int, float]:
    """JSON keys are strings; the unit (a seed) is an int."""
    return {int(unit): value for unit, value in scores.items()}


def summary(scores: dict[int, float], scale: float, unit: str, digits: int) -> dict:
    values = list(scores.values())
    text = f"{scale * statistics.fmean(values):.{digits}f}{unit}"
    if len(values) < 2:
        return {"mean": text, "sd": "–", "interval": "–"}
    mean, half_width = mean_interval(values)
    return {
        "mean": text,
        "sd": f"{scale * statistics.stdev(values):.{digits}f}",
        "interval": f"[{scale * (mean - half_width):.{digits}f}, {scale * (mean + half_width):.{digits}f}]",
    }


def difference_text(scores: dict[int, float], reference: dict[int, float] | None, scale: float, digits: int) -> str:
    """Against another arm, paired by pretraining seed."""
    if reference is None or scores is reference or len(set(scores) & set(reference)) < 2:
        return "–"
    difference = paired_difference(scores, reference)
    return bounds_text({"mean": difference.mean, "low": difference.low, "high": difference.high}, scale, digits)


def bounds_text(bounds: dict, scale: float, digits: int) -> str:
    """ "+2.7 [-0.9, +6.4] (includes 0)" from a difference's mean and interval bounds; "(no spread)" for an interval of
    width 0, which measures no uncertainty."""
    if without_spread(bounds["low"], bounds["high"]):
        verdict = "no spread"
    else:
        verdict = "includes 0" if bounds["low"] <= 0 <= bounds["high"] else "excludes 0"
    return f"{signed_interval(bounds, scale, digits)} ({verdict})"


def plateau_text(table: EqualTimeTable, arm: str, budget: str) -> str:
    points = sorted(
        (point for point in table.plateau.values() if (point["arm"], point["budget"]) == (arm, budget)),
        key=lambda point: point["seed"],
    )
    return "; ".join(
        f"seed {point['seed']}: {'at' if point['left'] else 'not by'} {point['minutes']:.1f} min "
        f"({point['tokens'] / 1e6:.2f}M tokens)"
        for point in points
    )


def downstream_rows(table: EqualTimeTable, arm: str, budget: str) -> list[dict]:
    rows = []
    for key, entry in sorted(table.downstream.items()):
        entry_budget, task = key.split("/", 1)
        scores = entry["rows"].get(f"{arm}/pretrained")
        if entry_budget != budget or not scores:
            continue
        rows.append(
            {
                "task": task,
                "headline": {True: "yes", False: "no", None: "pending"}[entry["informative"]],
                **summary(by_unit(scores["accuracy"]), 100, "%", 1),
                **{
                    name: bounds_text(scores[name], 100, 1) if name in scores else "–"
                    for name in ("vs_reference", "vs_scratch")
                },
            }
        )
    return rows


def study_context(table_json: str | Path, arm: str, budget: str) -> dict | None:
    """The card's study section, or None when the table has no finished run of the arm at the budget."""
    table = EqualTimeTable.read(table_json)
    arms = table.mlm.get(budget, {})
    if arm not in arms:
        return None
    reference = arms.get(table.reference_arm)
    mlm = []
    for metric, (label, scale, unit, digits) in MLM_ROWS.items():
        scores = by_unit(arms[arm][metric])
        reference_scores = None if reference is None or arm == table.reference_arm else by_unit(reference[metric])
        mlm.append(
            {
                "metric": label,
                "seeds": ", ".join(map(str, sorted(scores))),
                **summary(scores, scale, unit, digits),
                "vs_reference": difference_text(scores, reference_scores, scale, digits),
            }
        )
    return {
        "source": f"`{portable_path(table_json)}`",
        "arm": arm,
        "budget": budget,
        "reference": table.reference_arm,
        "mlm": mlm,
        "plateau": plateau_text(table, arm, budget),
        "plateau_threshold": f"{100 * table.plateau_threshold:.2f}%",
        "downstream": downstream_rows(table, arm, budget),
    }
