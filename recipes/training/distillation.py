"""Distillation from a frozen teacher (`recipes/distill.py`): the loss (the recipe's docstring states it), the Trainer
that computes it and measures agreement on evaluation, the agreement curve, and the held-out blocks unmasked."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from recipes.models.sentence_encoder import mean_pool
from recipes.training.budget import BudgetTrainer
from recipes.training.curves import EvaluationCurveCallback

AGREEMENT_CURVE_FILE = "agreement_curve.json"


def layer_outputs(outputs) -> list[torch.Tensor]:
    """The embeddings' and every layer's output, the last one after the final norm (the encoder's output)."""
    return [*outputs.hidden_states[:-1], outputs.last_hidden_state]


def hidden_state_distance(
    student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Mean over kept tokens of 1 − Pearson correlation of the two width-vectors (½ · MSE of parameter-free LN forms)."""
    width = student.shape[-1]
    distance = 0.5 * (F.layer_norm(student.float(), (width,)) - F.layer_norm(teacher.float(), (width,))).pow(2).mean(-1)
    if attention_mask is None:
        return distance.mean()
    keep = attention_mask.to(distance.dtype)
    return (distance * keep).sum() / keep.sum().clamp_min(1.0)


def distillation_loss(
    student_outputs,
    teacher_outputs,
    attention_mask: torch.Tensor | None,
    hidden_states_weight: float,
    embedding_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The module docstring's loss; also returns the student's and teacher's sentence embeddings."""
    student_layers, teacher_layers = layer_outputs(student_outputs), layer_outputs(teacher_outputs)
    if len(student_layers) != len(teacher_layers):
        raise ValueError(f"The student has {len(student_layers) - 1} layers and the teacher {len(teacher_layers) - 1}.")
    hidden = torch.stack(
        [hidden_state_distance(s, t, attention_mask) for s, t in zip(student_layers, teacher_layers, strict=True)]
    ).mean()
    student_embedding = mean_pool(student_outputs.last_hidden_state.float(), attention_mask)
    teacher_embedding = mean_pool(teacher_outputs.last_hidden_state.float(), attention_mask)
    embedding = (1 - F.cosine_similarity(student_embedding, teacher_embedding, dim=-1)).mean()
    loss = hidden_states_weight * hidden + embedding_weight * embedding
    return loss, student_embedding, teacher_embedding


class DistillationTrainer(BudgetTrainer):
    """A budgeted Trainer whose loss is `distillation_loss` against a frozen teacher. Evaluation returns the student's
    sentence embeddings as predictions and the teacher's as labels, so `compute_metrics` measures their agreement."""

    def __init__(self, *args, teacher: PreTrainedModel, hidden_states_weight: float, embedding_weight: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self.hidden_states_weight, self.embedding_weight = hidden_states_weight, embedding_weight

    def _distill(self, model, inputs):
        with torch.no_grad():
            teacher_outputs = self.teacher(**inputs, output_hidden_states=True)
        student_outputs = model(**inputs, output_hidden_states=True)
        return distillation_loss(
            student_outputs,
            teacher_outputs,
            inputs.get("attention_mask"),
            self.hidden_states_weight,
            self.embedding_weight,
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, student_embedding, teacher_embedding = self._distill(model, inputs)
        return (loss, {"student": student_embedding, "teacher": teacher_embedding}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, student_embedding, teacher_embedding = self._distill(model, inputs)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), student_embedding, teacher_embedding


def agreement_metrics(prediction) -> dict[str, float]:
    """Mean cosine between the student's (predictions) and teacher's (labels) sentence embeddings."""
    student, teacher = torch.as_tensor(prediction.predictions), torch.as_tensor(prediction.label_ids)
    return {"agreement": F.cosine_similarity(student, teacher, dim=-1).mean().item()}


class AgreementCurveCallback(EvaluationCurveCallback):
    """The held-out agreement curve (agreement_curve.json/png)."""

    metric, curve_file, plot_file = "agreement", AGREEMENT_CURVE_FILE, "agreement_curve.png"
    ylabel = "held-out cosine agreement with the teacher (×100)"

    def describe(self, point: dict) -> str:
        return f"agreement with the teacher {point['agreement']:.4f}, distillation loss {point['loss']:.4f}"


def unmasked(held_out):
    """The held-out blocks with the masked tokens put back (their labels hold the original ids)."""

    def restore(batch):
        return {
            "input_ids": [
                [label if label != -100 else token for token, label in zip(ids, labels, strict=True)]
                for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True)
            ]
        }

    return held_out.map(
        restore, batched=True, remove_columns=["labels"], keep_in_memory=True, desc="Unmasking held-out set"
    )
