"""Evaluate sentence encoders against their teacher: frozen-embedding linear probes on the offline tasks, cosine
agreement with the teacher on held-out sentences, and latency at 128 and 512 tokens.

    python -m recipes.probe --teacher minilm --students runs/hbert-v1-minilm-distill-30m --unhealed hbert-v1 \\
        --tasks trec wiki-topics --output_file results/probe/hbert-v1.json

Every encoder (the teacher, each student folder, and each `--unhealed` variant: `from_bert(teacher)` with no healing,
with the variant's settings or, `--unhealed_source_settings`, the teacher's)
embeds a task's texts by mean pooling (recipes/models/sentence_encoder.py) with the teacher's tokenizer; one probe, the same
for all (standardised features, scikit-learn's LogisticRegression), is fitted on the training split and scored on the
test split (accuracy, macro-F1). Agreement is the mean cosine between an encoder's and the teacher's embeddings of the
test sentences, which no encoder saw in training. Latency is one sequence of random ordinary tokens, timed in
interleaved turns by recipes.benchmark's harness (median), with each encoder's ratio to the teacher.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, PreTrainedModel, set_seed

from modeling import HybridBertModel
from recipes.cards.markdown import markdown_table
from recipes.data import assets
from recipes.data.tasks import load_task, offline_tasks
from recipes.environment import device_name, git_commit, load_average, package_versions
from recipes.evaluation.probing import (
    SAME_IMPLEMENTATION,
    TEACHER,
    agreement,
    describe_student,
    latency,
    linear_probe,
    unhealed_name,
)
from recipes.models.sentence_encoder import encode
from recipes.models.starting_model import load_tokenizer, source_settings
from recipes.models.teacher import load_teacher
from recipes.records import ProbeRecord, write_text_atomic
from recipes.training.arguments import parse_args
from recipes.training.pretrain_arguments import ModelArguments


@dataclass
class ProbeArguments:
    teacher: str = field(default="minilm", metadata={"help": "The teacher: a BERT directory, a Hub id or 'minilm'"})
    students: list[str] = field(
        default_factory=list, metadata={"help": "Saved student folders (distilled, MLM-healed)"}
    )
    unhealed: list[str] = field(
        default_factory=list, metadata={"help": "Variants initialised from the teacher (from_bert) and not healed"}
    )
    unhealed_source_settings: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Variants initialised from the teacher with its settings (distill.py --keep_source_settings)"
        },
    )
    tasks: list[str] = field(default_factory=lambda: ["trec", "wiki-topics"], metadata={"help": "Offline tasks"})
    max_train_samples: int | None = field(default=None, metadata={"help": "Probe training rows per task (None: all)"})
    max_length: int = field(default=128, metadata={"help": "Tokens per text when embedding"})
    latency_seqs: list[int] = field(default_factory=lambda: [128, 512], metadata={"help": "One-sequence lengths timed"})
    latency_repeats: int = field(default=5, metadata={"help": "Timed turns per encoder and length"})
    seed: int = field(
        default=42, metadata={"help": "Seeds the unhealed conversions' new mixers and the probe's training subset"}
    )
    split_seed: int = field(
        default=42,
        metadata={
            "help": "Seed of the splits an offline task lacks; kept apart from --seed so that every seed is scored on "
            "the same test rows (as recipes/finetune.py)"
        },
    )
    output_file: str | None = field(default=None, metadata={"help": "Where the results JSON goes"})

    def __post_init__(self):
        unknown = [task for task in self.tasks if task not in offline_tasks()]
        if unknown:
            raise ValueError(f"Unknown or online task {unknown}; offline tasks: {', '.join(offline_tasks())}.")
        missing = [path for path in self.students if not Path(path).is_dir()]
        if missing:
            raise FileNotFoundError(f"Student folder(s) not found: {', '.join(missing)}.")


def load_encoders(args: ProbeArguments, teacher: PreTrainedModel) -> dict[str, PreTrainedModel]:
    encoders = {TEACHER: teacher}
    for path in args.students:
        encoders[str(path)] = AutoModel.from_pretrained(path, trust_remote_code=True)
    for variants, keep in ((args.unhealed, False), (args.unhealed_source_settings, True)):
        for variant in variants:
            set_seed(args.seed)
            settings = source_settings(teacher.config) if keep else {}
            encoders[unhealed_name(variant, keep)] = HybridBertModel.from_bert(teacher, variant=variant, **settings)
    return {name: model.eval() for name, model in encoders.items()}


def describe_encoders(args: ProbeArguments) -> dict[str, dict]:
    """What each encoder is, for tables over seeds (studies/healing/table.py): the teacher, each student folder
    (`describe_student`), each unhealed conversion's variant and settings. `seed` is the unit a table pairs on: a
    student's training seed, else the probe's."""
    described = {TEACHER: {"kind": TEACHER, "name": args.teacher, "seed": args.seed}}
    described |= {str(path): describe_student(path) for path in args.students}
    for variants, keep in ((args.unhealed, False), (args.unhealed_source_settings, True)):
        for variant in variants:
            described[unhealed_name(variant, keep)] = {
                "kind": "unhealed",
                "variant": variant,
                "keep_source_settings": keep,
                "seed": args.seed,
            }
    return described


def evaluate_task(task: str, encoders: dict[str, PreTrainedModel], tokenizer, args: ProbeArguments) -> dict[str, dict]:
    splits = load_task(task, seed=args.split_seed)
    train = splits["train"]
    if args.max_train_samples:
        train = train.shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(train))))
    test = splits["test"]
    results, teacher_test = {}, None
    for name, model in encoders.items():
        train_x = encode(model, tokenizer, train["text"], max_length=args.max_length)
        test_x = encode(model, tokenizer, test["text"], max_length=args.max_length)
        teacher_test = test_x if name == TEACHER else teacher_test
        results[name] = linear_probe(train_x, np.array(train["label"]), test_x, np.array(test["label"]), args.seed)
        results[name]["agreement"] = agreement(test_x, teacher_test)
        print(
            f"{task}: {name}: probe accuracy {100 * results[name]['accuracy']:.2f}%, agreement {results[name]['agreement']:.4f}",
            flush=True,
        )
    return results


def markdown(results: dict) -> str:
    names = list(results["latency_ms"][str(results["arguments"]["latency_seqs"][0])])
    header = (
        ["encoder"]
        + [f"{task} probe acc." for task in results["tasks"]]
        + [f"{task} agreement" for task in results["tasks"]]
    )
    header += [f"latency {seq} (ms, ÷ teacher, ÷ teacher in this implementation)" for seq in results["latency_ms"]]
    rows = []
    for name in names:
        scores = [results["tasks"][task].get(name) for task in results["tasks"]]  # none for the latency control
        row = [name]
        row += ["–" if score is None else f"{100 * score['accuracy']:.2f}%" for score in scores]
        row += ["–" if score is None else f"{score['agreement']:.4f}" for score in scores]
        for records in results["latency_ms"].values():
            timed = records[name]
            ratios = ", ".join(f"{timed['ratio_vs'][control]:.2f}×" for control in (TEACHER, SAME_IMPLEMENTATION))
            row.append(f"{timed['latency_ms']:.1f} ({ratios})")
        rows.append(row)
    return "\n".join(markdown_table(header, rows))


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((ProbeArguments,), argv)
    teacher = load_teacher(args.teacher)
    named = args.teacher in assets.NAMED_CHECKPOINTS
    tokenizer = load_tokenizer(ModelArguments(tokenizer_name=None if named else args.teacher))
    encoders = load_encoders(args, teacher)
    record = ProbeRecord(
        arguments=asdict(args),
        encoders=describe_encoders(args),
        tasks={task: evaluate_task(task, encoders, tokenizer, args) for task in args.tasks},
        latency_ms={
            str(seq): records for seq, records in latency(encoders, args.latency_seqs, args.latency_repeats).items()
        },
        device=device_name("cpu"),
        threads=torch.get_num_threads(),
        load_average=load_average(),
        versions=package_versions(),
        git_commit=git_commit(),
    )
    results = record.to_dict()
    table = markdown(results)
    print(table, flush=True)
    if args.output_file:
        path = record.write(args.output_file)
        write_text_atomic(path.with_suffix(".md"), table + "\n")
    return results


if __name__ == "__main__":
    main()
