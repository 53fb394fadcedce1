"""HF pipelines on saved HybridBERT folders (remote code, the real bert-base-uncased tokenizer saved beside them).

Models are size tiny with the real 30,522-token vocabulary and random weights, so predictions are arbitrary; each
pipeline's answer is checked against the same model run directly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, pipeline

from modeling import (
    HybridBertConfig,
    HybridBertForMaskedLM,
    HybridBertForQuestionAnswering,
    HybridBertForSequenceClassification,
    HybridBertForTokenClassification,
)
from recipes.data.assets import default_tokenizer

LABELS = {0: "negative", 1: "positive"}
ENTITY_LABELS = {0: "O", 1: "PER", 2: "LOC"}
MASKED_SENTENCE = "the capital of france is [MASK] and it is a [MASK] city."
TOP_K = 5


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


def _save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(
    scope="module",
    params=[("bert", False), ("hbert-v2", True), ("pool-hybrid", True)],
    ids=["bert", "hbert-v2-dropmask", "pool-hybrid-dropmask"],
)
def masked_lm(request, tokenizer, tmp_path_factory):
    """(model, folder) of a tiny MLM, with or without DropMask ([MASK] id taken from the tokenizer)."""
    variant, drop_mask = request.param
    torch.manual_seed(0)
    config = HybridBertConfig.from_variant(
        variant, "tiny", mask_token_id=tokenizer.mask_token_id, drop_mask=drop_mask, vocab_size=len(tokenizer)
    )
    model = HybridBertForMaskedLM(config).eval()
    folder = _save(model, tokenizer, tmp_path_factory.mktemp(f"mlm-{variant}"))
    return model, folder


@pytest.fixture(scope="module")
def classifier(tokenizer, tmp_path_factory):
    """(model, folder) of a tiny two-label classifier with named labels."""
    torch.manual_seed(1)
    config = HybridBertConfig.from_variant(
        "hbert-v1", "tiny", num_labels=2, id2label=LABELS, label2id={name: i for i, name in LABELS.items()}
    )
    model = HybridBertForSequenceClassification(config).eval()
    return model, _save(model, tokenizer, tmp_path_factory.mktemp("classifier"))


def _assert_remote_code(pipe) -> None:
    """The pipeline's model class came from the saved folder's code, not from this project's package."""
    assert type(pipe.model).__module__.startswith("transformers_modules."), type(pipe.model).__module__


