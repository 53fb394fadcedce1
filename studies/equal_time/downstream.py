"""The equal-time study's fine-tuning tables, from its gathered records: per task and budget, every arm's test
accuracy and macro-F1 beside its random-initialisation control and the model-free baselines, its difference to `bert`
(paired by pretraining seed) and to the control (two independent groups: Welch), one-class counts, whether `bert`
clears the headline-task rule, and how often the learning-rate grid's top rate was chosen."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import numpy as np

from recipes.cards.markdown import markdown_table, mean_and_spread
from recipes.data.tasks import load_task
from recipes.evaluation.stats import independent_difference, paired_difference
from recipes.records import BaselinesRecord, FinetuningRecord
from studies.equal_time import Plan
from studies.equal_time.gathered import REFERENCE_ARM, Run

BASELINES_FILE = Path("results/baselines.json")


def downstream(runs: dict[str, Run], records_dir: Path) -> dict[tuple[str, str, str], dict[int, FinetuningRecord]]:
    """(arm, task, init) → {unit: record}: a pretrained model's unit is its pretraining seed, a control's its seed."""
    found: dict = {}
    for run in runs.values():
        for record in FinetuningRecord.read_downstream(records_dir / run.planned.name):
            unit = run.planned.seed if record.init == "pretrained" else record.seed
            key = (run.planned.arm.name, run.planned.budget, record.task, record.init)
            found.setdefault(key, {})[unit] = record
    return found


def test_labels(task: str, split_seed: int) -> np.ndarray:
    return np.array(load_task(task, seed=split_seed)["test"]["label"])


def downstream_table(
    plan: Plan, found: dict, budget: str, task: str, baselines: BaselinesRecord
) -> tuple[list[str], dict]:
    header = [
        "model", "n", "test accuracy", "macro-F1", "one class",
        "− bert (pp, mean ± 95% half-width)", "− random init (pp, mean ± 95% half-width, Welch)",
    ]  # fmt: skip
    rows, values = [], {}
    reference = found.get((REFERENCE_ARM, budget, task, "pretrained"), {})
    for arm in plan.arms:
        for init in ("pretrained", "scratch"):
            records = found.get((arm, budget, task, init), {})
            if not records:
                continue
            accuracy = {unit: record.test["accuracy"] for unit, record in records.items()}
            macro_f1 = [record.test["macro_f1"] for record in records.values()]
            cells = [
                f"{arm}{'' if init == 'pretrained' else ', random init'}",
                str(len(records)),
                mean_and_spread(accuracy.values(), digits=1),
                mean_and_spread(macro_f1, digits=1),
                str(sum(bool(record.test.get("one_class")) for record in records.values())),
            ]
            values[f"{arm}/{init}"] = {"accuracy": accuracy, "macro_f1": macro_f1}
            reference_accuracy = {unit: record.test["accuracy"] for unit, record in reference.items()}
            control = [record.test["accuracy"] for record in found.get((arm, budget, task, "scratch"), {}).values()]
            differences = {
                "vs_reference": reference_difference(arm, init, accuracy, reference_accuracy),
                "vs_scratch": control_difference(init, accuracy, control),
            }
            for key, difference in differences.items():
                if difference is None:
                    cells.append("–")
                    continue
                cells.append(f"{difference.format(100, 1)}{' *' if difference.excludes_zero else ''}")
                values[f"{arm}/{init}"][key] = {"mean": difference.mean, "low": difference.low, "high": difference.high}
            rows.append(cells)
    task_baselines, model_free = baselines.tasks[task], {}
    for name, label in (
        ("majority_class_test", "one class, the test split's most frequent"),
        ("tfidf_logistic_regression", "TF-IDF + LR"),
    ):
        scores = task_baselines[name]
        rows.append([label, "–", f"{100 * scores['accuracy']:.1f}%", f"{100 * scores['macro_f1']:.1f}%", "", "", ""])
        model_free[label] = scores["accuracy"]
    bert_f1 = values.get(f"{REFERENCE_ARM}/pretrained", {}).get("macro_f1")
    # None until `bert` is fine-tuned: whether the task can head a table is not known before
    informative = (
        None
        if bert_f1 is None
        else statistics.fmean(bert_f1) - task_baselines["majority_class_test"]["macro_f1"] >= 0.10
    )
    pretrained = {arm: list(found.get((arm, budget, task, "pretrained"), {}).values()) for arm in plan.arms}
    entry = {
        "rows": values, "informative": informative, "baselines": model_free, "grid_edge": grid_edge(pretrained),
        "identical_controls": identical_controls(plan, found, budget, task),
        "planned": {"pretrained": len(plan.seeds), "scratch": len(plan.finetuning["scratch_seeds"])},
    }  # fmt: skip
    return markdown_table(header, rows), entry


def grid_edge(records: dict[str, list[FinetuningRecord]]) -> dict:
    """Per arm's records, how many fine-tunings chose their grid's top learning rate, how many their last epoch (still
    improving on validation when training stopped), and how many both: where the declared rates or epochs are too few
    for an arm, it shows."""
    top_rate_by_arm, top_rate, last_epoch, top_rate_last_epoch, searched = {}, 0, 0, 0, 0
    for arm, arm_records in records.items():
        for record in arm_records:
            if not record.learning_rate_search:
                continue
            chosen = record.selected_search_entry
            at_top = chosen["learning_rate"] == max(record.training["learning_rate_grid"])
            at_end = chosen["epoch"] == record.training["num_train_epochs"]
            searched += 1
            top_rate += at_top
            last_epoch += at_end
            top_rate_last_epoch += at_top and at_end
            if at_top:
                top_rate_by_arm[arm] = top_rate_by_arm.get(arm, 0) + 1
    return {
        "fine_tunings": searched, "top_rate": top_rate, "last_epoch": last_epoch,
        "top_rate_last_epoch": top_rate_last_epoch, "top_rate_by_arm": top_rate_by_arm,
    }  # fmt: skip


def identical_controls(plan: Plan, found: dict, budget: str, task: str) -> list[dict]:
    """Pairs of arms whose random-initialisation controls predicted every test example alike at every seed both have:
    architectures that start from the same weights and compute the same function on these inputs (DropMask acts only
    on [MASK] tokens, which no fine-tuning input holds) give one control twice, not two."""
    predictions = {
        arm: {seed: record.test_predictions for seed, record in found.get((arm, budget, task, "scratch"), {}).items()}
        for arm in plan.arms
    }
    pairs = []
    for first, second in itertools.combinations(plan.arms, 2):
        seeds = sorted(set(predictions[first]) & set(predictions[second]))
        same = [predictions[first][s] is not None and predictions[first][s] == predictions[second][s] for s in seeds]
        if seeds and all(same):
            pairs.append({"arm": second, "same_as": first, "seeds": seeds})
    return pairs


def task_notes(task: str, entry: dict) -> str:
    """The sentences under a task's table: how often the grid's edges were chosen, whether pretraining is shown to
    help the reference arm at all, and controls that are one."""
    notes = []
    edge = entry.get("grid_edge")
    if edge and (edge["top_rate"] or edge["last_epoch"]):
        by_arm = ", ".join(f"`{arm}` {count}" for arm, count in edge["top_rate_by_arm"].items())
        notes.append(
            f"{edge['top_rate']} of {edge['fine_tunings']} pretrained {task} fine-tunings chose the grid's top learning "
            f"rate{f' ({by_arm})' if by_arm else ''} and {edge['last_epoch']} of {edge['fine_tunings']} their last "
            f"epoch ({edge['top_rate_last_epoch']} both): one that chose its last epoch was still improving on "
            "validation when training stopped, so the declared learning rates and epochs may be too few for these "
            "arms, which weighs on their differences."
        )
    untaught = entry.get("rows", {}).get(f"{REFERENCE_ARM}/pretrained", {}).get("vs_scratch")
    if untaught and untaught["low"] <= 0 <= untaught["high"]:
        notes.append(
            f"Pretrained `{REFERENCE_ARM}` is not shown to beat `{REFERENCE_ARM}` from random initialisation on {task} "
            f"({100 * untaught['mean']:+.1f} pp [{100 * untaught['low']:+.1f}, {100 * untaught['high']:+.1f}]): a "
            f"difference to `{REFERENCE_ARM}` here may come from the architectures rather than from what pretraining "
            "taught them, which each arm's random-initialisation control tells apart."
        )
    notes += [
        f"`{pair['arm']}`'s random-initialisation control predicted every {task} test example as `{pair['same_as']}`'s "
        f"did, at {shared_seeds(pair['seeds'])} both have: the same control twice (the architectures start from the "
        "same weights and compute the same function on inputs without [MASK]), not independent evidence."
        for pair in entry.get("identical_controls", [])
    ]
    return " ".join(notes)


def shared_seeds(seeds) -> str:
    """The seeds two arms share, in words: "the one seed" or "each of the n seeds"."""
    return "the one seed" if len(seeds) == 1 else f"each of the {len(seeds)} seeds"


def reference_difference(arm: str, init: str, accuracy: dict, reference_accuracy: dict):
    """A pretrained arm against the reference arm, paired by pretraining seed (None for the reference itself, a
    control, or fewer than 2 shared seeds)."""
    if init != "pretrained" or arm == REFERENCE_ARM or len(set(accuracy) & set(reference_accuracy)) < 2:
        return None
    return paired_difference(accuracy, reference_accuracy)


def control_difference(init: str, accuracy: dict, control: list[float]):
    """A pretrained arm against the same architecture from random weights: two independent groups (the control's
    seeds are fine-tuning seeds, matched to no pretraining seed). None for a control, or under 2 values a side."""
    if init != "pretrained" or min(len(accuracy), len(control)) < 2:
        return None
    return independent_difference(list(accuracy.values()), control)
