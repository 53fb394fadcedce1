"""The wall-clock budget (recipes/training/budget.py): parsing, the time-driven LR schedule, and real `Trainer.train()` runs of a
tiny HybridBERT on packed real WikiText text, timed by an injected deterministic clock.

The clock is a `FakeClock` that only moves when a test callback moves it: `Steps` advances it in `on_step_begin`,
after the budget callback has read the time, so each optimizer step "takes" a chosen number of seconds; `EvalTime`
advances it per evaluation batch and `SaveTime` while a checkpoint is being saved. Nothing here depends on real time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import block_dataset
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback, TrainingArguments, get_scheduler

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes.data import assets
from recipes.data.blocks import mask_once
from recipes.data.text_sources import wikitext_paragraphs
from recipes.evaluation.held_out import HeldOutCollator
from recipes.training.budget import BUDGET_STATE_FILE, BudgetTrainer, TimeBudgetCallback
from recipes.training.clock import budget_schedule, parse_budget

SEQ = 32
BATCH = 4
PEAK_LR = 1e-3
WARMUP = 0.1
BUDGET = 30.0
LONG_RUN = 10**6  # max_steps large enough never to be the reason to stop: the budget ends training


# -- parse_budget ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("600", 600),
        (" 2H ", 7200),
        ("1.5m", 90),
    ],  # fmt: skip
)
def test_parse_budget_units(text, seconds):
    """Budgets with s/m/h/d units, combined units and plain seconds parse to seconds."""
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["abc", "0", "0s", "-5m", "", "10 minutes", "5x", "m"])
def test_parse_budget_rejects_bad_or_non_positive(text):
    """Unparseable, empty, zero and negative budgets raise ValueError."""
    with pytest.raises(ValueError):
        parse_budget(text)


# -- budget_schedule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("final_ratio", [0.0, 0.1])
def test_budget_schedule_warms_up_then_decays_to_end_value_at_deadline(shape, final_ratio):
    """The multiplier rises linearly to 1 at the warmup fraction, decays monotonically and equals final_ratio at 1."""
    assert budget_schedule(0.0, 0.2, final_ratio, shape) == 0.0
    assert budget_schedule(0.1, 0.2, final_ratio, shape) == pytest.approx(0.5)
    assert budget_schedule(0.2, 0.2, final_ratio, shape) == pytest.approx(1.0)
    assert budget_schedule(1.0, 0.2, final_ratio, shape) == pytest.approx(final_ratio, abs=1e-12)
    middle = budget_schedule(0.6, 0.2, final_ratio, shape)
    assert middle == pytest.approx(final_ratio + (1 - final_ratio) * 0.5)  # half-way through the decay, both shapes
    decay = [budget_schedule(0.2 + 0.8 * i / 50, 0.2, final_ratio, shape) for i in range(51)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert decay[0] > decay[-1]
    if shape == "cosine":  # cosine stays above the straight line in the first half of the decay
        assert budget_schedule(0.4, 0.2, final_ratio, shape) > final_ratio + (1 - final_ratio) * 0.75


def test_budget_schedule_without_warmup_starts_at_peak():
    """With warmup fraction 0 the multiplier is 1 at the start and decays to the end value at the deadline."""
    assert budget_schedule(0.0, 0.0, 0.0, "linear") == 1.0
    assert budget_schedule(0.5, 0.0, 0.0, "linear") == pytest.approx(0.5)
    assert budget_schedule(1.0, 0.0, 0.0, "cosine") == pytest.approx(0.0, abs=1e-12)


# -- Trainer-level runs on real text with an injected clock ---------------------------------------------------------


class FakeClock:
    """Deterministic time: only tests move it."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def slowing_down(completed_steps: int) -> float:
    """Seconds the next step takes: 1 s for the first 10 steps, then the machine slows down to 3 s a step."""
    return 1.0 if completed_steps < 10 else 3.0


def steady(completed_steps: int) -> float:
    return 1.0


