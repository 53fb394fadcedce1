"""Nothing lost, nothing clobbered, one clear error per bad input: each case reproduced for real.

- `kill -9` of a real `python recipes/pretrain.py` at a random moment, and during a checkpoint save (the save is held
  open by a wrapper so that the kill lands inside it); the same command run again resumes and finishes the budget.
- A second real process on the same output folder fails at once, naming the first; a killed run's lock is stale.
- A full filesystem (a 1 MB tmpfs, mounted where the suite runs as root; skipped elsewhere with the reason).
- `--overwrite_output_dir` on a folder of unrelated files, and bad inputs: unknown config fields, contradictory
  settings, resuming another model, text that is not UTF-8, corrupt weights and invalid config.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file, save_file
from test_pretrain import TINY, ModelClock
from transformers import TrainerCallback

import recipes.pretrain
from recipes.data.input_files import InvalidInputFileError, check_weights
from recipes.finetune import main as finetune
from recipes.pretrain import main as pretrain
from recipes.run_folder.checkpoints import CheckpointError
from recipes.run_folder.claim import LOCK_FILE, NotARunError, OutputDirInUseError, claim_output_dir
from recipes.training.budget import BUDGET_STATE_FILE

REPO = Path(__file__).resolve().parents[1]
PROCESS_BUDGET = ["--budget", "6s", "--num_eval_points", "3"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
# Runs `recipes.pretrain.main` with the N-th checkpoint save held open (after its weights and optimizer state are
# written, before Trainer's state file): a kill then lands inside that save.
HOLD_SAVE = r"""
import os, sys, time
from pathlib import Path
from transformers import TrainerState
from recipes.pretrain import main
original, saves = TrainerState.save_to_json, []
def save_to_json(self, json_path):
    saves.append(json_path)
    if len(saves) == int(os.environ["HOLD_SAVE"]):
        Path(os.environ["HOLD_MARKER"]).write_text(json_path)
        time.sleep(3600)
    original(self, json_path)
