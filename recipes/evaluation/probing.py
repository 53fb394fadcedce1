"""Measuring a sentence encoder beside its teacher (`recipes/probe.py`, the healing frontier, the showcase): a linear
probe on frozen embeddings, cosine agreement, latency in interleaved turns, and how a healed student or an unhealed
conversion is named and described."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import PreTrainedModel

from modeling import HybridBertModel
from recipes.benchmark.harness import VOCAB_SIZE, BenchmarkArguments, compare, inference_step, random_batch
from recipes.records import PretrainingRecord

TEACHER = "teacher"
SAME_IMPLEMENTATION = "teacher in this implementation"


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int) -> dict:
    """Test accuracy and macro-F1 of a logistic-regression probe on standardised frozen embeddings."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    predicted = probe.fit(train_x, train_y).predict(test_x)
    return {"accuracy": accuracy_score(test_y, predicted), "macro_f1": f1_score(test_y, predicted, average="macro")}


def agreement(embeddings: np.ndarray, teacher_embeddings: np.ndarray) -> float:
    """Mean cosine between corresponding rows."""
    return F.cosine_similarity(torch.as_tensor(embeddings), torch.as_tensor(teacher_embeddings), dim=-1).mean().item()


def latency(encoders: dict[str, PreTrainedModel], seqs: list[int], repeats: int) -> dict[int, dict[str, dict]]:
    """Per length: each encoder's median latency (ms) for one sequence, and its ratio to the teacher's and to the
    teacher in this project's implementation (`from_bert(teacher, "bert")`, timed in the same turns). Against that
    control a student's ratio is the cost of its mixers alone, without the difference between two implementations."""
    encoders = {**encoders, SAME_IMPLEMENTATION: HybridBertModel.from_bert(encoders[TEACHER], variant="bert").eval()}
    for name, model in encoders.items():
        if model.config.vocab_size < VOCAB_SIZE:
            raise ValueError(
                f"Latency uses BERT-vocabulary token ids; {name} has only {model.config.vocab_size} tokens."
            )
    args = BenchmarkArguments(sections=["infer"], repeats=repeats, warmup=1, device="cpu")
    timings = {}
    for seq in seqs:
        inputs = random_batch(1, seq, with_labels=False, args=args)
        steps = {name: inference_step(model, inputs, bf16=False) for name, model in encoders.items()}
        timings[seq] = compare(
            steps, "latency_ms", lambda seconds: 1000 * seconds, args, references=[TEACHER, SAME_IMPLEMENTATION]
        )
    return timings


def describe_student(path: str | Path) -> dict:
    """A student folder's variant, healing objective, settings, steps, seed and run key, from its budget.json."""
    if not PretrainingRecord.exists(path):
        return {"kind": "student", "path": str(path), "seed": None}
    record = PretrainingRecord.read(path)
    training = record.run_record.training
    return {
        "kind": "healed",
        "variant": record.variant,
        "objective": training.get("objective", "mlm"),
        "keep_source_settings": bool(training.get("keep_source_settings", False)),
        "steps": record.steps,
        "seed": record.seed,
        "run_key": record.run_record.run_key(),
    }


def unhealed_name(variant: str, keep_source_settings: bool) -> str:
    return f"{variant} (unhealed{', source settings' if keep_source_settings else ''})"
