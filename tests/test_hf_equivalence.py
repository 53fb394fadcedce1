"""`from_bert`: HF BERT models and checkpoints converted to HybridBERT.

The `bert` variant must compute exactly what the HF source computes (random tiny models, and the real pretrained
MiniLM checkpoint on real text); hybrid variants copy what HBERT §4.4 copies and report everything else.
"""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import HF_VOCAB, padded_batch, random_hf, self_attention_mapping
from transformers import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    RobertaConfig,
    RobertaModel,
)

from modeling import (
    HybridBertForMaskedLM,
    HybridBertForQuestionAnswering,
    HybridBertForSequenceClassification,
    HybridBertForTokenClassification,
    HybridBertModel,
)
from recipes.data.assets import default_tokenizer, minilm_dir

TOL = 1e-5


def tiny_inputs():
    """A right-padded batch with both token types in use."""
    input_ids, attention_mask = padded_batch(batch=3, seq=12, vocab=HF_VOCAB)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1
    token_type_ids = token_type_ids * attention_mask
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def max_diff_at_tokens(a: torch.Tensor, b: torch.Tensor, attention_mask: torch.Tensor) -> float:
    keep = attention_mask.bool()
    return (a[keep] - b[keep]).abs().max().item()


# Random tiny HF models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source_kind", ["instance", "directory"])
def test_bert_variant_from_hf_masked_lm_gives_same_logits(source_kind, tmp_path):
    """from_bert(BertForMaskedLM instance or saved dir) reproduces the HF logits at non-pad tokens, nothing new."""
    hf = random_hf(BertForMaskedLM)
    source = hf
    if source_kind == "directory":
        hf.save_pretrained(tmp_path)
        source = tmp_path
    model, info = HybridBertForMaskedLM.from_bert(source, output_loading_info=True)
    model.eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = hf(**inputs).logits
        got = model(**inputs).logits
    assert got.shape == expected.shape == (3, 12, HF_VOCAB)
    assert max_diff_at_tokens(got, expected, inputs["attention_mask"]) <= TOL
    assert model.config.variant == "bert"
    assert model.config.mixer_types == ["self"] * 4
    assert info["newly_initialized"] == []
    assert info["unused"] == []
    assert len(info["copied"]) > 0


def test_from_bert_returns_model_in_eval_mode():
    """Like from_pretrained, from_bert hands back a model in eval mode: its outputs equal the source's (dropout 0.1)."""
    hf = random_hf(BertForMaskedLM)
    assert hf.config.hidden_dropout_prob > 0
    model = HybridBertForMaskedLM.from_bert(hf)
    assert not model.training
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = hf(**inputs).logits
        got = model(**inputs).logits
    assert max_diff_at_tokens(got, expected, inputs["attention_mask"]) <= TOL


def test_sequence_classification_from_hf_bert_model_keeps_pooler_and_reports_classifier(caplog):
    """BertModel -> HybridBertForSequenceClassification: same pooled output; only the classifier is new, and logged."""
    hf = random_hf(BertModel)
    with caplog.at_level(logging.WARNING):
        model, info = HybridBertForSequenceClassification.from_bert(hf, num_labels=3, output_loading_info=True)
    model.eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = hf(**inputs).pooler_output
        got = model.hybrid_bert(**inputs).pooler_output
        logits = model(**inputs).logits
    assert (got - expected).abs().max().item() <= TOL
    assert logits.shape == (3, 3)
    assert sorted(info["newly_initialized"]) == ["classifier.bias", "classifier.weight"]
    assert info["unused"] == []
    assert "classifier.weight" in caplog.text


HEADS = [
    (BertForSequenceClassification, HybridBertForSequenceClassification, ("logits",)),
    (BertForTokenClassification, HybridBertForTokenClassification, ("logits",)),
    (BertForQuestionAnswering, HybridBertForQuestionAnswering, ("start_logits", "end_logits")),
]


