"""A rerun is the same run or a refused one (issue 32): a run folder's `run.json` records what shapes the run; a
command that would shape it differently is refused before anything loads, naming each difference with both values;
conditions (evaluation cadence, logging, threads) may differ; only a folder marked by `run.json` is ever replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_crash_safety import _hold_lock, _kill_9
from test_pretrain import TINY
from transformers import TrainerCallback

from recipes.finetune import main as finetune
from recipes.pretrain import main as pretrain
from recipes.records import IDENTITY_FILE, RunIdentity
from recipes.run_folder.checkpoints import CheckpointError
from recipes.run_folder.claim import NotARunError, OutputDirInUseError
from recipes.run_folder.resume import RunMismatchError, check_same_run
from studies.zoo.arguments import ZooArguments
from studies.zoo.plan import StaleRunError, plan_zoo


class StopBySignal(TrainerCallback):
    """Sends this process SIGTERM after `step` steps: the run saves a checkpoint and stops unfinished, as when killed
    politely (the budget callback's handler)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _argv(train_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--max_steps", "6", *extra]


def _stopped_run(train_file: Path, output_dir: Path, *extra: str) -> Path:
    record = pretrain(_argv(train_file, output_dir, *extra), callbacks=[StopBySignal(2)])
    assert record["stop_reason"] == "signal"
    return output_dir


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".run.lock"}


@pytest.mark.parametrize(
    "change, named",
    [
        (["--learning_rate", "3e-3"], "training.learning_rate"),
        (["--per_device_train_batch_size", "3"], "training.per_device_train_batch_size"),
        (
            [
                "--config_overrides",
                "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,"
                "additive_full_width_scores=false",
            ],
            "config.additive_full_width_scores",
        ),  # fmt: skip
        (
            [
                "--config_overrides",
                "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,hidden_act=gelu",
            ],
            "config.hidden_act",
        ),  # fmt: skip
        (["--data_seed", "7"], "training.data_seed"),
        (["--neftune_noise_alpha", "5"], "training.neftune_noise_alpha"),
    ],
    ids=["learning-rate", "batch-size", "full-width-scores", "activation", "data-seed", "neftune"],
)
def test_a_rerun_that_would_shape_the_run_differently_is_refused(tmp_path, train_file, change, named):
    """A stopped run continued by a command that changes what shapes it: one error naming the setting with both
    values, before anything loads, and the folder unchanged (it still resumes with its own command)."""
    output_dir = _stopped_run(train_file, tmp_path / "run")
    before = _snapshot(output_dir)
    with pytest.raises(RunMismatchError, match=rf"(?s)shape differently.*{named}: the run has .*, this command "):
        pretrain([*_argv(train_file, output_dir), *change])
    assert _snapshot(output_dir) == before
    assert pretrain(_argv(train_file, output_dir))["stop_reason"] == "max_steps"


def test_a_rerun_on_other_text_is_refused(tmp_path, train_file):
    other = tmp_path / "other.txt"
    other.write_text(train_file.read_text(encoding="utf-8")[::-1], encoding="utf-8")
    output_dir = _stopped_run(train_file, tmp_path / "run")
    with pytest.raises(RunMismatchError, match=r"data\.fingerprint.*\n.*data\.train_file"):
        pretrain([*TINY, "--train_file", str(other), "--output_dir", str(output_dir), "--max_steps", "6"])


def test_conditions_may_differ_and_are_recorded(tmp_path, train_file):
    """Logging cadence does not shape the run: the rerun continues it, and run.json keeps the latest command's."""
    output_dir = _stopped_run(train_file, tmp_path / "run")
    assert pretrain(_argv(train_file, output_dir, "--logging_steps", "3"))["stop_reason"] == "max_steps"
    identity = RunIdentity.read(output_dir)
    assert identity.recipe == "pretraining" and identity.conditions["logging_steps"] == 3


