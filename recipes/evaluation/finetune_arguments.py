"""The fine-tuning recipe's arguments, and the settings a fine-tuning records: with the model, task, init and seed,
what makes two fine-tunings the same (the zoo and the healing study compare them to skip finished work)."""

from __future__ import annotations

from dataclasses import dataclass, field

from modeling import CLASSIFIER_POOLINGS, VARIANTS
from recipes.data import assets
from recipes.data.tasks import TASKS, get_task
from recipes.records import plain
from recipes.training import arguments as recipe_arguments
from recipes.training.arguments import RecipeTrainingArguments

MODEL_TYPES = ("hybrid_bert", "bert")


@dataclass
class ModelArguments:
    model: str = field(
        metadata={
            "help": "A HybridBERT or HF BERT checkpoint: a folder (e.g. a pretraining run), a Hub repo id, or one of "
            f"{list(assets.NAMED_CHECKPOINTS)}"
        }
    )
    model_revision: str | None = field(
        default=None, metadata={"help": "With a Hub repo id: the branch (e.g. step-N), tag or commit (default: main)"}
    )
    from_scratch: bool = field(
        default=False, metadata={"help": "The same architecture from random init: the no-pretraining baseline"}
    )
    convert_to: str | None = field(
        default=None,
        metadata={
            "help": f"With an HF BERT --model: fine-tune the hybrid `from_bert` makes of it (HBERT §4.4: every weight "
            f"with a counterpart copied, the new mixers fresh; not healed) instead of the BERT ({', '.join(VARIANTS)})"
        },
    )
    keep_source_settings: bool = field(
        default=False,
        metadata={
            "help": "With --convert_to: the BERT's settings (post-LN, its activation, learned positions) in the "
            "variant's layout, as recipes/distill.py --keep_source_settings"
        },
    )
    convert_overrides: str | None = field(
        default=None,
        metadata={
            "help": "With --convert_to: config overrides of the conversion, as recipes/distill.py --config_overrides "
            "(mixer_types=self+additive+self+self+self+self: a layout of one's own)"
        },
    )
    classifier_pooling: str | None = field(
        default=None,
        metadata={
            "help": f"What the classification head reads ({', '.join(CLASSIFIER_POOLINGS)}): BERT's [CLS] pooler, or "
            "the mean of the last hidden states, the pooling of a sentence encoder (default: the checkpoint's, else cls)"
        },
    )


@dataclass
class TaskArguments:
    task: str = field(metadata={"help": f"One of: {', '.join(TASKS)}"})
    max_seq_length: int = 128
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on this many examples of the training split (quick runs, tests)"}
    )
    split_seed: int = field(
        default=42,
        metadata={
            "help": "Seed of the splits an offline task lacks; kept apart from --seed so that every fine-tuning seed "
            "is scored on the same test rows"
        },
    )


@dataclass
class FinetuningArguments(RecipeTrainingArguments):
    """TrainingArguments with this recipe's defaults (HBERT §4.2: batch size 64 in every fine-tuning experiment)."""

    per_device_train_batch_size: int = 64
    per_device_eval_batch_size: int = 128
    num_train_epochs: float | None = field(
        default=None, metadata={"help": "Default: the task's (the paper's 10 for emotion, 15 for massive)"}
    )
    # The paper gives no fine-tuning learning rate; 5e-5 is the top of BERT's recommended range (2e-5 to 5e-5).
    learning_rate: float = 5e-5
    eval_strategy: str = "epoch"
    logging_strategy: str = "epoch"
    # The model kept and scored on the test split is the epoch that scored best on validation (macro-F1, which a
    # model answering one class cannot win on an unbalanced task); the epoch checkpoints are removed afterwards.
    save_strategy: str = "epoch"
    save_total_limit: int | None = 1
    load_best_model_at_end: bool = True
    metric_for_best_model: str | None = "macro_f1"
    learning_rates: list[float] | None = field(
        default=None,
        metadata={
            "help": "A grid: fine-tune once per rate and keep the run that scores best on validation "
            "(--metric_for_best_model); --learning_rate is then unused"
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output directory holding another run (and only a run)"}
    )


def training_settings(model_args: ModelArguments, task_args: TaskArguments, training_args: FinetuningArguments) -> dict:
    """The settings recorded with a result: with the model, task, init and seed, what makes two fine-tunings the same
    (the zoo and the healing study re-run one whose recorded settings differ from those it would use)."""
    return {
        # Only when asked for: without it the head is the checkpoint's, as in every record made before the choice.
        **({"classifier_pooling": model_args.classifier_pooling} if model_args.classifier_pooling else {}),
        # With a grid, the rate used is an outcome (the record's `learning_rate_search`), not a setting.
        "learning_rate": training_args.learning_rate if training_args.learning_rates is None else None,
        "learning_rate_grid": training_args.learning_rates,
        "batch_size": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "num_train_epochs": training_args.num_train_epochs or get_task(task_args.task).epochs,
        "max_steps": training_args.max_steps,
        "max_seq_length": task_args.max_seq_length,
        "max_train_samples": task_args.max_train_samples,
        "split_seed": task_args.split_seed,
        "selected_by": training_args.metric_for_best_model if training_args.load_best_model_at_end else "last epoch",
    }


def parse_args(argv: list[str] | None):
    return recipe_arguments.parse_args((ModelArguments, TaskArguments, FinetuningArguments), argv)


def planned_training_settings(argv: list[str]) -> dict:
    """The settings a run with these arguments would record, as its record reads back: what a plan compares."""
    return plain(training_settings(*parse_args(argv)))
