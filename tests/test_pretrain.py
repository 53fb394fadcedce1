"""End to end through `recipes.pretrain.main(argv)` (in-process) and `python recipes/pretrain.py` (a real process, for
signals and loading), on a small train file of real WikiText paragraphs and a tiny hbert-v1.

In-process budgeted runs get a deterministic `ModelClock`: time passes only while the model computes (0.25 s per
training forward, 0.5 s per evaluation forward, counted by a global forward hook), so step counts, elapsed and paused
time and evaluation points are exact and nothing depends on the machine's speed. The other runs use the real clock.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from helpers import block_dataset

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes.data import assets
from recipes.data.text_sources import wikitext_paragraphs
from recipes.environment import PACKAGES
from recipes.evaluation.held_out import METRICS_DIR, HeldOutCollator
from recipes.models.starting_model import set_unigram_decoder_bias
from recipes.pretrain import main
from recipes.records import RunIdentity, RunRecord
from recipes.training.budget import BUDGET_STATE_FILE
from recipes.training.mfu import matmul_peak, native_bf16

REPO = Path(__file__).resolve().parents[1]
SEQ, BATCH = 32, 4
TOKENS_PER_STEP = SEQ * BATCH
TINY = [
    "--variant", "hbert-v1",
    "--size", "tiny",
    "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2",
    "--max_seq_length", str(SEQ),
    "--per_device_train_batch_size", str(BATCH),
    "--per_device_eval_batch_size", "16",
    "--max_eval_samples", "16",
    "--use_cpu",
]  # fmt: skip
BUDGET_FIELDS = (
    "budget_s", "elapsed_s", "paused_s", "steps", "tokens_seen", "samples", "tokens_per_s", "stop_reason",
    "device", "threads", "world_size", "run_record",
)  # fmt: skip


class ModelClock:
    """Deterministic time that passes only while a HybridBertForMaskedLM runs: `train_s` per training forward (one per
    step here), `eval_s` per evaluation forward (one per evaluation of 16 held-out blocks here)."""

    def __init__(self, train_s: float = 0.25, eval_s: float = 0.5):
        self.t, self.train_s, self.eval_s = 0.0, train_s, eval_s

    def __call__(self) -> float:
        return self.t

    def _advance(self, module, args, output):
        if type(module).__name__ == "HybridBertForMaskedLM":
            self.t += self.train_s if module.training else self.eval_s

    def __enter__(self):
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._advance)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def _timed_main(argv: list[str]) -> dict:
    with ModelClock() as clock:
        return main(argv, now=clock)


def _argv(train_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), *extra]


def _curve(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "mlm_curve.json").read_text())["points"]


def _assert_monotone_curve(points: list[dict]) -> None:
    for field in ("elapsed_s", "tokens_seen", "step"):
        values = [p[field] for p in points]
        assert values == sorted(values), f"{field} not monotone: {values}"
    for earlier, later in zip(points, points[1:]):
        assert later["step"] > earlier["step"]
    for point in points:
        assert set(point) >= {"elapsed_s", "tokens_seen", "step", "accuracy", "mask_accuracy", "loss"}
        assert point["tokens_seen"] == point["step"] * TOKENS_PER_STEP
        assert 0.0 <= point["accuracy"] <= 1.0 and 0.0 <= point["mask_accuracy"] <= 1.0 and point["loss"] > 0


MASK_ID = 103


def test_mlm_accuracy_counts_mask_positions_apart():
    """Four labelled positions, two of them [MASK]: 3 of 4 right overall, 1 of 2 at [MASK]. An unlabelled [MASK]
    (the last position) counts in neither."""
    metric = evaluate.load(str(METRICS_DIR / "mlm_accuracy"))
    inputs = [[101, MASK_ID, 7, MASK_ID, 9, MASK_ID]]
    references = [[-100, 5, 7, 8, 4, -100]]
    predictions = [[-100, 5, 7, 1, 4, -100]]
    result = metric.compute(predictions=predictions, references=references, inputs=inputs, mask_token_id=MASK_ID)
    assert result == {"accuracy": 0.75, "labelled_tokens": 4, "mask_accuracy": 0.5, "masked_tokens": 2}
    assert metric.compute(predictions=predictions, references=references) == {"accuracy": 0.75, "labelled_tokens": 4}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"inputs": [[101, MASK_ID]]}, "both `inputs` and `mask_token_id`"),
        ({"mask_token_id": MASK_ID}, "both `inputs` and `mask_token_id`"),
        ({"inputs": [[101, MASK_ID, 7]], "mask_token_id": MASK_ID}, "shape"),
    ],
)
def test_mlm_accuracy_rejects_incomplete_mask_arguments(extra, message):
    metric = evaluate.load(str(METRICS_DIR / "mlm_accuracy"))
    with pytest.raises(ValueError, match=message):
        metric.compute(predictions=[[5, 6]], references=[[5, -100]], **extra)


@pytest.fixture(scope="module")
def budgeted_run(tmp_path_factory, train_file):
    """(output dir, returned record) of a 4 s budget with 2 eval points: 16 steps of 0.25 s on the model clock."""
    output_dir = tmp_path_factory.mktemp("budgeted") / "run"
    spent = _timed_main(_argv(train_file, output_dir, "--budget", "4s", "--num_eval_points", "2"))
    return output_dir, spent


def test_budgeted_run_writes_complete_budget_json(budgeted_run):
    """budget.json holds every spent field and the run record, stop_reason 'budget', overshoot below one step."""
    output_dir, spent = budgeted_run
    written = json.loads((output_dir / "budget.json").read_text())
    assert written == json.loads(json.dumps(spent, default=str))
    for name in BUDGET_FIELDS:
        assert name in written, name
    assert written["stop_reason"] == "budget"
    assert written["budget_s"] == 4.0
    assert written["steps"] == 16  # 0.25 s steps: the first step reaching 4 s is the 16th
    assert written["budget_s"] <= written["elapsed_s"] < written["budget_s"] + 0.25  # overshoot below one step
    assert written["samples"] == 16 * BATCH and written["tokens_seen"] == 16 * TOKENS_PER_STEP
    assert written["tokens_per_s"] == pytest.approx(written["tokens_seen"] / written["elapsed_s"])
    # the evaluations at 2 s and at the deadline (0.5 s each) are paused time, not training time
    assert written["paused_s"] == pytest.approx(1.0)
    assert written["paused_breakdown_s"] == pytest.approx({"evaluation": 1.0, "checkpointing": 0.0})
    assert written["data_preparation_s"] >= 0  # logged separately; the clock only starts at the first step
    assert written["world_size"] == 1 and written["threads"] >= 1 and written["device"]
    record = written["run_record"]
    for name in (*RunRecord.KEY_FIELDS, "device", "threads", "world_size"):
        assert name in record, name
    assert set(record["versions"]) == set(PACKAGES)
    assert record["versions"]["transformers"].startswith("5.")
    assert len(record["config_sha256"]) == 64 and len(record["data_sha256"]) == 64
    assert record["git_commit"]
    assert record["budget_s"] == 4.0 and record["training"]["schedule"] == "budget-linear"
    assert (output_dir / "checkpoint-16" / BUDGET_STATE_FILE).is_file()  # saved on expiry


def test_budgeted_run_writes_monotone_curve(budgeted_run):
    """mlm_curve.json has points at the start, at half the budget and at the end, monotone in time, tokens and
    step; mlm_curve.png is written."""
    output_dir, spent = budgeted_run
    points = _curve(output_dir)
    assert [p["step"] for p in points] == [0, 8, 16]
    assert [p["elapsed_s"] for p in points] == [0.0, 2.0, 4.0]
    _assert_monotone_curve(points)
    assert points[-1]["elapsed_s"] == pytest.approx(spent["elapsed_s"])
    png = output_dir / "mlm_curve.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


LOAD_SCRIPT = r"""
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, pipeline
folder = sys.argv[1]
model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
saved = load_file(f"{folder}/model.safetensors")
state = model.state_dict()
fill = pipeline("fill-mask", model=folder, trust_remote_code=True, device=-1)
answers = fill("the capital of france is [MASK].")
print(json.dumps({
    "module": type(model).__module__,
    "variant": model.config.variant,
    "missing": sorted(k for k in saved if k not in state),
    "equal": all(torch.equal(state[k], v) for k, v in saved.items() if k in state),
    "answers": [[a["token_str"], a["score"]] for a in answers],
    "pipeline_module": type(fill.model).__module__,
}))
"""


@pytest.mark.slow
def test_output_dir_loads_with_remote_code_and_fill_mask(budgeted_run, tmp_path):
    """A fresh process loads the output dir with AutoModelForMaskedLM(trust_remote_code=True), with the saved
    weights, and a fill-mask pipeline runs on it."""
    output_dir, _ = budgeted_run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(output_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules")  # the copied remote code, not the repo's package
    assert loaded["pipeline_module"].startswith("transformers_modules")
    assert loaded["variant"] == "hbert-v1"
    assert loaded["missing"] == [] and loaded["equal"]
    assert len(loaded["answers"]) == 5 and all(token for token, _ in loaded["answers"])


def test_resume_continues_the_remaining_budget(tmp_path, train_file):
    """A run stopped by a 2 s budget, resumed from its checkpoint with a 4 s budget, continues from 2 s to 4 s:
    more steps, elapsed grows, the curve keeps its old points and stays monotone."""
    output_dir = tmp_path / "run"
    first = _timed_main(_argv(train_file, output_dir, "--budget", "2s", "--num_eval_points", "2"))
    assert first["stop_reason"] == "budget" and first["steps"] == 8
    checkpoint = output_dir / "checkpoint-8"
    state = json.loads((checkpoint / BUDGET_STATE_FILE).read_text())
    assert state["elapsed_s"] == pytest.approx(first["elapsed_s"])
    old_points = _curve(output_dir)

    resume = ["--budget", "4s", "--num_eval_points", "2", "--resume_from_checkpoint", str(checkpoint)]
    second = _timed_main(_argv(train_file, output_dir, *resume))
    assert second["stop_reason"] == "budget"
    assert second["steps"] == 16 > first["steps"]  # 8 more 0.25 s steps: the remaining 2 s
    assert second["elapsed_s"] == pytest.approx(4.0) and second["elapsed_s"] >= first["elapsed_s"]
    assert second["paused_s"] == pytest.approx(first["paused_s"] + 0.5)  # plus the final evaluation
    points = _curve(output_dir)
    assert points[: len(old_points)] == old_points
    assert [p["step"] for p in points] == [0, 4, 8, 16]
    _assert_monotone_curve(points)
    assert json.loads((output_dir / "budget.json").read_text())["steps"] == 16


@pytest.fixture(scope="module")
def max_steps_run(tmp_path_factory, train_file):
    """(output dir, returned record) of --max_steps 3 under a 1 h budget (real clock), 2 eval points."""
    output_dir = tmp_path_factory.mktemp("max_steps") / "run"
    spent = main(_argv(train_file, output_dir, "--budget", "1h", "--max_steps", "3", "--num_eval_points", "2"))
    return output_dir, spent


def test_max_steps_stops_after_that_many_steps(max_steps_run):
    """--max_steps 3 with a large budget stops after 3 steps with stop_reason 'max_steps' and a step-based schedule,
    and saves the model and budget.json."""
    output_dir, spent = max_steps_run
    assert spent["stop_reason"] == "max_steps"
    assert spent["steps"] == 3 and spent["elapsed_s"] < spent["budget_s"]
    assert spent["run_record"]["training"]["schedule"] == "steps-linear"
    assert json.loads((output_dir / "budget.json").read_text())["stop_reason"] == "max_steps"
    assert (output_dir / "model.safetensors").is_file()


def test_max_steps_run_evaluates_at_the_end(max_steps_run):
    """A run ended by --max_steps still measures held-out MLM accuracy at the end: the curve's last point is step 3."""
    output_dir, _ = max_steps_run
    points = _curve(output_dir)
    assert points[0]["step"] == 0
    _assert_monotone_curve(points)
    assert points[-1]["step"] == 3, f"no evaluation at the end of training: curve steps {[p['step'] for p in points]}"


