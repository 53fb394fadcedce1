"""Heal a hybrid initialised from a pretrained BERT by distillation under a wall-clock budget.

    python recipes/distill.py --teacher minilm --variant hbert-v1 --budget 30m --output_dir runs/hbert-v1-minilm-distill-30m
    accelerate launch recipes/distill.py ...   # the same on several processes, GPUs or DeepSpeed ZeRO-2

The teacher is a pretrained BERT (an HF directory, a Hub id, or `minilm`: the pinned all-MiniLM-L6-v2, offline), frozen.
The student is the hybrid `HybridBertModel.from_bert(teacher, variant)` makes of it (HBERT §4.4: every weight with a
counterpart copied, additive/pooling mixers new), with HBERT's settings or, with `--keep_source_settings`, the teacher's
(post-LN, its activation, learned positions, FFN biases) in the hybrid's layout. It learns on the pretraining corpus
(recipes/data/corpus.py's blocks, unmasked) to reproduce the teacher:

    loss = hidden_states_weight · mean_l mean_tokens (1 − corr(s_l, t_l)) + embedding_weight · mean (1 − cos(ē_s, ē_t))

where s_l, t_l are the student's and teacher's outputs of the embeddings (l = 0) and of every layer (the student's last
after its final norm), corr is the Pearson correlation of the two vectors of one token (= ½ · MSE of their parameter-free
layer-normalised forms), and ē is the mean-pooled last hidden state (the sentence embedding, as all-MiniLM-L6-v2 pools).
Why these terms: the layer-wise term gives every new mixer a local target, the output of the attention layer it
replaced, so an additive layer learns to stand in for that layer; it compares normalised states because a pre-LN or
Sub-LN student's residual stream has another scale than post-LN BERT's normalised one. The sentence term aligns what
a user of the encoder takes. Both are distances of the same kind (one minus a cosine of unit-normalised vectors, in
[0, 2]), hence equal default weights.

The budget (recipes/training/budget.py) counts training wall-clock only; evaluations at evenly spaced points measure the
agreement with the teacher (mean cosine of the sentence embeddings) on a fixed held-out set of the corpus
(`agreement_curve.json/png`). The output directory is a `save_pretrained` folder of the student (`AutoModel` with
`trust_remote_code=True`), also a sentence-transformers folder with mean pooling, plus `budget.json`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import (
    PreTrainedModel,
    TrainerCallback,
    default_data_collator,
    set_seed,
)

from modeling import VARIANTS, HybridBertConfig, HybridBertModel
from recipes.data import assets
from recipes.data.corpus import prepare
from recipes.data.text_sources import source_fingerprint
from recipes.environment import machine_facts
from recipes.models.starting_model import load_tokenizer
from recipes.models.teacher import build_student, load_teacher, teacher_folder, teacher_source
from recipes.records import BUDGET_FILE, DistillationRecord, RunIdentity, RunRecord
from recipes.run_folder.checkpoints import check_resumable
from recipes.run_folder.resume import REQUIRED_CHECKPOINT_FILES, claimed_output_dir, curve_until
from recipes.training import arguments as recipe_arguments
from recipes.training.arguments import run_conditions, trajectory_settings
from recipes.training.curves import load_curve
from recipes.training.distillation import (
    AGREEMENT_CURVE_FILE,
    AgreementCurveCallback,
    DistillationTrainer,
    agreement_metrics,
    unmasked,
)
from recipes.training.pretrain_arguments import (
    BudgetArguments,
    DataArguments,
    ModelArguments,
    PretrainingArguments,
    check_budget_arguments,
    corpus_spec,
    training_settings,
)
from recipes.training.run import budget_callback, resumed_clause, settings_in_use, spent_record


@dataclass
class DistillationArguments:
    teacher: str = field(
        default="minilm",
        metadata={
            "help": f"The pretrained BERT: a directory, a Hub id, or one of {', '.join(assets.NAMED_CHECKPOINTS)}"
        },
    )
    variant: str = field(
        default="hbert-v1",
        metadata={"help": f"The student's layout: one of {', '.join(VARIANTS)}"},
    )
    keep_source_settings: bool = field(
        default=False,
        metadata={
            "help": "The student keeps the teacher's settings (post-LN, activation, learned positions, FFN biases) "
            "in the hybrid's layout, instead of the variant's own (HBERT: Sub-LN, ReLU, sinusoidal, no FFN bias)"
        },
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "Student config fields, e.g. 'hidden_dropout_prob=0.0'"}
    )
    hidden_states_weight: float = field(default=1.0, metadata={"help": "Weight of the layer-wise hidden-state term"})
    embedding_weight: float = field(default=1.0, metadata={"help": "Weight of the mean-pooled sentence-embedding term"})


def parse_args(argv: list[str] | None):
    return recipe_arguments.parse_args(
        (DistillationArguments, DataArguments, BudgetArguments, PretrainingArguments), argv
    )


def main(argv: list[str] | None = None, now=time.monotonic, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Run the recipe; returns what budget.json records. `now` and extra `callbacks` are for tests."""
    args, data_args, budget_args, training_args = parse_args(argv)

    # Every argument is checked before anything is written (a claimed output directory left empty is removed again).
    budget_s, shape = check_budget_arguments(budget_args, training_args)
    if budget_args.calibration:
        raise ValueError("--calibration is a pretraining option (recipes/pretrain.py); distillation runs on the clock.")
    HybridBertConfig.from_variant(args.variant, size="base")  # the variant's name, checked early
    teacher_folder(args.teacher)
    corpus = corpus_spec(data_args)
    corpus.validate()
    identity = RunIdentity(
        recipe="distillation",
        shapes={
            "distillation": asdict(args),
            "data": {
                **{name: value for name, value in asdict(data_args).items() if name != "preprocessing_num_workers"},
                "source": source_fingerprint(corpus),
            },
            "budget": {"budget_s": budget_s, "final_lr_ratio": budget_args.final_lr_ratio},
            "training": trajectory_settings(training_args),
        },
        conditions=run_conditions(training_args, num_eval_points=budget_args.num_eval_points),
    )

    def models_and_data(checkpoint: str | None) -> Prepared:
        """Teacher, student (checked against the checkpoint) and data, in the claimed folder before anything in it
        changes (a run it replaces is still there if any of them fails)."""
        teacher = load_teacher(args.teacher)
        set_seed(training_args.seed)  # the new mixers' initial weights follow --seed
        student, loading_info = build_student(teacher, args.variant, args.keep_source_settings, args.config_overrides)
        if checkpoint:
            check_resumable(checkpoint, student.config.to_dict(), REQUIRED_CHECKPOINT_FILES)
        named_teacher = args.teacher in assets.NAMED_CHECKPOINTS
        tokenizer = load_tokenizer(
            ModelArguments(tokenizer_name=None if named_teacher else teacher_source(args.teacher))
        )
        started = time.monotonic()
        data = prepare(
            corpus, tokenizer, data_args.max_seq_length, data_args.mlm_probability,
            data_args.preprocessing_num_workers, data_args.max_train_tokens or None,
        )  # fmt: skip
        held_out = data.held_out
        if data_args.max_eval_samples:
            held_out = held_out.select(range(min(data_args.max_eval_samples, len(held_out))))
        held_out = unmasked(held_out)
        return Prepared(teacher, student, loading_info, tokenizer, data, held_out, time.monotonic() - started)

    overwrite = budget_args.overwrite_output_dir
    with claimed_output_dir(training_args, overwrite, identity, AGREEMENT_CURVE_FILE, prepare=models_and_data) as (
        checkpoint,
        prepared,
    ):
        return distill(
            args, data_args, budget_args, training_args, budget_s, shape, checkpoint, now, callbacks, prepared
        )


