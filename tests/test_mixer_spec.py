"""The mixer specification (`MIXER_SPECS`) and what derives from it: config validation, the modeling registry, the
parameter breakdown, the cards' layout letters; the reference-code options' parameter counts, config checks and
save/reload round trip; and a toy mixer added the documented way (one spec entry, one class, one naive test) that
builds, saves, reloads and cards like the built-in ones; the reference-code mixers compile as one graph."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from helpers import CLS_ID, SEP_ID, architecture_config, padded_batch, tiny_config
from test_pretrain import TINY
from torch import nn

from modeling import (
    MIXER_SPECS,
    VARIANTS,
    HybridBertConfig,
    HybridBertForMaskedLM,
    HybridBertModel,
    MixerSpec,
    TokenMixer,
    VariantSpec,
    register_mixer_spec,
    register_variant_spec,
)
from modeling.modeling_hybrid_bert import MIXERS, Segments
from recipes.cards.model_card import build_card, layout_text
from recipes.models.parameters import MIXER_OPTIONS, components, hybrid_breakdown
from recipes.pretrain import main as pretrain
from recipes.training.pretrain_arguments import ModelArguments

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RUN = REPO_ROOT / "results" / "tiny_zoo" / "zoo_runs" / "pool-hybrid-tiny-1m-seed1"
H, HEADS = 32, 4  # tiny_config's width and heads

# Each option, and each mixer's reference-code options together: (variant, overrides, mixer, its parameters per layer).
LINEAR = H * H + H
OPTION_COUNTS = {
    "paper pooling": ("pool-hybrid", MIXER_SPECS["pooling"].paper_equations, "pooling", 4 * LINEAR),
    "local projection": ("pool-hybrid", {"pooling_local_projection": True}, "pooling", 5 * LINEAR),
    "key as value": ("pool-hybrid", {"pooling_key_as_value": True}, "pooling", 4 * LINEAR),
    "skip boundaries": ("pool-hybrid", {"pooling_skip_boundaries": True}, "pooling", 4 * LINEAR),
    "segment max": ("pool-hybrid", {"pooling_segment_max": True}, "pooling", 5 * LINEAR),
    "PoNet code": ("pool-hybrid", MIXER_SPECS["pooling"].reference_code, "pooling", 5 * LINEAR),
    "paper additive": ("addbert", MIXER_SPECS["additive"].paper_equations, "additive", 3 * LINEAR + 2 * H),
    "Fastformer code": ("addbert", MIXER_SPECS["additive"].reference_code, "additive", 3 * LINEAR + 2 * H * HEADS),
}


# --- the specification ------------------------------------------------------------------------------------------


def test_every_declared_mixer_has_its_class_and_a_unique_letter():
    """Each spec has a registered TokenMixer class under its name, one letter of its own, and equations."""
    assert list(MIXERS) == list(MIXER_SPECS)
    for name, spec in MIXER_SPECS.items():
        assert issubclass(MIXERS[name], TokenMixer) and MIXERS[name].mixer_type == name
        assert spec.equations and spec.description and spec.label
    letters = [spec.letter for spec in MIXER_SPECS.values()]
    assert len(set(letters)) == len(letters)


def test_defaults_are_the_options_the_comparison_chose():
    """A spec's options are real boolean config fields; the defaults are the paper's equations for pooling and the
    reference code for additive attention (full-width scores), as the equal-budget comparison measured
    (results/mixer_options/mlm_comparison.md)."""
    defaults = HybridBertConfig()
    for spec in MIXER_SPECS.values():
        for field_name, value in {**spec.paper_equations, **spec.reference_code}.items():
            assert hasattr(defaults, field_name), field_name
            assert isinstance(value, bool)
    for field_name, value in MIXER_SPECS["pooling"].paper_equations.items():
        assert getattr(defaults, field_name) == value, field_name
    for field_name, value in MIXER_SPECS["additive"].reference_code.items():
        assert getattr(defaults, field_name) == value, field_name


def test_a_checkpoint_saved_before_an_option_existed_loads_as_it_was_trained(tmp_path):
    """A saved config.json without `additive_full_width_scores` (saved before the option existed, when additive
    attention scored per head) loads with per-head scores and the saved weights, although the default is now full
    width; a saved config that names the option, and a fresh config, keep theirs."""
    config = tiny_config("addbert", **MIXER_SPECS["additive"].paper_equations)
    model = HybridBertModel(config).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["additive_full_width_scores"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded, info = HybridBertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not loaded.config.additive_full_width_scores
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    ids = torch.randint(5, 100, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).last_hidden_state, model(ids).last_hidden_state)
    full = HybridBertConfig.from_dict({**saved, "additive_full_width_scores": True})
    assert full.additive_full_width_scores and HybridBertConfig().additive_full_width_scores


def test_config_rejects_undeclared_mixers_naming_the_declared_ones():
    with pytest.raises(
        ValueError, match=r"mixer_types\[1\]='toy' is not valid; choose one of 'self', 'additive', 'pooling'"
    ):
        tiny_config("bert", mixer_types=["self", "toy", "self", "self"])


def test_a_mixer_class_needs_a_declared_spec_and_a_free_name():
    with pytest.raises(ValueError, match="no mixer named 'undeclared' is declared; declare it first"):

        class Undeclared(TokenMixer, mixer_type="undeclared"):
            pass

    with pytest.raises(ValueError, match="mixer 'pooling' already has a class, PoolingMixer"):

        class SecondPooling(TokenMixer, mixer_type="pooling"):
            pass

    assert MIXERS["pooling"].__name__ == "PoolingMixer"


def test_specs_refuse_taken_names_and_letters():
    spec = MIXER_SPECS["self"]
    with pytest.raises(ValueError, match="already declared"):
        register_mixer_spec(spec)
    with pytest.raises(ValueError, match="letter 'S' is already 'self'"):
        register_mixer_spec(MixerSpec(name="other", letter="S", label="x", description="x", equations="x"))
    with pytest.raises(ValueError, match="must be one upper-case letter"):
        register_mixer_spec(MixerSpec(name="other", letter="xy", label="x", description="x", equations="x"))
    with pytest.raises(ValueError, match="paper_equations and reference_code must set the same config fields"):
        register_mixer_spec(
            MixerSpec(
                name="other", letter="O", label="x", description="x", equations="x",
                paper_equations={"pooling_key_as_value": False}, reference_code={"pooling_segment_max": True},
            )
        )  # fmt: skip
    assert "other" not in MIXER_SPECS


def test_breakdown_components_and_card_legend_follow_the_spec():
    assert components() == ("embeddings", *MIXER_SPECS, "mixer_output", "ffn", "norms", "pooler")
    assert layout_text(["self", "additive", "pooling"]) == (
        "`S A P` (bottom to top; S = self-attention, A = additive attention, P = pooling)"
    )


# --- the reference-code options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", list(OPTION_COUNTS))
def test_option_parameter_counts_in_the_breakdown(option):
    """The breakdown counts each option's projections: W_l and W_s add one H × H linear each, the key as value
    removes W_v when W_l replaces it, full-width scores are H × heads per score instead of H."""
    variant, overrides, mixer, per_layer = OPTION_COUNTS[option]
    config = tiny_config(variant, **overrides)
    breakdown = hybrid_breakdown(config)
    assert breakdown[mixer] == config.mixer_types.count(mixer) * per_layer
    assert sum(breakdown[name] for name in components()) == breakdown["total"]


def test_breakdown_table_lists_every_option():
    """recipes.models.parameters has a row per pooling option and one per mixer's reference-code options together."""
    overrides = [options for _, options in MIXER_OPTIONS.values()]
    for field_name in MIXER_SPECS["pooling"].reference_code:
        assert {field_name: True} in overrides, field_name
    for spec in MIXER_SPECS.values():
        assert not spec.reference_code or spec.reference_code in overrides, spec.name


