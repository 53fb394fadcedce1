"""The budget's clock: agreed wall-clock seconds of training, and the learning-rate schedule as a pure function of it.

The clock runs only while training steps run (evaluation and checkpointing pause it); every rank reads the same agreed
value (the maximum over ranks), so the stop decision and the learning rate are the same everywhere.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_budget(text: str) -> float:
    """'90s', '10m', '2h', '1d', '1h30m' or plain seconds ('600') -> seconds (> 0)."""
    cleaned = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif re.fullmatch(r"(\d+(\.\d+)?[smhd])+", cleaned):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", cleaned))
    else:
        raise ValueError(f"Cannot parse budget {text!r}: use a number with a unit s/m/h/d, e.g. 90s, 10m, 2h, 1d.")
    if seconds <= 0:
        raise ValueError(f"Budget {text!r} must be positive.")
    return seconds


def agree_across_ranks(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Elementwise maximum over all ranks (identity on one process): every rank then decides on the same numbers."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


@dataclass
class BudgetClock:
    """Agreed wall-clock seconds of training. `now` is injectable (tests slow it down or skew one rank)."""

    budget_s: float
    now: Callable[[], float] = time.monotonic
    elapsed_s: float = 0.0
    paused_s: dict[str, float] = field(default_factory=lambda: {"evaluation": 0.0, "checkpointing": 0.0})
    running_since: float | None = None
    paused_since: float | None = None
    last_pause_reason: str = "evaluation"

    @property
    def progress(self) -> float:
        return min(1.0, self.elapsed_s / self.budget_s)

    @property
    def expired(self) -> bool:
        return self.elapsed_s >= self.budget_s

    def resume(self) -> None:
        """Start (or restart after a pause) counting; the rest of a pause goes to what last used it."""
        if self.paused_since is not None:
            self.charge_pause(self.last_pause_reason)
            self.paused_since = None
        if self.running_since is None:
            self.running_since = self.now()

    def pause(self) -> None:
        self.paused_since = self.now()
        self.running_since = None

    def charge_pause(self, reason: str) -> None:
        """Attribute the time since the pause began (or since the last charge) to `reason`."""
        if self.paused_since is not None:
            now = self.now()
            self.paused_s[reason] += now - self.paused_since
            self.paused_since = now
            self.last_pause_reason = reason

    def read_local(self) -> float:
        now = self.now()
        if self.running_since is not None:
            self.elapsed_s += now - self.running_since
            self.running_since = now
        return self.elapsed_s


def budget_schedule(progress: float, warmup_fraction: float, final_ratio: float, shape: str) -> float:
    """LR multiplier at a fraction of the budget: linear warmup, then linear or cosine decay to `final_ratio` at 1."""
    if progress < warmup_fraction:
        return progress / warmup_fraction
    decay = (progress - warmup_fraction) / (1.0 - warmup_fraction) if warmup_fraction < 1 else 1.0
    decay = min(1.0, decay)
    falloff = 1.0 - decay if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * decay))
    return final_ratio + (1.0 - final_ratio) * falloff


BUDGET_SCHEDULE_SHAPES = ("linear", "cosine")


def schedule_shape(lr_scheduler_type) -> str:
    """TrainingArguments.lr_scheduler_type (an enum or a string) as a plain string."""
    return str(getattr(lr_scheduler_type, "value", lr_scheduler_type))