@dataclass(frozen=True)
class Prepared:
    """What a distillation run needs before it trains."""

    teacher: PreTrainedModel
    student: HybridBertModel
    loading_info: dict
    tokenizer: object
    data: object
    held_out: object
    data_preparation_s: float


def distill(args, data_args, budget_args, training_args, budget_s, shape, checkpoint, now, callbacks, prepared) -> dict:
    """The recipe once its arguments are checked, its output directory claimed and its models and data ready."""
    output_dir = Path(training_args.output_dir)
    teacher, student, loading_info = prepared.teacher, prepared.student, prepared.loading_info
    tokenizer, data, held_out = prepared.tokenizer, prepared.data, prepared.held_out
    data_preparation_s = prepared.data_preparation_s

    world_size = training_args.world_size
    settings = training_settings(training_args, data_args, shape)
    samples_per_step = settings["samples_per_step"]
    loss_weights = {"hidden_states": args.hidden_states_weight, "embedding": args.embedding_weight}
    distillation = {
        "teacher": args.teacher,
        "keep_source_settings": args.keep_source_settings,
        "loss_weights": loss_weights,
    }
    run_record = RunRecord.collect(
        config=student.config.to_dict(),
        data_sha256=data.fingerprint,
        budget_s=budget_s,
        seed=training_args.seed,
        training={"objective": "distillation", **distillation, **settings},
        machine=machine_facts(training_args.device),
        world_size=world_size,
    )
    budget = budget_callback(budget_s, budget_args, training_args, checkpoint, now, run_record)
    previous_points = curve_until(load_curve(output_dir, AGREEMENT_CURVE_FILE), checkpoint)
    title = f"{student.config.variant} from {args.teacher}{' (source settings)' if args.keep_source_settings else ''}, budget {budget_args.budget}"
    curve = AgreementCurveCallback(
        budget.clock, output_dir, samples_per_step * data_args.max_seq_length, previous_points, title
    )
    trainer = DistillationTrainer(
        model=student,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=held_out,
        data_collator=default_data_collator,
        processing_class=tokenizer,
        compute_metrics=agreement_metrics,
        callbacks=[curve, *callbacks],
        budget_callback=budget,
        final_lr_ratio=budget_args.final_lr_ratio,
        teacher=teacher,
        hidden_states_weight=args.hidden_states_weight,
        embedding_weight=args.embedding_weight,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    run_record.training.update(settings_in_use(trainer))
    if budget.stop_reason != "signal":
        trainer.save_model()

    run = {
        "samples_per_step": samples_per_step,
        "max_seq_length": data_args.max_seq_length,
        "data_preparation_s": data_preparation_s,
        "world_size": world_size,
        "config": student.config,
        "budget": budget_args.budget,
    }
    agreement = {"start": curve.points[0]["agreement"], "end": curve.points[-1]["agreement"]} if curve.points else None
    initialisation = {key: loading_info[key] for key in ("newly_initialized", "unused", "dropped_biases")}
    record = spent_record(
        DistillationRecord,
        budget,
        trainer,
        run_record,
        run,
        teacher=args.teacher,
        keep_source_settings=args.keep_source_settings,
        agreement=agreement,
        initialisation=initialisation | {"copied": len(loading_info["copied"])},
        arguments={"distillation": asdict(args), "data": asdict(data_args), "budget": asdict(budget_args)},
    )
    spent = record.to_dict()
    if trainer.is_world_process_zero():
        record.write(output_dir)
        agreement = spent["agreement"] or {}
        print(
            f"Stopped ({spent['stop_reason']}) after {spent['elapsed_s']:.1f} s of a {budget_s:.0f} s budget"
            f"{resumed_clause(spent['resumed_at'])}: "
            f"{spent['steps']} steps, {spent['tokens_seen'] / 1e6:.2f}M tokens; agreement with the teacher "
            f"{agreement.get('start', float('nan')):.4f} → {agreement.get('end', float('nan')):.4f}. "
            f"Saved to {output_dir} ({AGREEMENT_CURVE_FILE}, agreement_curve.png, {BUDGET_FILE}).",
            flush=True,
        )
    return spent


if __name__ == "__main__":
    main()
