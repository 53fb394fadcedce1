"""HybridBERT: a BERT encoder whose token mixer is chosen per layer.

Mixers: softmax self-attention, Fastformer additive attention (HBERT, Srinivasagan & Ostermann, NAACL 2024 SRW) and
the pooling network of HybridBERT-pool (arXiv 2307.07258, after PoNet). Norm styles: post-LN (BERT), pre-LN and Sub-LN
(Foundation Transformers). DropMask (2307.07258) removes [MASK] tokens from every mixer's keys.

This file travels with every saved model (remote code): it imports only torch and `transformers`' public API.
"""

from __future__ import annotations

import json
import math
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import logging

from .configuration_hybrid_bert import MIXER_SPECS, SIZES, HybridBertConfig

logger = logging.get_logger(__name__)


def softmax_over_keys(scores: torch.Tensor, key_mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Softmax along `dim` (the key axis) where non-key positions get the dtype's most negative finite value.

    `key_mask` is (batch, seq) and `scores` carries the key axis at `dim` with batch first; the model guarantees
    every row has at least one key, so no row is all-masked.
    """
    if key_mask is not None:
        shape = [1] * scores.dim()
        shape[0], shape[dim] = key_mask.shape
        scores = scores.masked_fill(~key_mask.view(shape), torch.finfo(scores.dtype).min)
    return scores.softmax(dim=dim)


class Segments(NamedTuple):
    """The [CLS]/[SEP] structure of a batch of input ids, as PoNet's code derives it (`get_token_type_mask`,
    `get_segment_index`): every [CLS] and [SEP] is a segment of its own, and the tokens between two of them form one.

    is_boundary: (batch, seq) bool, True at [CLS] and [SEP].
    segment_ids: (batch, seq) long, the position at which each token's segment starts (so always < seq).
    """

    is_boundary: torch.Tensor
    segment_ids: torch.Tensor

    @classmethod
    def from_input_ids(cls, input_ids: torch.Tensor, cls_token_id: int, sep_token_id: int) -> Segments:
        is_boundary = (input_ids == cls_token_id) | (input_ids == sep_token_id)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        after_boundary = torch.cat([torch.zeros_like(is_boundary[:, :1]), is_boundary[:, :-1]], dim=1)
        starts = is_boundary | after_boundary | (positions == 0)
        segment_ids = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values
        return cls(is_boundary, segment_ids)


# mixer name (a MixerSpec's) -> its class; each TokenMixer subclass adds itself.
MIXERS: dict[str, type[TokenMixer]] = {}


class TokenMixer(nn.Module):
    """The contract every token mixer keeps. A mixer is one subclass per declared `MixerSpec` (see
    configuration_hybrid_bert.py), registered by naming its spec:
    `class PoolingMixer(TokenMixer, mixer_type="pooling")`.

    - `__init__(config)`: built from the model's `HybridBertConfig`; sets `uses_segments` if its forward reads them.
    - `forward(hidden, key_mask, output_attentions=False, segments=None) -> (out, weights)`: `hidden` is
      (batch, seq, width); `key_mask` (batch, seq) bool marks the positions it may read as keys (None: all of them);
      `segments` is the batch's `Segments` when `uses_segments`, else None. `out` is (batch, seq, width) and must not
      depend on non-key positions; `weights` is a tensor when `output_attentions`, else None.
    - `value_path`: names of its `nn.Linear` attributes that carry the tokens' values linearly into `out` (an
      attribute may be None); Sub-LN starts them scaled.
    - `init_own_parameters(std)`: initialises parameters that are not inside an `nn.Linear`, `nn.Embedding` or
      `nn.LayerNorm` (the model's `_init_weights` handles those).
    """

    mixer_type: str
    value_path: tuple[str, ...] = ()
    uses_segments: bool = False

    def __init_subclass__(cls, mixer_type: str, **kwargs):
        super().__init_subclass__(**kwargs)
        if mixer_type not in MIXER_SPECS:
            raise ValueError(
                f"{cls.__name__}: no mixer named {mixer_type!r} is declared; declare it first with "
                f"register_mixer_spec(MixerSpec(name={mixer_type!r}, ...)). Declared: {', '.join(MIXER_SPECS)}."
            )
        if mixer_type in MIXERS:
            existing = MIXERS[mixer_type].__name__
            raise ValueError(f"{cls.__name__}: mixer {mixer_type!r} already has a class, {existing}.")
        cls.mixer_type = mixer_type
        MIXERS[mixer_type] = cls

    def init_own_parameters(self, std: float) -> None:
        """Initialise the parameters `_init_weights` does not reach (none by default)."""

    def forward(
        self,
        hidden: torch.Tensor,
        key_mask: torch.Tensor | None,
        output_attentions: bool = False,
        segments: Segments | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward.")


# The longest sequence at which bf16 training on a CPU runs its self-attention in fp32 (`SelfAttention.attend`).
CPU_FP32_ATTENTION_MAX_LENGTH = 256


class SelfAttention(TokenMixer, mixer_type="self"):
    """Softmax self-attention (Vaswani et al., 2017). Per head, with Q = XW_q, K = XW_k, V = XW_v of head size d:

        A = softmax(Q Kᵀ / √d + M),   out = A V

    where M is a large finite negative at non-key columns (padding, and [MASK] under DropMask). Quadratic in length.
    Runs through `scaled_dot_product_attention` unless the config asks for "eager" or attention weights are requested.
    """

    value_path = ("value",)

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden, key_mask, output_attentions=False, segments=None):
        batch, seq, width = hidden.shape
        q, k, v = (
            proj(hidden).view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        column_mask = key_mask[:, None, None, :] if key_mask is not None else None
        weights = None
        if output_attentions or self.config._attn_implementation == "eager":
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)
            if column_mask is not None:
                scores = scores.masked_fill(~column_mask, torch.finfo(scores.dtype).min)
            weights = scores.softmax(dim=-1)
            out = self.dropout(weights) @ v
        else:
            out = self.attend(q, k, v, column_mask, dropout_p=self.dropout.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(batch, seq, width), weights

    @staticmethod
    def attend(q, k, v, column_mask, dropout_p: float) -> torch.Tensor:
        """`scaled_dot_product_attention`, in fp32 when training bf16 on a CPU at up to
        `CPU_FP32_ATTENTION_MAX_LENGTH` tokens: there PyTorch's bf16 attention kernels (the flash kernel's backward)
        take about twice as long as fp32's, casts included, while from ~300 tokens bf16 is the faster."""
        if (
            q.device.type == "cpu"
            and q.dtype == torch.bfloat16
            and torch.is_grad_enabled()
            and q.shape[-2] <= CPU_FP32_ATTENTION_MAX_LENGTH
        ):
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=column_mask, dropout_p=dropout_p
                )
            return out.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=column_mask, dropout_p=dropout_p)