class Steps(TrainerCallback):
    """Added after the budget callback: each optimizer step takes `duration(global_step)` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, duration):
        self.clock, self.duration = clock, duration

    def on_step_begin(self, args, state, control, **kwargs):
        self.clock.t += self.duration(state.global_step)


class EvalTime(TrainerCallback):
    """Each evaluation batch takes `seconds` of the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float):
        self.clock, self.seconds = clock, seconds

    def on_prediction_step(self, args, state, control, **kwargs):
        self.clock.t += self.seconds


class SaveTime(TrainerCallback):
    """Passed in `callbacks=` (so it runs before the budget callback): a checkpoint save takes `seconds`."""

    def __init__(self, clock: FakeClock, seconds: float):
        self.clock, self.seconds = clock, seconds

    def on_save(self, args, state, control, **kwargs):
        self.clock.t += self.seconds


class AfterEvaluation(TrainerCallback):
    """Added after the budget callback: work done on each evaluation's results (like writing and plotting the MLM
    curve) takes `seconds`."""

    def __init__(self, clock: FakeClock, seconds: float):
        self.clock, self.seconds = clock, seconds

    def on_evaluate(self, args, state, control, **kwargs):
        self.clock.t += self.seconds


class Recorder(TrainerCallback):
    """Per optimizer step: the LR used by the step, the LR set after it, and the agreed elapsed time after it;
    per evaluation: the step and budget progress."""

    def __init__(self, budget: TimeBudgetCallback):
        self.budget = budget
        self.lr_used, self.lr_after, self.elapsed, self.evaluations = [], [], [], []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lr_used.append(optimizer.param_groups[0]["lr"])

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.lr_after.append(optimizer.param_groups[0]["lr"])
        self.elapsed.append(self.budget.clock.elapsed_s)

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluations.append((state.global_step, self.budget.clock.progress))


@pytest.fixture(scope="module")
def tokenizer():
    return assets.default_tokenizer()


@pytest.fixture(scope="module")
def blocks(tokenizer):
    """(training blocks, held-out blocks masked once) of packed real text, 32 tokens each."""
    lines = wikitext_paragraphs(60)
    train = block_dataset(lines[:50], tokenizer, SEQ)
    held_out = block_dataset(lines[50:], tokenizer, SEQ)
    held_out = mask_once(held_out, tokenizer, 0.15, seed=0)
    assert len(train) > 100 and len(held_out) >= 8
    return train, held_out.select(range(8))


def _tiny_mlm(tokenizer) -> HybridBertForMaskedLM:
    torch.manual_seed(0)
    config = HybridBertConfig.from_variant(
        "bert",
        size="tiny",
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ,
    )
    return HybridBertForMaskedLM(config)


