"""A pretraining run directory as its records give it (`RecordedRun`), and the Hub repo names of a set of runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from transformers.utils import CONFIG_NAME

from modeling import HybridBertConfig
from recipes.records import BUDGET_FILE, FinetuningRecord, PretrainingRecord
from recipes.run_folder.naming import init_part, run_name, variant_label
from recipes.training.curves import CURVE_FILE, load_curve


def pretraining_runs(folder: str | Path) -> list[Path]:
    """The pretraining run directories of a folder (a zoo, or its gathered records): its subfolders with a budget.json."""
    return sorted(path.parent for path in Path(folder).glob(f"*/{BUDGET_FILE}"))


@dataclass(frozen=True)
class RecordedRun:
    """A finished pretraining run: its budget.json, config, MLM curve and the fine-tuning records made against its
    weights. Only small JSON files are read, so a run directory whose weights are absent (gathered records) reads."""

    # What a finished run holds: an interrupted one has no config.json yet.
    INPUTS: ClassVar[tuple[str, ...]] = (BUDGET_FILE, CURVE_FILE, CONFIG_NAME)

    run_dir: Path
    record: PretrainingRecord
    config: HybridBertConfig
    curve: list[dict]
    downstream: list[FinetuningRecord]
    stale_downstream: int  # records made against earlier weights of the same directory (before a resume)

    @classmethod
    def missing_inputs(cls, run_dir: str | Path) -> list[str]:
        return [name for name in cls.INPUTS if not (Path(run_dir) / name).is_file()]

    @classmethod
    def read(cls, run_dir: str | Path) -> RecordedRun:
        run_dir = Path(run_dir)
        missing = cls.missing_inputs(run_dir)
        if missing:
            raise FileNotFoundError(f"{run_dir} is not a finished pretraining run: it has no {', '.join(missing)}.")
        record = PretrainingRecord.read(run_dir)
        run_key = record.run_record.run_key()
        downstream = FinetuningRecord.read_downstream(run_dir)
        current = [entry for entry in downstream if entry.pretraining and entry.pretraining.run_key == run_key]
        return cls(
            run_dir=run_dir,
            record=record,
            config=HybridBertConfig.from_pretrained(run_dir),
            curve=load_curve(run_dir),
            downstream=current,
            stale_downstream=len(downstream) - len(current),
        )

    @property
    def label(self) -> str:
        return variant_label(self.record.variant, self.config.drop_mask)

    def repo_name(self, with_seed: bool = False) -> str:
        seed = self.record.seed if with_seed else None
        record = self.record
        return run_name(self.label, record.size, init_part(record.init_from), record.budget, seed=seed, hub=True)


def repo_names(run_dirs: Iterable[str | Path]) -> dict[Path, str]:
    """Each run's Hub repo name, one per variant × size × start × budget; runs that share one (several pretraining
    seeds) each get `-seed<N>` after it."""
    runs = {Path(run_dir): RecordedRun.read(run_dir) for run_dir in run_dirs}
    counts = Counter(run.repo_name() for run in runs.values())
    names = {run_dir: run.repo_name(with_seed=counts[run.repo_name()] > 1) for run_dir, run in runs.items()}
    repeated = sorted(name for name, count in Counter(names.values()).items() if count > 1)
    if repeated:
        raise ValueError(
            f"Several runs map to the same repo (same variant, size, budget and seed): {', '.join(repeated)}."
        )
    return names
