"""Calibrated budgets: a wall-clock budget turned into each variant's step count, from a measured throughput.

    python -m recipes.training.calibration --variants bert hbert-v1 --size mini --per_device_train_batch_size 32 \
        --max_seq_length 128 --output results/calibration/mini-b32-l128.json

Each variant is built as `recipes/pretrain.py` builds it and trained on masked blocks with the recipe's optimizer
(`Trainer.create_optimizer` with `PretrainingArguments`' defaults), gradient clipping and precision. After a few
warm-up steps each, the variants take turns: every round times `steps_per_turn` steps of each variant in turn, so a
change in the machine's load falls on all of them alike, and each variant's throughput is the median over its turns.
The record (JSON) holds the settings it was measured at, per variant the steps/s and tokens/s, and the machine, device,
torch version and time of the measurement.

`recipes/pretrain.py --calibration FILE --budget 10m` then trains for `calibrated_steps(record, variant, 600)` steps
(the budget times the variant's median steps/s, rounded down), with the learning-rate schedule and evaluation points
laid out on those steps, so a rerun makes the same number of steps whatever else the machine is doing. A record is
used only at the settings it was measured at (`run_settings`); any difference is refused.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback

from modeling import HybridBertConfig
from recipes.data.assets import default_tokenizer
from recipes.environment import device_name
from recipes.models.starting_model import build_model
from recipes.records import CalibrationRecord
from recipes.training import arguments as recipe_arguments
from recipes.training.arguments import BF16_HELP, bf16_where_native, warn_if_bf16_is_emulated
from recipes.training.pretrain_arguments import (
    ModelArguments,
    PretrainingArguments,
    parse_args,
    training_mlm_probability,
)


def precision_name(mixed_precision: str) -> str:
    """accelerate's mixed-precision setting ("no", "bf16", "fp16") as a calibration record names it."""
    return "fp32" if mixed_precision == "no" else mixed_precision


def run_settings(
    *,
    size: str,
    config_overrides: str | None,
    pretraining_dropout: float,
    mlm_probability: float,
    per_device_train_batch_size: int,
    max_seq_length: int,
    precision: str,
    device_type: str,
    threads: int,
    world_size: int = 1,
    gradient_accumulation_steps: int = 1,
) -> dict:
    """Everything a step's duration depends on; a calibration record applies to a run only if these are equal."""
    return {
        "size": size,
        "config_overrides": config_overrides or None,
        "pretraining_dropout": pretraining_dropout,
        "mlm_probability": mlm_probability,
        "per_device_train_batch_size": per_device_train_batch_size,
        "max_seq_length": max_seq_length,
        "precision": precision,
        "device_type": device_type,
        "threads": threads,
        "world_size": world_size,
        "gradient_accumulation_steps": gradient_accumulation_steps,
    }


def load_record(path: str | Path) -> CalibrationRecord:
    return CalibrationRecord.read(path)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_settings(record: CalibrationRecord, settings: dict, variant: str) -> None:
    """One error naming every setting where the run differs from the measurement, or the missing variant."""
    differences = [
        f"{name}: measured at {record.settings.get(name)!r}, this run has {value!r}"
        for name, value in settings.items()
        if record.settings.get(name) != value
    ]
    if differences:
        raise ValueError(
            "The calibration record was measured at other settings than this run's:\n  "
            + "\n  ".join(differences)
            + "\nMeasure at the run's settings with `python -m recipes.training.calibration`."
        )
    if variant not in record.variants:
        raise ValueError(f"The calibration record has no variant {variant!r} (it has: {', '.join(record.variants)}).")


def calibrated_steps(record: CalibrationRecord, variant: str, budget_s: float) -> int:
    """The steps `variant` makes in `budget_s` seconds at the record's median throughput (rounded down, at least 1)."""
    return max(1, math.floor(budget_s * record.steps_per_s(variant)))


class CalibratedClock(TrainerCallback):
    """Budget time that advances by `budget_s / steps` per optimizer step and not otherwise: the budget clock of a
    calibrated run (`TimeBudgetCallback(now=clock)`), so the schedule and evaluation points depend on steps alone.
    It must come before the budget callback, which reads it at each optimizer step."""

    def __init__(self, budget_s: float, steps: int):
        self.seconds_per_step = budget_s / steps
        self.steps_done = 0

    def __call__(self) -> float:
        return self.steps_done * self.seconds_per_step

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps_done = state.global_step  # a resumed run continues from its checkpoint's step

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.steps_done += 1