class AdditiveAttention(TokenMixer, mixer_type="additive"):
    """Fastformer additive attention (Wu et al., 2021) as HBERT §3.1 uses it. Per head, with q_i, k_i, v_i ∈ R^d
    from Q = XW_q, K = XW_k, V = XW_v and learned per-head scoring vectors w_q, w_k ∈ R^d:

        α_i = softmax_i(w_qᵀ q_i / √d),   q_g = Σ_i α_i q_i
        p_i = q_g ∘ k_i
        β_i = softmax_i(w_kᵀ p_i / √d),   k_g = Σ_i β_i p_i
        u_i = k_g ∘ v_i
        out_i = W_r u_i + q_i

    Softmaxes and sums run over key positions only. Linear in length. With `additive_shared_query_value`, v_i = q_i
    (no W_v), as in Fastformer's reference code.

    With `additive_full_width_scores`, as in the reference code (`query_att`, `key_att`: Linear(hidden, heads)),
    each head's scores read the whole vector instead of the head's slice: α_i^h = softmax_i(w_q^hᵀ [q_i^1; …; q_i^n]
    / √d) and β_i^h = softmax_i(w_k^hᵀ [p_i^1; …; p_i^n] / √d) with w_q^h, w_k^h ∈ R^H. The reference's Linear also
    has a bias, a constant per head that the softmax cancels; it is left out.
    """

    value_path = ("value", "transform")

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.full_width_scores = config.additive_full_width_scores
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = None if config.additive_shared_query_value else nn.Linear(config.hidden_size, config.hidden_size)
        if self.full_width_scores:
            self.query_score = nn.Linear(config.hidden_size, self.num_heads, bias=False)
            self.key_score = nn.Linear(config.hidden_size, self.num_heads, bias=False)
        else:
            self.query_score = nn.Parameter(torch.empty(self.num_heads, self.head_size))
            self.key_score = nn.Parameter(torch.empty(self.num_heads, self.head_size))
        self.transform = nn.Linear(config.hidden_size, config.hidden_size)

    def init_own_parameters(self, std: float) -> None:
        if not self.full_width_scores:
            init.normal_(self.query_score, mean=0.0, std=std)
            init.normal_(self.key_score, mean=0.0, std=std)

    def score(self, vectors: torch.Tensor, scoring: nn.Linear | nn.Parameter) -> torch.Tensor:
        """(batch, seq, heads, d) → (batch, seq, heads) scores, before the 1/√d scale."""
        if self.full_width_scores:
            return scoring(vectors.flatten(2))
        return (vectors * scoring).sum(-1)

    def forward(self, hidden, key_mask, output_attentions=False, segments=None):
        batch, seq, width = hidden.shape
        heads = (batch, seq, self.num_heads, self.head_size)
        scale = 1.0 / math.sqrt(self.head_size)
        query = self.query(hidden)
        q, k = query.view(heads), self.key(hidden).view(heads)
        v = q if self.value is None else self.value(hidden).view(heads)

        # Elementwise products and sums over the (batch, seq, heads, head_size) views: no permuted copies.
        alpha = softmax_over_keys(self.score(q, self.query_score) * scale, key_mask, dim=1)
        q_global = (alpha[..., None] * q).sum(1)
        p = k * q_global[:, None]
        beta = softmax_over_keys(self.score(p, self.key_score) * scale, key_mask, dim=1)
        k_global = (beta[..., None] * p).sum(1)
        u = (v * k_global[:, None]).reshape(batch, seq, width)
        out = self.transform(u) + query
        weights = torch.stack([alpha, beta], dim=1).permute(0, 3, 1, 2) if output_attentions else None
        return out, weights


