"""HybridBERT models. Importing this package registers them for the Auto classes, so `save_pretrained` writes
`auto_map` and copies the two modeling files: the saved folder loads anywhere with `trust_remote_code=True`."""

from .configuration_hybrid_bert import MIXER_TYPES, SIZES, VARIANTS, HybridBertConfig
from .modeling_hybrid_bert import (
    HybridBertForMaskedLM,
    HybridBertForSequenceClassification,
    HybridBertModel,
    HybridBertPreTrainedModel,
)

HybridBertConfig.register_for_auto_class("AutoConfig")
HybridBertModel.register_for_auto_class("AutoModel")
HybridBertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
HybridBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "MIXER_TYPES",
    "SIZES",
    "VARIANTS",
    "HybridBertConfig",
    "HybridBertPreTrainedModel",
    "HybridBertModel",
    "HybridBertForMaskedLM",
    "HybridBertForSequenceClassification",
]
