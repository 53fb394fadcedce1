"""The rerun probe (issue 32): what a user meets when a run is killed, rerun with a changed command, pointed at a folder
that is not its own, or given a bad input — each case a real process on real files, its outcome classified.

    python -m studies.rerun_probe                      # every case; writes results/rerun_probe/{probe.json,README.md}
    python -m studies.rerun_probe --cases resume-same-command full-disk-at-start
    python -m studies.rerun_probe --report_only        # the page again, from the record

An outcome is one of:
- `ok`: the case's expected behaviour (the run continues, or is replaced where the user asked for it);
- `clear error`: refused with the user's error types (`ValueError`, `FileExistsError`, … and this project's), the
  message naming every expected cause, and every protected file unchanged;
- `unclear error`: refused, but with a library's exception (`SafetensorError`, `JSONDecodeError`, `AttributeError`, …)
  or a message that does not name the cause;
- `silently wrong`: it ran where it should have refused, or its result is not what the case expects;
- `data loss`: a file the case protects was changed or removed;
- `crash`: killed by a signal (a segfault, an abort).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from recipes.cards.markdown import markdown_table
from recipes.data import assets
from recipes.environment import REPO_ROOT, device_name, git_commit
from recipes.records import PretrainingRecord, RerunProbeRecord, write_text_atomic

RESULTS = REPO_ROOT / "results" / "rerun_probe"
RECORD_FILE = RESULTS / "probe.json"
PAGE_FILE = RESULTS / "README.md"

MODEL = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2"
NEW_MODEL = ["--variant", "hbert-v1", "--size", "tiny", "--config_overrides", MODEL]
BASE = [
    "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16",
    "--max_eval_samples", "16", "--use_cpu", "--data_seed", "1", "--logging_steps", "10",
]  # fmt: skip
LONG_STEPS = 200  # a run long enough to be stopped after its first checkpoint
EVAL_POINTS = 10  # a checkpoint every 20 steps
SHORT_STEPS = 20  # a finished run

# Exceptions a user's mistake is reported with; anything else escaping a recipe is a library's or a bug's.
USER_ERRORS = (
    "ValueError", "FileExistsError", "FileNotFoundError", "NotADirectoryError", "PermissionError", "OSError",
    "RunMismatchError", "NotARunError", "InvalidInputFileError", "CheckpointError", "OutputDirInUseError",
    "TaskError", "AssetError",
)  # fmt: skip
SIGNAL_EXITS = {134: "SIGABRT", 139: "SIGSEGV"}
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)): ?(.*)$")


@dataclass
class Result:
    """One command's end: exit status, the escaping exception (type and message) if any, and its standard error."""

    returncode: int
    error_type: str | None
    message: str
    stderr_tail: str


@dataclass
class Outcome:
    case: str
    group: str
    description: str
    expected: str
    outcome: str
    detail: str
    seconds: float


def run(argv: list[str], cwd: Path, env: dict | None = None) -> Result:
    process = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env or probe_env(), capture_output=True, text=True, check=False
    )
    return result_of(process.returncode, process.stderr)


def result_of(returncode: int, stderr: str) -> Result:
    """The exception a Python process died with: the last `Type: message` line after its traceback, with the lines
    that follow it (a message of several lines)."""
    lines = stderr.rstrip().splitlines()
    error_type, message = None, ""
    for index in range(len(lines) - 1, -1, -1):
        match = ERROR_LINE.match(lines[index])
        if match:
            error_type = match.group(1).rsplit(".", 1)[-1]
            message = "\n".join([match.group(2), *lines[index + 1 :]]).strip()
            break
    return Result(returncode, error_type, message, "\n".join(lines[-6:]))


