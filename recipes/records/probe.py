"""A probe of students beside their teacher (`recipes/probe.py`): per task and encoder, linear-probe accuracy and
agreement with the teacher; per length, each encoder's latency and its ratio to the others. And the healing frontier's
layouts and latency (`studies/healing/frontier.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class ProbeRecord(FileRecord):
    KIND: ClassVar[str] = "probe record"
    SCHEMA_VERSION: ClassVar[int] = 1

    arguments: dict  # the probe's arguments
    encoders: dict[str, dict]  # name -> kind (teacher, healed, unhealed), variant, seed, run key, …
    tasks: dict[str, dict]  # task -> encoder name -> accuracy, agreement, …
    latency_ms: dict[str, dict]  # sequence length -> encoder name -> latency_ms, ratio_vs
    device: str
    threads: int
    versions: dict
    load_average: list[float] | None = None
    git_commit: str | None = None
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class FrontierRecord(FileRecord):
    """The healing frontier's layouts, chosen on validation text, and their latency measurements
    (`studies/healing/frontier.py`): each with its time, commit, a note on the machine and its protocol (turns of
    at most `group_size` encoders beside the same-implementation control, `repeats` turns). A ratio is read over every
    measurement that timed the encoder."""

    KIND: ClassVar[str] = "healing frontier record"
    SCHEMA_VERSION: ClassVar[int] = 2
    SAME_IMPLEMENTATION: ClassVar[str] = "bert (this implementation)"  # the control every ratio is taken against
    HF_BERT: ClassVar[str] = "MiniLM (HF BertModel)"

    teacher: str
    validation_texts: dict  # tasks, per_task, max_length
    layer_agreement: dict[str, dict[str, float]]  # mixer -> layer -> agreement of that layer replaced alone
    layouts: dict[str, dict[str, list[str]]]  # mixer -> k -> mixer_types
    device: str
    threads: int
    git_commit: str
    measured_at: str
    # measured_at, git_commit, note, group_size, repeats, latency_ms ("BATCHxSEQ" -> load averages, encoders ->
    # latency_ms, ratio_vs)
    latency_measurements: list[dict]
    schema_version: int | None = SCHEMA_VERSION

    @property
    def shapes(self) -> list[str]:
        return list(self.latency_measurements[0]["latency_ms"]) if self.latency_measurements else []

    def latency_ratios(self, shape: str, encoder: str, measurements: slice = slice(None)) -> list[float]:
        """`encoder`'s latency ÷ the same-implementation control's at `shape` ("BATCHxSEQ"), one per measurement
        (of those `measurements` picks, in the order they were made) that timed it."""
        return [
            measured["latency_ms"][shape]["encoders"][encoder]["ratio_vs"][self.SAME_IMPLEMENTATION]
            for measured in self.latency_measurements[measurements]
            if encoder in measured["latency_ms"].get(shape, {}).get("encoders", {})
        ]
