"""End to end through `recipes.finetune.main(argv)` on the real TREC task: from a tiny checkpoint made by the real
pretraining recipe, from scratch, from a converted HF BERT folder and (slow) from the real pretrained MiniLM.

The tiny checkpoint is 30 steps of `recipes.pretrain` (hbert-v1, 2 layers of width 64) on the shared WikiText-2
`train_file` fixture: it exercises the run-directory contract, not the value of pretraining, so fine-tuning runs at a
learning rate fit for a barely trained tiny model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, pipeline

from recipes.data import assets
from recipes.data.tasks import load_task
from recipes.environment import git_commit
from recipes.evaluation.classifier import build_classifier
from recipes.evaluation.finetune_arguments import FinetuningArguments, parse_args
from recipes.finetune import main
from recipes.pretrain import main as pretrain
from recipes.records import FinetuningRecord, PretrainingRecord

TREC_LABELS = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
TREC_TEST_ENTY = 94  # the official test split's rows of ENTY, the training split's most frequent class
SEQ = "32"
QUICK = ["--task", "trec", "--max_seq_length", SEQ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, train_file) -> Path:
    """A pretraining run directory: 30 steps of a 2-layer hbert-v1 on WikiText-2 paragraphs."""
    output_dir = tmp_path_factory.mktemp("pretraining") / "hbert-v1-tiny"
    pretrain([
        "--variant", "hbert-v1", "--size", "tiny",
        "--config_overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128,num_hidden_layers=2",
        "--train_file", str(train_file), "--max_seq_length", SEQ, "--per_device_train_batch_size", "16",
        "--max_steps", "30", "--budget", "1h", "--num_eval_points", "0", "--max_eval_samples", "16",
        "--output_dir", str(output_dir),
    ])  # fmt: skip
    return output_dir


@pytest.fixture(scope="module")
def finetuned(run_dir, tmp_path_factory) -> tuple[Path, FinetuningRecord]:
    """(output dir, record) of 3 epochs on 4,000 TREC questions from the pretrained tiny checkpoint (batch 64)."""
    output_dir = tmp_path_factory.mktemp("finetuned") / "trec"
    record = main([
        "--model", str(run_dir), *QUICK, "--max_train_samples", "4000", "--num_train_epochs", "3",
        "--learning_rate", "2e-3", "--output_dir", str(output_dir),
    ])  # fmt: skip
    return output_dir, record


@pytest.fixture(scope="module")
def from_scratch(run_dir, finetuned, tmp_path_factory) -> tuple[Path, FinetuningRecord]:
    """(output dir, record) of the same architecture from random init: 1 epoch on 500 questions (after `finetuned`)."""
    output_dir = tmp_path_factory.mktemp("scratch") / "trec"
    record = main([
        "--model", str(run_dir), "--from_scratch", *QUICK, "--max_train_samples", "500", "--num_train_epochs", "1",
        "--learning_rate", "1e-3", "--output_dir", str(output_dir),
    ])  # fmt: skip
    return output_dir, record


def test_paper_defaults():
    """Without flags: batch 64 (eval 128), learning rate 5e-5, per-epoch validation keeping the epoch with the best
    validation macro-F1, the task's epochs, sequence length 128, and fine-tuning seed 42 apart from the split seed."""
    model_args, task_args, training_args = parse_args(["--model", "minilm", "--task", "trec", "--output_dir", "out"])
    assert isinstance(training_args, FinetuningArguments)
    assert (training_args.per_device_train_batch_size, training_args.per_device_eval_batch_size) == (64, 128)
    assert training_args.learning_rate == 5e-5 and training_args.num_train_epochs is None
    assert (training_args.eval_strategy, training_args.save_strategy) == ("epoch", "epoch")
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "macro_f1"
    assert task_args.max_seq_length == 128 and (training_args.seed, task_args.split_seed) == (42, 42)
    assert not model_args.from_scratch


def test_finetuning_beats_the_majority_class(finetuned):
    """From the pretrained tiny checkpoint, 3 short epochs on TREC clearly beat always answering the majority class
    (ENTY) on the official test split, in accuracy and in macro-F1."""
    _, record = finetuned
    majority = record.majority_class
    assert majority["label"] == "ENTY" and majority["accuracy"] == pytest.approx(TREC_TEST_ENTY / 500)
    assert record.test["samples"] == 500 and record.test["one_class"] is False
    assert record.test["accuracy"] > majority["accuracy"] + 0.1, record.test
    assert record.test["macro_f1"] > majority["macro_f1"] + 0.1, record.test
    assert [point["epoch"] for point in record.validation] == [1.0, 2.0, 3.0]