TrainerState.save_to_json = save_to_json
main(sys.argv[1:])
"""


def _argv(train_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), *extra]


def _spawn(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)


def _run(argv: list[str], log: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "recipes/pretrain.py", *argv]
    with open(log, "w") as out:
        return subprocess.run(command, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT, timeout=600)


def _wait_for(predicate, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended early ({process.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def _kill_9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def _checkpoints(output_dir: Path) -> list[str]:
    return sorted((p.name for p in output_dir.glob("checkpoint-*")), key=lambda name: int(name.split("-")[1]))


def _assert_finished(output_dir: Path, expected_fields: set[str]) -> dict:
    """The run finished its budget: budget.json with the fields of an uninterrupted run, a loadable saved model, a
    monotone curve, and no lock or incomplete checkpoint left."""
    spent = json.loads((output_dir / "budget.json").read_text())
    assert set(spent) == expected_fields
    assert spent["stop_reason"] == "budget" and spent["elapsed_s"] >= spent["budget_s"]
    check_weights(output_dir)  # every weight file opens and matches config.json
    steps = [point["step"] for point in json.loads((output_dir / "mlm_curve.json").read_text())["points"]]
    assert steps == sorted(set(steps)) and steps[-1] == spent["steps"]
    assert not list(output_dir.glob("tmp-checkpoint-*")) and not (output_dir / LOCK_FILE).exists()
    return spent


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, train_file) -> SimpleNamespace:
    """An uninterrupted in-process run (2 s budget, real clock): its folder, and the budget.json fields every run
    records."""
    output_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    spent = pretrain(_argv(train_file, output_dir, "--budget", "2s", "--num_eval_points", "2"))
    return SimpleNamespace(output_dir=output_dir, fields=set(spent))


def _has_curve_point(output_dir: Path) -> bool:
    try:
        return bool(json.loads((output_dir / "mlm_curve.json").read_text())["points"])
    except (OSError, ValueError, KeyError):
        return False


# -- kill -9 at a random moment --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, train_file) -> SimpleNamespace:
    """A real run (6 s budget) killed with SIGKILL at a random moment of its training (0 to 6 s of wall-clock after
    its first evaluation: steps, evaluations and saves alike), then the same command run again."""
    work = tmp_path_factory.mktemp("killed")
    output_dir = work / "run"
    argv = _argv(train_file, output_dir, *PROCESS_BUDGET)
    delay = random.Random().uniform(0.0, 6.0)
    process = _spawn([sys.executable, "recipes/pretrain.py", *argv], work / "first.log")
    try:
        _wait_for(lambda: _has_curve_point(output_dir), process, work / "first.log")
        time.sleep(delay)  # training time is at most wall-clock time: the 6 s budget is not spent yet
        assert process.poll() is None, f"the run ended before the kill:\n{(work / 'first.log').read_text()[-3000:]}"
        _kill_9(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = SimpleNamespace(
        checkpoints=_checkpoints(output_dir), incomplete=sorted(p.name for p in output_dir.glob("tmp-checkpoint-*"))
    )
    again = _run(argv, work / "again.log")
    return SimpleNamespace(
        output_dir=output_dir, delay=delay, left=left, again=again, log=(work / "again.log").read_text()
    )


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_the_same_command_finishes(killed_run, uninterrupted):
    """After SIGKILL at a random moment, the same command resumes from the last complete checkpoint (or starts again
    when there was none) and finishes the budget with the same record fields as an uninterrupted run."""
    context = f"killed {killed_run.delay:.2f} s after the first evaluation, leaving {killed_run.left}:\n{killed_run.log[-3000:]}"
    assert killed_run.again.returncode == 0, context
    spent = _assert_finished(killed_run.output_dir, uninterrupted.fields)
    if killed_run.left.checkpoints:
        last = killed_run.left.checkpoints[-1]
        assert f"Resuming from {killed_run.output_dir / last}." in killed_run.log, context
        assert spent["steps"] >= int(last.split("-")[1]), context
        assert spent["resumed_at"] == [int(last.split("-")[1])], context
    else:
        assert spent["resumed_at"] == [], context
    for name in killed_run.left.incomplete:
        assert f"skipping incomplete checkpoint(s) {name}" in killed_run.log, context


# -- kill -9 during a checkpoint save, with a second process trying the same folder meanwhile ------------------------


@pytest.fixture(scope="module")
def held_save(tmp_path_factory, train_file) -> SimpleNamespace:
    """A real run (6 s budget) whose second checkpoint save is held open; meanwhile a second `pretrain.py` is started
    on the same folder; then the first is killed with SIGKILL inside that save, and the same command run again."""
    work = tmp_path_factory.mktemp("held")
    output_dir, marker = work / "run", work / "holding"
    argv = _argv(train_file, output_dir, *PROCESS_BUDGET)
    env = {**ENV, "HOLD_SAVE": "2", "HOLD_MARKER": str(marker)}
    with open(work / "first.log", "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_SAVE, *argv], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(marker.exists, process, work / "first.log")
        holding = Path(marker.read_text()).parent  # .../tmp-checkpoint-N/checkpoint-N
        second = _run(_argv(train_file, output_dir, "--variant", "bert", *PROCESS_BUDGET), work / "second.log")
        assert process.poll() is None
        _kill_9(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    checkpoints = _checkpoints(output_dir)
    whole = [name for name in checkpoints if (output_dir / name / BUDGET_STATE_FILE).is_file()]
    left = SimpleNamespace(checkpoints=checkpoints, whole=whole, lock=(output_dir / LOCK_FILE).exists())
    again = _run(argv, work / "again.log")
    return SimpleNamespace(
        output_dir=output_dir, pid=process.pid, holding=holding, left=left, second=second,
        second_log=(work / "second.log").read_text(), again=again, log=(work / "again.log").read_text(),
    )  # fmt: skip


@pytest.mark.slow
def test_second_process_on_the_same_output_dir_fails_at_once(held_save):
    """While a run holds its folder, a second `pretrain.py` on it exits with an error naming the holder's PID before
    preparing any data or writing anything."""
    assert held_save.second.returncode != 0
    assert f"is in use by another run (PID {held_save.pid}" in held_save.second_log, held_save.second_log[-3000:]
    assert "Tokenising" not in held_save.second_log and "Resuming" not in held_save.second_log


@pytest.mark.slow
def test_kill_9_during_a_save_leaves_the_last_complete_checkpoint(held_save, uninterrupted):
    """SIGKILL while the second checkpoint was being written (weights and optimizer state on disk, Trainer's state not
    yet): the first checkpoint is intact and the cut-short one never appears as checkpoint-N; the same command skips
    it with a warning naming it, resumes from the first and finishes the budget."""
    holding = held_save.holding
    assert holding.parent.name == f"tmp-{holding.name}"
    (complete,) = held_save.left.checkpoints
    assert complete != holding.name and held_save.left.whole == [complete]
    assert held_save.again.returncode == 0, held_save.log[-3000:]
    assert f"skipping incomplete checkpoint(s) {holding.parent.name}" in held_save.log
    assert f"Resuming from {held_save.output_dir / complete}." in held_save.log
    _assert_finished(held_save.output_dir, uninterrupted.fields)


@pytest.mark.slow
def test_killed_runs_lock_is_stale_and_taken_over(held_save):
    """The killed run's lock stays behind; the next run sees that its PID no longer runs, takes it over with a
    warning, and releases it on exit."""
    assert held_save.left.lock
    assert f"took over the lock left by PID {held_save.pid}, which no longer runs" in held_save.log
    assert not (held_save.output_dir / LOCK_FILE).exists()


# -- a full filesystem -----------------------------------------------------------------------------------------------


def test_full_1mb_filesystem_fails_with_one_error_and_no_partial_checkpoint(small_disk, train_file):
    """On a 1 MB filesystem the first checkpoint does not fit: one CheckpointError saying so, and no checkpoint-N or
    staging folder is left (nor the lock)."""
    output_dir = small_disk("1M") / "run"
    with pytest.raises(
        CheckpointError,
        match=r"Could not save .*checkpoint-2 \(the disk is full: .* MB free on its filesystem\).*the same command "
        "then starts the run again",
    ):
        pretrain(_argv(train_file, output_dir, "--max_steps", "2", "--num_eval_points", "0"))
    assert not list(output_dir.glob("*checkpoint-*")) and not (output_dir / LOCK_FILE).exists()


class FillDiskAfterFirstSave(TrainerCallback):
    """Once the first checkpoint is published, fills its filesystem up to the last MB."""

    def __init__(self, filler: Path):
        self.filler = filler

    def on_save(self, args, state, control, **kwargs):
        if not self.filler.exists():
            free = shutil.disk_usage(self.filler.parent).free
            self.filler.write_bytes(b"\0" * (free - 2**20))


def test_disk_full_mid_run_keeps_the_last_checkpoint_and_the_same_command_resumes(small_disk, train_file):
    """A filesystem that fills up after the first checkpoint (1 MB left): the next save fails with one error naming
    the last complete checkpoint, which is intact; once space is freed the same command resumes from it and ends
    exactly where an uninterrupted run ends (16 steps of 0.25 s on the model clock for a 4 s budget)."""
    disk = small_disk("64M")
    output_dir, filler = disk / "run", disk / "filler"
    argv = _argv(train_file, output_dir, "--budget", "4s", "--num_eval_points", "2")
    with (
        ModelClock() as clock,
        pytest.raises(
            CheckpointError,
            match=r"\(the disk is full: .*MB free.*\).*the same command then resumes from the last complete "
            "checkpoint, .*checkpoint-8",
        ),
    ):
        pretrain(argv, now=clock, callbacks=[FillDiskAfterFirstSave(filler)])
    assert _checkpoints(output_dir) == ["checkpoint-8"] and not list(output_dir.glob("tmp-checkpoint-*"))
    filler.unlink()
    with ModelClock() as clock:
        spent = pretrain(argv, now=clock)
    assert spent["steps"] == 16 and spent["stop_reason"] == "budget"
    assert [p["step"] for p in json.loads((output_dir / "mlm_curve.json").read_text())["points"]] == [0, 8, 16]


# -- finished, resumed and foreign folders ---------------------------------------------------------------------------


def test_run_cut_after_its_final_checkpoint_finishes_without_another_step(tmp_path, train_file):
    """A run whose final checkpoint was saved but whose budget.json and model were not (a kill in between) is
    finished by the same command from that checkpoint: no step more, the same record as the run would have written."""
    output_dir = tmp_path / "run"
    argv = _argv(train_file, output_dir, "--budget", "4s", "--num_eval_points", "2")
    with ModelClock() as clock:
        first = pretrain(argv, now=clock)
    for name in ("budget.json", "model.safetensors", "config.json"):
        (output_dir / name).unlink()
    with ModelClock() as clock:
        second = pretrain(argv, now=clock)
    assert second["steps"] == first["steps"] == 16 and second["elapsed_s"] == first["elapsed_s"]
    assert second["stop_reason"] == "budget" and set(second) == set(first)
    assert _checkpoints(output_dir) == ["checkpoint-8", "checkpoint-16"]
    check_weights(output_dir)
    saved, final = (
        load_file(output_dir / "model.safetensors"),
        load_file(output_dir / "checkpoint-16" / "model.safetensors"),
    )
    assert saved.keys() == final.keys() and all((saved[k] == final[k]).all() for k in saved)


class SigtermAtStep(TrainerCallback):
    """Sends this process SIGTERM at the end of a given step (as a scheduler or `kill` would)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_run_stopped_by_sigterm_is_resumed_by_the_same_command(tmp_path, train_file):
    """SIGTERM at step 5 of a 4 s budget: a checkpoint where it stopped and budget.json with stop_reason 'signal'; the
    same command resumes there (stopped once more, at step 9) and ends where an uninterrupted run ends (16 steps of
    0.25 s on the model clock), its record naming the steps it was resumed at."""
    output_dir = tmp_path / "run"
    argv = _argv(train_file, output_dir, "--budget", "4s", "--num_eval_points", "2")
    with ModelClock() as clock:
        stopped = pretrain(argv, now=clock, callbacks=[SigtermAtStep(5)])
    assert stopped["stop_reason"] == "signal" and _checkpoints(output_dir)[-1] == f"checkpoint-{stopped['steps']}"
    assert stopped["resumed_at"] == []
    with ModelClock() as clock:
        stopped_again = pretrain(argv, now=clock, callbacks=[SigtermAtStep(9)])
    assert stopped_again["stop_reason"] == "signal" and stopped_again["resumed_at"] == [stopped["steps"]]
    with ModelClock() as clock:
        spent = pretrain(argv, now=clock)
    assert spent["stop_reason"] == "budget" and spent["steps"] == 16 and set(spent) == set(stopped)
    # the record says where the run was resumed: it is not the uninterrupted one
    assert spent["resumed_at"] == [stopped["steps"], stopped_again["steps"]]


