"""The rerun probe's cases: what the user does, what they should meet, and how each is run and classified."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recipes.records import PretrainingRecord
from studies.rerun_probe import classify, run_command, snapshot
from studies.rerun_probe.workspace import LONG_STEPS, MODEL, SHORT_STEPS, Workspace, mounted


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    description: str
    expected: str  # what a user should meet, in words
    probe: Callable[[Workspace], tuple[str, str]]
    needs_mount: bool = False


def finished_as_planned(output_dir: Path, steps: int) -> str:
    """What is wrong with a run that should have finished its `steps` (empty when nothing is)."""
    if not PretrainingRecord.exists(output_dir):
        return "no budget.json"
    record = PretrainingRecord.read(output_dir)
    if record.stop_reason != "max_steps" or record.steps != steps:
        return f"stopped ({record.stop_reason}) at step {record.steps} of {steps}"
    return ""


def resume_case(name: str, description: str, change: list[str], names: tuple[str, ...], train_file: bool = False):
    """A run stopped by SIGTERM, rerun with `change`: refused, naming `names`, the folder unchanged."""

    def probe(space: Workspace) -> tuple[str, str]:
        output_dir = space.stopped(name)
        before = snapshot(output_dir)
        argv = space.pretrain(
            output_dir, *change, steps=LONG_STEPS, train_file=space.other_train_file if train_file else None
        )
        result = run_command(argv, space.root)
        return classify(result, "refuse", names, intact=snapshot(output_dir) == before)

    return Case(name, "interrupted run, changed command", description, "refused, naming the setting", probe)


def continue_case(name: str, description: str, how: signal.Signals, change: list[str] = ()) -> Case:
    def probe(space: Workspace) -> tuple[str, str]:
        output_dir = space.stopped(name, how)
        result = run_command(space.pretrain(output_dir, *change, steps=LONG_STEPS), space.root)
        return classify(result, "continue", check=finished_as_planned(output_dir, LONG_STEPS))

    return Case(name, "interrupted run, same run", description, "continues to its last step", probe)


def corrupt_newest_checkpoint(space: Workspace) -> tuple[str, str]:
    output_dir = space.stopped("corrupt-newest-checkpoint", signal.SIGKILL)
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    if len(checkpoints) < 2:  # a second, newer checkpoint: copy of the first, its weights then truncated
        newer = output_dir / f"checkpoint-{int(checkpoints[-1].name.split('-')[1]) + 1}"
        shutil.copytree(checkpoints[-1], newer)
        checkpoints.append(newer)
    weights = checkpoints[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = run_command(space.pretrain(output_dir, steps=LONG_STEPS), space.root)
    return classify(result, "continue", check=finished_as_planned(output_dir, LONG_STEPS))


def finished_rerun(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-rerun")
    before = snapshot(output_dir)
    result = run_command(space.pretrain(output_dir), space.root)
    return classify(result, "refuse", ("finished run", "--overwrite_output_dir"), snapshot(output_dir) == before)


def finished_smaller_resume(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-smaller-resume")
    before = snapshot(output_dir)
    argv = space.pretrain(output_dir, "--resume_from_checkpoint", "true", steps=SHORT_STEPS // 2)
    result = run_command(argv, space.root)
    return classify(result, "refuse", ("max_steps",), snapshot(output_dir) == before)


def finished_overwrite(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-overwrite")
    result = run_command(space.pretrain(output_dir, "--overwrite_output_dir", "--learning_rate", "3e-3"), space.root)
    replaced = (
        PretrainingRecord.exists(output_dir)
        and PretrainingRecord.read(output_dir).run_record.training.get("learning_rate") == 3e-3
    )
    return classify(result, "continue", check="" if replaced else "the old run is still there")


def foreign_folder(recipe: str, files: dict[str, bytes]) -> Callable[[Workspace], tuple[str, str]]:
    """--overwrite_output_dir on a folder that holds `files` and no run of ours: refused, every file kept."""

    def probe(space: Workspace) -> tuple[str, str]:
        output_dir = space.folder(f"foreign-{recipe}-{len(files)}")
        for relative, content in files.items():
            (output_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (output_dir / relative).write_bytes(content)
        before = snapshot(output_dir)
        if recipe == "pretrain":
            argv = space.pretrain(output_dir, "--overwrite_output_dir")
        else:
            argv = ["-m", "recipes.finetune", "--model", str(space.finished()), "--task", "trec", "--max_train_samples",
                    "32", "--num_train_epochs", "1", "--output_dir", str(output_dir), "--overwrite_output_dir"]  # fmt: skip
        result = run_command(argv, space.root)
        return classify(result, "refuse", ("not a run",), snapshot(output_dir) == before)

    return probe


NOTES = {"checkpoint-notes.txt": b"my notes\n", "thesis.tex": b"\\documentclass{article}\n"}
OTHER_TRAINER = {
    "checkpoint-500/model.safetensors": b"weights of another project",
    "checkpoint-500/trainer_state.json": b"{}",
    "README.md": b"# another project\n",
}


def broken_model(space: Workspace, name: str, what: str, source: Path) -> Path:
    folder = space.folder(name)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".run.lock", "checkpoint-*"))
    if what == "truncated weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (folder / "config.json").write_text('{"model_type": "hybrid_bert", ', encoding="utf-8")
    return folder


def bad_start(argument: str, what: str) -> Callable[[Workspace], tuple[str, str]]:
    def probe(space: Workspace) -> tuple[str, str]:
        slug = what.replace(" ", "-")
        source = space.finished() if argument == "--model_name_or_path" else space.bert()
        model = broken_model(space, f"broken-{argument.strip('-')}-{slug}", what, source)
        output_dir = space.folder(f"out-{argument.strip('-')}-{slug}")
        if argument == "--teacher":
            argv = ["-m", "recipes.distill", "--teacher", str(model), "--variant", "hbert-v1", "--train_file",
                    str(space.train_file), "--output_dir", str(output_dir), "--max_steps", "2", "--use_cpu"]  # fmt: skip
        elif argument == "--init_from":
            argv = space.pretrain(output_dir, model=["--variant", "hbert-v1", "--init_from", str(model)])
        else:
            argv = space.pretrain(output_dir, model=["--model_name_or_path", str(model)])
        result = run_command(argv, space.root)
        cause = "model.safetensors" if what == "truncated weights" else "config.json"
        return classify(result, "refuse", (cause,), intact=True)

    return probe


def mistyped_path(space: Workspace) -> tuple[str, str]:
    (space.root / "runs").mkdir(exist_ok=True)
    argv = space.pretrain(space.folder("out-mistyped"), model=["--model_name_or_path", "runs/hbert-v1-tyny"])
    result = run_command(argv, space.root)
    outcome, detail = classify(result, "refuse", ("runs/hbert-v1-tyny",))
    if outcome == "clear error" and "Hub" in result.message and "no such folder" not in result.message:
        return "unclear error", detail + " (blames the Hub)"
    return outcome, detail


def integer_column(space: Workspace) -> tuple[str, str]:
    table = space.root / "numbers.csv"
    table.write_text("text\n" + "\n".join(str(number) for number in range(2000)) + "\n", encoding="utf-8")
    result = run_command(space.pretrain(space.folder("out-integers"), "--train_file", str(table)), space.root)
    return classify(result, "refuse", ("text",))


def one_line_file(space: Workspace) -> tuple[str, str]:
    text = space.root / "one-line.txt"
    text.write_text("A single short line of text.\n", encoding="utf-8")
    result = run_command(space.pretrain(space.folder("out-one-line"), "--train_file", str(text)), space.root)
    return classify(result, "refuse", (str(text),))


def full_disk_at_start(space: Workspace) -> tuple[str, str]:
    disk = mounted(space, "full-disk", "1m")
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    output_dir = disk / "run"
    result = run_command(space.pretrain(output_dir), space.root)
    outcome, detail = classify(result, "refuse", ("disk is full",))
    if output_dir.exists():
        return "silently wrong", f"{detail}; left {output_dir}"
    return outcome, detail


def full_disk_during_save(space: Workspace) -> tuple[str, str]:
    disk = mounted(space, "small-disk", "2m")
    result = run_command(space.pretrain(disk / "run"), space.root)
    return classify(result, "refuse", ("disk is full",))


def finetune_read_only_model(space: Workspace) -> tuple[str, str]:
    disk = mounted(space, "read-only-model", "64m")
    shutil.copytree(space.finished(), disk / "model", ignore=shutil.ignore_patterns(".run.lock", "checkpoint-*"))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)
    started = time.monotonic()
    argv = ["-m", "recipes.finetune", "--model", str(disk / "model"), "--task", "trec", "--output_dir",
            str(space.folder("out-read-only"))]  # fmt: skip
    result = run_command(argv, space.root)
    outcome, detail = classify(result, "refuse", (str(disk / "model"),))
    return outcome, f"{detail} (after {time.monotonic() - started:.0f} s)"


CASES = [
    continue_case("resume-same-command", "SIGTERM after the first checkpoint, the same command again", signal.SIGTERM),
    continue_case("resume-after-kill-9", "SIGKILL after the first checkpoint, the same command again", signal.SIGKILL),
    continue_case(
        "resume-other-logging", "SIGTERM, then the same run with another --logging_steps (a condition)",
        signal.SIGTERM, ["--logging_steps", "5"],
    ),  # fmt: skip
    Case(
        "corrupt-newest-checkpoint", "interrupted run, same run", "SIGKILL, the newest checkpoint's weights truncated",
        "continues from the newest intact checkpoint", corrupt_newest_checkpoint,
    ),  # fmt: skip
    resume_case(
        "resume-full-width-scores", "SIGTERM, rerun with additive_full_width_scores=false (the segfault case)",
        ["--config_overrides", MODEL + ",additive_full_width_scores=false"], ("additive_full_width_scores",),
    ),  # fmt: skip
    resume_case(
        "resume-ffn-bias", "SIGTERM, rerun with ffn_bias=true (the optimizer traceback case)",
        ["--config_overrides", MODEL + ",ffn_bias=true"], ("ffn_bias",),
    ),  # fmt: skip
    resume_case(
        "resume-activation", "SIGTERM, rerun with hidden_act=gelu on a ReLU run",
        ["--config_overrides", MODEL + ",hidden_act=gelu"], ("hidden_act",),
    ),  # fmt: skip
    resume_case("resume-train-file", "SIGTERM, rerun with another --train_file", [], ("train_file",), train_file=True),
    resume_case("resume-learning-rate", "SIGTERM, rerun with another --learning_rate", ["--learning_rate", "3e-3"],
                ("learning_rate",)),  # fmt: skip
    resume_case("resume-batch-size", "SIGTERM, rerun with another --per_device_train_batch_size",
                ["--per_device_train_batch_size", "3"], ("per_device_train_batch_size",)),  # fmt: skip
    Case("finished-rerun", "finished run", "the same command on a finished run", "refused, naming the way on",
         finished_rerun),  # fmt: skip
    Case("finished-smaller-resume", "finished run", "--resume_from_checkpoint true with fewer --max_steps",
         "refused; the record is not rewritten", finished_smaller_resume),  # fmt: skip
    Case("finished-overwrite", "finished run", "--overwrite_output_dir with another learning rate",
         "the run is replaced", finished_overwrite),  # fmt: skip
    Case("overwrite-notes", "a folder not ours", "pretrain --overwrite_output_dir on checkpoint-notes.txt + thesis.tex",
         "refused, every file kept", foreign_folder("pretrain", NOTES)),  # fmt: skip
    Case("overwrite-other-trainer", "a folder not ours", "pretrain --overwrite_output_dir on another Trainer's output",
         "refused, every file kept", foreign_folder("pretrain", OTHER_TRAINER)),  # fmt: skip
    Case("finetune-overwrite-other-trainer", "a folder not ours",
         "finetune --overwrite_output_dir on another Trainer's output", "refused, every file kept",
         foreign_folder("finetune", OTHER_TRAINER)),  # fmt: skip
    Case("model-truncated-weights", "bad input", "--model_name_or_path with a truncated model.safetensors",
         "one error naming the file", bad_start("--model_name_or_path", "truncated weights")),  # fmt: skip
    Case("model-invalid-config", "bad input", "--model_name_or_path with an invalid config.json",
         "one error naming the file", bad_start("--model_name_or_path", "invalid config")),  # fmt: skip
    Case("init-truncated-weights", "bad input", "--init_from with a truncated model.safetensors",
         "one error naming the file", bad_start("--init_from", "truncated weights")),  # fmt: skip
    Case("teacher-invalid-config", "bad input", "distill.py --teacher with an invalid config.json",
         "one error naming the file", bad_start("--teacher", "invalid config")),  # fmt: skip
    Case("teacher-truncated-weights", "bad input", "distill.py --teacher with a truncated model.safetensors",
         "one error naming the file", bad_start("--teacher", "truncated weights")),  # fmt: skip
    Case("mistyped-local-path", "bad input", "--model_name_or_path runs/hbert-v1-tyny (runs/ exists)",
         "no such folder, not a Hub error", mistyped_path),  # fmt: skip
    Case("csv-integer-column", "bad input", "a .csv train file whose text column holds integers",
         "one error naming the column", integer_column),  # fmt: skip
    Case("one-line-train-file", "bad input", "a train file of one line", "one error naming the file",
         one_line_file),  # fmt: skip
    Case("full-disk-at-start", "full disk", "pretraining into a full 1 MB filesystem",
         "the full disk named, no folder left", full_disk_at_start, needs_mount=True),  # fmt: skip
    Case("full-disk-during-save", "full disk", "pretraining into a 2 MB filesystem (a checkpoint does not fit)",
         "the full disk named", full_disk_during_save, needs_mount=True),  # fmt: skip
    Case("finetune-read-only-model", "late failure", "finetune.py on a model in a read-only folder",
         "refused before training", finetune_read_only_model, needs_mount=True),  # fmt: skip
]  # fmt: skip
