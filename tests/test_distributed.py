"""The pretraining recipe on 2 CPU ranks: DDP (gloo) and DeepSpeed ZeRO-2, launched for real with `accelerate launch`
and `torchrun` (see docs/pretraining.md, "Scaling out"), a tiny hbert-v1 and short wall-clock budgets on real WikiText paragraphs.

Every rank runs `tests/distributed_worker.py`, which calls the real `recipes.pretrain.main` and writes, per rank, what
`main` returned, per optimizer step the agreed budget clock, the rank's own clock reading before the agreement and the
learning rate, and a sha256 of the final parameters. Assertions are about behaviour (agreement, equality, schedule
values as a function of the recorded clock), never about how long anything took. The DeepSpeed runs need the comm op
that DeepSpeed JIT-compiles once; `TORCH_EXTENSIONS_DIR` defaults to the project cache so the build is kept.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import free_port
from safetensors.torch import load_file

from recipes.data import assets
from recipes.records import BUDGET_FILE
from recipes.training.budget import BUDGET_STATE_FILE
from recipes.training.clock import budget_schedule

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"
ACCELERATE_CONFIGS = REPO / "recipes" / "accelerate"
DS_CONFIGS = {
    "ds_zero2": REPO / "recipes" / "ds_zero2.json",
    "ds_zero2_offload": REPO / "recipes" / "ds_zero2_offload.json",
}
OVERRIDES = "hidden_size=32,num_attention_heads=2,intermediate_size=64"
TINY = [
    "--variant", "hbert-v1",
    "--size", "tiny",
    "--max_seq_length", "32",
    "--per_device_eval_batch_size", "16",
    "--max_eval_samples", "16",
]  # fmt: skip
PEAK_LR, WARMUP, FINAL_RATIO = 1e-4, 0.05, 0.0  # the recipe's defaults, which the budget runs keep
BUDGET_S, RESUMED_BUDGET_S = 3.0, 6.0
SKEW_RATE = 2.0  # rank 1's budget clock runs twice as fast as real time
LAUNCH_TIMEOUT_S = 420  # a cold DeepSpeed op build alone takes ~2.5 min


# -- launching -------------------------------------------------------------------------------------------------------


def _env(**extra: str) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # 2 ranks on 2 cores
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.setdefault("TORCH_EXTENSIONS_DIR", str(assets.cache_dir() / "torch_extensions"))
    env.update(extra)
    return env


def _launcher(kind: str) -> list[str]:
    """The command prefix that starts 1 or 2 ranks: the accelerate configs of docs/pretraining.md, torchrun, or plain python."""
    if kind == "python":
        return [sys.executable]
    if kind == "torchrun":
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
        ]
    config = {"ddp": "cpu_2proc.yaml", "deepspeed": "deepspeed_zero2.yaml"}[kind]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / config),
        "--main_process_port", str(free_port()),
    ]  # fmt: skip


def _run(command: list[str], log: Path, env: dict | None = None) -> tuple[int, str]:
    """Run from the repo root (the accelerate DeepSpeed config names recipes/ds_zero2.json relative to it)."""
    with open(log, "w") as out:
        try:
            code = subprocess.run(
                command, cwd=REPO, env=env or _env(), stdout=out, stderr=subprocess.STDOUT, timeout=LAUNCH_TIMEOUT_S
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    output = log.read_text(errors="replace")
    assert code is not None, f"timed out after {LAUNCH_TIMEOUT_S} s: {' '.join(command)}\n{output[-6000:]}"
    return code, output


@dataclass
class Launch:
    kind: str  # ddp, deepspeed, torchrun or python
    output_dir: Path
    reports: list[dict]  # rank0.json, rank1.json, ...
    output: str  # stdout + stderr of the launcher and all ranks

    @property
    def budget_json(self) -> dict:
        return json.loads((self.output_dir / BUDGET_FILE).read_text())


def _launch(kind: str, workdir: Path, recipe_args: list[str], worker_args: list[str] = (), ranks: int = 2) -> Launch:
    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = workdir / "reports"
    shutil.rmtree(report_dir, ignore_errors=True)
    command = [*_launcher(kind), str(WORKER), "--report_dir", str(report_dir), *worker_args, "--", *recipe_args]
    code, output = _run(command, workdir / f"log-{len(list(workdir.glob('log-*')))}.txt")
    assert code == 0, f"{' '.join(command)}\nexited with {code}:\n{output[-6000:]}"
    reports = [json.loads((report_dir / f"rank{r}.json").read_text()) for r in range(ranks)]
    output_dir = Path(recipe_args[recipe_args.index("--output_dir") + 1])
    return Launch(kind, output_dir, reports, output)


def _budget_args(train_file: Path, output_dir: Path, budget_s: float, *extra: str) -> list[str]:
    return [
        *TINY, "--config_overrides", OVERRIDES, "--train_file", str(train_file), "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "4", "--budget", f"{budget_s:g}s", "--num_eval_points", "2", *extra,
    ]  # fmt: skip


def _scheduled_lr(elapsed_s: float, budget_s: float) -> float:
    return PEAK_LR * budget_schedule(min(1.0, elapsed_s / budget_s), WARMUP, FINAL_RATIO, "linear")


# -- 2-rank budgeted runs: DDP and DeepSpeed ZeRO-2 ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["ddp", "deepspeed"])
def run(request, tmp_path_factory, train_file) -> Launch:
    """A 3 s budget on 2 ranks with 2 evaluation points, under DDP or DeepSpeed ZeRO-2 (accelerate configs)."""
    workdir = tmp_path_factory.mktemp(request.param)
    return _launch(request.param, workdir, _budget_args(train_file, workdir / "run", BUDGET_S))


@pytest.mark.slow
def test_both_ranks_stop_at_the_same_step_on_the_budget(run):
    """Both ranks stop at the same step with stop_reason 'budget', at the first step whose agreed clock reached it."""
    steps = [report["spent"]["steps"] for report in run.reports]
    assert steps[0] == steps[1] >= 2
    for report in run.reports:
        assert report["spent"]["stop_reason"] == "budget"
        assert report["global_step"] == report["spent"]["steps"] == len(report["steps"])
        assert [s["step"] for s in report["steps"]] == list(range(1, steps[0] + 1))
        elapsed = [s["elapsed_s"] for s in report["steps"]]
        assert elapsed[-1] >= BUDGET_S > elapsed[-2], "not stopped at the first step past the budget"
    checkpoint = run.output_dir / f"checkpoint-{steps[0]}"
    assert (checkpoint / BUDGET_STATE_FILE).is_file()


@pytest.mark.slow
def test_agreed_clock_and_lr_are_identical_on_every_rank(run):
    """Every step the ranks hold the same agreed elapsed time (the maximum of their own readings) and the same LR."""
    rank0, rank1 = (report["steps"] for report in run.reports)
    assert [s["elapsed_s"] for s in rank0] == [s["elapsed_s"] for s in rank1]
    assert [s["lr"] for s in rank0] == [s["lr"] for s in rank1]
    for step0, step1 in zip(rank0, rank1):
        assert step0["elapsed_s"] == max(step0["local_elapsed_s"], step1["local_elapsed_s"])


@pytest.mark.slow
def test_lr_follows_the_agreed_elapsed_time(run):
    """At every step the LR is peak x budget_schedule(elapsed / budget): warmup, decay, 0 at the deadline; under
    DeepSpeed too (the ZeRO-2 config has no scheduler block, so the recipe's time-driven scheduler drives the engine)."""
    for report in run.reports:
        assert report["lr_scheduler"] == "LambdaLR"
        for step in report["steps"]:
            expected = _scheduled_lr(step["elapsed_s"], BUDGET_S)
            assert step["lr"] == [pytest.approx(expected, rel=1e-9, abs=1e-15)] * len(step["lr"]), step
        lrs = [step["lr"][0] for step in report["steps"]]
        assert max(lrs) > 0.3 * PEAK_LR and lrs[-1] == 0.0
    deepspeed = [report["deepspeed"] for report in run.reports]
    optimizers = {report["optimizer"] for report in run.reports}
    if run.kind == "deepspeed":
        assert deepspeed == [True, True] and optimizers == {"DeepSpeedOptimizerWrapper"}
    else:
        assert deepspeed == [False, False] and optimizers == {"AcceleratedOptimizer"}


@pytest.mark.slow
def test_final_parameters_are_identical_across_ranks(run):
    """After training both ranks hold bit-identical parameters."""
    assert run.reports[0]["parameters_sha256"] == run.reports[1]["parameters_sha256"]


@pytest.mark.slow
def test_budget_json_is_written_once_by_the_main_process(run):
    """budget.json records the agreed stop (2 ranks, same steps, 'budget'); only the main process reports it."""
    spent = run.budget_json
    assert spent["world_size"] == 2 and spent["stop_reason"] == "budget"
    assert spent["steps"] == run.reports[0]["spent"]["steps"]
    assert spent["elapsed_s"] == pytest.approx(run.reports[0]["steps"][-1]["elapsed_s"])
    assert spent["samples"] == spent["steps"] * 4 * 2
    assert run.output.count("Stopped (budget)") == 1, run.output[-3000:]


LOAD_SCRIPT = r"""
import hashlib, json, sys, torch
import transformers
auto_class = getattr(transformers, sys.argv[2])
model = auto_class.from_pretrained(sys.argv[1], trust_remote_code=True)
digest = hashlib.sha256()
for name, tensor in sorted(model.state_dict().items()):
    digest.update(name.encode())
    digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
print(json.dumps({"module": type(model).__module__, "variant": model.config.variant, "sha256": digest.hexdigest()}))
"""


def _load_in_fresh_process(output_dir: Path, auto_class: str, tmp_path: Path) -> dict:
    """What LOAD_SCRIPT reports of the output dir loaded through `auto_class` with trust_remote_code=True."""
    env = {**_env(), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(output_dir), auto_class],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules")  # the copied remote code, not the repo's package
    return loaded


@pytest.mark.slow
def test_saved_model_loads_with_remote_code_and_holds_the_trained_parameters(run, tmp_path):
    """A fresh process loads the output dir with trust_remote_code=True, and its parameters are the ranks' final ones."""
    loaded = _load_in_fresh_process(run.output_dir, "AutoModelForMaskedLM", tmp_path)
    assert loaded["variant"] == "hbert-v1"
    assert loaded["sha256"] == run.reports[0]["parameters_sha256"]
    expected = {"ddp": "MULTI_CPU", "deepspeed": "DEEPSPEED"}[run.kind]
    assert run.budget_json["run_record"]["training"]["distributed_type"] == expected


# -- distillation on DeepSpeed ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, train_file, teacher_dir) -> Launch:
    """recipes/distill.py healing a tiny hbert-v1 from a tiny random BERT for 6 steps on 2 DeepSpeed ZeRO-2 ranks."""
    workdir = tmp_path_factory.mktemp("deepspeed-distill")
    args = [
        "--teacher", str(teacher_dir), "--variant", "hbert-v1", "--train_file", str(train_file),
        "--output_dir", str(workdir / "run"), "--max_seq_length", "32", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "16", "--max_eval_samples", "16", "--learning_rate", "2e-3",
        "--warmup_steps", "0", "--budget", "10m", "--max_steps", "6", "--num_eval_points", "1",
    ]  # fmt: skip
    return _launch("deepspeed", workdir, args, ["--recipe", "distill"])


@pytest.mark.slow
def test_distillation_trains_on_two_deepspeed_ranks(distilled, tmp_path):
    """Both ranks step through DeepSpeed's optimizer and end with identical parameters; the main process records the
    run once, as a 2-rank DeepSpeed run; the saved student holds those parameters and agrees more with its teacher
    than at the start."""
    reports = distilled.reports
    assert [report["deepspeed"] for report in reports] == [True, True]
    assert {report["optimizer"] for report in reports} == {"DeepSpeedOptimizerWrapper"}
    assert [report["global_step"] for report in reports] == [6, 6]
    assert reports[0]["parameters_sha256"] == reports[1]["parameters_sha256"]
    spent = distilled.budget_json
    assert spent["world_size"] == 2 and spent["steps"] == 6 and spent["samples"] == 6 * 4 * 2
    assert spent["run_record"]["training"]["distributed_type"] == "DEEPSPEED"
    assert spent["agreement"]["end"] > spent["agreement"]["start"]
    assert distilled.output.count("Stopped (max_steps)") == 1, distilled.output[-3000:]
    loaded = _load_in_fresh_process(distilled.output_dir, "AutoModel", tmp_path)
    assert loaded["variant"] == "hbert-v1" and loaded["sha256"] == reports[0]["parameters_sha256"]


# -- resume ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resumed(run, tmp_path_factory, train_file) -> tuple[Launch, Launch, int]:
    """(first run, resumed run, checkpoint step): a copy of the 3 s run resumed from its checkpoint with a 6 s budget,
    by the same kind of launch."""
    workdir = tmp_path_factory.mktemp(f"{run.kind}-resumed")
    output_dir = workdir / "run"
    shutil.copytree(run.output_dir, output_dir)
    step = run.reports[0]["spent"]["steps"]
    checkpoint = output_dir / f"checkpoint-{step}"
    args = _budget_args(train_file, output_dir, RESUMED_BUDGET_S, "--resume_from_checkpoint", str(checkpoint))
    return run, _launch(run.kind, workdir, args), step


@pytest.mark.slow
def test_resume_continues_with_the_remaining_budget(resumed):
    """Resumed from the 3 s run's checkpoint with a 6 s budget, both ranks continue from the next step and the
    checkpoint's elapsed time, follow the 6 s schedule, and stop together at 6 s with identical parameters."""
    first, second, step = resumed
    first_elapsed = first.reports[0]["steps"][-1]["elapsed_s"]
    saved = json.loads((first.output_dir / f"checkpoint-{step}" / BUDGET_STATE_FILE).read_text())
    assert saved["elapsed_s"] == pytest.approx(first_elapsed)
    for report in second.reports:
        assert report["spent"]["stop_reason"] == "budget"
        assert report["spent"]["steps"] > step
        assert report["steps"][0]["step"] == step + 1
        assert report["steps"][0]["elapsed_s"] > first_elapsed
        assert report["steps"][-1]["elapsed_s"] >= RESUMED_BUDGET_S > report["steps"][-2]["elapsed_s"]
        for record in report["steps"]:
            assert record["lr"][0] == pytest.approx(
                _scheduled_lr(record["elapsed_s"], RESUMED_BUDGET_S), rel=1e-9, abs=1e-15
            )
    rank0, rank1 = second.reports
    assert rank0["spent"]["steps"] == rank1["spent"]["steps"] == second.budget_json["steps"]
    assert [s["elapsed_s"] for s in rank0["steps"]] == [s["elapsed_s"] for s in rank1["steps"]]
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]
    assert second.budget_json["elapsed_s"] >= RESUMED_BUDGET_S


