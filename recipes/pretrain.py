"""Pretrain a HybridBERT variant with masked language modelling under a wall-clock budget.

    accelerate launch recipes/pretrain.py --variant hbert-v1 --size mini --budget 10m --output_dir runs/hbert-v1-mini-10m
    python recipes/pretrain.py ...   # the same, one process
    python recipes/pretrain.py --model_name_or_path RUN_DIR|ORG/NAME --train_file my_corpus.txt --budget 1h ...

The last continues pretraining a HybridBERT checkpoint (a folder or a Hub repo id, `--model_revision` for a branch) on
the user's text (`--text_column_name` for a .csv/.json file or a Hub dataset) under a new budget.

The budget is wall-clock seconds of training (see recipes/budget.py): the clock starts at the first step, evaluation
and checkpoint saving pause it, it is checked every step and agreed across ranks, and the same elapsed time drives the
learning rate (warmup, then decay to its end value exactly at the deadline). `--max_steps` switches to a step-based
schedule. `--calibration FILE` (a record of `python -m recipes.calibration`) turns the budget into the variant's
calibrated step count, and the schedule and evaluation points follow the steps: a rerun makes the same steps on any
load. The held-out split and masks follow `--held_out_seed`, the training order and masks `--data_seed`, neither
`--seed`. The output directory is a `save_pretrained` folder (loadable with `trust_remote_code=True`) plus
`budget.json` (what was spent and the run record) and `mlm_curve.json/png`.

The output directory is the run's own (`recipes/run_dir.py`): locked while the run lives, replaced by
`--overwrite_output_dir` only when it holds a run. A checkpoint is saved atomically at each evaluation point
(`recipes/checkpoints.py`), and the same command run again after a crash or kill resumes from the last complete one.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import evaluate
import torch
from transformers import (
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes import arguments as recipe_arguments
from recipes import assets
from recipes.arguments import BF16_HELP, RecipeTrainingArguments, bf16_where_native
from recipes.budget import (
    BUDGET_SCHEDULE_SHAPES,
    BUDGET_STATE_FILE,
    BudgetTrainer,
    TimeBudgetCallback,
    parse_budget,
    schedule_shape,
)
from recipes.calibration import (
    CalibratedClock,
    calibrated_steps,
    check_settings,
    file_sha256,
    load_record,
    precision_name,
    run_settings,
)
from recipes.checkpoints import (
    STAGING_PREFIX,
    TRAINER_STATE_FILE,
    check_resumable,
    incomplete_checkpoints,
    last_checkpoint,
)
from recipes.curves import CURVE_FILE, EvaluationCurveCallback, load_curve
from recipes.data import OFFLINE_CORPORA, CorpusSpec, planned_fingerprint, prepare
from recipes.environment import git_commit, package_versions
from recipes.input_files import read_config, read_json
from recipes.mfu import MIXED_PRECISION_DTYPES, mlm_training_flops_per_token, utilisation_record
from recipes.records import BUDGET_FILE, PretrainingKey, PretrainingRecord, RunRecord, plain
from recipes.references import folder_tokenizer, require_model_type, resolve_model
from recipes.run_dir import check_holds_run, claim_output_dir, describe, entries, replace_run

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
# The arguments that name a checkpoint to start from: the model type each takes, and where the other kind goes.
START_ARGUMENTS = (
    ("model_name_or_path", ("hybrid_bert",), "Start a HybridBERT from a BERT checkpoint with --init_from."),
    ("init_from", ("bert",), "Continue pretraining a HybridBERT checkpoint with --model_name_or_path."),
)
REQUIRED_CHECKPOINT_FILES = (TRAINER_STATE_FILE, BUDGET_STATE_FILE)
# The dimensions `HybridBertForMaskedLM.from_bert` takes from an --init_from model's config.
SOURCE_DIMENSIONS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings",
)  # fmt: skip
OVERRIDABLE_FIELDS = tuple(
    name
    for name in HybridBertConfig().to_dict()
    if name not in ("_name_or_path", "architectures", "model_type", "transformers_version", "variant", "size")
)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue pretraining a HybridBERT checkpoint (a folder, a run's checkpoint-N, or a Hub repo id) "
            "on this run's data and budget; its config fixes the model"
        },
    )
    model_revision: str | None = field(
        default=None,
        metadata={
            "help": "With a Hub repo id in --model_name_or_path or --init_from: branch, tag or commit (default main)"
        },
    )
    variant: str | None = field(
        default=None, metadata={"help": "bert, addbert, hbert-v1, hbert-v2 or pool-hybrid (default bert)"}
    )
    size: str | None = field(default=None, metadata={"help": "tiny, mini, small, minilm or base (default mini)"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields to override, e.g. 'hidden_dropout_prob=0.0,num_hidden_layers=6'"}
    )
    drop_mask: bool = field(default=False, metadata={"help": "DropMask: [MASK] tokens are not keys of any mixer"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Initialise from an HF BERT (a folder, a Hub repo id, or 'minilm': the pinned all-MiniLM-L6-v2), "
            "HBERT §4.4"
        },
    )
    copy_ffn_and_norms: bool = field(
        default=True,
        metadata={
            "help": "With --init_from: also copy FFNs and norms that have a counterpart (false: embeddings and self-attention only)"
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer directory or Hub id (default: the embedded bert-base-uncased)"}
    )


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": f"Offline corpus: {', '.join(OFFLINE_CORPORA)} (default wikitext-2-raw)"}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset (needs a network)"})
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(
        default=None, metadata={"help": "A text file (one document per line), or a .csv/.json/.jsonl file"}
    )
    validation_file: str | None = field(default=None)
    text_column_name: str | None = field(
        default=None,
        metadata={
            "help": "The column of --dataset_name or a .csv/.json train file that holds the text (default 'text')"
        },
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes that tokenise the text"})
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "Held-out share when the source has no validation split"}
    )
    max_seq_length: int = 128
    mlm_probability: float = 0.15
    max_eval_samples: int | None = field(
        default=512, metadata={"help": "Blocks of the held-out set evaluated (None: all)"}
    )
    held_out_seed: int = field(
        default=42, metadata={"help": "Seed of the held-out split (where the source has none) and of its masks"}
    )


@dataclass
class BudgetArguments:
    budget: str = field(default="10m", metadata={"help": "Wall-clock training budget: 90s, 10m, 2h, 1d, 1h30m"})
    num_eval_points: int = field(default=10, metadata={"help": "Evaluations at evenly spaced points of the budget"})
    final_lr_ratio: float = field(default=0.0, metadata={"help": "LR at the deadline, as a fraction of the peak"})
    calibration: str | None = field(
        default=None,
        metadata={"help": "A calibration record (python -m recipes.calibration): train the budget's calibrated steps"},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output directory holding another run (and only a run)"}
    )
    save_at_eval_points: bool = field(
        default=True,
        metadata={
            "help": "Save a checkpoint at each evaluation point (the last --save_total_limit kept), so that the same "
            "command resumes a killed run from there; --no_save_at_eval_points saves only at the end"
        },
    )


@dataclass
class PretrainingArguments(RecipeTrainingArguments):
    """TrainingArguments with this recipe's defaults (HBERT §4.2: Adam, lr 1e-4) and the fastest settings that keep
    fp32's loss curve: bf16 autocast where the device has native bf16, and fused AdamW (transformers' default with
    torch ≥ 2.8). `--torch_compile` stays opt-in: see the benchmark's `recipe` section for when it wins."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: float = 0.05
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    logging_steps: float = 10
    save_total_limit: int | None = 2  # the budget callback saves at each evaluation point; the last two are kept
    eval_on_start: bool = True
    # Logged with every step's loss (and so sent to each `report_to` tracker), beside the budget spent.
    include_num_input_tokens_seen: str | bool = True
    # The held-out inputs reach the metric, which counts accuracy at [MASK] positions beside all labelled ones.
    include_for_metrics: list[str] = field(default_factory=lambda: ["inputs"])
    # The training order and the training batches' masks follow data_seed, not --seed: every variant and pretraining
    # seed sees the same batches.
    data_seed: int | None = 42
    bf16: bool = field(default=bf16_where_native(), metadata={"help": BF16_HELP})


