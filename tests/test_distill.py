"""Healing by distillation (`recipes/distill.py`): the loss, a short run end to end from a tiny teacher built from a
random BERT, and the healed student loaded in a fresh process through AutoModel, the feature-extraction pipeline and
sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertModel, TrainerCallback

from modeling import HybridBertModel
from recipes.cards.healed import build_healed_card
from recipes.data.assets import default_tokenizer
from recipes.distill import main
from recipes.environment import git_commit
from recipes.evaluation.probing import agreement, linear_probe
from recipes.models.starting_model import build_model, requested_config, resolve_start, source_settings
from recipes.pretrain import main as pretrain_main
from recipes.probe import main as probe_main
from recipes.push_to_hub import main as push_main
from recipes.showcase import main as showcase_main
from recipes.training.distillation import distillation_loss, hidden_state_distance
from recipes.training.head_warmup import check_head_warmup
from recipes.training.pretrain_arguments import ModelArguments
from studies.healing.table import main as heal_table_main

REPO = Path(__file__).resolve().parents[1]
SEQ = 32
RUN = [
    "--variant", "hbert-v1",
    "--max_seq_length", str(SEQ),
    "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "16",
    "--max_eval_samples", "16",
    "--learning_rate", "2e-3",
    "--warmup_steps", "0",
    "--use_cpu",
]  # fmt: skip


def test_hidden_state_distance_is_one_minus_correlation():
    a, b = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    centred = [x - x.mean(-1, keepdim=True) for x in (a, b)]
    correlation = torch.nn.functional.cosine_similarity(*centred, dim=-1)
    assert torch.allclose(hidden_state_distance(a, b, None), (1 - correlation).mean(), atol=1e-4)
    assert hidden_state_distance(a, 3 * a + 1, None).abs() < 1e-4  # scale- and shift-free
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = (1 - correlation)[mask.bool()].mean()
    assert torch.allclose(hidden_state_distance(a, b, mask), expected, atol=1e-4)


def test_loss_is_zero_for_an_exact_copy_and_reaches_only_the_student(teacher_dir):
    """A student that computes the teacher's function has zero loss; the gradient reaches the student, not the teacher."""
    teacher = BertModel.from_pretrained(teacher_dir).eval()
    student = HybridBertModel.from_bert(teacher, variant="bert")
    inputs = {"input_ids": torch.randint(1000, 2000, (2, 10)), "attention_mask": torch.ones(2, 10, dtype=torch.long)}
    inputs["attention_mask"][1, 6:] = 0
    with torch.no_grad():
        teacher_outputs = teacher(**inputs, output_hidden_states=True)
    loss, *_ = distillation_loss(
        student(**inputs, output_hidden_states=True), teacher_outputs, inputs["attention_mask"], 1.0, 1.0
    )
    assert loss.abs() < 1e-5

    hybrid = HybridBertModel.from_bert(teacher, variant="hbert-v1")
    loss, student_embedding, teacher_embedding = distillation_loss(
        hybrid(**inputs, output_hidden_states=True), teacher_outputs, inputs["attention_mask"], 1.0, 1.0
    )
    assert loss > 0.01 and student_embedding.shape == teacher_embedding.shape == (2, 32)
    loss.backward()
    assert hybrid.layers[1].mixer.query_score.weight.grad.abs().sum() > 0  # the new additive mixer learns
    assert all(p.grad is None for p in teacher.parameters())


def test_source_settings_are_bert_settings_in_the_hybrid_layout(teacher_dir):
    teacher = BertModel.from_pretrained(teacher_dir)
    student = HybridBertModel.from_bert(teacher, variant="hbert-v1", **source_settings(teacher.config))
    config = student.config
    assert config.mixer_types == ["self", "additive", "self", "additive"]
    assert (config.norm_style, config.hidden_act, config.ffn_bias, config.position_embedding_type) == (
        "post", "gelu", True, "absolute",
    )  # fmt: skip


def test_mlm_healing_keeps_the_source_settings_when_asked(teacher_dir):
    """pretrain --init_from --keep_source_settings builds the hybrid with the BERT's settings, as distillation does;
    the flag without --init_from is refused."""
    model_args = ModelArguments(variant="hbert-v1", init_from=str(teacher_dir), keep_source_settings=True)
    start = resolve_start(model_args)
    model = build_model(model_args, default_tokenizer(), start)
    expected = ("post", "gelu", True, "absolute")
    for config in (model.config.to_dict(), requested_config(model_args, start=start)):
        assert (config["norm_style"], config["hidden_act"], config["ffn_bias"], config["position_embedding_type"]) == (
            expected
        )
    own = build_model(ModelArguments(variant="hbert-v1", init_from=str(teacher_dir)), default_tokenizer(), start)
    assert own.config.norm_style == "sub"
    with pytest.raises(ValueError, match="--keep_source_settings needs --init_from"):
        resolve_start(ModelArguments(variant="hbert-v1", keep_source_settings=True))