# -- measuring ---------------------------------------------------------------------------------------------------------


@dataclass
class CalibrationArguments:
    variants: list[str] = field(metadata={"help": "Variants to measure, e.g. bert hbert-v1 hbert-v2"})
    output: str = field(metadata={"help": "Where the calibration record (JSON) is written"})
    size: str = field(default="mini", metadata={"help": "Model size, as pretrain.py's --size"})
    config_overrides: str | None = field(default=None, metadata={"help": "As pretrain.py's --config_overrides"})
    pretraining_dropout: float = field(default=0.0, metadata={"help": "As pretrain.py's --pretraining_dropout"})
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Masking rate of the training batches (pretrain.py's training rate)"}
    )
    per_device_train_batch_size: int = 32
    max_seq_length: int = 128
    # pretrain.py's default, so that a calibration made with defaults is one pretrain.py accepts with its defaults
    bf16: bool = field(default=bf16_where_native(), metadata={"help": f"As pretrain.py's --bf16: {BF16_HELP}"})
    use_cpu: bool = field(default=False, metadata={"help": "Measure on the CPU even where an accelerator exists"})
    warmup_steps: int = field(default=3, metadata={"help": "Untimed steps per variant before the turns"})
    rounds: int = field(default=5, metadata={"help": "Timed turns per variant (each variant's median is taken)"})
    steps_per_turn: int = field(default=5, metadata={"help": "Training steps per timed turn"})
    seed: int = 0


class _Trainee:
    """One variant's model, optimizer and batches, stepping exactly as a Trainer training step does."""

    def __init__(self, variant: str, args: CalibrationArguments, tokenizer, device: torch.device, batches: list[dict]):
        self.model = build_model(
            ModelArguments(
                variant=variant,
                size=args.size,
                config_overrides=args.config_overrides,
                pretraining_dropout=args.pretraining_dropout,
            ),
            tokenizer,
        ).to(device)
        self.model.train()
        with tempfile.TemporaryDirectory() as scratch:
            training_args = PretrainingArguments(
                output_dir=scratch, per_device_train_batch_size=args.per_device_train_batch_size, bf16=args.bf16,
                use_cpu=device.type == "cpu",
            )  # fmt: skip
            self.optimizer = Trainer(model=self.model, args=training_args).create_optimizer()
        self.max_grad_norm = training_args.max_grad_norm
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
        self.batches, self.device, self.next_batch = batches, device, 0

    def step(self) -> None:
        batch = {name: tensor.to(self.device) for name, tensor in self.batches[self.next_batch].items()}
        self.next_batch = (self.next_batch + 1) % len(self.batches)
        with self.autocast:
            loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def timed(self, steps: int) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started


def masked_batches(tokenizer, args: CalibrationArguments, count: int) -> list[dict]:
    """Blocks of [CLS] ordinary tokens [SEP], masked by the recipe's collator. A step's cost does not depend on which
    tokens a block holds, only on its shape and the share masked."""
    generator = torch.Generator().manual_seed(args.seed)
    special = set(tokenizer.all_special_ids)
    ordinary = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=args.mlm_probability, seed=args.seed)
    batches = []
    for _ in range(count):
        body = ordinary[
            torch.randint(
                len(ordinary), (args.per_device_train_batch_size, args.max_seq_length - 2), generator=generator
            )
        ]
        cls = torch.full((len(body), 1), tokenizer.cls_token_id)
        sep = torch.full((len(body), 1), tokenizer.sep_token_id)
        batches.append(collator([{"input_ids": row} for row in torch.cat([cls, body, sep], dim=1)]))
    return batches


def _check(args: CalibrationArguments) -> None:
    for variant in args.variants:
        HybridBertConfig.from_variant(variant, size=args.size)  # names checked before anything is built
    if len(set(args.variants)) != len(args.variants):
        raise ValueError(f"--variants names a variant twice: {args.variants}.")
    if min(args.rounds, args.steps_per_turn) < 1 or args.warmup_steps < 0:
        raise ValueError("--rounds and --steps_per_turn must be at least 1, --warmup_steps at least 0.")


def measure(args: CalibrationArguments, tokenizer=None) -> dict:
    """Interleaved turns over the variants; the calibration record."""
    return measure_together([args], tokenizer)[0]