def _args(output_dir: Path, shape: str = "linear", max_steps: int = LONG_RUN, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        learning_rate=PEAK_LR,
        warmup_steps=WARMUP,
        lr_scheduler_type=shape,
        max_steps=max_steps,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    return TrainingArguments(**{**settings, **overrides})


def _trainer(
    tokenizer,
    blocks,
    output_dir,
    budget,
    clock,
    duration,
    shape="linear",
    final_lr_ratio=0.0,
    max_steps=LONG_RUN,
    callbacks=(),
    eval_seconds=0.0,
    **arguments,
):
    """A BudgetTrainer on the real blocks; `Steps`, `EvalTime` and a `Recorder` are added after the budget callback."""
    train, held_out = blocks
    trainer = BudgetTrainer(
        model=_tiny_mlm(tokenizer),
        args=_args(output_dir, shape, max_steps, **arguments),
        train_dataset=train,
        eval_dataset=held_out,
        data_collator=HeldOutCollator(tokenizer, 0.15),
        callbacks=list(callbacks),
        budget_callback=budget,
        final_lr_ratio=final_lr_ratio,
    )
    trainer.add_callback(Steps(clock, duration))
    trainer.add_callback(EvalTime(clock, eval_seconds))
    recorder = Recorder(budget)
    trainer.add_callback(recorder)
    return trainer, recorder


def _expected_stop(duration, budget_s: float) -> tuple[int, float, float]:
    """(steps, elapsed after the last step, elapsed after the one before) when stopping at the first step reaching
    the budget."""
    steps, elapsed, before = 0, 0.0, 0.0
    while elapsed < budget_s:
        before = elapsed
        elapsed += duration(steps)
        steps += 1
    return steps, elapsed, before


@pytest.mark.parametrize("shape, final_lr_ratio", [("linear", 0.0), ("cosine", 0.1)])
def test_lr_follows_agreed_time_and_ends_at_deadline_when_machine_slows(
    tmp_path, tokenizer, blocks, shape, final_lr_ratio
):
    """A real BudgetTrainer.train() whose steps slow from 1 s to 3 s stops at the first step reaching the budget
    (overshoot < one step); every LR is the schedule of the agreed elapsed time, the final LR the end value."""
    clock = FakeClock()
    budget = TimeBudgetCallback(budget_s=BUDGET, now=clock)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, budget, clock, slowing_down, shape, final_lr_ratio)
    trainer.train()

    assert isinstance(trainer.lr_scheduler, LambdaLR) and budget.scheduler is trainer.lr_scheduler  # create_scheduler
    steps, elapsed, before = _expected_stop(slowing_down, BUDGET)
    assert (steps, elapsed, before) == (17, 31.0, 28.0)  # the scenario itself: 10 × 1 s, then 3 s steps
    assert budget.stop_reason == "budget"
    assert trainer.state.global_step == steps
    assert budget.clock.elapsed_s == pytest.approx(elapsed)
    assert recorder.elapsed[-2] < BUDGET <= recorder.elapsed[-1]  # stopped at the first step reaching the deadline
    assert budget.clock.elapsed_s - BUDGET < slowing_down(steps - 1)  # overshoot below one step
    for lr, spent in zip(recorder.lr_after, recorder.elapsed, strict=True):
        expected = PEAK_LR * budget_schedule(min(1.0, spent / BUDGET), WARMUP, final_lr_ratio, shape)
        assert lr == pytest.approx(expected, abs=1e-12)
    end_value = final_lr_ratio * PEAK_LR
    assert recorder.lr_after[-1] == pytest.approx(end_value, abs=1e-12)
    assert recorder.lr_after[-2] > end_value + 0.01 * PEAK_LR  # still decaying one step before the deadline
    assert max(recorder.lr_after) == pytest.approx(PEAK_LR, rel=0.1)  # warmup reached (about) the peak
    # the LR a step uses is the one set after the previous step
    assert recorder.lr_used[1:] == pytest.approx(recorder.lr_after[:-1], abs=1e-15)
    # a final checkpoint is saved on expiry, with the budget state beside it
    saved = json.loads((tmp_path / f"checkpoint-{steps}" / BUDGET_STATE_FILE).read_text())
    assert saved["elapsed_s"] == pytest.approx(elapsed)


def test_step_estimated_schedule_misses_end_value_at_deadline(tmp_path, tokenizer, blocks):
    """Companion: HF's step-based linear schedule sized from the first 10 steps' speed (30 steps for 30 s) is far from
    its end value when the slowed-down run hits the deadline, so the check above catches such a schedule."""
    estimated_steps = int(BUDGET / slowing_down(0))
    assert estimated_steps == 30
    clock = FakeClock()
    budget = TimeBudgetCallback(budget_s=BUDGET, now=clock, drives_schedule=False)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, budget, clock, slowing_down, max_steps=estimated_steps)
    trainer.train()

    assert budget.stop_reason == "budget" and trainer.state.global_step == 17  # the budget still stops it
    # the trainer built HF's own schedule, exactly as one made by hand from the estimate
    reference = get_scheduler(
        "linear",
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK_LR),
        num_warmup_steps=math.ceil(estimated_steps * WARMUP),
        num_training_steps=estimated_steps,
    )
    for _ in range(17):
        reference.optimizer.step()
        reference.step()
    assert recorder.lr_after[-1] == pytest.approx(reference.get_last_lr()[0])
    assert recorder.lr_after[-1] > 0.4 * PEAK_LR  # nowhere near the end value 0 at the deadline
    assert recorder.lr_after[-1] != pytest.approx(PEAK_LR * budget_schedule(1.0, WARMUP, 0.0, "linear"), abs=1e-12)


