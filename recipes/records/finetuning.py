"""A fine-tuning result and the key that says what it depends on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recipes.records.files import from_dict, read_json_object, write_json
from recipes.records.pretraining import PretrainingIdentity

DOWNSTREAM_DIR = "downstream"


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
    SCHEMA_VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = "downstream_record.json"  # in the fine-tuned model's folder

    task: str
    init: str  # "pretrained" or "scratch"
    seed: int
    split_seed: int | None
    model: dict  # {"name_or_path", "variant", "size"}
    pretraining: PretrainingIdentity | None
    epochs: float
    train_samples: int
    test: dict  # {"accuracy", "macro_f1", "one_class", "samples"}; the earliest records lack "one_class"
    validation: list[dict]
    majority_class: dict  # {"label", "accuracy", "macro_f1"}
    training: dict
    # With a learning-rate grid: per rate, the validation scores of its selected epoch (the record's model is the best).
    learning_rate_search: list[dict] | None = None
    git_commit: str | None = None  # the code that fine-tuned (recipes.environment.git_commit); older records lack it
    # The predicted class of every test example, in the test split's order: intervals over test rows (a bootstrap, or
    # McNemar) are computed from them. Older records lack them.
    test_predictions: list[int] | None = None

    schema_version: int | None = SCHEMA_VERSION

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
        for optional in ("learning_rate_search", "git_commit", "test_predictions", "schema_version"):
            if data[optional] is None:
                del data[optional]
        return data

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @property
    def selected_search_entry(self) -> dict | None:
        """The learning-rate grid's point the record's model comes from (None without a grid or a selection)."""
        if self.learning_rate_search is None:
            return None
        return next((entry for entry in self.learning_rate_search if entry["selected"]), None)

    def key(self) -> FinetuningKey:
        run_key = self.pretraining.run_key if self.pretraining else None
        return FinetuningKey(self.task, self.init, self.seed, run_key, self.training)