def classify(result: Result, expect: str, names: tuple[str, ...] = (), intact: bool = True, check: str = "") -> tuple:
    """(outcome, detail) of a case whose command ended with `result`. `expect` is 'refuse' (with the causes `names`)
    or 'continue'; `intact`: whether every protected file is unchanged; `check`: what is wrong with the result of a
    command that should continue (empty when nothing is)."""
    if result.returncode < 0 or result.returncode in SIGNAL_EXITS:
        signal_name = SIGNAL_EXITS.get(result.returncode) or signal.Signals(-result.returncode).name
        return "crash", f"killed by {signal_name}"
    if not intact:
        return "data loss", "a protected file was changed or removed"
    if expect == "continue":
        if result.returncode != 0:
            return "unclear error", f"{result.error_type}: {first_line(result.message)}"
        return ("silently wrong", check) if check else ("ok", "")
    if result.returncode == 0:
        return "silently wrong", "it ran; it should have refused"
    missing = [name for name in names if name not in result.message]
    if result.error_type not in USER_ERRORS or missing:
        why = f"does not name {', '.join(missing)}" if missing else "a library's exception"
        return "unclear error", f"{result.error_type}: {first_line(result.message)} ({why})"
    return "clear error", f"{result.error_type}: {first_line(result.message)}"


def first_line(message: str) -> str:
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= 200 else line[:197] + "…"


def probe_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT)}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but the run lock, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".run.lock"
    }


