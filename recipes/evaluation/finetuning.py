"""One fine-tuning, around the Trainer: the output folder checked before training (writable, ours, not the model's),
the task tokenised, a run trained with its best epoch on validation selected, a learning-rate grid's points, and the
scores and baselines its record keeps."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
from datasets import DatasetDict
from transformers import Trainer

from recipes.evaluation.finetune_arguments import (
    FinetuningArguments,
)
from recipes.records import (
    DOWNSTREAM_DIR,
    PretrainingIdentity,
    PretrainingRecord,
)
from recipes.run_folder.claim import check_holds_run, claim_output_dir, entries

# How long fine-tuning waits for a pretraining run folder's lock to write its record there: other fine-tunings of the
# same model hold it for a moment each; a run training there holds it for hours, and is named instead.
RECORD_WRITE_WAIT_S = 60
LOCK_CHECK_WAIT_S = 5


def writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (tried, since permissions say nothing of a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output_dir(output_dir: Path, model_dir: Path, overwrite: bool) -> None:
    """Refuse an output folder that is the model's, that holds something (unless it is a run to replace), or that
    cannot be written; and a pretraining run folder whose `downstream/` record cannot be written."""
    if output_dir.resolve() == model_dir.resolve():
        raise ValueError(f"--output_dir {output_dir} is the model being fine-tuned; write the result elsewhere.")
    if overwrite:
        check_holds_run(output_dir)
    elif entries(output_dir):
        raise FileExistsError(f"{output_dir} already holds a run; pass --overwrite_output_dir to replace it.")
    nearest = next(folder for folder in (output_dir.resolve(), *output_dir.resolve().parents) if folder.exists())
    if not writable(nearest):
        raise PermissionError(f"--output_dir {output_dir} cannot be written ({nearest} is read-only).")
    if PretrainingRecord.exists(model_dir) and not writable(model_dir):
        raise PermissionError(
            f"{model_dir} is read-only: the fine-tuning record goes to its {DOWNSTREAM_DIR}/ folder. Copy the model "
            "to a writable folder first."
        )
    if PretrainingRecord.exists(model_dir):
        with claim_output_dir(model_dir, wait_s=LOCK_CHECK_WAIT_S):
            pass  # a run still training in that folder (resumed, say) is named now, not after fine-tuning


def tokenize(splits: DatasetDict, tokenizer, max_seq_length: int) -> DatasetDict:
    # In memory: the stored splits stay untouched (no cache files beside them), and tokenising takes seconds.
    return splits.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_seq_length),
        batched=True,
        remove_columns=["text"],
        keep_in_memory=True,
    )


def majority_class_baseline(train_labels: list[int], test_labels: list[int], metrics, label_names: list[str]) -> dict:
    """Scores of always predicting the training split's most frequent label (the lowest id on ties)."""
    majority = int(np.bincount(train_labels, minlength=len(label_names)).argmax())
    scores = metrics.compute(predictions=[majority] * len(test_labels), references=test_labels)
    return {"label": label_names[majority], **scores}


def scores(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {"accuracy": metrics[f"{prefix}_accuracy"], "macro_f1": metrics[f"{prefix}_macro_f1"]}


def selected_evaluation(evaluations: list[dict], best_checkpoint: str | None) -> dict:
    """The validation evaluation of the model kept: the best checkpoint's (its step), else the last one."""
    if best_checkpoint is None:
        return evaluations[-1]
    step = int(Path(best_checkpoint).name.rsplit("-", 1)[1])
    return next(entry for entry in evaluations if entry["step"] == step)


def grid_point(training_args: FinetuningArguments, learning_rate: float) -> FinetuningArguments:
    """The arguments of one run of a learning-rate grid: that rate, and an output directory of its own (a copy, as
    `Trainer.hyperparameter_search` sets each trial's values on the arguments)."""
    point = copy.copy(training_args)
    point.learning_rate = learning_rate
    point.output_dir = str(Path(training_args.output_dir) / f"lr-{learning_rate:g}")
    return point


def train_selected(model, training_args, encoded: DatasetDict, tokenizer, metrics) -> tuple:
    """(trainer, train result, validation evaluations, the selected one): one fine-tuning, its best epoch on
    validation loaded at the end (or its last)."""
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        compute_metrics=lambda p: metrics.compute(predictions=p.predictions.argmax(-1), references=p.label_ids),
    )
    train_result = trainer.train()
    if not any("eval_accuracy" in e and e["step"] == trainer.state.global_step for e in trainer.state.log_history):
        trainer.evaluate()  # --eval_strategy did not evaluate the final model
    evaluations = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry]
    return trainer, train_result, evaluations, selected_evaluation(evaluations, trainer.state.best_model_checkpoint)


def pretraining_identity(model_dir: Path) -> PretrainingIdentity | None:
    """The pretraining run behind `model_dir` (None when it is not a pretraining run directory)."""
    return PretrainingRecord.read(model_dir).identity(model_dir) if PretrainingRecord.exists(model_dir) else None
