"""What the pretraining and fine-tuning recipes share in their arguments: TrainingArguments defaults and parsing, and
which of them shape a run's result (its identity) and which only its conditions."""

from __future__ import annotations

import socket
import sys
import warnings
from dataclasses import dataclass

import torch
from transformers import HfArgumentParser, TrainingArguments

from recipes.environment import git_commit
from recipes.training.mfu import native_bf16

BF16_HELP = (
    "bf16 autocast. Default: on where the device has native bf16 matmuls (AVX512-BF16/AMX, Ampere+); --bf16 false leaves "
    "the precision to accelerate's config (fp32 unless it says bf16)"
)


def bf16_where_native() -> bool:
    """The default of pretraining's and calibration's --bf16 (one function, so that a calibration is measured in the
    precision pretraining then runs in): on where the training device multiplies bf16 natively."""
    return native_bf16(torch.accelerator.current_accelerator(check_available=True) or "cpu")


def warn_if_bf16_is_emulated(bf16: bool) -> None:
    """Asked-for bf16 on a device that only emulates it: a run that takes minutes with native bf16 can take hours (on
    an AVX2 CPU a bf16 matmul measured about 80 times slower than fp32; docs/pretraining.md)."""
    if bf16 and not bf16_where_native():
        warnings.warn(
            "--bf16 true on a device without native bf16 matmuls (a CPU without AVX512-BF16 or AMX): bf16 is "
            "emulated and many times slower than fp32. --bf16 false trains in fp32; a calibration or a run made "
            "with native bf16 is not reproduced bit for bit in fp32.",
            stacklevel=2,
        )


@dataclass
class RecipeTrainingArguments(TrainingArguments):
    """TrainingArguments as both recipes run them: no reporting service, every process on the same device kind, and no
    checkpoint unless the recipe asks for one. Progress bars stay on (pretraining's fills with the budget clock)."""

    save_strategy: str = "no"
    report_to: None | str | list[str] = "none"
    dataloader_pin_memory: bool = torch.cuda.is_available()
    # Without an accelerator, ranks must be CPU ranks (gloo); otherwise accelerate runs them as unconnected processes.
    use_cpu: bool = not torch.accelerator.is_available()
    ddp_find_unused_parameters: bool | None = False


# TrainingArguments that change a run's trajectory: a command continuing a run must repeat them (see RunIdentity).
TRAJECTORY_FIELDS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "lr_scheduler_type",
    "lr_scheduler_kwargs", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "optim", "optim_args", "optim_target_modules", "seed", "data_seed", "max_steps", "num_train_epochs", "bf16",
    "fp16", "tf32", "torch_compile", "torch_compile_mode", "torch_compile_backend", "label_smoothing_factor",
    "gradient_checkpointing", "gradient_checkpointing_kwargs", "ignore_data_skip", "neftune_noise_alpha",
    "train_sampling_strategy", "dataloader_drop_last", "full_determinism", "deepspeed",
    "average_tokens_across_devices",
)  # fmt: skip
# TrainingArguments that may differ between the commands of one run; the identity keeps the latest command's.
CONDITION_FIELDS = ("logging_steps", "save_total_limit", "per_device_eval_batch_size", "dataloader_num_workers")


def trajectory_settings(training_args: TrainingArguments) -> dict:
    return {
        **{name: getattr(training_args, name) for name in TRAJECTORY_FIELDS},
        "world_size": training_args.world_size,
    }


def run_conditions(training_args: TrainingArguments, **extra) -> dict:
    """What the identity records of the command's conditions: code, threads, host, logging and evaluation cadence."""
    return {
        **{name: getattr(training_args, name) for name in CONDITION_FIELDS},
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "git_commit": git_commit(),
        **extra,
    }


def parse_args(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """`argv` (default: the command line): flags, or a single JSON file of arguments, as HF's example scripts take."""
    parser = HfArgumentParser(dataclass_types)
    given = sys.argv[1:] if argv is None else argv
    if len(given) == 1 and given[0].endswith(".json"):
        return parser.parse_json_file(given[0])
    return parser.parse_args_into_dataclasses(given)
