"""The healing frontier's layouts and their latency against the same implementation (issue 34).

How much of MiniLM's attention can be replaced? For each mixer (additive, pooling) the frontier converts MiniLM with
k = 2 … 6 of its 6 self-attention layers replaced. Which layers: those whose replacement alone costs least, measured
on validation text before anything is fine-tuned or scored. Each layer i is replaced on its own (MiniLM's settings
kept, the new mixer freshly initialised, unhealed), and the converted model's mean-pooled sentence embeddings are
compared with MiniLM's on the tasks' validation sentences (mean cosine, as the probe's agreement); the layout for k
replaces the k layers with the highest agreement. The named variants are other points (pool-hybrid: the top two layers;
hbert-v1: layers 1, 3, 5; hbert-v2: layers 1–4; addbert: all six).

Latency: every layout, the healing study's conversions (its variants with the settings it converts them with),
`from_bert(minilm, "bert")` (MiniLM in this project's implementation: the control every ratio is taken against) and
MiniLM as HF's `BertModel`, at batch 1 and 32 × 128 and 512 tokens (and batch 8, the issue's target shape), fp32,
with the machine's load recorded before and after. Encoders are timed in small groups, each in turns with the control
(C A B C A B …), so that a ratio holds the drift of a short turn only. A decision rests on a repeated measurement:
`--repeat_latency` times the record's layouts again, with the record's protocol, and adds the measurement to it.

    python -m studies.healing.frontier                 # results/heal/frontier/frontier.json and README.md
    python -m studies.healing.frontier --repeat_latency --note "idle machine"
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
import statistics
from datetime import datetime, timezone
from pathlib import Path

import torch

from modeling import VARIANTS, HybridBertModel
from recipes.benchmark.harness import BenchmarkArguments, compare, inference_step
from recipes.cards.markdown import markdown_table, ratio_and_range
from recipes.data import assets
from recipes.data.tasks import load_task
from recipes.environment import REPO_ROOT, device_name, git_commit, load_average
from recipes.evaluation.healing_rows import conversion_name
from recipes.evaluation.probing import agreement
from recipes.models.sentence_encoder import encode
from recipes.models.starting_model import source_settings
from recipes.models.teacher import load_teacher
from recipes.records import FrontierRecord, read_json_object, write_text_atomic
from studies.healing.arguments import HealStudyArguments, settings_covered

RESULTS = REPO_ROOT / "results" / "heal" / "frontier"
HEALING_STUDY = REPO_ROOT / "studies" / "healing" / "study.json"
CONVERSION_FIELDS = ("variants", "settings", "source_settings_variants")
MIXERS = {"additive": "addbert", "pooling": "pool-hybrid"}  # mixer -> the variant whose other settings it converts with
SAME_IMPLEMENTATION = FrontierRecord.SAME_IMPLEMENTATION
HF_BERT = FrontierRecord.HF_BERT


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


def timing_groups(names: list[str], group_size: int, seed: int) -> list[list[str]]:
    """`names` shuffled with `seed` and split into groups of at most `group_size`, as even as they can be: each
    measurement draws its own groups, so that a group's bias is not repeated by every measurement."""
    shuffled = list(names)
    random.Random(seed).shuffle(shuffled)
    count = math.ceil(len(shuffled) / group_size)
    return [shuffled[index::count] for index in range(count)]