def test_finished_run_is_not_resumed_or_replaced_without_being_asked(uninterrupted, tmp_path, train_file):
    """The same command on a finished run is refused (it would retrain nothing), naming both ways forward."""
    output_dir = tmp_path / "copy"
    shutil.copytree(uninterrupted.output_dir, output_dir)
    with pytest.raises(
        FileExistsError,
        match=r"finished run \(stop_reason 'budget'\).*--overwrite_output_dir.*--resume_from_checkpoint",
    ):
        pretrain(_argv(train_file, output_dir, "--budget", "2s"))


@pytest.mark.parametrize("recipe", ["pretrain", "finetune"])
def test_overwrite_refuses_a_folder_of_unrelated_files(recipe, tmp_path, train_file, uninterrupted):
    """--overwrite_output_dir on a folder of someone's files (or a folder of runs, such as a zoo) refuses, naming what
    it holds, and changes nothing."""
    papers, zoo = tmp_path / "papers", tmp_path / "zoo"
    papers.mkdir()
    (papers / "thesis.txt").write_text("four years of work")
    (papers / "results.csv").write_text("a,b\n1,2\n")
    (zoo / "bert-tiny-1m").mkdir(parents=True)
    (zoo / "bert-tiny-1m" / "budget.json").write_text("{}")
    model = uninterrupted.output_dir
    for folder, named in ((papers, "results.csv, thesis.txt"), (zoo, "bert-tiny-1m")):
        before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        if recipe == "pretrain":
            argv, run = _argv(train_file, folder, "--max_steps", "1", "--overwrite_output_dir"), pretrain
        else:
            argv, run = (
                ["--model", str(model), "--task", "trec", "--output_dir", str(folder), "--overwrite_output_dir"],
                finetune,
            )
        with pytest.raises(
            NotARunError, match=f"refuses to empty {folder}: it holds {named}, not a run of this project"
        ):
            run(argv)
        assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


