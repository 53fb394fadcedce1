"""The records of results tables and study fingerprints: the model-free baselines (`recipes.evaluation.baselines`),
parameter counts (`recipes.models.parameters`), the healing study's table (`studies.healing.table`, which healed
students' cards cite), the equal-time study's table (`studies.equal_time.report`, from which the README's headline is
generated) and the fingerprint of what that running study depends on (`studies.equal_time.freeze`), and the healing
frontier's table (`studies.healing.frontier_table`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from recipes.records.files import FileRecord


@dataclass(frozen=True)
class BaselinesRecord(FileRecord):
    KIND: ClassVar[str] = "baselines record"
    SCHEMA_VERSION: ClassVar[int] = 1

    seed: int  # of the splits an offline source lacks
    tasks: dict[str, dict]  # task -> majority_class_test, majority_class_train, tfidf_logistic_regression
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class ParameterCountRecord(FileRecord):
    KIND: ClassVar[str] = "parameter count record"
    SCHEMA_VERSION: ClassVar[int] = 1

    size: str
    parameters: list[dict]  # one breakdown per variant
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class HealingTable(FileRecord):
    KIND: ClassVar[str] = "healing table"
    SCHEMA_VERSION: ClassVar[int] = 1

    confidence: float
    latency_seq: int
    tasks: list[str]
    finetuned_records: int
    unflagged_finetuned_records: int
    finetuning: dict
    rows: dict[str, dict]  # row name -> per task: probe and fine-tuned accuracy, share of the teacher's, latency
    healing: dict
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class EqualTimeTable(FileRecord):
    KIND: ClassVar[str] = "equal-time results table"
    SCHEMA_VERSION: ClassVar[int] = 1

    plateau_share: float
    plateau_threshold: float
    plateau: dict[str, dict]  # run -> when it left the plateau (or the last point reached)
    mlm: dict[str, dict]  # budget -> arm -> metric -> {seed: value}
    downstream: dict[str, dict]
    primary_endpoints: dict[str, dict]
    reference_arm: str | None = None  # the arm every paired difference is taken against
    contrasts: dict[str, dict] | None = None  # budget -> "arm − reference" -> metric -> mean, low, high, seeds
    schema_version: int | None = SCHEMA_VERSION


FRONTIER_PLOT_FILE = "frontier.png"  # written beside a frontier table's table.json


@dataclass(frozen=True)
class FrontierTable(FileRecord):
    KIND: ClassVar[str] = "healing frontier table"
    # 3: the latency target's verdict is a dict (verdict "pending", "met", "missed", "undecided" or "incomplete", the
    # measurements it rests on, and once decided the geometric mean ratio with its 95% interval)
    # 4: the exploratory rate check (`rate_check`)
    SCHEMA_VERSION: ClassVar[int] = 4

    threshold: float  # the share of the teacher's fine-tuned accuracy a point must keep (the interval's lower bound)
    latency_shape: str  # "BATCHxSEQ" of the latency ratio reported per point
    denominators: dict[str, dict]  # row -> task -> fine-tuned test accuracy (mean, sd, seeds)
    # label -> mixer, k, layout, latency ratio (mean, and one per measurement), whether it meets the latency target,
    # arms -> arm -> tasks and whether it keeps, healing_gain -> task
    points: dict[str, dict]
    primary: dict[str, dict]  # mixer -> the largest k whose healed arm keeps the threshold on every task
    # label -> k, seed, arms -> arm -> task -> the rate the arm chose on validation, and its test accuracy at that rate
    # minus at the teacher's; healing_gain -> task -> at each arm's own rate and at the teacher's (one seed)
    rate_check: dict[str, dict] | None = None
    schema_version: int | None = SCHEMA_VERSION


@dataclass(frozen=True)
class StudyFingerprint(FileRecord):
    KIND: ClassVar[str] = "frozen study fingerprint"
    # 2: the training numbers where bf16 is only emulated, which rounds otherwise than native bf16
    SCHEMA_VERSION: ClassVar[int] = 2

    data: dict[str, str]  # digests of the training blocks, held-out blocks and masks
    training: dict[str, dict]  # arm -> held-out loss and accuracy after the checked steps, where bf16 is native
    training_emulated_bf16: dict[str, dict] | None = None  # the same on a CPU without AVX512-BF16 or AMX
    schema_version: int | None = SCHEMA_VERSION
