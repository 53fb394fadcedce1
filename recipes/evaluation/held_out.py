"""The held-out MLM evaluation of a pretraining run: batches, predictions at labelled positions, the metric and the
accuracy curve."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling, default_data_collator

from recipes.training.curves import EvaluationCurveCallback

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


class HeldOutCollator:
    """Masks training batches on the fly; passes the pre-masked held-out blocks (they carry labels) through."""

    def __init__(self, tokenizer, mlm_probability: float, seed: int | None = None):
        self.masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)

    def __call__(self, examples):
        batch = default_data_collator(examples) if "labels" in examples[0] else self.masking(examples)
        # Packed blocks hold no padding: without a mask the model takes its unmasked path, decided here on the host
        # instead of by reading the mask back from the device in every forward.
        if "attention_mask" in batch and bool(batch["attention_mask"].all()):
            del batch["attention_mask"]
        return batch


def predictions_at_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Argmax token ids laid out like `labels` (-100 elsewhere), from sparse or full MLM logits, so full-vocabulary
    logits are never accumulated over the evaluation set."""
    labelled = labels != -100
    predictions = torch.full_like(labels, -100)
    predictions[labelled] = logits.argmax(-1) if logits.dim() == 2 else logits.argmax(-1)[labelled]
    return predictions


class MlmCurveCallback(EvaluationCurveCallback):
    """The held-out MLM accuracy curve (mlm_curve.json/png)."""

    extra_metrics = ("mask_accuracy",)

    def describe(self, point: dict) -> str:
        return (
            f"{point['tokens_seen'] / 1e6:.2f}M tokens: MLM accuracy {100 * point['accuracy']:.2f}% "
            f"({100 * point['mask_accuracy']:.2f}% at [MASK]), loss {point['loss']:.3f}"
        )
