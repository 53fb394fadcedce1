"""The benchmark's markdown report, rendered from its record alone."""

from __future__ import annotations

from recipes.benchmark.harness import (
    METRIC_COLUMNS,
    MLM_PROBABILITY,
    PROFILE_STEPS,
    RECIPE_COMPILED,
    RECIPE_FP32,
    REFERENCES,
    TIMING,
)
from recipes.cards.markdown import markdown_table
from recipes.cards.markdown import ratio as format_ratio
from recipes.models.parameters import components
from recipes.records import BenchmarkRecord


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(markdown_table(header, rows))


def ratios_to_references(record: dict) -> list[float | None]:
    return [record["ratio_vs"].get(reference) for reference in REFERENCES]


def setting_title(setting: dict) -> str:
    return f"{setting['size']}, batch {setting['batch']} × seq {setting['seq']}"


def comparison_tables(section: dict) -> str:
    """One table per setting: each model's metric and its ratio to each reference row."""
    label, number = METRIC_COLUMNS[section["metric"]]
    tables = []
    for setting in section["settings"]:
        header = ["model", label, *(f"÷ {reference}" for reference in REFERENCES)]
        rows = [
            [name, number.format(record[section["metric"]]), *map(format_ratio, ratios_to_references(record))]
            for name, record in setting["models"].items()
        ]
        tables.append(f"**{setting_title(setting)}**\n\n{table(header, rows)}")
    return "\n\n".join(tables)


def totals_of(parameter_record: dict) -> tuple[int, int]:
    return parameter_record["encoder_total"], parameter_record["mlm_total"]


def parameters_markdown(section: dict) -> str:
    header = ["model", *components(), "encoder total", "MLM total"]
    rows = [
        [name, *(f"{count / 1e6:.2f}M" for count in (*record["components"].values(), *totals_of(record)))]
        for name, record in section["models"].items()
    ]
    return (
        f"Size {section['size']}, max_position_embeddings {section['max_position_embeddings']}. Components of the "
        "encoder (`recipes.models.parameters`, pooler included, = `HybridBertModel.num_parameters()`); MLM total = "
        "`num_parameters()` of the benchmarked masked-LM model (no pooler; the decoder is tied to the word "
        f"embeddings).\n\n{table(header, rows)}"
    )


def training_markdown(section: dict) -> str:
    return (
        f"Forward with labels + backward + AdamW step, MLM with {MLM_PROBABILITY:.0%} of positions labelled, "
        f"~{section['tokens_per_step']} tokens per step; {TIMING}. Dropout as each variant sets "
        "it: on CPU, attention dropout > 0 sends SDPA to its math kernel (seq × seq probabilities in memory). "
        f"÷ columns: tokens/s over the reference's (> 1 is faster).\n\n{comparison_tables(section)}"
    )


def inference_markdown(section: dict) -> str:
    return (
        f"Bare encoders (`HybridBertModel`, HF `BertModel`), eval mode, no grad; {TIMING}. "
        f"÷ columns: latency over the reference's (< 1 is faster).\n\n{comparison_tables(section)}"
    )


def memory_markdown(section: dict) -> str:
    return f"Measures {section['measures']}. ÷ columns: over the reference's.\n\n{comparison_tables(section)}"


def scaling_markdown(section: dict) -> str:
    header = ["mixer", "seq", "median (ms)", "time ×", "GFLOP", "FLOPs ×", "time ÷ self", "FLOPs ÷ self", "GFLOP/s"]
    rows = [
        [
            mixer,
            str(row["seq"]),
            f"{row['median_s'] * 1e3:.2f}",
            f"{row['time_growth']:.2f}",
            f"{row['flops'] / 1e9:.3f}",
            f"{row['flops_growth']:.2f}",
            f"{row['time_vs_self']:.2f}",
            f"{row['flops_vs_self']:.2f}",
            f"{row['gflop_per_s']:.1f}",
        ]
        for mixer, mixer_rows in section["mixers"].items()
        for row in mixer_rows
    ]
    return (
        f"Each mixer alone at size {section['size']} (hidden {section['hidden_size']}, {section['num_heads']} heads), "
        f"batch 1, {section['pass']}, no padding, eval mode (no dropout, so self-attention runs SDPA's fused kernel); "
        f"{TIMING}. × columns: relative to the shortest "
        f"length; ÷ self: relative to self-attention at the same length. {section['flop_counting']}\n\n"
        f"{table(header, rows)}"
    )


