"""What the pretraining and fine-tuning recipes share in their arguments: TrainingArguments defaults and parsing."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from transformers import HfArgumentParser, TrainingArguments

from recipes.mfu import native_bf16

BF16_HELP = (
    "bf16 autocast. Default: on where the device has native bf16 matmuls (AVX512-BF16/AMX, Ampere+); --no_bf16 leaves "
    "the precision to accelerate's config (fp32 unless it says bf16)"
)


def bf16_where_native() -> bool:
    """The default of pretraining's and calibration's --bf16 (one function, so that a calibration is measured in the
    precision pretraining then runs in): on where the training device multiplies bf16 natively."""
    return native_bf16(torch.accelerator.current_accelerator(check_available=True) or "cpu")


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


def parse_args(dataclass_types: tuple, argv: list[str] | None) -> tuple:
    """`argv` (default: the command line, or a single JSON file of arguments, as HF's example scripts take)."""
    parser = HfArgumentParser(dataclass_types)
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        return parser.parse_json_file(sys.argv[1])
    return parser.parse_args_into_dataclasses(argv)
