"""The records the recipes write and every other module reads: a pretraining run's `budget.json`, a fine-tuning result,
a benchmark. Each is a dataclass with one atomic `write`, one `read` (a missing file or field is one clear error) and
one `key()`: what the result depends on, which the zoo compares with what it would run to skip finished work.

On disk they are the JSON the recipes have always written; a field added later gets a default, so older records still
read. `recipes.run_folder.recorded_runs` reads a whole run directory (records, config, curve) and names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from recipes.environment import device_name, git_commit, load_average, package_versions

BUDGET_FILE = "budget.json"
DOWNSTREAM_DIR = "downstream"


# --- files ------------------------------------------------------------------------------------------------------


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Whole or not at all: readers (cards, the zoo, a resumed run) may look while a run writes, and processes that
    write the same file (ranks, concurrent runs sharing a cache) each stage their own copy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
    return path


def write_json(path: str | Path, value: Any) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, default=str) + "\n")


def read_json_object(path: str | Path, kind: str) -> dict:
    """A record file's JSON object; a missing file, bad JSON or another JSON value is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: no {kind} there.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a {kind}: {error}.") from None
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a {kind}: it holds no JSON object.")
    return data


def plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, paths and enums strings): how a record compares once read."""
    return json.loads(json.dumps(value, default=str))


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def required_fields(cls) -> list[str]:
    """The fields of a record type without a default: every file of that type holds them."""
    return [f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING]


def set_fields(record) -> dict:
    """A record as JSON, without its optional fields left at None: optional parts (a benchmark's sections not run,
    fields newer than an old record) are absent, as in the files written before they existed. A required field is
    always written, None included (a model made from a BERT of no catalogued size has size None), so that `from_dict`
    reads the record back."""
    required = required_fields(record)
    return {name: value for name, value in dataclasses.asdict(record).items() if value is not None or name in required}


def from_dict(cls, data: dict, source: str | Path):
    """`cls` from a record's JSON, refusing one that lacks a field without a default (fields unknown here are
    ignored)."""
    if not isinstance(data, dict):
        raise TypeError(f"{source} is not a {cls.KIND}: it holds no JSON object.")
    missing = [name for name in required_fields(cls) if name not in data]
    if missing:
        raise ValueError(f"{source} is not a {cls.KIND}: it lacks {', '.join(missing)}.")
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in data.items() if name in known})


# --- pretraining ------------------------------------------------------------------------------------------------


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
        device,
        world_size: int,
    ) -> RunRecord:
        """The record of a run about to start here, now."""
        return cls(
            git_commit=git_commit(),
            versions=package_versions(),
            config_sha256=digest(config),
            data_sha256=data_sha256,
            budget_s=budget_s,
            seed=seed,
            training=plain(training),
            device=device_name(device),
            threads=torch.get_num_threads(),
            world_size=world_size,
            load_average=load_average(),
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


# --- fine-tuning ------------------------------------------------------------------------------------------------


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
class FinetuningKey:
    """What a fine-tuning result depends on: the task, start, seed, the pretraining run's weights (None: a reference
    checkpoint) and the training settings."""

    task: str
    init: str
    seed: int
    pretraining_run_key: str | None
    training: dict


@dataclass(frozen=True)
class FinetuningRecord:
    """A fine-tuning result: test and validation scores, the majority-class baseline, what it was trained from and
    with which settings."""

    KIND: ClassVar[str] = "fine-tuning record"
    FILE: ClassVar[str] = "downstream_record.json"  # in the fine-tuned model's folder

    task: str
    init: str  # "pretrained" or "scratch"
    seed: int
    split_seed: int | None
    model: dict  # {"name_or_path", "variant", "size"}
    pretraining: PretrainingIdentity | None
    epochs: float
    train_samples: int
    test: dict  # {"accuracy", "macro_f1", "one_class", "samples"} ("one_class" from records of 2026-12-02 on)
    validation: list[dict]
    majority_class: dict  # {"label", "accuracy", "macro_f1"}
    training: dict
    # With a learning-rate grid: per rate, the validation scores of its selected epoch (the record's model is the best).
    learning_rate_search: list[dict] | None = None
    git_commit: str | None = None  # the code that fine-tuned (recipes.environment.git_commit); older records lack it
    # The predicted class of every test example, in the test split's order: intervals over test rows (a bootstrap, or
    # McNemar) are computed from them. Older records lack them.
    test_predictions: list[int] | None = None

    @staticmethod
    def downstream_path(run_dir: str | Path, task: str, init: str, seed: int) -> Path:
        """Where a pretraining run directory holds the records of its fine-tunings."""
        return Path(run_dir) / DOWNSTREAM_DIR / task / f"{init}-seed{seed}.json"

    @classmethod
    def read(cls, path: str | Path) -> FinetuningRecord:
        data = read_json_object(path, cls.KIND)
        pretraining = data.get("pretraining")
        if pretraining is not None:
            pretraining = from_dict(PretrainingIdentity, pretraining, path)
        return from_dict(cls, {**data, "pretraining": pretraining}, path)

    @classmethod
    def read_downstream(cls, run_dir: str | Path) -> list[FinetuningRecord]:
        """Every fine-tuning record written against a pretraining run, sorted by task, init and seed."""
        records = [cls.read(path) for path in Path(run_dir).glob(f"{DOWNSTREAM_DIR}/*/*.json")]
        return sorted(records, key=lambda record: (record.task, record.init, record.seed))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        # only a grid run has a search, and older records no commit: records without them keep their format
        for optional in ("learning_rate_search", "git_commit", "test_predictions"):
            if data[optional] is None:
                del data[optional]
        return data

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def key(self) -> FinetuningKey:
        run_key = self.pretraining.run_key if self.pretraining else None
        return FinetuningKey(self.task, self.init, self.seed, run_key, self.training)


# --- benchmark --------------------------------------------------------------------------------------------------


def benchmark_key(metadata: dict) -> str:
    """What a benchmark's numbers depend on: its metadata (code, versions, device, threads, arguments) but the date."""
    return digest({name: value for name, value in metadata.items() if name != "date"})


