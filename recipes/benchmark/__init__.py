"""Speed, memory and parameters of every HybridBERT variant beside HF BERT, measured in one run.

Within each measured setting the models take turns (A B C … A B C …, after a warm-up) and the medians are reported,
so machine drift hits all of them alike; every model of a setting has the same size, dtype, threads and batch.

Models: each variant as `HybridBertForMaskedLM` (sparse MLM head), `hf-bert` (transformers' `BertForMaskedLM` with
SDPA and the `bert` variant's dimensions) and `bert-dense-head` (the project's `bert` with `sparse_prediction=False`,
which isolates what the sparse MLM head buys). Inference times the bare encoders (`HybridBertModel`, `BertModel`).

    python -m recipes.benchmark                                   # every section; mini and base sizes -> results/
    python -m recipes.benchmark --sections train memory --train_seqs 128 2048
    python -m recipes.benchmark --sections infer --base_size base --long_seq 2048
    python -m recipes.benchmark --quick --output_dir /tmp/bench    # tiny sizes, short lengths: what the tests run
    python -m recipes.benchmark --device cuda --dtype bfloat16
    python -m recipes.benchmark --sections recipe --recipe_compile   # fp32 recipe vs defaults (+ compile), MFU, profile

Sections (--sections): params, train, infer, memory, scaling, bf16, recipe. Writes benchmark_<device>.json and
benchmark_<device>.md into --output_dir (<device> is `cpu`, or the CUDA device's name). The JSON:

    metadata        device, device_name, threads, dtype, torch, transformers, python, git_commit, date, arguments
    section_seconds {section: wall seconds}
    params          size, max_position_embeddings, models: {model: {components: {...}, encoder_total, mlm_total}}
    train           metric "tokens_per_s", tokens_per_step, settings: [{size, seq, batch, models: {model: record}}]
    infer           metric "latency_ms", settings: [{size, seq, batch, models: {encoder: record}}]
    memory          metric "peak_mib", measures (what the number is), settings: as train
    scaling         size, hidden_size, num_heads, batch, pass, sdpa_flops_counted_natively, flop_counting,
                    mixers: {mixer: [{seq, median_s, times_s, flops, time_growth, flops_growth, time_vs_self,
                    flops_vs_self, gflop_per_s}]}
    bf16            metric "tokens_per_s", settings: [{model, size, seq, batch, precisions: {float32, bfloat16}}]
    recipe          metric "tokens_per_s", configurations {name: {bf16, attention_mask, compile}}, matmul_peak_flops
                    {configuration: FLOP/s}, settings: [{model, size, seq, batch, model_flops_per_token, compile_s,
                    configs: {configuration: record + mfu}}], profile {model, seq, configuration, sdpa_kernels,
                    ops: [{op, calls_per_step, ms_per_step, share}]}
    targets         [{target, ratio, goal, met, basis}]

A timed record holds its metric, median_s and times_s (seconds per call, one per turn); a memory record peak_mib and
baseline_mib. Every record has ratio_vs: {reference: its metric / the reference's} for the references hf-bert and bert
(float32 in bf16).

The jobs are modules: `harness` (arguments, models, batches, interleaved timing), `sections` (what each section
measures), `targets` (the ratios judged against the project's bars) and `report` (the markdown); the JSON is a
`recipes.records.BenchmarkRecord`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch

from recipes.benchmark.harness import SECTIONS, BenchmarkArguments, log, metadata
from recipes.benchmark.report import report_markdown
from recipes.benchmark.sections import SECTION_RUNNERS
from recipes.benchmark.targets import evaluate_targets
from recipes.environment import device_name
from recipes.records import BenchmarkRecord, write_text_atomic
from recipes.training import arguments as recipe_arguments


def run_benchmark(args: BenchmarkArguments) -> BenchmarkRecord:
    torch.set_num_threads(args.threads)
    run_metadata = metadata(args)
    measured, section_seconds = {}, {}
    for name in SECTIONS:
        if name in args.sections:
            start = time.perf_counter()
            measured[name] = SECTION_RUNNERS[name](args)
            section_seconds[name] = time.perf_counter() - start
            log(f"{name}: {section_seconds[name]:.0f} s")
    targets = evaluate_targets(args, measured)
    return BenchmarkRecord(metadata=run_metadata, section_seconds=section_seconds, **measured, targets=targets)


def device_slug(device: torch.device) -> str:
    return "cpu" if device.type == "cpu" else re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def report_paths(args: BenchmarkArguments) -> tuple[Path, Path]:
    """Where a benchmark with these arguments writes its JSON and markdown."""
    stem = Path(args.output_dir) / f"benchmark_{device_slug(torch.device(args.device))}"
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def write_reports(record: BenchmarkRecord, args: BenchmarkArguments) -> tuple[Path, Path]:
    json_path, markdown_path = report_paths(args)
    record.write(json_path)
    write_text_atomic(markdown_path, report_markdown(record))
    return json_path, markdown_path


def parse_args(argv: list[str] | None) -> BenchmarkArguments:
    (args,) = recipe_arguments.parse_args((BenchmarkArguments,), argv)
    return args


def main(argv: list[str] | None = None) -> tuple[Path, Path]:
    args = parse_args(argv)
    json_path, markdown_path = write_reports(run_benchmark(args), args)
    print(markdown_path.read_text())
    log(f"wrote {json_path} and {markdown_path}")
    return json_path, markdown_path