@pytest.mark.parametrize("option", ["skip boundaries", "segment max"])
def test_boundary_options_need_cls_and_sep_ids(option):
    variant, overrides, _, _ = OPTION_COUNTS[option]
    with pytest.raises(ValueError, match="need cls_token_id and sep_token_id"):
        tiny_config(variant, cls_token_id=None, **overrides)
    model = HybridBertModel(tiny_config(variant, **overrides))
    input_ids, attention_mask = padded_batch(boundaries=True)
    with pytest.raises(ValueError, match="read \\[CLS\\]/\\[SEP\\] from input_ids"):
        model(inputs_embeds=model.get_input_embeddings()(input_ids), attention_mask=attention_mask)


@pytest.mark.parametrize("option", [name for name in OPTION_COUNTS if "paper" not in name])
def test_options_survive_save_and_reload(option, tmp_path):
    """A model with an option saves its config field and weights and reloads to the same outputs."""
    variant, overrides, _, _ = OPTION_COUNTS[option]
    torch.manual_seed(0)
    model = HybridBertForMaskedLM(tiny_config(variant, initializer_range=0.1, **overrides)).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert all(saved[name] == value for name, value in overrides.items())
    reloaded = HybridBertForMaskedLM.from_pretrained(tmp_path).eval()
    assert all(getattr(reloaded.config, name) == value for name, value in overrides.items())
    assert reloaded.state_dict().keys() == model.state_dict().keys()
    input_ids, attention_mask = padded_batch(boundaries=True)
    with torch.no_grad():
        before = model(input_ids=input_ids, attention_mask=attention_mask).logits
        after = reloaded(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(after, before, atol=0, rtol=0)


def test_segment_max_is_shared_within_a_segment_and_not_across():
    """In a model, the segment branch gives every token of a [CLS]/[SEP]-delimited segment the same s_i, whatever
    their distance, and tokens across a [SEP] another one."""
    model = HybridBertModel(architecture_config("only-pooling+code", initializer_range=0.3)).eval()
    input_ids = torch.tensor([[CLS_ID, 20, 21, 22, 23, 24, 25, SEP_ID, 30, 31, 32, 33]])
    mixer = model.layers[0].mixer
    segments = model.segments(input_ids)
    with torch.no_grad():
        hidden = model.embeddings(input_ids, None, None, None)
        s = mixer.segment_max(mixer.segment(hidden), segments.segment_ids, ~segments.is_boundary)
    assert all(torch.equal(s[0, 1], s[0, i]) for i in range(2, 7))
    assert all(torch.equal(s[0, 8], s[0, i]) for i in range(9, 12))
    assert not torch.equal(s[0, 1], s[0, 8])
    assert torch.equal(s[0, 0], torch.zeros(H)) and torch.equal(s[0, 7], torch.zeros(H))  # boundaries: no candidate


# --- adding a mixer -----------------------------------------------------------------------------------------------


@pytest.fixture
def toy_mixer():
    """A mixer added the documented way: one spec entry and one TokenMixer subclass (removed again afterwards)."""
    register_mixer_spec(
        MixerSpec(
            name="toy",
            letter="T",
            label="toy mean mixing",
            description="The mean of the keys added to a projection of each token; for tests.",
            equations="out_i = W x_i + mean_{j key} x_j",
        )
    )

    class ToyMixer(TokenMixer, mixer_type="toy"):
        """out_i = W x_i + mean_{j key} x_j; weights: the uniform distribution over keys, (batch, seq)."""

        value_path = ("projection",)

        def __init__(self, config):
            super().__init__()
            self.projection = nn.Linear(config.hidden_size, config.hidden_size)

        def forward(self, hidden, key_mask, output_attentions=False, segments=None):
            keys = torch.ones(hidden.shape[:2], dtype=hidden.dtype) if key_mask is None else key_mask.to(hidden.dtype)
            weights = keys / keys.sum(dim=1, keepdim=True)
            mean = (weights[..., None] * hidden).sum(1, keepdim=True)
            return self.projection(hidden) + mean, weights if output_attentions else None

    try:
        yield ToyMixer
    finally:
        MIXERS.pop("toy", None)
        MIXER_SPECS.pop("toy", None)


def reference_toy(mixer, x, key_mask):
    """out_i = W x_i + b + mean of x_j over the row's keys, one token at a time."""
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        keys = [j for j in range(x.shape[1]) if key_mask is None or bool(key_mask[b, j])]
        mean = sum(x[b, j] for j in keys) / len(keys)
        for i in range(x.shape[1]):
            out[b, i] = mixer.projection.weight @ x[b, i] + mixer.projection.bias + mean
    return out


def test_toy_mixer_matches_its_naive_reference(toy_mixer):
    mixer = toy_mixer(tiny_config("bert")).double()
    x = torch.randn(3, 9, H, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    key_mask = torch.arange(9)[None] < torch.tensor([9, 6, 3])[:, None]
    with torch.no_grad():
        out, _ = mixer(x, key_mask)
    torch.testing.assert_close(out[key_mask], reference_toy(mixer, x, key_mask)[key_mask], atol=1e-10, rtol=0)


def test_toy_mixer_builds_saves_reloads_and_cards(toy_mixer, tmp_path):
    """A model whose layers alternate self-attention and the toy mixer: its breakdown counts a `toy` component, it
    saves and reloads to the same logits, Sub-LN scales its value path, and its card shows `S T S T` and the toy's
    parameters."""
    layout = ["self", "toy", "self", "toy"]
    config = tiny_config("bert", mixer_types=layout, initializer_range=0.1)
    torch.manual_seed(0)
    model = HybridBertForMaskedLM(config).eval()
    assert [type(layer.mixer) for layer in model.hybrid_bert.layers][1] is toy_mixer
    breakdown = hybrid_breakdown(config)
    assert breakdown["toy"] == 2 * LINEAR and "toy" in components()

    run_dir = tmp_path / "run"
    shutil.copytree(COMMITTED_RUN, run_dir)
    model.save_pretrained(run_dir)
    reloaded = HybridBertForMaskedLM.from_pretrained(run_dir).eval()
    assert reloaded.config.mixer_types == layout
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=input_ids, attention_mask=attention_mask).logits,
            model(input_ids=input_ids, attention_mask=attention_mask).logits,
            atol=0,
            rtol=0,
        )
    sub_ln = HybridBertModel(tiny_config("bert", mixer_types=layout, norm_style="sub"))
    assert math.isclose(sub_ln.layers[1].mixer.projection.init_scale, math.sqrt(math.log(8)))

    card = build_card(run_dir, "zoo-org/toy").text
    legend = "(bottom to top; S = self-attention, A = additive attention, P = pooling, T = toy mean mixing)"
    assert f"`S T S T` {legend}" in card
    lines = card.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("| embeddings"))
    names, counts = ([cell.strip() for cell in lines[row].strip("| ").split("|")] for row in (header, header + 2))
    assert dict(zip(names, counts, strict=True))["toy"] == f"{breakdown['toy']:,}"