def test_evaluation_and_saving_pause_the_clock(tmp_path, tokenizer, blocks):
    """Evaluation (10 s each) and checkpoint saving (2 s) are not counted in elapsed_s but in paused_s, and every
    second of the clock after the first step is either elapsed or paused."""
    clock = FakeClock()
    start = clock.t
    budget = TimeBudgetCallback(budget_s=BUDGET, num_eval_points=3, now=clock)
    trainer, recorder = _trainer(
        tokenizer, blocks, tmp_path, budget, clock, steady, callbacks=[SaveTime(clock, 2.0)], eval_seconds=5.0
    )
    trainer.train()

    assert budget.stop_reason == "budget"
    assert trainer.state.global_step == 30
    assert budget.clock.elapsed_s == pytest.approx(30.0)  # training time only
    assert len(recorder.evaluations) == 3  # 2 eval batches of 5 s each per evaluation
    assert budget.clock.paused_s["evaluation"] == pytest.approx(3 * 2 * 5.0)
    assert budget.clock.paused_s["checkpointing"] == pytest.approx(2.0)
    assert budget.clock.elapsed_s + sum(budget.clock.paused_s.values()) == pytest.approx(clock.t - start)
    # the LR schedule sees training time only: the evaluations did not push it towards the deadline
    for lr, spent in zip(recorder.lr_after, recorder.elapsed, strict=True):
        assert lr == pytest.approx(PEAK_LR * budget_schedule(spent / BUDGET, WARMUP, 0.0, "linear"), abs=1e-12)
    record = budget.record(trainer.state, samples_per_step=BATCH, tokens_per_sample=SEQ)
    assert record["elapsed_s"] == pytest.approx(30.0)
    assert record["paused_s"] == pytest.approx(32.0)
    assert record["steps"] == 30 and record["samples"] == 120 and record["tokens_seen"] == 120 * SEQ
    assert record["tokens_per_s"] == pytest.approx(120 * SEQ / 30.0)


def test_time_after_evaluation_is_paused_time_not_lost(tmp_path, tokenizer, blocks):
    """Time spent by callbacks on an evaluation's results (4 s per evaluation, at 5 s mid-run and at the 10 s deadline)
    is neither training time nor lost: elapsed_s stays 10 and paused_s accounts for all 8 s."""
    clock = FakeClock()
    start = clock.t
    budget = TimeBudgetCallback(budget_s=10.0, num_eval_points=2, now=clock)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, budget, clock, steady)
    trainer.add_callback(AfterEvaluation(clock, 4.0))
    trainer.train()

    assert [step for step, _ in recorder.evaluations] == [5, 10]
    assert budget.clock.elapsed_s == pytest.approx(10.0)
    assert clock.t - start == pytest.approx(18.0)
    assert sum(budget.clock.paused_s.values()) == pytest.approx(8.0)


def test_evaluations_at_evenly_spaced_points_of_the_budget(tmp_path, tokenizer, blocks):
    """With num_eval_points=4 and slowing steps, evaluations happen at the first step whose elapsed time crosses each
    k/4 of the budget (not at estimated step counts), the last one at the deadline."""
    clock = FakeClock()
    budget = TimeBudgetCallback(budget_s=BUDGET, num_eval_points=4, now=clock)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, budget, clock, slowing_down)
    trainer.train()

    # elapsed after each step: 1..10, then 13, 16, 19, 22, 25, 28, 31; quarters at 7.5, 15, 22.5, 30 s
    assert [step for step, _ in recorder.evaluations] == [8, 12, 15, 17]
    progress = [p for _, p in recorder.evaluations]
    assert progress == pytest.approx([8 / 30, 16 / 30, 25 / 30, 1.0])
    for k, p in enumerate(progress, start=1):
        assert p >= k / 4
    assert budget.evaluations_done == 4


