"""Warming up a converted model's new MLM head before its encoder trains (`pretrain.py --head_warmup_steps`).

A BERT converted into a hybrid (`--init_from`) keeps its encoder, but a checkpoint without an MLM head (a sentence
encoder such as all-MiniLM-L6-v2) gives it a random one. The first steps of MLM training then send the gradients of a
random head into the copied encoder. For the first N steps this callback trains only the head (its transform and
decoder bias; the decoder weight is the frozen word embeddings), then releases the whole model. The encoder's
parameters stay in the optimizer throughout: a parameter without a gradient (None, as the Trainer zeroes them) is
skipped by AdamW, so the frozen steps leave its weights and moments untouched.

At the release the encoder meets the optimizer with fresh moments, where Adam's first steps move every weight by about
the learning rate; so the learning rate restarts there: the schedule's value times a linear ramp from 0 over the next
N steps (the whole model's, the head's included), as a warm-up does at the start of a run.
"""

from __future__ import annotations

from torch.optim.lr_scheduler import LambdaLR
from transformers import PreTrainedModel, TrainerCallback


class HeadWarmupCallback(TrainerCallback):
    """Freeze the base model (everything but the MLM head) while the global step is below `steps`, then ramp the
    learning rate up again over `steps` steps."""

    def __init__(self, model: PreTrainedModel, steps: int):
        self.encoder = model.base_model
        self.steps = steps

    def set_frozen(self, frozen: bool) -> None:
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(not frozen)

    def restart(self, step: int) -> float:
        """The factor on the schedule's learning rate at optimizer step `step` (0-based, as LambdaLR counts)."""
        if step < self.steps:
            return 1.0
        return min(1.0, (step - self.steps + 1) / self.steps)

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        # after the Trainer built its optimizer over every parameter and its scheduler (and, on resume, loaded both)
        self.set_frozen(state.global_step < self.steps)
        if not isinstance(lr_scheduler, LambdaLR):
            raise TypeError(f"--head_warmup_steps restarts a LambdaLR schedule; the Trainer made {type(lr_scheduler)}.")
        lr_scheduler.lr_lambdas = [
            lambda step, schedule=schedule: schedule(step) * self.restart(step) for schedule in lr_scheduler.lr_lambdas
        ]

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.steps:
            self.set_frozen(False)


def warmup_span(steps: int) -> int:
    """The steps before the schedule's own rate returns: the head's warm-up and the ramp after it."""
    return 2 * steps


def check_head_warmup(steps: int | None, init_from: str | None, training_args) -> None:
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
    if 0 < training_args.max_steps <= warmup_span(steps):
        raise ValueError(
            f"--head_warmup_steps {steps} and the learning-rate ramp after it take {warmup_span(steps)} steps, leaving none of "
            f"--max_steps {training_args.max_steps} at the schedule's own rate."
        )
    if training_args.deepspeed or training_args.fsdp:
        raise ValueError(
            "--head_warmup_steps freezes parameters during training, which DeepSpeed's and FSDP's partitions do not "
            "follow; run it without them."
        )
    if training_args.world_size > 1 and not training_args.ddp_find_unused_parameters:
        raise ValueError(
            "--head_warmup_steps on several processes needs --ddp_find_unused_parameters true: the frozen encoder "
            "gives DistributedDataParallel no gradients to reduce during the warm-up."
        )
