"""The study's random-initialisation controls run from the committed records alone, on a checkout without weights."""

from __future__ import annotations

import json

from recipes.data.input_files import check_weights
from recipes.environment import REPO_ROOT
from recipes.records import FinetuningRecord
from studies.equal_time import Plan, finetunings
from studies.equal_time import controls_from_records as controls


def test_controls_need_only_the_gathered_records(tmp_path):
    """Run folders come back from the records (seed 1's with placeholder weights of its config's shapes, nowhere
    else), recorded controls count as done, and only unrecorded controls are planned, TREC before wiki-topics."""
    data = json.loads((REPO_ROOT / "studies/equal_time/plan.json").read_text())
    data |= {"arms": {"bert": data["arms"]["bert"]}, "primary_endpoints": [], "contrasts": []}
    (tmp_path / "plan.json").write_text(json.dumps(data))
    plan, output_dir = Plan.read(tmp_path / "plan.json"), tmp_path / "runs"
    records_dir = REPO_ROOT / "results/equal_time/runs"
    placed = controls.restore_run_folders(plan, output_dir, records_dir)
    assert [folder.name for folder in placed] == ["bert-15m-seed1"]
    check_weights(output_dir / "bert-15m-seed1")
    assert (output_dir / "bert-15m-seed1" / controls.PLACEHOLDER).is_file()
    assert sorted(path.name for path in output_dir.iterdir()) == ["bert-15m-seed1", "bert-15m-seed2", "bert-15m-seed3"]
    assert not (output_dir / "bert-15m-seed2" / "model.safetensors").exists()
    # placeholders a killed run left behind are claimed again, so that they are deleted at the end
    assert controls.restore_run_folders(plan, output_dir, records_dir) == placed
    # bert's three TREC controls are recorded; with one record removed, that control alone is pending among them
    (output_dir / "bert-15m-seed1" / "downstream" / "trec" / "scratch-seed2.json").unlink()
    names = [job.name for job in controls.pending_controls(plan, output_dir, records_dir)]
    assert [name for name in names if "/trec/" in name] == ["bert-15m-seed1/trec/scratch-seed2"]
    assert names[0] == "bert-15m-seed1/trec/scratch-seed2" and all("/scratch-" in name for name in names)
    recorded = {
        step.name
        for step in finetunings(plan)
        if FinetuningRecord.downstream_path(records_dir / step.run.name, step.task, step.init, step.seed).is_file()
    }
    assert not recorded & set(names[1:])
