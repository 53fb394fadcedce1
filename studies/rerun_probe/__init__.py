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

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from recipes.cards.markdown import markdown_table
from recipes.environment import REPO_ROOT
from recipes.records import RerunProbeRecord

RESULTS = REPO_ROOT / "results" / "rerun_probe"
RECORD_FILE = RESULTS / "probe.json"
PAGE_FILE = RESULTS / "README.md"

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


def run_command(argv: list[str], cwd: Path, env: dict | None = None) -> Result:
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
    return "clear error", f"{result.error_type}: {first_line(result.message, names)}"


def first_line(message: str, names: tuple[str, ...] = ()) -> str:
    """The message's first line naming one of `names` (its first line when none does), cut to 200 characters."""
    lines = message.splitlines() or [""]
    line = next((line.strip() for line in lines if any(name in line for name in names)), lines[0])
    return line if len(line) <= 200 else line[:199] + "…"


def probe_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT)}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but the run lock, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".run.lock"
    }


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
        f"{len(record.cases)} cases, each a real process on real files (`studies/rerun_probe/`), run on "
        f"{record.device} at commit `{record.git_commit}` in {record.seconds / 60:.1f} min: **{summary}**.\n\n"
        "Outcomes: `ok` is the expected behaviour; `clear error` a refusal with a user error whose message names "
        "every expected cause, every protected file unchanged; `unclear error` a library's exception or a message "
        "without the cause; `silently wrong` a run where a refusal was due, or a wrong result; `data loss` a protected "
        "file changed; `crash` death by a signal.\n\n"
        + "\n".join(markdown_table(["case", "group", "what the user does", "expected", "outcome", "detail"], rows))
        + "\n"
    )
