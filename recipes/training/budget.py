"""Wall-clock training budgets for the HF Trainer.

A *budget* is wall-clock seconds of training. The clock starts at the first training step; evaluation and checkpoint
saving pause it (data preparation happens before it starts). Every optimizer step the elapsed time is read and agreed
across ranks (the maximum over ranks), and that one agreed number drives both the stop decision and the learning rate:

- `TimeBudgetCallback` ticks the clock after each optimizer step, stops training at the deadline (overshoot below one
  step), saves a final checkpoint, asks for evaluations (and checkpoints) at evenly spaced points of the budget,
  honours SIGTERM/SIGINT, and sums up what was spent (`record`: with the recipe's `run_info` and extra fields, the
  run's `budget.json`).
- `BudgetTrainer` overrides `Trainer.create_scheduler` with a schedule of elapsed time rather than of steps: warmup,
  then decay to its end value exactly at the deadline. Its checkpoints are atomic (`recipes.run_folder.checkpoints`) and carry the
  clock (`budget_state.json`); resumed from one whose budget is already spent, it trains no further step.
"""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from torch.optim.lr_scheduler import LambdaLR
from transformers import ProgressCallback, TrainerCallback, TrainerState
from transformers.trainer_utils import TrainOutput

from recipes.records import BudgetState
from recipes.run_folder.checkpoints import TRAINER_STATE_FILE, AtomicCheckpointTrainer
from recipes.training.clock import (
    BudgetClock,
    agree_across_ranks,
    budget_schedule,
    schedule_shape,
)
from recipes.training.progress import BudgetProgressCallback

BUDGET_STATE_FILE = "budget_state.json"


class BudgetTrainer(AtomicCheckpointTrainer):
    """A Trainer whose learning rate follows the budget clock instead of the step count (unless `max_steps` is set)."""

    def __init__(
        self, *args, budget_callback: TimeBudgetCallback, final_lr_ratio: float = 0.0, callbacks=None, **kwargs
    ):
        # The budget callback comes last: what other callbacks do on evaluation (e.g. plotting curves) is then
        # charged to the evaluation pause.
        super().__init__(*args, callbacks=[*(callbacks or []), budget_callback], **kwargs)
        # Trainer's bar counts toward max_steps, which the budget replaces: the bar fills with the budget clock instead.
        self.remove_callback(ProgressCallback)
        if not self.args.disable_tqdm:
            self.add_callback(BudgetProgressCallback(budget_callback.clock))
        self.budget_callback = budget_callback
        self.final_lr_ratio = final_lr_ratio

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Every tracker `report_to` names sees the budget spent beside Trainer's own values.
        logs["budget_elapsed_s"] = self.budget_callback.clock.elapsed_s
        logs["budget_fraction"] = self.budget_callback.clock.progress
        super().log(logs, start_time)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if not self.budget_callback.drives_schedule:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            clock, args = self.budget_callback.clock, self.args
            shape = schedule_shape(args.lr_scheduler_type)
            self.lr_scheduler = LambdaLR(
                optimizer or self.optimizer,
                lambda _step: budget_schedule(clock.progress, args.warmup_steps, self.final_lr_ratio, shape),
            )
            self.budget_callback.scheduler = self.lr_scheduler
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def write_checkpoint_extras(self, checkpoint_dir: Path) -> None:
        self.budget_callback.save_state(checkpoint_dir)

    def train(self, resume_from_checkpoint: str | None = None, **kwargs) -> TrainOutput:
        """Trainer.train, except that a checkpoint saved when training stopped (its budget spent, or `max_steps`
        reached) is taken as the result: Trainer would run one more step before checking either. (Under DeepSpeed,
        whose engine only exists once training starts, that one step is still taken.)"""
        if resume_from_checkpoint and not self.is_deepspeed_enabled:
            state = TrainerState.load_from_json(str(Path(resume_from_checkpoint) / TRAINER_STATE_FILE))
            if self.budget_callback.clock.expired or 0 < self.args.max_steps <= state.global_step:
                self._load_from_checkpoint(resume_from_checkpoint)
                self.state = state
                self.budget_callback.stop_reason = "budget" if self.budget_callback.clock.expired else "max_steps"
                return TrainOutput(state.global_step, 0.0, {})
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)