@pytest.mark.parametrize("mixer_type", [name for name, spec in MIXER_SPECS.items() if spec.reference_code])
def test_reference_code_mixers_trace_without_graph_breaks(mixer_type):
    """With its reference-code options, a mixer (segments derived from the ids included) compiles as one graph:
    no host synchronisation or data-dependent Python control flow; forward and backward match eager."""
    config = tiny_config("bert", **MIXER_SPECS[mixer_type].reference_code)
    mixer = MIXERS[mixer_type](config).eval()
    input_ids, attention_mask = padded_batch(boundaries=True)

    def mix(hidden, input_ids, key_mask):
        segments = Segments.from_input_ids(input_ids, CLS_ID, SEP_ID) if mixer.uses_segments else None
        return mixer(hidden, key_mask, False, segments)[0]

    hidden = torch.randn(*input_ids.shape, H, generator=torch.Generator().manual_seed(0), requires_grad=True)
    compiled = torch.compile(mix, fullgraph=True, backend="aot_eager")
    got = compiled(hidden, input_ids, attention_mask.bool())
    want = mix(hidden, input_ids, attention_mask.bool())
    torch.testing.assert_close(got, want)
    (grad_got,) = torch.autograd.grad(got.sum(), hidden)
    (grad_want,) = torch.autograd.grad(want.sum(), hidden)
    torch.testing.assert_close(grad_got, grad_want)
    assert torch.isfinite(grad_got).all()


