"""HBERT §4.4 initialisation: which weights of a pretrained BERT `from_bert` copies into a hybrid, and where.

Exact-value checks on a random tiny HF BertModel whose every weight (LayerNorms and biases too) is moved off its init,
so a tensor copied to the wrong place cannot pass.
"""

from __future__ import annotations

import pytest
import torch
from helpers import random_hf, self_attention_mapping
from transformers import BertModel

from modeling import HybridBertModel

LAYERS = 4
SOURCE_SETTINGS = dict(norm_style="post", hidden_act="gelu", ffn_bias=True, position_embedding_type="absolute")


@pytest.fixture(scope="module")
def bert():
    return random_hf(BertModel)


def embeddings_mapping(learned_positions: bool) -> dict[str, str]:
    names = ["word_embeddings", "token_type_embeddings"] + (["position_embeddings"] if learned_positions else [])
    mapping = {f"embeddings.{name}.weight": f"embeddings.{name}.weight" for name in names}
    mapping.update({f"embeddings.norm.{p}": f"embeddings.LayerNorm.{p}" for p in ("weight", "bias")})
    return mapping


def ffn_mapping(with_bias: bool) -> dict[str, str]:
    params = ("weight", "bias") if with_bias else ("weight",)
    mapping = {}
    for i in range(LAYERS):
        for param in params:
            mapping[f"layers.{i}.ffn_in.{param}"] = f"encoder.layer.{i}.intermediate.dense.{param}"
            mapping[f"layers.{i}.ffn_out.{param}"] = f"encoder.layer.{i}.output.dense.{param}"
    return mapping


def norm_mapping(norm_style: str) -> dict[str, str]:
    """Post-LN target: in place. Pre-/Sub-LN: each BERT norm on the norm that feeds the same sub-layer."""
    mapping = {}
    for i in range(LAYERS):
        if norm_style == "post":
            mixer_target, next_target = f"layers.{i}.mixer_norm", f"layers.{i}.ffn_norm"
        else:
            mixer_target = f"layers.{i}.ffn_norm"
            next_target = f"layers.{i + 1}.mixer_norm" if i + 1 < LAYERS else "final_norm"
        for param in ("weight", "bias"):
            mapping[f"{mixer_target}.{param}"] = f"encoder.layer.{i}.attention.output.LayerNorm.{param}"
            mapping[f"{next_target}.{param}"] = f"encoder.layer.{i}.output.LayerNorm.{param}"
    return mapping


POOLER = {f"pooler.dense.{p}": f"pooler.dense.{p}" for p in ("weight", "bias")}


def assert_copied_exactly(model, bert, expected: dict[str, str], info: dict) -> None:
    assert info["copied_from"] == expected
    assert set(info["copied"]) == set(expected)
    ours, theirs = model.state_dict(), bert.state_dict()
    for target, source in expected.items():
        assert torch.equal(ours[target], theirs[source]), f"{target} differs from {source}"
    assert set(info["newly_initialized"]) == set(ours) - set(expected)
    assert set(info["unused"]) == set(theirs) - set(expected.values())


def test_hybrid_with_source_settings_copies_everything_but_the_new_mixers(bert):
    """hbert-v1 layout (S A S A) with BERT's settings: embeddings, self-attention, every FFN with its biases and
    every norm in place are copied; only the additive layers' mixers and output projections are new."""
    model, info = HybridBertModel.from_bert(bert, variant="hbert-v1", output_loading_info=True, **SOURCE_SETTINGS)
    assert model.config.mixer_types == ["self", "additive", "self", "additive"]
    expected = {
        **embeddings_mapping(learned_positions=True),
        **self_attention_mapping([0, 2]),
        **ffn_mapping(with_bias=True),
        **norm_mapping("post"),
        **POOLER,
    }
    assert_copied_exactly(model, bert, expected, info)
    assert info["dropped_biases"] == []
    for i in (1, 3):
        assert {f"layers.{i}.mixer.query_score.weight", f"layers.{i}.mixer_output.weight"} <= set(
            info["newly_initialized"]
        )
        assert f"encoder.layer.{i}.attention.self.query.weight" in info["unused"]


