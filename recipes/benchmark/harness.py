"""The benchmark's harness: its arguments, the models and random batches it measures, and interleaved timing."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch
import transformers
from transformers import BertForMaskedLM, BertModel, PreTrainedModel

from modeling import SIZES, VARIANTS, HybridBertConfig, HybridBertForMaskedLM, HybridBertModel
from recipes.environment import device_name, git_commit
from recipes.models.parameters import ABLATIONS, hf_bert_config

SECTIONS = ("params", "train", "infer", "memory", "scaling", "bf16", "recipe")
HF_BERT = "hf-bert"
DENSE_HEAD_BERT = "bert-dense-head"
SEPARATE_VALUE_ADDBERT = "addbert-wv"
# The recipe section's configurations: pretraining before and after its fast defaults
RECIPE_FP32 = "fp32 recipe"
RECIPE_DEFAULTS = "defaults"
RECIPE_COMPILED = "defaults + compile"
PROFILE_STEPS = 3  # steps the recipe section's per-op profile averages over
# Every ratio column divides by these rows: HF for the project's bert, the project's bert for the hybrids.
REFERENCES = (HF_BERT, "bert")
MLM_PROBABILITY = 0.15
VOCAB_SIZE = HybridBertConfig().vocab_size  # BERT's WordPiece vocabulary (30,522), shared by every benchmarked model
# bert-base-uncased reserves ids 0..103 for [PAD], [unusedN], [UNK], [CLS], [SEP] and [MASK]; a random batch of
# ordinary words stays clear of them, so no model takes a special path (DropMask, padding) on it.
FIRST_ORDINARY_TOKEN_ID = 104
# A timed turn shorter than this is mostly timer and scheduler noise: shorter calls are repeated within a turn.
MIN_TURN_SECONDS = 0.05
# Below this, a learned position table would not fit BERT's usual inputs; above it, the longest benchmarked length.
MIN_POSITIONS = 512

TIMING = (
    "median over turns taken in interleaved order (A B C … A B C …) after a warm-up; a call shorter than "
    f"{MIN_TURN_SECONDS * 1e3:.0f} ms is repeated within its turn and averaged"
)

# metric -> (column label, number format) in the markdown and the log
METRIC_COLUMNS = {
    "tokens_per_s": ("tokens/s", "{:,.0f}"),
    "latency_ms": ("latency (ms)", "{:,.1f}"),
    "peak_mib": ("peak (MiB)", "{:,.0f}"),
}

# Applied by --quick to every option left at its default: tiny models and short lengths, seconds per section.
QUICK_SETTINGS = {
    "size": "tiny",
    "base_size": "tiny",
    "train_seqs": [32, 64],
    "tokens_per_step": 256,
    "long_seq": 256,
    "infer_batch_size": 4,
    "infer_batch_seq": 32,
    "scaling_seqs": [32, 64, 128, 256],
    "bf16_seq": 32,
    "bf16_tokens_per_step": 128,
    "recipe_seqs": [32],
    "recipe_tokens_per_step": 128,
    "repeats": 2,
}


@dataclass
class BenchmarkArguments:
    sections: list[str] = field(
        default_factory=lambda: list(SECTIONS),
        metadata={"help": f"sections to run, any of {', '.join(SECTIONS)} (space- or comma-separated)"},
    )
    size: str = field(
        default="mini", metadata={"help": "size for params, train, memory, scaling and the size's own latencies"}
    )
    base_size: str = field(
        default="base",
        metadata={"help": "size for the one-sequence and long-sequence encoder latencies and the bf16 comparison"},
    )
    train_seqs: list[int] = field(
        default_factory=lambda: [128, 512, 2048], metadata={"help": "sequence lengths of train and memory"}
    )
    tokens_per_step: int = field(
        default=4096, metadata={"help": "tokens per training step: batch = tokens_per_step // seq (at least 1)"}
    )
    single_seq: int = field(default=211, metadata={"help": "one-sequence latency length (HBERT's Table 2: 211)"})
    long_seq: int = field(default=2048, metadata={"help": "long one-sequence latency length, at base_size"})
    infer_batch_size: int = field(default=32, metadata={"help": "batched latency at size: this many sequences"})
    infer_batch_seq: int = field(default=128, metadata={"help": "batched latency at size: of this length"})
    scaling_seqs: list[int] = field(
        default_factory=lambda: [128, 256, 512, 1024, 2048, 4096], metadata={"help": "mixer lengths, batch 1"}
    )
    scaling_backward: bool = field(default=False, metadata={"help": "time and count forward + backward of mixers"})
    bf16_models: list[str] = field(default_factory=lambda: ["bert"], metadata={"help": "models of the bf16 section"})
    bf16_seq: int = field(default=128, metadata={"help": "sequence length of the bf16 comparison"})
    bf16_tokens_per_step: int = field(default=512, metadata={"help": "tokens per step of the bf16 comparison"})
    recipe_models: list[str] = field(
        default_factory=lambda: list(VARIANTS), metadata={"help": "models of the recipe section (fp32 vs defaults)"}
    )
    recipe_seqs: list[int] = field(default_factory=lambda: [128], metadata={"help": "sequence lengths of recipe"})
    recipe_tokens_per_step: int = field(
        default=4096, metadata={"help": "tokens per step of the recipe section (pretrain.py's 32 × 128)"}
    )
    recipe_config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "recipe section: config fields of every configuration, as pretrain.py's --config_overrides "
            "(e.g. the study's size: num_hidden_layers=6)"
        },
    )
    recipe_compile: bool = field(
        default=False, metadata={"help": "recipe section: also the defaults under torch.compile, and compile time"}
    )
    profile_rows: int = field(default=15, metadata={"help": "recipe section: ops listed in the per-op profile"})
    repeats: int = field(default=5, metadata={"help": "timed turns per model and setting (the median is reported)"})
    warmup: int = field(default=1, metadata={"help": "untimed calls per model before each setting's turns (>= 1)"})
    threads: int | None = field(default=None, metadata={"help": "torch threads (default: torch.get_num_threads())"})
    dtype: str = field(
        default="float32",
        metadata={"choices": ["float32", "bfloat16"], "help": "bfloat16 runs every section under autocast"},
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or cuda:N"})
    output_dir: str = field(default="results", metadata={"help": "where benchmark_<device>.json and .md go"})
    quick: bool = field(
        default=False, metadata={"help": "tiny sizes and short lengths for every option left at its default"}
    )
    seed: int = 0

    def __post_init__(self):
        if self.quick:
            for field_ in dataclasses.fields(self):
                if field_.name in QUICK_SETTINGS and getattr(self, field_.name) == _default_of(field_):
                    setattr(self, field_.name, QUICK_SETTINGS[field_.name])
        # Sections may also come comma-separated; HfArgumentParser splits on spaces only.
        self.sections = [name for item in self.sections for name in item.split(",") if name]
        _check_names("section", self.sections, SECTIONS)
        _check_names("size", [self.size, self.base_size], SIZES)
        _check_names("bf16 model", self.bf16_models, training_models())
        _check_names("recipe model", self.recipe_models, training_models())
        self.train_seqs = sorted(self.train_seqs)
        self.scaling_seqs = sorted(self.scaling_seqs)
        if self.threads is None:
            self.threads = torch.get_num_threads()
        if self.warmup < 1 or self.repeats < 1:
            raise ValueError("warmup and repeats must be at least 1: the warm-up call also sizes each timed turn.")

    @property
    def autocast_bf16(self) -> bool:
        return self.dtype == "bfloat16"


def _default_of(field_: dataclasses.Field):
    return field_.default_factory() if field_.default_factory is not dataclasses.MISSING else field_.default


def _check_names(kind: str, names: Iterable[str], valid: Iterable[str]) -> None:
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, unknown))}; choose from {', '.join(valid)}.")


# --- models and batches ------------------------------------------------------------------------------------------


def training_models() -> list[str]:
    return [*VARIANTS, HF_BERT, *ABLATIONS]


def encoder_models() -> list[str]:
    """Without labels the MLM head plays no part, so `bert-dense-head` would repeat `bert` here."""
    return [*VARIANTS, HF_BERT, SEPARATE_VALUE_ADDBERT]


def positions_for(seqs: Iterable[int]) -> int:
    return max(MIN_POSITIONS, *seqs)


def hybrid_config(name: str, size: str, max_positions: int, **fields) -> HybridBertConfig:
    """The project's config behind a model name, with `fields` on top; `hf-bert` has the dimensions of the `bert`
    variant."""
    variant, overrides = ABLATIONS.get(name, (name if name in VARIANTS else "bert", {}))
    return HybridBertConfig.from_variant(
        variant, size=size, max_position_embeddings=max_positions, attn_implementation="sdpa", **overrides, **fields
    )


def build_model(name: str, size: str, max_positions: int, with_mlm_head: bool, **fields) -> PreTrainedModel:
    config = hybrid_config(name, size, max_positions, **fields)
    if name == HF_BERT:
        return (BertForMaskedLM if with_mlm_head else BertModel)(hf_bert_config(config))
    return (HybridBertForMaskedLM if with_mlm_head else HybridBertModel)(config)


def build_models(
    names: Iterable[str], size: str, max_positions: int, with_mlm_head: bool, args: BenchmarkArguments, **fields
) -> dict[str, PreTrainedModel]:
    models = {}
    for name in names:
        torch.manual_seed(args.seed)
        models[name] = build_model(name, size, max_positions, with_mlm_head, **fields).to(args.device)
    return models


def random_batch(batch_size: int, seq: int, with_labels: bool, args: BenchmarkArguments) -> dict[str, torch.Tensor]:
    """Random ordinary token ids and a full attention mask; with labels, 15% of each row's positions are labelled."""
    generator = torch.Generator().manual_seed(args.seed)
    input_ids = torch.randint(FIRST_ORDINARY_TOKEN_ID, VOCAB_SIZE, (batch_size, seq), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if with_labels:
        num_labelled = max(1, round(MLM_PROBABILITY * seq))
        labelled = torch.rand((batch_size, seq), generator=generator).argsort(dim=1)[:, :num_labelled]
        labels = torch.full_like(input_ids, -100)
        batch["labels"] = labels.scatter(1, labelled, input_ids.gather(1, labelled))
    return {key: tensor.to(args.device) for key, tensor in batch.items()}


def batch_size_for(tokens_per_step: int, seq: int) -> int:
    return max(1, tokens_per_step // seq)


def precision(device: torch.device | str, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)


def training_step(model: PreTrainedModel, optimizer, batch: dict, bf16: bool) -> Callable[[], None]:
    """One MLM step: forward with labels, backward, AdamW step, gradients cleared."""
    device = next(model.parameters()).device
    model.train()

    def step() -> None:
        with precision(device, bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inference_step(model: PreTrainedModel, inputs: dict, bf16: bool) -> Callable[[], None]:
    device = next(model.parameters()).device
    model.eval()

    def step() -> None:
        with torch.inference_mode(), precision(device, bf16):
            model(**inputs)

    return step


def optimizer_for(model: PreTrainedModel) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4)


# --- timing --------------------------------------------------------------------------------------------------------


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(step: Callable[[], None], calls: int, device: torch.device | str) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def calls_filling_a_turn(step: Callable[[], None], args: BenchmarkArguments) -> int:
    """Runs the warm-up; its fastest call says how many calls a timed turn needs to last MIN_TURN_SECONDS."""
    fastest = min(seconds_per_call(step, 1, args.device) for _ in range(args.warmup))
    return max(1, math.ceil(MIN_TURN_SECONDS / fastest))


def interleaved_times(steps: dict[str, Callable[[], None]], args: BenchmarkArguments) -> dict[str, list[float]]:
    """Seconds per call of each step: warmed up, then timed in turns (A B C A B C …) so that drift of the machine
    hits all alike."""
    calls_per_turn = {name: calls_filling_a_turn(step, args) for name, step in steps.items()}
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(seconds_per_call(step, calls_per_turn[name], args.device))
    return times


def with_ratios(records: dict[str, dict], metric: str, references: Iterable[str] = REFERENCES) -> dict[str, dict]:
    """Adds `ratio_vs[reference]` = this row's metric / the reference row's, for each reference present."""
    for record in records.values():
        record["ratio_vs"] = {
            reference: record[metric] / records[reference][metric] for reference in references if reference in records
        }
    return records


def compare(
    steps: dict[str, Callable[[], None]],
    metric: str,
    metric_of_seconds: Callable[[float], float],
    args: BenchmarkArguments,
    references: Iterable[str] = REFERENCES,
) -> dict[str, dict]:
    records = {}
    for name, times in interleaved_times(steps, args).items():
        median = statistics.median(times)
        records[name] = {metric: metric_of_seconds(median), "median_s": median, "times_s": times}
    return with_ratios(records, metric, references)


def free_memory() -> None:
    """Returns what the last setting's models held, so that it does not crowd the next setting."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def log_records(label: str, records: dict[str, dict], metric: str) -> None:
    unit, number = METRIC_COLUMNS[metric]
    log(f"{label}, {unit}: " + ", ".join(f"{name} {number.format(record[metric])}" for name, record in records.items()))


def metadata(args: BenchmarkArguments) -> dict:
    """What the numbers depend on and when they were measured (`recipes.records.benchmark_key` leaves the date out)."""
    device = torch.device(args.device)
    return {
        "device": device.type,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arguments": dataclasses.asdict(args),
    }
