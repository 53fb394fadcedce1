"""Runs made again for the fine-tunings the records lack: the same commands, kept apart from the recorded runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recipes.environment import REPO_ROOT
from recipes.records import EqualTimeTable
from studies.equal_time import PLAN_FILE, Plan, finetunings, replicates, report


def test_the_replicate_plan_is_derived_from_the_study_plan_and_repeats_its_commands():
    """replicates.json is `replicate_plan(plan.json)`; each of its runs is a fine-tuned run of the study with the same
    pretraining command, followed only by its pretrained wiki-topics fine-tuning, which has the study's command too."""
    study = json.loads(PLAN_FILE.read_text())
    assert json.loads(replicates.REPLICATES_PLAN.read_text()) == replicates.replicate_plan(study)
    plan, replicate = Plan.read(), Plan.read(replicates.REPLICATES_PLAN)
    runs = {run.name: run for run in plan.runs()}
    assert [run.name for run in replicate.runs()] == [run.name for run in plan.runs() if run.budget == "15m"]
    for run in replicate.runs():
        assert replicate.pretraining_argv(run, Path("out")) == plan.pretraining_argv(runs[run.name], Path("out"))
    steps = finetunings(replicate)
    assert {(step.task, step.init, step.seed) for step in steps} == {("wiki-topics", "pretrained", 1)}
    assert {step.name for step in steps} <= {step.name for step in finetunings(plan)} and len(steps) == 21


def test_a_replicate_fills_only_what_the_records_lack_and_the_page_says_so(tmp_path):
    """A replicate of `bert` 15m seed 1 with a wiki-topics fine-tuning: the page takes that row from it, says so, and
    sets the replicate's final held-out MLM beside the recorded run's; its TREC records are not consulted."""
    records = REPO_ROOT / report.RECORDS_DIR
    replica = tmp_path / "replicates" / "bert-15m-seed1"
    shutil.copytree(records / "bert-15m-seed1", replica, ignore=shutil.ignore_patterns("downstream"))
    finetuned = json.loads((records / "bert-15m-seed1" / "downstream" / "trec" / "pretrained-seed1.json").read_text())
    (replica / "downstream" / "wiki-topics").mkdir(parents=True)
    (replica / "downstream" / "wiki-topics" / "pretrained-seed1.json").write_text(
        json.dumps({**finetuned, "task": "wiki-topics", "test": {**finetuned["test"], "accuracy": 0.5}})
    )
    (tmp_path / "page").mkdir()
    text = report.write_report(Plan.read(), records, tmp_path / "page", tmp_path / "replicates")
    assert "The pretrained wiki-topics rows of `bert` come from replicates" in text
    assert "## Replicate runs" in text and "| bert-15m-seed1 | 5.93% → 5.93% |" in text
    table = EqualTimeTable.read(tmp_path / "page" / "table.json")
    assert table.downstream["15m/wiki-topics"]["replicated_arms"] == ["bert"]
    assert table.downstream["15m/wiki-topics"]["rows"]["bert/pretrained"]["accuracy"] == {"1": 0.5}
    assert table.downstream["15m/trec"]["replicated_arms"] == []
