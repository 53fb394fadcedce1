"""recipes/records/ and recipes/run_folder/recorded_runs.py: the committed records read back as typed records and write back as the same
JSON; a field added later has a default for older records; a bad record is one clear error; runs are named alike for
directories and Hub repos."""

import dataclasses
import json
from pathlib import Path

import pytest

from recipes.records import (
    BUDGET_FILE,
    BenchmarkRecord,
    CalibrationRecord,
    CurveRecord,
    DataScaleRecord,
    DistillationRecord,
    FinetuningRecord,
    FrontierRecord,
    PretrainingRecord,
    ProbeRecord,
    RunRecord,
    StepTimesRecord,
)
from recipes.records.files import set_fields
from recipes.run_folder.naming import init_part, run_name, split_variant
from recipes.run_folder.recorded_runs import RecordedRun, pretraining_runs

COMMITTED_RECORDS = Path(__file__).resolve().parents[1] / "results" / "tiny_zoo" / "zoo_runs"


def test_committed_records_read_and_write_back_as_the_same_json(tmp_path):
    """Every committed budget.json, fine-tuning record and benchmark reads as its record, and writing it gives the same
    JSON (the files keep their format)."""
    runs = pretraining_runs(COMMITTED_RECORDS)
    assert len(runs) > 10
    for run_dir in runs:
        record = PretrainingRecord.read(run_dir)
        assert record.to_dict() == json.loads((run_dir / BUDGET_FILE).read_text())
        record.write(tmp_path)
        assert PretrainingRecord.read(tmp_path) == record
    downstream = sorted(COMMITTED_RECORDS.glob("*/downstream/*/*.json")) + sorted(
        COMMITTED_RECORDS.glob("reference/*/*")
    )
    assert len(downstream) > 100
    for path in downstream:
        assert FinetuningRecord.read(path).to_dict() == json.loads(path.read_text())
    for path in sorted(COMMITTED_RECORDS.glob("benchmark_*/*.json")):
        assert BenchmarkRecord.read(path).to_dict() == json.loads(path.read_text())


RESULTS = COMMITTED_RECORDS.parents[1]


@pytest.mark.parametrize(
    "record_type, pattern",
    [
        (CalibrationRecord, "**/calibration/**/*.json"),
        (CurveRecord, "**/mlm_curve.json"),
        (CurveRecord, "**/agreement_curve.json"),
        (DistillationRecord, "heal/runs/*distill*/budget.json"),
        (StepTimesRecord, "heal/step_times.json"),
        (ProbeRecord, "heal/probe-*.json"),
        (DataScaleRecord, "data_scale/data_scale.json"),
        (FrontierRecord, "heal/frontier/frontier.json"),
    ],
)
def test_every_committed_artefact_reads_as_its_type_and_writes_back_the_same(record_type, pattern, tmp_path):
    paths = sorted(RESULTS.glob(pattern))
    assert paths
    for path in paths:
        record = record_type.read(path.parent if record_type is DistillationRecord else path)
        assert set_fields(record) == json.loads(path.read_text())


def test_a_record_of_a_newer_schema_is_refused(tmp_path):
    record = CurveRecord(fields=["step"], points=[{"step": 1}])
    newer = dataclasses.replace(record, schema_version=CurveRecord.SCHEMA_VERSION + 1)
    newer.write(tmp_path / "curve.json")
    with pytest.raises(ValueError, match="schema_version 2; this code reads up to 1"):
        CurveRecord.read(tmp_path / "curve.json")
    record.write(tmp_path / "curve.json")
    assert CurveRecord.read(tmp_path / "curve.json") == record


def test_fine_tuning_records_cite_their_pretraining_run_key():
    """The run key a fine-tuning record cites is the one its pretraining record gives: the card and the zoo's skip
    logic count exactly these as current."""
    for run_dir in pretraining_runs(COMMITTED_RECORDS):
        run = RecordedRun.read(run_dir)
        assert run.downstream and run.stale_downstream == 0, run_dir
        assert {record.pretraining.run_key for record in run.downstream} == {run.record.run_record.run_key()}
        assert all(record.key().pretraining_run_key == run.record.run_record.run_key() for record in run.downstream)