class WeightWatch(TrainerCallback):
    """Copies of the encoder's and the MLM head's weights when training begins and after each step, and the learning
    rate after each step."""

    def __init__(self):
        self.snapshots, self.learning_rates = {}, {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.take(0, model)

    def on_step_end(self, args, state, control, model=None, lr_scheduler=None, **kwargs):
        self.take(state.global_step, model)
        self.learning_rates[state.global_step] = lr_scheduler.get_last_lr()[0]

    def take(self, step, model):
        self.snapshots[step] = {
            part: torch.cat([p.detach().flatten().clone() for p in module.parameters()])
            for part, module in (("encoder", model.base_model), ("head", model.lm_head.dense))
        }


def test_mlm_healing_warms_up_the_new_head_before_the_encoder_trains(teacher_dir, train_file, tmp_path):
    """With --head_warmup_steps 2 the head trains from the first step while the converted encoder stays exactly as
    copied for 2 steps, then trains too, its learning rate restarting from 0 over the next 2 steps (here on a linear
    decay from 2e-3 over 6 steps, no warm-up of its own); the record says so."""
    watch = WeightWatch()
    argv = ["--init_from", str(teacher_dir), "--train_file", str(train_file), "--output_dir", str(tmp_path / "run")]
    argv += ["--head_warmup_steps", "2", "--max_steps", "6", "--num_eval_points", "0", "--data_seed", "1", *RUN]
    spent = pretrain_main(argv, callbacks=[watch])
    snapshots = watch.snapshots
    for step in (1, 2):
        assert torch.equal(snapshots[step]["encoder"], snapshots[0]["encoder"])
        assert not torch.equal(snapshots[step]["head"], snapshots[step - 1]["head"])
    assert not torch.equal(snapshots[3]["encoder"], snapshots[2]["encoder"])
    schedule = {step: 2e-3 * (6 - step) / 6 for step in range(1, 6)}
    expected = {**schedule, 2: schedule[2] / 2}
    assert watch.learning_rates == pytest.approx({step: expected.get(step, 0.0) for step in range(1, 7)})
    assert spent["run_record"]["training"]["head_warmup_steps"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--head_warmup_steps", "0"], "a number of steps ≥ 1"),
        (["--head_warmup_steps", "3", "--max_steps", "6"], "take 6 steps, leaving none of --max_steps 6"),
    ],
)
def test_a_head_warmup_that_cannot_work_is_refused_before_anything_is_written(
    teacher_dir, train_file, tmp_path, extra, message
):
    output_dir = tmp_path / "run"
    argv = ["--init_from", str(teacher_dir), "--train_file", str(train_file), "--output_dir", str(output_dir), *RUN]
    with pytest.raises(ValueError, match=message):
        pretrain_main([*argv, *extra])
    with pytest.raises(ValueError, match="a BERT converted with --init_from"):
        pretrain_main(
            [*RUN, "--train_file", str(train_file), "--output_dir", str(output_dir), "--head_warmup_steps", "2"]
        )
    assert not output_dir.exists()


def test_a_head_warmup_on_several_processes_needs_ddp_to_expect_unused_parameters():
    """Frozen parameters give DistributedDataParallel nothing to reduce; partitioned optimizers ignore the freezing."""
    several = SimpleNamespace(max_steps=0, deepspeed=None, fsdp=[], world_size=2, ddp_find_unused_parameters=False)
    with pytest.raises(ValueError, match="--ddp_find_unused_parameters true"):
        check_head_warmup(100, "minilm", several)
    check_head_warmup(100, "minilm", SimpleNamespace(**{**vars(several), "ddp_find_unused_parameters": True}))
    with pytest.raises(ValueError, match="DeepSpeed's and FSDP's partitions"):
        check_head_warmup(100, "minilm", SimpleNamespace(**{**vars(several), "deepspeed": "ds_zero2.json"}))


@pytest.fixture(scope="module")
def distilled(teacher_dir, train_file, tmp_path_factory) -> tuple[Path, dict]:
    output_dir = tmp_path_factory.mktemp("distilled") / "run"
    spent = main([
        "--teacher", str(teacher_dir), "--train_file", str(train_file), "--output_dir", str(output_dir),
        "--budget", "10m", "--max_steps", "25", "--num_eval_points", "1", *RUN,
    ])  # fmt: skip
    return output_dir, spent


