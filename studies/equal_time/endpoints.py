"""The equal-time study's primary endpoints, from its gathered records: each declared difference paired by pretraining
seed with its Student-t interval and paired t-test, Holm-corrected once all are measured, and for a downstream
endpoint a second interval that resamples the test rows with the seeds (from the saved per-example predictions) and
the same difference between the two architectures from random weights. The one-sided p-values in each claim's
direction are recorded beside the declared two-sided ones, because the sidedness was fixed after the scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import ttest_rel

from recipes.cards.markdown import markdown_table, p_value, signed_interval
from recipes.evaluation.stats import bootstrap_interval, holm, paired_difference
from studies.equal_time import Plan
from studies.equal_time.downstream import test_labels
from studies.equal_time.gathered import MLM_METRICS, Run, by_seed


def endpoint_scores(endpoint: dict, arm: str, runs: dict[str, Run], found: dict) -> tuple[dict, dict]:
    """{seed: score} of one side of an endpoint, and for a downstream endpoint {seed: per-row 0/1 correctness}."""
    metric, budget = endpoint["metric"], endpoint["budget"]
    if metric in MLM_METRICS:
        return by_seed(runs, arm, budget, metric), {}
    task = metric.removesuffix("_accuracy")
    records = found.get((arm, budget, task, "pretrained"), {})
    correct = {}
    for unit, record in records.items():
        if record.test_predictions is not None:
            labels = test_labels(task, record.split_seed)
            correct[unit] = (np.array(record.test_predictions) == labels).astype(float)
    return {unit: record.test["accuracy"] for unit, record in records.items()}, correct


def random_init_difference(endpoint: dict, found: dict) -> dict | None:
    """For a downstream endpoint, the same difference between the two architectures fine-tuned from random weights
    (their controls), paired by fine-tuning seed, which sets both controls' data order: what the architectures differ
    by without pretraining. `identical` when the two controls predicted every test example alike at every shared seed
    (then they are one control, and the difference is 0 by construction). None for an MLM endpoint or before the two
    controls share 2 seeds."""
    if endpoint["metric"] in MLM_METRICS:
        return None
    task = endpoint["metric"].removesuffix("_accuracy")
    arm = found.get((endpoint["arm"], endpoint["budget"], task, "scratch"), {})
    reference = found.get((endpoint["reference"], endpoint["budget"], task, "scratch"), {})
    seeds = sorted(set(arm) & set(reference))
    if len(seeds) < 2:
        return None
    difference = paired_difference(
        {seed: arm[seed].test["accuracy"] for seed in seeds}, {seed: reference[seed].test["accuracy"] for seed in seeds}
    )
    identical = all(
        arm[seed].test_predictions is not None and arm[seed].test_predictions == reference[seed].test_predictions
        for seed in seeds
    )
    return {
        "mean": difference.mean, "low": difference.low, "high": difference.high, "seeds": seeds, "identical": identical,
    }  # fmt: skip


def random_init_text(difference: dict | None, scale: float, digits: int, unit: str = "") -> str:
    if difference is None:
        return "–"
    if difference.get("identical"):
        return "0: the same control (identical predictions at every seed)"
    return signed_interval(difference, scale, digits, unit)


def higher_is_better(endpoint: dict) -> bool:
    """Every claim is that the arm scores higher than the reference, except a loss, where lower is the claim."""
    return endpoint["metric"] != "loss"


def endpoint_table(plan: Plan, runs: dict[str, Run], found: dict) -> tuple[list[str], dict]:
    measured = {}
    for endpoint in plan.primary_endpoints:
        scores, correct = endpoint_scores(endpoint, endpoint["arm"], runs, found)
        reference, reference_correct = endpoint_scores(endpoint, endpoint["reference"], runs, found)
        seeds = sorted(set(scores) & set(reference))
        if len(seeds) < len(plan.seeds):
            continue
        difference = paired_difference(scores, reference)
        tested_p = float(ttest_rel([scores[s] for s in seeds], [reference[s] for s in seeds]).pvalue)
        rows_interval = None
        if set(seeds) <= set(correct) & set(reference_correct):
            rows_interval = bootstrap_interval(
                np.stack([correct[s] for s in seeds]), np.stack([reference_correct[s] for s in seeds])
            )
        in_claimed_direction = (difference.mean > 0) == higher_is_better(endpoint)
        one_sided = tested_p / 2 if in_claimed_direction else 1 - tested_p / 2
        measured[endpoint["id"]] = {
            "difference": difference, "p": tested_p, "p_one_sided": one_sided, "rows_interval": rows_interval,
            "random_init": random_init_difference(endpoint, found),
        }  # fmt: skip
    complete = len(measured) == len(plan.primary_endpoints)
    adjusted = holm({name: m["p"] for name, m in measured.items()}) if complete else {}
    adjusted_one_sided = holm({name: m["p_one_sided"] for name, m in measured.items()}) if complete else {}
    rows, values = [], {}
    for endpoint in plan.primary_endpoints:
        name = endpoint["id"]
        what = f"{endpoint['arm']} − {endpoint['reference']}, {endpoint['metric']}, {endpoint['budget']}"
        if name not in measured:
            rows.append([name, endpoint["claim"], what, "pending", "", "", "", "", "", ""])
            continue
        difference, raw_p = measured[name]["difference"], measured[name]["p"]
        rows_interval = measured[name]["rows_interval"]
        scale, digits = (1, 3) if endpoint["metric"] == "loss" else (100, 2)
        holm_p = p_value(adjusted[name]) if name in adjusted else "once all are measured"
        rows.append(
            [
                name,
                endpoint["claim"],
                what,
                f"{scale * difference.mean:+.{digits}f}",
                f"[{scale * difference.low:+.{digits}f}, {scale * difference.high:+.{digits}f}]",
                "–"
                if rows_interval is None
                else f"[{scale * rows_interval[0]:+.{digits}f}, {scale * rows_interval[1]:+.{digits}f}]",
                p_value(raw_p),
                holm_p,
                p_value(adjusted_one_sided[name]) if name in adjusted_one_sided else "once all are measured",
                random_init_text(measured[name]["random_init"], scale, digits),
            ]
        )
        values[name] = {
            "claim": endpoint["claim"],
            "arm": endpoint["arm"],
            "reference": endpoint["reference"],
            "metric": endpoint["metric"],
            "budget": endpoint["budget"],
            "family_size": len(plan.primary_endpoints),
            "difference": what,
            "higher_is_better": higher_is_better(endpoint),
            "mean": difference.mean,
            "low": difference.low,
            "high": difference.high,
            "rows_interval": rows_interval,
            "p": raw_p,
            "holm_p": adjusted.get(name),
            "p_one_sided": measured[name]["p_one_sided"],
            "holm_p_one_sided": adjusted_one_sided.get(name),
            "random_init": measured[name]["random_init"],
        }
    header = [
        "", "claim", "difference", "mean", "95% interval (seeds)", "95% interval (seeds and test rows)",
        "p (paired t)", "Holm p", "Holm p, one-sided (stated after the scores)",
        "same difference from random init (paired by fine-tuning seed)",
    ]  # fmt: skip
    return markdown_table(header, rows), values