def test_record_says_what_ran_and_its_mfu(max_steps_run):
    """The record holds what accelerate ran, not the flags: bf16 by default where this CPU multiplies bf16 natively,
    no compilation, fused AdamW; and MFU = tokens/s × counted model FLOPs per token / that precision's measured peak."""
    _, spent = max_steps_run
    training, utilisation = spent["run_record"]["training"], spent["utilisation"]
    bf16 = native_bf16("cpu")
    assert training["mixed_precision"] == ("bf16" if bf16 else "no")
    assert training["torch_compile"] is None and training["optimizer"] == "AdamW (fused)"
    dtype = torch.bfloat16 if bf16 else torch.float32
    assert utilisation["matmul_dtype"] == str(dtype).removeprefix("torch.")
    assert utilisation["matmul_peak_flops"] == matmul_peak("cpu", dtype) and utilisation["devices"] == 1
    expected = spent["tokens_per_s"] * utilisation["model_flops_per_token"] / utilisation["matmul_peak_flops"]
    assert utilisation["mfu"] == pytest.approx(expected) and utilisation["mfu"] > 0


def test_unigram_decoder_bias_starts_a_fresh_model_on_the_plateau(tmp_path, train_file):
    """With the unigram decoder bias (the default), a fresh model's held-out loss before its first step is far below
    that of one without it (about log(vocabulary): every token alike)."""
    first_points = {}
    for flag in (("--no_unigram_decoder_bias",), ()):
        output_dir = tmp_path / ("fresh" if flag else "unigram")
        main(_argv(train_file, output_dir, "--max_steps", "1", "--num_eval_points", "1", *flag))
        first_points[not flag] = _curve(output_dir)[0]
    assert first_points[False]["step"] == first_points[True]["step"] == 0
    vocabulary = len(assets.default_tokenizer())
    assert first_points[False]["loss"] == pytest.approx(math.log(vocabulary), abs=0.5)
    assert first_points[True]["loss"] < first_points[False]["loss"] - 2