def test_record_keeps_every_test_prediction_and_they_give_its_accuracy(finetuned):
    """The per-example test predictions (for intervals over test rows) agree with the recorded test accuracy."""
    _, record = finetuned
    labels = load_task("trec", seed=record.split_seed)["test"]["label"]
    assert len(record.test_predictions) == record.test["samples"] == len(labels)
    hits = sum(prediction == label for prediction, label in zip(record.test_predictions, labels))
    assert hits / len(labels) == pytest.approx(record.test["accuracy"])


def test_results_are_written_and_read_back(finetuned, run_dir):
    """HF's results files hold the train, selected epoch's validation and test metrics (the epoch with the best
    validation macro-F1 is kept and tested); the record is written to the output dir
    and against the pretraining run (with its identity from budget.json), and both read back as the same record."""
    output_dir, record = finetuned
    splits = ("train", "eval", "test", "all")
    results = {split: json.loads((output_dir / f"{split}_results.json").read_text()) for split in splits}
    best = max(record.validation, key=lambda evaluation: evaluation["macro_f1"])  # the first of equals, as Trainer
    assert results["eval"]["eval_accuracy"] == best["accuracy"]
    assert results["eval"]["eval_macro_f1"] == best["macro_f1"]
    assert record.training["selected_by"] == "macro_f1"
    assert not list(output_dir.glob("checkpoint-*"))  # the kept epoch is the saved model; its checkpoints are gone
    assert results["test"]["test_accuracy"] == record.test["accuracy"]
    assert results["test"]["test_macro_f1"] == record.test["macro_f1"]
    assert results["all"] == {**results["train"], **results["eval"], **results["test"]}

    assert record.git_commit == git_commit()  # the code that fine-tuned
    assert FinetuningRecord.read(output_dir / "downstream_record.json") == record
    assert FinetuningRecord.read(run_dir / "downstream" / "trec" / "pretrained-seed42.json") == record
    budget = json.loads((run_dir / "budget.json").read_text())
    pretraining = record.pretraining
    assert pretraining.run_dir == str(run_dir)
    assert (pretraining.variant, pretraining.size, pretraining.budget) == ("hbert-v1", "tiny", "1h")
    assert pretraining.budget_s == budget["budget_s"] and pretraining.seed == budget["run_record"]["seed"]
    assert pretraining.run_key == PretrainingRecord.read(run_dir).run_record.run_key()
    assert (record.task, record.init, record.seed, record.split_seed) == ("trec", "pretrained", 42, 42)
    assert record.epochs == 3.0 and record.train_samples == 4000
    assert record in FinetuningRecord.read_downstream(run_dir)


def test_text_classification_pipeline_prints_label_names(finetuned):
    """The fine-tuned folder carries id2label, so the text-classification pipeline (remote code) answers TREC's label
    names, the same as the model's own argmax."""
    output_dir, _ = finetuned
    classify = pipeline("text-classification", model=str(output_dir), trust_remote_code=True)
    assert type(classify.model).__module__.startswith("transformers_modules.")
    assert classify.model.config.id2label == dict(enumerate(TREC_LABELS))
    questions = ["How many people live in Chicago ?", "Who wrote Hamlet ?", "What does NASA stand for ?"]
    answers = classify(questions)
    encoded = classify.tokenizer(questions, return_tensors="pt", padding=True)
    with torch.no_grad():
        argmax = classify.model(**encoded).logits.argmax(-1).tolist()
    assert [answer["label"] for answer in answers] == [TREC_LABELS[i] for i in argmax]


def test_from_scratch_is_recorded_as_the_no_pretraining_baseline(from_scratch, finetuned, run_dir):
    """--from_scratch trains the same architecture from random init and is recorded beside the pretrained result:
    the run directory then lists both, sorted by init."""
    output_dir, record = from_scratch
    assert record.init == "scratch" and record.model == finetuned[1].model
    assert (run_dir / "downstream" / "trec" / "scratch-seed42.json").is_file()
    assert (output_dir / "model.safetensors").is_file()
    assert [r.init for r in FinetuningRecord.read_downstream(run_dir)] == ["pretrained", "scratch"]


def test_from_scratch_does_not_load_the_checkpoint(run_dir):
    """The pretrained classifier starts from the run's weights; the from-scratch one has their shapes, not them."""
    saved = load_file(run_dir / "model.safetensors")["hybrid_bert.embeddings.word_embeddings.weight"]
    pretrained = build_classifier(run_dir, TREC_LABELS, from_scratch=False)
    scratch = build_classifier(run_dir, TREC_LABELS, from_scratch=True)
    assert torch.equal(pretrained.hybrid_bert.embeddings.word_embeddings.weight, saved)
    assert scratch.hybrid_bert.embeddings.word_embeddings.weight.shape == saved.shape
    assert not torch.equal(scratch.hybrid_bert.embeddings.word_embeddings.weight, saved)
    shapes = [{name: weight.shape for name, weight in model.state_dict().items()} for model in (scratch, pretrained)]
    assert shapes[0] == shapes[1]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """An HF BERT folder: a small random BertModel with the bert-base-uncased tokenizer."""
    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64
    )
    BertModel(config).save_pretrained(folder)
    assets.default_tokenizer().save_pretrained(folder)
    return folder


