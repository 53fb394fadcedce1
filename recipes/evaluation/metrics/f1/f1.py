"""Macro-F1: the unweighted mean over classes of each class's F1 = 2·TP / (2·TP + FP + FN).

A local `evaluate` module (the Hub's metric scripts cannot be fetched offline): `evaluate.load(path_to_this_folder)`.
The classes averaged over are those that occur in the references or the predictions (scikit-learn's default), so a
class absent from both neither helps nor hurts; every class averaged counts the same however rare it is, which is what
makes macro-F1 honest beside accuracy on unbalanced tasks (a majority-class predictor scores 1/classes of its F1).
"""

import datasets
import evaluate
import numpy as np

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids, one per example.
    references: reference class ids, one per example.
Returns:
    macro_f1: the mean of the per-class F1 scores (0.0 for no examples).
"""


class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        scores = []
        for label in np.union1d(predictions, references):
            true_positives = np.sum((predictions == label) & (references == label))
            errors = np.sum(predictions != references, where=(predictions == label) | (references == label))
            scores.append(2 * true_positives / (2 * true_positives + errors))
        return {"macro_f1": float(np.mean(scores)) if scores else 0.0}
