"""Configuration of HybridBERT: a BERT encoder whose token mixer is chosen per layer.

This file travels with every saved model (remote code): it imports only `transformers`' public API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import PreTrainedConfig


@dataclass(frozen=True)
class MixerSpec:
    """What a token mixer is, declared once: config validation, the modeling registry, the parameter breakdown, the
    model cards and the tests all read it. Its class in modeling_hybrid_bert.py registers under the same `name`.

    name: its value in `config.mixer_types` (and its component in the parameter breakdown).
    letter: its one-letter code in layer layouts (`S A S A`).
    label: its name in prose ("additive attention").
    description: one sentence: what it is and where it comes from.
    equations: its reference equations per head (the class docstring and naive test follow them).
    paper_equations: the config field values under which it computes exactly `equations`.
    reference_code: the config field values that make it compute what its authors' reference code computes.
    The config's defaults are one or the other per field, as the equal-budget comparison of the two chose
    (studies/mixer_comparison.py; docs/models.md, "The mixers: paper, reference code, and departures").
    """

    name: str
    letter: str
    label: str
    description: str
    equations: str
    paper_equations: dict = field(default_factory=dict)
    reference_code: dict = field(default_factory=dict)


# name -> spec, in declaration order (the order of layouts' legends and of the parameter breakdown).
MIXER_SPECS: dict[str, MixerSpec] = {}


def register_mixer_spec(spec: MixerSpec) -> MixerSpec:
    """Declare a token mixer; its `TokenMixer` subclass (modeling_hybrid_bert.py) may then register under its name."""
    if spec.name in MIXER_SPECS:
        raise ValueError(f"A mixer named {spec.name!r} is already declared.")
    if len(spec.letter) != 1 or not spec.letter.isupper():
        raise ValueError(f"Mixer {spec.name!r}: letter {spec.letter!r} must be one upper-case letter.")
    taken = {other.letter: other.name for other in MIXER_SPECS.values()}
    if spec.letter in taken:
        raise ValueError(f"Mixer {spec.name!r}: letter {spec.letter!r} is already {taken[spec.letter]!r}'s.")
    if set(spec.paper_equations) != set(spec.reference_code):
        raise ValueError(f"Mixer {spec.name!r}: paper_equations and reference_code must set the same config fields.")
    MIXER_SPECS[spec.name] = spec
    return spec


register_mixer_spec(
    MixerSpec(
        name="self",
        letter="S",
        label="self-attention",
        description="Softmax self-attention (Vaswani et al., 2017); quadratic in the sequence length.",
        equations="A = softmax(Q Kᵀ / √d + M),  out = A V",
    )
)
register_mixer_spec(
    MixerSpec(
        name="additive",
        letter="A",
        label="additive attention",
        description="Fastformer additive attention (Wu et al., 2021) as HBERT uses it; linear in the sequence length.",
        equations=(
            "α_i = softmax_i(w_qᵀ q_i / √d),  q_g = Σ_i α_i q_i;  p_i = q_g ∘ k_i;  "
            "β_i = softmax_i(w_kᵀ p_i / √d),  k_g = Σ_i β_i p_i;  out_i = W_r (k_g ∘ v_i) + q_i"
        ),
        paper_equations={"additive_shared_query_value": True, "additive_full_width_scores": False},
        reference_code={"additive_shared_query_value": True, "additive_full_width_scores": True},
    )
)
register_mixer_spec(
    MixerSpec(
        name="pooling",
        letter="P",
        label="pooling",
        description=(
            "The pooling network of HybridBERT-pool (arXiv 2307.07258) after PoNet (Tan et al., 2021): global "
            "aggregation plus local max-pooling; linear in the sequence length."
        ),
        equations=(
            "q̄ = mean_i q_i;  a_j = softmax_j(q̄ᵀ k_j / √d),  g = Σ_j a_j v_j;  "
            "l_i = max_{|j−i|≤w} v_j;  y_i = g ∘ o_i + l_i"
        ),
        paper_equations={
            "pooling_local_projection": False,
            "pooling_key_as_value": False,
            "pooling_skip_boundaries": False,
            "pooling_segment_max": False,
        },
        reference_code={
            "pooling_local_projection": True,
            "pooling_key_as_value": True,
            "pooling_skip_boundaries": True,
            "pooling_segment_max": True,
        },
    )
)

NORM_STYLES = ("post", "pre", "sub")
POSITION_EMBEDDING_TYPES = ("absolute", "sinusoidal")
CLASSIFIER_POOLINGS = ("cls", "mean")

# CPU-friendly sizes follow Google's BERT miniatures, but with at least 4 layers so that every hybrid layout
# holds every mixer its variant names; `minilm` matches the pretrained all-MiniLM-L6-v2 checkpoint.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(num_hidden_layers=4, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "minilm": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}

VANILLA_BERT_SETTINGS = dict(
    norm_style="post",
    hidden_act="gelu",
    ffn_bias=True,
    position_embedding_type="absolute",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)
# HBERT §3.2 / §4.2: Sub-LN, no FFN bias, ReLU, sinusoidal positions and dropout cut to 0.005.
HBERT_SETTINGS = dict(
    norm_style="sub",
    hidden_act="relu",
    ffn_bias=False,
    position_embedding_type="sinusoidal",
    hidden_dropout_prob=0.005,
    attention_probs_dropout_prob=0.005,
)


def _hbert_v2_layout(num_layers: int) -> list[str]:
    edge = max(1, round(num_layers / 6))
    return ["self" if i < edge or i >= num_layers - edge else "additive" for i in range(num_layers)]


def _pool_hybrid_layout(num_layers: int) -> list[str]:
    num_self = round(2 * num_layers / 3)
    return ["self"] * num_self + ["pooling"] * (num_layers - num_self)


@dataclass(frozen=True)
class VariantSpec:
    """What a named variant is, declared once: `from_variant`, the recipes' help strings, the parameter table, the
    model cards and the tests all read it.

    layout: the mixer of each layer for a number of layers.
    settings: the config fields the variant sets (norms, activation, positions, FFN biases, dropout).
    required_mixers: mixers its layout must contain at any depth it is built at (a check against too few layers).
    description: one or two sentences for model cards: what it is and where it comes from.
    paper_parameters_m: its parameter count at base size in its paper, in millions (None: the paper gives none).
    """

    layout: Callable[[int], list[str]]
    settings: dict
    required_mixers: tuple[str, ...]
    description: str
    paper_parameters_m: float | None = None


# name -> spec, in declaration order.
VARIANTS: dict[str, VariantSpec] = {}


def register_variant_spec(name: str, spec: VariantSpec) -> VariantSpec:
    """Declare a named variant (`HybridBertConfig.from_variant(name)`); its mixers must be declared."""
    if name in VARIANTS:
        raise ValueError(f"A variant named {name!r} is already declared.")
    unknown = [mixer for mixer in spec.required_mixers if mixer not in MIXER_SPECS]
    if unknown:
        raise ValueError(
            f"Variant {name!r} requires undeclared mixers {unknown}; declare them with register_mixer_spec."
        )
    VARIANTS[name] = spec
    return spec


register_variant_spec(
    "bert",
    VariantSpec(
        layout=lambda n: ["self"] * n,
        settings=VANILLA_BERT_SETTINGS,
        required_mixers=("self",),
        description="`bert` is vanilla BERT (post-LN, GELU, learned absolute positions): softmax self-attention in "
        "every layer.",
        paper_parameters_m=109.5,
    ),
)
register_variant_spec(
    "addbert",
    VariantSpec(
        layout=lambda n: ["additive"] * n,
        settings=VANILLA_BERT_SETTINGS,
        required_mixers=("additive",),
        description="`addbert` is HBERT's AddBERT baseline: BERT's settings with Fastformer additive attention in "
        "every layer, linear in the sequence length.",
        paper_parameters_m=116.4,
    ),
)
register_variant_spec(
    "hbert-v1",
    VariantSpec(
        layout=lambda n: ["additive" if i % 2 else "self" for i in range(n)],
        settings=HBERT_SETTINGS,
        required_mixers=("self", "additive"),
        description="`hbert-v1` is HBERT's first hybrid: self-attention and Fastformer additive attention alternate "
        "(additive at odd layer indices), with Sub-LN, ReLU, FFNs without bias and sinusoidal positions.",
        paper_parameters_m=119.8,
    ),
)
register_variant_spec(
    "hbert-v2",
    VariantSpec(
        layout=_hbert_v2_layout,
        settings=HBERT_SETTINGS,
        required_mixers=("self", "additive"),
        description="`hbert-v2` is HBERT's second hybrid: self-attention in the first and last layers, additive "
        "attention in between, with HBERT's settings (Sub-LN, ReLU, no FFN bias, sinusoidal positions).",
        paper_parameters_m=118.7,
    ),
)
register_variant_spec(
    "pool-hybrid",
    VariantSpec(
        layout=_pool_hybrid_layout,
        settings=VANILLA_BERT_SETTINGS,
        required_mixers=("self", "pooling"),
        description="`pool-hybrid` is the pooling hybrid of arXiv:2307.07258: self-attention in the bottom two "
        "thirds of the layers and a pooling network (global aggregation + local max-pooling, after PoNet) above.",
    ),
)


def _check_choice(field: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"{field}={value!r} is not valid; choose one of {', '.join(map(repr, valid))}.")


class HybridBertConfig(PreTrainedConfig):
    r"""Configuration for [`HybridBertModel`] and its heads.

    BERT's fields, plus:

    mixer_types (`list[str]`, one per layer): each layer's token mixer, a name declared in `MIXER_SPECS`: `"self"`
        (softmax self-attention), `"additive"` (Fastformer additive attention, HBERT) or `"pooling"` (global
        aggregation + local max-pooling, HybridBERT-pool after PoNet). Defaults to `"self"` everywhere (vanilla BERT).
    norm_style (`str`): `"post"` (BERT), `"pre"` (LayerNorm before each sublayer, final LayerNorm) or `"sub"`
        (Sub-LN from Foundation Transformers: pre-LN plus a LayerNorm inside each sublayer, and torchscale's init).
    ffn_bias (`bool`): biases in the two feed-forward projections.
    position_embedding_type (`str`): `"absolute"` (learned) or `"sinusoidal"` (fixed, not a parameter).
    sinusoidal_amplitude (`float`, default 0.02): amplitude of the sinusoidal positions. At BERT's token-embedding
        init (std 0.02) this keeps fairseq/torchscale's token-to-position ratio (there, √d-scaled tokens of std d^-½
        beside unit sinusoids); unit sinusoids would swamp the tokens and stall MLM at the unigram distribution.
    sparse_prediction (`bool`): with labels, run the MLM head only at labelled positions (as ModernBERT does);
        the returned logits are then one row per labelled token. Without labels the head runs everywhere. A training
        setting: saved configs have it off, so a loaded model's logits are (batch, sequence, vocab), labels or not.
    drop_mask (`bool`): DropMask (2307.07258): tokens equal to `mask_token_id` are not keys of any mixer (they still
        are queries). Needs `mask_token_id`.
    additive_shared_query_value (`bool`, default true): additive attention uses the query projection as the value,
        as the Fastformer reference code does, instead of its own W_v. Chosen by measurement: with W_v an additive
        layer has one more H×H projection than self-attention and is slower at BERT lengths (see the README).
    additive_full_width_scores (`bool`, default true): each head's scores read the whole hidden vector, as
        Fastformer's reference code does (its `query_att`/`key_att` are `Linear(hidden, heads)`), instead of a scoring
        vector over the head's own slice (the paper's equations). H × heads parameters per score instead of H. Chosen
        by measurement: at equal calibrated wall-clock it pretrains better and faster (results/mixer_options/).
    The pooling options below stay off (the paper's equations), also by that measurement: with all four on,
    `pool-hybrid` trains fewer steps in the same time and ends lower (results/mixer_options/).
    pooling_kernel_size (`int`, odd): window of the pooling mixer's local max-pooling.
    pooling_local_projection (`bool`, default false): the local max-pooling reads its own projection W_l (PoNet's
        `dense_local`) instead of the global aggregation's value projection.
    pooling_key_as_value (`bool`, default false): the global aggregation sums the keys, g = Σ a_j k_j, as PoNet's code
        does, instead of a value projection. With `pooling_local_projection` too, the mixer has no W_v.
    pooling_skip_boundaries (`bool`, default false): [CLS] and [SEP] are in no local max-pooling window, and their
        own local (and segment) terms are 0, as in PoNet's code. Needs `cls_token_id` and `sep_token_id`.
    pooling_segment_max (`bool`, default false): PoNet's segment max-pooling branch: s_i = max of W_s x_j over the
        keys j of i's segment (the tokens between two [CLS]/[SEP] boundaries; each boundary token is a segment of its
        own), fused as y_i = (g + s_i) ∘ o_i + l_i. Needs `cls_token_id` and `sep_token_id`.
    classifier_pooling (`str`, default `"cls"`): what the sequence-classification head reads: `"cls"` (BERT's pooler,
        tanh(W h_[CLS])) or `"mean"` (the mean of the last hidden states over unpadded tokens, as ModernBERT offers; the
        pooling a sentence encoder such as all-MiniLM-L6-v2 was trained with, whose [CLS] pooler never was).
    cls_token_id, sep_token_id (`int`): the tokenizer's [CLS] and [SEP], which delimit the pooling mixer's segments.
    variant, size (`str`, informational): the registry names this config was built from, if any.

    Build named configurations with [`HybridBertConfig.from_variant`].
    """

    model_type = "hybrid_bert"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int | None = 0,
        mask_token_id: int | None = None,
        classifier_dropout: float | None = None,
        mixer_types: list[str] | None = None,
        norm_style: str = "post",
        ffn_bias: bool = True,
        position_embedding_type: str = "absolute",
        sinusoidal_amplitude: float = 0.02,
        sparse_prediction: bool = True,
        sparse_pred_ignore_index: int = -100,
        drop_mask: bool = False,
        additive_shared_query_value: bool = True,
        additive_full_width_scores: bool = True,
        pooling_kernel_size: int = 3,
        pooling_local_projection: bool = False,
        pooling_key_as_value: bool = False,
        pooling_skip_boundaries: bool = False,
        pooling_segment_max: bool = False,
        classifier_pooling: str = "cls",
        cls_token_id: int | None = None,
        sep_token_id: int | None = None,
        variant: str | None = None,
        size: str | None = None,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.mask_token_id = mask_token_id
        self.classifier_dropout = classifier_dropout
        self.mixer_types = list(mixer_types) if mixer_types is not None else ["self"] * num_hidden_layers
        self.norm_style = norm_style
        self.ffn_bias = ffn_bias
        self.position_embedding_type = position_embedding_type
        self.sinusoidal_amplitude = sinusoidal_amplitude
        self.sparse_prediction = sparse_prediction
        self.sparse_pred_ignore_index = sparse_pred_ignore_index
        self.drop_mask = drop_mask
        self.additive_shared_query_value = additive_shared_query_value
        self.additive_full_width_scores = additive_full_width_scores
        self.pooling_kernel_size = pooling_kernel_size
        self.pooling_local_projection = pooling_local_projection
        self.pooling_key_as_value = pooling_key_as_value
        self.pooling_skip_boundaries = pooling_skip_boundaries
        self.pooling_segment_max = pooling_segment_max
        self.classifier_pooling = classifier_pooling
        self.cls_token_id = cls_token_id
        self.sep_token_id = sep_token_id
        self.variant = variant
        self.size = size
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)
        self._check_fields()

    def _check_fields(self) -> None:
        if len(self.mixer_types) != self.num_hidden_layers:
            raise ValueError(
                f"mixer_types has {len(self.mixer_types)} entries but num_hidden_layers={self.num_hidden_layers}; "
                "give one mixer per layer."
            )
        for index, mixer in enumerate(self.mixer_types):
            _check_choice(f"mixer_types[{index}]", mixer, tuple(MIXER_SPECS))
        _check_choice("norm_style", self.norm_style, NORM_STYLES)
        _check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        _check_choice("classifier_pooling", self.classifier_pooling, CLASSIFIER_POOLINGS)
        if not self.sinusoidal_amplitude > 0:
            raise ValueError(f"sinusoidal_amplitude={self.sinusoidal_amplitude} must be positive.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}."
            )
        if self.pooling_kernel_size < 1 or self.pooling_kernel_size % 2 == 0:
            raise ValueError(f"pooling_kernel_size={self.pooling_kernel_size} must be a positive odd number.")
        if self.drop_mask and self.mask_token_id is None:
            raise ValueError(
                "drop_mask=True needs mask_token_id (take it from the tokenizer: tokenizer.mask_token_id)."
            )
        boundary_options = self.pooling_skip_boundaries or self.pooling_segment_max
        if boundary_options and (self.cls_token_id is None or self.sep_token_id is None):
            raise ValueError(
                "pooling_skip_boundaries and pooling_segment_max need cls_token_id and sep_token_id (take them from "
                "the tokenizer: tokenizer.cls_token_id, tokenizer.sep_token_id)."
            )

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """A saved config (one holding `transformers_version`) names every mixer option the code that saved it had; an
        option it lacks did not exist then, and that code computed the paper's equations: so it loads, whatever the
        option's default is now, and the checkpoint computes what it was trained to."""
        if "transformers_version" in config_dict:
            predating = {
                name: value
                for spec in MIXER_SPECS.values()
                for name, value in spec.paper_equations.items()
                if name not in config_dict
            }
            config_dict = {**config_dict, **predating}
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_variant(cls, variant: str, size: str = "base", **overrides) -> HybridBertConfig:
        """A named variant at a named size; any config field can be overridden.

        The layer layout is computed for the final `num_hidden_layers` (so overriding the depth keeps the variant's
        pattern) unless `mixer_types` itself is overridden.
        """
        _check_choice("variant", variant, tuple(VARIANTS))
        _check_choice("size", size, tuple(SIZES))
        spec = VARIANTS[variant]
        fields = {**SIZES[size], **spec.settings, **overrides}
        if "mixer_types" not in overrides:
            fields["mixer_types"] = spec.layout(fields["num_hidden_layers"])
            missing = [mixer for mixer in spec.required_mixers if mixer not in fields["mixer_types"]]
            if missing:
                raise ValueError(
                    f"variant {variant!r} with num_hidden_layers={fields['num_hidden_layers']} has no "
                    f"{', '.join(missing)} layer; use more layers."
                )
        return cls(variant=variant, size=size, **fields)


__all__ = [
    "MIXER_SPECS",
    "VARIANTS",
    "HybridBertConfig",
    "MixerSpec",
    "VariantSpec",
    "register_mixer_spec",
    "register_variant_spec",
]
