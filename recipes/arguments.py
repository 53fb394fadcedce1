"""What the pretraining and fine-tuning recipes share in their arguments: TrainingArguments defaults and parsing."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from transformers import HfArgumentParser, TrainingArguments


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