def latency_table(encoders: dict, shapes: list[tuple[int, int]], repeats: int, groups: list[list[str]]) -> dict:
    """Per shape, each encoder's median latency and its ratio to the same-implementation control's median in its
    group's turns. Each group is timed in turns with the control (C A B C A B …), so that a ratio holds a short
    turn's drift only; each group's control latency is kept, so every ratio can be recomputed (the record's first two
    measurements predate this and keep only the ratios)."""
    args = BenchmarkArguments(sections=["infer"], repeats=repeats, warmup=1, device="cpu")
    vocabulary = min(model.config.vocab_size for model in encoders.values())
    table = {}
    for batch, seq in shapes:
        generator = torch.Generator().manual_seed(batch * seq)
        inputs = {
            "input_ids": torch.randint(min(1000, vocabulary // 2), vocabulary, (batch, seq), generator=generator),
            "attention_mask": torch.ones(batch, seq, dtype=torch.long),
        }
        load = load_average()
        timed, control = {}, []
        for index, group in enumerate(groups):
            steps = {name: inference_step(encoders[name], inputs, bf16=False) for name in [SAME_IMPLEMENTATION, *group]}
            records = compare(steps, "latency_ms", lambda s: 1000 * s, args, references=[SAME_IMPLEMENTATION])
            control.append(records.pop(SAME_IMPLEMENTATION)["latency_ms"])
            timed |= {
                name: {"latency_ms": record["latency_ms"], "ratio_vs": record["ratio_vs"], "group": index}
                for name, record in records.items()
            }
        same = {"latency_ms": statistics.median(control), "ratio_vs": {SAME_IMPLEMENTATION: 1.0}}
        table[f"{batch}x{seq}"] = {
            "load_average_before": load,
            "load_average_after": load_average(),
            "control_ms_by_group": control,
            "encoders": {SAME_IMPLEMENTATION: same, **timed},
        }
    return table


def latency_measurement(teacher, layouts: dict, protocol: dict, seed: int, note: str) -> dict:
    """One latency measurement of every timed encoder, with what made it and how (`protocol`: shapes, repeats,
    group_size; `seed` draws the groups)."""
    encoders = timed_encoders(teacher, layouts)
    groups = timing_groups([name for name in encoders if name != SAME_IMPLEMENTATION], protocol["group_size"], seed)
    shapes = [tuple(int(size) for size in shape.split("x")) for shape in protocol["shapes"]]
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "note": note,
        **protocol,
        "groups": groups,
        "latency_ms": latency_table(encoders, shapes, protocol["repeats"], groups),
    }


def healing_conversions() -> dict[str, tuple[str, bool]]:
    """The healing study's conversions, as its table names them: name -> (variant, keeps the teacher's settings)."""
    # only the fields that say which conversions the study makes: the full arguments also check its step-time
    # record against this process's threads, which a latency measurement does not depend on
    planned = read_json_object(HEALING_STUDY, "healing study arguments")
    study = HealStudyArguments(**{key: planned[key] for key in CONVERSION_FIELDS if key in planned})
    return {
        conversion_name(variant, keep): (variant, keep)
        for variant in study.variants
        for keep in settings_covered(study, variant)
    }


def timed_encoders(teacher, layouts: dict[str, dict]) -> dict:
    """The controls, every frontier point and the healing study's conversions, built from `teacher`."""
    encoders = {HF_BERT: teacher, SAME_IMPLEMENTATION: HybridBertModel.from_bert(teacher, variant="bert").eval()}
    for mixer, by_count in layouts.items():
        for k, layout in by_count.items():
            encoders[point_name(mixer, k)] = convert(teacher, mixer, layout)
    for name, (variant, keep) in healing_conversions().items():
        torch.manual_seed(0)
        settings = source_settings(teacher.config) if keep else {}
        encoders[name] = HybridBertModel.from_bert(teacher, variant=variant, **settings).eval()
    return encoders


def measure(args: argparse.Namespace) -> FrontierRecord:
    teacher = load_teacher(args.teacher)
    tokenizer = assets.default_tokenizer()
    texts = [text for task in args.tasks for text in load_task(task)["validation"]["text"][: args.texts_per_task]]
    agreements, layouts = {}, {}
    for mixer in MIXERS:
        agreements[mixer] = layer_agreement(teacher, tokenizer, texts, mixer, args.max_length)
        layouts[mixer] = frontier_layouts(agreements[mixer], mixer, args.counts)
        print(f"{mixer}: agreement per replaced layer {agreements[mixer]}", flush=True)
    return FrontierRecord(
        teacher=args.teacher,
        validation_texts={"tasks": args.tasks, "per_task": args.texts_per_task, "max_length": args.max_length},
        layer_agreement={mixer: {str(k): v for k, v in values.items()} for mixer, values in agreements.items()},
        layouts={mixer: {str(k): layout for k, layout in values.items()} for mixer, values in layouts.items()},
        latency_measurements=[latency_measurement(teacher, layouts, protocol_of(args), seed=0, note=args.note)],
        device=device_name("cpu"),
        threads=torch.get_num_threads(),
        git_commit=git_commit(),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


PROTOCOL = ("shapes", "repeats", "group_size")
DEFAULT_PROTOCOL = {"batch_sizes": [1, 8, 32], "seqs": [128, 512], "repeats": 5, "group_size": 4}


def protocol_of(args: argparse.Namespace) -> dict:
    """The latency protocol the arguments give, the defaults where they give none."""
    given = {
        key: getattr(args, key) if getattr(args, key) is not None else default
        for key, default in DEFAULT_PROTOCOL.items()
    }
    shapes = [f"{batch}x{seq}" for batch, seq in itertools.product(given["batch_sizes"], given["seqs"])]
    return {"shapes": shapes, "repeats": given["repeats"], "group_size": given["group_size"]}


def repeat_latency(args: argparse.Namespace, record: FrontierRecord) -> FrontierRecord:
    """`record` with one more latency measurement of its own layouts, with the shapes and protocol of its earlier
    measurements (the arguments' for a first one), on this machine as it is now."""
    if record.device != device_name("cpu") or record.threads != torch.get_num_threads():
        raise ValueError(
            f"The record was measured on {record.device} with {record.threads} threads; this is {device_name('cpu')} "
            f"with {torch.get_num_threads()}: a repeat must time the same machine."
        )
    layouts = {mixer: {int(k): layout for k, layout in values.items()} for mixer, values in record.layouts.items()}
    first = record.latency_measurements[0] if record.latency_measurements else None
    # the first measurement sets the protocol every repeat keeps
    protocol = {key: first[key] for key in PROTOCOL} if first else protocol_of(args)
    seed = len(record.latency_measurements)
    measured = latency_measurement(load_teacher(record.teacher), layouts, protocol, seed, args.note)
    return dataclasses.replace(record, latency_measurements=[*record.latency_measurements, measured])


def report(record: FrontierRecord) -> str:
    lines = [
        "# The healing frontier: layouts and latency",
        "",
        f"Generated by `python -m studies.healing.frontier` (commit {short_commit(record.git_commit)}, {record.device}, "
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
    shapes = record.shapes
    measurements = record.latency_measurements
    if not measurements:
        return "\n".join([*lines, "No latency measurement yet: `--repeat_latency` makes one."]) + "\n"
    names = list(
        dict.fromkeys(name for measured in measurements for name in measured["latency_ms"][shapes[0]]["encoders"])
    )
    rows = [
        [name, layout_text(record, name), *(ratio_and_range(record.latency_ratios(shape, name)) for shape in shapes)]
        for name in names
    ]
    lines += [
        "Layouts: one letter per layer, bottom first (s self-attention, a additive, p pooling). Latency: per "
        f"measurement the median of interleaved turns, as a ratio to {SAME_IMPLEMENTATION} timed in the same turns "
        "(below 1: faster); the mean over the measurements, with their range.",
        "",
        *markdown_table(["encoder", "layout", *(f"{shape.replace('x', ' × ')}" for shape in shapes)], rows),
        "",
        "Measurements (groups of at most N encoders, listed in the record, each group timed in R turns with the "
        "control; 1-minute load average before each shape; the control's median latency at each shape):",
        "",
    ]
    for measured in measurements:
        loads = [measured["latency_ms"][shape]["load_average_before"][0] for shape in shapes]
        control = ", ".join(
            f"{measured['latency_ms'][shape]['encoders'][SAME_IMPLEMENTATION]['latency_ms']:.1f}" for shape in shapes
        )
        note = f" ({measured['note']})" if measured.get("note") else ""
        lines.append(
            f"- {measured['measured_at']}, commit {short_commit(measured['git_commit'])}{note}, N = "
            f"{measured['group_size']}, R = {measured['repeats']}: load "
            f"{', '.join(f'{load:.1f}' for load in loads)} (median {statistics.median(loads):.1f}); "
            f"{SAME_IMPLEMENTATION} {control} ms."
        )
    return "\n".join(lines) + "\n"


def layout_text(record: FrontierRecord, name: str) -> str:
    mixer, _, k = name.partition(" k=")
    if k:
        return "".join(mixer_type[0] for mixer_type in record.layouts[mixer][k])
    if name in (HF_BERT, SAME_IMPLEMENTATION):
        return "all s"
    variant, _ = healing_conversions().get(name, (None, None))
    if variant is None:
        return "–"
    layers = len(next(iter(record.layouts[next(iter(record.layouts))].values())))
    return "".join(mixer_type[0] for mixer_type in VARIANTS[variant].layout(layers))


def short_commit(commit: str) -> str:
    """The commit's first 10 characters, with "+dirty" kept: a record made from uncommitted code says so."""
    name, dirty, _ = commit.partition("+dirty")
    return name[:10] + dirty


def main(argv: list[str] | None = None) -> FrontierRecord:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="minilm")
    parser.add_argument("--tasks", nargs="+", default=["trec", "wiki-topics"])
    parser.add_argument("--texts_per_task", type=int, default=256)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--batch_sizes", type=int, nargs="+", help=f"default {DEFAULT_PROTOCOL['batch_sizes']}")
    parser.add_argument("--seqs", type=int, nargs="+", help=f"default {DEFAULT_PROTOCOL['seqs']}")
    parser.add_argument("--repeats", type=int, help=f"Turns per group (default {DEFAULT_PROTOCOL['repeats']})")
    parser.add_argument(
        "--group_size", type=int,
        help=f"Encoders timed in one turn beside the control (default {DEFAULT_PROTOCOL['group_size']})",
    )  # fmt: skip
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--repeat_latency", action="store_true",
        help="Only time the record's layouts again (its shapes and protocol) and add the measurement to it",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="What else ran on the machine while latency was timed")
    parser.add_argument("--report_only", action="store_true", help="Only write the page from the record")
    args = parser.parse_args(argv)
    if args.report_only:
        record = FrontierRecord.read(args.output_dir / "frontier.json")
    elif args.repeat_latency:
        record = FrontierRecord.read(args.output_dir / "frontier.json")
        given = [f"--{key}" for key in DEFAULT_PROTOCOL if getattr(args, key) is not None]
        if given and record.latency_measurements:
            raise ValueError(
                f"--repeat_latency keeps the record's protocol (its first measurement's); {', '.join(given)} would "
                "change it: leave them out, or start a new record."
            )
        record = repeat_latency(args, record)
    else:
        record = measure(args)
    if not args.report_only:
        record.write(args.output_dir / "frontier.json")
    write_text_atomic(args.output_dir / "README.md", report(record))
    print(report(record), flush=True)
    return record


if __name__ == "__main__":
    main()
