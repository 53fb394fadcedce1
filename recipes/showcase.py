"""A healed student beside its teacher, as sentence encoders: cosine similarities of sentence pairs, a nearest-neighbour
search over a handful of sentences, and the latency of one 512-token sequence.

    python -m recipes.showcase --student runs/demo/hbert-v1-minilm-distill-4m --teacher minilm
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from transformers import AutoModel

from recipes.data import assets
from recipes.evaluation.probing import SAME_IMPLEMENTATION, TEACHER, latency
from recipes.models.sentence_encoder import encode
from recipes.models.starting_model import load_tokenizer
from recipes.models.teacher import load_teacher
from recipes.training.arguments import parse_args
from recipes.training.pretrain_arguments import ModelArguments

PAIRS = [
    ("A man is playing a guitar.", "Someone is strumming a musical instrument."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("The cat sleeps on the sofa.", "Quantum computers use qubits."),
    ("How do I reset my password?", "What are the steps to change my login credentials?"),
    ("It is raining heavily in London.", "The recipe needs two cups of flour."),
]
DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The Great Barrier Reef is the world's largest coral reef system.",
    "A sonnet is a poem of fourteen lines with a fixed rhyme scheme.",
    "Interest rates are set by the central bank to control inflation.",
    "Marathon runners train for months to cover 42 kilometres.",
]
QUERIES = [
    "Which landmark stands in the French capital?",
    "How do plants make their food?",
    "What does monetary policy do about rising prices?",
    "A long-distance running race",
]


@dataclass
class ShowcaseArguments:
    student: str = field(metadata={"help": "A healed student folder"})
    teacher: str = field(default="minilm", metadata={"help": "Its teacher: a BERT directory, a Hub id or 'minilm'"})
    latency_seq: int = field(default=512, metadata={"help": "Tokens of the sequence timed"})
    latency_repeats: int = 5


def normalised(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((ShowcaseArguments,), argv)
    teacher = load_teacher(args.teacher)
    tokenizer = load_tokenizer(
        ModelArguments(tokenizer_name=None if args.teacher in assets.NAMED_CHECKPOINTS else args.teacher)
    )
    encoders = {TEACHER: teacher, "student": AutoModel.from_pretrained(args.student, trust_remote_code=True).eval()}

    similarities = {}
    for name, model in encoders.items():
        first = normalised(encode(model, tokenizer, [a for a, _ in PAIRS]))
        second = normalised(encode(model, tokenizer, [b for _, b in PAIRS]))
        similarities[name] = (first * second).sum(axis=1)
    print(f"\nCosine similarity of sentence pairs (teacher {args.teacher} | student {args.student}):")
    for (a, b), teacher_sim, student_sim in zip(PAIRS, similarities[TEACHER], similarities["student"], strict=True):
        print(f"  {teacher_sim:6.3f} | {student_sim:6.3f}   {a!r} ~ {b!r}")

    neighbours = {}
    for name, model in encoders.items():
        scores = normalised(encode(model, tokenizer, QUERIES)) @ normalised(encode(model, tokenizer, DOCUMENTS)).T
        neighbours[name] = scores.argmax(axis=1)
    print("\nNearest neighbour of each query among the documents (teacher | student):")
    for query, by_teacher, by_student in zip(QUERIES, neighbours[TEACHER], neighbours["student"], strict=True):
        same = "same" if by_teacher == by_student else "differs"
        print(
            f"  {query!r}\n      teacher: {DOCUMENTS[by_teacher]!r}\n      student: {DOCUMENTS[by_student]!r} ({same})"
        )

    records = latency(encoders, [args.latency_seq], args.latency_repeats)[args.latency_seq]
    print(f"\nLatency of one {args.latency_seq}-token sequence (median of {args.latency_repeats} interleaved turns):")
    for name, record in records.items():
        print(
            f"  {name}: {record['latency_ms']:.1f} ms ({record['ratio_vs'][TEACHER]:.2f}× the teacher's, "
            f"{record['ratio_vs'][SAME_IMPLEMENTATION]:.2f}× the teacher's in this implementation)"
        )
    return {
        "similarities": {name: values.tolist() for name, values in similarities.items()},
        "neighbours": {name: values.tolist() for name, values in neighbours.items()},
        "latency_ms": {name: record["latency_ms"] for name, record in records.items()},
    }


if __name__ == "__main__":
    main()
