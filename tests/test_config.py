"""HybridBertConfig: named variants and sizes, validation of bad fields, and the save/load round trip."""

import json

import pytest

from modeling import MIXER_SPECS, SIZES, VARIANTS, HybridBertConfig

EXPECTED_SIZES = {
    "tiny": (4, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "minilm": (6, 384, 12, 1536),
    "base": (12, 768, 12, 3072),
}

# What each variant's layout must look like for any depth it accepts.
HBERT_VARIANTS = ("hbert-v1", "hbert-v2")


def check_layout(variant: str, mixers: list[str]) -> None:
    n = len(mixers)
    if variant == "bert":
        assert mixers == ["self"] * n
    elif variant == "addbert":
        assert mixers == ["additive"] * n
    elif variant == "hbert-v1":
        assert mixers == ["self" if i % 2 == 0 else "additive" for i in range(n)]
    elif variant == "hbert-v2":
        # self-attention at both ends, additive attention in the middle, symmetric
        assert mixers[0] == mixers[-1] == "self"
        assert "additive" in mixers
        assert mixers == mixers[::-1]
        first_add = mixers.index("additive")
        last_add = n - 1 - mixers[::-1].index("additive")
        assert all(m == "additive" for m in mixers[first_add : last_add + 1])
    elif variant == "pool-hybrid":
        num_self = mixers.count("self")
        assert mixers == ["self"] * num_self + ["pooling"] * (n - num_self)
        assert num_self == round(2 * n / 3)
    else:  # pragma: no cover - a new variant needs its own expectation here
        raise AssertionError(f"no layout expectation for {variant}")


def test_sizes_registry_lists_exactly_the_documented_sizes():
    """The size registry holds exactly tiny, mini, small, minilm and base."""
    assert set(SIZES) == set(EXPECTED_SIZES)


def test_variants_registry_lists_exactly_the_documented_variants():
    """The variant registry holds exactly bert, addbert, hbert-v1, hbert-v2 and pool-hybrid."""
    assert set(VARIANTS) == {"bert", "addbert", "hbert-v1", "hbert-v2", "pool-hybrid"}


@pytest.mark.parametrize("size", list(EXPECTED_SIZES))
def test_from_variant_gives_documented_dims_and_layout(variant, size):
    """Every variant × size has the documented depth/width/heads/FFN width, BERT vocab/positions, and its layout."""
    config = HybridBertConfig.from_variant(variant, size)
    layers, hidden, heads, ffn = EXPECTED_SIZES[size]
    assert config.num_hidden_layers == layers
    assert config.hidden_size == hidden
    assert config.num_attention_heads == heads
    assert config.intermediate_size == ffn
    assert config.vocab_size == 30522
    assert config.max_position_embeddings == 512
    assert len(config.mixer_types) == layers
    assert set(config.mixer_types) <= set(MIXER_SPECS)
    check_layout(variant, config.mixer_types)
    assert config.variant == variant and config.size == size


def test_from_variant_defaults_to_base_size():
    """from_variant without a size gives the base size."""
    config = HybridBertConfig.from_variant("bert")
    assert (config.num_hidden_layers, config.hidden_size) == (12, 768)
    assert config.size == "base"


def test_hbert_variants_use_hbert_settings_and_others_vanilla_bert(variant):
    """hbert-v1/v2 use Sub-LN, ReLU, no FFN bias, sinusoidal positions; the others are vanilla BERT settings."""
    config = HybridBertConfig.from_variant(variant, "tiny")
    if variant in HBERT_VARIANTS:
        expected = ("sub", "relu", False, "sinusoidal", 0.005)
    else:
        expected = ("post", "gelu", True, "absolute", 0.1)
    got = (
        config.norm_style,
        config.hidden_act,
        config.ffn_bias,
        config.position_embedding_type,
        config.hidden_dropout_prob,
    )
    assert got == expected
    assert config.attention_probs_dropout_prob == expected[-1]


def test_overriding_depth_recomputes_layout(variant):
    """num_hidden_layers=6 overrides the size's depth and the variant's layout is recomputed for 6 layers."""
    config = HybridBertConfig.from_variant(variant, "tiny", num_hidden_layers=6)
    assert config.num_hidden_layers == 6
    assert len(config.mixer_types) == 6
    check_layout(variant, config.mixer_types)
    # the other size fields are untouched
    assert (config.hidden_size, config.num_attention_heads) == (128, 2)


def test_explicit_mixer_types_override_is_kept():
    """An explicit mixer_types override is used verbatim instead of the variant's layout."""
    mixers = ["pooling", "additive", "self", "pooling"]
    config = HybridBertConfig.from_variant("bert", "tiny", mixer_types=mixers)
    assert config.mixer_types == mixers


def test_explicit_mixer_types_skip_the_variant_layout_requirement():
    """With explicit mixer_types, a variant's required mixers need not appear (the user's layout wins)."""
    config = HybridBertConfig.from_variant("pool-hybrid", "tiny", num_hidden_layers=1, mixer_types=["self"])
    assert config.mixer_types == ["self"]


def test_settings_overrides_win_over_variant_settings():
    """Field overrides beat both the size's dims and the variant's settings."""
    config = HybridBertConfig.from_variant(
        "hbert-v1", "tiny", norm_style="pre", position_embedding_type="absolute", hidden_size=64, vocab_size=99
    )
    assert config.norm_style == "pre"
    assert config.position_embedding_type == "absolute"
    assert config.hidden_size == 64
    assert config.vocab_size == 99


def test_plain_constructor_defaults_to_vanilla_bert_layout():
    """HybridBertConfig() with no mixer_types is self-attention in every layer."""
    config = HybridBertConfig(num_hidden_layers=3)
    assert config.mixer_types == ["self", "self", "self"]


# --- bad input -------------------------------------------------------------------------------------------------


def test_unknown_variant_raises_listing_variants():
    """An unknown variant name raises ValueError naming every valid variant."""
    with pytest.raises(ValueError) as error:
        HybridBertConfig.from_variant("gpt", "tiny")
    message = str(error.value)
    assert "gpt" in message
    for name in VARIANTS:
        assert repr(name) in message


def test_unknown_size_raises_listing_sizes():
    """An unknown size name raises ValueError naming every valid size."""
    with pytest.raises(ValueError) as error:
        HybridBertConfig.from_variant("bert", "huge")
    message = str(error.value)
    assert "huge" in message
    for name in EXPECTED_SIZES:
        assert repr(name) in message


def test_wrong_mixer_types_length_raises():
    """mixer_types with a different length from num_hidden_layers raises ValueError stating both numbers."""
    with pytest.raises(ValueError, match=r"mixer_types has 3 entries but num_hidden_layers=4"):
        HybridBertConfig(num_hidden_layers=4, mixer_types=["self", "self", "additive"])


def test_unknown_mixer_name_raises_listing_mixers():
    """An unknown mixer name raises ValueError naming 'self', 'additive' and 'pooling'."""
    with pytest.raises(ValueError) as error:
        HybridBertConfig(num_hidden_layers=2, mixer_types=["self", "linear"])
    message = str(error.value)
    assert "'linear'" in message and "mixer_types[1]" in message
    for name in ("'self'", "'additive'", "'pooling'"):
        assert name in message


def test_bad_norm_style_raises_listing_styles():
    """An unknown norm_style raises ValueError naming post, pre and sub."""
    with pytest.raises(ValueError) as error:
        HybridBertConfig.from_variant("bert", "tiny", norm_style="rms")
    message = str(error.value)
    assert "norm_style" in message and "'rms'" in message
    for name in ("'post'", "'pre'", "'sub'"):
        assert name in message


def test_bad_position_embedding_type_raises_listing_types():
    """An unknown position_embedding_type raises ValueError naming absolute and sinusoidal."""
    with pytest.raises(ValueError) as error:
        HybridBertConfig.from_variant("bert", "tiny", position_embedding_type="rotary")
    message = str(error.value)
    assert "position_embedding_type" in message and "'rotary'" in message
    for name in ("'absolute'", "'sinusoidal'"):
        assert name in message


def test_hidden_not_divisible_by_heads_raises():
    """hidden_size not a multiple of num_attention_heads raises ValueError naming both values."""
    with pytest.raises(ValueError, match=r"hidden_size=130.*num_attention_heads=4"):
        HybridBertConfig.from_variant("bert", "tiny", hidden_size=130, num_attention_heads=4)


@pytest.mark.parametrize("kernel", [2, 4, 0])
def test_even_or_zero_pooling_kernel_raises(kernel):
    """An even (or zero) pooling_kernel_size raises ValueError asking for a positive odd number."""
    with pytest.raises(ValueError, match=rf"pooling_kernel_size={kernel} must be a positive odd number"):
        HybridBertConfig.from_variant("pool-hybrid", "tiny", pooling_kernel_size=kernel)


@pytest.mark.parametrize("amplitude", [0.0, -0.02])
def test_non_positive_sinusoidal_amplitude_raises(amplitude):
    """A zero or negative sinusoidal_amplitude raises ValueError naming the value."""
    with pytest.raises(ValueError, match=rf"sinusoidal_amplitude={amplitude} must be positive"):
        HybridBertConfig.from_variant("hbert-v1", "tiny", sinusoidal_amplitude=amplitude)


def test_unknown_classifier_pooling_raises_naming_the_valid_values():
    with pytest.raises(ValueError, match=r"classifier_pooling='max' is not valid; choose one of 'cls', 'mean'"):
        HybridBertConfig.from_variant("bert", "tiny", classifier_pooling="max")


def test_drop_mask_without_mask_token_id_raises():
    """drop_mask=True without mask_token_id raises ValueError naming mask_token_id."""
    with pytest.raises(ValueError, match="mask_token_id"):
        HybridBertConfig.from_variant("bert", "tiny", drop_mask=True)
    # with a mask token id it is accepted
    assert HybridBertConfig.from_variant("bert", "tiny", drop_mask=True, mask_token_id=103).drop_mask


@pytest.mark.parametrize(
    "variant, layers, missing",
    [("pool-hybrid", 1, "pooling"), ("hbert-v1", 1, "additive"), ("hbert-v2", 2, "additive")],
)
def test_variant_with_too_few_layers_raises(variant, layers, missing):
    """A depth too small to hold every mixer of the variant raises ValueError naming the missing mixer."""
    with pytest.raises(ValueError, match=rf"{variant}.*num_hidden_layers={layers}.*{missing}"):
        HybridBertConfig.from_variant(variant, "tiny", num_hidden_layers=layers)


def test_smallest_valid_depths_are_accepted():
    """The smallest depths that hold every mixer of the variant are accepted with the right mixers."""
    assert HybridBertConfig.from_variant("pool-hybrid", "tiny", num_hidden_layers=2).mixer_types == ["self", "pooling"]
    assert HybridBertConfig.from_variant("hbert-v1", "tiny", num_hidden_layers=2).mixer_types == ["self", "additive"]
    assert HybridBertConfig.from_variant("hbert-v2", "tiny", num_hidden_layers=3).mixer_types == [
        "self",
        "additive",
        "self",
    ]


# --- serialisation -----------------------------------------------------------------------------------------------


def test_save_and_load_round_trip_keeps_every_field(tmp_path, variant):
    """save_pretrained then from_pretrained gives an equal config, mixer_types included."""
    config = HybridBertConfig.from_variant(
        variant,
        "tiny",
        num_hidden_layers=5,
        mask_token_id=103,
        drop_mask=True,
        sparse_prediction=False,
        pooling_kernel_size=5,
        additive_shared_query_value=True,
        classifier_dropout=0.2,
    )
    config.save_pretrained(tmp_path)
    loaded = HybridBertConfig.from_pretrained(tmp_path)
    assert loaded.mixer_types == config.mixer_types
    assert loaded.to_dict() == config.to_dict()
    for field in (
        "variant",
        "size",
        "norm_style",
        "ffn_bias",
        "position_embedding_type",
        "drop_mask",
        "mask_token_id",
        "sparse_prediction",
        "pooling_kernel_size",
        "additive_shared_query_value",
        "classifier_dropout",
        "num_hidden_layers",
    ):
        assert getattr(loaded, field) == getattr(config, field), field


def test_layer_types_is_not_used(tmp_path):
    """The layout lives in mixer_types; the reserved `layer_types` attribute is neither set nor saved."""
    config = HybridBertConfig.from_variant("hbert-v2", "tiny")
    assert getattr(config, "layer_types", None) is None
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "layer_types" not in saved
    assert saved["mixer_types"] == ["self", "additive", "additive", "self"]
    assert saved["model_type"] == "hybrid_bert"


def test_a_layout_is_given_as_config_overrides_with_plus_signs():
    from recipes.training.pretrain_arguments import parse_overrides

    layout = parse_overrides("mixer_types=self+pooling+self+additive,hidden_size=64")
    assert layout == {"mixer_types": ["self", "pooling", "self", "additive"], "hidden_size": 64}
    config = HybridBertConfig.from_variant("bert", size="tiny", num_hidden_layers=4, **layout)
    assert config.mixer_types == ["self", "pooling", "self", "additive"]
