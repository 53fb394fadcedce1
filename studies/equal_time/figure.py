"""The equal-time study's curves figure: a held-out MLM metric against calibrated minutes and tokens, every run of
one budget, with the plateau threshold drawn."""

from __future__ import annotations

from pathlib import Path

from studies.equal_time import Plan
from studies.equal_time.gathered import MLM_METRICS, Run


def plot(
    plan: Plan, runs: dict[str, Run], budget: str, path: Path, threshold: float, metric: str = "mask_accuracy"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_time, by_tokens) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = dict(zip(plan.arms, plt.get_cmap("tab10").colors))
    for run in runs.values():
        if run.planned.budget != budget:
            continue
        label = run.planned.arm.name if run.planned.seed == min(plan.seeds) else None
        style = dict(color=colours[run.planned.arm.name], marker="o", markersize=2, linewidth=1, label=label)
        values = [100 * point[metric] for point in run.curve]
        by_time.plot([point["elapsed_s"] / 60 for point in run.curve], values, **style)
        by_tokens.plot([point["tokens_seen"] / 1e6 for point in run.curve], values, **style)
    by_time.set_xlabel("calibrated minutes of one core")
    by_tokens.set_xlabel("tokens seen (millions)")
    by_time.set_ylabel(f"held-out {MLM_METRICS[metric]} (%)")
    for axis in (by_time, by_tokens):
        axis.grid(alpha=0.3)
    if metric == "mask_accuracy":
        for axis in (by_time, by_tokens):
            axis.axhline(100 * threshold, color="grey", linestyle="--", linewidth=1)
        by_time.annotate(
            "leaving the plateau",
            (0, 100 * threshold),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize="small",
            color="grey",
        )
    by_tokens.legend(fontsize="small", loc="lower right")
    figure.suptitle(f"Equal-time study, {budget} budget, every seed")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
