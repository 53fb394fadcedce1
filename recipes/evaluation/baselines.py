"""Model-free baselines per offline task, scored on the test split as the fine-tuned models are.

    python -m recipes.evaluation.baselines --output results/baselines.json              # every offline task
    python -m recipes.evaluation.baselines --tasks trec wiki-topics --output baselines.json

- **Majority class on the test split**: always answering the test split's most frequent class, the best any
  one-class model can score there; the training split's majority class is reported beside it (on TREC they differ:
  DESC is the test split's most frequent class, ENTY the training split's).
- **TF-IDF + logistic regression** (scikit-learn): word uni- and bigram TF-IDF features (sublinear term frequency)
  and a multinomial logistic regression (saga: on these sparse features it converges in a fraction of lbfgs' time), its regularisation C chosen from a small grid on the validation split's
  macro-F1, refitted on the training split and scored once on the test split.

Each baseline has accuracy and macro-F1 (`recipes.evaluation.stats.classification_scores`, the one-class flag included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from recipes.data.tasks import get_task, load_task, offline_tasks
from recipes.evaluation.stats import classification_scores
from recipes.records import BaselinesRecord
from recipes.training.arguments import parse_args

C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


def majority_class(fit_labels: list[int], test_labels: list[int], label_names: list[str]) -> dict:
    """Scores on `test_labels` of always answering the most frequent class of `fit_labels` (lowest id on ties)."""
    majority = int(np.bincount(fit_labels, minlength=len(label_names)).argmax())
    return {"label": label_names[majority], **classification_scores([majority] * len(test_labels), test_labels)}


def tfidf_logistic_regression(splits, c_grid: tuple[float, ...] = C_GRID, seed: int = 0) -> dict:
    """Fit on train for each C, keep the C with the best validation macro-F1 (the smaller C on ties), score test."""

    def fitted(c: float):
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=c, solver="saga", max_iter=1000, random_state=seed),
        )
        return model.fit(splits["train"]["text"], splits["train"]["label"])

    validation = {}
    for c in c_grid:
        predictions = fitted(c).predict(splits["validation"]["text"]).tolist()
        validation[c] = classification_scores(predictions, splits["validation"]["label"])["macro_f1"]
    best = max(c_grid, key=lambda c: (validation[c], -c))
    test_predictions = fitted(best).predict(splits["test"]["text"]).tolist()
    return {
        "C": best,
        "validation_macro_f1": validation,
        **classification_scores(test_predictions, splits["test"]["label"]),
    }


def task_baselines(name: str, seed: int = 42) -> dict:
    """Every baseline of one task, with its split sizes."""
    splits = load_task(name, seed=seed)
    label_names = splits["train"].features["label"].names
    train_labels, test_labels = splits["train"]["label"], splits["test"]["label"]
    return {
        "rows": {split: len(splits[split]) for split in splits},
        "majority_class_test": majority_class(test_labels, test_labels, label_names),
        "majority_class_train": majority_class(train_labels, test_labels, label_names),
        "tfidf_logistic_regression": tfidf_logistic_regression(splits),
    }


@dataclass
class BaselineArguments:
    output: str = field(metadata={"help": "Where the results (JSON) are written"})
    tasks: list[str] = field(default_factory=offline_tasks, metadata={"help": "Tasks (default: every offline task)"})
    seed: int = field(default=42, metadata={"help": "Seed of the splits an offline source lacks, as in fine-tuning"})


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((BaselineArguments,), argv)
    for name in args.tasks:
        get_task(name)  # every name checked before any work
    record = BaselinesRecord(seed=args.seed, tasks={name: task_baselines(name, args.seed) for name in args.tasks})
    output = Path(args.output)
    record.write(output)
    for name, baselines in record.tasks.items():
        cells = [
            f"{label} {100 * baselines[key]['accuracy']:.1f}% / {100 * baselines[key]['macro_f1']:.1f}"
            for key, label in (
                ("majority_class_test", f"majority (test, {baselines['majority_class_test']['label']})"),
                ("majority_class_train", f"majority (train, {baselines['majority_class_train']['label']})"),
                ("tfidf_logistic_regression", "TF-IDF + LR"),
            )
        ]
        print(f"{name}: " + "; ".join(cells) + " (accuracy / macro-F1)", flush=True)
    print(f"Wrote {output}", flush=True)
    return record.to_dict()


if __name__ == "__main__":
    main()
