"""Parameter counts per component, for every variant beside HF's own BERT and the HBERT paper's Table 2.

python -m recipes.models.parameters --size base            # markdown table on stdout
python -m recipes.models.parameters --size base --json out.json
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from transformers import BertConfig, BertModel

from modeling import MIXER_SPECS, VARIANTS, HybridBertConfig, HybridBertModel
from recipes.cards.markdown import markdown_table
from recipes.data.assets import default_tokenizer
from recipes.records import ParameterCountRecord

# Configurations that isolate one design choice: name -> (variant, config overrides).
ABLATIONS = {
    "bert-dense-head": ("bert", {"sparse_prediction": False}),  # the MLM head at every position
    "addbert-wv": ("addbert", {"additive_shared_query_value": False}),  # additive attention with its own W_v
}

# The mixers' options that follow their reference code, one row each, and each mixer as its paper's equations and as
# its reference code define it (its spec's `paper_equations` and `reference_code`; one of them is the default row's):
# name -> (variant, config overrides).
MIXER_OPTIONS = {
    "pool-hybrid +local-proj": ("pool-hybrid", {"pooling_local_projection": True}),
    "pool-hybrid +key-value": ("pool-hybrid", {"pooling_key_as_value": True}),
    "pool-hybrid +skip-boundaries": ("pool-hybrid", {"pooling_skip_boundaries": True}),
    "pool-hybrid +segment-max": ("pool-hybrid", {"pooling_segment_max": True}),
    "pool-hybrid (paper equations)": ("pool-hybrid", MIXER_SPECS["pooling"].paper_equations),
    "pool-hybrid (PoNet code)": ("pool-hybrid", MIXER_SPECS["pooling"].reference_code),
    "addbert (paper equations)": ("addbert", MIXER_SPECS["additive"].paper_equations),
    "addbert (Fastformer code)": ("addbert", MIXER_SPECS["additive"].reference_code),
}


def components() -> tuple[str, ...]:
    """The breakdown's components: embeddings, each declared mixer (in `MIXER_SPECS` order), then the rest."""
    return ("embeddings", *MIXER_SPECS, "mixer_output", "ffn", "norms", "pooler")


def component_of(name: str, mixer_types: list[str]) -> str:
    """The component a HybridBertModel parameter belongs to (its norms are counted apart from what they normalise)."""
    parts = name.split(".")
    if parts[0] == "embeddings":
        return "norms" if parts[1] == "norm" else "embeddings"
    if parts[0] == "layers":
        module = parts[2]
        if "norm" in module:
            return "norms"
        if module == "mixer":
            return mixer_types[int(parts[1])]
        return "ffn" if module.startswith("ffn") else module
    return "norms" if parts[0] == "final_norm" else parts[0]


def hybrid_breakdown(config: HybridBertConfig) -> dict[str, int]:
    with torch.device("meta"):
        model = HybridBertModel(config)
    counts = Counter({component: 0 for component in components()})
    for name, parameter in model.named_parameters():
        counts[component_of(name, config.mixer_types)] += parameter.numel()
    counts["total"] = model.num_parameters()
    return dict(counts)


def hf_bert_config(config: HybridBertConfig) -> BertConfig:
    """HF's own BERT config with the dimensions and settings of a `bert`-variant config."""
    shared = (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
        "layer_norm_eps", "pad_token_id",
    )  # fmt: skip
    return BertConfig(**{name: getattr(config, name) for name in shared}, attn_implementation="sdpa")


def hf_bert_breakdown(config: HybridBertConfig) -> dict[str, int]:
    """HF `BertModel` of the same dimensions, in the same components."""
    bert_config = hf_bert_config(config)
    with torch.device("meta"):
        model = BertModel(bert_config)
    counts = Counter({component: 0 for component in components()})
    for name, parameter in model.named_parameters():
        if "LayerNorm" in name:
            component = "norms"
        elif name.startswith("embeddings"):
            component = "embeddings"
        elif ".attention.self." in name:
            component = "self"
        elif ".attention.output." in name:
            component = "mixer_output"
        elif name.startswith("pooler"):
            component = "pooler"
        else:
            component = "ffn"
        counts[component] += parameter.numel()
    counts["total"] = model.num_parameters()
    return dict(counts)


def breakdowns(size: str) -> dict[str, dict[str, int]]:
    rows = {name: hybrid_breakdown(HybridBertConfig.from_variant(name, size=size)) for name in VARIANTS}
    variant, overrides = ABLATIONS["addbert-wv"]
    rows["addbert-wv"] = hybrid_breakdown(HybridBertConfig.from_variant(variant, size=size, **overrides))
    tokenizer = default_tokenizer()  # the [CLS]/[SEP] ids that the boundary-reading options need
    boundaries = {"cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}
    for name, (variant, overrides) in MIXER_OPTIONS.items():
        rows[name] = hybrid_breakdown(HybridBertConfig.from_variant(variant, size=size, **boundaries, **overrides))
    rows["HF BertModel"] = hf_bert_breakdown(HybridBertConfig.from_variant("bert", size=size))
    return rows


def breakdown_table(rows: dict[str, dict[str, int]], size: str) -> str:
    header = ["model", *components(), "total"]
    if size == "base":
        header.append("paper (Table 2)")
    lines = []
    for name, counts in rows.items():
        cells = [name, *(f"{counts[c] / 1e6:.2f}M" for c in (*components(), "total"))]
        if size == "base":
            paper = VARIANTS[name].paper_parameters_m if name in VARIANTS else None
            cells.append(f"{paper}M" if paper else "–")
        lines.append(cells)
    return "\n".join(markdown_table(header, lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base")
    parser.add_argument("--json", help="also write the counts to this JSON file")
    args = parser.parse_args(argv)
    rows = breakdowns(args.size)
    print(breakdown_table(rows, args.size))
    if args.json:
        ParameterCountRecord(size=args.size, parameters=rows).write(args.json)


if __name__ == "__main__":
    main()