# --- fixtures: the files a case starts from --------------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    train_file: Path
    other_train_file: Path
    _finished: Path | None = None

    def folder(self, name: str) -> Path:
        return self.root / name

    def pretrain(
        self, output_dir: Path, *extra: str, steps: int = SHORT_STEPS, train_file: Path | None = None, model=NEW_MODEL
    ) -> list:
        """A pretraining command: a new tiny hbert-v1 (or the `model` arguments), `steps` steps, the probe's text."""
        return [
            "-m", "recipes.pretrain", *model, *BASE, "--train_file", str(train_file or self.train_file),
            "--output_dir", str(output_dir), "--max_steps", str(steps), "--num_eval_points", str(EVAL_POINTS), *extra,
        ]  # fmt: skip

    def bert(self) -> Path:
        """A tiny random BERT with the real WordPiece tokenizer, saved as a Hub checkpoint is."""
        folder = self.root / "bert"
        if not folder.is_dir():
            torch.manual_seed(0)
            tokenizer = assets.default_tokenizer()
            config = BertConfig(
                vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64,
            )  # fmt: skip
            BertModel(config).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        return folder

    def finished(self) -> Path:
        """A finished short run (built once, copied by the cases that change it)."""
        if self._finished is None:
            self._finished = self.root / "finished"
            result = run(self.pretrain(self._finished), self.root)
            if result.returncode != 0:
                raise RuntimeError(f"the probe's finished run failed: {result.stderr_tail}")
        return self._finished

    def copy_of_finished(self, name: str) -> Path:
        target = self.folder(name)
        shutil.copytree(self.finished(), target, ignore=shutil.ignore_patterns(".run.lock"))
        return target

    def stopped(self, name: str, how: signal.Signals = signal.SIGTERM, *extra: str) -> Path:
        """A run stopped by `how` once its first checkpoint is complete (SIGTERM: the run saves and stops as
        interrupted; SIGKILL: it dies where it is)."""
        output_dir = self.folder(name)
        process = subprocess.Popen(
            [sys.executable, *self.pretrain(output_dir, *extra, steps=LONG_STEPS)],
            cwd=self.root, env=probe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while not any((path / "trainer_state.json").is_file() for path in output_dir.glob("checkpoint-*")):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the probe's run to stop ended first: {process.stderr.read()[-2000:]}")
            time.sleep(0.1)
        process.send_signal(how)
        process.communicate(timeout=600)
        return output_dir


def workspace(root: Path) -> Workspace:
    paragraphs = []
    with gzip.open(assets.fetch("wikitext-2-raw") / "train.raw.gz", "rt", encoding="utf-8") as source:
        for line in source:
            text = line.strip()
            if text and not text.startswith("="):
                paragraphs.append(text)
            if len(paragraphs) == 240:
                break
    train_file, other = root / "train.txt", root / "other.txt"
    train_file.write_text("\n".join(paragraphs[:120]) + "\n", encoding="utf-8")
    other.write_text("\n".join(paragraphs[120:]) + "\n", encoding="utf-8")
    return Workspace(root, train_file, other)


# --- the cases -------------------------------------------------------------------------------------------------------


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
        result = run(argv, space.root)
        return classify(result, "refuse", names, intact=snapshot(output_dir) == before)

    return Case(name, "interrupted run, changed command", description, "refused, naming the setting", probe)


def continue_case(name: str, description: str, how: signal.Signals, change: list[str] = ()) -> Case:
    def probe(space: Workspace) -> tuple[str, str]:
        output_dir = space.stopped(name, how)
        result = run(space.pretrain(output_dir, *change, steps=LONG_STEPS), space.root)
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
    result = run(space.pretrain(output_dir, steps=LONG_STEPS), space.root)
    return classify(result, "continue", check=finished_as_planned(output_dir, LONG_STEPS))


def finished_rerun(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-rerun")
    before = snapshot(output_dir)
    result = run(space.pretrain(output_dir), space.root)
    return classify(result, "refuse", ("finished run", "--overwrite_output_dir"), snapshot(output_dir) == before)


def finished_smaller_resume(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-smaller-resume")
    before = snapshot(output_dir)
    argv = space.pretrain(output_dir, "--resume_from_checkpoint", "true", steps=SHORT_STEPS // 2)
    result = run(argv, space.root)
    return classify(result, "refuse", ("max_steps",), snapshot(output_dir) == before)


def finished_overwrite(space: Workspace) -> tuple[str, str]:
    output_dir = space.copy_of_finished("finished-overwrite")
    result = run(space.pretrain(output_dir, "--overwrite_output_dir", "--learning_rate", "3e-3"), space.root)
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
        result = run(argv, space.root)
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
        result = run(argv, space.root)
        cause = "model.safetensors" if what == "truncated weights" else "config.json"
        return classify(result, "refuse", (cause,), intact=True)

    return probe


def mistyped_path(space: Workspace) -> tuple[str, str]:
    (space.root / "runs").mkdir(exist_ok=True)
    argv = space.pretrain(space.folder("out-mistyped"), model=["--model_name_or_path", "runs/hbert-v1-tyny"])
    result = run(argv, space.root)
    outcome, detail = classify(result, "refuse", ("runs/hbert-v1-tyny",))
    if outcome == "clear error" and "Hub" in result.message and "no such folder" not in result.message:
        return "unclear error", detail + " (blames the Hub)"
    return outcome, detail


def integer_column(space: Workspace) -> tuple[str, str]:
    table = space.root / "numbers.csv"
    table.write_text("text\n" + "\n".join(str(number) for number in range(2000)) + "\n", encoding="utf-8")
    result = run(space.pretrain(space.folder("out-integers"), "--train_file", str(table)), space.root)
    return classify(result, "refuse", ("text",))


def one_line_file(space: Workspace) -> tuple[str, str]:
    text = space.root / "one-line.txt"
    text.write_text("A single short line of text.\n", encoding="utf-8")
    result = run(space.pretrain(space.folder("out-one-line"), "--train_file", str(text)), space.root)
    return classify(result, "refuse", (str(text),))


def mounted(space: Workspace, name: str, size: str, read_only: bool = False) -> Path:
    path = space.folder(name)
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)
    return path


def unmount_all(root: Path) -> None:
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        point = line.split()[1]
        if point.startswith(str(root)):
            subprocess.run(["umount", point], check=False, capture_output=True)


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
    result = run(space.pretrain(output_dir), space.root)
    outcome, detail = classify(result, "refuse", ("disk is full",))
    if output_dir.exists():
        return "silently wrong", f"{detail}; left {output_dir}"
    return outcome, detail


def full_disk_during_save(space: Workspace) -> tuple[str, str]:
    disk = mounted(space, "small-disk", "2m")
    result = run(space.pretrain(disk / "run"), space.root)
    return classify(result, "refuse", ("disk is full",))


def finetune_read_only_model(space: Workspace) -> tuple[str, str]:
    disk = mounted(space, "read-only-model", "64m")
    shutil.copytree(space.finished(), disk / "model", ignore=shutil.ignore_patterns(".run.lock", "checkpoint-*"))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)
    started = time.monotonic()
    argv = ["-m", "recipes.finetune", "--model", str(disk / "model"), "--task", "trec", "--output_dir",
            str(space.folder("out-read-only"))]  # fmt: skip
    result = run(argv, space.root)
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


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        mounted_ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], capture_output=True)
        if mounted_ok.returncode != 0:
            return False
        subprocess.run(["umount", folder], check=False)
    return True