def test_unigram_decoder_bias_ranks_tokens_by_their_training_counts():
    """The bias orders tokens as their counts in the training blocks do: the most frequent first, special tokens
    (never labels) with the unseen ones at the bottom."""
    tokenizer = assets.default_tokenizer()
    train = block_dataset(wikitext_paragraphs(30), tokenizer, SEQ)
    config = HybridBertConfig.from_variant(
        "bert", size="tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    model = HybridBertForMaskedLM(config)
    set_unigram_decoder_bias(model, np.bincount(np.ravel(train["input_ids"]), minlength=len(tokenizer)), tokenizer)
    bias = model.get_output_embeddings().bias
    counts = Counter(token for block in train["input_ids"] for token in block)
    for special in tokenizer.all_special_ids:
        counts.pop(special, None)
    (most_frequent, _), *_ = counts.most_common(1)
    assert int(bias.argmax()) == most_frequent
    unseen = next(token for token in range(len(tokenizer)) if token not in counts)
    assert bias[tokenizer.cls_token_id] == bias[unseen] == bias.min()
    rare = min(counts, key=counts.get)
    assert bias[unseen] < bias[rare] < bias[most_frequent]


def test_training_masking_rate_leaves_the_held_out_set_alone(tmp_path, train_file):
    """--training_mlm_probability changes the training batches only: the held-out blocks, their masks and the
    fingerprint are those of the default rate, so the first held-out loss (same initial weights) is identical."""
    runs = {}
    for rate in (None, "0.4"):
        output_dir = tmp_path / str(rate)
        extra = ("--training_mlm_probability", rate) if rate else ()
        spent = main(_argv(train_file, output_dir, "--max_steps", "1", "--num_eval_points", "1", *extra))
        runs[rate] = spent, _curve(output_dir)[0]
    (default, default_start), (higher, higher_start) = runs[None], runs["0.4"]
    assert higher["run_record"]["data_sha256"] == default["run_record"]["data_sha256"]
    assert higher_start["loss"] == default_start["loss"]
    assert higher["arguments"]["data"]["training_mlm_probability"] == 0.4
    assert higher["utilisation"]["model_flops_per_token"] > default["utilisation"]["model_flops_per_token"]


def test_training_batches_without_padding_carry_no_attention_mask():
    """Packed blocks need no mask: the model then takes its unmasked path without reading a mask back from the
    device; a batch with padding keeps its mask."""
    collator = HeldOutCollator(assets.default_tokenizer(), mlm_probability=0.15)
    full = collator([{"input_ids": [101, 2000, 2001, 102]}, {"input_ids": [101, 2002, 2003, 102]}])
    assert set(full) == {"input_ids", "labels"}
    padded = collator([{"input_ids": [101, 2000, 102]}, {"input_ids": [101, 2002, 2003, 102]}])
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


@pytest.mark.parametrize("launcher, flag, recorded", [("bf16", "--bf16 false", "bf16"), (None, "--bf16 false", "no")])
def test_recorded_precision_is_accelerates_not_the_flag(tmp_path, train_file, monkeypatch, launcher, flag, recorded):
    """bf16 chosen by an accelerate config (ACCELERATE_MIXED_PRECISION, as `accelerate launch` sets it) is recorded as
    bf16 although --bf16 is off; --bf16 false alone trains and records fp32."""
    if launcher:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launcher)
    else:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    spent = main(_argv(train_file, tmp_path / "run", "--max_steps", "1", "--num_eval_points", "0", *flag.split()))
    assert spent["run_record"]["training"]["mixed_precision"] == recorded
    assert spent["utilisation"]["matmul_dtype"] == {"bf16": "bfloat16", "no": "float32"}[recorded]