# -- a skewed clock ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def skewed(tmp_path_factory, train_file) -> Launch:
    """A 3 s budget on 2 DDP ranks started by torchrun, rank 1's budget clock running twice as fast as real time."""
    workdir = tmp_path_factory.mktemp("skewed")
    corpus = workdir / "corpus.txt"  # a text of its own (a unique last line), so the ranks find nothing prepared
    corpus.write_text(train_file.read_text(encoding="utf-8") + f"A last line {uuid.uuid4()}.\n", encoding="utf-8")
    args = _budget_args(corpus, workdir / "run", BUDGET_S)
    return _launch("torchrun", workdir, args, worker_args=["--clock_rate", str(SKEW_RATE)])


@pytest.mark.slow
def test_ranks_started_by_torchrun_prepare_the_data_once(skewed):
    """Both ranks start on a corpus prepared by neither: one prepares it, the other waits on the cache's lock (no
    collective, so no timeout however long preparation takes), and both train on the same data."""
    assert skewed.output.count("Preparing the pretraining data into") == 1
    assert len({report["spent"]["run_record"]["data_sha256"] for report in skewed.reports}) == 1


@pytest.mark.slow
def test_skewed_clock_ranks_still_agree_on_stop_and_lr(skewed):
    """With rank 1's clock running 2x fast, both ranks stop at the same step on the budget with the same agreed clock
    and LR history (the fast clock governs), although rank 0's own clock had not reached the deadline."""
    rank0, rank1 = skewed.reports
    assert rank1["clock_rate"] == SKEW_RATE and rank0["clock_rate"] == 1.0
    assert rank0["spent"]["steps"] == rank1["spent"]["steps"] == skewed.budget_json["steps"]
    assert rank0["spent"]["stop_reason"] == rank1["spent"]["stop_reason"] == "budget"
    assert [s["elapsed_s"] for s in rank0["steps"]] == [s["elapsed_s"] for s in rank1["steps"]]
    assert [s["lr"] for s in rank0["steps"]] == [s["lr"] for s in rank1["steps"]]
    for step in rank0["steps"]:
        assert step["lr"][0] == pytest.approx(_scheduled_lr(step["elapsed_s"], BUDGET_S), rel=1e-9, abs=1e-15)
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]

    # What rank 0's clock would read without the agreement: the sum of its own increments over the agreed time.
    own_clock_rank0, agreed_before = 0.0, 0.0
    for step in rank0["steps"]:
        own_clock_rank0 += step["local_elapsed_s"] - agreed_before
        agreed_before = step["elapsed_s"]
    # The fast clock sets the agreed time, and rank 0's own clock had not reached the deadline when both stopped:
    # without the agreement rank 1 would have stopped alone, long before rank 0 (a hang or a gloo error).
    governed = sum(s["elapsed_s"] == s["local_elapsed_s"] for s in rank1["steps"])
    assert governed > 0.5 * len(rank1["steps"]), rank1["steps"]
    assert own_clock_rank0 < BUDGET_S <= skewed.budget_json["elapsed_s"]


