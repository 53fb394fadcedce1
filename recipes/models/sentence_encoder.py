"""A saved encoder used as a sentence encoder: mean pooling over non-padding tokens (as all-MiniLM-L6-v2 does), batched
encoding of texts. (Every saved folder already loads with `SentenceTransformer(path, trust_remote_code=True)`:
`save_pretrained` writes the sentence-transformers files.)"""

from __future__ import annotations

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