@dataclass(frozen=True)
class BenchmarkRecord:
    """A `recipes.benchmark` run: its metadata, the seconds each section took, each section run, and the targets."""

    KIND: ClassVar[str] = "benchmark record"

    metadata: dict
    section_seconds: dict[str, float]
    params: dict | None = None
    train: dict | None = None
    infer: dict | None = None
    memory: dict | None = None
    scaling: dict | None = None
    bf16: dict | None = None
    recipe: dict | None = None
    targets: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> BenchmarkRecord:
        return from_dict(cls, read_json_object(path, cls.KIND), path)

    def to_dict(self) -> dict:
        """The sections that were run, in the order they run."""
        return set_fields(self)

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def section(self, name: str) -> dict:
        """A section's results ({} when it was not run)."""
        return getattr(self, name) or {}

    def key(self) -> str:
        return benchmark_key(self.metadata)


# --- a run folder's identity ------------------------------------------------------------------------------------

IDENTITY_FILE = "run.json"


def flattened(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}: nested settings as the dotted names an error message shows."""
    if isinstance(value, dict) and value:
        return {name: leaf for key, item in value.items() for name, leaf in flattened(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


@dataclass(frozen=True)
class RunIdentity:
    """A run folder's `run.json`, written when a recipe claims the folder: the mark that the folder is a run of this
    project (only a marked folder is ever replaced), `shapes` — everything that shapes the run's result (the model
    config after overrides, the data and its fingerprint, the training arguments that change the trajectory, the
    budget, the seeds), which a command continuing the run must repeat — and `conditions`, what may differ between the
    commands of one run (code commit, threads, logging and evaluation cadence), as the latest command had them."""

    KIND: ClassVar[str] = "run identity (run.json)"
    FILE: ClassVar[str] = IDENTITY_FILE
    SCHEMA_VERSION: ClassVar[int] = 1

    recipe: str
    shapes: dict
    conditions: dict
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def path(cls, folder: str | Path) -> Path:
        return Path(folder) / cls.FILE

    @classmethod
    def read(cls, folder: str | Path) -> RunIdentity | None:
        """The folder's identity, None when it has none (an empty folder, or a run from before identities)."""
        path = cls.path(folder)
        if not path.is_file():
            return None
        data = read_json_object(path, cls.KIND)
        if data.get("schema_version") != cls.SCHEMA_VERSION:
            raise ValueError(
                f"{path} has schema_version {data.get('schema_version')!r}; this code reads {cls.SCHEMA_VERSION}."
            )
        return from_dict(cls, data, path)

    def write(self, folder: str | Path) -> Path:
        return write_json(self.path(folder), set_fields(self))

    def differences(self, requested: RunIdentity) -> list[str]:
        """One line per setting where `requested` differs from this run: its name, this run's value, the command's."""
        if requested.recipe != self.recipe:
            return [f"recipe: this folder holds a {self.recipe} run, the command is {requested.recipe}"]
        ours, theirs = flattened(plain(self.shapes)), flattened(plain(requested.shapes))
        return [
            f"{name}: the run has {ours.get(name, '(absent)')!r}, this command {theirs.get(name, '(absent)')!r}"
            for name in sorted(set(ours) | set(theirs))
            if ours.get(name, "(absent)") != theirs.get(name, "(absent)")
        ]
