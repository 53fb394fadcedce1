"""Calibrated budgets and reproducible runs: a real (tiny) throughput measurement, its conversion into steps, the
refusal of a record measured at other settings, same-seed reruns that match, and the same held-out masks and training
batches for every variant and pretraining seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from recipes.pretrain import main
from recipes.records import CalibrationRecord
from recipes.training import calibration
from recipes.training.arguments import bf16_where_native
from recipes.training.clock import parse_budget

SEQ, BATCH = 32, 4
OVERRIDES = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2"
MEASURED = ["--size", "tiny", "--config_overrides", OVERRIDES, "--per_device_train_batch_size", str(BATCH),
            "--max_seq_length", str(SEQ), "--use_cpu"]  # fmt: skip


def _pretrain_argv(variant: str, train_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--variant", variant, *MEASURED, "--per_device_eval_batch_size", "16", "--max_eval_samples", "16",
        "--train_file", str(train_file), "--output_dir", str(output_dir), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def record_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "tiny.json"
    calibration.main(["--variants", "bert", "hbert-v1", *MEASURED, "--warmup_steps", "1", "--rounds", "3",
                      "--steps_per_turn", "2", "--output", str(path)])  # fmt: skip
    return path


def test_the_record_holds_settings_throughput_and_machine(record_file):
    record = calibration.load_record(record_file)
    assert record.schema_version == CalibrationRecord.SCHEMA_VERSION
    assert record.settings == calibration.run_settings(
        size="tiny", config_overrides=OVERRIDES, pretraining_dropout=0.0, mlm_probability=0.15,
        per_device_train_batch_size=BATCH, max_seq_length=SEQ,
        precision="bf16" if bf16_where_native() else "fp32", device_type="cpu", threads=torch.get_num_threads(),
    )  # fmt: skip
    assert set(record.variants) == {"bert", "hbert-v1"}
    for measured in record.variants.values():
        assert len(measured["turn_seconds"]) == 3 and all(s > 0 for s in measured["turn_seconds"])
        # the median turn's throughput, in steps and in tokens
        rates = sorted(2 / s for s in measured["turn_seconds"])
        assert measured["steps_per_s"] == pytest.approx(rates[1])
        assert measured["tokens_per_s"] == pytest.approx(rates[1] * BATCH * SEQ)
    assert record.device and record.torch == torch.__version__ and record.measured_at.endswith("+00:00")


def test_budget_to_steps_rounds_down_per_variant():
    variants = {"bert": {"steps_per_s": 2.5}, "hbert-v1": {"steps_per_s": 0.001}}
    record = CalibrationRecord(settings={}, protocol={}, variants=variants, device="cpu", torch="", measured_at="")
    assert calibration.calibrated_steps(record, "bert", 600) == 1500
    assert calibration.calibrated_steps(record, "bert", 1.3) == 3
    assert calibration.calibrated_steps(record, "hbert-v1", 60) == 1  # never zero steps


def test_a_record_at_other_settings_is_refused_before_anything_is_written(record_file, train_file, tmp_path):
    output_dir = tmp_path / "run"
    argv = _pretrain_argv("bert", train_file, output_dir, "--calibration", str(record_file), "--budget", "2s")
    argv[argv.index("--max_seq_length") + 1] = "64"
    with pytest.raises(
        ValueError, match=r"other settings than this run's:\n  max_seq_length: measured at 32, this run has 64"
    ):
        main(argv)
    for extra, setting in (
        ("--pretraining_dropout", "pretraining_dropout"),
        ("--training_mlm_probability", "mlm_prob"),
    ):
        calibrated = _pretrain_argv("bert", train_file, output_dir, "--calibration", str(record_file), extra, "0.3")
        with pytest.raises(ValueError, match=rf"\n  {setting}\w*: measured at 0.\d+, this run has 0.3"):
            main(calibrated)
    with pytest.raises(ValueError, match="no variant 'pool-hybrid'"):
        main(_pretrain_argv("pool-hybrid", train_file, output_dir, "--calibration", str(record_file)))
    with pytest.raises(ValueError, match="drop --max_steps"):
        main(_pretrain_argv("bert", train_file, output_dir, "--calibration", str(record_file), "--max_steps", "3"))
    not_a_record = tmp_path / "other.json"
    not_a_record.write_text("{}")
    with pytest.raises(ValueError, match="is not a calibration record"):
        main(_pretrain_argv("bert", train_file, output_dir, "--calibration", str(not_a_record)))
    assert not output_dir.exists()


def test_the_precision_checked_is_the_one_the_run_will_train_in(record_file, train_file, tmp_path, monkeypatch):
    """pretrain.py compares the precision accelerate will run, not the --bf16 flag: with --bf16 false an accelerate config
    (ACCELERATE_MIXED_PRECISION, as `accelerate launch` sets it) decides. Measured with the defaults, so the run
    here differs from the record in precision alone."""
    measured = calibration.load_record(record_file).settings["precision"]
    other = "fp32" if measured == "bf16" else "bf16"
    if other == "bf16":
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    output_dir = tmp_path / "run"
    argv = _pretrain_argv("bert", train_file, output_dir, "--calibration", str(record_file), "--bf16", "false")
    refusal = rf"other settings than this run's:\n  precision: measured at '{measured}', this run has '{other}'\n"
    with pytest.raises(ValueError, match=refusal):
        main(argv)
    assert not output_dir.exists()


def test_same_seed_calibrated_runs_make_the_same_steps_and_accuracy(record_file, train_file, tmp_path):
    record = calibration.load_record(record_file)
    budget = f"{3.5 / record.steps_per_s('hbert-v1'):.3f}"  # a budget worth 3.5 steps
    budget_s = parse_budget(budget)
    steps = calibration.calibrated_steps(record, "hbert-v1", budget_s)
    assert steps == 3
    runs = [
        main(_pretrain_argv("hbert-v1", train_file, tmp_path / name, "--calibration", str(record_file),
                            "--budget", budget, "--num_eval_points", "2", "--seed", "7"))
        for name in ("first", "rerun")
    ]  # fmt: skip
    curves = [json.loads((tmp_path / name / "mlm_curve.json").read_text())["points"] for name in ("first", "rerun")]
    for spent in runs:
        assert spent["steps"] == steps
        assert spent["run_record"]["training"]["calibration"] == {
            "file": str(record_file),
            "sha256": calibration.file_sha256(record_file),
            "budget_s": budget_s,
            "steps": steps,
        }
    assert [p["step"] for p in curves[0]] == [p["step"] for p in curves[1]]
    assert abs(100 * curves[0][-1]["accuracy"] - 100 * curves[1][-1]["accuracy"]) <= 0.2
    assert curves[0][-1]["loss"] == pytest.approx(curves[1][-1]["loss"], rel=1e-4)


class TrainingInputs(TrainerCallback):
    """The inputs and labels of every training forward of the trained model."""

    def __init__(self):
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _capture(self, module, args, kwargs):
        if module.training:
            self.batches.append((kwargs["input_ids"].clone(), kwargs["labels"].clone()))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.register_forward_pre_hook(self._capture, with_kwargs=True)


def test_every_variant_and_seed_sees_the_same_held_out_masks_and_training_batches(train_file, tmp_path):
    seen, fingerprints = [], []
    for variant, seed in (("bert", "1"), ("hbert-v1", "2")):
        inputs = TrainingInputs()
        spent = main(
            _pretrain_argv(variant, train_file, tmp_path / variant, "--max_steps", "2", "--seed", seed),
            callbacks=[inputs],
        )
        seen.append(inputs.batches)
        fingerprints.append(spent["run_record"]["data_sha256"])
        assert spent["run_record"]["training"]["held_out_seed"] == 42
        assert spent["run_record"]["training"]["data_seed"] == 42
    # The data fingerprint covers the held-out masks' seed: equal fingerprints are the same cached masked blocks.
    assert fingerprints[0] == fingerprints[1]
    assert len(seen[0]) == len(seen[1]) == 2
    for (ids_a, labels_a), (ids_b, labels_b) in zip(*seen):
        assert torch.equal(ids_a, ids_b) and torch.equal(labels_a, labels_b)
    other = main(_pretrain_argv("bert", train_file, tmp_path / "other", "--max_steps", "1", "--held_out_seed", "5"))
    assert other["run_record"]["data_sha256"] != fingerprints[0]


def test_the_calibration_matching_a_pretraining_command_is_one_it_accepts(train_file, tmp_path):
    """`argv_matching` measures a command's variant at the command's own settings (dropout and training masking rate
    included): the pretraining command takes the record and trains its calibrated steps."""
    argv = _pretrain_argv(
        "pool-hybrid", train_file, tmp_path / "run", "--pretraining_dropout", "0.05",
        "--training_mlm_probability", "0.3", "--budget", "2s", "--num_eval_points", "1",
    )  # fmt: skip
    record_file = tmp_path / "calibration.json"
    measured = calibration.main(
        [*calibration.argv_matching(argv, record_file), "--warmup_steps", "1", "--rounds", "2", "--steps_per_turn", "1"]
    )
    assert list(measured.variants) == ["pool-hybrid"]
    assert (measured.settings["pretraining_dropout"], measured.settings["mlm_probability"]) == (0.05, 0.3)
    spent = main([*argv, "--calibration", str(record_file)])
    assert spent["steps"] == calibration.calibrated_steps(measured, "pool-hybrid", 2.0)


def test_measurements_made_together_share_their_rounds(tmp_path):
    """Two measurements that differ in their config overrides, made as one: each record keeps its own settings and
    variants, with the rounds and the time of the one measurement."""
    argvs = [
        ["--variants", "pool-hybrid", *MEASURED, "--warmup_steps", "1", "--rounds", "2", "--steps_per_turn", "1",
         "--output", str(tmp_path / "current.json")],
        ["--variants", "pool-hybrid", *MEASURED[:3], f"{OVERRIDES},pooling_local_projection=true", *MEASURED[4:],
         "--output", str(tmp_path / "faithful.json")],
    ]  # fmt: skip
    current, faithful = calibration.calibrate_together(argvs)
    assert calibration.load_record(tmp_path / "faithful.json") == faithful
    assert faithful.settings["config_overrides"] == f"{OVERRIDES},pooling_local_projection=true"
    assert current.settings["config_overrides"] == OVERRIDES
    for record in (current, faithful):
        assert record.protocol == {"warmup_steps": 1, "rounds": 2, "steps_per_turn": 1, "measured_with": 2}
        assert len(record.variants["pool-hybrid"]["turn_seconds"]) == 2
    assert current.measured_at == faithful.measured_at
