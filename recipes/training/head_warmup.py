"""Warming up a converted model's new MLM head before its encoder trains (`pretrain.py --head_warmup_steps`).

A BERT converted into a hybrid (`--init_from`) keeps its encoder, but a checkpoint without an MLM head (a sentence
encoder such as all-MiniLM-L6-v2) gives it a random one. The first steps of MLM training then send the gradients of a
random head into the copied encoder. For the first N steps this callback trains only the head (its transform and
decoder bias; the decoder weight is the frozen word embeddings), then releases the whole model. The encoder's
parameters stay in the optimizer throughout: a parameter without a gradient is skipped by AdamW, so the frozen
steps leave its weights and moments untouched.
"""

from __future__ import annotations

from transformers import PreTrainedModel, TrainerCallback


class HeadWarmupCallback(TrainerCallback):
    """Freeze the base model (everything but the MLM head) while the global step is below `steps`."""

    def __init__(self, model: PreTrainedModel, steps: int):
        self.encoder = model.base_model
        self.steps = steps

    def set_frozen(self, frozen: bool) -> None:
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(not frozen)

    def on_train_begin(self, args, state, control, **kwargs):
        # after the Trainer built its optimizer over every parameter (and, on resume, loaded its state)
        self.set_frozen(state.global_step < self.steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.steps:
            self.set_frozen(False)


def check_head_warmup(steps: int | None, init_from: str | None, max_steps: int, deepspeed) -> None:
    """One clear error for a warm-up that cannot do what it says."""
    if steps is None:
        return
    if steps < 1:
        raise ValueError(f"--head_warmup_steps {steps}: a number of steps ≥ 1 (leave it unset for no warm-up).")
    if not init_from:
        raise ValueError(
            "--head_warmup_steps warms up the new MLM head of a BERT converted with --init_from; a fresh model has no "
            "trained encoder to protect, and a continued checkpoint has its head."
        )
    if 0 < max_steps <= steps:
        raise ValueError(f"--head_warmup_steps {steps} leaves none of --max_steps {max_steps} to train the encoder.")
    if deepspeed:
        raise ValueError(
            "--head_warmup_steps freezes parameters during training, which DeepSpeed's ZeRO partitions do not follow; "
            "run it without --deepspeed."
        )
