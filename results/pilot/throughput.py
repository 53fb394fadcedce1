"""Training throughput of the pilot's candidate settings, interleaved (A B C … A B C …) so that whatever else the
machine does hits every candidate alike: the ratios hold under load, the absolute tokens/s only on an idle machine.

    python -m results.pilot.throughput --steps_per_turn 10 --turns 4 --output results/pilot/throughput.json

Each candidate is `bert` at the named size with the given config overrides, one MLM training step (forward with 15%
labelled positions through the sparse head, backward, AdamW step) on a fixed random batch of batch × 128 tokens.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes.benchmark import BenchmarkArguments, metadata, optimizer_for, random_batch, seconds_per_call, training_step

SEQ = 128
PRE_LN_NO_DROPOUT = dict(norm_style="pre", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# name -> (size, config overrides, batch, bf16)
CANDIDATES: dict[str, tuple[str, dict, int, bool]] = {
    "mini-post-fp32": ("mini", {}, 32, False),
    "mini-post-bf16": ("mini", {}, 32, True),
    "6x256-pre-bf16-b32": ("mini", dict(num_hidden_layers=6, **PRE_LN_NO_DROPOUT), 32, True),
    "6x256-pre-bf16-b16": ("mini", dict(num_hidden_layers=6, **PRE_LN_NO_DROPOUT), 16, True),
    "6x256-pre-bf16-b8": ("mini", dict(num_hidden_layers=6, **PRE_LN_NO_DROPOUT), 8, True),
    "6x384-pre-bf16-b16": ("minilm", PRE_LN_NO_DROPOUT, 16, True),
}  # fmt: skip
REFERENCE = "mini-post-fp32"


@dataclass
class ThroughputArguments:
    candidates: list[str] = field(default_factory=lambda: list(CANDIDATES))
    steps_per_turn: int = 10
    turns: int = 4
    output: str | None = None


def main(argv: list[str] | None = None) -> dict:
    (args,) = HfArgumentParser(ThroughputArguments).parse_args_into_dataclasses(argv)
    unknown = [name for name in args.candidates if name not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown candidate {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}.")
    bench = BenchmarkArguments(sections=["train"])
    steps, tokens = {}, {}
    for name in args.candidates:
        size, overrides, batch, bf16 = CANDIDATES[name]
        torch.manual_seed(bench.seed)
        model = HybridBertForMaskedLM(HybridBertConfig.from_variant("bert", size=size, **overrides))
        steps[name] = training_step(model, optimizer_for(model), random_batch(batch, SEQ, True, bench), bf16)
        tokens[name] = batch * SEQ
        steps[name]()  # warm-up: allocates the optimizer state
    times = {name: [] for name in steps}
    for turn in range(args.turns):
        for name, step in steps.items():
            times[name].append(seconds_per_call(step, args.steps_per_turn, bench.device))
        print(f"turn {turn + 1}/{args.turns}: " + ", ".join(f"{n} {tokens[n] / times[n][-1]:,.0f}" for n in steps), file=sys.stderr)
    records = {}
    for name in steps:
        size, overrides, batch, bf16 = CANDIDATES[name]
        median = statistics.median(times[name])
        records[name] = {
            "size": size, "overrides": overrides, "batch": batch, "seq": SEQ, "bf16": bf16,
            "tokens_per_s": tokens[name] / median, "median_s_per_step": median, "times_s_per_step": times[name],
        }  # fmt: skip
    if REFERENCE in records:
        for record in records.values():
            record["ratio_vs_" + REFERENCE] = record["tokens_per_s"] / records[REFERENCE]["tokens_per_s"]
    result = {"metadata": metadata(bench), "steps_per_turn": args.steps_per_turn, "turns": args.turns, "candidates": records}
    for name, record in records.items():
        ratio = record.get("ratio_vs_" + REFERENCE)
        print(f"{name}: {record['tokens_per_s']:,.0f} tokens/s" + (f" ({ratio:.2f}x {REFERENCE})" if ratio else ""))
    if args.output:
        with open(args.output, "w") as out:
            json.dump(result, out, indent=2)
    return result


if __name__ == "__main__":
    main()