def test_fill_mask_pipeline_returns_the_models_top_vocabulary_words(masked_lm, tokenizer):
    """fill-mask from the folder gives, for each [MASK], the model's own top-k tokens as vocabulary words."""
    model, folder = masked_lm
    fill = pipeline("fill-mask", model=folder, trust_remote_code=True)
    _assert_remote_code(fill)
    assert fill.model.config.drop_mask == model.config.drop_mask
    assert fill.model.config.mask_token_id == tokenizer.mask_token_id
    results = fill(MASKED_SENTENCE, top_k=TOP_K)
    assert len(results) == 2  # one list per [MASK]

    encoded = tokenizer(MASKED_SENTENCE, return_tensors="pt")
    mask_positions = (encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    with torch.no_grad():
        probs = model(**encoded).logits[0].softmax(dim=-1)
    vocab = tokenizer.get_vocab()
    for position, predictions in zip(mask_positions, results, strict=True):
        assert len(predictions) == TOP_K
        expected = probs[position].topk(TOP_K)
        assert [p["token"] for p in predictions] == expected.indices.tolist()
        assert [p["score"] for p in predictions] == pytest.approx(expected.values.tolist(), abs=1e-6)
        for prediction in predictions:
            assert prediction["token_str"] in vocab  # a vocabulary word ...
            assert vocab[prediction["token_str"]] == prediction["token"]  # ... the one the model predicted
            assert "the capital of france is" in prediction["sequence"]


def test_fill_mask_pipeline_drop_mask_changes_predictions(tokenizer, tmp_path):
    """DropMask is in effect through the pipeline: the same weights without it predict differently."""
    torch.manual_seed(2)
    config = HybridBertConfig.from_variant("hbert-v1", "tiny", mask_token_id=tokenizer.mask_token_id, drop_mask=True)
    model = HybridBertForMaskedLM(config).eval()
    with_drop = pipeline("fill-mask", model=_save(model, tokenizer, tmp_path / "drop"), trust_remote_code=True)
    model.config.drop_mask = False
    without = pipeline("fill-mask", model=_save(model, tokenizer, tmp_path / "keep"), trust_remote_code=True)
    sentence = "the [MASK] sat on the mat."
    scores_drop = [p["score"] for p in with_drop(sentence, top_k=3)]
    scores_keep = [p["score"] for p in without(sentence, top_k=3)]
    assert scores_drop != pytest.approx(scores_keep, abs=1e-9)


def test_text_classification_pipeline_uses_label_names(classifier):
    """text-classification from the folder answers with the config's label names and the model's probabilities."""
    model, folder = classifier
    classify = pipeline("text-classification", model=folder, trust_remote_code=True)
    _assert_remote_code(classify)
    tokenizer = classify.tokenizer
    texts = ["a wonderful, moving film.", "the plot was dull and the acting worse."]
    answers = classify(texts)
    for text, answer in zip(texts, answers, strict=True):
        with torch.no_grad():
            probs = model(**tokenizer(text, return_tensors="pt")).logits[0].softmax(dim=-1)
        assert answer["label"] == LABELS[int(probs.argmax())]
        assert answer["score"] == pytest.approx(probs.max().item(), abs=1e-6)
    both = classify(texts[0], top_k=None)
    assert sorted(item["label"] for item in both) == ["negative", "positive"]
    assert sum(item["score"] for item in both) == pytest.approx(1.0, abs=1e-6)


def test_feature_extraction_pipeline_returns_encoder_states(masked_lm, tokenizer):
    """feature-extraction from the folder returns (1, seq, hidden) features equal to the encoder's hidden states."""
    model, folder = masked_lm
    extract = pipeline("feature-extraction", model=folder, trust_remote_code=True)
    _assert_remote_code(extract)
    sentence = "hybrid encoders mix attention types."
    features = torch.tensor(extract(sentence))
    encoded = tokenizer(sentence, return_tensors="pt")
    assert features.shape == (1, encoded["input_ids"].shape[1], model.config.hidden_size)
    with torch.no_grad():
        expected = model.hybrid_bert(**encoded).last_hidden_state
    assert (features - expected).abs().max().item() <= 1e-5


def test_token_classification_pipeline_tags_each_word_with_the_models_label(tokenizer, tmp_path):
    """token-classification from the folder tags every word with the label the model itself gives its token."""
    torch.manual_seed(3)
    config = HybridBertConfig.from_variant(
        "pool-hybrid", "tiny", id2label=ENTITY_LABELS, label2id={name: i for i, name in ENTITY_LABELS.items()}
    )
    model = HybridBertForTokenClassification(config).eval()
    tag = pipeline("token-classification", model=_save(model, tokenizer, tmp_path), trust_remote_code=True)
    _assert_remote_code(tag)
    sentence = "ada lovelace lived in london"
    entities = tag(sentence, ignore_labels=[])  # every token, "O" included
    encoded = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        probs = model(**encoded).logits[0].softmax(dim=-1)
    words = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert [entity["word"] for entity in entities] == words[1:-1]  # [CLS] and [SEP] are not tagged
    for entity in entities:
        assert entity["entity"] == ENTITY_LABELS[int(probs[entity["index"]].argmax())]
        assert entity["score"] == pytest.approx(probs[entity["index"]].max().item(), abs=1e-6)


def test_question_answering_folder_gives_the_models_span_logits(tokenizer, tmp_path):
    """AutoModelForQuestionAnswering from the folder gives the model's start/end logits over (question, context);
    transformers 5 removed the `question-answering` pipeline, so the span is read from them as it did."""
    torch.manual_seed(4)
    model = HybridBertForQuestionAnswering(HybridBertConfig.from_variant("hbert-v2", "tiny")).eval()
    folder = _save(model, tokenizer, tmp_path)
    loaded = AutoModelForQuestionAnswering.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(loaded).__module__.startswith("transformers_modules.")
    encoded = tokenizer("where does ada live?", "ada lives in london.", return_tensors="pt")
    with torch.no_grad():
        got, expected = loaded(**encoded), model(**encoded)
    torch.testing.assert_close(got.start_logits, expected.start_logits)
    torch.testing.assert_close(got.end_logits, expected.end_logits)
    assert got.start_logits.shape == encoded["input_ids"].shape
    loss = loaded(**encoded, start_positions=torch.tensor([9]), end_positions=torch.tensor([10])).loss
    assert torch.isfinite(loss) and loss > 0


def test_saved_masked_lm_gives_dense_logits_with_labels(masked_lm, tokenizer):
    """A model trained with the sparse head (config on) saves with it off: reloaded, logits with labels are
    (batch, sequence, vocab), as HF's run_mlm.py metrics expect; the model in memory keeps its setting."""
    model, folder = masked_lm
    assert model.config.sparse_prediction
    assert json.loads((Path(folder) / "config.json").read_text())["sparse_prediction"] is False
    loaded = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    encoded = tokenizer(MASKED_SENTENCE, return_tensors="pt")
    labels = torch.full_like(encoded["input_ids"], -100)
    labels[0, 3] = tokenizer.convert_tokens_to_ids("paris")
    with torch.no_grad():
        dense = loaded(**encoded, labels=labels)
        sparse = model(**encoded, labels=labels)
    assert dense.logits.shape == (1, encoded["input_ids"].shape[1], len(tokenizer))
    assert sparse.logits.shape == (1, len(tokenizer))
    torch.testing.assert_close(dense.loss, sparse.loss)


def test_sentence_transformers_loads_the_folder_with_mean_pooling(masked_lm, tokenizer, caplog):
    """SentenceTransformer(folder, trust_remote_code=True) finds the saved modules (no guessing, no warning) and
    embeds a sentence as the mean of the encoder's hidden states over its tokens."""
    model, folder = masked_lm
    with caplog.at_level(logging.WARNING):
        encoder = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
    assert "No sentence-transformers model found" not in caplog.text
    sentences = ["hybrid encoders mix attention types.", "a short one."]
    embeddings = encoder.encode(sentences, convert_to_tensor=True)
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.hybrid_bert(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(embeddings, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5, rtol=1e-5)
