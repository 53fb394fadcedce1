"""An output folder is one run's own: a lock while the run lives, and replaced only when it holds a run of this project.

- `claim_output_dir` takes the folder's lock (filelock's `SoftFileLock`: a marker file recording PID, host and process
  start; a marker left by a process that no longer runs is stale and taken over). A second process on the same folder
  fails at once with `OutputDirInUseError` naming the holder. The lock goes when the run ends, however it ends, and a
  folder the claim created is removed again if the run left nothing in it.
- `replace_run` empties a folder for `--overwrite_output_dir`, but only one marked as a run of this project by the
  `run.json` a recipe writes when it claims the folder (`recipes.records.RunIdentity`); anything else is refused,
  naming what it holds.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import SoftFileLock, Timeout

from recipes.environment import free_space
from recipes.records import IDENTITY_FILE, FinetuningRecord, PretrainingRecord

LOCK_FILE = ".run.lock"
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


def check_holds_run(folder: Path) -> list[str]:
    """The folder's entries when it is absent, empty, or marked as a run of this project by its `run.json` (which the
    recipes write when they claim a folder); NotARunError, naming what it holds, otherwise. Files that only look like
    a run (`checkpoint-*`, a Trainer's output, a saved model) are someone's until marked."""
    names = entries(folder)
    if names and IDENTITY_FILE not in names and not holds_recorded_run(folder):
        raise NotARunError(
            f"--overwrite_output_dir refuses to empty {folder}: it holds {describe(names)}, not a run of this project "
            f"(no {IDENTITY_FILE}, which this project's recipes write in every folder they claim, nor a complete "
            "record of a run made before it). Choose another --output_dir, or remove the folder yourself."
        )
    return names


def holds_recorded_run(folder: Path) -> bool:
    """Whether `folder` holds a complete record of a run this project made before run.json existed: a budget.json
    that reads as a pretraining or distillation record, or a fine-tuning record (file names alone prove nothing)."""
    try:
        if PretrainingRecord.exists(folder):
            PretrainingRecord.read(folder)
            return True
        if (folder / FinetuningRecord.FILE).is_file():
            FinetuningRecord.read(folder / FinetuningRecord.FILE)
            return True
    except (ValueError, TypeError):
        pass
    return False


def replace_run(folder: Path) -> None:
    """Empty `folder` (its lock kept) when it is marked as a run of this project; refuse anything else, changing
    nothing. The mark goes last, so a removal cut short still leaves a folder that is recognisably a run."""
    check_holds_run(folder)
    for name in sorted(entries(folder), key=lambda name: name == IDENTITY_FILE):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def lock_holder(folder: Path) -> str:
    """Who holds `folder`'s lock, as its marker records it: PID and host (a holder on another host cannot be checked
    from here, so its lock is never taken over as stale)."""
    try:
        pid, host = (folder / LOCK_FILE).read_text().splitlines()[:2]
    except (OSError, ValueError):
        return "holder unknown"
    if host != socket.gethostname():
        return f"PID {pid} on another host, {host}; if that run is gone, remove the lock file"
    return f"PID {pid}"


@contextmanager
def claim_output_dir(folder: Path, is_main_process: bool = True, wait_s: float = 0) -> Iterator[None]:
    """Hold `folder`'s lock for the body (only the main process of a multi-process run locks: the ranks are one run).

    A stale lock (its process gone) is taken over with a warning; a live one raises OutputDirInUseError, at once or
    after waiting `wait_s` seconds for it (a short write into another run's folder waits its turn)."""
    if not is_main_process:
        yield
        return
    created = not folder.exists()
    # The outermost folder this claim creates: removed again if the claim fails.
    outermost = next((path for path in reversed(folder.absolute().parents) if not path.exists()), folder.absolute())
    lock = SoftFileLock(folder / LOCK_FILE, timeout=wait_s)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        previous_holder = lock.pid
        lock.acquire()
    except Timeout:
        raise OutputDirInUseError(
            f"{folder} is in use by another run ({lock_holder(folder)}, lock {folder / LOCK_FILE}): wait for it to "
            "end, or choose another --output_dir."
        ) from None
    except OSError as error:
        if created:
            shutil.rmtree(outermost, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"The disk is full: cannot claim {folder} ({free_space(folder)}).") from None
        raise
    if previous_holder is not None:
        warnings.warn(
            f"{folder}: took over the lock left by PID {previous_holder}, which no longer runs.", stacklevel=3
        )
    held_nothing = not entries(folder)
    try:
        yield
    except BaseException:
        # A run that failed before it wrote anything leaves no mark: its folder is as it was (or gone, below).
        if held_nothing and entries(folder) == [IDENTITY_FILE]:
            (folder / IDENTITY_FILE).unlink()
        raise
    finally:
        lock.release()
        if created and not entries(folder):
            shutil.rmtree(folder, ignore_errors=True)
