"""The healing frontier's layouts and their latency against the same implementation (issue 34).

How much of MiniLM's attention can be replaced? For each mixer (additive, pooling) the frontier converts MiniLM with
k = 2 … 6 of its 6 self-attention layers replaced. Which layers: those whose replacement alone costs least, measured
on validation text before anything is fine-tuned or scored. Each layer i is replaced on its own (MiniLM's settings
kept, the new mixer freshly initialised, unhealed), and the converted model's mean-pooled sentence embeddings are
compared with MiniLM's on the tasks' validation sentences (mean cosine, as the probe's agreement); the layout for k
replaces the k layers with the highest agreement. The named variants are other points (pool-hybrid: the top two layers;
hbert-v1: layers 1, 3, 5; hbert-v2: layers 1–4; addbert: all six).

Latency: every layout, `from_bert(minilm, "bert")` (MiniLM in this project's implementation: the control every ratio
is taken against) and MiniLM as HF's `BertModel`, timed in turns (A B C … A B C) at batch 1 and 32 × 128 and 512
tokens (and batch 8, the issue's target shape), fp32, with the machine's load recorded before and after.

    python -m studies.healing.frontier                 # results/heal/frontier/frontier.json and README.md
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from datetime import datetime, timezone
from pathlib import Path

import torch

from modeling import HybridBertModel
from recipes.benchmark.harness import BenchmarkArguments, compare, inference_step
from recipes.cards.markdown import markdown_table
from recipes.data import assets
from recipes.data.tasks import load_task
from recipes.environment import REPO_ROOT, device_name, git_commit, load_average
from recipes.evaluation.probing import agreement
from recipes.models.sentence_encoder import encode
from recipes.models.starting_model import source_settings
from recipes.models.teacher import load_teacher
from recipes.records import FrontierRecord

RESULTS = REPO_ROOT / "results" / "heal" / "frontier"
MIXERS = {"additive": "addbert", "pooling": "pool-hybrid"}  # mixer -> the variant whose other settings it converts with
SAME_IMPLEMENTATION = "bert (this implementation)"
HF_BERT = "MiniLM (HF BertModel)"


def convert(teacher, mixer: str, layout: list[str]) -> HybridBertModel:
    torch.manual_seed(0)  # the new mixers' initialisation
    return HybridBertModel.from_bert(
        teacher, variant=MIXERS[mixer], mixer_types=layout, **source_settings(teacher.config)
    ).eval()


def layer_agreement(teacher, tokenizer, texts: list[str], mixer: str, max_length: int) -> dict[int, float]:
    """Per layer: the agreement with the teacher of the conversion that replaces that layer alone."""
    reference = encode(teacher, tokenizer, texts, max_length=max_length)
    layers = teacher.config.num_hidden_layers
    agreements = {}
    for layer in range(layers):
        layout = [mixer if index == layer else "self" for index in range(layers)]
        agreements[layer] = agreement(encode(convert(teacher, mixer, layout), tokenizer, texts, max_length), reference)
    return agreements


def frontier_layouts(agreements: dict[int, float], mixer: str, counts: list[int]) -> dict[int, list[str]]:
    """For each k, the layout replacing the k layers whose replacement alone kept most agreement."""
    order = sorted(agreements, key=lambda layer: (-agreements[layer], layer))
    return {k: [mixer if layer in order[:k] else "self" for layer in range(len(agreements))] for k in counts}


def point_name(mixer: str, k: int) -> str:
    return f"{mixer} k={k}"


def latency_table(encoders: dict, batch_sizes: list[int], seqs: list[int], repeats: int) -> dict[str, dict]:
    args = BenchmarkArguments(sections=["infer"], repeats=repeats, warmup=1, device="cpu")
    vocabulary = min(model.config.vocab_size for model in encoders.values())
    table = {}
    for batch, seq in itertools.product(batch_sizes, seqs):
        generator = torch.Generator().manual_seed(batch * seq)
        inputs = {
            "input_ids": torch.randint(min(1000, vocabulary // 2), vocabulary, (batch, seq), generator=generator),
            "attention_mask": torch.ones(batch, seq, dtype=torch.long),
        }
        steps = {name: inference_step(model, inputs, bf16=False) for name, model in encoders.items()}
        load = load_average()
        records = compare(steps, "latency_ms", lambda s: 1000 * s, args, references=[SAME_IMPLEMENTATION, HF_BERT])
        table[f"{batch}x{seq}"] = {
            "load_average_before": load,
            "load_average_after": load_average(),
            "encoders": {
                name: {"latency_ms": record["latency_ms"], "ratio_vs": record["ratio_vs"]}
                for name, record in records.items()
            },
        }
    return table


def measure(args: argparse.Namespace) -> FrontierRecord:
    teacher = load_teacher(args.teacher)
    tokenizer = assets.default_tokenizer()
    texts = [text for task in args.tasks for text in load_task(task)["validation"]["text"][: args.texts_per_task]]
    agreements, layouts = {}, {}
    for mixer in MIXERS:
        agreements[mixer] = layer_agreement(teacher, tokenizer, texts, mixer, args.max_length)
        layouts[mixer] = frontier_layouts(agreements[mixer], mixer, args.counts)
        print(f"{mixer}: agreement per replaced layer {agreements[mixer]}", flush=True)
    encoders = {HF_BERT: teacher, SAME_IMPLEMENTATION: HybridBertModel.from_bert(teacher, variant="bert").eval()}
    for mixer, by_count in layouts.items():
        for k, layout in by_count.items():
            encoders[point_name(mixer, k)] = convert(teacher, mixer, layout)
    return FrontierRecord(
        teacher=args.teacher,
        validation_texts={"tasks": args.tasks, "per_task": args.texts_per_task, "max_length": args.max_length},
        layer_agreement={mixer: {str(k): v for k, v in values.items()} for mixer, values in agreements.items()},
        layouts={mixer: {str(k): layout for k, layout in values.items()} for mixer, values in layouts.items()},
        latency_ms=latency_table(encoders, args.batch_sizes, args.seqs, args.repeats),
        device=device_name("cpu"),
        threads=torch.get_num_threads(),
        git_commit=git_commit(),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def report(record: FrontierRecord) -> str:
    lines = [
        "# The healing frontier: layouts and latency",
        "",
        f"Generated by `python -m studies.healing.frontier` (commit {record.git_commit[:10]}, {record.device}, "
        f"{record.threads} threads, {record.measured_at}). Layers are chosen on the validation sentences of "
        f"{', '.join(record.validation_texts['tasks'])} ({record.validation_texts['per_task']} each): agreement with "
        "MiniLM of the unhealed conversion replacing that layer alone (MiniLM's settings kept).",
        "",
    ]
    header = ["mixer", *(f"layer {layer}" for layer in record.layer_agreement["additive"]), "k = 2 … 6 replaces"]
    rows = []
    for mixer, values in record.layer_agreement.items():
        order = [str(layer) for layer in sorted(values, key=lambda layer: -values[layer])]
        rows.append([mixer, *(f"{value:.4f}" for value in values.values()), " → ".join(order)])
    lines += [*markdown_table(header, rows), ""]
    shapes = list(record.latency_ms)
    header = ["encoder", "layout", *(f"{shape} (ms, ÷ {SAME_IMPLEMENTATION})" for shape in shapes)]
    rows = []
    for name in record.latency_ms[shapes[0]]["encoders"]:
        mixer, _, k = name.partition(" k=")
        layout = "".join(m[0] for m in record.layouts[mixer][k]) if k else {HF_BERT: "–"}.get(name, "all s")
        cells = []
        for shape in shapes:
            measured = record.latency_ms[shape]["encoders"][name]
            cells.append(f"{measured['latency_ms']:.1f} ({measured['ratio_vs'][SAME_IMPLEMENTATION]:.2f}×)")
        rows.append([name, layout, *cells])
    loads = [record.latency_ms[shape]["load_average_before"][0] for shape in shapes]
    lines += [
        "Layouts: one letter per layer, bottom first (s self-attention, a additive, p pooling). Latency is the median "
        f"of interleaved turns; 1-minute load average before each shape: {', '.join(f'{load:.1f}' for load in loads)} "
        f"(median {statistics.median(loads):.1f}).",
        "",
        *markdown_table(header, rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> FrontierRecord:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="minilm")
    parser.add_argument("--tasks", nargs="+", default=["trec", "wiki-topics"])
    parser.add_argument("--texts_per_task", type=int, default=256)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    record = measure(args)
    record.write(args.output_dir / "frontier.json")
    (args.output_dir / "README.md").write_text(report(record))
    print(report(record), flush=True)
    return record


if __name__ == "__main__":
    main()