class PoolingMixer(TokenMixer, mixer_type="pooling"):
    """Pooling network of HybridBERT-pool (2307.07258) after PoNet (Tan et al., 2021): global aggregation plus local
    max-pooling, fused as PoNet does. Per head, with q_i, k_i, v_i, o_i ∈ R^d from XW_q, XW_k, XW_v, XW_o:

        q̄ = mean_i q_i
        a_j = softmax_j(q̄ᵀ k_j / √d),   g = Σ_j a_j v_j            (global aggregation)
        l_i = max_{j : |j − i| ≤ w} v_j   (elementwise)           (local max-pooling, w = (kernel − 1) / 2)
        y_i = g ∘ o_i + l_i

    Mean, softmax and max run over key positions only (a position with no key in its window gets l_i = 0).
    Linear in length.

    Options that follow PoNet's code (`models/modeling_ponet.py`) where it departs from these equations:
    - `pooling_local_projection`: l_i = max_j (W_l x_j) with its own W_l (`dense_local`) instead of v_j.
    - `pooling_key_as_value`: g = Σ_j a_j k_j (the code's value is its key); with the option above there is no W_v.
    - `pooling_skip_boundaries`: [CLS] and [SEP] are in no window, and at [CLS]/[SEP] themselves l_i = s_i = 0.
    - `pooling_segment_max`: s_i = max_{j ∈ segment(i)} W_s x_j (`dense_segment`), y_i = (g + s_i) ∘ o_i + l_i.
      Segments come from the input ids' [CLS]/[SEP] (`Segments`), as PoNet's model derives them when it is given no
      `segment_ids`; PoNet's pretraining data also passes one segment per corpus sentence, which this model does not
      take (its pretraining blocks mark only document boundaries, with [SEP]).
    The max over a segment, like the local one, runs over key positions only (0 for a segment without one).
    """

    value_path = ("value", "gate", "local", "segment")

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.kernel_size = config.pooling_kernel_size
        self.key_as_value = config.pooling_key_as_value
        self.skip_boundaries = config.pooling_skip_boundaries
        self.uses_segments = config.pooling_skip_boundaries or config.pooling_segment_max
        width = config.hidden_size
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        value_used = not (config.pooling_key_as_value and config.pooling_local_projection)
        self.value = nn.Linear(width, width) if value_used else None
        self.gate = nn.Linear(width, width)
        self.local = nn.Linear(width, width) if config.pooling_local_projection else None
        self.segment = nn.Linear(width, width) if config.pooling_segment_max else None

    def forward(self, hidden, key_mask, output_attentions=False, segments=None):
        batch, seq, width = hidden.shape
        heads = (batch, seq, self.num_heads, self.head_size)
        q, k, o = (proj(hidden).view(heads) for proj in (self.query, self.key, self.gate))
        value = self.value(hidden) if self.value is not None else None
        v = k if self.key_as_value else value.view(heads)

        if key_mask is None:
            q_mean = q.mean(dim=1)
        else:
            uniform_over_keys = (key_mask / key_mask.sum(dim=1, keepdim=True)).to(q.dtype)
            q_mean = (uniform_over_keys[..., None, None] * q).sum(1)
        scores = (k * q_mean[:, None]).sum(-1) / math.sqrt(self.head_size)
        a = softmax_over_keys(scores, key_mask, dim=1)
        global_term = (a[..., None] * v).sum(1)[:, None]  # g, then g + s_i with the segment branch

        candidates = key_mask
        if self.skip_boundaries:
            candidates = ~segments.is_boundary if key_mask is None else key_mask & ~segments.is_boundary
        local = self.local_max(self.local(hidden) if self.local is not None else value, candidates)
        if self.skip_boundaries:
            local = local.masked_fill(segments.is_boundary[..., None], 0.0)
        if self.segment is not None:
            segment = self.segment_max(self.segment(hidden), segments.segment_ids, candidates)
            global_term = global_term + segment.view(heads)
        out = (o * global_term).reshape(batch, seq, width) + local
        weights = a.transpose(1, 2) if output_attentions else None
        return out, weights

    def local_max(self, values: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        """Elementwise max of `values` over each position's window, among `candidates` (0 where there is none)."""
        padding = self.kernel_size // 2
        if candidates is not None:
            values = values.masked_fill(~candidates[..., None], float("-inf"))
        pooled = F.max_pool1d(values.transpose(1, 2), self.kernel_size, stride=1, padding=padding).transpose(1, 2)
        if candidates is not None:
            has_candidate = F.max_pool1d(candidates[:, None].to(values.dtype), self.kernel_size, 1, padding)[:, 0] > 0
            pooled = pooled.masked_fill(~has_candidate[..., None], 0.0)
        return pooled

    @staticmethod
    def segment_max(values: torch.Tensor, segment_ids: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        """Elementwise max of `values` over each position's segment, among `candidates` (0 where there is none)."""
        if candidates is not None:
            values = values.masked_fill(~candidates[..., None], float("-inf"))
        index = segment_ids[..., None].expand_as(values)
        per_segment = torch.full_like(values, float("-inf")).scatter_reduce(1, index, values, reduce="amax")
        pooled = per_segment.gather(1, index)
        return pooled.masked_fill(pooled == float("-inf"), 0.0)


def sinusoidal_embeddings(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Fixed positional encodings (Vaswani et al., 2017): sin at even features, cos at odd ones."""
    inv_freq = torch.exp(torch.arange(0, width, 2, device=positions.device) * (-math.log(10000.0) / width))
    angles = positions[..., None].float() * inv_freq
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class HybridBertEmbeddings(nn.Module):
    """Word + token-type + position embeddings, then LayerNorm and dropout (as BERT)."""

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        if config.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(seq, device=device)[None]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq), dtype=torch.long, device=device)
        if self.config.position_embedding_type == "absolute":
            positions = self.position_embeddings(position_ids)
        else:
            positions = self.config.sinusoidal_amplitude * sinusoidal_embeddings(position_ids, self.config.hidden_size)
            positions = positions.to(inputs_embeds.dtype)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids) + positions
        return self.dropout(self.norm(embeddings))


class HybridBertLayer(GradientCheckpointingLayer):
    """One encoder layer: token mixer, then feed-forward network, each in a residual branch.

    post (BERT):  h = LN(h + Drop(W_out · Mixer(h)));          h = LN(h + Drop(W_2 · act(W_1 h)))
    pre:          h = h + Drop(W_out · Mixer(LN(h)));          h = h + Drop(W_2 · act(W_1 LN(h)))
    sub (Sub-LN): h = h + Drop(W_out · LN(Mixer(LN(h))));      h = h + Drop(W_2 · LN(act(W_1 LN(h))))

    Sub-LN also uses torchscale's init: the value path of the mixer (`value_path`), W_out, W_1 and W_2 start with
    weights scaled by γ = sqrt(log 2N) for N layers.
    """

    def __init__(self, config: HybridBertConfig, mixer_type: str):
        super().__init__()
        self.post_norm = config.norm_style == "post"
        sub_ln = config.norm_style == "sub"
        width, ffn_width = config.hidden_size, config.intermediate_size
        if mixer_type not in MIXERS:
            raise ValueError(f"Mixer {mixer_type!r} is declared but has no TokenMixer class registered under its name.")
        self.mixer = MIXERS[mixer_type](config)
        self.mixer_sub_norm = nn.LayerNorm(width, eps=config.layer_norm_eps) if sub_ln else nn.Identity()
        self.mixer_output = nn.Linear(width, width)
        self.mixer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(width, ffn_width, bias=config.ffn_bias)
        self.activation = ACT2FN[config.hidden_act]
        self.ffn_sub_norm = nn.LayerNorm(ffn_width, eps=config.layer_norm_eps) if sub_ln else nn.Identity()
        self.ffn_out = nn.Linear(ffn_width, width, bias=config.ffn_bias)
        self.ffn_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if sub_ln:
            value_path = [getattr(self.mixer, name) for name in self.mixer.value_path]
            for linear in [*value_path, self.mixer_output, self.ffn_in, self.ffn_out]:
                if linear is not None:
                    linear.init_scale = math.sqrt(math.log(2 * config.num_hidden_layers))

    def forward(
        self,
        hidden: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        segments: Segments | None = None,
    ):
        mixer_input = hidden if self.post_norm else self.mixer_norm(hidden)
        mixed, weights = self.mixer(mixer_input, key_mask, output_attentions, segments)
        hidden = hidden + self.dropout(self.mixer_output(self.mixer_sub_norm(mixed)))
        if self.post_norm:
            hidden = self.mixer_norm(hidden)
        ffn = self.activation(self.ffn_in(hidden if self.post_norm else self.ffn_norm(hidden)))
        hidden = hidden + self.dropout(self.ffn_out(self.ffn_sub_norm(ffn)))
        if self.post_norm:
            hidden = self.ffn_norm(hidden)
        return hidden, weights


class HybridBertPooler(nn.Module):
    """BERT's pooler: tanh(W h_[CLS])."""

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class HybridBertLMHead(nn.Module):
    """BERT's MLM head: dense → activation → LayerNorm → decoder tied to the word embeddings (+ bias)."""

    def __init__(self, config: HybridBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.activation(self.dense(hidden))))


# Every saved folder serves every Auto class, whichever head was saved (an MLM checkpoint feeds `AutoModel` for
# feature extraction and `AutoModelForSequenceClassification` for fine-tuning).
AUTO_MAP = {
    "AutoConfig": "configuration_hybrid_bert.HybridBertConfig",
    "AutoModel": "modeling_hybrid_bert.HybridBertModel",
    "AutoModelForMaskedLM": "modeling_hybrid_bert.HybridBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_hybrid_bert.HybridBertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_hybrid_bert.HybridBertForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_hybrid_bert.HybridBertForQuestionAnswering",
}
# sentence-transformers reads these beside the weights: the encoder (module 0, this folder) then mean pooling over the
# non-padding tokens (module 1), the pooling the sentence-transformers models the zoo builds on (all-MiniLM-L6-v2) use.
SENTENCE_TRANSFORMERS_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
]


def write_sentence_transformers_files(folder: str | os.PathLike, config: HybridBertConfig) -> None:
    """modules.json, sentence_bert_config.json and 1_Pooling/config.json: `SentenceTransformer(folder,
    trust_remote_code=True)` then loads the folder as an encoder with mean pooling."""
    folder = os.fspath(folder)
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    pooling = {
        "word_embedding_dimension": config.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    files = {
        "modules.json": SENTENCE_TRANSFORMERS_MODULES,
        "sentence_bert_config.json": {"max_seq_length": config.max_position_embeddings, "do_lower_case": False},
        os.path.join("1_Pooling", "config.json"): pooling,
    }
    for name, content in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)


class HybridBertPreTrainedModel(PreTrainedModel):
    config_class = HybridBertConfig
    base_model_prefix = "hybrid_bert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["HybridBertLayer"]

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers guesses this from the source text; each SelfAttention reads config._attn_implementation at
        # call time, so `model.set_attn_implementation("eager" | "sdpa")` is safe at any moment.
        return True

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing what every saved folder serves: `auto_map` for every head, the
        sentence-transformers files, and dense MLM logits (`sparse_prediction` off in the saved config: a training
        recipe that wants the sparse head turns it on for its own run)."""
        self.config.auto_map = AUTO_MAP
        if kwargs.get("is_main_process", True):
            write_sentence_transformers_files(save_directory, self.config)
        sparse_prediction, self.config.sparse_prediction = self.config.sparse_prediction, False
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.sparse_prediction = sparse_prediction

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std * getattr(module, "init_scale", 1.0))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TokenMixer):
            module.init_own_parameters(std)

    @classmethod
    def from_bert(
        cls,
        source,
        variant: str = "bert",
        copy_ffn_and_norms: bool = True,
        output_loading_info: bool = False,
        **config_overrides,
    ):
        """Build a HybridBERT model from an HF BERT (`BertModel`, `BertForMaskedLM`, … instance or directory).

        The `bert` variant takes every field of the source config and all its weights: it computes the same function.
        A hybrid variant takes the source's dimensions and, as HBERT §4.4 initialises from a pretrained BERT, copies
        every weight that has a counterpart: the word and token-type embeddings, the position embeddings when both
        sides learn them, each self-attention layer (Q, K, V and its output projection) at the same index, and, with
        `copy_ffn_and_norms` (default), every FFN and the LayerNorms. FFN weights are copied whatever the activation;
        a bias-free FFN (`ffn_bias=False`) drops BERT's FFN biases. Additive and pooling mixers, and Sub-LN's inner
        norms, have no counterpart and keep their fresh init.

        BERT's post-LN norms go to the norm that feeds the same sub-layer. For a post-LN target that is the same
        place; for pre-LN and Sub-LN, layer i's `attention.output.LayerNorm` normalises the input of layer i's FFN
        (→ `ffn_norm`) and its `output.LayerNorm` the input of layer i+1's mixer (→ `mixer_norm` of layer i+1, and
        `final_norm` after the last layer). Layer 0's `mixer_norm` stays new: its input is the embeddings' LayerNorm
        output, which post-LN does not normalise again.

        Returns the model, or `(model, info)` with `output_loading_info=True`, where info lists `copied`,
        `copied_from` (target weight → source weight), `newly_initialized` (target weights left at their fresh init),
        `unused` (source weights with no counterpart) and `dropped_biases` (the unused FFN biases a bias-free target
        has no place for). Newly initialised weights are also logged.
        """
        bert = _load_bert(source)
        source_config = bert.config
        shared = [
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "pad_token_id", "initializer_range", "layer_norm_eps",
        ]  # fmt: skip
        if variant == "bert":
            shared += ["hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"]
        fields = {name: getattr(source_config, name) for name in shared}
        label_fields = ("num_labels", "id2label", "label2id")
        if type(bert).__name__.endswith(LABELLED_BERT_HEADS) and not any(
            name in config_overrides for name in label_fields
        ):
            fields.update(id2label=source_config.id2label, label2id=source_config.label2id)
        size = next((name for name, dims in SIZES.items() if all(fields[k] == v for k, v in dims.items())), None)
        config = HybridBertConfig.from_variant(variant, size=size or "base", **{**fields, **config_overrides})
        config.size = size
        model = cls(config)

        target_state = model.state_dict()
        prefix = f"{cls.base_model_prefix}." if hasattr(model, cls.base_model_prefix) else ""
        copied, copied_from, unused, dropped_biases = {}, {}, [], []
        for source_key, tensor in bert.state_dict().items():
            target_key = _bert_key_to_hybrid(source_key, config, copy_ffn_and_norms, prefix)
            if target_key is None or target_key not in target_state or target_state[target_key].shape != tensor.shape:
                unused.append(source_key)
                if target_key and ".ffn_" in target_key and target_key.endswith(".bias") and not config.ffn_bias:
                    dropped_biases.append(source_key)
            else:
                copied[target_key] = tensor
                copied_from[target_key] = source_key
        model.load_state_dict(copied, strict=False)
        model.tie_weights()
        tied = set(getattr(model, "_tied_weights_keys", None) or {})
        newly_initialized = [key for key in target_state if key not in copied and key not in tied]
        if newly_initialized:
            logger.warning(
                f"{cls.__name__}.from_bert({variant!r}): {len(newly_initialized)} weights have no BERT counterpart "
                f"and are newly initialised: {', '.join(newly_initialized)}"
            )
        model.eval()  # as from_pretrained leaves it
        if output_loading_info:
            info = {"copied": sorted(copied), "copied_from": copied_from, "newly_initialized": newly_initialized}
            return model, {**info, "unused": unused, "dropped_biases": dropped_biases}
        return model


# BERT heads whose labels (`id2label`) travel with their classifier weights.
LABELLED_BERT_HEADS = ("ForSequenceClassification", "ForTokenClassification")


def _load_bert(source):
    """An HF BERT instance as given, or loaded from a directory (or Hub id) with the head its config names, so that
    heads with a HybridBERT counterpart (MLM, sequence and token classification, question answering) are copied."""
    if isinstance(source, (str, os.PathLike)):
        import transformers

        config = transformers.AutoConfig.from_pretrained(source)
        if config.model_type != "bert":
            raise ValueError(f"from_bert expects an HF BERT model or directory, got model_type={config.model_type!r}.")
        architecture = (config.architectures or ["BertModel"])[0]
        loader = getattr(transformers, architecture, transformers.AutoModel)
        source = loader.from_pretrained(source, attn_implementation="eager")
    if getattr(source.config, "model_type", None) != "bert":
        raise ValueError(
            f"from_bert expects an HF BERT model or directory, got model_type={source.config.model_type!r}."
        )
    return source


def _bert_key_to_hybrid(key: str, config: HybridBertConfig, copy_ffn_and_norms: bool, base: str) -> str | None:
    """Name in HybridBERT (base model under the prefix `base`) of an HF BERT weight, or None if it is not copied."""
    key = key.removeprefix("bert.")
    parts = key.split(".")
    if parts[0] == "embeddings":
        if parts[1] == "LayerNorm":
            return f"{base}embeddings.norm.{parts[2]}" if copy_ffn_and_norms else None
        if parts[1] == "position_embeddings" and config.position_embedding_type != "absolute":
            return None
        return base + key
    if parts[0] == "encoder":
        target = _bert_layer_module_to_hybrid(int(parts[2]), ".".join(parts[3:-1]), config, copy_ffn_and_norms)
        return f"{base}{target}.{parts[-1]}" if target else None
    if parts[0] == "pooler":
        return base + key
    head_keys = {
        "cls.predictions.transform.dense": "lm_head.dense",
        "cls.predictions.transform.LayerNorm": "lm_head.norm",
        "cls.predictions.decoder": "lm_head.decoder",
    }
    if key == "cls.predictions.bias":
        return "lm_head.decoder.bias"
    module, _, param = key.rpartition(".")
    if module in ("classifier", "qa_outputs"):  # the same names and shapes in BERT's and HybridBERT's heads
        return key
    return f"{head_keys[module]}.{param}" if module in head_keys else None


_BERT_SELF_ATTENTION = {
    "attention.self.query": "mixer.query",
    "attention.self.key": "mixer.key",
    "attention.self.value": "mixer.value",
    "attention.output.dense": "mixer_output",
}
_BERT_FFN = {"intermediate.dense": "ffn_in", "output.dense": "ffn_out"}


def _bert_layer_module_to_hybrid(
    index: int, module: str, config: HybridBertConfig, copy_ffn_and_norms: bool
) -> str | None:
    """The HybridBERT module (under the base model) that takes BERT layer `index`'s `module`, or None.

    Self-attention goes to self-attention layers only. Post-LN norms go to the norm feeding the same sub-layer: in
    place for a post-LN target; for pre-LN/Sub-LN, `attention.output.LayerNorm` feeds this layer's FFN and
    `output.LayerNorm` the next layer's mixer (the final norm after the last layer).
    """
    if module in _BERT_SELF_ATTENTION:
        return f"layers.{index}.{_BERT_SELF_ATTENTION[module]}" if config.mixer_types[index] == "self" else None
    if not copy_ffn_and_norms:
        return None
    if module in _BERT_FFN:
        return f"layers.{index}.{_BERT_FFN[module]}"
    post_norm = config.norm_style == "post"
    if module == "attention.output.LayerNorm":
        return f"layers.{index}.{'mixer_norm' if post_norm else 'ffn_norm'}"
    if module == "output.LayerNorm":
        if post_norm:
            return f"layers.{index}.ffn_norm"
        return "final_norm" if index == config.num_hidden_layers - 1 else f"layers.{index + 1}.mixer_norm"
    return None


class HybridBertModel(HybridBertPreTrainedModel):
    """The bare HybridBERT encoder: embeddings, one `HybridBertLayer` per entry of `config.mixer_types`, a final
    LayerNorm for pre-/Sub-LN, and BERT's pooler (optional)."""

    def __init__(self, config: HybridBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = HybridBertEmbeddings(config)
        self.layers = nn.ModuleList(HybridBertLayer(config, mixer) for mixer in config.mixer_types)
        self.uses_segments = any(layer.mixer.uses_segments for layer in self.layers)
        self.final_norm = (
            nn.Identity()
            if config.norm_style == "post"
            else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        )
        self.pooler = HybridBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def key_mask(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(batch, seq) bool: which positions every mixer may attend to; None when all may (the fast path).

        Keys are the non-padding positions, minus [MASK] tokens under DropMask. A row left without keys falls back:
        an all-[MASK] row keeps its [MASK] tokens as keys, and an all-padding row attends to every position (its
        outputs are finite but meaningless). A mask that lets every position through is dropped only in eager mode on
        the CPU: elsewhere, reading it back would stall the device or break the compiled graph, and an all-True mask
        gives the same outputs.
        """
        keys = attention_mask.bool() if attention_mask is not None else None
        if self.config.drop_mask:
            if input_ids is None:
                raise ValueError(
                    "drop_mask=True needs input_ids to find [MASK] tokens; inputs_embeds alone is not enough."
                )
            kept = input_ids != self.config.mask_token_id
            if keys is not None:
                kept = kept & keys
            fallback = keys if keys is not None else torch.ones_like(kept)
            keys = torch.where(kept.any(dim=-1, keepdim=True), kept, fallback)
        if keys is None:
            return None
        keys = keys | ~keys.any(dim=-1, keepdim=True)
        if keys.device.type == "cpu" and not torch.compiler.is_compiling() and bool(keys.all()):
            return None
        return keys

    def segments(self, input_ids: torch.Tensor | None) -> Segments | None:
        """The batch's [CLS]/[SEP] segments when some layer's mixer reads them, else None."""
        if not self.uses_segments:
            return None
        if input_ids is None:
            raise ValueError(
                "This model's pooling layers read [CLS]/[SEP] from input_ids (pooling_skip_boundaries or "
                "pooling_segment_max); inputs_embeds alone is not enough."
            )
        return Segments.from_input_ids(input_ids, self.config.cls_token_id, self.config.sep_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        if len(shape) != 2:
            raise ValueError(f"Expected inputs of shape (batch, sequence), got {tuple(shape)}.")
        if shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {shape[1]} exceeds max_position_embeddings={self.config.max_position_embeddings}; "
                "truncate the input (e.g. tokenizer(..., truncation=True))."
            )
        if attention_mask is not None and attention_mask.shape != shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; expected (batch, sequence) = {tuple(shape)}."
            )

        key_mask = self.key_mask(input_ids, attention_mask)
        segments = self.segments(input_ids)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        all_hidden = (hidden,) if output_hidden_states else None
        all_weights = () if output_attentions else None
        for layer in self.layers:
            hidden, weights = layer(hidden, key_mask=key_mask, output_attentions=output_attentions, segments=segments)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_weights += (weights,)
        hidden = self.final_norm(hidden)
        pooled = self.pooler(hidden) if self.pooler is not None else None

        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden, attentions=all_weights
        )
        return output if return_dict else output.to_tuple()


class HybridBertForMaskedLM(HybridBertPreTrainedModel):
    """HybridBERT with BERT's MLM head (decoder tied to the word embeddings).

    With `labels` and `config.sparse_prediction`, the head runs only at labelled positions and `logits` has one row
    per labelled token (in row-major order of `labels`); otherwise `logits` is (batch, seq, vocab). The loss is the
    mean over labelled tokens, or the sum divided by `num_items_in_batch` when the Trainer passes it, so it is the
    same on 1 and N processes and under gradient accumulation.
    """

    _tied_weights_keys = {"lm_head.decoder.weight": "hybrid_bert.embeddings.word_embeddings.weight"}
    accepts_loss_kwargs = True

    def __init__(self, config: HybridBertConfig):
        super().__init__(config)
        self.hybrid_bert = HybridBertModel(config, add_pooling_layer=False)
        self.lm_head = HybridBertLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> MaskedLMOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.hybrid_bert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )  # fmt: skip
        hidden = outputs.last_hidden_state
        if labels is not None and self.config.sparse_prediction:
            labels = labels.reshape(-1)
            labelled = labels != self.config.sparse_pred_ignore_index
            hidden, labels = hidden.reshape(labels.shape[0], -1)[labelled], labels[labelled]
        logits = self.lm_head(hidden)

        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                labels.reshape(-1),
                ignore_index=self.config.sparse_pred_ignore_index,
                reduction="sum",
            )
            if num_items_in_batch is None:
                num_items_in_batch = (labels != self.config.sparse_pred_ignore_index).sum().clamp_min(1)
            loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)

        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


def _masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of `hidden` (batch, sequence, width) over the positions whose mask is 1 (all, without a mask)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask[..., None].to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class HybridBertForSequenceClassification(HybridBertPreTrainedModel):
    """HybridBERT with a classification head on the pooled sequence: BERT's pooled [CLS] output, or with
    `config.classifier_pooling="mean"` the mean of the last hidden states over the attended tokens (then the model
    has no [CLS] pooler). `config.problem_type` picks the loss as in HF: regression (1 label), single-label (integer
    labels) or multi-label (float labels) classification."""

    # The loss is a per-batch mean; Trainer must not rescale it by a token count.
    accepts_loss_kwargs = False

    def __init__(self, config: HybridBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hybrid_bert = HybridBertModel(config, add_pooling_layer=config.classifier_pooling == "cls")
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.hybrid_bert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )  # fmt: skip
        if self.config.classifier_pooling == "mean":
            pooled = _masked_mean(outputs.last_hidden_state, attention_mask)
        else:
            pooled = outputs.pooler_output
        logits = self.classifier(self.dropout(pooled))

        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.squeeze(-1).float())
            elif self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())

        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class HybridBertForTokenClassification(HybridBertPreTrainedModel):
    """HybridBERT with BERT's token-classification head (NER, POS): dropout and a linear layer at every position, no
    pooler. The loss is the mean cross-entropy over tokens whose label is not -100."""

    accepts_loss_kwargs = False

    def __init__(self, config: HybridBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hybrid_bert = HybridBertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.hybrid_bert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1), ignore_index=-100)
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class HybridBertForQuestionAnswering(HybridBertPreTrainedModel):
    """HybridBERT with BERT's extractive question-answering head: a linear layer at every position giving a start and
    an end logit. The loss, as in BERT, is the mean of the start and end cross-entropies; positions outside the
    sequence are clamped to its length and ignored."""

    accepts_loss_kwargs = False

    def __init__(self, config: HybridBertConfig):
        super().__init__(config)
        self.hybrid_bert = HybridBertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.hybrid_bert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )  # fmt: skip
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, ignored)
            end = end_positions.reshape(-1).clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits.float(), start, ignore_index=ignored)
                + F.cross_entropy(end_logits.float(), end, ignore_index=ignored)
            ) / 2
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits.contiguous(),
            end_logits=end_logits.contiguous(),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "HybridBertPreTrainedModel",
    "HybridBertModel",
    "HybridBertForMaskedLM",
    "HybridBertForSequenceClassification",
    "HybridBertForTokenClassification",
    "HybridBertForQuestionAnswering",
]
