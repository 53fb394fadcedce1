"""The benchmark's sections: each measures one thing of every model and returns its part of the record."""

from __future__ import annotations

import multiprocessing
import operator
import os
import resource
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from modeling import MIXER_SPECS
from modeling.modeling_hybrid_bert import MIXERS
from recipes.benchmark.harness import (
    HF_BERT,
    MIN_POSITIONS,
    PROFILE_STEPS,
    RECIPE_COMPILED,
    RECIPE_DEFAULTS,
    RECIPE_FP32,
    BenchmarkArguments,
    batch_size_for,
    build_model,
    build_models,
    compare,
    encoder_models,
    free_memory,
    hybrid_config,
    inference_step,
    interleaved_times,
    log,
    log_records,
    optimizer_for,
    positions_for,
    precision,
    random_batch,
    seconds_per_call,
    synchronize,
    training_models,
    training_step,
    with_ratios,
)
from recipes.models.parameters import components, hf_bert_breakdown, hybrid_breakdown
from recipes.training.mfu import matmul_peak, mfu, mlm_training_flops_per_token, native_bf16
from recipes.training.pretrain_arguments import ModelArguments, parse_overrides

# The first step allocates AdamW's state; the second shows the steady-state peak.
PROBE_TRAINING_STEPS = 2

MEMORY_MEASURES = {
    "cpu": "peak resident memory (getrusage ru_maxrss) of a fresh process per model and length, minus its resident "
    "memory after imports and before the model is built: weights, gradients, AdamW state, activations and allocator "
    f"overhead over {PROBE_TRAINING_STEPS} training steps (lazily loaded library pages and the allocator make "
    "differences of a few tens of MiB noise)",
    "cuda": "torch.cuda.max_memory_allocated over a fresh process per model and length, minus the memory allocated "
    f"before the model is built, over {PROBE_TRAINING_STEPS} training steps",
}
FLOP_COUNTING = (
    "FlopCounterMode counts matrix products (mm, bmm, addmm, attention kernels); elementwise ops, softmax and max "
    "pooling are not counted."
)


def benchmark_parameters(args: BenchmarkArguments) -> dict:
    """Per-component counts of each encoder (recipes.models.parameters), and the MLM model's total as benchmarked."""
    max_positions = positions_for(args.train_seqs)
    models = {}
    for name in training_models():
        config = hybrid_config(name, args.size, max_positions)
        breakdown = hf_bert_breakdown(config) if name == HF_BERT else hybrid_breakdown(config)
        with torch.device("meta"):
            mlm_total = build_model(name, args.size, max_positions, with_mlm_head=True).num_parameters()
        models[name] = {
            "components": {component: breakdown[component] for component in components()},
            "encoder_total": breakdown["total"],
            "mlm_total": mlm_total,
        }
    return {"size": args.size, "max_position_embeddings": max_positions, "models": models}


def benchmark_training(args: BenchmarkArguments) -> dict:
    models = build_models(training_models(), args.size, positions_for(args.train_seqs), True, args)
    bf16 = args.autocast_bf16
    settings = []
    for seq in args.train_seqs:
        batch_size = batch_size_for(args.tokens_per_step, seq)
        batch = random_batch(batch_size, seq, with_labels=True, args=args)
        steps = {name: training_step(model, optimizer_for(model), batch, bf16) for name, model in models.items()}
        tokens = batch_size * seq
        records = compare(steps, "tokens_per_s", lambda seconds, tokens=tokens: tokens / seconds, args)
        settings.append({"size": args.size, "seq": seq, "batch": batch_size, "models": records})
        log_records(f"train {args.size} {batch_size}x{seq}", records, "tokens_per_s")
        del steps
        free_memory()
    return {"metric": "tokens_per_s", "tokens_per_step": args.tokens_per_step, "settings": settings}


def inference_shapes(args: BenchmarkArguments) -> dict[str, list[tuple[int, int]]]:
    """(batch, seq) to time at each size: the size's own one-sequence and batched latencies, then base_size's
    one-sequence (HBERT's Table 2 setting) and long-sequence latencies."""
    shapes = {args.size: [(1, args.single_seq), (args.infer_batch_size, args.infer_batch_seq)]}
    shapes.setdefault(args.base_size, [])
    shapes[args.base_size] += [(1, args.single_seq), (1, args.long_seq)]
    return {size: list(dict.fromkeys(size_shapes)) for size, size_shapes in shapes.items()}


