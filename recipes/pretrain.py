"""Pretrain a HybridBERT variant with masked language modelling under a wall-clock budget.

    accelerate launch recipes/pretrain.py --variant hbert-v1 --size mini --budget 10m --output_dir runs/hbert-v1-mini-10m
    python recipes/pretrain.py ...   # the same, one process

The budget is wall-clock seconds of training (see recipes/budget.py): the clock starts at the first step, evaluation
and checkpoint saving pause it, it is checked every step and agreed across ranks, and the same elapsed time drives the
learning rate (warmup, then decay to its end value exactly at the deadline). `--max_steps` switches to a step-based
schedule. The output directory is a `save_pretrained` folder (loadable with `trust_remote_code=True`) plus
`budget.json` (what was spent and the run record) and `mlm_curve.json/png`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
from recipes.arguments import RecipeTrainingArguments
from recipes.budget import (
    BUDGET_SCHEDULE_SHAPES,
    BudgetTrainer,
    TimeBudgetCallback,
    parse_budget,
    schedule_shape,
)
from recipes.curves import CURVE_FILE, EvaluationCurveCallback, load_curve
from recipes.data import OFFLINE_CORPORA, CorpusSpec, planned_fingerprint, prepare
from recipes.environment import git_commit, package_versions
from recipes.records import PretrainingKey, PretrainingRecord, RunRecord, plain

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


@dataclass
class ModelArguments:
    variant: str = field(default="bert", metadata={"help": "bert, addbert, hbert-v1, hbert-v2 or pool-hybrid"})
    size: str | None = field(default=None, metadata={"help": "tiny, mini, small, minilm or base (default mini)"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields to override, e.g. 'hidden_dropout_prob=0.0,num_hidden_layers=6'"}
    )
    drop_mask: bool = field(default=False, metadata={"help": "DropMask: [MASK] tokens are not keys of any mixer"})
    init_from: str | None = field(
        default=None,
        metadata={"help": "Initialise from an HF BERT directory, or 'minilm' (the pinned all-MiniLM-L6-v2), HBERT §4.4"},
    )
    copy_ffn_and_norms: bool = field(
        default=True, metadata={"help": "With --init_from: also copy FFNs and norms that have a counterpart (false: embeddings and self-attention only)"}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer directory or Hub id (default: the embedded bert-base-uncased)"}
    )


@dataclass
class DataArguments:
    dataset: str | None = field(default=None, metadata={"help": f"Offline corpus: {', '.join(OFFLINE_CORPORA)} (default wikitext-2-raw)"})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with a 'text' column (needs a network)"})
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(default=None, metadata={"help": "A text file, one document per line"})
    validation_file: str | None = field(default=None)
    validation_split_percentage: float = field(default=5.0, metadata={"help": "Held-out share when the source has no validation split"})
    max_seq_length: int = 128
    mlm_probability: float = 0.15
    max_eval_samples: int | None = field(default=512, metadata={"help": "Blocks of the held-out set evaluated (None: all)"})


@dataclass
class BudgetArguments:
    budget: str = field(default="10m", metadata={"help": "Wall-clock training budget: 90s, 10m, 2h, 1d, 1h30m"})
    num_eval_points: int = field(default=10, metadata={"help": "Evaluations at evenly spaced points of the budget"})
    final_lr_ratio: float = field(default=0.0, metadata={"help": "LR at the deadline, as a fraction of the peak"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an output directory holding another run"})


@dataclass
class PretrainingArguments(RecipeTrainingArguments):
    """TrainingArguments with this recipe's defaults (HBERT §4.2: Adam, lr 1e-4)."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: float = 0.05
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    logging_steps: float = 10
    eval_on_start: bool = True


class HeldOutCollator:
    """Masks training batches on the fly; passes the pre-masked held-out blocks (they carry labels) through."""

    def __init__(self, tokenizer, mlm_probability: float):
        self.masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)

    def __call__(self, examples):
        return default_data_collator(examples) if "labels" in examples[0] else self.masking(examples)


