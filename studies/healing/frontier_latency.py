"""The healing frontier's latency target (`FRONTIER.md`): a point at least 1.25× faster than MiniLM in the same
implementation at batch 8 × 512, decided by a fixed number of the frontier record's measurements, and how a point's
latency is written."""

from __future__ import annotations

import math
import statistics

from recipes.evaluation.stats import mean_interval
from recipes.records import FrontierRecord

LATENCY_SHAPE = "8x512"
LATENCY_TARGET = 0.80  # 1.25× faster than the same implementation of MiniLM
# The measurements that decide the target (FRONTIER.md): the record's 5th to 12th. The rule was fixed after the first
# four, which stay descriptive, so that neither the rule nor the number of measurements was chosen from the data.
VERDICT_MEASUREMENTS = slice(4, 12)
# The measurements that rank the points ("the fastest"), so that the point chosen is not judged on the data that chose it.
SELECTION_MEASUREMENTS = slice(0, 4)


def point_latency(layouts: FrontierRecord, name: str) -> dict:
    """A point's latency at the target's shape: the mean ratio over every measurement and each one, the mean over the
    measurements that rank the points, and the target's verdict from its own measurements."""
    ratios = layouts.latency_ratios(LATENCY_SHAPE, name)
    ranking = layouts.latency_ratios(LATENCY_SHAPE, name, SELECTION_MEASUREMENTS)
    return {
        "latency_ratio": statistics.fmean(ratios) if ratios else None,
        "selection_ratio": statistics.fmean(ranking) if ranking else None,
        "latency_ratios": ratios,
        "meets_latency_target": latency_verdict(
            layouts.latency_ratios(LATENCY_SHAPE, name, VERDICT_MEASUREMENTS),
            made=len(layouts.latency_measurements[VERDICT_MEASUREMENTS]),
        ),
    }


def latency_verdict(ratios: list[float], made: int | None = None) -> dict:
    """Whether a point is at least 1.25× faster than the control, from the ratios of the verdict's measurements: the
    geometric mean with its 95% Student-t interval over measurements (on the log ratios); "met" when the interval lies
    at or below the target, "missed" when it lies above, "undecided" when it straddles it, "pending" until every
    verdict measurement is in (a fixed number: no stopping when the interval first clears the target). `made` is how
    many verdict measurements the record holds (default: one per ratio); where some did not time the point, it is
    "incomplete": the declared measurements cannot decide it, and later ones may not stand in for them."""
    needed = VERDICT_MEASUREMENTS.stop - VERDICT_MEASUREMENTS.start
    made = len(ratios) if made is None else made
    if max(made, len(ratios)) > needed:
        raise ValueError(f"The latency target is decided by {needed} measurements; got {max(made, len(ratios))}.")
    if len(ratios) > made:
        raise ValueError(f"{len(ratios)} ratios from {made} measurements: a measurement times a point once.")
    if len(ratios) < made:
        return {"verdict": "incomplete", "measurements": len(ratios), "of": needed, "made": made}
    if len(ratios) < needed:
        return {"verdict": "pending", "measurements": len(ratios), "of": needed}
    mean, half_width = mean_interval([math.log(ratio) for ratio in ratios])
    low, high = math.exp(mean - half_width), math.exp(mean + half_width)
    verdict = "met" if high <= LATENCY_TARGET else "missed" if low > LATENCY_TARGET else "undecided"
    return {"verdict": verdict, "measurements": len(ratios), "of": needed, "ratio": math.exp(mean), "low": low,
            "high": high}  # fmt: skip


def latency_verdict_text(verdict: dict) -> str:
    if verdict["verdict"] == "pending":
        return f"target pending: {verdict['measurements']} of its {verdict['of']} measurements"
    if verdict["verdict"] == "incomplete":
        return (
            f"target undecidable: {verdict['made'] - verdict['measurements']} of its first {verdict['made']} verdict "
            "measurements did not time this point"
        )
    # three decimals: a bound just above the target must not print as the target itself
    return (
        f"target {verdict['verdict']}: geometric mean {verdict['ratio']:.3f}× [{verdict['low']:.3f}, "
        f"{verdict['high']:.3f}] over its {verdict['measurements']} measurements"
    )


def latency_text(point: dict) -> str:
    """ "0.80× (0.77–0.85; target pending: 0 of its 8 measurements)": the mean over every measurement, their range,
    and the target's verdict from its own measurements."""
    if point["latency_ratio"] is None:
        return "–"
    ratios = point.get("latency_ratios") or [point["latency_ratio"]]
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}; " if len(ratios) > 1 else ""
    return f"{point['latency_ratio']:.2f}× ({spread}{latency_verdict_text(point['meets_latency_target'])})"
