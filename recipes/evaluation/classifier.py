"""The classifier fine-tuning trains: from a HybridBERT folder (any head) or an HF BERT converted with `from_bert`, with
the task's labels, and the tokenizer that goes with it."""

from __future__ import annotations

from pathlib import Path

from transformers import BertConfig

from modeling import HybridBertConfig, HybridBertForSequenceClassification
from recipes.data import assets
from recipes.data.input_files import read_config
from recipes.evaluation.finetune_arguments import (
    MODEL_TYPES,
    ModelArguments,
)
from recipes.models.references import folder_tokenizer, model_type
from recipes.models.starting_model import source_settings
from recipes.training.pretrain_arguments import parse_overrides


def read_model_config(model_dir: Path) -> dict:
    config = read_config(model_dir)
    if config.get("model_type") not in MODEL_TYPES:
        raise ValueError(f"{model_dir}: model_type {config.get('model_type')!r} is none of {', '.join(MODEL_TYPES)}.")
    return config


def load_tokenizer(model: str, model_dir: Path):
    # MiniLM's own tokenizer.json pads and truncates everything to 128 tokens (see assets.minilm_dir): use the same
    # vocabulary without those settings, as for any folder saved without a tokenizer.
    return assets.default_tokenizer() if model in assets.NAMED_CHECKPOINTS else folder_tokenizer(model_dir)


def build_classifier(
    model_dir: Path,
    label_names: list[str],
    from_scratch: bool,
    convert_to: str = "bert",
    conversion: dict | None = None,
    classifier_pooling: str | None = None,
) -> HybridBertForSequenceClassification:
    """A classifier with the task's labels in its config, from the folder's weights or (from_scratch) at random init.
    An HF BERT folder is converted with `from_bert` into `convert_to` (with the `conversion` config overrides).
    `classifier_pooling`, when given, replaces the checkpoint's."""
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        **({"classifier_pooling": classifier_pooling} if classifier_pooling is not None else {}),
    }
    if model_type(model_dir) == "bert":
        model = HybridBertForSequenceClassification.from_bert(
            model_dir, variant=convert_to, **(conversion or {}), **labels
        )
        return HybridBertForSequenceClassification(model.config) if from_scratch else model
    if from_scratch:
        return HybridBertForSequenceClassification(HybridBertConfig.from_pretrained(model_dir, **labels))
    # A pretraining run has an MLM head and no pooler or classifier; a fine-tuned folder may have other labels.
    return HybridBertForSequenceClassification.from_pretrained(model_dir, ignore_mismatched_sizes=True, **labels)


def conversion(model_args: ModelArguments, model_dir: Path) -> tuple[str, dict]:
    """The variant an HF BERT --model becomes and the config overrides of its conversion."""
    if model_args.convert_to is None:
        return "bert", {}
    settings = source_settings(BertConfig.from_pretrained(model_dir)) if model_args.keep_source_settings else {}
    return model_args.convert_to, {**settings, **parse_overrides(model_args.convert_overrides)}