def predictions_at_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Argmax token ids laid out like `labels` (-100 elsewhere), from sparse or full MLM logits, so full-vocabulary
    logits are never accumulated over the evaluation set."""
    labelled = labels != -100
    predictions = torch.full_like(labels, -100)
    predictions[labelled] = logits.argmax(-1) if logits.dim() == 2 else logits.argmax(-1)[labelled]
    return predictions


class MlmCurveCallback(EvaluationCurveCallback):
    """The held-out MLM accuracy curve (mlm_curve.json/png)."""

    def describe(self, point: dict) -> str:
        return (
            f"{point['tokens_seen'] / 1e6:.2f}M tokens: MLM accuracy {100 * point['accuracy']:.2f}%, loss {point['loss']:.3f}"
        )


def parse_overrides(text: str | None) -> dict:
    """'a=1,b=0.5,c=true' → typed values (JSON where it parses, else the string)."""
    overrides = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ValueError(f"--config_overrides item {item!r} is not key=value.")
        key, raw = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def load_tokenizer(model_args: ModelArguments):
    if model_args.tokenizer_name:
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        tokenizer.model_max_length = min(tokenizer.model_max_length, 512)
        return tokenizer
    return assets.default_tokenizer()


def corpus_spec(data_args: DataArguments, seed: int) -> CorpusSpec:
    """The text source the arguments name (the embedded WikiText-2 when they name none)."""
    return CorpusSpec(
        dataset=data_args.dataset or (None if data_args.dataset_name or data_args.train_file else "wikitext-2-raw"),
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        validation_split_percentage=data_args.validation_split_percentage,
        seed=seed,
    )


def build_model(model_args: ModelArguments, tokenizer) -> HybridBertForMaskedLM:
    """A fresh variant, or one initialised from a BERT; token ids and vocabulary size come from the tokenizer."""
    fields = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "drop_mask": model_args.drop_mask,
        **parse_overrides(model_args.config_overrides),
    }
    if model_args.init_from:
        source = assets.fetch(assets.NAMED_CHECKPOINTS[model_args.init_from]) if model_args.init_from in assets.NAMED_CHECKPOINTS else model_args.init_from
        model = HybridBertForMaskedLM.from_bert(
            source, variant=model_args.variant, copy_ffn_and_norms=model_args.copy_ffn_and_norms, **fields
        )
        if model_args.size and model.config.size != model_args.size:
            raise ValueError(f"--size {model_args.size} does not match the --init_from model (size {model.config.size}).")
        return model
    config = HybridBertConfig.from_variant(model_args.variant, size=model_args.size or "mini", **fields)
    return HybridBertForMaskedLM(config)


def check_output_dir(output_dir: Path, overwrite: bool, resuming: bool) -> None:
    if resuming or not output_dir.exists() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a run; pass --overwrite_output_dir to replace it "
            "or --resume_from_checkpoint to continue it."
        )


def latest_checkpoint(output_dir: Path, requested: str | bool) -> str:
    if isinstance(requested, str) and requested.lower() not in ("true", "latest"):
        return requested
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        raise FileNotFoundError(f"No checkpoint-* folder in {output_dir} to resume from.")
    return str(checkpoints[-1])


def check_budget_arguments(budget_args: BudgetArguments, training_args: TrainingArguments) -> tuple[float, str]:
    """The budget in seconds and the schedule's shape, once the budget, schedule and DeepSpeed settings agree."""
    budget_s = parse_budget(budget_args.budget)
    deepspeed_mismatches = getattr(getattr(training_args, "hf_deepspeed_config", None), "mismatches", None)
    if deepspeed_mismatches:
        raise ValueError(
            "The DeepSpeed config disagrees with the training arguments:\n" + "\n".join(deepspeed_mismatches)
            + "\nSet those keys to 'auto' or to the same values."
        )
    shape = schedule_shape(training_args.lr_scheduler_type)
    if shape not in BUDGET_SCHEDULE_SHAPES and training_args.max_steps <= 0:
        raise ValueError(f"A budget schedule is {' or '.join(BUDGET_SCHEDULE_SHAPES)}; got --lr_scheduler_type {shape}.")
    if training_args.max_steps <= 0 and not 0 <= training_args.warmup_steps < 1:
        raise ValueError("With a budget schedule, --warmup_steps is a fraction of the budget in [0, 1).")
    return budget_s, shape


