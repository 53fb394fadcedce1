"""Masked-language-model accuracy: the share of labelled positions whose argmax prediction is the label.

A local `evaluate` module (the Hub's metric scripts cannot be fetched offline): `evaluate.load(path_to_this_folder)`.
Positions whose reference is the ignore index (-100) are not counted. BERT's masking labels 15% of the tokens but
shows only 80% of those as [MASK]; the other labelled positions keep their token (10%, copying scores) or get a random
one (10%). Given the model's `inputs` and the `mask_token_id`, the accuracy at [MASK] positions alone is reported too:
the part that needs the context rather than the visible token.
"""

import datasets
import evaluate
import numpy as np

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted token ids, one sequence per example (same length as its references).
    references: label ids, -100 where a position is not labelled.
    inputs (optional): the input ids the predictions were made from, shaped like references.
    mask_token_id (optional, with inputs): the id of the [MASK] token.
Returns:
    accuracy: correct labelled positions / labelled positions (0.0 when nothing is labelled).
    labelled_tokens: the number of labelled positions.
    mask_accuracy (with inputs): correct labelled positions whose input is [MASK] / such positions (0.0 for none).
    masked_tokens (with inputs): the number of labelled positions whose input is [MASK].
"""


def _share_correct(predictions: np.ndarray, references: np.ndarray, counted: np.ndarray) -> tuple[float, int]:
    count = int(counted.sum())
    correct = int((predictions[counted] == references[counted]).sum())
    return (correct / count if count else 0.0), count


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

    def _compute(
        self, predictions, references, ignore_index: int = -100, inputs=None, mask_token_id: int | None = None
    ):
        if (inputs is None) != (mask_token_id is None):
            raise ValueError("Pass both `inputs` and `mask_token_id` for the [MASK]-position accuracy, or neither.")
        predictions, references = np.asarray(predictions), np.asarray(references)
        labelled = references != ignore_index
        accuracy, count = _share_correct(predictions, references, labelled)
        result = {"accuracy": accuracy, "labelled_tokens": count}
        if inputs is not None:
            inputs = np.asarray(inputs)
            if inputs.shape != references.shape:
                raise ValueError(f"`inputs` has shape {inputs.shape} but the references have shape {references.shape}.")
            result["mask_accuracy"], result["masked_tokens"] = _share_correct(
                predictions, references, labelled & (inputs == mask_token_id)
            )
        return result
