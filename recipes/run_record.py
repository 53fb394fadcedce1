"""The run record: what a run's result depends on (code, versions, config, data, budget, seed), plus where it ran.

The zoo keys runs by `run_key(record)` so re-running skips exactly what is complete and redoes what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "evaluate", "deepspeed", "safetensors", "tokenizers")
# Fields that define a result; the rest (device, threads, load) describe the conditions it was measured under.
KEY_FIELDS = ("git_commit", "versions", "config_sha256", "data_sha256", "budget_s", "seed", "training")


def git_commit(repo: Path = Path(__file__).resolve().parents[1]) -> str:
    """HEAD's hash, with '+dirty' when tracked files differ from it ('unknown' outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True)
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
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def make_run_record(
    *, config: dict, data_sha256: str, budget_s: float, seed: int, training: dict, device: torch.device | str, world_size: int
) -> dict:
    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "config_sha256": sha256_json(config),
        "data_sha256": data_sha256,
        "budget_s": budget_s,
        "seed": seed,
        "training": training,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "world_size": world_size,
        "load_average": list(_load_average()),
    }


def _load_average() -> tuple[float, ...]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return ()


def run_key(record: dict) -> str:
    return sha256_json({name: record[name] for name in KEY_FIELDS})[:16]
