"""What pretraining and distillation share around the Trainer: the budget callback a run starts with (resumed or not,
on the clock or on calibrated steps), the settings the run really had, and the record of what its budget bought."""

from __future__ import annotations

import sys

import torch
from transformers import TrainingArguments

from recipes.records import RunRecord
from recipes.training.budget import BudgetTrainer, TimeBudgetCallback
from recipes.training.pretrain_arguments import BudgetArguments


def spent_record(record_type, budget: TimeBudgetCallback, trainer, run_record: RunRecord, run: dict, **extra):
    """What the budget bought, as the run's record type (pretraining or distillation): the fields both share, from
    the budget's sums and `run` (samples_per_step, max_seq_length, data_preparation_s, world_size, config, budget), and
    the record type's own `extra` fields."""
    return record_type(
        **budget.record(
            trainer.state,
            samples_per_step=run["samples_per_step"],
            tokens_per_sample=run["max_seq_length"],
            data_preparation_s=run["data_preparation_s"],
            device=run_record.device,
            threads=run_record.threads,
            world_size=run["world_size"],
            variant=run["config"].variant,
            size=run["config"].size,
            budget=run["budget"],
            **extra,
        )
    )


def resumed_clause(resumed_at: list[int]) -> str:
    """', resumed at step 754' for a run resumed from a checkpoint; '' for an uninterrupted one."""
    if not resumed_at:
        return ""
    return f", resumed at step{'s' if len(resumed_at) > 1 else ''} {', '.join(map(str, resumed_at))}"


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


def innermost_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's and DeepSpeed's wrappers."""
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer


def settings_in_use(trainer: BudgetTrainer) -> dict:
    """Precision, compilation, optimizer and distribution as the run really had them: accelerate's state (which an
    accelerate config or DeepSpeed may have set), not the command-line flags."""
    backend = trainer.accelerator.state.dynamo_plugin.backend.value.lower()
    optimizer = None
    if trainer.optimizer is not None:  # None when a run resumed from its final checkpoint takes no step
        inner = innermost_optimizer(trainer.optimizer)
        optimizer = type(inner).__name__ + (" (fused)" if inner.defaults.get("fused") else "")
    return {
        "mixed_precision": trainer.accelerator.mixed_precision,
        "torch_compile": None if backend == "no" else backend,
        "optimizer": optimizer,
        "distributed_type": trainer.accelerator.distributed_type.value,  # NO, MULTI_CPU, MULTI_GPU, DEEPSPEED, ...
    }