# -- the lock, in-process and against a real holder -------------------------------------------------------------------


def _hold_lock(folder: Path) -> subprocess.Popen:
    """A separate process holding `folder`'s lock until killed."""
    code = "import sys, time; from pathlib import Path; from recipes.run_folder.claim import claim_output_dir\n"
    code += "with claim_output_dir(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(3600)\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_finetune_on_a_folder_locked_by_another_process_fails_then_takes_over_a_stale_lock(tmp_path, uninterrupted):
    """finetune.py fails at once on a folder another live process holds, naming its PID; once that process is killed
    (SIGKILL: it never released the lock) the lock is stale, and claiming it works, with a warning."""
    model = uninterrupted.output_dir
    output_dir = tmp_path / "out"
    holder = _hold_lock(output_dir)
    try:
        with pytest.raises(OutputDirInUseError, match=f"{output_dir} is in use by another run \\(PID {holder.pid}"):
            finetune(["--model", str(model), "--task", "trec", "--output_dir", str(output_dir)])
    finally:
        _kill_9(holder)
        holder.stdout.close()
    assert (output_dir / LOCK_FILE).exists()  # left behind by the kill
    with pytest.warns(UserWarning, match=f"took over the lock left by PID {holder.pid}, which no longer runs"):
        with claim_output_dir(output_dir):
            assert (output_dir / LOCK_FILE).exists()
    assert list(output_dir.iterdir()) == []  # released: the lock is gone with its holder