class HeldOutCollator:
    """Masks training batches on the fly; passes the pre-masked held-out blocks (they carry labels) through."""

    def __init__(self, tokenizer, mlm_probability: float, seed: int | None = None):
        self.masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)

    def __call__(self, examples):
        batch = default_data_collator(examples) if "labels" in examples[0] else self.masking(examples)
        # Packed blocks hold no padding: without a mask the model takes its unmasked path, decided here on the host
        # instead of by reading the mask back from the device in every forward.
        if "attention_mask" in batch and bool(batch["attention_mask"].all()):
            del batch["attention_mask"]
        return batch


def predictions_at_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Argmax token ids laid out like `labels` (-100 elsewhere), from sparse or full MLM logits, so full-vocabulary
    logits are never accumulated over the evaluation set."""
    labelled = labels != -100
    predictions = torch.full_like(labels, -100)
    predictions[labelled] = logits.argmax(-1) if logits.dim() == 2 else logits.argmax(-1)[labelled]
    return predictions


class MlmCurveCallback(EvaluationCurveCallback):
    """The held-out MLM accuracy curve (mlm_curve.json/png)."""

    extra_metrics = ("mask_accuracy",)

    def describe(self, point: dict) -> str:
        return (
            f"{point['tokens_seen'] / 1e6:.2f}M tokens: MLM accuracy {100 * point['accuracy']:.2f}% "
            f"({100 * point['mask_accuracy']:.2f}% at [MASK]), loss {point['loss']:.3f}"
        )


def parse_overrides(text: str | None) -> dict:
    """'a=1,b=0.5,c=true' → typed values (JSON where it parses, else the string); only fields a config has."""
    overrides = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ValueError(f"--config_overrides item {item!r} is not key=value.")
        key, raw = (part.strip() for part in item.split("=", 1))
        if key not in OVERRIDABLE_FIELDS:
            close = difflib.get_close_matches(key, OVERRIDABLE_FIELDS, n=3)
            raise ValueError(
                f"--config_overrides: {key!r} is not a config field"
                + (
                    f"; did you mean {' or '.join(map(repr, close))}?"
                    if close
                    else f" (fields: {', '.join(OVERRIDABLE_FIELDS)})."
                )
            )
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def requested_config(model_args: ModelArguments, tokenizer=None, start: Path | None = None) -> dict:
    """The config this run asks for, computed without building a model: the variant at its size (with --init_from,
    the source's dimensions), the overrides, and (given the tokenizer) its vocabulary and token ids; with
    --model_name_or_path, the checkpoint's (`start`, the resolved folder)."""
    if model_args.model_name_or_path:
        return read_config(start)
    fields = {"drop_mask": model_args.drop_mask, **parse_overrides(model_args.config_overrides)}
    if tokenizer is not None:
        fields.update(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id
        )
    elif fields["drop_mask"]:
        fields.setdefault("mask_token_id", 0)  # a stand-in while only the shape is checked; the tokenizer's comes later
    if not model_args.init_from:
        return HybridBertConfig.from_variant(
            model_args.variant or "bert", size=model_args.size or "mini", **fields
        ).to_dict()
    source = read_config(start)
    dimensions = {name: source[name] for name in SOURCE_DIMENSIONS if name in source and name not in fields}
    config = HybridBertConfig.from_variant(model_args.variant or "bert", size="base", **dimensions, **fields).to_dict()
    config.pop("size")  # follows the source, like its other dimensions
    return config


def load_tokenizer(model_args: ModelArguments, start: Path | None = None):
    """--tokenizer_name's, else the continued checkpoint's own (`start`, the resolved --model_name_or_path), else the
    embedded bert-base-uncased one."""
    if model_args.tokenizer_name:
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        tokenizer.model_max_length = min(tokenizer.model_max_length, 512)
        return tokenizer
    if model_args.model_name_or_path:
        return folder_tokenizer(start or resolve_start(model_args))
    return assets.default_tokenizer()


def resolve_start(model_args: ModelArguments) -> Path | None:
    """The local folder of the checkpoint a run starts from: a HybridBERT checkpoint it continues
    (--model_name_or_path) or an HF BERT it converts (--init_from); None for fresh weights."""
    if model_args.model_name_or_path:
        new_model_arguments = ("variant", "size", "config_overrides", "init_from", "drop_mask")
        new_model = [name for name in new_model_arguments if getattr(model_args, name)]
        if new_model:
            raise ValueError(
                f"--model_name_or_path continues a checkpoint whose config fixes the model; drop --{', --'.join(new_model)}."
            )
    for argument, model_types, hint in START_ARGUMENTS:
        reference = getattr(model_args, argument)
        if reference:
            folder = resolve_model(reference, model_args.model_revision, f"--{argument}")
            require_model_type(folder, model_types, f"--{argument}", reference, hint=hint)
            return folder
    if model_args.model_revision:
        raise ValueError(
            "--model_revision applies to a Hub repo id in --model_name_or_path or --init_from; neither is given."
        )
    return None


def corpus_spec(data_args: DataArguments) -> CorpusSpec:
    """The text source the arguments name (the embedded WikiText-2 when they name none), its held-out split and masks
    drawn with --held_out_seed whatever the run's --seed."""
    return CorpusSpec(
        dataset=data_args.dataset or (None if data_args.dataset_name or data_args.train_file else "wikitext-2-raw"),
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        text_column_name=data_args.text_column_name or "text",
        validation_split_percentage=data_args.validation_split_percentage,
        seed=data_args.held_out_seed,
    )


def build_model(model_args: ModelArguments, tokenizer, start: Path | None = None) -> HybridBertForMaskedLM:
    """The checkpoint `start` continued, or a fresh variant, or one initialised from the BERT `start`; a new model's
    token ids and vocabulary size come from the tokenizer."""
    if model_args.model_name_or_path:
        model = HybridBertForMaskedLM.from_pretrained(start)
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens; the checkpoint only {model.config.vocab_size}."
            )
        return model
    fields = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "drop_mask": model_args.drop_mask,
        **parse_overrides(model_args.config_overrides),
    }
    variant = model_args.variant or "bert"
    if model_args.init_from:
        model = HybridBertForMaskedLM.from_bert(
            start, variant=variant, copy_ffn_and_norms=model_args.copy_ffn_and_norms, **fields
        )
        if model_args.size and model.config.size != model_args.size:
            raise ValueError(
                f"--size {model_args.size} does not match the --init_from model (size {model.config.size})."
            )
        return model
    config = HybridBertConfig.from_variant(variant, size=model_args.size or "mini", **fields)
    return HybridBertForMaskedLM(config)


