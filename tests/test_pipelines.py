"""HF pipelines on saved HybridBERT folders (remote code, the real bert-base-uncased tokenizer saved beside them).

Models are size tiny with the real 30,522-token vocabulary and random weights, so predictions are arbitrary; each
pipeline's answer is checked against the same model run directly.
"""

from __future__ import annotations

import pytest
import torch
from transformers import pipeline

from modeling import HybridBertConfig, HybridBertForMaskedLM, HybridBertForSequenceClassification
from recipes.assets import default_tokenizer

LABELS = {0: "negative", 1: "positive"}
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