def test_distillation_raises_agreement_and_records_the_run(distilled):
    output_dir, spent = distilled
    assert spent["steps"] == 25 and spent["stop_reason"] == "max_steps"
    curve = json.loads((output_dir / "agreement_curve.json").read_text())["points"]
    assert [p["step"] for p in curve] == [0, 25]  # at the start, and at the stop
    assert curve[-1]["agreement"] > curve[0]["agreement"]
    assert curve[-1]["loss"] < curve[0]["loss"]
    record = json.loads((output_dir / "budget.json").read_text())
    assert record["agreement"] == {"start": curve[0]["agreement"], "end": curve[-1]["agreement"]}
    assert record["run_record"]["training"]["objective"] == "distillation"
    assert record["variant"] == "hbert-v1" and not record["keep_source_settings"]
    assert "layers.1.mixer.query_score.weight" in record["initialisation"]["newly_initialized"]
    assert len(record["initialisation"]["dropped_biases"]) == 8  # HBERT's FFNs have no bias: 2 per layer
    assert (output_dir / "agreement_curve.png").is_file()


LOAD_IN_FRESH_PROCESS = """
import json, sys
import torch
from transformers import BertModel
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer, pipeline

path, texts = sys.argv[1], ["The cat sat on the mat.", "Paris is the capital of France, on the Seine."]
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
batch = tokenizer(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = model(**batch).last_hidden_state
mask = batch["attention_mask"][..., None].float()
manual = (hidden * mask).sum(1) / mask.sum(1)
extractor = pipeline("feature-extraction", model=path, trust_remote_code=True)
from_pipeline = torch.stack([torch.tensor(extractor(text)[0]).mean(0) for text in texts])
encoder = SentenceTransformer(path, trust_remote_code=True, device="cpu")
from_st = torch.tensor(encoder.encode(texts))
print(json.dumps({
    "class": type(model).__name__,
    "variant": model.config.variant,
    "pipeline_vs_manual": (from_pipeline - manual).abs().max().item(),
    "st_vs_manual": (from_st - manual).abs().max().item(),
    "pooling": [type(module).__name__ for module in encoder],
}))
"""


def test_healed_student_loads_in_a_fresh_process(distilled, tmp_path):
    """AutoModel, pipeline("feature-extraction") and SentenceTransformer (mean pooling) give the same embeddings."""
    output_dir, _ = distilled
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(output_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "HybridBertModel" and loaded["variant"] == "hbert-v1"
    assert loaded["pipeline_vs_manual"] < 1e-5
    assert loaded["st_vs_manual"] < 1e-5
    assert loaded["pooling"] == ["Transformer", "Pooling"]
    pooling = json.loads((output_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True


def test_bad_teacher_fails_before_writing(tmp_path, train_file):
    output_dir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="--teacher .*: no such folder"):
        main(
            [
                "--teacher",
                str(tmp_path / "missing"),
                "--train_file",
                str(train_file),
                "--output_dir",
                str(output_dir),
                *RUN,
            ]
        )
    assert not output_dir.exists()


def test_linear_probe_and_agreement():
    """The probe separates separable classes, fails on shuffled labels' structure-free data; agreement is a cosine."""
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 3, 300)
    features = generator.normal(size=(300, 8)) + 4 * np.eye(8)[labels]
    scores = linear_probe(features[:200], labels[:200], features[200:], labels[200:], seed=0)
    assert scores["accuracy"] > 0.95 and scores["macro_f1"] > 0.95
    noise = generator.normal(size=(300, 8))
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:], seed=0)["accuracy"] < 0.6
    assert agreement(features, features) == pytest.approx(1.0)
    assert agreement(features, -features) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def probed(teacher_dir, distilled, tmp_path_factory) -> tuple[Path, dict]:
    student_dir, _ = distilled
    output = tmp_path_factory.mktemp("probe") / "probe.json"
    results = probe_main([
        "--teacher", str(teacher_dir), "--students", str(student_dir), "--unhealed", "bert", "hbert-v1",
        "--unhealed_source_settings", "hbert-v1", "--tasks", "trec", "--max_train_samples", "200", "--max_length", str(SEQ),
        "--latency_seqs", "16", "32", "--latency_repeats", "1", "--output_file", str(output),
    ])  # fmt: skip
    return output, results


