"""The zoo's arguments and the names of what it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modeling import VARIANTS
from recipes.data import assets
from recipes.run_folder.naming import DROP_MASK_SUFFIX, split_variant
from recipes.training.clock import parse_budget

HEADLINE_VARIANTS = ("hbert-v1", "bert")  # the headline comparison, at the shortest budget
REFERENCE_VARIANT = "bert"  # paired-seed differences are taken against it
INITS = ("pretrained", "scratch")
SCRATCH = "scratch"  # a pretraining start: random weights
REFERENCE_DIR = "reference"  # reference checkpoints' fine-tuning, under the output and records directories
RECORDS_DIR = "zoo_runs"
BENCHMARK_PREFIX = "benchmark_"
RESULTS_FILE = "zoo.md"
CURVES_FILE = "mlm_curves.png"


@dataclass
class ZooArguments:
    output_dir: str = field(default="runs/zoo", metadata={"help": "Where the run directories go"})
    variants: list[str] = field(
        default_factory=lambda: ["bert", "hbert-v1"],
        metadata={"help": f"Variants ({', '.join(VARIANTS)}), each optionally with '{DROP_MASK_SUFFIX}'"},
    )
    size: str = field(default="tiny", metadata={"help": "tiny, mini, small, minilm or base"})
    budgets: list[str] = field(default_factory=lambda: ["30s", "2m"], metadata={"help": "Pretraining budgets"})
    starts: list[str] = field(
        default_factory=lambda: [SCRATCH],
        metadata={
            "help": f"Where pretraining starts: '{SCRATCH}' and/or a named checkpoint "
            f"({', '.join(assets.NAMED_CHECKPOINTS)}; HBERT §4.4), each a run of its own"
        },
    )
    tasks: list[str] = field(default_factory=lambda: ["trec"], metadata={"help": "Fine-tuning tasks"})
    finetune_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    finetune_from_scratch: bool = field(
        default=True,
        metadata={
            "help": "Also fine-tune each variant from random weights (the no-pretraining baseline, once a variant)"
        },
    )
    reference_models: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"Named checkpoints ({', '.join(assets.NAMED_CHECKPOINTS)}) fine-tuned as they are, as references"
        },
    )
    pretrain_seeds: list[int] = field(default_factory=lambda: [1])
    headline_pretrain_seeds: list[int] | None = field(
        default=None, metadata={"help": "Pretraining seeds of hbert-v1 and bert at the shortest budget"}
    )
    pretrain_args: str = field(default="", metadata={"help": "Extra recipes.pretrain arguments, one string"})
    finetune_args: str = field(default="", metadata={"help": "Extra recipes.finetune arguments, one string"})
    results_dir: str = field(default="results", metadata={"help": f"Where {RESULTS_FILE} and {CURVES_FILE} go"})
    records_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where each run's records are gathered, to build the results and cards from "
            f"(default <results_dir>/{RECORDS_DIR})"
        },
    )
    cards_dir: str | None = field(default=None, metadata={"help": "Where cards go (default <output_dir>/cards)"})
    namespace: str = field(default="hybrid-bert-zoo", metadata={"help": "The Hub namespace the cards name"})
    benchmark: bool = field(
        default=True, metadata={"help": "Measure parameters and latency at --size for Table 2 and the cards"}
    )
    replace_stale: bool = field(
        default=False,
        metadata={
            "help": "Run again the finished runs whose records the plan would make differently now (other code or "
            "settings), replacing them; without it such a run is an error named before anything runs. Unfinished "
            "runs always continue"
        },
    )
    results_only: bool = field(
        default=False,
        metadata={"help": "Plan and run nothing: rebuild the results and cards from the gathered records"},
    )

    def __post_init__(self):
        for label in self.variants:
            split_variant(label)
        unknown = [start for start in self.starts if start != SCRATCH and start not in assets.NAMED_CHECKPOINTS]
        unknown += [name for name in self.reference_models if name not in assets.NAMED_CHECKPOINTS]
        if unknown:
            raise ValueError(
                f"Unknown checkpoint {', '.join(map(repr, unknown))}: --starts takes '{SCRATCH}' or one of "
                f"{', '.join(assets.NAMED_CHECKPOINTS)}; --reference_models one of {', '.join(assets.NAMED_CHECKPOINTS)}."
            )
        for budget in self.budgets:
            parse_budget(budget)
        self.records_dir = self.records_dir or str(Path(self.results_dir) / RECORDS_DIR)
        self.cards_dir = self.cards_dir or str(Path(self.output_dir) / "cards")