def benchmark_inference(args: BenchmarkArguments) -> dict:
    settings = []
    for size, shapes in inference_shapes(args).items():
        models = build_models(encoder_models(), size, positions_for(seq for _, seq in shapes), False, args)
        for batch_size, seq in shapes:
            inputs = random_batch(batch_size, seq, with_labels=False, args=args)
            steps = {name: inference_step(model, inputs, args.autocast_bf16) for name, model in models.items()}
            records = compare(steps, "latency_ms", lambda seconds: 1000 * seconds, args)
            settings.append({"size": size, "seq": seq, "batch": batch_size, "models": records})
            log_records(f"infer {size} {batch_size}x{seq}", records, "latency_ms")
        del models, steps
        free_memory()
    return {"metric": "latency_ms", "settings": settings}


def current_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def training_memory_probe(name: str, seq: int, args: BenchmarkArguments) -> dict[str, float]:
    """Runs in a fresh process: the peak memory of building a model and taking a few training steps."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    baseline = current_memory_mib(device)
    torch.manual_seed(args.seed)
    model = build_model(name, args.size, positions_for(args.train_seqs), with_mlm_head=True).to(device)
    batch = random_batch(batch_size_for(args.tokens_per_step, seq), seq, with_labels=True, args=args)
    step = training_step(model, optimizer_for(model), batch, args.autocast_bf16)
    for _ in range(PROBE_TRAINING_STEPS):
        step()
    synchronize(device)
    return {"peak_mib": peak_memory_mib(device) - baseline, "baseline_mib": baseline}


def in_fresh_process(function: Callable, *function_args):
    """Calls function in a new process forked from a server that has imported torch and transformers once, so that
    each call is cheap and starts from the same memory (a forked child's peak RSS starts at its current RSS)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "transformers", "modeling"])
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(function, *function_args).result()


def benchmark_memory(args: BenchmarkArguments) -> dict:
    settings = []
    for seq in args.train_seqs:
        records = {name: in_fresh_process(training_memory_probe, name, seq, args) for name in training_models()}
        batch_size = batch_size_for(args.tokens_per_step, seq)
        with_ratios(records, "peak_mib")
        settings.append({"size": args.size, "seq": seq, "batch": batch_size, "models": records})
        log_records(f"memory {args.size} {batch_size}x{seq}", records, "peak_mib")
    measures = MEMORY_MEASURES["cuda" if torch.device(args.device).type == "cuda" else "cpu"]
    return {"metric": "peak_mib", "measures": measures, "settings": settings}


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels but not the CPU one that SDPA dispatches to; count it with torch's
# own SDPA formulas rather than lose self-attention's quadratic term.
CPU_SDPA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def sdpa_counted_natively(device: torch.device | str) -> bool:
    probe = torch.ones(1, 1, 8, 8, device=device)
    with FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(probe, probe, probe)
    return counter.get_total_flops() > 0


def flops_of(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOP_FORMULAS) as counter:
        step()
    return counter.get_total_flops()


def mixer_step(mixer: torch.nn.Module, hidden: torch.Tensor, backward: bool, bf16: bool) -> Callable[[], None]:
    def forward() -> None:
        with torch.inference_mode(), precision(hidden.device, bf16):
            mixer(hidden, None)

    def forward_backward() -> None:
        with precision(hidden.device, bf16):
            mixed, _ = mixer(hidden, None)
        mixed.float().sum().backward()
        mixer.zero_grad(set_to_none=True)

    return forward_backward if backward else forward


def with_growth(rows_by_mixer: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Time and FLOPs relative to the shortest length (growth) and to self-attention at the same length."""
    for rows in rows_by_mixer.values():
        for index, row in enumerate(rows):
            shortest, self_attention = rows[0], rows_by_mixer["self"][index]
            row["time_growth"] = row["median_s"] / shortest["median_s"]
            row["flops_growth"] = row["flops"] / shortest["flops"]
            row["time_vs_self"] = row["median_s"] / self_attention["median_s"]
            row["flops_vs_self"] = row["flops"] / self_attention["flops"]
            row["gflop_per_s"] = row["flops"] / row["median_s"] / 1e9
    return rows_by_mixer


def benchmark_mixer_scaling(args: BenchmarkArguments) -> dict:
    config = hybrid_config("bert", args.size, positions_for(args.scaling_seqs))
    mixers = {}
    for mixer_type in MIXER_SPECS:
        torch.manual_seed(args.seed)
        mixers[mixer_type] = MIXERS[mixer_type](config).to(args.device).eval()
    rows = {mixer_type: [] for mixer_type in mixers}
    for seq in args.scaling_seqs:
        generator = torch.Generator().manual_seed(args.seed)
        hidden = torch.randn(1, seq, config.hidden_size, generator=generator).to(args.device)
        hidden.requires_grad_(args.scaling_backward)
        steps = {
            kind: mixer_step(mixer, hidden, args.scaling_backward, args.autocast_bf16) for kind, mixer in mixers.items()
        }
        for kind, times in interleaved_times(steps, args).items():
            rows[kind].append(
                {"seq": seq, "median_s": statistics.median(times), "times_s": times, "flops": flops_of(steps[kind])}
            )
        log(f"scaling seq {seq}: " + ", ".join(f"{kind} {rows[kind][-1]['median_s'] * 1e3:.2f} ms" for kind in rows))
    natively = sdpa_counted_natively(args.device)
    sdpa_note = (
        "SDPA's FLOPs are counted natively by FlopCounterMode on this device."
        if natively
        else "FlopCounterMode has no formula for the CPU SDPA kernel (aten._scaled_dot_product_flash_attention_for_cpu"
        "); its FLOPs are counted with torch's own SDPA formulas (sdpa_flop_count) through custom_mapping."
    )
    return {
        "size": args.size,
        "hidden_size": config.hidden_size,
        "num_heads": config.num_attention_heads,
        "batch": 1,
        "pass": "forward + backward" if args.scaling_backward else "forward",
        "sdpa_flops_counted_natively": natively,
        "flop_counting": f"{FLOP_COUNTING} {sdpa_note}",
        "mixers": with_growth(rows),
    }


def benchmark_bf16(args: BenchmarkArguments) -> dict:
    """Training under bf16 autocast against fp32, in turns on the same model and optimizer."""
    batch_size = batch_size_for(args.bf16_tokens_per_step, args.bf16_seq)
    batch = random_batch(batch_size, args.bf16_seq, with_labels=True, args=args)
    tokens = batch_size * args.bf16_seq
    settings = []
    for name in args.bf16_models:
        model = build_models([name], args.base_size, MIN_POSITIONS, True, args)[name]
        optimizer = optimizer_for(model)
        steps = {
            "float32": training_step(model, optimizer, batch, bf16=False),
            "bfloat16": training_step(model, optimizer, batch, bf16=True),
        }
        records = compare(
            steps, "tokens_per_s", lambda seconds, tokens=tokens: tokens / seconds, args, references=("float32",)
        )
        settings.append(
            {"model": name, "size": args.base_size, "seq": args.bf16_seq, "batch": batch_size, "precisions": records}
        )
        log_records(f"bf16 {name} {args.base_size} {batch_size}x{args.bf16_seq}", records, "tokens_per_s")
        del model, optimizer, steps
        free_memory()
    return {"metric": "tokens_per_s", "settings": settings}


def recipe_configurations(args: BenchmarkArguments) -> dict[str, dict]:
    """The pretraining recipe's settings before and after: fp32 with the collator's all-ones attention mask and the
    variant's own dropout, and recipes/pretrain.py's defaults (bf16 autocast where the device has native bf16, no
    all-ones mask, its pretraining dropout), optionally compiled. All use fused AdamW, as transformers' Trainer does
    by default. `dropout` None is the variant's own."""
    bf16 = native_bf16(args.device)
    dropout = ModelArguments().pretraining_dropout
    configurations = {
        RECIPE_FP32: {"bf16": False, "attention_mask": True, "dropout": None, "compile": False},
        RECIPE_DEFAULTS: {"bf16": bf16, "attention_mask": False, "dropout": dropout, "compile": False},
    }
    if args.recipe_compile:
        configurations[RECIPE_COMPILED] = {**configurations[RECIPE_DEFAULTS], "compile": True}
    return configurations


def recipe_model_fields(args: BenchmarkArguments, dropout: float | None) -> dict:
    """The config fields of a recipe configuration: --recipe_config_overrides, and the configuration's dropout."""
    fields = parse_overrides(args.recipe_config_overrides)
    if dropout is not None:
        fields.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return fields


def op_profile(step: Callable[[], None], args: BenchmarkArguments) -> tuple[list[dict], list[str]]:
    """The ops taking the most self time over a few steps (device time on CUDA), and the SDPA kernels that ran."""
    device = torch.device(args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(PROFILE_STEPS):
            step()
        synchronize(device)
    events = profiler.key_averages()
    self_time = operator.attrgetter("self_device_time_total" if device.type == "cuda" else "self_cpu_time_total")
    total = sum(self_time(event) for event in events)
    ranked = sorted(events, key=self_time, reverse=True)[: args.profile_rows]
    rows = [
        {
            "op": event.key,
            "calls_per_step": event.count / PROFILE_STEPS,
            "ms_per_step": self_time(event) / 1e3 / PROFILE_STEPS,
            "share": self_time(event) / total,
        }
        for event in ranked
    ]
    attention_kernels = sorted({event.key for event in events if "scaled_dot_product" in event.key})
    return rows, attention_kernels


def benchmark_recipe(args: BenchmarkArguments) -> dict:
    """Training steps of the fp32 recipe against the recipe's defaults, interleaved on same-seed models: tokens/s,
    MFU against the measured matmul peak of each configuration's dtype, and a per-op profile of the defaults."""
    configurations = recipe_configurations(args)
    peaks = {
        name: matmul_peak(args.device, torch.bfloat16 if settings["bf16"] else torch.float32)
        for name, settings in configurations.items()
    }
    settings_rows, profiled = [], None
    for name in args.recipe_models:
        for seq in args.recipe_seqs:
            batch_size = batch_size_for(args.recipe_tokens_per_step, seq)
            batch = random_batch(batch_size, seq, with_labels=True, args=args)
            unmasked = {key: value for key, value in batch.items() if key != "attention_mask"}
            labelled_fraction = (batch["labels"] != -100).float().mean().item()
            steps, compile_s = {}, None
            for configuration, settings in configurations.items():
                fields = recipe_model_fields(args, settings["dropout"])
                model = build_models([name], args.size, positions_for(args.recipe_seqs), True, args, **fields)[name]
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
                compiled = torch.compile(model) if settings["compile"] else model
                inputs = batch if settings["attention_mask"] else unmasked
                step = training_step(compiled, optimizer, inputs, settings["bf16"])
                if settings["compile"]:
                    compile_s = seconds_per_call(step, 1, args.device)  # the first call compiles
                steps[configuration] = step
            tokens = batch_size * seq
            flops_per_token = mlm_training_flops_per_token(model, seq, labelled_fraction)
            records = compare(
                steps, "tokens_per_s", lambda seconds, tokens=tokens: tokens / seconds, args, references=(RECIPE_FP32,)
            )
            for configuration, record in records.items():
                record["mfu"] = mfu(record["tokens_per_s"], flops_per_token, peaks[configuration])
            settings_rows.append(
                {
                    "model": name, "size": args.size, "config_overrides": args.recipe_config_overrides, "seq": seq, "batch": batch_size,
                    "model_flops_per_token": flops_per_token, "compile_s": compile_s, "configs": records,
                }
            )  # fmt: skip
            log_records(f"recipe {name} {args.size} {batch_size}x{seq}", records, "tokens_per_s")
            if profiled is None:
                profiled = {"model": name, "seq": seq, "configuration": RECIPE_DEFAULTS}
                profiled["ops"], profiled["sdpa_kernels"] = op_profile(steps[RECIPE_DEFAULTS], args)
            del model, optimizer, steps
            free_memory()
    return {
        "metric": "tokens_per_s",
        "configurations": configurations,
        "matmul_peak_flops": peaks,
        "settings": settings_rows,
        "profile": profiled,
    }


SECTION_RUNNERS: dict[str, Callable[[BenchmarkArguments], dict]] = {
    "params": benchmark_parameters,
    "train": benchmark_training,
    "infer": benchmark_inference,
    "memory": benchmark_memory,
    "scaling": benchmark_mixer_scaling,
    "bf16": benchmark_bf16,
    "recipe": benchmark_recipe,
}