def training_settings(training_args: TrainingArguments, data_args: DataArguments, shape: str) -> dict:
    """What the run record keeps of the training arguments."""
    samples_per_step = (
        training_args.per_device_train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
    )
    return {
        "samples_per_step": samples_per_step,
        "max_seq_length": data_args.max_seq_length,
        "learning_rate": training_args.learning_rate,
        "schedule": f"{'steps' if training_args.max_steps > 0 else 'budget'}-{shape}",
        "bf16": training_args.bf16,
    }


def budget_callback(
    budget_s: float, budget_args: BudgetArguments, training_args: TrainingArguments, checkpoint: str | None, now, record
) -> TimeBudgetCallback:
    """The budget's callback, which adds `record` (the run record) to what it sums up. Without --max_steps the budget,
    not a step count, ends training; a resumed run continues with the budget it had left and does not evaluate again
    at its start."""
    budget = TimeBudgetCallback(
        budget_s, budget_args.num_eval_points, drives_schedule=training_args.max_steps <= 0, now=now, run_info={"run_record": record}
    )
    if training_args.max_steps <= 0:
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
            corpus_spec(data_args, training_args.seed),
            load_tokenizer(model_args),
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
    if model_args.init_from and model_args.init_from not in assets.NAMED_CHECKPOINTS and not Path(model_args.init_from).is_dir():
        raise FileNotFoundError(f"--init_from {model_args.init_from!r} is neither a directory nor one of {list(assets.NAMED_CHECKPOINTS)}.")
    HybridBertConfig.from_variant(model_args.variant, size=model_args.size or "mini")  # names checked early
    corpus = corpus_spec(data_args, training_args.seed)
    corpus.validate()
    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    check_output_dir(output_dir, budget_args.overwrite_output_dir, resuming=bool(resume))
    checkpoint = latest_checkpoint(output_dir, resume) if resume else None

    tokenizer = load_tokenizer(model_args)
    preparation_started = time.monotonic()
    with training_args.main_process_first(desc="preparing data"):
        data = prepare(corpus, tokenizer, data_args.max_seq_length, data_args.mlm_probability)
    data_preparation_s = time.monotonic() - preparation_started
    held_out = data.held_out
    if data_args.max_eval_samples:
        held_out = held_out.select(range(min(data_args.max_eval_samples, len(held_out))))
    set_seed(training_args.seed)  # the initial weights follow --seed, on any number of ranks
    model = build_model(model_args, tokenizer)

    if budget_args.overwrite_output_dir and not resume and training_args.process_index == 0:
        shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)

    world_size = training_args.world_size
    settings = training_settings(training_args, data_args, shape)
    samples_per_step = settings["samples_per_step"]
    run_record = RunRecord.collect(
        config=model.config.to_dict(),
        data_sha256=data.fingerprint,
        budget_s=budget_s,
        seed=training_args.seed,
        training={**settings, "init_from": model_args.init_from},
        device=training_args.device,
        world_size=world_size,
    )
    budget = budget_callback(budget_s, budget_args, training_args, checkpoint, now, run_record)
    mlm_accuracy = evaluate.load(str(METRICS_DIR / "mlm_accuracy"))
    previous_points = curve_until(load_curve(output_dir), checkpoint)
    title = f"{model.config.variant} ({model.config.size}), budget {budget_args.budget}"
    curve = MlmCurveCallback(budget.clock, output_dir, samples_per_step * data_args.max_seq_length, previous_points, title)
    trainer = BudgetTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=held_out,
        data_collator=HeldOutCollator(tokenizer, data_args.mlm_probability),
        processing_class=tokenizer,
        compute_metrics=lambda p: mlm_accuracy.compute(predictions=p.predictions, references=p.label_ids),
        preprocess_logits_for_metrics=predictions_at_labels,
        callbacks=[curve, *callbacks],
        budget_callback=budget,
        final_lr_ratio=budget_args.final_lr_ratio,
    )

    trainer.train(resume_from_checkpoint=checkpoint)
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
        record.write(output_dir)
        print(
            f"Stopped ({record.stop_reason}) after {record.elapsed_s:.1f} s of a {budget_s:.0f} s budget: "
            f"{record.steps} steps, {record.tokens_seen / 1e6:.2f}M tokens, {record.tokens_per_s:.0f} tokens/s. "
            f"Saved to {output_dir} ({CURVE_FILE}, mlm_curve.png, {PretrainingRecord.FILE}).",
            flush=True,
        )
    return record.to_dict()

if __name__ == "__main__":
    main()