# -- the 2-rank loss equals the 1-rank loss ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loss_runs(tmp_path_factory, train_file) -> tuple[Launch, Launch]:
    """(1 rank x 8, 2 DDP ranks x 4): 3 fp32 SGD steps from the same initial weights on the same pre-masked blocks (the
    recipe's collator passes examples that carry labels through), no dropout, no clipping, a constant LR."""
    workdir = tmp_path_factory.mktemp("loss")
    init = workdir / "init.pt"
    common = [
        *TINY, "--config_overrides", f"{OVERRIDES},hidden_dropout_prob=0.0,attention_probs_dropout_prob=0.0",
        "--train_file", str(train_file), "--budget", "1h", "--max_steps", "3", "--logging_steps", "1",
        "--optim", "sgd", "--learning_rate", "0.5", "--max_grad_norm", "0", "--lr_scheduler_type", "constant",
        "--warmup_steps", "0", "--num_eval_points", "0", "--eval_on_start", "false", "--bf16", "false",
    ]  # fmt: skip
    one = _launch(
        "python", workdir / "one", [*common, "--per_device_train_batch_size", "8", "--output_dir", str(workdir / "one" / "run")],
        worker_args=["--premasked", "--save_init_weights", str(init)], ranks=1,
    )  # fmt: skip
    two = _launch(
        "ddp", workdir / "two", [*common, "--per_device_train_batch_size", "4", "--output_dir", str(workdir / "two" / "run")],
        worker_args=["--premasked", "--init_weights", str(init)],
    )  # fmt: skip
    return one, two


