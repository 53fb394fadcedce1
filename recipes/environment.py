"""Where and with what a result was produced: the code commit, package versions, device and machine load."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "evaluate", "deepspeed", "safetensors", "tokenizers")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Tracked paths whose changes leave a run's computation unchanged (git pathspecs).
NOT_CODE = (":(exclude)results", ":(exclude)model_cards", ":(exclude,glob)**/*.md")


def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD's hash, with '+dirty' when tracked files other than results and prose differ from it ('unknown' outside a
    git checkout): a study's runs write results, cards and README tables while later runs start, and those files do not
    change what a run computes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def device_name(device: torch.device | str = "cpu") -> str:
    """The accelerator's name, or the CPU's model name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def machine_facts(device: torch.device | str = "cpu") -> dict:
    """What a run's record says of the machine and code it ran on, now."""
    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the platform has none): speeds depend on them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def portable_path(path: str | Path) -> str:
    """A path as generated files record it: relative to the repository when inside it, so they move with checkouts."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(resolved)


def free_space(path: Path) -> str:
    """The free space of the filesystem `path` is on (or would be on), for messages about a full disk."""
    existing = next((folder for folder in (path, *path.absolute().parents) if folder.exists()), Path("/"))
    return f"{shutil.disk_usage(existing).free / 2**20:,.1f} MB free on its filesystem"


FULL_DISK_BYTES = 16 * 2**20  # below this, a failed save is put down to the full disk (torch's own error hides it)


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a failed write into `folder` was a full disk: ENOSPC, or (torch's serialiser reports a short write as
    "enforce fail … unexpected pos") a filesystem with almost nothing left."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return shutil.disk_usage(folder).free < FULL_DISK_BYTES