# --- adding a variant ---------------------------------------------------------------------------------------------


def test_a_variant_is_one_spec_entry_that_builds_trains_saves_reloads_and_cards(tmp_path, train_file):
    """A toy variant declared with one `register_variant_spec` call: the config builds its layout at any depth, the
    pretraining recipe takes its name, the saved run reloads, and its card describes it."""
    spec = VariantSpec(
        layout=lambda n: ["pooling" if i % 2 else "self" for i in range(n)],
        settings={"norm_style": "pre", "hidden_act": "gelu"},
        required_mixers=("self", "pooling"),
        description="`toy-alternating` alternates self-attention and pooling; for tests.",
    )
    register_variant_spec("toy-alternating", spec)
    try:
        with pytest.raises(ValueError, match="already declared"):
            register_variant_spec("toy-alternating", spec)
        config = HybridBertConfig.from_variant("toy-alternating", size="tiny", num_hidden_layers=6)
        assert config.mixer_types == ["self", "pooling"] * 3 and config.norm_style == "pre"
        # help strings list the variants declared when the recipes are imported (a variant declared in the package is)
        declared = [name for name in VARIANTS if name != "toy-alternating"]
        assert f"One of {', '.join(declared)}" in ModelArguments.__dataclass_fields__["variant"].metadata["help"]
        run_dir = tmp_path / "run"
        pretrain([*TINY, "--variant", "toy-alternating", "--train_file", str(train_file), "--max_steps", "1",
                  "--output_dir", str(run_dir)])  # fmt: skip
        reloaded = HybridBertForMaskedLM.from_pretrained(run_dir)
        assert reloaded.config.variant == "toy-alternating" and reloaded.config.mixer_types == ["self", "pooling"]
        assert spec.description in build_card(run_dir, "zoo-org/toy-alternating").text
    finally:
        VARIANTS.pop("toy-alternating", None)
