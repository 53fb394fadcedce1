"""The GPU check: what the recipe makes of one CUDA device, in one command that finishes in under 10 minutes.

    python -m studies.gpu_check                    # on a machine with a CUDA GPU -> results/gpu_check_<device>/
    python -m studies.gpu_check --device cpu --size tiny --seqs 32 --tokens_per_step 128 --torch_compile false \\
        --zero2_steps 0 --output_dir /tmp/gpu-check  # its CPU-runnable part, in seconds

1. The benchmark's `recipe` section at `base` size for the project's `bert` and HF's `BertForMaskedLM`, at sequence
   128 and 512: the fp32 recipe against the bf16 defaults and the defaults under torch.compile, interleaved; tokens/s,
   MFU against the measured bf16 matmul peak, compile time, a per-op profile and the SDPA kernels that ran.
2. A short ZeRO-2 pretraining run on one GPU: `torchrun --nproc_per_node 1 recipes/pretrain.py --deepspeed
   recipes/ds_zero2.json` at `base` size (bf16 by default on a GPU with native bf16), whose budget.json records
   tokens/s, MFU and the precision accelerate ran. On one rank ZeRO-2 partitions nothing: this checks that the
   recipe runs under DeepSpeed on a GPU, and what it costs.

Writes benchmark_<device>.json/.md, zero2_budget.json and summary.md into `--output_dir` (default
`results/gpu_check_<device>`, `<device>` the GPU's name as the benchmark spells it). The machine needs the project's
packages with a CUDA torch, and the embedded corpus and tokenizer in its asset cache (`HYBRID_BERT_CACHE`, see
recipes/data/assets.py): nothing is downloaded.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recipes import benchmark
from recipes.benchmark.harness import HF_BERT, RECIPE_FP32
from recipes.cards.markdown import markdown_table, ratio
from recipes.environment import REPO_ROOT
from recipes.records import BenchmarkRecord, PretrainingRecord, write_json, write_text_atomic
from recipes.training.arguments import parse_args

ZERO2_CONFIG = REPO_ROOT / "recipes" / "ds_zero2.json"


@dataclass
class GpuCheckArguments:
    device: str = field(default="cuda", metadata={"help": "cuda, cuda:N, or cpu for a smoke run"})
    size: str = field(default="base", metadata={"help": "model size of both parts"})
    seqs: list[int] = field(default_factory=lambda: [128, 512], metadata={"help": "sequence lengths of the benchmark"})
    tokens_per_step: int = field(default=16384, metadata={"help": "tokens per benchmarked training step"})
    torch_compile: bool = field(default=True, metadata={"help": "also time the defaults under torch.compile"})
    repeats: int = field(default=5, metadata={"help": "timed turns per configuration (the median is reported)"})
    zero2_steps: int = field(default=60, metadata={"help": "optimizer steps of the ZeRO-2 run (0: skip it)"})
    zero2_args: str = field(
        default="--per_device_train_batch_size 32 --max_seq_length 128",
        metadata={"help": "further recipes/pretrain.py arguments of the ZeRO-2 run"},
    )
    output_dir: str | None = field(default=None, metadata={"help": "default: results/gpu_check_<device>"})

    def __post_init__(self):
        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"--device {self.device}: no CUDA device here; --device cpu runs the smoke version.")
        if self.output_dir is None:
            self.output_dir = str(
                REPO_ROOT / "results" / f"gpu_check_{benchmark.device_slug(torch.device(self.device))}"
            )


def benchmark_argv(args: GpuCheckArguments) -> list[str]:
    return [
        "--device", args.device, "--sections", "recipe", "--size", args.size,
        "--recipe_models", "bert", HF_BERT, "--recipe_seqs", *map(str, args.seqs),
        "--recipe_tokens_per_step", str(args.tokens_per_step), "--recipe_compile", str(args.torch_compile),
        "--repeats", str(args.repeats), "--output_dir", args.output_dir,
    ]  # fmt: skip


def zero2_command(args: GpuCheckArguments, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(REPO_ROOT / "recipes" / "pretrain.py"),
        "--deepspeed", str(ZERO2_CONFIG), "--variant", "bert", "--size", args.size,
        "--max_steps", str(args.zero2_steps), "--budget", "10m", "--num_eval_points", "0", "--eval_on_start", "false",
        "--output_dir", str(run_dir), *(["--use_cpu"] if torch.device(args.device).type == "cpu" else []),
        *shlex.split(args.zero2_args),
    ]  # fmt: skip


def run_zero2(args: GpuCheckArguments) -> PretrainingRecord:
    """The ZeRO-2 run's budget.json; its weights and checkpoint go to a temporary folder that is then removed."""
    run_dir = Path(tempfile.mkdtemp(prefix="zero2-")) / "run"
    try:
        # The recipe runs as a script: the repository root must be importable for `modeling` and `recipes`.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        subprocess.run(zero2_command(args, run_dir), cwd=REPO_ROOT, env=env, check=True)
        return PretrainingRecord.read(run_dir)
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def summary_markdown(measured: BenchmarkRecord, zero2: PretrainingRecord | None) -> str:
    recipe = measured.section("recipe")
    rows = [
        [
            setting["model"],
            str(setting["seq"]),
            name,
            f"{record['tokens_per_s']:,.0f}",
            f"{100 * record['mfu']:.1f}%",
            ratio(record["ratio_vs"][RECIPE_FP32]),
        ]  # fmt: skip
        for setting in recipe["settings"]
        for name, record in setting["configs"].items()
    ]
    lines = [
        f"# GPU check: {measured.metadata['device_name']}",
        "",
        f"SDPA kernels that ran (a `defaults` step of `{recipe['profile']['model']}`): "
        + ", ".join(f"`{kernel}`" for kernel in recipe["profile"]["sdpa_kernels"]),
        "",
        *markdown_table(["model", "seq", "configuration", "tokens/s", "MFU", f"÷ {RECIPE_FP32}"], rows),
    ]
    if zero2 is not None:
        training, utilisation = zero2.run_record.training, zero2.utilisation
        lines += [
            "",
            (
                f"ZeRO-2, one process: {zero2.steps} steps, {zero2.tokens_per_s:,.0f} tokens/s, MFU "
                f"{100 * utilisation['mfu']:.1f}% of the {utilisation['matmul_dtype']} peak; mixed precision "
                f"`{training['mixed_precision']}`, optimizer {training['optimizer']}."
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    (args,) = parse_args((GpuCheckArguments,), argv)
    json_path, _ = benchmark.main(benchmark_argv(args))
    zero2 = run_zero2(args) if args.zero2_steps > 0 else None
    output_dir = Path(args.output_dir)
    if zero2 is not None:
        write_json(output_dir / "zero2_budget.json", zero2.to_dict())
    summary = write_text_atomic(output_dir / "summary.md", summary_markdown(BenchmarkRecord.read(json_path), zero2))
    print(summary.read_text())
    return summary


if __name__ == "__main__":
    main()