@pytest.mark.parametrize("source_kind", ["instance", "directory"])
@pytest.mark.parametrize("hf_class, hybrid_class, outputs", HEADS, ids=[h[1].__name__ for h in HEADS])
def test_bert_heads_map_to_hybrid_heads_with_same_outputs_and_labels(
    hf_class, hybrid_class, outputs, source_kind, tmp_path
):
    """A fine-tuned BERT head (sequence or token classification, extractive QA) converts with its weights and label
    names: the same outputs, nothing newly initialised, nothing unused."""
    labels = {0: "O", 1: "PER", 2: "LOC"}
    hf = random_hf(hf_class) if hf_class is BertForQuestionAnswering else random_hf(hf_class, id2label=labels)
    if source_kind == "directory":
        hf.save_pretrained(tmp_path)
    model, info = hybrid_class.from_bert(hf if source_kind == "instance" else tmp_path, output_loading_info=True)
    inputs = tiny_inputs()
    with torch.no_grad():
        expected, got = hf(**inputs), model(**inputs)
    for name in outputs:
        got_output, expected_output = getattr(got, name), getattr(expected, name)
        if hf_class is BertForSequenceClassification:  # one row per sequence
            assert (got_output - expected_output).abs().max().item() <= TOL
        else:
            assert max_diff_at_tokens(got_output, expected_output, inputs["attention_mask"]) <= TOL
    assert info["newly_initialized"] == [] and info["unused"] == []
    if hf_class is not BertForQuestionAnswering:
        assert model.config.id2label == labels


def test_hybrid_bert_model_from_hf_bert_model_matches_hidden_states_and_pooler():
    """BertModel -> HybridBertModel: last_hidden_state (non-pad tokens) and pooler_output equal, nothing new."""
    hf = random_hf(BertModel)
    model, info = HybridBertModel.from_bert(hf, output_loading_info=True)
    model.eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = hf(**inputs)
        got = model(**inputs)
    assert max_diff_at_tokens(got.last_hidden_state, expected.last_hidden_state, inputs["attention_mask"]) <= TOL
    assert (got.pooler_output - expected.pooler_output).abs().max().item() <= TOL
    assert info["newly_initialized"] == []
    assert info["unused"] == []


