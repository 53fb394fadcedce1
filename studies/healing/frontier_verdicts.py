"""The healing frontier's verdicts, from per-example test predictions (the statistics `FRONTIER.md` declares).

A share is a point's mean test accuracy over seeds over MiniLM's, paired by seed, with a 95% percentile interval from
a bootstrap that resamples the seeds and the test rows (one draw of rows, shared by every seed and by both models). A
point and arm keeps ≥ 97% when that interval's lower bound is at least 97% on both tasks, with every planned seed in.
The primary endpoint, per mixer: the k tested in order 2, 3, … up to the first that does not keep ≥ 97% healed (the
layouts are nested, so the sequence needs no correction), decided once the sequence reaches that first failure with
every smaller k in, or its end.
"""

from __future__ import annotations

import operator
import statistics

import numpy as np

from recipes.data.tasks import load_task
from recipes.evaluation.stats import bootstrap_interval
from recipes.records import FinetuningRecord

THRESHOLD = 0.97
TASKS = ("trec", "wiki-topics")  # "keeps ≥ 97%" is a verdict on both
DRAWS = 2000
# The bootstrap's own error at the bound that stopped a primary sequence: other generator seeds, and ten times the draws.
# The verdict stays the declared bootstrap's (seed 0, DRAWS); these only say how near the rule's randomness it fell.
RESAMPLING_SEEDS = range(1, 21)
RESAMPLING_DRAWS = 10 * DRAWS


def correctness(record: FinetuningRecord) -> np.ndarray:
    labels = np.array(load_task(record.task, seed=record.split_seed)["test"]["label"])
    if record.test_predictions is None or len(record.test_predictions) != len(labels):
        raise ValueError(f"A {record.task} record (seed {record.seed}) lacks its {len(labels)} test predictions.")
    correct = (np.array(record.test_predictions) == labels).astype(float)
    if not np.isclose(correct.mean(), record.test["accuracy"]):
        raise ValueError(f"A {record.task} record's (seed {record.seed}) predictions do not give its test accuracy.")
    return correct


def accuracy(records: dict[int, FinetuningRecord]) -> dict:
    values = [records[seed].test["accuracy"] for seed in sorted(records)]
    return {
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "seeds": sorted(records),
    }


def share(records: dict[int, FinetuningRecord], reference: dict[int, FinetuningRecord]) -> dict | None:
    """The ratio of mean accuracies over the seeds both have, with its seeds-and-rows bootstrap interval."""
    return compared(records, reference, operator.truediv)


def gain(healed: dict[int, FinetuningRecord], unhealed: dict[int, FinetuningRecord]) -> dict | None:
    """What healing buys: healed minus unhealed mean accuracy over the seeds both have (exploratory), with its
    seeds-and-rows bootstrap interval."""
    return compared(healed, unhealed, operator.sub)


def paired(records: dict[int, FinetuningRecord], reference: dict[int, FinetuningRecord]) -> tuple[np.ndarray, ...]:
    """Per-row correctness (seeds × test rows) of the records and the reference over the seeds both have."""
    seeds = sorted(set(records) & set(reference))
    return (
        np.stack([correctness(records[seed]) for seed in seeds]),
        np.stack([correctness(reference[seed]) for seed in seeds]),
    )


def compared(records: dict[int, FinetuningRecord], reference: dict[int, FinetuningRecord], statistic) -> dict | None:
    seeds = sorted(set(records) & set(reference))
    if not seeds:
        return None
    correct, referenced = paired(records, reference)
    low, high = bootstrap_interval(correct, referenced, draws=DRAWS, statistic=statistic)
    return {"mean": float(statistic(correct.mean(), referenced.mean())), "low": low, "high": high, "seeds": seeds}


def stopped_at(point: dict, healed: dict[str, dict[int, FinetuningRecord]], teacher: dict) -> dict:
    """Where a primary sequence stopped: the failing point's task with the lowest bound of its healed share, and how
    far that bound moves with the bootstrap's own randomness."""
    shares = point["arms"]["healed"]["tasks"]
    task = min(TASKS, key=lambda name: shares[name]["share_of_teacher"]["low"])
    correct, referenced = paired(healed[task], teacher[task])
    lows = [
        bootstrap_interval(correct, referenced, draws=DRAWS, seed=seed, statistic=operator.truediv)[0]
        for seed in RESAMPLING_SEEDS
    ]
    more_draws = bootstrap_interval(correct, referenced, draws=RESAMPLING_DRAWS, statistic=operator.truediv)[0]
    return {
        "k": point["k"],
        "task": task,
        "share_of_teacher": shares[task]["share_of_teacher"],
        "low_over_generator_seeds": {"seeds": len(lows), "min": min(lows), "max": max(lows)},
        "low_at_more_draws": {"draws": RESAMPLING_DRAWS, "low": more_draws},
    }


def keeps(tasks: dict[str, dict], seeds: list[int]) -> bool | None:
    """Whether both tasks' shares of the teacher's have their lower bound at the threshold; None until every seed is
    in."""
    shares = [tasks.get(task, {}).get("share_of_teacher") for task in TASKS]
    if any(entry is None or entry["seeds"] != seeds for entry in shares):
        return None
    return all(entry["low"] >= THRESHOLD for entry in shares)


def noise_floor(teacher: dict[int, FinetuningRecord]) -> dict | None:
    """MiniLM's seeds against its other seeds (s against the next, cyclically): the share a model exactly as good
    as MiniLM gets."""
    seeds = sorted(teacher)
    if len(seeds) < 2:
        return None
    shifted = {seed: teacher[seeds[(index + 1) % len(seeds)]] for index, seed in enumerate(seeds)}
    return share(teacher, shifted)


def primary(verdicts: list[bool | None], counts: list[int]) -> dict:
    """The fixed sequence: the k tested in ascending order up to the first that does not keep the threshold. A larger
    k's verdict cannot change it once that first failure is in, so it is decided then."""
    kept = None
    for k, verdict in sorted(zip(counts, verdicts)):
        if verdict is None:
            return {"complete": False, "largest_k": None}
        if not verdict:
            break
        kept = k
    return {"complete": True, "largest_k": kept}
