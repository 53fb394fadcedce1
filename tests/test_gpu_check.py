"""studies/gpu_check.py, in its CPU-runnable form: the benchmark part at a tiny size and the summary it writes; the
ZeRO-2 command as it would be launched."""

from __future__ import annotations

import json

from recipes.benchmark.harness import HF_BERT, RECIPE_DEFAULTS, RECIPE_FP32
from recipes.training.arguments import parse_args
from studies import gpu_check

SMOKE = ["--device", "cpu", "--size", "tiny", "--seqs", "32", "--tokens_per_step", "64", "--torch_compile", "false",
         "--repeats", "1", "--zero2_steps", "0"]  # fmt: skip


def test_cpu_smoke_run_writes_the_benchmark_and_its_summary(tmp_path):
    summary = gpu_check.main([*SMOKE, "--output_dir", str(tmp_path)])
    measured = json.loads((tmp_path / "benchmark_cpu.json").read_text())
    assert [(s["model"], s["seq"]) for s in measured["recipe"]["settings"]] == [("bert", 32), (HF_BERT, 32)]
    text = summary.read_text()
    for model in ("bert", HF_BERT):
        for configuration in (RECIPE_FP32, RECIPE_DEFAULTS):
            assert f"| {model} | 32 | {configuration} |" in text
    assert "SDPA kernels that ran" in text and "scaled_dot_product" in text
    assert not (tmp_path / "zero2_budget.json").exists()


def test_zero2_run_is_one_deepspeed_process_of_the_recipe(tmp_path):
    (args,) = parse_args((gpu_check.GpuCheckArguments,), [*SMOKE, "--zero2_steps", "5", "--output_dir", str(tmp_path)])
    command = gpu_check.zero2_command(args, tmp_path / "run")
    assert command[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "1"]
    assert command[command.index("--deepspeed") + 1] == str(gpu_check.ZERO2_CONFIG)
    assert command[command.index("--max_steps") + 1] == "5" and "--use_cpu" in command
    assert command[-4:] == ["--per_device_train_batch_size", "32", "--max_seq_length", "128"]