def _train_logs(launch: Launch) -> list[dict]:
    return [entry for entry in launch.reports[0]["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_two_rank_loss_equals_one_rank_loss_for_the_same_global_batch(loss_runs):
    """2 ranks x 4 blocks log the same per-step loss and gradient norm as 1 rank x 8 blocks, and end with the same
    parameters.

    This catches a mishandled `num_items_in_batch`: Trainer gives the model the token count of the GLOBAL batch and
    multiplies each rank's loss by the number of processes (DDP then averages gradients). A model that ignores
    `num_items_in_batch` while accepting loss kwargs doubles the loss and the gradients on 2 ranks; one that averages
    per rank (accepts_loss_kwargs = False) weighs the ranks' unequal masked-token counts wrongly. SGD without clipping
    carries any gradient scale error into the parameters (Adam and clipping would hide it)."""
    one, two = loss_runs
    logs_one, logs_two = _train_logs(one), _train_logs(two)
    assert [e["step"] for e in logs_one] == [e["step"] for e in logs_two] == [1, 2, 3]
    for a, b in zip(logs_one, logs_two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6), (logs_one, logs_two)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5), (logs_one, logs_two)
    assert two.reports[0]["parameters_sha256"] == two.reports[1]["parameters_sha256"]
    final_one = load_file(one.output_dir / "model.safetensors")
    final_two = load_file(two.output_dir / "model.safetensors")
    assert final_one.keys() == final_two.keys()
    init = torch.load(one.output_dir.parents[1] / "init.pt")
    moved = max((final_one[k] - init[k]).abs().max().item() for k in final_one)
    assert moved > 0.01  # the parameters really moved, so a wrong gradient scale would show
    for name in final_one:
        torch.testing.assert_close(final_two[name], final_one[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.slow
def test_same_seed_starts_from_the_same_weights_on_one_and_two_ranks(loss_runs):
    """With the same --seed, the recipe initialises the same weights whatever the number of processes."""
    one, two = loss_runs
    assert one.reports[0]["recipe_init_sha256"] == two.reports[0]["recipe_init_sha256"]


# -- DeepSpeed configs ---------------------------------------------------------------------------------------------------


def _tiny_model():
    from recipes.models.starting_model import build_model
    from recipes.training.pretrain_arguments import ModelArguments

    return build_model(
        ModelArguments(variant="hbert-v1", size="tiny", config_overrides=OVERRIDES), assets.default_tokenizer()
    )


def _has_auto(node) -> bool:
    if isinstance(node, dict):
        return any(_has_auto(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_auto(value) for value in node)
    return node == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DS_CONFIGS))
def test_deepspeed_config_validates_offline_against_the_recipe_arguments(name, tmp_path):
    """The recipe's own PretrainingArguments with --deepspeed fill every 'auto' without a mismatch, DeepSpeed accepts
    the result, and the config has no scheduler block (the time-budget scheduler drives the LR)."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import HfArgumentParser
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from recipes.training.pretrain_arguments import PretrainingArguments

    path = DS_CONFIGS[name]
    raw = json.loads(path.read_text())
    assert "scheduler" not in raw
    argv = ["--output_dir", str(tmp_path), "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2"]
    (args,) = HfArgumentParser((PretrainingArguments,)).parse_args_into_dataclasses([*argv, "--deepspeed", str(path)])
    try:
        hf_config = args.hf_deepspeed_config  # TrainingArguments.__post_init__ ran trainer_config_process(args)
        assert hf_config.mismatches == []
        hf_config.trainer_config_finalize(args, _tiny_model(), num_training_steps=100)
        filled = copy.deepcopy(hf_config.config)
        assert not _has_auto(filled), filled
        ds = DeepSpeedConfig(filled)
    finally:
        unset_hf_deepspeed_config()
    assert ds.zero_optimization_stage == 2
    assert (ds.train_micro_batch_size_per_gpu, ds.gradient_accumulation_steps, ds.train_batch_size) == (4, 2, 8)
    assert ds.gradient_clipping == args.max_grad_norm
    assert "scheduler" not in filled
    if "optimizer" in filled:
        assert filled["optimizer"]["params"]["lr"] == args.learning_rate == PEAK_LR
        assert filled["optimizer"]["params"]["weight_decay"] == args.weight_decay
    if name == "ds_zero2_offload":
        assert filled["zero_optimization"]["offload_optimizer"]["device"] == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize(
    "key, value, hf_key",
    [
        ("train_micro_batch_size_per_gpu", 16, "per_device_train_batch_size"),
        ("gradient_accumulation_steps", 4, "gradient_accumulation_steps"),
        ("train_batch_size", 64, "train_batch_size"),
    ],
)
def test_mismatching_deepspeed_config_fails_offline_validation(key, value, hf_key, tmp_path):
    """A DeepSpeed value that contradicts the recipe's arguments is reported by name by the offline validation."""
    from transformers import HfArgumentParser
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig, unset_hf_deepspeed_config

    from recipes.training.pretrain_arguments import PretrainingArguments

    config = {**json.loads(DS_CONFIGS["ds_zero2"].read_text()), key: value}
    argv = ["--output_dir", str(tmp_path), "--per_device_train_batch_size", "4"]
    (args,) = HfArgumentParser((PretrainingArguments,)).parse_args_into_dataclasses(argv)
    try:
        hf_config = HfTrainerDeepSpeedConfig(config)
        hf_config.trainer_config_process(args)
        with pytest.raises(ValueError, match=rf"ds {key}={value} vs hf {hf_key}"):
            hf_config.trainer_config_finalize(args, _tiny_model(), num_training_steps=100)
    finally:
        unset_hf_deepspeed_config()


@pytest.fixture(scope="module")
def rejected(tmp_path_factory, train_file) -> tuple[int, str, Path]:
    """(exit code, output, output dir) of `python recipes/pretrain.py --deepspeed bad.json` (one DeepSpeed process)
    whose micro batch (16) contradicts --per_device_train_batch_size 4, with --overwrite_output_dir over a dir that
    holds an earlier run's file."""
    workdir = tmp_path_factory.mktemp("rejected")
    bad = workdir / "bad.json"
    bad.write_text(json.dumps({**json.loads(DS_CONFIGS["ds_zero2"].read_text()), "train_micro_batch_size_per_gpu": 16}))
    output_dir = workdir / "run"
    output_dir.mkdir()
    (output_dir / "earlier_run.txt").write_text("an earlier run's result\n")
    argv = [*_budget_args(train_file, output_dir, BUDGET_S), "--deepspeed", str(bad), "--overwrite_output_dir"]
    env = _env(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    code, output = _run([sys.executable, "recipes/pretrain.py", *argv], workdir / "log.txt", env=env)
    return code, output, output_dir


@pytest.mark.slow
def test_mismatching_deepspeed_config_is_rejected_before_training(rejected):
    """The run exits non-zero with one error naming the mismatched key, before any step, evaluation or save."""
    code, output, output_dir = rejected
    assert code != 0, output[-3000:]
    naming = [line for line in output.splitlines() if "train_micro_batch_size_per_gpu" in line]
    assert len(naming) == 1 and "16" in naming[0] and "per_device_train_batch_size" in naming[0], output[-3000:]
    assert output.count("Traceback") <= 1, output[-3000:]
    assert "'loss'" not in output and "eval_loss" not in output
    produced = {p.name for p in output_dir.iterdir()} if output_dir.exists() else set()
    assert not produced & {BUDGET_FILE, "mlm_curve.json", "model.safetensors"}, produced
    assert not any(name.startswith("checkpoint-") for name in produced), produced


@pytest.mark.slow
def test_rejected_deepspeed_config_leaves_the_output_dir_untouched(rejected):
    """A config rejected as invalid writes nothing: an earlier run in the output dir survives --overwrite_output_dir."""
    code, output, output_dir = rejected
    assert code != 0
    assert (output_dir / "earlier_run.txt").is_file(), "the earlier run was deleted before the config was rejected"