def probe(cases: list[Case]) -> list[Outcome]:
    outcomes = []
    mounting = can_mount()
    with tempfile.TemporaryDirectory(prefix="rerun-probe-") as folder:
        space = workspace(Path(folder))
        try:
            for case in cases:
                started = time.monotonic()
                if case.needs_mount and not mounting:
                    outcome, detail = "not run", "needs root to mount a small filesystem"
                else:
                    outcome, detail = case.probe(space)
                seconds = round(time.monotonic() - started, 1)
                outcomes.append(
                    Outcome(case.name, case.group, case.description, case.expected, outcome, detail, seconds)
                )
                print(f"{case.name}: {outcome} {detail}", flush=True)
        finally:
            unmount_all(Path(folder))
    return outcomes


# --- the record and its page -----------------------------------------------------------------------------------------

OUTCOME_ORDER = ("ok", "clear error", "unclear error", "silently wrong", "data loss", "crash", "not run")


def page(record: RerunProbeRecord) -> str:
    counts = Counter(case["outcome"] for case in record.cases)
    summary = ", ".join(f"{counts[name]} {name}" for name in OUTCOME_ORDER if counts[name])
    rows = [
        [f"`{case['case']}`", case["group"], case["description"], case["expected"], f"**{case['outcome']}**",
         case["detail"].replace("|", "\\|")]
        for case in record.cases
    ]  # fmt: skip
    return (
        "# The rerun probe\n\n"
        "<!-- Generated by `python -m studies.rerun_probe` from probe.json; do not edit by hand. -->\n\n"
        f"{len(record.cases)} cases, each a real process on real files (`studies/rerun_probe.py`), run on "
        f"{record.device} at commit `{record.git_commit}` in {record.seconds / 60:.1f} min: **{summary}**.\n\n"
        "Outcomes: `ok` is the expected behaviour; `clear error` a refusal with a user error whose message names "
        "every expected cause, every protected file unchanged; `unclear error` a library's exception or a message "
        "without the cause; `silently wrong` a run where a refusal was due, or a wrong result; `data loss` a protected "
        "file changed; `crash` death by a signal.\n\n"
        + "\n".join(markdown_table(["case", "group", "what the user does", "expected", "outcome", "detail"], rows))
        + "\n"
    )


def main(argv: list[str] | None = None) -> RerunProbeRecord:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=[case.name for case in CASES], help="Only these cases")
    parser.add_argument("--output_dir", default=str(RESULTS), help="Where probe.json and README.md go")
    parser.add_argument("--report_only", action="store_true", help="Write the page from the record, run nothing")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    if args.report_only:
        record = RerunProbeRecord.read(output_dir / RECORD_FILE.name)
    else:
        started = time.monotonic()
        outcomes = probe([case for case in CASES if not args.cases or case.name in args.cases])
        record = RerunProbeRecord(
            cases=[asdict(outcome) for outcome in outcomes],
            device=device_name(),
            git_commit=git_commit(),
            seconds=round(time.monotonic() - started, 1),
        )
        record.write(output_dir / RECORD_FILE.name)
    write_text_atomic(output_dir / PAGE_FILE.name, page(record))
    return record


if __name__ == "__main__":
    main()