def resume_point(output_dir: Path, resume: str | None, overwrite: bool, curve_file: str = CURVE_FILE) -> str | None:
    """The checkpoint this run continues from (None: a fresh start), from the arguments and what the output folder
    holds: an unfinished run (no budget.json, or one stopped by a signal) continues from its last complete
    checkpoint without being asked; a finished run, or anything else, is refused unless replaced."""
    if resume and overwrite:
        raise ValueError("--overwrite_output_dir and --resume_from_checkpoint contradict each other: pass one.")
    if overwrite:
        check_holds_run(output_dir, (BUDGET_FILE, curve_file))
        return None
    if resume and resume.lower() not in ("true", "latest"):
        return resume
    checkpoint = last_checkpoint(output_dir, REQUIRED_CHECKPOINT_FILES)
    if resume:
        if not checkpoint:
            raise FileNotFoundError(f"No complete checkpoint-* folder in {output_dir} to resume from.")
        return checkpoint
    names = entries(output_dir)
    if not names:
        return None
    # Only the stop reason matters here, and a folder left by a run that died while writing may hold a partial record.
    budget_file = output_dir / BUDGET_FILE
    stop_reason = read_json(budget_file).get("stop_reason") if budget_file.is_file() else "signal"
    if stop_reason != "signal":
        raise FileExistsError(
            f"{output_dir} already holds a finished run (stop_reason {stop_reason!r}); pass --overwrite_output_dir to "
            "replace it, or --resume_from_checkpoint with a larger --budget to continue it."
        )
    if checkpoint:
        return checkpoint
    # What a run that died before its first checkpoint leaves: its curve, and writes and saves cut short.
    partial_run = (Path(curve_file).stem, f"{STAGING_PREFIX}checkpoint-", f".{BUDGET_FILE}")
    if all(name.startswith(partial_run) for name in names):
        return None  # it starts again
    raise FileExistsError(
        f"{output_dir} already holds {describe(names)} and no run to resume; pass --overwrite_output_dir to "
        "replace a run of this project, or choose another --output_dir."
    )


