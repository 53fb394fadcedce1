"""Runs made again for the fine-tunings the records lack: the same commands, kept apart from the recorded runs."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

from recipes.environment import REPO_ROOT
from recipes.records import EqualTimeTable
from recipes.training.curves import load_curve
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
    curve = load_curve(records / "bert-15m-seed1")
    assert f"| identical at all {len(curve)} points | 17320a7 on AMD EPYC → 17320a7 on AMD EPYC |" in text
    table = EqualTimeTable.read(tmp_path / "page" / "table.json")
    assert table.downstream["15m/wiki-topics"]["replicated_arms"] == ["bert"]
    assert table.downstream["15m/wiki-topics"]["replicates_identical"] is True
    assert "after the weights were gone, each identical to its record at every held-out evaluation point" in text
    assert table.downstream["15m/wiki-topics"]["rows"]["bert/pretrained"]["accuracy"] == {"1": 0.5}
    assert table.downstream["15m/trec"]["replicated_arms"] == []


def test_a_remade_curve_is_the_recorded_one_only_where_every_measure_of_every_point_agrees():
    """The wall-clock of a point is the machine's and may differ; a step, a token count or a held-out number may not,
    and a curve cut short or run on differs where the shorter one ends."""
    recorded = load_curve(REPO_ROOT / report.RECORDS_DIR / "bert-15m-seed1")
    assert replicates.curve_difference(recorded, [{**point, "elapsed_s": 0.0} for point in recorded]) is None
    for measure in replicates.CURVE_MEASURES:
        changed = [dict(point) for point in recorded]
        changed[2][measure] += 1
        assert replicates.curve_difference(recorded, changed) == recorded[2]["step"], measure
    assert replicates.curve_difference(recorded, recorded[:-1]) == recorded[-2]["step"]
    assert replicates.curve_difference(recorded, []) == 0


def test_the_remakes_come_primary_arms_first_and_each_run_once_across_shards():
    replicate = Plan.read(replicates.REPLICATES_PLAN)
    order = replicates.remake_order(replicate, ["bert", "hbert-v1"])
    assert sorted(run.name for run in order) == sorted(run.name for run in replicate.runs())
    assert [run.name for run in order[:6]] == [
        f"{arm}-15m-seed{seed}" for seed in (1, 2, 3) for arm in ("bert", "hbert-v1")
    ]
    shards = [order[index::2] for index in range(2)]
    assert sorted(run.name for shard in shards for run in shard) == sorted(run.name for run in order)


def test_a_remake_refuses_a_pretraining_tree_at_another_commit_before_running_anything(tmp_path):
    """Only the code that made the recorded run makes it again; the check names the commit to use."""
    replicate = Plan.read(replicates.REPLICATES_PLAN)
    run = replicate.runs()[0]
    arguments = argparse.Namespace(
        pretraining_tree=REPO_ROOT, finetuning_tree=REPO_ROOT, output_dir=tmp_path / "out", replicates_dir=tmp_path
    )
    plan_data = json.loads(replicates.REPLICATES_PLAN.read_text())
    with pytest.raises(SystemExit, match="was made at 17320a7"):
        replicates.remake(run, plan_data, arguments)
    assert not (tmp_path / "out").exists()


def test_a_finished_remake_with_the_recorded_curve_is_not_pretrained_again(tmp_path):
    """Its fine-tuning was cut short: the remake is kept. A run stopped early, or one whose curve differs, is not."""
    recorded = REPO_ROOT / report.RECORDS_DIR / "bert-15m-seed1"
    folder = tmp_path / "bert-15m-seed1"
    assert not replicates.made_already(recorded, folder)
    shutil.copytree(recorded, folder, ignore=shutil.ignore_patterns("downstream"))
    assert replicates.made_already(recorded, folder)
    curve = json.loads((folder / "mlm_curve.json").read_text())
    curve["points"][3]["loss"] += 1e-6
    (folder / "mlm_curve.json").write_text(json.dumps(curve))
    assert not replicates.made_already(recorded, folder)
    shutil.copy2(recorded / "mlm_curve.json", folder / "mlm_curve.json")
    budget = json.loads((folder / "budget.json").read_text())
    (folder / "budget.json").write_text(json.dumps({**budget, "stop_reason": "signal"}))
    assert not replicates.made_already(recorded, folder)


def test_a_remake_of_a_resumed_record_is_killed_after_that_checkpoint_and_resumed_there(tmp_path, train_file, capfd):
    """A real pretraining run (a checkpoint every 4 steps) killed once its checkpoint at step 4 is complete; the
    checkpoints it wrote after are dropped, and the same command resumes from step 4 and finishes."""
    folder = tmp_path / "run"
    command = [
        sys.executable, "recipes/pretrain.py", "--variant", "hbert-v1", "--size", "tiny",
        "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2",
        "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_eval_samples", "16", "--use_cpu",
        "--train_file", str(train_file), "--output_dir", str(folder), "--budget", "10m", "--max_steps", "120",
        "--num_eval_points", "2", "--save_strategy", "steps", "--save_steps", "4", "--save_total_limit", "100",
    ]  # fmt: skip
    replicates.run_resumed_at(command, REPO_ROOT, folder, 4)
    output = capfd.readouterr()
    assert output.out.count(f"Resuming from {folder / 'checkpoint-4'}.") == 1, output.out[-3000:]
    record = json.loads((folder / "budget.json").read_text())
    assert record["stop_reason"] == "max_steps" and record["steps"] == 120 and record["resumed_at"] == [4]
    assert "budget, resumed at step 4: 120 steps" in output.out
    with pytest.raises(SystemExit, match="before its checkpoint at step 7"):
        replicates.run_resumed_at(command, REPO_ROOT, tmp_path / "elsewhere", 7)


def test_a_remake_that_is_not_the_recorded_model_does_not_stop_its_shard(tmp_path, monkeypatch, capsys):
    """Every run of the shard is made; the one that differs is named on stderr and in the exit status."""
    made = []

    def remake(run, plan_data, args):
        made.append(run.name)
        if len(made) == 1:
            raise replicates.NotTheRecordedModel(f"{run.name} differs from its record from step 245")

    monkeypatch.setattr(replicates, "remake", remake)
    arguments = ["remake", "--shard", "1/2", "--pretraining_tree", str(tmp_path), "--finetuning_tree", str(tmp_path),
                 "--replicates_dir", str(tmp_path / "replicates")]  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        replicates.main(arguments)
    assert len(made) == len(Plan.read(replicates.REPLICATES_PLAN).runs()[1::2]) > 1
    assert stopped.value.code == f"Not the recorded model, so not fine-tuned: {made[0]}."
    assert f"{made[0]} differs from its record from step 245" in capsys.readouterr().err
