"""A pretraining command as the run it will make, before anything runs: its calibrated step count, its identity (what
shapes its result, `run.json`) and the key its record will carry (how a study planner knows it is done and current)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from recipes.data.corpus import planned_fingerprint
from recipes.environment import git_commit, package_versions
from recipes.models.starting_model import load_tokenizer, resolve_start
from recipes.records import PretrainingKey, RunIdentity
from recipes.run_folder.checkpoints import comparable_config
from recipes.training.arguments import run_conditions, trajectory_settings
from recipes.training.calibration import (
    calibrated_steps,
    check_settings,
    file_sha256,
    load_record,
    precision_name,
    run_settings,
)
from recipes.training.clock import parse_budget, schedule_shape
from recipes.training.pretrain_arguments import (
    corpus_spec,
    parse_args,
    recorded_arguments,
    train_token_cap,
    training_mlm_probability,
    training_settings,
)


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
        pretraining_dropout=model_args.pretraining_dropout,
        mlm_probability=training_mlm_probability(data_args),
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


def planned_key(argv: list[str]) -> PretrainingKey:
    """The key of the run these arguments would make, without running it (`PretrainingRecord.key()` once it ran)."""
    model_args, data_args, budget_args, training_args = parse_args(argv)
    settings = training_settings(training_args, data_args, schedule_shape(training_args.lr_scheduler_type))
    calibration = calibration_info(budget_args, model_args, data_args, training_args, parse_budget(budget_args.budget))
    return PretrainingKey(
        git_commit=git_commit(),
        versions=package_versions(),
        data_sha256=planned_fingerprint(
            corpus_spec(data_args),
            load_tokenizer(model_args, resolve_start(model_args)),
            data_args.max_seq_length,
            data_args.mlm_probability,
            train_token_cap(data_args, calibration, settings["samples_per_step"]),
        ),
        budget_s=parse_budget(budget_args.budget),
        seed=training_args.seed,
        arguments=recorded_arguments(model_args, data_args, budget_args),
        samples_per_step=settings["samples_per_step"],
        learning_rate=settings["learning_rate"],
    )


def pretraining_identity(
    model_args,
    data_args,
    budget_args,
    training_args,
    config: dict,
    data_fingerprint: str | None,
    budget_s: float,
    calibration: dict | None,
) -> RunIdentity:
    """What shapes this run (the resolved config, the data and its fingerprint, the trajectory's training arguments,
    the budget), and the conditions of this command."""
    resolved_in_config = ("config_overrides", "drop_mask", "pretraining_dropout")
    return RunIdentity(
        recipe="pretraining",
        shapes={
            "config": comparable_config(config),
            "model": {name: value for name, value in asdict(model_args).items() if name not in resolved_in_config},
            "data": {
                **{name: value for name, value in asdict(data_args).items() if name != "preprocessing_num_workers"},
                "fingerprint": data_fingerprint,
            },
            "budget": {
                "budget_s": budget_s,
                "final_lr_ratio": budget_args.final_lr_ratio,
                "calibration": calibration and {"sha256": calibration["sha256"], "steps": calibration["steps"]},
            },
            "training": trajectory_settings(training_args),
        },
        conditions=run_conditions(
            training_args,
            num_eval_points=budget_args.num_eval_points,
            save_at_eval_points=budget_args.save_at_eval_points,
        ),
    )