def test_probe_compares_students_with_their_teacher(distilled, probed):
    """Teacher, a healed student and three unhealed conversions through one probe: the `bert` conversion computes the
    teacher's function, so its probe scores equal the teacher's and it agrees fully; `hbert-v1` keeping the teacher's
    settings copies more of it and agrees more than with HBERT's; latency is timed for each."""
    student_dir, _ = distilled
    output, results = probed
    trec = results["tasks"]["trec"]
    kept = "hbert-v1 (unhealed, source settings)"
    assert list(trec) == ["teacher", str(student_dir), "bert (unhealed)", "hbert-v1 (unhealed)", kept]
    assert trec[kept]["agreement"] > trec["hbert-v1 (unhealed)"]["agreement"]
    assert trec["teacher"]["agreement"] == pytest.approx(1.0)
    assert trec["bert (unhealed)"]["agreement"] == pytest.approx(1.0, abs=1e-5)
    assert trec["bert (unhealed)"]["accuracy"] == pytest.approx(trec["teacher"]["accuracy"], abs=0.005)
    assert trec[str(student_dir)]["agreement"] > trec["hbert-v1 (unhealed)"]["agreement"]
    for records in results["latency_ms"].values():  # each encoder and the teacher in this implementation
        assert records["teacher"]["ratio_vs"]["teacher"] == 1.0 and len(records) == 6
        assert records["teacher in this implementation"]["ratio_vs"]["teacher in this implementation"] == 1.0
        assert set(records["hbert-v1 (unhealed)"]["ratio_vs"]) == {"teacher", "teacher in this implementation"}
    written = json.loads(output.read_text())
    assert written["tasks"]["trec"]["teacher"] == trec["teacher"]
    assert written["git_commit"] == git_commit() and len(written["load_average"]) == 3  # what made it, on what load
    table = output.with_suffix(".md").read_text()
    assert "latency 32 (ms, ÷ teacher, ÷ teacher in this implementation)" in table
    assert "| teacher in this implementation | – | – |" in table  # timed only: no probe, no agreement
    described = results["encoders"][str(student_dir)]
    assert {key: described[key] for key in ("kind", "variant", "objective", "keep_source_settings", "steps")} == {
        "kind": "healed", "variant": "hbert-v1", "objective": "distillation", "keep_source_settings": False, "steps": 25,
    }  # fmt: skip
    assert results["encoders"][kept] == {
        "kind": "unhealed", "variant": "hbert-v1", "keep_source_settings": True, "seed": 42,
    }  # fmt: skip
    rows = heal_table_main(["--probes", str(output)])["rows"]
    assert (
        rows["hbert-v1, distillation 25 steps"]["tasks"]["trec"]["probe"]["mean"] == trec[str(student_dir)]["accuracy"]
    )


def test_showcase_prints_teacher_and_student_side_by_side(teacher_dir, distilled, capsys):
    student_dir, _ = distilled
    shown = showcase_main(
        ["--student", str(student_dir), "--teacher", str(teacher_dir), "--latency_seq", "32", "--latency_repeats", "1"]
    )
    assert set(shown["similarities"]) == set(shown["neighbours"]) == {"teacher", "student"}
    assert set(shown["latency_ms"]) == {"teacher", "student", "teacher in this implementation"}
    assert all(-1.0 <= value <= 1.0 + 1e-6 for values in shown["similarities"].values() for value in values)
    printed = capsys.readouterr().out
    assert "Nearest neighbour" in printed and "Latency of one 32-token sequence" in printed
    assert "the teacher's in this implementation)" in printed


def test_healed_student_card_and_push_plan(distilled, probed, tmp_path):
    """A distillation run gets a sentence-encoder card (its agreement curve; the healing table's row beside the
    teacher; the same bytes when regenerated) and goes to the Hub with its model files and healing records."""
    student_dir, _ = distilled
    probe_json, results = probed
    table = tmp_path / "table.md"
    heal_table_main(["--probes", str(probe_json), "--output", str(table)])
    table_json = table.with_suffix(".json")
    card = build_healed_card(student_dir, "org/hbert-v1-healed", table_json)
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "feature-extraction"
    probe_accuracy = results["tasks"]["trec"][str(student_dir)]["accuracy"]
    assert [result.metric_value for result in card.data.eval_results] == [round(probe_accuracy, 4)]
    text = str(card)
    assert "`hbert-v1, distillation 25 steps`" in text and 'SentenceTransformer(\n    "org/hbert-v1-healed",' in text
    assert text.count("| 25 | ") == 1  # the agreement curve's last point (step 25)
    gain = 100 * (probe_accuracy - results["tasks"]["trec"]["hbert-v1 (unhealed)"]["accuracy"])
    assert "What healing bought over the same conversion not healed (`hbert-v1, not healed`)" in text
    assert f"trec probe {gain:+.1f} (n=1), fine-tuned –." in text
    assert str(build_healed_card(student_dir, "org/hbert-v1-healed", table_json)) == text
    plan = push_main(
        [str(student_dir), "--repo-id", "org/hbert-v1-healed", "--heal-table", str(table_json), "--dry-run"]
    )
    files = plan.repos[0].uploads[0].files
    assert {"README.md", "budget.json", "agreement_curve.json", "model.safetensors", "modules.json"} <= set(files)