def bf16_markdown(section: dict) -> str:
    header = ["model", "size", "batch × seq", "fp32 tokens/s", "bf16 tokens/s", "bf16 ÷ fp32"]
    rows = []
    for setting in section["settings"]:
        fp32, bf16 = setting["precisions"]["float32"], setting["precisions"]["bfloat16"]
        throughputs = [METRIC_COLUMNS["tokens_per_s"][1].format(p["tokens_per_s"]) for p in (fp32, bf16)]
        shape = f"{setting['batch']} × {setting['seq']}"
        rows.append([setting["model"], setting["size"], shape, *throughputs, format_ratio(bf16["ratio_vs"]["float32"])])
    return (
        "Training steps under `torch.autocast(device, dtype=torch.bfloat16)` against fp32 on the same model and "
        f"optimizer; {TIMING}.\n\n{table(header, rows)}"
    )


def recipe_dropout(configuration: dict) -> str:
    # Records made before the recipe had its own pretraining dropout ran every configuration with the variant's.
    dropout = configuration.get("dropout")
    return "the variant's dropout" if dropout is None else f"dropout {dropout:g}"


def recipe_markdown(section: dict) -> str:
    peaks = ", ".join(f"{name} {flops / 1e9:,.0f} GFLOP/s" for name, flops in section["matmul_peak_flops"].items())
    described = "; ".join(
        f"{name}: {'bf16 autocast' if c['bf16'] else 'fp32'}{', all-ones attention mask' if c['attention_mask'] else ''}"
        f", {recipe_dropout(c)}{', torch.compile' if c['compile'] else ''}"
        for name, c in section["configurations"].items()
    )
    header = ["model", "size", "batch × seq", "configuration", "tokens/s", "MFU", f"÷ {RECIPE_FP32}", "compile (s)"]
    rows = [
        [
            setting["model"],
            setting["size"] + (f" ({setting['config_overrides']})" if setting.get("config_overrides") else ""),
            f"{setting['batch']} × {setting['seq']}",
            name,
            f"{record['tokens_per_s']:,.0f}",
            f"{100 * record['mfu']:.1f}%",
            format_ratio(record["ratio_vs"][RECIPE_FP32]),
            f"{setting['compile_s']:.0f}" if name == RECIPE_COMPILED else "–",
        ]  # fmt: skip
        for setting in section["settings"]
        for name, record in setting["configs"].items()
    ]
    profiled = section["profile"]
    op_rows = [
        [f"`{op['op']}`", f"{op['calls_per_step']:g}", f"{op['ms_per_step']:,.1f}", f"{100 * op['share']:.1f}%"]
        for op in profiled["ops"]
    ]
    return (
        f"Training steps (forward with labels, backward, fused AdamW) of {described}; {TIMING}. MFU: tokens/s × model "
        f"FLOPs per token (recipes/training/mfu.py: matmuls and attention, ×3 for the backward, the sparse head at its labelled "
        f"rows) over the measured matmul peak of the configuration's dtype ({peaks}).\n\n{table(header, rows)}"
        f"\n\nWhere a `{profiled['configuration']}` step of `{profiled['model']}` at seq {profiled['seq']} spends its "
        f"time (torch.profiler, self time per op, mean of {PROFILE_STEPS} steps; SDPA kernels that ran: "
        f"{', '.join(f'`{kernel}`' for kernel in profiled['sdpa_kernels']) or 'none'}):\n\n"
        + table(["op", "calls per step", "ms per step", "share"], op_rows)
    )


def targets_markdown(evaluated: list[dict]) -> str:
    met_labels = {True: "yes", False: "no", None: "not measured"}
    rows = [
        [target["target"], format_ratio(target["ratio"]), target["goal"], met_labels[target["met"]], target["basis"]]
        for target in evaluated
    ]
    return table(["target", "ratio", "goal", "met", "basis"], rows)


SECTION_MARKDOWN = {
    "params": ("Parameters", parameters_markdown),
    "train": ("Training throughput", training_markdown),
    "infer": ("Inference latency", inference_markdown),
    "memory": ("Training peak memory", memory_markdown),
    "scaling": ("Mixer time and FLOPs against length", scaling_markdown),
    "bf16": ("bf16 autocast against fp32", bf16_markdown),
    "recipe": ("The pretraining recipe: fp32 against its defaults, with MFU", recipe_markdown),
}


def report_markdown(record: BenchmarkRecord) -> str:
    meta = record.metadata
    lines = [
        "# HybridBERT benchmark",
        "",
        f"- device: {meta['device']} ({meta['device_name']})",
        f"- threads: {meta['threads']}",
        f"- dtype: {meta['dtype']}",
        f"- torch {meta['torch']}, transformers {meta['transformers']}, Python {meta['python']}",
        f"- date: {meta['date']}",
        "- section runtimes: " + ", ".join(f"{name} {s:.0f} s" for name, s in record.section_seconds.items()),
        "",
        "## Targets",
        "",
        "Ratios computed from this run's measurements (see the sections below).",
        "",
        targets_markdown(record.targets),
    ]
    for name, (title, render) in SECTION_MARKDOWN.items():
        if record.section(name):
            lines += ["", f"## {title}", "", render(record.section(name))]
    return "\n".join(lines) + "\n"
