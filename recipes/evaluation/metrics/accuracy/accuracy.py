"""Accuracy: the share of examples whose predicted class is the reference class.

A local `evaluate` module (the Hub's metric scripts cannot be fetched offline): `evaluate.load(path_to_this_folder)`.
"""

import datasets
import evaluate
import numpy as np

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids, one per example.
    references: reference class ids, one per example.
Returns:
    accuracy: correct predictions / examples (0.0 for no examples).
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        return {"accuracy": float((predictions == references).mean()) if len(references) else 0.0}