def check_budget_arguments(budget_args: BudgetArguments, training_args: TrainingArguments) -> tuple[float, str]:
    """The budget in seconds and the schedule's shape, once the budget, schedule and DeepSpeed settings agree."""
    budget_s = parse_budget(budget_args.budget)
    deepspeed_mismatches = getattr(getattr(training_args, "hf_deepspeed_config", None), "mismatches", None)
    if deepspeed_mismatches:
        raise ValueError(
            "The DeepSpeed config disagrees with the training arguments:\n"
            + "\n".join(deepspeed_mismatches)
            + "\nSet those keys to 'auto' or to the same values."
        )
    shape = schedule_shape(training_args.lr_scheduler_type)
    if shape not in BUDGET_SCHEDULE_SHAPES and training_args.max_steps <= 0:
        raise ValueError(
            f"A budget schedule is {' or '.join(BUDGET_SCHEDULE_SHAPES)}; got --lr_scheduler_type {shape}."
        )
    if training_args.max_steps <= 0 and not 0 <= training_args.warmup_steps < 1:
        raise ValueError("With a budget schedule, --warmup_steps is a fraction of the budget in [0, 1).")
    return budget_s, shape


def training_settings(training_args: TrainingArguments, data_args: DataArguments, shape: str) -> dict:
    """What the run record keeps of the training arguments (the precision accelerate ran is added after training:
    `settings_in_use`)."""
    samples_per_step = (
        training_args.per_device_train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
    )
    return {
        "samples_per_step": samples_per_step,
        "max_seq_length": data_args.max_seq_length,
        "learning_rate": training_args.learning_rate,
        "schedule": f"{'steps' if training_args.max_steps > 0 else 'budget'}-{shape}",
        "data_seed": training_args.data_seed,
        "held_out_seed": data_args.held_out_seed,
    }


