"""Pretrain a HybridBERT variant with masked language modelling under a wall-clock budget.

    accelerate launch recipes/pretrain.py --variant hbert-v1 --size mini --budget 10m --output_dir runs/hbert-v1-mini-10m
    python recipes/pretrain.py ...   # the same, one process
    python recipes/pretrain.py --model_name_or_path RUN_DIR|ORG/NAME --train_file my_corpus.txt --budget 1h ...

The last continues pretraining a HybridBERT checkpoint (a folder or a Hub repo id, `--model_revision` for a branch) on
the user's text (`--text_column_name` for a .csv/.json file or a Hub dataset) under a new budget.

The budget is wall-clock seconds of training (see recipes/training/budget.py): the clock starts at the first step, evaluation
and checkpoint saving pause it, it is checked every step and agreed across ranks, and the same elapsed time drives the
learning rate (warmup, then decay to its end value exactly at the deadline). `--max_steps` switches to a step-based
schedule. `--calibration FILE` (a record of `python -m recipes.training.calibration`) turns the budget into the variant's
calibrated step count, and the schedule and evaluation points follow the steps: a rerun makes the same steps on any
load. The held-out split and masks follow `--held_out_seed`, the training order and masks `--data_seed`, neither
`--seed`. The output directory is a `save_pretrained` folder (loadable with `trust_remote_code=True`) plus
`budget.json` (what was spent and the run record) and `mlm_curve.json/png`.

The output directory is the run's own (`recipes/run_folder/claim.py`): locked while the run lives, replaced by
`--overwrite_output_dir` only when it holds a run. A checkpoint is saved atomically at each evaluation point
(`recipes/run_folder/checkpoints.py`), and the same command run again after a crash or kill resumes from the last complete one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import evaluate
from transformers import TrainerCallback, set_seed

from recipes.data.corpus import PreparedData, planned_fingerprint, prepare
from recipes.environment import machine_facts
from recipes.evaluation.held_out import METRICS_DIR, HeldOutCollator, MlmCurveCallback, predictions_at_labels
from recipes.models.starting_model import (
    build_model,
    load_tokenizer,
    requested_config,
    resolve_start,
    set_unigram_decoder_bias,
)
from recipes.records import PretrainingRecord, RunRecord
from recipes.run_folder.checkpoints import check_resumable
from recipes.run_folder.resume import REQUIRED_CHECKPOINT_FILES, claimed_output_dir, curve_until
from recipes.training.arguments import warn_if_bf16_is_emulated
from recipes.training.budget import BudgetTrainer
from recipes.training.calibration import (
    CalibratedClock,
)
from recipes.training.curves import CURVE_FILE, load_curve
from recipes.training.head_warmup import HeadWarmupCallback, check_head_warmup
from recipes.training.mfu import MIXED_PRECISION_DTYPES, mlm_training_flops_per_token, utilisation_record
from recipes.training.pretrain_arguments import (
    check_budget_arguments,
    corpus_spec,
    parse_args,
    recorded_arguments,
    train_token_cap,
    training_mlm_probability,
    training_settings,
)
from recipes.training.pretraining_run import calibration_info, pretraining_identity
from recipes.training.run import budget_callback, resumed_clause, settings_in_use, spent_record


def main(argv: list[str] | None = None, now=time.monotonic, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Run the recipe; returns what budget.json records. `now` (the budget clock's time source) and extra Trainer
    `callbacks` are for programmatic use and tests."""
    model_args, data_args, budget_args, training_args = parse_args(argv)
    warn_if_bf16_is_emulated(training_args.bf16)

    # Every argument is checked before anything is written.
    budget_s, shape = check_budget_arguments(budget_args, training_args)
    start = resolve_start(model_args)
    # The config's field names and overrides are checked here, before data preparation.
    tokenizer = load_tokenizer(model_args, start)
    config = requested_config(model_args, tokenizer, start)
    positions = config["max_position_embeddings"]
    if positions < data_args.max_seq_length:
        raise ValueError(
            f"--max_seq_length {data_args.max_seq_length} exceeds the model's max_position_embeddings {positions}."
        )
    for name in ("mlm_probability", "training_mlm_probability"):
        rate = getattr(data_args, name)
        if rate is not None and not 0 < rate < 1:
            raise ValueError(f"--{name} is a fraction of the tokens in (0, 1); got {rate}.")
    check_head_warmup(model_args.head_warmup_steps, model_args.init_from, training_args)
    if training_args.data_seed is None:
        raise ValueError("--data_seed must be set: the training order and masks follow it, not --seed.")
    calibration = calibration_info(budget_args, model_args, data_args, training_args, budget_s)
    corpus = corpus_spec(data_args)
    corpus.validate()
    samples_per_step = training_settings(training_args, data_args, shape)["samples_per_step"]
    token_cap = train_token_cap(data_args, calibration, samples_per_step)
    if token_cap and data_args.max_train_tokens is None:
        print(
            f"Preparing at most {token_cap:,} training tokens, what the calibrated budget consumes ({calibration['steps']} "
            f"steps × {samples_per_step} blocks of {data_args.max_seq_length}); --max_train_tokens 0 prepares all.",
            flush=True,
        )
    fingerprint = planned_fingerprint(corpus, tokenizer, data_args.max_seq_length, data_args.mlm_probability, token_cap)
    identity = pretraining_identity(
        model_args, data_args, budget_args, training_args, config, fingerprint, budget_s, calibration
    )

    def checked_data(checkpoint: str | None) -> tuple[PreparedData, float]:
        """The checkpoint checked against the requested model and the data prepared, in the claimed folder before
        anything in it changes (a run it replaces is still there if either fails)."""
        if checkpoint:
            check_resumable(checkpoint, config, REQUIRED_CHECKPOINT_FILES)
        started = time.monotonic()
        data = prepare(
            corpus, tokenizer, data_args.max_seq_length, data_args.mlm_probability,
            data_args.preprocessing_num_workers, token_cap,
        )  # fmt: skip
        return data, time.monotonic() - started

    overwrite = budget_args.overwrite_output_dir
    with claimed_output_dir(training_args, overwrite, identity, prepare=checked_data) as (checkpoint, prepared):
        data, data_preparation_s = prepared
        return pretrain(
            model_args, data_args, budget_args, training_args, budget_s, shape, checkpoint, now, callbacks,
            calibration, start, tokenizer, data, data_preparation_s,
        )  # fmt: skip