def test_the_trainers_step_evaluations_include_the_last_step(tmp_path, tokenizer, blocks):
    """Without budget points (num_eval_points=0), --eval_strategy steps still evaluates at the step that ends the
    run: the stop does not cancel an evaluation the Trainer scheduled there."""
    clock = FakeClock()
    budget = TimeBudgetCallback(budget_s=BUDGET, num_eval_points=0, now=clock)
    trainer, recorder = _trainer(
        tokenizer, blocks, tmp_path, budget, clock, steady, max_steps=10, eval_strategy="steps", eval_steps=5
    )
    trainer.train()
    assert budget.stop_reason == "max_steps"
    assert [step for step, _ in recorder.evaluations] == [5, 10]


def test_resume_continues_remaining_budget_with_time_driven_lr(tmp_path, tokenizer, blocks):
    """A run stopped by a 10 s budget resumed with a 20 s budget continues from 10 s: it runs 10 more 1 s steps, and
    its first resumed step already uses the LR of the schedule at 10/20 of the new budget."""
    clock = FakeClock()
    first = TimeBudgetCallback(budget_s=10.0, now=clock)
    trainer, _ = _trainer(tokenizer, blocks, tmp_path, first, clock, steady)
    trainer.train()
    assert first.stop_reason == "budget" and trainer.state.global_step == 10
    checkpoint = tmp_path / "checkpoint-10"
    assert (checkpoint / BUDGET_STATE_FILE).is_file()

    clock = FakeClock()
    second = TimeBudgetCallback(budget_s=20.0, now=clock)
    second.load_state(checkpoint)
    assert second.clock.elapsed_s == pytest.approx(10.0)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, second, clock, steady)
    trainer.train(resume_from_checkpoint=str(checkpoint))

    assert second.stop_reason == "budget"
    assert trainer.state.global_step == 20
    assert second.clock.elapsed_s == pytest.approx(20.0)
    assert recorder.elapsed == pytest.approx([11.0 + i for i in range(10)])
    assert recorder.lr_after[-1] == pytest.approx(0.0, abs=1e-12)
    for lr, spent in zip(recorder.lr_after, recorder.elapsed, strict=True):
        assert lr == pytest.approx(PEAK_LR * budget_schedule(spent / 20.0, WARMUP, 0.0, "linear"), abs=1e-12)
    # the first resumed step: the schedule at 10 s of 20 s, not the old run's end-of-budget LR (0)
    assert recorder.lr_used[0] == pytest.approx(PEAK_LR * budget_schedule(0.5, WARMUP, 0.0, "linear"), abs=1e-12)


def test_resume_with_larger_budget_evaluates_at_the_new_budgets_points(tmp_path, tokenizer, blocks):
    """A run with 5 eval points stopped by a 10 s budget, resumed with 20 s and 5 points, evaluates at the points of
    the new budget still ahead (12, 16 and 20 s), not only at the end."""
    clock = FakeClock()
    first = TimeBudgetCallback(budget_s=10.0, num_eval_points=5, now=clock)
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, first, clock, steady)
    trainer.train()
    assert [step for step, _ in recorder.evaluations] == [2, 4, 6, 8, 10]

    clock = FakeClock()
    second = TimeBudgetCallback(budget_s=20.0, num_eval_points=5, now=clock)
    second.load_state(tmp_path / "checkpoint-10")
    trainer, recorder = _trainer(tokenizer, blocks, tmp_path, second, clock, steady)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-10"))

    assert second.stop_reason == "budget" and trainer.state.global_step == 20
    assert [step for step, _ in recorder.evaluations] == [12, 16, 20]
    assert [p for _, p in recorder.evaluations] == pytest.approx([0.6, 0.8, 1.0])