def budget_callback(
    budget_s: float,
    budget_args: BudgetArguments,
    training_args: TrainingArguments,
    checkpoint: str | None,
    now,
    record,
    steps: int | None = None,
) -> TimeBudgetCallback:
    """The budget's callback, which adds `record` (the run record) to what it sums up. Without --max_steps the budget,
    not a step count, ends training; a resumed run continues with the budget it had left and does not evaluate again
    at its start. With calibrated `steps` (and `now` a `CalibratedClock`), those steps end training and the budget
    clock reaches the budget at the last one."""
    budget = TimeBudgetCallback(
        budget_s,
        budget_args.num_eval_points,
        drives_schedule=training_args.max_steps <= 0,
        now=now,
        run_info={"run_record": record},
        save_at_eval_points=budget_args.save_at_eval_points,
    )
    if steps:
        training_args.max_steps = steps
    elif training_args.max_steps <= 0:
        training_args.max_steps = sys.maxsize // 2
    if checkpoint:
        budget.load_state(checkpoint)
        training_args.eval_on_start = False
    return budget


def curve_until(points: list[dict], checkpoint: str | None) -> list[dict]:
    """A resumed run's curve up to its checkpoint (a fresh run starts an empty one)."""
    if not checkpoint:
        return []
    return [point for point in points if point["step"] <= int(Path(checkpoint).name.split("-")[1])]


@contextmanager
def claimed_output_dir(
    training_args: TrainingArguments, overwrite: bool, curve_file: str = CURVE_FILE
) -> Iterator[str | None]:
    """Holds the output directory's lock for the body and yields the checkpoint the run continues from (None: a fresh
    start; see `resume_point`). The main process first replaces a run (--overwrite_output_dir) and removes
    checkpoints cut short."""
    output_dir = Path(training_args.output_dir)
    is_main_process = training_args.process_index == 0
    with claim_output_dir(output_dir, is_main_process):
        checkpoint = resume_point(output_dir, training_args.resume_from_checkpoint, overwrite, curve_file)
        if is_main_process:
            if overwrite:
                replace_run(output_dir, (BUDGET_FILE, curve_file))
            for incomplete in incomplete_checkpoints(output_dir):
                shutil.rmtree(incomplete)
            if checkpoint:
                print(f"Resuming from {checkpoint}.", flush=True)
        yield checkpoint