def test_a_field_with_a_default_may_be_missing_and_a_required_one_may_not(tmp_path):
    data = json.loads((pretraining_runs(COMMITTED_RECORDS)[0] / BUDGET_FILE).read_text())
    del data["run_record"]["load_average"]  # a field added after the first records: it has a default
    (tmp_path / BUDGET_FILE).write_text(json.dumps(data))
    assert PretrainingRecord.read(tmp_path).run_record.load_average == []
    del data["steps"]
    (tmp_path / BUDGET_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"budget\.json is not a pretraining record .* it lacks steps"):
        PretrainingRecord.read(tmp_path)
    (tmp_path / BUDGET_FILE).write_text("[]")
    with pytest.raises(TypeError, match="holds no JSON object"):
        PretrainingRecord.read(tmp_path)
    (tmp_path / BUDGET_FILE).write_text("{")
    with pytest.raises(ValueError, match=r"budget\.json is not valid JSON \(pretraining record.*\): Expecting"):
        PretrainingRecord.read(tmp_path)
    with pytest.raises(FileNotFoundError, match="no fine-tuning record there"):
        FinetuningRecord.read(tmp_path / "missing.json")


def test_a_required_field_at_none_is_written_and_reads_back(tmp_path):
    """A model made from a BERT of no catalogued size has size None: the record keeps the key (null), so it reads
    back, while an optional field at None stays absent, as in the files written before it existed."""
    record = PretrainingRecord.read(pretraining_runs(COMMITTED_RECORDS)[0])
    unsized = dataclasses.replace(record, size=None, utilisation=None)
    written = json.loads(unsized.write(tmp_path).read_text())
    assert written["size"] is None and "utilisation" not in written
    assert PretrainingRecord.read(tmp_path) == unsized


def test_write_is_whole_and_leaves_no_staging_file(tmp_path):
    record = PretrainingRecord.read(pretraining_runs(COMMITTED_RECORDS)[0])
    written = record.write(tmp_path / "run")
    assert sorted(path.name for path in written.parent.iterdir()) == [BUDGET_FILE]


def test_run_key_covers_exactly_what_defines_the_weights():
    record = PretrainingRecord.read(pretraining_runs(COMMITTED_RECORDS)[0]).run_record
    assert RunRecord(**{**record.__dict__, "threads": 64, "load_average": [9.0]}).run_key() == record.run_key()
    assert RunRecord(**{**record.__dict__, "seed": record.seed + 1}).run_key() != record.run_key()


@pytest.mark.parametrize(
    "label, init_from, seed, hub, name",
    [
        ("bert+dropmask", None, 1, False, "bert+dropmask-tiny-1m-seed1"),
        ("bert+dropmask", None, None, True, "bert-dropmask-tiny-1m"),
        ("hbert-v2", "minilm", 1, False, "hbert-v2-tiny-init-minilm-1m-seed1"),
        ("hbert-v2", "/models/minilm", 3, True, "hbert-v2-tiny-init-minilm-1m-seed3"),
    ],
)
def test_run_names_for_directories_and_repos(label, init_from, seed, hub, name):
    assert run_name(label, "tiny", init_part(init_from), "1m", seed=seed, hub=hub) == name


def test_committed_directory_names_are_what_run_name_gives():
    for run_dir in pretraining_runs(COMMITTED_RECORDS):
        run = RecordedRun.read(run_dir)
        spent = run.record
        assert run_dir.name == run_name(
            run.label, spent.size, init_part(spent.init_from), spent.budget, seed=spent.seed
        )
    assert split_variant("pool-hybrid+dropmask") == ("pool-hybrid", True)