def _wait_for(predicate, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert process.poll() is None, f"the run ended early with code {process.returncode}"
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s")


def _has_curve_point(output_dir: Path) -> bool:
    try:
        return len(_curve(output_dir)) >= 1
    except (OSError, json.JSONDecodeError, KeyError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_checkpoint_and_exits_cleanly(tmp_path, train_file, signum):
    """A real `python recipes/pretrain.py` with a 10 m budget, sent SIGTERM/SIGINT once training is under way,
    saves a checkpoint, writes budget.json with stop_reason 'signal' and exits with code 0."""
    output_dir = tmp_path / "run"
    log = tmp_path / "log.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "recipes/pretrain.py", *_argv(train_file, output_dir, "--budget", "10m")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_for(lambda: _has_curve_point(output_dir), timeout=240, process=process)  # the step-0 evaluation
            process.send_signal(signum)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    checkpoints = sorted(output_dir.glob("checkpoint-*"))
    assert checkpoints, output[-3000:]
    assert (checkpoints[-1] / BUDGET_STATE_FILE).is_file()
    assert (checkpoints[-1] / "model.safetensors").is_file()
    spent = json.loads((output_dir / "budget.json").read_text())
    assert spent["stop_reason"] == "signal"
    assert spent["steps"] >= 1 and spent["elapsed_s"] < spent["budget_s"]
    assert checkpoints[-1].name == f"checkpoint-{spent['steps']}"


# -- bad input: one clear error before anything is written ----------------------------------------------------------


@pytest.mark.parametrize(
    "extra, error, message",
    [
        (["--budget", "abc"], ValueError, "abc"),
        (["--budget", "0"], ValueError, "positive"),
        (["--budget=-5m"], ValueError, "-5m"),
        (["--variant", "nope"], ValueError, "nope"),
        (["--training_mlm_probability", "1.5"], ValueError, "training_mlm_probability"),
    ],
    ids=["budget-abc", "budget-0", "budget-negative", "variant-nope", "masking-rate"],
)
def test_bad_arguments_fail_before_writing(tmp_path, train_file, extra, error, message):
    """An unparseable or non-positive budget or an unknown variant raises one clear error; no output dir appears."""
    output_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        main(_argv(train_file, output_dir, *extra))
    assert not output_dir.exists()


def test_unknown_dataset_fails_before_writing(tmp_path):
    """--dataset nope raises a ValueError naming it; no output dir appears."""
    output_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="nope"):
        main([*TINY, "--dataset", "nope", "--output_dir", str(output_dir)])
    assert not output_dir.exists()


def test_missing_train_file_fails_before_writing(tmp_path):
    """A train file that does not exist raises FileNotFoundError naming it; no output dir appears."""
    output_dir = tmp_path / "run"
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        main(_argv(missing, output_dir))
    assert not output_dir.exists()


@pytest.mark.parametrize("content", ["", "\n   \n\n"], ids=["zero-bytes", "blank-lines"])
def test_empty_train_file_fails_with_clear_error(tmp_path, content):
    """An empty train file (no bytes, or only blank lines) raises a ValueError saying it holds no text; no output
    dir appears."""
    output_dir = tmp_path / "run"
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    with pytest.raises(ValueError, match=r"(?i)no text|empty"):
        main(_argv(empty, output_dir))
    assert not output_dir.exists()


def test_existing_run_needs_overwrite_flag(tmp_path, train_file):
    """An output dir holding another run is refused (nothing changed) without --overwrite_output_dir and replaced
    with it."""
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "budget.json").write_text('{"stop_reason": "budget", "steps": 99}')
    (output_dir / "other.txt").write_text("left by another run")
    RunIdentity(recipe="pretraining", shapes={}, conditions={}).write(output_dir)  # the mark of a run of ours
    before = {p.name: p.read_bytes() for p in output_dir.iterdir()}
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        main(_argv(train_file, output_dir, "--max_steps", "1", "--num_eval_points", "0"))
    assert {p.name: p.read_bytes() for p in output_dir.iterdir()} == before

    spent = main(_argv(train_file, output_dir, "--max_steps", "1", "--num_eval_points", "0", "--overwrite_output_dir"))
    assert spent["steps"] == 1
    assert not (output_dir / "other.txt").exists()
    assert json.loads((output_dir / "budget.json").read_text())["steps"] == 1


def test_pooling_options_that_read_cls_and_sep_pretrain(tmp_path, train_file):
    """The reference-code pooling options that read [CLS]/[SEP] pass the early config check (which has no tokenizer
    yet) and train with the tokenizer's ids."""
    options = "pooling_skip_boundaries=true,pooling_segment_max=true"
    argv = _argv(train_file, tmp_path / "run", "--max_steps", "1", "--num_eval_points", "1")
    argv[argv.index("hbert-v1")] = "pool-hybrid"
    argv[argv.index("--config_overrides") + 1] += f",{options}"
    main(argv)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    tokenizer = assets.default_tokenizer()
    assert config["pooling_segment_max"] and config["pooling_skip_boundaries"]
    assert (config["cls_token_id"], config["sep_token_id"]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
