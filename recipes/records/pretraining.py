"""A pretraining run's record (`budget.json`): what the budget bought, the run record that keys its weights, and the
identity a fine-tuning cites."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from recipes.records.files import digest, from_dict, plain, read_json_object, set_fields, write_json

BUDGET_FILE = "budget.json"


@dataclass(frozen=True)
class RunRecord:
    """What a pretraining run's weights depend on (code, versions, config, data, budget, seed, training settings), plus
    where it ran. `run_key()` names those weights: fine-tuning records cite it."""

    KIND: ClassVar[str] = "run record"
    # What defines the weights; the rest (device, threads, load) describes the conditions they were made under.
    KEY_FIELDS: ClassVar[tuple[str, ...]] = (
        "git_commit",
        "versions",
        "config_sha256",
        "data_sha256",
        "budget_s",
        "seed",
        "training",
    )

    git_commit: str
    versions: dict[str, str]
    config_sha256: str
    data_sha256: str | None
    budget_s: float
    seed: int
    training: dict
    device: str
    threads: int
    world_size: int
    load_average: list[float] = field(default_factory=list)

    @classmethod
    def collect(
        cls,
        *,
        config: dict,
        data_sha256: str | None,
        budget_s: float,
        seed: int,
        training: dict,
        machine: dict,
        world_size: int,
    ) -> RunRecord:
        """The record of a run about to start, on the machine `recipes.environment.machine_facts` describes."""
        return cls(
            config_sha256=digest(config),
            data_sha256=data_sha256,
            budget_s=budget_s,
            seed=seed,
            training=plain(training),
            world_size=world_size,
            **machine,
        )

    def run_key(self) -> str:
        return digest({name: getattr(self, name) for name in self.KEY_FIELDS})[:16]


@dataclass(frozen=True)
class PretrainingKey:
    """What a pretraining run's result depends on, all known before it runs (the config follows from the arguments
    and the code). `data_sha256` is None where the data must be downloaded to be fingerprinted (a Hub dataset)."""

    git_commit: str
    versions: dict[str, str]
    data_sha256: str | None
    budget_s: float
    seed: int
    arguments: dict
    samples_per_step: int
    learning_rate: float

    def matches(self, planned: PretrainingKey) -> bool:
        """Whether this recorded key is the planned one (a planned key without a data fingerprint matches any)."""
        if planned.data_sha256 is None:
            return dataclasses.replace(self, data_sha256=None) == planned
        return self == planned


@dataclass(frozen=True)
class PretrainingRecord:
    """A pretraining run directory's `budget.json`: what the budget bought, the run record and the arguments."""

    KIND: ClassVar[str] = "pretraining record (budget.json)"
    SCHEMA_VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = BUDGET_FILE

    budget_s: float
    elapsed_s: float
    overshoot_s: float
    paused_s: float
    paused_breakdown_s: dict[str, float]
    steps: int
    samples: int
    tokens_seen: int
    tokens_per_s: float
    stop_reason: str
    run_record: RunRecord
    data_preparation_s: float
    device: str
    threads: int
    world_size: int
    variant: str
    size: str
    budget: str
    arguments: dict  # {"model": ..., "data": ..., "budget": ...}: the recipe's arguments as given
    # recipes.training.mfu.utilisation_record: MFU against the measured matmul peak (None in records that predate it)
    utilisation: dict | None = None
    # The steps at which the run was resumed from a checkpoint ([] uninterrupted; None in records that predate it): a
    # resumed run is deterministic but is not the uninterrupted one.
    resumed_at: list[int] | None = None

    schema_version: int | None = SCHEMA_VERSION

    @classmethod
    def path(cls, run_dir: str | Path) -> Path:
        return Path(run_dir) / cls.FILE

    @classmethod
    def exists(cls, run_dir: str | Path) -> bool:
        return cls.path(run_dir).is_file()

    @classmethod
    def read(cls, run_dir: str | Path) -> PretrainingRecord:
        path = cls.path(run_dir)
        data = read_json_object(path, cls.KIND)
        run_record = from_dict(RunRecord, data.get("run_record", {}), path)
        return from_dict(cls, {**data, "run_record": run_record}, path)

    def to_dict(self) -> dict:
        return set_fields(self)

    def write(self, run_dir: str | Path) -> Path:
        return write_json(self.path(run_dir), self.to_dict())

    def key(self) -> PretrainingKey:
        return PretrainingKey(
            git_commit=self.run_record.git_commit,
            versions=self.run_record.versions,
            data_sha256=self.run_record.data_sha256,
            budget_s=self.run_record.budget_s,
            seed=self.run_record.seed,
            arguments=self.arguments,
            samples_per_step=self.run_record.training["samples_per_step"],
            learning_rate=self.run_record.training["learning_rate"],
        )

    @property
    def seed(self) -> int:
        return self.run_record.seed

    @property
    def init_from(self) -> str | None:
        return self.arguments["model"].get("init_from")

    def identity(self, run_dir: str | Path) -> PretrainingIdentity:
        return PretrainingIdentity(
            run_dir=str(run_dir),
            variant=self.variant,
            size=self.size,
            budget=self.budget,
            budget_s=self.budget_s,
            seed=self.seed,
            run_key=self.run_record.run_key(),
        )


@dataclass(frozen=True)
class PretrainingIdentity:
    """Which pretraining run a fine-tuned model started from, as its record cites it."""

    KIND: ClassVar[str] = "pretraining identity"

    run_dir: str
    variant: str
    size: str
    budget: str
    budget_s: float
    seed: int
    run_key: str


@dataclass(frozen=True)
class DistillationRecord(PretrainingRecord):
    """A distillation run's `budget.json`: a pretraining record (its run record's `training.objective` is
    "distillation") plus the teacher, whether the student kept the teacher's settings, the agreement with the teacher
    at the start and end of the budget, and what the student's initialisation copied."""

    KIND: ClassVar[str] = "distillation record (budget.json)"

    teacher: str | None = None
    keep_source_settings: bool = False
    agreement: dict | None = None  # {"start", "end"}: mean cosine with the teacher on the held-out sentences
    initialisation: dict | None = None  # newly_initialized, unused, dropped_biases, copied (a count)