# -- bad input: one clear error, before data preparation or loading -------------------------------------------------


@pytest.fixture
def no_data_preparation(monkeypatch):
    """Fails the test if the recipe reaches data preparation."""

    def prepare(*args, **kwargs):
        raise AssertionError("data preparation started")

    monkeypatch.setattr(recipes.pretrain, "prepare", prepare)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("foo_bar=1", r"'foo_bar' is not a config field \(fields: .*hidden_size"),
        ("hiden_size=32", r"'hiden_size' is not a config field; did you mean 'hidden_size'"),
        ("num_attention_head=2", r"did you mean 'num_attention_heads'"),
    ],
)
def test_unknown_config_override_is_refused_naming_close_matches(
    tmp_path, train_file, no_data_preparation, overrides, message
):
    with pytest.raises(ValueError, match=message):
        pretrain([*_argv(train_file, tmp_path / "run"), "--config_overrides", overrides])
    assert not (tmp_path / "run").exists()


def test_positions_below_max_seq_length_fail_before_data_preparation(tmp_path, train_file, no_data_preparation):
    with pytest.raises(ValueError, match="--max_seq_length 32 exceeds the model's max_position_embeddings 16"):
        pretrain(
            [*_argv(train_file, tmp_path / "run"), "--config_overrides", "hidden_size=32,max_position_embeddings=16"]
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "change, named",
    [
        (["--variant", "bert"], "mixer_types is \\['self', 'additive'\\] there, \\['self', 'self'\\] requested"),
        (["--size", "mini", "--config_overrides", ""], "hidden_size is 32 there, 256 requested"),
        (
            ["--config_overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2"],
            "hidden_size is 32 there, 64 requested",
        ),
    ],
    ids=["variant", "size", "dimensions"],
)
def test_resuming_another_model_is_refused_before_loading(
    tmp_path, train_file, uninterrupted, no_data_preparation, change, named
):
    """A checkpoint is compared with the requested model before anything is loaded: one line naming each field that
    differs, with both values."""
    checkpoint = uninterrupted.output_dir / _checkpoints(uninterrupted.output_dir)[-1]
    with pytest.raises(CheckpointError, match=f"{checkpoint} holds a different model than requested: .*{named}"):
        pretrain([*_argv(train_file, tmp_path / "run", "--resume_from_checkpoint", str(checkpoint)), *change])


@pytest.mark.parametrize(
    "content, byte", [(b"good text\nbad \xff byte\n", 14), (b"\x89PNG\r\n\x1a\n\x00\x00", 0), (b"text\x00binary", 4)]
)
def test_train_file_that_is_not_utf8_text_is_named_with_the_byte(tmp_path, content, byte):
    train_file = tmp_path / "corpus.txt"
    train_file.write_bytes(content)
    with pytest.raises(InvalidInputFileError, match=f"not UTF-8 text: {train_file} \\(byte {byte}\\)"):
        pretrain(_argv(train_file, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def _copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*"))
    return target


def test_corrupt_weights_and_invalid_config_are_named(tmp_path, uninterrupted):
    """finetune.py --model with a truncated model.safetensors, with tensors of the wrong shape, or with a config.json
    that is not JSON: one error naming the file, before anything is written."""
    source = uninterrupted.output_dir
    truncated = _copy_model(source, tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    reshaped = _copy_model(source, tmp_path / "reshaped")
    tensors = load_file(reshaped / "model.safetensors")
    name = next(k for k in tensors if k.endswith("word_embeddings.weight"))
    tensors[name] = tensors[name][:100]
    save_file(tensors, reshaped / "model.safetensors", metadata={"format": "pt"})
    broken = _copy_model(source, tmp_path / "broken")
    (broken / "config.json").write_text('{"model_type": "hybrid_bert",')
    cases = [
        (truncated, f"{weights} is not a readable safetensors file"),
        (
            reshaped,
            f"{reshaped / 'model.safetensors'} does not match {reshaped / 'config.json'}: {name} is \\[100, 32\\]",
        ),
        (broken, f"{broken / 'config.json'} is not valid JSON"),
    ]
    for model, message in cases:
        with pytest.raises(InvalidInputFileError, match=message):
            finetune(["--model", str(model), "--task", "trec", "--output_dir", str(tmp_path / "out")])
        assert not (tmp_path / "out").exists()