def test_hybrid_bert_model_from_hf_masked_lm_reports_pooler_and_unused_head():
    """BertForMaskedLM -> HybridBertModel: same hidden states; pooler reported new, the MLM head reported unused."""
    hf = random_hf(BertForMaskedLM)
    model, info = HybridBertModel.from_bert(hf, output_loading_info=True)
    model.eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = hf.bert(**inputs).last_hidden_state
        got = model(**inputs).last_hidden_state
    assert max_diff_at_tokens(got, expected, inputs["attention_mask"]) <= TOL
    assert sorted(info["newly_initialized"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert info["unused"] and all(key.startswith("cls.predictions.") for key in info["unused"])


def _tiny_roberta():
    return RobertaModel(
        RobertaConfig(
            vocab_size=HF_VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
    )


def _tiny_distilbert():
    return DistilBertModel(DistilBertConfig(vocab_size=HF_VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64))


@pytest.mark.parametrize(
    "make_source, source_kind",
    [(_tiny_roberta, "instance"), (_tiny_distilbert, "instance"), (_tiny_distilbert, "directory")],
    ids=["roberta-instance", "distilbert-instance", "distilbert-directory"],
)
def test_from_bert_rejects_non_bert_models(make_source, source_kind, tmp_path):
    """A RoBERTa or DistilBERT model (instance or directory) is refused with a ValueError naming BERT."""
    source = make_source()
    if source_kind == "directory":
        source.save_pretrained(tmp_path)
        source = str(tmp_path)
    with pytest.raises(ValueError, match="BERT"):
        HybridBertModel.from_bert(source)


# The real pretrained MiniLM checkpoint -----------------------------------------------------------------------

SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "Paris is the capital and most populous city of France.",
    "Photosynthesis converts light energy into chemical energy that plants store as sugar.",
]
PAIRED_WITH = [
    "It watched the birds outside.",
    "It lies on the Seine.",
    "Oxygen is released as a by-product of the reaction, which takes place in the chloroplasts.",
]
SELF_LAYERS = {"hbert-v1": [0, 2, 4], "hbert-v2": [0, 5]}


@pytest.fixture(scope="module")
def minilm_path():
    return minilm_dir()


@pytest.fixture(scope="module")
def hf_minilm(minilm_path):
    return BertModel.from_pretrained(minilm_path).eval()


@pytest.fixture(scope="module")
def real_batch():
    """Real sentence pairs (both token types), padded to the longest."""
    batch = default_tokenizer()(SENTENCES, PAIRED_WITH, padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(dim=1).unique().numel() == len(SENTENCES)  # really padded
    assert batch["token_type_ids"].max() == 1
    return dict(batch)


def test_minilm_checkpoint_converts_to_identical_bert(minilm_path, hf_minilm, real_batch):
    """Real MiniLM folder -> HybridBertModel (size minilm): BertModel's hidden states and pooler on real text."""
    model, info = HybridBertModel.from_bert(minilm_path, output_loading_info=True)
    model.eval()
    assert model.config.size == "minilm"
    assert model.config.variant == "bert"
    assert info["newly_initialized"] == [] and info["unused"] == []
    with torch.no_grad():
        expected = hf_minilm(**real_batch, output_hidden_states=True)
        got = model(**real_batch, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected.hidden_states) == 7
    keep = real_batch["attention_mask"].bool()
    for layer, (ours, theirs) in enumerate(zip(got.hidden_states, expected.hidden_states, strict=True)):
        relative = (ours[keep] - theirs[keep]).abs().max() / theirs[keep].abs().max()
        assert relative < TOL, f"hidden state {layer}: relative difference {relative:.2e}"
    difference = (got.last_hidden_state[keep] - expected.last_hidden_state[keep]).abs().max()
    assert difference / expected.last_hidden_state[keep].abs().max() < TOL
    relative = (got.pooler_output - expected.pooler_output).abs().max() / expected.pooler_output.abs().max()
    assert relative < TOL


def _attention_mapping(self_layers: list[int]) -> dict[str, str]:
    """HybridBERT key -> MiniLM (BertModel) key for what the paper copies: token embeddings and self-attention."""
    mapping = {
        "hybrid_bert.embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "hybrid_bert.embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    }
    return mapping | self_attention_mapping(self_layers, prefix="hybrid_bert.")


def _ffn_and_norm_mapping(num_layers: int) -> dict[str, str]:
    """HybridBERT key -> MiniLM key for FFN weights (HBERT has no FFN bias) and LayerNorms, each post-LN norm on the
    pre-LN norm that feeds the same sub-layer (layer 0's mixer_norm has none)."""
    mapping = {
        "hybrid_bert.embeddings.norm.weight": "embeddings.LayerNorm.weight",
        "hybrid_bert.embeddings.norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(num_layers):
        mapping[f"hybrid_bert.layers.{i}.ffn_in.weight"] = f"encoder.layer.{i}.intermediate.dense.weight"
        mapping[f"hybrid_bert.layers.{i}.ffn_out.weight"] = f"encoder.layer.{i}.output.dense.weight"
        feeds_next_mixer = f"hybrid_bert.layers.{i + 1}.mixer_norm" if i + 1 < num_layers else "hybrid_bert.final_norm"
        for param in ("weight", "bias"):
            layer = f"encoder.layer.{i}"
            mapping[f"hybrid_bert.layers.{i}.ffn_norm.{param}"] = f"{layer}.attention.output.LayerNorm.{param}"
            mapping[f"{feeds_next_mixer}.{param}"] = f"encoder.layer.{i}.output.LayerNorm.{param}"
    return mapping


def _assert_copies_equal(model, hf_minilm, mapping: dict[str, str]) -> None:
    ours, theirs = model.state_dict(), hf_minilm.state_dict()
    for target, source in mapping.items():
        assert torch.equal(ours[target], theirs[source]), f"{target} differs from {source}"


@pytest.mark.parametrize("variant", ["hbert-v1", "hbert-v2"])
def test_hybrid_from_minilm_copies_self_attention_and_token_embeddings(variant, minilm_path, hf_minilm, real_batch):
    """hbert-v1/v2 from MiniLM without FFNs and norms: exactly the self layers' attention and word/type embeddings
    copied; additive new."""
    model, info = HybridBertForMaskedLM.from_bert(
        minilm_path, variant=variant, copy_ffn_and_norms=False, output_loading_info=True
    )
    model.eval()
    config = model.config
    assert (config.variant, config.size, config.position_embedding_type) == (variant, "minilm", "sinusoidal")
    self_layers = [i for i, mixer in enumerate(config.mixer_types) if mixer == "self"]
    additive_layers = [i for i, mixer in enumerate(config.mixer_types) if mixer == "additive"]
    assert self_layers == SELF_LAYERS[variant]
    assert sorted(self_layers + additive_layers) == list(range(6))

    mapping = _attention_mapping(self_layers)
    assert set(info["copied"]) == set(mapping)
    _assert_copies_equal(model, hf_minilm, mapping)
    assert not any("ffn" in key or "norm" in key or "position" in key for key in info["copied"])

    state = model.state_dict()
    assert "hybrid_bert.embeddings.position_embeddings.weight" not in state  # sinusoidal: nothing to copy into
    assert "embeddings.position_embeddings.weight" in info["unused"]
    newly = set(info["newly_initialized"])
    assert not newly & set(info["copied"])
    for i in additive_layers:
        prefixes = (f"hybrid_bert.layers.{i}.mixer.", f"hybrid_bert.layers.{i}.mixer_output.")
        mixer_keys = [key for key in state if key.startswith(prefixes)]
        assert f"hybrid_bert.layers.{i}.mixer.query_score.weight" in mixer_keys
        assert set(mixer_keys) <= newly, f"additive layer {i}: {sorted(set(mixer_keys) - newly)} not reported new"
        assert f"encoder.layer.{i}.attention.self.query.weight" in info["unused"]
    # Everything is either copied, reported new, or the decoder tied to the (copied) word embeddings.
    assert set(state) == newly | set(info["copied"]) | {"lm_head.decoder.weight"}
    assert torch.equal(model.lm_head.decoder.weight, hf_minilm.embeddings.word_embeddings.weight)

    with torch.no_grad():
        logits = model(**real_batch).logits
    assert logits.shape == (*real_batch["input_ids"].shape, 30522)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", ["hbert-v1", "hbert-v2"])
def test_hybrid_from_minilm_copies_ffn_and_norms_by_default(variant, minilm_path, hf_minilm):
    """By default the FFN weights and LayerNorms are copied too (Sub-LN: each norm where it feeds the same sub-layer);
    FFN biases are reported unused and dropped."""
    model, info = HybridBertForMaskedLM.from_bert(minilm_path, variant=variant, output_loading_info=True)
    self_layers = [i for i, mixer in enumerate(model.config.mixer_types) if mixer == "self"]
    attention = _attention_mapping(self_layers)
    ffn_and_norms = _ffn_and_norm_mapping(6)
    assert set(info["copied"]) == set(attention) | set(ffn_and_norms)
    _assert_copies_equal(model, hf_minilm, {**attention, **ffn_and_norms})
    assert not model.config.ffn_bias
    for i in range(6):
        assert f"encoder.layer.{i}.intermediate.dense.bias" in info["unused"]
        assert f"encoder.layer.{i}.output.dense.bias" in info["unused"]
        assert f"encoder.layer.{i}.output.dense.bias" in info["dropped_biases"]
        assert f"hybrid_bert.layers.{i}.ffn_sub_norm.weight" in info["newly_initialized"]  # Sub-LN has no BERT twin
    assert "hybrid_bert.layers.0.mixer_norm.weight" in info["newly_initialized"]
