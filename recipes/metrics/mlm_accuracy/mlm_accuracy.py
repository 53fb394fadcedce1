"""Masked-language-model accuracy: the share of labelled positions whose argmax prediction is the label.

A local `evaluate` module (the Hub's metric scripts cannot be fetched offline): `evaluate.load(path_to_this_folder)`.
Positions whose reference is the ignore index (-100) are not counted.
"""

import datasets
import evaluate
import numpy as np

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted token ids, one sequence per example (same length as its references).
    references: label ids, -100 where a position is not labelled.
Returns:
    accuracy: correct labelled positions / labelled positions (0.0 when nothing is labelled).
    labelled_tokens: the number of labelled positions.
"""


class MlmAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, ignore_index: int = -100):
        predictions, references = np.asarray(predictions), np.asarray(references)
        labelled = references != ignore_index
        count = int(labelled.sum())
        correct = int((predictions[labelled] == references[labelled]).sum())
        return {"accuracy": correct / count if count else 0.0, "labelled_tokens": count}
