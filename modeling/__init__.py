"""HybridBERT models. Importing this package registers them for the Auto classes, so `save_pretrained` writes
`auto_map` and copies the two modeling files: the saved folder loads anywhere with `trust_remote_code=True`."""

from .configuration_hybrid_bert import (
    CLASSIFIER_POOLINGS,
    MIXER_SPECS,
    SIZES,
    VARIANTS,
    HybridBertConfig,
    MixerSpec,
    VariantSpec,
    register_mixer_spec,
    register_variant_spec,
)
from .modeling_hybrid_bert import (
    HybridBertForMaskedLM,
    HybridBertForQuestionAnswering,
    HybridBertForSequenceClassification,
    HybridBertForTokenClassification,
    HybridBertModel,
    HybridBertPreTrainedModel,
    TokenMixer,
)

HybridBertConfig.register_for_auto_class("AutoConfig")
HybridBertModel.register_for_auto_class("AutoModel")
HybridBertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
HybridBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
HybridBertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
HybridBertForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")

__all__ = [
    "CLASSIFIER_POOLINGS",
    "MIXER_SPECS",
    "MixerSpec",
    "register_mixer_spec",
    "VariantSpec",
    "register_variant_spec",
    "TokenMixer",
    "SIZES",
    "VARIANTS",
    "HybridBertConfig",
    "HybridBertPreTrainedModel",
    "HybridBertModel",
    "HybridBertForMaskedLM",
    "HybridBertForSequenceClassification",
    "HybridBertForTokenClassification",
    "HybridBertForQuestionAnswering",
]