def innermost_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's and DeepSpeed's wrappers."""
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer


def settings_in_use(trainer: BudgetTrainer) -> dict:
    """Precision, compilation and optimizer as the run really had them: accelerate's state (which an accelerate
    config or DeepSpeed may have set), not the command-line flags."""
    backend = trainer.accelerator.state.dynamo_plugin.backend.value.lower()
    optimizer = None
    if trainer.optimizer is not None:  # None when a run resumed from its final checkpoint takes no step
        inner = innermost_optimizer(trainer.optimizer)
        optimizer = type(inner).__name__ + (" (fused)" if inner.defaults.get("fused") else "")
    return {
        "mixed_precision": trainer.accelerator.mixed_precision,
        "torch_compile": None if backend == "no" else backend,
        "optimizer": optimizer,
    }


def calibration_info(budget_args, model_args, data_args, training_args, budget_s: float) -> dict | None:
    """With --calibration: the budget, its calibrated step count for this variant, and the record's file and sha256,
    after checking the record was measured at this run's settings."""
    if not budget_args.calibration:
        return None
    if training_args.max_steps > 0:
        raise ValueError("--calibration turns --budget into a step count; drop --max_steps.")
    record = load_record(budget_args.calibration)
    settings = run_settings(
        size=model_args.size or "mini",
        config_overrides=model_args.config_overrides,
        per_device_train_batch_size=training_args.per_device_train_batch_size,
        max_seq_length=data_args.max_seq_length,
        # Resolved as the Trainer's accelerator will run it: --bf16/--fp16, else accelerate's config.
        precision=precision_name(training_args.mixed_precision),
        device_type=training_args.device.type,
        threads=torch.get_num_threads(),
        world_size=training_args.world_size,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
    )
    check_settings(record, settings, model_args.variant)
    return {
        "file": str(budget_args.calibration),
        "sha256": file_sha256(budget_args.calibration),
        "budget_s": budget_s,
        "steps": calibrated_steps(record, model_args.variant, budget_s),
    }


def parse_args(argv: list[str] | None):
    return recipe_arguments.parse_args((ModelArguments, DataArguments, BudgetArguments, PretrainingArguments), argv)


def recorded_arguments(model_args: ModelArguments, data_args: DataArguments, budget_args: BudgetArguments) -> dict:
    """The arguments as budget.json records them."""
    return plain({"model": asdict(model_args), "data": asdict(data_args), "budget": asdict(budget_args)})


def planned_key(argv: list[str]) -> PretrainingKey:
    """The key of the run these arguments would make, without running it (`PretrainingRecord.key()` once it ran)."""
    model_args, data_args, budget_args, training_args = parse_args(argv)
    settings = training_settings(training_args, data_args, schedule_shape(training_args.lr_scheduler_type))
    return PretrainingKey(
        git_commit=git_commit(),
        versions=package_versions(),
        data_sha256=planned_fingerprint(
            corpus_spec(data_args),
            load_tokenizer(model_args, resolve_start(model_args)),
            data_args.max_seq_length,
            data_args.mlm_probability,
        ),
        budget_s=parse_budget(budget_args.budget),
        seed=training_args.seed,
        arguments=recorded_arguments(model_args, data_args, budget_args),
        samples_per_step=settings["samples_per_step"],
        learning_rate=settings["learning_rate"],
    )


