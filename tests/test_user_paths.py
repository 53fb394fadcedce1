"""A user's paths through the recipes: continuing a HybridBERT checkpoint on one's own data, model references as a
folder or a Hub repo id at a revision (against olah, the suite's local Hub server), the budget progress bar and what
`report_to` trackers receive, and one clear error, with nothing written, for each bad reference or data argument.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import serve_olah
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_pretrain import TINY, TOKENS_PER_STEP, ModelClock
from test_push_to_hub import HUB_ENVIRONMENT, commit_revisions
from transformers import BertConfig, BertForMaskedLM

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes.data.assets import default_tokenizer
from recipes.data.text_sources import wikitext_paragraphs
from recipes.evaluation.finetune_arguments import parse_args as finetune_args
from recipes.pretrain import main as pretrain

SMALL = ["--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_eval_samples", "8", "--use_cpu"]
# One optimizer step at learning rate 0: the saved weights are those the run started from.
ONE_STILL_STEP = ["--max_steps", "1", "--learning_rate", "0", "--budget", "30s", "--num_eval_points", "0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, train_file) -> Path:
    """A finished pretraining run: 3 steps of a 2-layer hbert-v1 on the shared WikiText-2 paragraphs."""
    output_dir = tmp_path_factory.mktemp("source") / "hbert-v1-tiny"
    pretrain([
        "--variant", "hbert-v1", "--size", "tiny",
        "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2",
        *SMALL, "--max_steps", "3", "--budget", "1h", "--num_eval_points", "0",
        "--train_file", str(train_file), "--output_dir", str(output_dir),
    ])  # fmt: skip
    return output_dir


@pytest.fixture(scope="module")
def body_corpus(tmp_path_factory) -> Path:
    """A user's corpus as JSON lines whose text is in a `body` column beside an `id`."""
    path = tmp_path_factory.mktemp("corpus") / "notes.jsonl"
    lines = [json.dumps({"id": i, "body": text}) for i, text in enumerate(wikitext_paragraphs(80))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_same_weights(folder_a: Path, folder_b: Path) -> None:
    a, b = load_file(folder_a / "model.safetensors"), load_file(folder_b / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_continued_pretraining_starts_from_the_checkpoint_on_the_users_text_column(checkpoint, body_corpus, tmp_path):
    """--model_name_or_path with a .jsonl --train_file, --text_column_name body and two tokenising processes: the
    run starts from the checkpoint's weights, keeps its architecture and tokenizer, spends its own budget, records
    where it started, and saves a config that gives dense logits."""
    output_dir = tmp_path / "continued"
    spent = pretrain([
        "--model_name_or_path", str(checkpoint), "--train_file", str(body_corpus), "--text_column_name", "body",
        "--preprocessing_num_workers", "2", *SMALL, *ONE_STILL_STEP, "--output_dir", str(output_dir),
    ])  # fmt: skip
    assert_same_weights(output_dir, checkpoint)
    source, saved = (json.loads((folder / "config.json").read_text()) for folder in (checkpoint, output_dir))
    for field in ("variant", "size", "mixer_types", "hidden_size", "num_hidden_layers", "norm_style"):
        assert saved[field] == source[field], field
    assert saved["sparse_prediction"] is False
    assert (output_dir / "tokenizer.json").read_bytes() == (checkpoint / "tokenizer.json").read_bytes()
    assert (spent["variant"], spent["budget_s"], spent["steps"]) == ("hbert-v1", 30.0, 1)
    assert spent["run_record"]["training"]["model_name_or_path"] == str(checkpoint)


def test_pretraining_bar_and_report_to_show_the_budget_spent_and_tokens_seen(train_file, tmp_path, capsys):
    """The bar fills with the budget clock and shows step, tokens/s and the last held-out accuracy; TensorBoard (as
    `--report_to` names it) receives the budget spent and the tokens seen with every logged step."""
    output_dir = tmp_path / "run"
    with ModelClock() as clock:
        pretrain([
            *TINY, "--train_file", str(train_file), "--output_dir", str(output_dir), "--budget", "4s",
            "--num_eval_points", "2", "--logging_steps", "4", "--report_to", "tensorboard",
        ], now=clock)  # fmt: skip
    bar = capsys.readouterr().err
    assert "budget 100%" in bar and "4/4 s" in bar
    assert "step=16" in bar and "tokens/s=" in bar and "held-out acc=" in bar

    (event_file,) = output_dir.rglob("events.out.tfevents.*")  # under output_dir/runs/, TensorBoard's default
    events = EventAccumulator(str(event_file))
    events.Reload()
    tokens = {event.step: event.value for event in events.Scalars("train/num_input_tokens_seen")}
    elapsed = {event.step: event.value for event in events.Scalars("train/budget_elapsed_s")}
    assert sorted(tokens) == [0, 4, 8, 12, 16]  # the evaluation at the start, then every 4 steps
    assert all(tokens[step] == step * TOKENS_PER_STEP for step in tokens)
    assert [elapsed[step] for step in sorted(elapsed)] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert {event.value for event in events.Scalars("train/budget_fraction")} >= {1.0}


def test_finetuning_shows_trainers_progress_bar():
    """Fine-tuning leaves Trainer's bar on (a step count is meaningful there); --disable_tqdm turns it off."""
    base = ["--model", "minilm", "--task", "trec", "--output_dir", "out"]
    assert finetune_args(base)[2].disable_tqdm is False
    assert finetune_args([*base, "--disable_tqdm", "true"])[2].disable_tqdm is True


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(default_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "case",
    ["bert-as-checkpoint", "checkpoint-with-variant", "missing-text-column", "no-such-folder", "revision-of-folder"],
)
def test_bad_model_or_data_arguments_fail_with_one_error_before_writing(
    case, checkpoint, bert_folder, body_corpus, tmp_path
):
    """Each bad reference or data argument raises one error that says what is wrong; no output folder appears."""
    data = ["--train_file", str(body_corpus), "--text_column_name", "body"]
    argv, error, message = {
        "bert-as-checkpoint": (["--model_name_or_path", str(bert_folder), *data], ValueError, r"'bert' checkpoint.*--init_from"),
        "checkpoint-with-variant": (["--model_name_or_path", str(checkpoint), "--variant", "bert", *data], ValueError, "drop --variant"),
        "missing-text-column": (["--model_name_or_path", str(checkpoint), "--train_file", str(body_corpus), "--text_column_name", "content"], ValueError, r"no 'content' column.*id, body"),
        "no-such-folder": (["--model_name_or_path", "runs/nowhere/model", *data], FileNotFoundError, "'runs/nowhere/model': no such folder"),
        "revision-of-folder": (["--model_name_or_path", str(checkpoint), "--model_revision", "v1", *data], ValueError, "not a Hub repo id"),
    }[case]  # fmt: skip
    output_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        pretrain([*argv, *SMALL, *ONE_STILL_STEP, "--output_dir", str(output_dir)])
    assert not output_dir.exists()


# --- model references by Hub repo id, served by olah -------------------------------------------------------------

# Runs in a fresh process pointed at the mirror (huggingface_hub reads HF_ENDPOINT at import). argv: output root,
# report path. Each case calls a recipe and records what it returned or the one error it raised.
CLIENT = """
import json, sys
from pathlib import Path
from recipes.finetune import main as finetune
from recipes.pretrain import main as pretrain

root, report = Path(sys.argv[1]), {}
SMALL = ["--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_eval_samples", "8", "--use_cpu"]
STILL = ["--max_steps", "1", "--learning_rate", "0", "--budget", "30s", "--num_eval_points", "0"]
TRAIN = ["--train_file", sys.argv[3]]
cases = {
    "finetune": (finetune, ["--model", "zoo-org/hbert-v1-tiny", "--task", "trec", "--max_seq_length", "32",
                            "--max_train_samples", "16", "--max_steps", "1", "--per_device_eval_batch_size", "512"]),
    "continue-branch": (pretrain, ["--model_name_or_path", "zoo-org/hbert-v1-tiny", "--model_revision", "random",
                                   *TRAIN, *SMALL, *STILL]),
    "init-from-bert": (pretrain, ["--init_from", "bert-org/tiny-bert", "--variant", "bert", *TRAIN, *SMALL, *STILL]),
    "missing-repo": (finetune, ["--model", "zoo-org/no-such-model", "--task", "trec"]),
    "missing-revision": (pretrain, ["--model_name_or_path", "zoo-org/hbert-v1-tiny", "--model_revision", "step-9",
                                    *TRAIN, *SMALL, *STILL]),
    "hybrid-as-bert": (pretrain, ["--init_from", "zoo-org/hbert-v1-tiny", *TRAIN, *SMALL, *STILL]),
}
for name, (recipe, argv) in cases.items():
    output_dir = root / name
    try:
        recipe([*argv, "--output_dir", str(output_dir)])
        report[name] = {"error": None}
    except Exception as error:
        report[name] = {"error": type(error).__name__, "message": str(error)}
    report[name]["written"] = output_dir.exists()
Path(sys.argv[2]).write_text(json.dumps(report))
"""


@pytest.mark.slow
def test_recipes_take_hub_repo_ids_at_a_revision_and_refuse_bad_ones(checkpoint, bert_folder, train_file, tmp_path):
    """Served by olah: fine-tuning a zoo run by repo id, continuing a branch of it, starting a HybridBERT from a BERT
    repo; a repo that does not exist, a revision that does not exist and a HybridBERT given as a BERT each fail with
    one error naming what is wrong, and write nothing."""
    random_weights = tmp_path / "random"
    torch.manual_seed(5)
    HybridBertForMaskedLM(HybridBertConfig.from_pretrained(checkpoint)).save_pretrained(random_weights)
    default_tokenizer().save_pretrained(random_weights)
    mirrors = tmp_path / "mirrors" / "models"
    commit_revisions(mirrors / "zoo-org" / "hbert-v1-tiny", {"main": checkpoint, "random": random_weights})
    commit_revisions(mirrors / "bert-org" / "tiny-bert", {"main": bert_folder})

    environment = {name: value for name, value in os.environ.items() if name not in HUB_ENVIRONMENT}
    outputs, report_path = tmp_path / "outputs", tmp_path / "report.json"
    with serve_olah(tmp_path / "mirrors", tmp_path) as endpoint:
        environment.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"))
        command = [sys.executable, "-c", CLIENT, str(outputs), str(report_path), str(train_file)]
        result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())

    for name in ("finetune", "continue-branch", "init-from-bert"):
        assert report[name] == {"error": None, "written": True}, report[name]
    record = json.loads((outputs / "finetune" / "downstream_record.json").read_text())
    assert record["model"]["variant"] == "hbert-v1" and record["model"]["name_or_path"] == "zoo-org/hbert-v1-tiny"
    assert_same_weights(outputs / "continue-branch", random_weights)
    bert_embeddings = load_file(bert_folder / "model.safetensors")["bert.embeddings.word_embeddings.weight"]
    hybrid = load_file(outputs / "init-from-bert" / "model.safetensors")
    torch.testing.assert_close(hybrid["hybrid_bert.embeddings.word_embeddings.weight"], bert_embeddings)

    expected = {
        "missing-repo": ("FileNotFoundError", "'zoo-org/no-such-model' is no local folder and no model repo on http"),
        "missing-revision": ("FileNotFoundError", "'zoo-org/hbert-v1-tiny' has no revision 'step-9'"),
        "hybrid-as-bert": ("ValueError", "--init_from 'zoo-org/hbert-v1-tiny' is a 'hybrid_bert' checkpoint"),
    }
    for name, (error, message) in expected.items():
        assert report[name]["error"] == error and message in report[name]["message"], report[name]
        assert not report[name]["written"]
