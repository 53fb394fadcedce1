"""Fine-tune a model on a text-classification task and record the result against its pretraining run.

    python recipes/finetune.py --model runs/hbert-v1-mini-10m --task trec --output_dir runs/hbert-v1-mini-10m-trec
    accelerate launch recipes/finetune.py ...                       # the same, on several processes
    python recipes/finetune.py --model runs/hbert-v1-mini-10m --task trec --from_scratch ...   # no-pretraining baseline
    python recipes/finetune.py --model minilm --task trec ...       # the pretrained all-MiniLM-L6-v2, as a reference

`--model` is a HybridBERT checkpoint (a pretraining run directory or any `save_pretrained` folder, with any head), an
HF BERT checkpoint (converted with `from_bert(variant="bert")`, which computes the same function), either as a folder or
a Hub repo id (`--model_revision` picks a branch, tag or commit), or `minilm`. `--task` is one
of `recipes.data.tasks.TASKS`. The model is evaluated on the validation split every epoch; the epoch with the best validation
macro-F1 is kept (`--metric_for_best_model`, `--load_best_model_at_end false` keeps the last) and scored once on the
test split. With `--learning_rates 5e-5 1e-4 2e-4` the model is fine-tuned once per rate (each in
`<output_dir>/lr-<rate>`, removed afterwards) and the run whose selected epoch scores best on validation is kept and
scored once on the test split; the record lists every rate's validation scores (`learning_rate_search`).
(`Trainer.hyperparameter_search` would train the winner a second time and score a run by its last evaluation, not
its selected epoch.)

Outputs (`--output_dir`): the fine-tuned model (`save_pretrained` folder with the tokenizer and `id2label`, so the
text-classification pipeline prints label names), HF's `train_results.json`, `eval_results.json` (the final validation
evaluation), `test_results.json` and `all_results.json`, and `downstream_record.json`. When `--model` is a pretraining
run directory (it holds `budget.json`), the same record is written to `<run>/downstream/<task>/<init>-seed<seed>.json`,
where cards and the zoo read it (`recipes.records.FinetuningRecord`) without re-running anything.

The output directory is the run's own (`recipes/run_folder/claim.py`): locked while the run lives; `--overwrite_output_dir`
replaces only a folder holding a run of this project.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from datasets import DatasetDict
from transformers import set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from modeling import CLASSIFIER_POOLINGS, VARIANTS
from recipes.data.input_files import check_weights
from recipes.data.tasks import get_task, load_task
from recipes.environment import git_commit
from recipes.evaluation.classifier import build_classifier, conversion, load_tokenizer, read_model_config
from recipes.evaluation.finetune_arguments import (
    FinetuningArguments,
    parse_args,
    training_settings,
)
from recipes.evaluation.finetuning import (
    RECORD_WRITE_WAIT_S,
    check_output_dir,
    grid_point,
    majority_class_baseline,
    pretraining_identity,
    scores,
    tokenize,
    train_selected,
)
from recipes.evaluation.stats import classification_metrics, one_class
from recipes.models.references import resolve_model
from recipes.records import (
    FinetuningRecord,
    RunIdentity,
)
from recipes.run_folder.claim import claim_output_dir, replace_run
from recipes.training.arguments import run_conditions, trajectory_settings


def main(argv: list[str] | None = None) -> FinetuningRecord:
    """Run the recipe; returns the downstream record."""
    model_args, task_args, training_args = parse_args(argv)

    # Every argument is checked before anything is written.
    task = get_task(task_args.task)
    model_dir = resolve_model(model_args.model, model_args.model_revision, "--model")
    if (model_dir / SAFE_WEIGHTS_NAME).is_file() or (model_dir / SAFE_WEIGHTS_INDEX_NAME).is_file():
        check_weights(model_dir)
    model_config = read_model_config(model_dir)
    if model_args.convert_to is not None:
        if model_config["model_type"] != "bert":
            raise ValueError(f"--convert_to converts an HF BERT checkpoint; {model_args.model} is a HybridBERT one.")
        if model_args.convert_to not in VARIANTS:
            raise ValueError(f"--convert_to {model_args.convert_to!r}: choose one of {', '.join(VARIANTS)}.")
    elif model_args.keep_source_settings or model_args.convert_overrides:
        raise ValueError(
            "--keep_source_settings and --convert_overrides need --convert_to (the variant the BERT is converted into)."
        )
    if model_args.classifier_pooling not in (None, *CLASSIFIER_POOLINGS):
        raise ValueError(
            f"--classifier_pooling {model_args.classifier_pooling!r}: choose one of {', '.join(CLASSIFIER_POOLINGS)}."
        )
    if not 8 <= task_args.max_seq_length <= model_config["max_position_embeddings"]:
        raise ValueError(
            f"--max_seq_length {task_args.max_seq_length} must be between 8 and the model's "
            f"{model_config['max_position_embeddings']} positions."
        )
    tokenizer = load_tokenizer(model_args.model, model_dir)
    if len(tokenizer) > model_config["vocab_size"]:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens; the model only {model_config['vocab_size']}.")
    if task_args.max_train_samples is not None and task_args.max_train_samples < 1:
        raise ValueError("--max_train_samples must be at least 1.")
    if training_args.learning_rates is not None:
        rates = training_args.learning_rates
        if not rates or min(rates) <= 0 or len(set(rates)) != len(rates):
            raise ValueError(f"--learning_rates {rates}: give one or more distinct positive rates.")
        if not training_args.load_best_model_at_end or not training_args.metric_for_best_model:
            raise ValueError("--learning_rates selects by validation: keep --load_best_model_at_end and a metric.")
    output_dir = Path(training_args.output_dir)
    check_output_dir(output_dir, model_dir, training_args.overwrite_output_dir)
    if training_args.num_train_epochs is None:
        training_args.num_train_epochs = task.epochs
    is_main_process = training_args.process_index == 0
    identity = RunIdentity(
        recipe="fine-tuning",
        shapes={"model": asdict(model_args), "task": asdict(task_args), "training": trajectory_settings(training_args)},
        conditions=run_conditions(training_args),
    )
    with claim_output_dir(output_dir, is_main_process):
        if is_main_process:
            check_output_dir(output_dir, model_dir, training_args.overwrite_output_dir)  # as it is now that it is ours
            if training_args.overwrite_output_dir:
                replace_run(output_dir)
            identity.write(output_dir)
        return finetune(model_args, task_args, training_args, task, model_dir, tokenizer)


def finetune(model_args, task_args, training_args, task, model_dir: Path, tokenizer) -> dict:
    """The recipe once its arguments are checked and its output directory claimed (see `main`)."""
    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="loading the task"):
        splits = load_task(task.name, seed=task_args.split_seed)
    label_names = splits["train"].features["label"].names
    train = splits["train"]
    if task_args.max_train_samples is not None:
        train = train.shuffle(seed=training_args.seed).select(range(min(task_args.max_train_samples, len(train))))
    encoded = tokenize(DatasetDict({**splits, "train": train}), tokenizer, task_args.max_seq_length)
    metrics = classification_metrics()

    def run(run_args: FinetuningArguments) -> tuple:
        set_seed(run_args.seed)  # the classifier head (and every weight, from scratch) is drawn from it
        model = build_classifier(
            model_dir,
            label_names,
            model_args.from_scratch,
            *conversion(model_args, model_dir),
            classifier_pooling=model_args.classifier_pooling,
        )
        return train_selected(model, run_args, encoded, tokenizer, metrics)

    search = None
    if training_args.learning_rates is None:
        trainer, train_result, evaluations, selected = run(training_args)
    else:
        runs = [run(grid_point(training_args, rate)) for rate in training_args.learning_rates]
        # max() keeps the first of equal scores: the grid's order breaks ties.
        best_metric = f"eval_{training_args.metric_for_best_model}"
        best = max(runs, key=lambda one: one[3][best_metric])
        search = [
            {
                "learning_rate": trainer.args.learning_rate,
                "epoch": chosen["epoch"],
                **scores(chosen, "eval"),
                "selected": trainer is best[0],
            }
            for trainer, _, _, chosen in runs
        ]
        trainer, train_result, evaluations, selected = best
        trainer.args.output_dir = str(output_dir)
    model = trainer.model
    trainer.save_model(output_dir)  # the selected model: the best epoch on validation, or the last
    test_prediction = trainer.predict(encoded["test"], metric_key_prefix="test")
    test_metrics = test_prediction.metrics
    if trainer.is_world_process_zero():
        for leftover in [*output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"), *output_dir.glob("lr-*")]:
            shutil.rmtree(leftover)

    init = "scratch" if model_args.from_scratch else "pretrained"
    record = FinetuningRecord(
        task=task.name,
        init=init,
        seed=training_args.seed,
        split_seed=task_args.split_seed if not task.online else None,
        model={
            "name_or_path": model_args.model,
            "revision": model_args.model_revision,
            "variant": model.config.variant,
            "size": model.config.size,
            "classifier_pooling": model.config.classifier_pooling,
            **(
                {
                    "converted": {
                        "keep_source_settings": model_args.keep_source_settings,
                        **({"overrides": model_args.convert_overrides} if model_args.convert_overrides else {}),
                    }
                }
                if model_args.convert_to
                else {}
            ),
        },
        pretraining=pretraining_identity(model_dir),
        epochs=trainer.state.epoch,  # as trained: --max_steps may end training before --num_train_epochs
        train_samples=len(encoded["train"]),
        test={
            **scores(test_metrics, "test"),
            "one_class": one_class(test_prediction.predictions.argmax(-1).tolist()),
            "samples": len(encoded["test"]),
        },
        validation=[{"epoch": e["epoch"], **scores(e, "eval"), "loss": e["eval_loss"]} for e in evaluations],
        majority_class=majority_class_baseline(splits["train"]["label"], splits["test"]["label"], metrics, label_names),
        training=training_settings(model_args, task_args, training_args),
        learning_rate_search=search,
        git_commit=git_commit(),
        test_predictions=test_prediction.predictions.argmax(-1).tolist(),
    )
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_metrics("eval", {k: v for k, v in selected.items() if k.startswith("eval_")})
    trainer.save_metrics("test", test_metrics)
    if trainer.is_world_process_zero():
        record.write(output_dir / FinetuningRecord.FILE)
        if record.pretraining and Path(model_args.model).is_dir():  # a local run, not a Hub cache snapshot
            with claim_output_dir(model_dir, wait_s=RECORD_WRITE_WAIT_S):  # the run folder's own lock, for a moment
                record.write(FinetuningRecord.downstream_path(model_dir, task.name, init, training_args.seed))
        baseline = record.majority_class
        print(
            f"{task.name} ({init}, seed {training_args.seed}): test accuracy {100 * record.test['accuracy']:.2f}%, "
            f"macro-F1 {100 * record.test['macro_f1']:.2f}% (majority class: "
            f"{100 * baseline['accuracy']:.2f}%, {100 * baseline['macro_f1']:.2f}%). "
            f"Saved to {output_dir}.",
            flush=True,
        )
    return record


if __name__ == "__main__":
    main()
