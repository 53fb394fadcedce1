"""An output folder is one run's own: a lock while the run lives, and replaced only when it holds a run of this project.

- `claim_output_dir` takes the folder's lock (filelock's `SoftFileLock`: a marker file recording PID, host and process
  start; a marker left by a process that no longer runs is stale and taken over). A second process on the same folder
  fails at once with `OutputDirInUseError` naming the holder. The lock goes when the run ends, however it ends, and a
  folder the claim created is removed again if the run left nothing in it.
- `replace_run` empties a folder for `--overwrite_output_dir`, but only one holding a run of this project (one of the
  recipe's record files, a `checkpoint-N`, or a saved HybridBERT); anything else is refused, naming what it holds.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from filelock import SoftFileLock, Timeout

LOCK_FILE = ".run.lock"
CHECKPOINT_PATTERNS = ("checkpoint-*", "tmp-checkpoint-*")
SAVED_MODEL_TYPE = "hybrid_bert"
SHOWN_ENTRIES = 5


class OutputDirInUseError(RuntimeError):
    """Another live process holds the output folder's lock."""


class NotARunError(FileExistsError):
    """The output folder holds files that are not a run of this project; nothing was changed."""


def entries(folder: Path) -> list[str]:
    """The folder's entries, the run lock's files left out (an absent folder has none)."""
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if not name.startswith(LOCK_FILE))


def describe(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_ENTRIES])
    return shown + (f" and {len(names) - SHOWN_ENTRIES} more" if len(names) > SHOWN_ENTRIES else "")


def holds_saved_model(folder: Path) -> bool:
    """Whether `folder` is a `save_pretrained` folder of a HybridBERT model."""
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type") == SAVED_MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def run_markers(folder: Path, record_files: Sequence[str]) -> list[str]:
    """The entries that show `folder` holds a run of this project: record files, checkpoints, a saved model."""
    found = [
        name for name in entries(folder) if name in record_files or any(fnmatch(name, p) for p in CHECKPOINT_PATTERNS)
    ]
    return found + (["config.json"] if holds_saved_model(folder) else [])


def check_holds_run(folder: Path, record_files: Sequence[str]) -> list[str]:
    """The entries showing that `folder` (absent, empty, or) holds a run of this project; NotARunError, naming what
    it holds, otherwise."""
    names = entries(folder)
    markers = run_markers(folder, record_files)
    if names and not markers:
        raise NotARunError(
            f"--overwrite_output_dir refuses to empty {folder}: it holds {describe(names)}, not a run of this project "
            f"(none of {', '.join([*record_files, 'checkpoint-N', 'a saved HybridBERT model'])}). "
            "Choose another --output_dir."
        )
    return markers


def replace_run(folder: Path, record_files: Sequence[str]) -> None:
    """Empty `folder` (its lock kept) when it holds a run of this project; refuse anything else, changing nothing.
    The markers go last, so a removal cut short still leaves a folder that is recognisably a run."""
    markers = check_holds_run(folder, record_files)
    for name in sorted(entries(folder), key=lambda name: name in markers):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextmanager
def claim_output_dir(folder: Path, is_main_process: bool = True) -> Iterator[None]:
    """Hold `folder`'s lock for the body (only the main process of a multi-process run locks: the ranks are one run).

    A stale lock (its process gone) is taken over with a warning; a live one raises OutputDirInUseError at once."""
    if not is_main_process:
        yield
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = SoftFileLock(folder / LOCK_FILE, timeout=0)
    previous_holder = lock.pid
    try:
        lock.acquire()
    except Timeout:
        raise OutputDirInUseError(
            f"{folder} is in use by another run (PID {lock.pid or 'unknown'}, lock {folder / LOCK_FILE}): wait for it "
            "to end, or choose another --output_dir."
        ) from None
    if previous_holder is not None:
        warnings.warn(
            f"{folder}: took over the lock left by PID {previous_holder}, which no longer runs.", stacklevel=3
        )
    try:
        yield
    finally:
        lock.release()
        if created and not entries(folder):
            shutil.rmtree(folder, ignore_errors=True)
