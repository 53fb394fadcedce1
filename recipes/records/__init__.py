"""The records the recipes write and every other module reads, one type each: a pretraining run's `budget.json`
(`PretrainingRecord`; a distillation's is a `DistillationRecord`), a fine-tuning result, a benchmark, a calibration, an
evaluation curve, a run folder's identity, a probe, prepared pretraining data. Each is a dataclass with one atomic `write`, one `read` (a missing file or field is
one clear error) and, where the zoo compares results, a `key()`: what the result depends on.

Every record carries a `schema_version`; a file written before its type had one reads as it is (None), and one
written by a newer schema is refused. `recipes.run_folder.recorded_runs` reads a whole run directory and names it.
"""

from recipes.records.benchmark import BenchmarkRecord, benchmark_key
from recipes.records.calibration import CalibrationRecord
from recipes.records.card import CardProvenance
from recipes.records.curves import CurveRecord
from recipes.records.files import (
    digest,
    flattened,
    from_dict,
    parse_json,
    plain,
    read_json,
    read_json_object,
    required_fields,
    set_fields,
    write_json,
    write_text_atomic,
)
from recipes.records.finetuning import DOWNSTREAM_DIR, FinetuningKey, FinetuningRecord
from recipes.records.identity import IDENTITY_FILE, RunIdentity
from recipes.records.prepared_data import (
    AssetMarker,
    DataScaleRecord,
    PreparationProgress,
    PreparedDataRecord,
    SourceFingerprintRecord,
)
from recipes.records.pretraining import (
    BUDGET_FILE,
    DistillationRecord,
    PretrainingIdentity,
    PretrainingKey,
    PretrainingRecord,
    RunRecord,
)
from recipes.records.probe import FrontierRecord, ProbeRecord
from recipes.records.rerun_probe import RerunProbeRecord
from recipes.records.step_times import StepTimesRecord
from recipes.records.tables import (
    FRONTIER_PLOT_FILE,
    BaselinesRecord,
    EqualTimeTable,
    FrontierTable,
    HealingTable,
    ParameterCountRecord,
    StudyFingerprint,
)
from recipes.records.training_state import BudgetState, MatmulPeaks

__all__ = [
    "StudyFingerprint",
    "ParameterCountRecord",
    "HealingTable",
    "EqualTimeTable",
    "FRONTIER_PLOT_FILE",
    "FrontierTable",
    "BaselinesRecord",
    "AssetMarker",
    "BUDGET_FILE",
    "DOWNSTREAM_DIR",
    "IDENTITY_FILE",
    "BenchmarkRecord",
    "BudgetState",
    "CalibrationRecord",
    "CardProvenance",
    "CurveRecord",
    "DataScaleRecord",
    "DistillationRecord",
    "FinetuningKey",
    "FinetuningRecord",
    "FrontierRecord",
    "MatmulPeaks",
    "PreparationProgress",
    "PreparedDataRecord",
    "PretrainingIdentity",
    "PretrainingKey",
    "PretrainingRecord",
    "RerunProbeRecord",
    "ProbeRecord",
    "RunIdentity",
    "RunRecord",
    "SourceFingerprintRecord",
    "StepTimesRecord",
    "benchmark_key",
    "digest",
    "flattened",
    "from_dict",
    "parse_json",
    "plain",
    "read_json",
    "read_json_object",
    "required_fields",
    "set_fields",
    "write_json",
    "write_text_atomic",
]