def main(argv: list[str] | None = None, now=time.monotonic, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Run the recipe; returns what budget.json records. `now` (the budget clock's time source) and extra Trainer
    `callbacks` are for programmatic use and tests."""
    model_args, data_args, budget_args, training_args = parse_args(argv)

    # Every argument is checked before anything is written.
    budget_s, shape = check_budget_arguments(budget_args, training_args)
    start = resolve_start(model_args)
    positions = requested_config(model_args, start=start)[
        "max_position_embeddings"
    ]  # names and overrides checked early
    if positions < data_args.max_seq_length:
        raise ValueError(
            f"--max_seq_length {data_args.max_seq_length} exceeds the model's max_position_embeddings {positions}."
        )
    if training_args.data_seed is None:
        raise ValueError("--data_seed must be set: the training order and masks follow it, not --seed.")
    calibration = calibration_info(budget_args, model_args, data_args, training_args, budget_s)
    corpus = corpus_spec(data_args)
    corpus.validate()
    with claimed_output_dir(training_args, budget_args.overwrite_output_dir) as checkpoint:
        return pretrain(
            model_args, data_args, budget_args, training_args, budget_s, shape, corpus, checkpoint, now, callbacks,
            calibration, start,
        )  # fmt: skip


def pretrain(
    model_args,
    data_args,
    budget_args,
    training_args,
    budget_s,
    shape,
    corpus,
    checkpoint,
    now,
    callbacks,
    calibration,
    start,
) -> dict:
    """The recipe once its arguments are checked and its output directory claimed (see `main`)."""
    output_dir = Path(training_args.output_dir)
    tokenizer = load_tokenizer(model_args, start)
    if checkpoint:
        check_resumable(checkpoint, requested_config(model_args, tokenizer, start), REQUIRED_CHECKPOINT_FILES)
    preparation_started = time.monotonic()
    with training_args.main_process_first(desc="preparing data"):
        data = prepare(
            corpus, tokenizer, data_args.max_seq_length, data_args.mlm_probability, data_args.preprocessing_num_workers
        )
    data_preparation_s = time.monotonic() - preparation_started
    held_out = data.held_out
    if data_args.max_eval_samples:
        held_out = held_out.select(range(min(data_args.max_eval_samples, len(held_out))))
    set_seed(training_args.seed)  # the initial weights follow --seed, on any number of ranks
    model = build_model(model_args, tokenizer, start)
    model.config.sparse_prediction = True  # this recipe's loss needs the MLM head at masked positions only

    world_size = training_args.world_size
    settings = training_settings(training_args, data_args, shape)
    samples_per_step = settings["samples_per_step"]
    run_record = RunRecord.collect(
        config=model.config.to_dict(),
        data_sha256=data.fingerprint,
        budget_s=budget_s,
        seed=training_args.seed,
        training={
            **settings,
            "init_from": model_args.init_from,
            "model_name_or_path": model_args.model_name_or_path,
            "model_revision": model_args.model_revision,
            **({"calibration": calibration} if calibration else {}),
        },
        device=training_args.device,
        world_size=world_size,
    )
    step_clock = CalibratedClock(budget_s, calibration["steps"]) if calibration else None
    budget = budget_callback(
        budget_s,
        budget_args,
        training_args,
        checkpoint,
        step_clock or now,
        run_record,
        calibration and calibration["steps"],
    )
    mlm_accuracy = evaluate.load(str(METRICS_DIR / "mlm_accuracy"))
    previous_points = curve_until(load_curve(output_dir), checkpoint)
    title = f"{model.config.variant} ({model.config.size}), budget {budget_args.budget}"
    tokens_per_step = samples_per_step * data_args.max_seq_length
    curve = MlmCurveCallback(budget.clock, output_dir, tokens_per_step, previous_points, title)
    trainer = BudgetTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=held_out,
        data_collator=HeldOutCollator(
            tokenizer, data_args.mlm_probability, training_args.data_seed + training_args.process_index
        ),
        processing_class=tokenizer,
        compute_metrics=lambda p: mlm_accuracy.compute(
            predictions=p.predictions, references=p.label_ids, inputs=p.inputs, mask_token_id=tokenizer.mask_token_id
        ),
        preprocess_logits_for_metrics=predictions_at_labels,
        callbacks=[*([step_clock] if step_clock else []), curve, *callbacks],
        budget_callback=budget,
        final_lr_ratio=budget_args.final_lr_ratio,
    )

    flops_per_token = mlm_training_flops_per_token(model, data_args.max_seq_length, data_args.mlm_probability)

    trainer.train(resume_from_checkpoint=checkpoint)
    run_record.training.update(settings_in_use(trainer))
    if budget.stop_reason != "signal":
        trainer.save_model()

    record = PretrainingRecord(
        **budget.record(
            trainer.state,
            samples_per_step=samples_per_step,
            tokens_per_sample=data_args.max_seq_length,
            data_preparation_s=data_preparation_s,
            device=run_record.device,
            threads=run_record.threads,
            world_size=world_size,
            variant=model.config.variant,
            size=model.config.size,
            budget=budget_args.budget,
            arguments=recorded_arguments(model_args, data_args, budget_args),
        )
    )
    if trainer.is_world_process_zero():
        # The peak is measured on the device, once per machine (cached), and only by the process that writes.
        record = replace(
            record,
            utilisation=utilisation_record(
                record.tokens_per_s,
                flops_per_token,
                training_args.device,
                MIXED_PRECISION_DTYPES[run_record.training["mixed_precision"]],
                devices=world_size,
            ),
        )
        record.write(output_dir)
        print(
            f"Stopped ({record.stop_reason}) after {record.elapsed_s:.1f} s of a {budget_s:.0f} s budget: "
            f"{record.steps} steps, {record.tokens_seen / 1e6:.2f}M tokens, {record.tokens_per_s:.0f} tokens/s, "
            f"MFU {100 * record.utilisation['mfu']:.1f}% of the measured {record.utilisation['matmul_dtype']} matmul peak. "
            f"Saved to {output_dir} ({CURVE_FILE}, mlm_curve.png, {PretrainingRecord.FILE}).",
            flush=True,
        )
    return record.to_dict()


if __name__ == "__main__":
    main()