class TimeBudgetCallback(TrainerCallback):
    """Stops training when the agreed budget clock expires, evaluates at `num_eval_points` evenly spaced points of
    the budget, and pauses the clock while evaluating and saving.

    `drives_schedule`: whether `BudgetTrainer` should build the time-driven LR schedule (False with `max_steps`).
    `save_at_eval_points`: also save a checkpoint at each evaluation point, so that a killed run resumes from there.
    """

    def __init__(
        self,
        budget_s: float,
        num_eval_points: int = 0,
        drives_schedule: bool = True,
        now: Callable[[], float] = time.monotonic,
        run_info: dict | None = None,
        save_at_eval_points: bool = False,
    ):
        self.clock = BudgetClock(budget_s, now=now)
        self.num_eval_points = num_eval_points
        self.save_at_eval_points = save_at_eval_points
        self.drives_schedule = drives_schedule
        self.run_info = run_info or {}
        self.scheduler: LambdaLR | None = None
        self.evaluations_done = 0
        self.stop_reason: str | None = None
        self.resumed_at: list[int] = []
        self._signalled = False
        self._previous_handlers: dict[int, object] = {}

    # -- resume ----------------------------------------------------------------------------------------------------
    def load_state(self, checkpoint_dir: str | Path) -> None:
        """Continue from a checkpoint with the budget it had left."""
        path = Path(checkpoint_dir) / BUDGET_STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{checkpoint_dir} holds no {BUDGET_STATE_FILE}: it was not written by a budgeted run."
            )
        saved = BudgetState.read(path)
        self.clock.elapsed_s = saved.elapsed_s
        self.clock.paused_s = dict(saved.paused_s)
        step = TrainerState.load_from_json(str(Path(checkpoint_dir) / TRAINER_STATE_FILE)).global_step
        self.resumed_at = [*saved.resumed_at, step]
        # The budget may have grown: the evaluation points still to come are those of the new budget.
        self.evaluations_done = int(self.clock.progress * self.num_eval_points)

    # -- signals ---------------------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self._signalled = True

    def on_train_begin(self, args, state, control, **kwargs):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        if self.scheduler is not None:
            # A resumed run's optimizer comes back with the LR it had at the checkpoint; the first step must use
            # the schedule's value for the budget clock as resumed (no optimizer step has run yet in this process).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.scheduler.step()

    # -- the clock -------------------------------------------------------------------------------------------------
    def on_step_begin(self, args, state, control, **kwargs):
        self.clock.resume()

    def on_optimizer_step(self, args, state, control, **kwargs):
        elapsed, signalled = agree_across_ranks([self.clock.read_local(), float(self._signalled)], args.device)
        self.clock.elapsed_s = elapsed
        self._signalled = bool(signalled)
        if self.scheduler is not None:
            # Under DeepSpeed the engine steps the scheduler before this event; stepping the (idempotent) time-driven
            # schedule here makes the next step's LR follow the freshly agreed clock on every engine.
            self.scheduler.step()

    def on_step_end(self, args, state, control, **kwargs):
        if self._signalled:
            self.stop_reason = "signal"
        elif self.clock.expired:
            self.stop_reason = "budget"
        elif state.max_steps and state.global_step >= state.max_steps:
            self.stop_reason = "max_steps"
        if self.stop_reason:
            control.should_training_stop = True
            control.should_save = True
            # The last step evaluates when the budget's points or the Trainer's own --eval_strategy ask for it; a
            # signalled run leaves at once.
            control.should_evaluate = self.stop_reason != "signal" and (
                self.num_eval_points > 0 or control.should_evaluate
            )
        elif self.num_eval_points and self.clock.progress >= (self.evaluations_done + 1) / self.num_eval_points:
            control.should_evaluate = True
            control.should_save = control.should_save or self.save_at_eval_points
        if control.should_evaluate:
            self.evaluations_done = max(self.evaluations_done + 1, int(self.clock.progress * self.num_eval_points))
        if control.should_evaluate or control.should_save:
            self.clock.pause()

    def on_evaluate(self, args, state, control, **kwargs):
        self.clock.charge_pause("evaluation")

    def save_state(self, checkpoint_dir: Path) -> None:
        """The clock, into a checkpoint being saved (`BudgetTrainer` writes it before the checkpoint is published)."""
        self.clock.charge_pause("checkpointing")
        BudgetState(
            elapsed_s=self.clock.elapsed_s,
            paused_s=self.clock.paused_s,
            evaluations_done=self.evaluations_done,
            resumed_at=self.resumed_at,
        ).write(checkpoint_dir / BUDGET_STATE_FILE)

    def on_save(self, args, state, control, **kwargs):
        self.clock.charge_pause("checkpointing")

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        if self.stop_reason is None:
            self.stop_reason = "data"

    # -- the record ------------------------------------------------------------------------------------------------
    def record(self, state, samples_per_step: int, tokens_per_sample: int, **extra) -> dict:
        """What was spent: the content of budget.json."""
        samples = state.global_step * samples_per_step
        tokens = samples * tokens_per_sample
        return {
            "budget_s": self.clock.budget_s,
            "elapsed_s": self.clock.elapsed_s,
            "overshoot_s": self.clock.elapsed_s - self.clock.budget_s,
            "paused_s": sum(self.clock.paused_s.values()),
            "paused_breakdown_s": self.clock.paused_s,
            "steps": state.global_step,
            "samples": samples,
            "tokens_seen": tokens,
            "tokens_per_s": tokens / self.clock.elapsed_s if self.clock.elapsed_s else 0.0,
            "stop_reason": self.stop_reason,
            "resumed_at": self.resumed_at,
            **self.run_info,
            **extra,
        }
