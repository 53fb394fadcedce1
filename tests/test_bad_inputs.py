"""Every bad input is one error naming its file or argument, raised before any expensive work and leaving nothing
half-written (issue 32): broken starting models and teachers, text columns that are not text, too little text, a
mistyped local path, a full disk, a lock held from another host; and what a killed run or preparation leaves behind is
recovered from."""

from __future__ import annotations

import shutil
import socket
import warnings
from pathlib import Path

import pytest
from test_pretrain import TINY

import recipes.data.corpus
import recipes.pretrain
from recipes.data.input_files import InvalidInputFileError
from recipes.distill import main as distill
from recipes.pretrain import main as pretrain
from recipes.run_folder.checkpoints import last_checkpoint
from recipes.run_folder.claim import LOCK_FILE, OutputDirInUseError, claim_output_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, train_file) -> Path:
    """A finished tiny pretraining run, with its final checkpoint."""
    output_dir = tmp_path_factory.mktemp("model") / "run"
    pretrain([*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--max_steps", "3"])
    return output_dir


@pytest.fixture
def no_data_preparation(monkeypatch):
    def prepare(*args, **kwargs):
        raise AssertionError("data preparation started")

    monkeypatch.setattr(recipes.pretrain, "prepare", prepare)
    monkeypatch.setattr(recipes.distill, "prepare", prepare)


def _copy(source: Path, target: Path) -> Path:
    return Path(shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*", LOCK_FILE)))


def _truncate(weights: Path) -> None:
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


@pytest.mark.parametrize("argument", ["--model_name_or_path", "--init_from", "--teacher"])
@pytest.mark.parametrize("damage", ["truncated-weights", "invalid-config"])
def test_a_broken_starting_model_is_named_before_data_preparation(
    argument, damage, model_dir, teacher_dir, train_file, tmp_path, no_data_preparation
):
    start = _copy(model_dir if argument == "--model_name_or_path" else teacher_dir, tmp_path / "start")
    if damage == "truncated-weights":
        _truncate(start / "model.safetensors")
        message = f"{start / 'model.safetensors'} is not a readable safetensors file"
    else:
        (start / "config.json").write_text('{"model_type": "bert",')
        message = f"{start / 'config.json'} is not valid JSON"
    output_dir = tmp_path / "run"
    data = ["--train_file", str(train_file), "--output_dir", str(output_dir), "--max_steps", "1"]
    with pytest.raises(InvalidInputFileError, match=message):
        if argument == "--teacher":
            distill(["--teacher", str(start), "--variant", "hbert-v1", *data])
        elif argument == "--init_from":
            pretrain(["--init_from", str(start), "--variant", "hbert-v1", *data])
        else:
            pretrain(["--model_name_or_path", str(start), *data])
    assert not output_dir.exists()


def test_a_mistyped_local_path_says_no_such_folder(tmp_path, monkeypatch, train_file):
    """`runs/tpyo` where `runs/` exists is a mistyped folder, not a Hub id to look up (offline: not a network error)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--model_name_or_path 'runs/tpyo': no such folder \(.*/runs/ exists"):
        pretrain(["--model_name_or_path", "runs/tpyo", "--train_file", str(train_file), "--output_dir", "out"])
    assert not (tmp_path / "out").exists()


def test_a_text_column_of_numbers_is_named(tmp_path):
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("id,text\n" + "".join(f"{i},{i * 7}\n" for i in range(50)))
    with pytest.raises(ValueError, match=f"'text' column holds int64 values, not text in {corpus}"):
        pretrain([*TINY, "--train_file", str(corpus), "--output_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_too_little_text_for_a_held_out_split_is_named(tmp_path):
    corpus = tmp_path / "one-line.txt"
    corpus.write_text("A single line of text is all there is.\n")
    with pytest.raises(ValueError, match=f"holds 1 document\\(s\\) with text in {corpus}: too few to hold out 5%"):
        pretrain([*TINY, "--train_file", str(corpus), "--output_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_full_disk_at_the_start_is_named_and_leaves_no_folder(small_disk, train_file):
    disk = small_disk("1M")
    (disk / "filler").write_bytes(b"\0" * shutil.disk_usage(disk).free)
    with pytest.raises(OSError, match="The disk is full: cannot claim .*MB free on its filesystem"):
        pretrain([*TINY, "--train_file", str(train_file), "--output_dir", str(disk / "run" / "deeper")])
    assert not (disk / "run").exists()


def test_a_lock_held_from_another_host_is_named(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    host = "other-" + socket.gethostname()
    (folder / LOCK_FILE).write_text(f"4242\n{host}\n1700000000\n")
    with pytest.raises(OutputDirInUseError, match=f"PID 4242 on another host, {host}; if that run is gone, remove"):
        with claim_output_dir(folder):
            pass


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_intact_one(model_dir, tmp_path):
    run = Path(shutil.copytree(model_dir, tmp_path / "run", ignore=shutil.ignore_patterns(LOCK_FILE)))
    newest = max(run.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    older = Path(shutil.copytree(newest, run / "checkpoint-1"))
    checkpoints = [older, newest]
    _truncate(newest / "model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert last_checkpoint(run) == str(checkpoints[-2])
    assert any(
        f"skipping checkpoint(s) {checkpoints[-1].name}, whose weights cannot be read" in str(w.message) for w in caught
    )


def test_train_file_takes_a_glob_of_files(tmp_path, train_file):
    """Several text files through one quoted pattern are one corpus (in sorted order); a pattern matching nothing is
    named before anything is written."""
    lines = train_file.read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(lines[::2]) + "\n", encoding="utf-8")
    (folder / "b.txt").write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    argv = [*TINY, "--max_steps", "1", "--num_eval_points", "0"]
    record = pretrain([*argv, "--train_file", str(folder / "*.txt"), "--output_dir", str(tmp_path / "run")])
    assert record["steps"] == 1
    single = pretrain([*argv, "--train_file", str(folder / "a.txt"), "--output_dir", str(tmp_path / "single")])
    assert record["run_record"]["data_sha256"] != single["run_record"]["data_sha256"]
    with pytest.raises(FileNotFoundError, match=r"--train_file '.*/nothing-\*\.txt' matches no file"):
        pretrain([*argv, "--train_file", str(folder / "nothing-*.txt"), "--output_dir", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def test_init_from_with_overridden_dimensions_is_named(tmp_path, teacher_dir, train_file, no_data_preparation):
    """A converted model keeps its source BERT's dimensions: overriding them is one error naming both values."""
    argv = ["--init_from", str(teacher_dir), "--variant", "hbert-v1", "--config_overrides", "num_hidden_layers=2"]
    with pytest.raises(
        ValueError, match=r"sets num_hidden_layers=2, but .* keeps its source's dimensions \(num_hidden_layers=4"
    ):
        pretrain([*argv, "--train_file", str(train_file), "--output_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