def test_a_finished_run_grows_only_with_an_explicit_resume_and_a_larger_budget(tmp_path, train_file):
    output_dir = tmp_path / "run"
    pretrain([*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--budget", "2s"])
    smaller = [*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--budget", "1s"]
    with pytest.raises(RunMismatchError, match=r"budget\.budget_s: the run has 2\.0, this command 1\.0"):
        pretrain([*smaller, "--resume_from_checkpoint", "true"])
    larger = [*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--budget", "3s"]
    record = pretrain([*larger, "--resume_from_checkpoint", "true"])
    assert record["budget_s"] == 3.0
    assert RunIdentity.read(output_dir).conditions["budget_grown_from_s"] == 2.0


def test_a_folder_from_before_identities_resumes_only_the_same_model(tmp_path, train_file):
    """Without run.json (a run made before identities), the checkpoint's config is compared with the requested model
    in every field that shapes it: a changed mixer option is refused, naming it, before anything loads."""
    output_dir = _stopped_run(train_file, tmp_path / "run")
    (output_dir / IDENTITY_FILE).unlink()
    overrides = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,ffn_bias=true"
    with pytest.raises(CheckpointError, match=r"ffn_bias is False there, True requested"):
        pretrain([*_argv(train_file, output_dir), "--config_overrides", overrides])
    assert not (output_dir / IDENTITY_FILE).exists()  # the refused command did not label the folder as its own
    assert pretrain(_argv(train_file, output_dir))["stop_reason"] == "max_steps"  # the run's own command continues


def test_a_run_made_from_a_bert_resumes_with_its_own_command(tmp_path, train_file):
    """A model made from a BERT records the size its dimensions match (MiniLM: `minilm`); its own command continues
    it."""
    argv = [
        "--variant", "hbert-v1", "--init_from", "minilm", "--train_file", str(train_file), "--max_seq_length",
        "32", "--per_device_train_batch_size", "4", "--max_eval_samples", "16", "--use_cpu", "--max_steps", "6",
        "--output_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert pretrain(argv, callbacks=[StopBySignal(2)])["stop_reason"] == "signal"
    assert pretrain(argv)["stop_reason"] == "max_steps"


def test_overwrite_with_bad_data_leaves_the_run_it_would_replace(tmp_path, train_file):
    """--overwrite_output_dir replaces a run only once the new command's checks and data have passed."""
    output_dir = tmp_path / "run"
    pretrain(_argv(train_file, output_dir))
    before = _snapshot(output_dir)
    one_line = tmp_path / "one-line.txt"
    one_line.write_text("Too short to hold anything out.\n")
    argv = [*TINY, "--train_file", str(one_line), "--output_dir", str(output_dir), "--overwrite_output_dir"]
    with pytest.raises(ValueError, match="too few to hold out"):
        pretrain(argv)
    assert _snapshot(output_dir) == before


def test_overwrite_replaces_a_run_recorded_before_run_json(tmp_path, train_file):
    """A finished run from before run.json is recognised by its complete record (not by file names) and replaced."""
    output_dir = tmp_path / "run"
    pretrain(_argv(train_file, output_dir))
    (output_dir / IDENTITY_FILE).unlink()
    assert pretrain([*_argv(train_file, output_dir, "--learning_rate", "3e-3"), "--overwrite_output_dir"])


def test_a_calibrated_run_grows_with_its_step_count():
    """A larger calibrated budget changes the budget and its step count; an explicit resume accepts both."""
    shapes = {"budget": {"budget_s": 2.0, "calibration": {"sha256": "x", "steps": 10}}, "training": {"seed": 1}}
    grown = {"budget": {"budget_s": 4.0, "calibration": {"sha256": "x", "steps": 20}}, "training": {"seed": 1}}
    recorded, requested = (RunIdentity("pretraining", value, {}) for value in (shapes, grown))
    assert recorded.differences(requested) == [
        "budget.budget_s: the run has 2.0, this command 4.0",
        "budget.calibration.steps: the run has 10, this command 20",
    ]
    folder = Path(tempfile.mkdtemp())
    recorded.write(folder)
    assert check_same_run(folder, requested, "true").conditions["budget_grown_from_s"] == 2.0
    with pytest.raises(RunMismatchError):
        check_same_run(folder, requested, None)


@pytest.mark.parametrize("recipe", ["pretrain", "finetune"])
@pytest.mark.parametrize("contents", ["notes", "trainer-output", "unmarked-run"])
def test_overwrite_replaces_only_a_marked_folder(tmp_path, train_file, recipe, contents):
    """A folder that only looks like a run (checkpoint-* names, another project's Trainer output, or a run of ours
    from before run.json) is refused with its contents named, and left as it was."""
    folder = tmp_path / "folder"
    folder.mkdir()
    if contents == "notes":
        (folder / "checkpoint-notes.txt").write_text("ideas")
        (folder / "thesis.tex").write_text("\\begin{document}")
    elif contents == "trainer-output":
        (folder / "checkpoint-500").mkdir()
        (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"weights")
        (folder / "README.md").write_text("another project's model")
        (folder / "all_results.json").write_text("{}")
    else:
        (folder / "budget.json").write_text("{}")
        (folder / "mlm_curve.json").write_text("{}")
    before = _snapshot(folder)
    model = tmp_path / "model"
    pretrain(_argv(train_file, model, "--max_steps", "1"))
    if recipe == "pretrain":
        argv, run = [*_argv(train_file, folder), "--overwrite_output_dir"], pretrain
    else:
        argv, run = (
            ["--model", str(model), "--task", "trec", "--output_dir", str(folder), "--overwrite_output_dir"],
            finetune,
        )
    with pytest.raises(NotARunError, match=f"refuses to empty {folder}: it holds .*no {IDENTITY_FILE}"):
        run(argv)
    assert _snapshot(folder) == before


def test_overwrite_replaces_a_marked_run(tmp_path, train_file):
    output_dir = _stopped_run(train_file, tmp_path / "run")
    record = pretrain([*_argv(train_file, output_dir, "--learning_rate", "3e-3"), "--overwrite_output_dir"])
    assert record["stop_reason"] == "max_steps"
    assert RunIdentity.read(output_dir).shapes["training"]["learning_rate"] == 3e-3


def test_finetune_refuses_a_read_only_model_folder_before_training(tmp_path, train_file, small_disk):
    """A pretraining run on a read-only mount: fine-tuning it would write its record into the run's downstream/
    folder, so it is refused before training, and nothing is written."""
    disk = small_disk("64m")
    model = disk / "model"
    pretrain(_argv(train_file, model, "--max_steps", "1"))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(PermissionError, match="read-only: the fine-tuning record goes to its downstream/"):
        finetune(["--model", str(model), "--task", "trec", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def _zoo_args(tmp_path: Path, train_file: Path, **extra) -> ZooArguments:
    return ZooArguments(
        output_dir=str(tmp_path / "zoo"), variants=["bert"], size="tiny", budgets=["2s"], tasks=["trec"],
        finetune_seeds=[1], finetune_from_scratch=False, benchmark=False,
        pretrain_args=f"--train_file {train_file} --max_seq_length 32 --per_device_train_batch_size 4 "
        "--max_eval_samples 8 --use_cpu",
        results_dir=str(tmp_path / "results"), **extra,
    )  # fmt: skip


def test_the_zoo_continues_an_unfinished_run_and_refuses_to_replace_a_finished_one_unasked(tmp_path, train_file):
    args = _zoo_args(tmp_path, train_file)
    step = plan_zoo(args).pretraining[0]
    assert "--overwrite_output_dir" not in step.argv
    pretrain(step.argv, callbacks=[StopBySignal(1)])  # a zoo run stopped part-way
    again = plan_zoo(args).pretraining[0]
    assert again.runs and "--overwrite_output_dir" not in again.argv  # it continues from its checkpoint
    record = json.loads((step.run_dir / "budget.json").read_text())
    record["stop_reason"], record["run_record"]["git_commit"] = "budget", "another-commit"
    (step.run_dir / "budget.json").write_text(json.dumps(record))  # finished, by other code
    with pytest.raises(StaleRunError, match=f"{step.run_dir} holds a finished run .* --replace_stale"):
        plan_zoo(args)
    replacing = plan_zoo(_zoo_args(tmp_path, train_file, replace_stale=True)).pretraining[0]
    assert replacing.runs and replacing.argv[-1] == "--overwrite_output_dir"


def test_finetune_names_a_run_still_training_in_the_model_folder_before_training(tmp_path, train_file):
    """Fine-tuning writes its record into the pretraining run's folder under that folder's lock: a live run holding
    it is named before fine-tuning starts, and nothing is written."""
    model = tmp_path / "model"
    pretrain(_argv(train_file, model, "--max_steps", "1"))
    holder = _hold_lock(model)
    try:
        with pytest.raises(OutputDirInUseError, match=f"{model} is in use by another run \\(PID {holder.pid}"):
            finetune(["--model", str(model), "--task", "trec", "--output_dir", str(tmp_path / "out")])
    finally:
        _kill_9(holder)
    assert not (tmp_path / "out").exists() and not (model / "downstream").exists()


def test_an_argument_added_after_a_run_began_agrees_only_while_unset():
    """A run recorded before an argument existed continues under a command that leaves it unset (None), and is
    refused, with the argument named, by one that sets it."""
    recorded = RunIdentity("pretraining", {"model": {"init_from": "minilm"}}, {})
    unset = RunIdentity("pretraining", {"model": {"init_from": "minilm", "head_warmup_steps": None}}, {})
    set_ = RunIdentity("pretraining", {"model": {"init_from": "minilm", "head_warmup_steps": 100}}, {})
    assert recorded.differences(unset) == []
    assert recorded.differences(set_) == ["model.head_warmup_steps: the run has '(absent)', this command 100"]