@pytest.mark.parametrize("norm_style", ["pre", "sub"])
def test_hybrid_with_hbert_settings_copies_ffns_and_moves_norms_to_what_they_normalise(bert, norm_style):
    """HBERT settings (ReLU, no FFN bias, sinusoidal positions) with pre-LN or Sub-LN: FFN weights are copied despite
    the activation, their biases dropped and reported; BERT's norms land on the norm feeding the same sub-layer;
    layer 0's mixer norm, Sub-LN's inner norms and the additive mixers are new."""
    model, info = HybridBertModel.from_bert(bert, variant="hbert-v1", norm_style=norm_style, output_loading_info=True)
    assert (model.config.hidden_act, model.config.ffn_bias) == ("relu", False)
    expected = {
        **embeddings_mapping(learned_positions=False),
        **self_attention_mapping([0, 2]),
        **ffn_mapping(with_bias=False),
        **norm_mapping(norm_style),
        **POOLER,
    }
    assert_copied_exactly(model, bert, expected, info)
    biases = [f"encoder.layer.{i}.{m}.bias" for i in range(LAYERS) for m in ("intermediate.dense", "output.dense")]
    assert sorted(info["dropped_biases"]) == sorted(biases)
    assert {"layers.0.mixer_norm.weight", "layers.0.mixer_norm.bias"} <= set(info["newly_initialized"])
    assert "embeddings.position_embeddings.weight" in info["unused"]
    sub_norms = {f"layers.{i}.{n}.weight" for i in range(LAYERS) for n in ("mixer_sub_norm", "ffn_sub_norm")}
    assert (sub_norms <= set(info["newly_initialized"])) == (norm_style == "sub")


def test_pool_hybrid_leaves_pooling_mixers_new(bert):
    """pool-hybrid (S S S P at 4 layers, BERT's settings): the pooling layer's mixer is new, everything else copied."""
    model, info = HybridBertModel.from_bert(bert, variant="pool-hybrid", output_loading_info=True)
    assert model.config.mixer_types == ["self", "self", "self", "pooling"]
    expected = {
        **embeddings_mapping(learned_positions=True),
        **self_attention_mapping([0, 1, 2]),
        **ffn_mapping(with_bias=True),
        **norm_mapping("post"),
        **POOLER,
    }
    assert_copied_exactly(model, bert, expected, info)
    pooling_mixer = {key for key in model.state_dict() if key.startswith(("layers.3.mixer.", "layers.3.mixer_output."))}
    assert pooling_mixer and pooling_mixer <= set(info["newly_initialized"])


def test_copy_ffn_and_norms_false_copies_only_embeddings_and_self_attention(bert):
    """The narrow reading: token embeddings, positions and self-attention only."""
    model, info = HybridBertModel.from_bert(
        bert, variant="hbert-v2", copy_ffn_and_norms=False, output_loading_info=True, **SOURCE_SETTINGS
    )
    self_layers = [i for i, mixer in enumerate(model.config.mixer_types) if mixer == "self"]
    expected = {**embeddings_mapping(learned_positions=True), **self_attention_mapping(self_layers), **POOLER}
    for param in ("weight", "bias"):  # the embeddings' LayerNorm is a norm: not copied either
        del expected[f"embeddings.norm.{param}"]
    assert_copied_exactly(model, bert, expected, info)


def test_bert_layout_with_source_settings_computes_the_source_function(bert):
    """The copies are complete for an all-self layout: with BERT's settings the hybrid path reproduces BERT."""
    model = HybridBertModel.from_bert(bert, variant="bert")
    inputs = torch.randint(5, 200, (2, 10))
    with torch.no_grad():
        assert torch.allclose(model(inputs).last_hidden_state, bert(inputs).last_hidden_state, atol=1e-5)
