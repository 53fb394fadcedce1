"""A saved encoder used as a sentence encoder: mean pooling over non-padding tokens (as all-MiniLM-L6-v2 does), batched
encoding of texts, and the sentence-transformers files that make a saved folder load with
`SentenceTransformer(path, trust_remote_code=True)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, seq, width) → (batch, width): the mean over the positions `attention_mask` keeps (all when None)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


@torch.inference_mode()
def encode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int = 128,
    batch_size: int = 64,
) -> np.ndarray:
    """Mean-pooled last hidden states of `texts` (truncated to `max_length` tokens), float32, one row per text."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        hidden = model(**batch).last_hidden_state
        rows.append(mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def save_sentence_transformer(model_dir: str | Path, max_seq_length: int) -> None:
    """Add sentence-transformers' files (modules.json, sentence_bert_config.json, 1_Pooling/) to a saved encoder folder,
    with mean pooling: sentence-transformers itself writes them, from the folder loaded as its Transformer module."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    remote_code = {"trust_remote_code": True}
    transformer = Transformer(
        str(model_dir),
        model_kwargs=remote_code,
        config_kwargs=remote_code,
        processor_kwargs=remote_code,
        max_seq_length=max_seq_length,
    )
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(model_dir), create_model_card=False)