def measure_together(measurements: list[CalibrationArguments], tokenizer=None) -> list[CalibrationRecord]:
    """The records of several measurements (e.g. the arms of a comparison, which differ in their config overrides)
    made as one: every variant of every measurement takes its turn in the same rounds, so a change in the machine's
    speed falls on all alike and the records compare with each other. Rounds, warm-up and turn length are the first
    measurement's."""
    for args in measurements:
        _check(args)
    protocol = measurements[0]
    tokenizer = tokenizer or default_tokenizer()
    device = (
        torch.device("cpu")
        if protocol.use_cpu or not torch.accelerator.is_available()
        else torch.accelerator.current_accelerator()
    )
    trainees = {}
    for index, args in enumerate(measurements):
        batches = masked_batches(tokenizer, args, count=max(1, min(8, protocol.steps_per_turn)))
        for variant in args.variants:
            trainees[index, variant] = _Trainee(variant, args, tokenizer, device, batches)
    for trainee in trainees.values():
        trainee.timed(protocol.warmup_steps)
    keys = list(trainees)
    turns = {key: [] for key in keys}
    for round_index in range(protocol.rounds):
        # Each round starts one turn later, so no variant always runs right after the same other one.
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            turns[key].append(trainees[key].timed(protocol.steps_per_turn))
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for index, args in enumerate(measurements):
        tokens_per_step = args.per_device_train_batch_size * args.max_seq_length
        variants = {}
        for variant in args.variants:
            seconds = turns[index, variant]
            steps_per_s = statistics.median(protocol.steps_per_turn / s for s in seconds)
            variants[variant] = {
                "steps_per_s": steps_per_s,
                "tokens_per_s": steps_per_s * tokens_per_step,
                "turn_seconds": seconds,
            }
        records.append(
            CalibrationRecord(
                settings=run_settings(
                    size=args.size,
                    config_overrides=args.config_overrides,
                    pretraining_dropout=args.pretraining_dropout,
                    mlm_probability=args.mlm_probability,
                    per_device_train_batch_size=args.per_device_train_batch_size,
                    max_seq_length=args.max_seq_length,
                    precision=precision_name("bf16" if args.bf16 else "no"),
                    device_type=device.type,
                    threads=torch.get_num_threads(),
                ),
                protocol={
                    "warmup_steps": protocol.warmup_steps,
                    "rounds": protocol.rounds,
                    "steps_per_turn": protocol.steps_per_turn,
                    "measured_with": len(measurements),
                },
                variants=variants,
                device=device_name(device),
                torch=torch.__version__,
                measured_at=measured_at,
            )
        )
    return records


def argv_matching(pretraining_argv: list[str], output: Path | str) -> list[str]:
    """The calibration command that measures a pretraining command's variant at that command's settings."""
    model_args, data_args, _, training_args = parse_args(pretraining_argv)
    overrides = ["--config_overrides", model_args.config_overrides] if model_args.config_overrides else []
    return [
        "--variants", model_args.variant or "bert", "--size", model_args.size or "mini", *overrides,
        "--pretraining_dropout", str(model_args.pretraining_dropout),
        "--mlm_probability", str(training_mlm_probability(data_args)),
        "--per_device_train_batch_size", str(training_args.per_device_train_batch_size),
        "--max_seq_length", str(data_args.max_seq_length), "--bf16", str(training_args.bf16),
        "--output", str(output),
    ]  # fmt: skip


def calibrate_together(argvs: list[list[str]]) -> list[CalibrationRecord]:
    """Several calibration commands measured as one (`measure_together`); each record goes to its own --output."""
    measurements = [recipe_arguments.parse_args((CalibrationArguments,), argv)[0] for argv in argvs]
    warn_if_bf16_is_emulated(any(args.bf16 for args in measurements))
    records = measure_together(measurements)
    for args, record in zip(measurements, records, strict=True):
        record.write(args.output)
        for variant, measured in record.variants.items():
            print(
                f"{variant} ({args.config_overrides or 'no overrides'}): {measured['steps_per_s']:.3f} steps/s, "
                f"{measured['tokens_per_s']:.0f} tokens/s",
                flush=True,
            )
        print(f"Wrote {args.output}", flush=True)
    return records


def main(argv: list[str] | None = None) -> CalibrationRecord:
    return calibrate_together([sys.argv[1:] if argv is None else argv])[0]


if __name__ == "__main__":
    main()