def pretrain(
    model_args,
    data_args,
    budget_args,
    training_args,
    budget_s,
    shape,
    checkpoint,
    now,
    callbacks,
    calibration,
    start,
    tokenizer,
    data: PreparedData,
    data_preparation_s: float,
) -> dict:
    """The recipe once its arguments are checked, its output directory claimed and its data prepared (see `main`)."""
    output_dir = Path(training_args.output_dir)
    held_out = data.held_out
    if data_args.max_eval_samples:
        held_out = held_out.select(range(min(data_args.max_eval_samples, len(held_out))))
    set_seed(training_args.seed)  # the initial weights follow --seed, on any number of ranks
    model = build_model(model_args, tokenizer, start)
    if model_args.unigram_decoder_bias and not (model_args.init_from or model_args.model_name_or_path):
        set_unigram_decoder_bias(model, data.unigram_counts, tokenizer)
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
            **({"keep_source_settings": True} if model_args.keep_source_settings else {}),
            **({"head_warmup_steps": model_args.head_warmup_steps} if model_args.head_warmup_steps else {}),
            "model_name_or_path": model_args.model_name_or_path,
            "model_revision": model_args.model_revision,
            **({"calibration": calibration} if calibration else {}),
        },
        machine=machine_facts(training_args.device),
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
            tokenizer, training_mlm_probability(data_args), training_args.data_seed + training_args.process_index
        ),
        processing_class=tokenizer,
        compute_metrics=lambda p: mlm_accuracy.compute(
            predictions=p.predictions, references=p.label_ids, inputs=p.inputs, mask_token_id=tokenizer.mask_token_id
        ),
        preprocess_logits_for_metrics=predictions_at_labels,
        callbacks=[
            *([step_clock] if step_clock else []),
            *([HeadWarmupCallback(model, model_args.head_warmup_steps)] if model_args.head_warmup_steps else []),
            curve,
            *callbacks,
        ],
        budget_callback=budget,
        final_lr_ratio=budget_args.final_lr_ratio,
    )

    flops_per_token = mlm_training_flops_per_token(model, data_args.max_seq_length, training_mlm_probability(data_args))

    trainer.train(resume_from_checkpoint=checkpoint)
    run_record.training.update(settings_in_use(trainer))
    if budget.stop_reason != "signal":
        trainer.save_model()

    run = {
        "samples_per_step": samples_per_step,
        "max_seq_length": data_args.max_seq_length,
        "data_preparation_s": data_preparation_s,
        "world_size": world_size,
        "config": model.config,
        "budget": budget_args.budget,
    }
    arguments = recorded_arguments(model_args, data_args, budget_args)
    record = spent_record(PretrainingRecord, budget, trainer, run_record, run, arguments=arguments)
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
            f"Stopped ({record.stop_reason}) after {record.elapsed_s:.1f} s of a {budget_s:.0f} s budget"
            f"{resumed_clause(record.resumed_at)}: "
            f"{record.steps} steps, {record.tokens_seen / 1e6:.2f}M tokens, {record.tokens_per_s:.0f} tokens/s, "
            f"MFU {100 * record.utilisation['mfu']:.1f}% of the measured {record.utilisation['matmul_dtype']} matmul peak. "
            f"Saved to {output_dir} ({CURVE_FILE}, mlm_curve.png, {PretrainingRecord.FILE}).",
            flush=True,
        )
    return record.to_dict()


if __name__ == "__main__":
    main()
