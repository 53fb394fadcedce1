"""A progress bar over a wall-clock budget, in place of Trainer's bar over `max_steps` (which a budgeted run sets to a
huge number, so that bar would show nothing useful); `recipes.training.budget.BudgetTrainer` puts it in.

The bar fills with the agreed budget clock (training seconds of the budget), and shows the step, training tokens/s
(from Trainer's count of input tokens, `include_num_input_tokens_seen`) and the last held-out accuracy; the logs Trainer
prints go above it, as with Trainer's own bar.
"""

from __future__ import annotations

from tqdm.auto import tqdm
from transformers import TrainerCallback

from recipes.training.clock import BudgetClock


class BudgetProgressCallback(TrainerCallback):
    """tqdm bar of `clock.elapsed_s` out of `clock.budget_s` (main process only)."""

    def __init__(self, clock: BudgetClock):
        self.clock = clock
        self.bar: tqdm | None = None
        self.accuracy: float | None = None
        self.tokens_at_start = 0
        self.elapsed_at_start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        # A resumed run starts part-way: tokens/s counts what this process trained.
        self.tokens_at_start, self.elapsed_at_start = state.num_input_tokens_seen, self.clock.elapsed_s
        self.bar = tqdm(
            total=round(self.clock.budget_s, 1),
            initial=round(self.clock.elapsed_s, 1),
            desc="budget",
            unit="s",
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{postfix}]",
            dynamic_ncols=True,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        elapsed = self.clock.elapsed_s
        session_s = elapsed - self.elapsed_at_start
        postfix = {"step": state.global_step}
        if args.include_num_input_tokens_seen != "no" and session_s:
            postfix["tokens/s"] = f"{(state.num_input_tokens_seen - self.tokens_at_start) / session_s:,.0f}"
        if self.accuracy is not None:
            postfix["held-out acc"] = f"{100 * self.accuracy:.2f}%"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(round(min(elapsed, self.clock.budget_s), 1) - self.bar.n)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_accuracy" in metrics:
            self.accuracy = metrics["eval_accuracy"]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            self.bar.write(str(logs))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
