"""The study's fine-tuned runs made again, for the pretrained fine-tunings that were not recorded while the weights
existed (`results/equal_time/replicates/`, from `replicates.json`).

A replicate is the recorded run's own command (the same calibrated steps, seeds, data and masks) into another folder.
On another kind of CPU its numerics differ, so it is not the recorded model: its pretraining record is kept beside the
recorded one, and the fine-tunings made from it cite its run key. `replicates.json` is derived from `plan.json` by
`replicate_plan` (a test checks it): only the fine-tuned budgets, no long runs and no endpoints, and only the tasks the
records lack, without random-initialisation controls (those need no weights: `controls_from_records.py`). The frozen
driver runs it, and gathers into the replicates folder:

    cd /work/finetune && python -m studies.equal_time pretrain --jobs 2 \\
        --plan /work/main/studies/equal_time/replicates.json \\
        --output_dir /work/main/runs/equal_time-replicates --records_dir /work/main/results/equal_time/replicates

The recipe is bf16 (`--bf16 true`): run it where bf16 is native (AVX512-BF16 or AMX, or a GPU); elsewhere it is
emulated and a 15-minute run takes hours (`pretrain.py` warns).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recipes.cards.markdown import markdown_table
from recipes.records.files import read_json_object
from studies.equal_time import PLAN_FILE, RESULTS_DIR
from studies.equal_time.gathered import MLM_METRICS, Run

REPLICATES_PLAN = PLAN_FILE.with_name("replicates.json")
REPLICATES_DIR = RESULTS_DIR / "replicates"
REPLICATED_TASKS = ("wiki-topics",)


def replicate_plan(plan: dict, tasks: tuple[str, ...] = REPLICATED_TASKS) -> dict:
    """The plan whose runs are `plan`'s fine-tuned runs, each followed by its pretrained fine-tunings on `tasks`."""
    finetuning = plan["finetuning"]
    unknown = set(tasks) - set(finetuning["tasks"])
    if unknown:
        raise ValueError(f"Tasks {sorted(unknown)} are not among the plan's: {', '.join(finetuning['tasks'])}.")
    budgets = {budget: plan["budgets"][budget] for budget in finetuning["budgets"]}
    return {
        **{key: value for key, value in plan.items() if key not in ("primary_endpoints", "contrasts")},
        "budgets": budgets,
        "long_runs": [],
        "finetuning": {
            **finetuning,
            "scratch_seeds": [],
            "tasks": {task: finetuning["tasks"][task] for task in tasks},
        },
    }


def with_replicates(found: dict, replicated: dict) -> tuple[dict, list[tuple]]:
    """The fine-tunings of the recorded runs, and those of the replicates where the records have none for that arm,
    budget, task and init; with the keys the replicates gave."""
    keys = [key for key in replicated if key not in found]
    return {**found, **{key: replicated[key] for key in keys}}, keys


def replicate_table(runs: dict[str, Run], replicas: dict[str, Run]) -> list[str]:
    """Each replicate's final held-out MLM beside its recorded run's, and the machine each ran on."""
    header = ["run", *(f"{label}: recorded → replicate" for label in MLM_METRICS.values()), "machines"]
    rows = []
    for name, replica in replicas.items():
        recorded = runs[name]
        cells = [
            f"{recorded.final(metric):.3f} → {replica.final(metric):.3f}"
            if metric == "loss"
            else f"{100 * recorded.final(metric):.2f}% → {100 * replica.final(metric):.2f}%"
            for metric in MLM_METRICS
        ]
        rows.append([name, *cells, f"{recorded.record.run_record.device} → {replica.record.run_record.device}"])
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPLICATES_PLAN)
    args = parser.parse_args(argv)
    derived = replicate_plan(read_json_object(PLAN_FILE, "study plan"))
    args.output.write_text(json.dumps(derived, indent=2) + "\n")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