def test_converted_bert_folder_finetunes(bert_dir, tmp_path):
    """An HF BERT folder is converted to the `bert` variant with its weights and fine-tuned; having no budget.json,
    it gets no pretraining identity and nothing is written into it."""
    classifier = build_classifier(bert_dir, TREC_LABELS, from_scratch=False)
    source = load_file(bert_dir / "model.safetensors")["embeddings.word_embeddings.weight"]
    assert torch.equal(classifier.hybrid_bert.embeddings.word_embeddings.weight, source)

    before = sorted(p.name for p in bert_dir.iterdir())
    record = main([
        "--model", str(bert_dir), *QUICK, "--max_train_samples", "64", "--num_train_epochs", "1",
        "--output_dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert record.model["variant"] == "bert" and record.pretraining is None
    assert FinetuningRecord.read(tmp_path / "out" / "downstream_record.json") == record
    assert sorted(p.name for p in bert_dir.iterdir()) == before


def test_unhealed_conversion_of_a_bert_folder_finetunes(bert_dir, tmp_path):
    """--convert_to fine-tunes the hybrid `from_bert` makes of an HF BERT (HBERT §4.4, not healed): its copied
    weights are the BERT's, its additive mixers new; with --keep_source_settings it keeps the BERT's post-LN and
    learned positions. The record names the variant and the conversion."""
    source = load_file(bert_dir / "model.safetensors")["embeddings.word_embeddings.weight"]
    hybrid = build_classifier(bert_dir, TREC_LABELS, False, "hbert-v1", {})
    kept = build_classifier(bert_dir, TREC_LABELS, False, "hbert-v1", {"norm_style": "post", "ffn_bias": True})
    for classifier in (hybrid, kept):
        assert torch.equal(classifier.hybrid_bert.embeddings.word_embeddings.weight, source)
        assert classifier.config.mixer_types == ["self", "additive"]
    assert (hybrid.config.norm_style, kept.config.norm_style) == ("sub", "post")
    record = main([
        "--model", str(bert_dir), "--convert_to", "hbert-v1", "--keep_source_settings", *QUICK,
        "--max_train_samples", "64", "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert record.model["variant"] == "hbert-v1" and record.model["converted"] == {"keep_source_settings": True}
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (saved["norm_style"], saved["position_embedding_type"]) == ("post", "absolute")


def test_a_conversion_with_a_layout_of_its_own_is_fine_tuned_and_recorded(bert_dir, tmp_path):
    """--convert_overrides gives the conversion its own layout (the healing frontier's points): the saved classifier
    has it, and the record says so."""
    record = main([
        "--model", str(bert_dir), "--convert_to", "addbert", "--keep_source_settings",
        "--convert_overrides", "mixer_types=additive+self", *QUICK, "--max_train_samples", "64",
        "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert record.model["converted"] == {"keep_source_settings": True, "overrides": "mixer_types=additive+self"}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["mixer_types"] == ["additive", "self"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--convert_to", "hbert-v9"], "--convert_to 'hbert-v9': choose one of bert, addbert"),
        (["--keep_source_settings"], "--keep_source_settings and --convert_overrides need --convert_to"),
        (["--convert_overrides", "mixer_types=self+additive"], "--convert_overrides need --convert_to"),
        (["--convert_to", "addbert", "--convert_overrides", "mixer_typo=self"], "did you mean 'mixer_types'"),
        (["--classifier_pooling", "max"], "--classifier_pooling 'max': choose one of cls, mean"),
    ],
)
def test_bad_conversion_fails_before_writing(bert_dir, tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        main(["--model", str(bert_dir), *QUICK, *arguments, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_mean_pooling_classifier_of_a_converted_bert_is_recorded_and_saved(bert_dir, tmp_path):
    """--classifier_pooling mean fine-tunes a head on mean-pooled states: the saved config and the record say so,
    and the saved classifier has no [CLS] pooler weights."""
    record = main([
        "--model", str(bert_dir), "--classifier_pooling", "mean", *QUICK, "--max_train_samples", "64",
        "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert record.model["classifier_pooling"] == "mean"
    assert json.loads((tmp_path / "out" / "config.json").read_text())["classifier_pooling"] == "mean"
    assert not any("pooler" in key for key in load_file(tmp_path / "out" / "model.safetensors"))


def test_conversion_needs_a_bert_checkpoint(run_dir, tmp_path):
    with pytest.raises(ValueError, match="--convert_to converts an HF BERT checkpoint"):
        main(["--model", str(run_dir), *QUICK, "--convert_to", "addbert", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_minilm_reference_learns_trec(tmp_path):
    """The real pretrained all-MiniLM-L6-v2 (`--model minilm`), 2 epochs on 640 questions at 32 tokens, answers most
    of TREC's test split correctly (about 88% here; 94.6% after 2 full epochs at 128 tokens)."""
    record = main([
        "--model", "minilm", *QUICK, "--per_device_train_batch_size", "32", "--max_train_samples", "640",
        "--num_train_epochs", "2",
        "--learning_rate", "1e-4", "--output_dir", str(tmp_path / "out"),
    ])  # fmt: skip
    assert (record.model["variant"], record.model["size"]) == ("bert", "minilm")
    assert record.test["accuracy"] > 0.75, record.test
    assert record.test["accuracy"] > record.majority_class["accuracy"] + 0.5


def test_learning_rate_grid_keeps_the_rate_that_scores_best_on_validation(run_dir, tmp_path):
    """--learning_rates fine-tunes once per rate from the same start and keeps the run whose selected epoch scores best
    on validation: a rate too small to move the weights loses to one that learns. Only the kept model is saved and
    tested; every rate's validation scores are recorded, and the grid (not the rate it chose) is the setting."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("downstream"))
    output_dir = tmp_path / "grid"
    record = main([
        "--model", str(run), *QUICK, "--max_train_samples", "4000", "--num_train_epochs", "2",
        "--learning_rates", "1e-9", "2e-3", "--output_dir", str(output_dir),
    ])  # fmt: skip
    tiny, learning = record.learning_rate_search
    assert (tiny["learning_rate"], learning["learning_rate"]) == (1e-9, 2e-3)
    assert learning["macro_f1"] > tiny["macro_f1"] and learning["selected"] and not tiny["selected"]
    assert record.training["learning_rate"] is None and record.training["learning_rate_grid"] == [1e-9, 2e-3]
    results = {split: json.loads((output_dir / f"{split}_results.json").read_text()) for split in ("eval", "test")}
    assert results["eval"]["eval_macro_f1"] == learning["macro_f1"] == max(e["macro_f1"] for e in record.validation)
    assert results["test"]["test_macro_f1"] == record.test["macro_f1"]
    assert record.test["macro_f1"] > record.majority_class["macro_f1"] + 0.1
    assert not [*output_dir.glob("lr-*"), *output_dir.glob("checkpoint-*")]  # only the kept model is left
    assert record.git_commit == git_commit()  # the code that fine-tuned
    assert FinetuningRecord.read(output_dir / "downstream_record.json") == record


# -- bad input: one clear error before anything is written ----------------------------------------------------------


@pytest.mark.parametrize("grid", [["0"], ["1e-3", "1e-3"]])
def test_bad_learning_rate_grid_fails_before_writing(run_dir, tmp_path, grid):
    with pytest.raises(ValueError, match="give one or more distinct positive rates"):
        main(["--model", str(run_dir), *QUICK, "--learning_rates", *grid, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unknown_task_fails_before_writing(run_dir, tmp_path):
    """--task sst2 raises a ValueError listing the valid tasks; no output dir appears."""
    with pytest.raises(ValueError, match="Unknown task 'sst2'; valid tasks: emotion, massive, trec"):
        main(["--model", str(run_dir), "--task", "sst2", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_model_dir_without_weights_fails_before_writing(run_dir, tmp_path):
    """A folder with a config but no weights, and a folder that does not exist, raise FileNotFoundError saying so;
    no output dir appears."""
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_bytes((run_dir / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="holds no model weights"):
        main(["--model", str(no_weights), *QUICK, "--output_dir", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match=f"'{tmp_path / 'missing'}': no such folder \\({tmp_path}/ exists"):
        main(["--model", str(tmp_path / "missing"), *QUICK, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_existing_output_dir_is_refused(run_dir, tmp_path):
    """An output dir holding another run is left untouched without --overwrite_output_dir, and the model's own folder
    is never an output dir."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "all_results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        main(["--model", str(run_dir), *QUICK, "--output_dir", str(output_dir)])
    assert [p.name for p in output_dir.iterdir()] == ["all_results.json"]
    with pytest.raises(ValueError, match="is the model being fine-tuned"):
        main(["--model", str(run_dir), *QUICK, "--output_dir", str(run_dir), "--overwrite_output_dir"])
    assert (run_dir / "model.safetensors").is_file()
