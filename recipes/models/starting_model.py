"""Where a pretraining run's model and tokenizer come from: a fresh variant, an HF BERT converted (HBERT §4.4,
--init_from), or a HybridBERT checkpoint continued (--model_name_or_path); and the config each asks for, known before
any weight is built."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig

from modeling import HybridBertConfig, HybridBertForMaskedLM
from recipes.data import assets
from recipes.data.input_files import read_config
from recipes.models.references import folder_tokenizer, require_model_type, resolve_model
from recipes.training.pretrain_arguments import ModelArguments, parse_overrides

# The arguments that name a checkpoint to start from: the model type each takes, and where the other kind goes.
START_ARGUMENTS = (
    ("model_name_or_path", ("hybrid_bert",), "Start a HybridBERT from a BERT checkpoint with --init_from."),
    ("init_from", ("bert",), "Continue pretraining a HybridBERT checkpoint with --model_name_or_path."),
)


def source_settings(bert_config) -> dict:
    """A BERT's settings as HybridBERT config fields (a BERT is post-LN with learned positions and FFN biases): a
    hybrid converted with them keeps the source's settings in the variant's layout."""
    return dict(norm_style="post", hidden_act=bert_config.hidden_act, ffn_bias=True, position_embedding_type="absolute")


# The dimensions `HybridBertForMaskedLM.from_bert` takes from an --init_from model's config.
SOURCE_DIMENSIONS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings",
)  # fmt: skip


def new_model_fields(model_args: ModelArguments) -> dict:
    """The config fields a new model takes from the arguments: DropMask, the pretraining dropout, and the overrides
    (which win over the dropout)."""
    return {
        "drop_mask": model_args.drop_mask,
        "hidden_dropout_prob": model_args.pretraining_dropout,
        "attention_probs_dropout_prob": model_args.pretraining_dropout,
        **parse_overrides(model_args.config_overrides),
    }


def requested_config(model_args: ModelArguments, tokenizer=None, start: Path | None = None) -> dict:
    """The config this run asks for, computed without building a model: the variant at its size (with --init_from,
    the source's dimensions), the overrides, and (given the tokenizer) its vocabulary and token ids; with
    --model_name_or_path, the checkpoint's (`start`, the resolved folder)."""
    if model_args.model_name_or_path:
        return read_config(start)
    fields = new_model_fields(model_args)
    if tokenizer is not None:
        fields.update(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            mask_token_id=tokenizer.mask_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
        )
    else:
        # Stand-ins while only the fields are checked (DropMask and the pooling options that read [CLS]/[SEP] need
        # token ids); the tokenizer's come later.
        for name in ("mask_token_id", "cls_token_id", "sep_token_id"):
            fields.setdefault(name, 0)
    if not model_args.init_from:
        return HybridBertConfig.from_variant(
            model_args.variant or "bert", size=model_args.size or "mini", **fields
        ).to_dict()
    source = read_config(start)
    fields = {**converted_settings(model_args, start), **fields}
    conflicting = [
        name for name in SOURCE_DIMENSIONS if name in fields and name in source and fields[name] != source[name]
    ]
    if conflicting:
        raise ValueError(
            f"--config_overrides sets {', '.join(f'{name}={fields[name]!r}' for name in conflicting)}, but a model "
            f"made with --init_from keeps its source's dimensions ({', '.join(f'{name}={source[name]!r}' for name in conflicting)} "
            f"in {start}); drop those overrides."
        )
    dimensions = {name: source[name] for name in SOURCE_DIMENSIONS if name in source and name not in fields}
    config = HybridBertConfig.from_variant(model_args.variant or "bert", size="base", **dimensions, **fields).to_dict()
    config.pop("size")  # follows the source, like its other dimensions
    return config


def converted_settings(model_args: ModelArguments, start: Path) -> dict:
    """With --keep_source_settings, the --init_from BERT's settings (`start`, its folder), which the overrides win over."""
    return source_settings(BertConfig.from_pretrained(start)) if model_args.keep_source_settings else {}


def load_tokenizer(model_args: ModelArguments, start: Path | None = None):
    """--tokenizer_name's, else the continued checkpoint's own (`start`, the resolved --model_name_or_path), else the
    embedded bert-base-uncased one."""
    if model_args.tokenizer_name:
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        tokenizer.model_max_length = min(tokenizer.model_max_length, 512)
        return tokenizer
    if model_args.model_name_or_path:
        return folder_tokenizer(start or resolve_start(model_args))
    return assets.default_tokenizer()


def resolve_start(model_args: ModelArguments) -> Path | None:
    """The local folder of the checkpoint a run starts from: a HybridBERT checkpoint it continues
    (--model_name_or_path) or an HF BERT it converts (--init_from); None for fresh weights."""
    if model_args.model_name_or_path:
        new_model_arguments = (
            "variant", "size", "config_overrides", "init_from", "keep_source_settings", "drop_mask",
            "pretraining_dropout",
        )  # fmt: skip
        new_model = [name for name in new_model_arguments if getattr(model_args, name)]
        if new_model:
            raise ValueError(
                f"--model_name_or_path continues a checkpoint whose config fixes the model; drop --{', --'.join(new_model)}."
            )
    for argument, model_types, hint in START_ARGUMENTS:
        reference = getattr(model_args, argument)
        if reference:
            folder = resolve_model(reference, model_args.model_revision, f"--{argument}")
            require_model_type(folder, model_types, f"--{argument}", reference, hint=hint)
            return folder
    if model_args.keep_source_settings:
        raise ValueError("--keep_source_settings needs --init_from (the BERT whose settings the hybrid keeps).")
    if model_args.model_revision:
        raise ValueError(
            "--model_revision applies to a Hub repo id in --model_name_or_path or --init_from; neither is given."
        )
    return None


def build_model(model_args: ModelArguments, tokenizer, start: Path | None = None) -> HybridBertForMaskedLM:
    """The checkpoint `start` continued, or a fresh variant, or one initialised from the BERT `start`; a new model's
    token ids and vocabulary size come from the tokenizer."""
    if model_args.model_name_or_path:
        model = HybridBertForMaskedLM.from_pretrained(start)
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens; the checkpoint only {model.config.vocab_size}."
            )
        return model
    fields = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        **new_model_fields(model_args),
    }
    variant = model_args.variant or "bert"
    if model_args.init_from:
        model = HybridBertForMaskedLM.from_bert(
            start,
            variant=variant,
            copy_ffn_and_norms=model_args.copy_ffn_and_norms,
            **{**converted_settings(model_args, start), **fields},
        )
        if model_args.size and model.config.size != model_args.size:
            raise ValueError(
                f"--size {model_args.size} does not match the --init_from model (size {model.config.size})."
            )
        return model
    config = HybridBertConfig.from_variant(variant, size=model_args.size or "mini", **fields)
    return HybridBertForMaskedLM(config)


# The count given to a token that never occurs in the training blocks, so that its log frequency is finite.
UNSEEN_TOKEN_COUNT = 0.1


def set_unigram_decoder_bias(model: HybridBertForMaskedLM, unigram_counts, tokenizer) -> None:
    """Sets the MLM decoder's bias to the log unigram frequencies of the training tokens (`unigram_counts`: their count
    per token id, counted while the data was prepared; special tokens, never labels, count as unseen), centred. With
    weights near zero the logits are then the bias: the model predicts the unigram distribution, the plateau every MLM
    run first has to reach, before its first step."""
    counts = torch.zeros(model.config.vocab_size, dtype=torch.float64)
    counts[: len(unigram_counts)] = torch.as_tensor(unigram_counts[: model.config.vocab_size], dtype=torch.float64)
    counts[tokenizer.all_special_ids] = 0
    log_frequencies = torch.log((counts + UNSEEN_TOKEN_COUNT) / (counts + UNSEEN_TOKEN_COUNT).sum())
    with torch.no_grad():
        model.get_output_embeddings().bias.copy_(log_frequencies - log_frequencies.mean())
