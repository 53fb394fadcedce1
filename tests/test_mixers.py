"""The three token mixers against naive per-token references, their cost, DropMask, Sub-LN and the variant layouts.

The references below are written straight from the equations of the spec, as explicit Python loops over batch rows,
heads and tokens; they read the mixer's weight tensors and never call its helper functions.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import CLS_ID, MASK_ID, SEP_ID, architecture_config, padded_batch, tiny_config
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from modeling import MIXER_SPECS, SIZES, VARIANTS, HybridBertConfig, HybridBertModel
from modeling.modeling_hybrid_bert import MIXERS, AdditiveAttention, PoolingMixer, Segments, SelfAttention

BATCH, SEQ = 3, 9
ROW_LENGTHS = (9, 6, 3)  # real tokens per row; the rest is padding
PER_HEAD_SCORES = {"additive_full_width_scores": False}  # the paper's per-head scoring vectors (not the default)


# ----------------------------------------------------------------------------------------------------------------
# Naive references: loops over rows, heads and tokens, straight from the spec's equations.
# ----------------------------------------------------------------------------------------------------------------


def _project(linear: nn.Linear, x: torch.Tensor) -> list[torch.Tensor]:
    """W x_t + b for every token t of one row x (seq, width), one token at a time."""
    return [linear.weight @ x[t] + linear.bias for t in range(x.shape[0])]


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _keys_of_row(key_mask: torch.Tensor | None, row: int, seq: int) -> list[int]:
    return [j for j in range(seq) if key_mask is None or bool(key_mask[row, j])]


def reference_self_attention(mixer: SelfAttention, x: torch.Tensor, key_mask: torch.Tensor | None):
    """out_i = Σ_{j key} softmax_j(q_i·k_j/√d) v_j per head; returns (out, probs (batch, heads, seq, seq))."""
    batch, seq, width = x.shape
    heads = mixer.num_heads
    d = width // heads
    out = torch.zeros(batch, seq, width, dtype=x.dtype)
    probs = torch.zeros(batch, heads, seq, seq, dtype=x.dtype)
    for b in range(batch):
        keys = _keys_of_row(key_mask, b, seq)
        q, k, v = (_project(linear, x[b]) for linear in (mixer.query, mixer.key, mixer.value))
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            for i in range(seq):
                weights = _softmax([float(q[i][part] @ k[j][part]) / math.sqrt(d) for j in keys])
                for j, weight in zip(keys, weights):
                    probs[b, h, i, j] = weight
                    out[b, i, part] += weight * v[j][part]
    return out, probs


def _score(scoring, h: int, vector: torch.Tensor, part: slice, d: int, full_width: bool) -> float:
    """Head h's score of one token: w_hᵀ over the head's slice, or (full width) over the whole vector."""
    if full_width:
        return float(scoring.weight[h] @ vector) / math.sqrt(d)
    return float(scoring[h] @ vector[part]) / math.sqrt(d)


def reference_additive_attention(
    mixer: AdditiveAttention,
    x: torch.Tensor,
    key_mask: torch.Tensor | None,
    shared_query_value: bool,
    full_width: bool = False,
):
    """HBERT §3.1 / Fastformer per head; returns (out, weights (batch, heads, 2, seq) holding α and β). With
    `full_width`, each head's scores read every head's q_i (for α) and p_i (for β), as Fastformer's code does."""
    batch, seq, width = x.shape
    heads = mixer.num_heads
    d = width // heads
    out = torch.zeros(batch, seq, width, dtype=x.dtype)
    weights = torch.zeros(batch, heads, 2, seq, dtype=x.dtype)
    for b in range(batch):
        keys = _keys_of_row(key_mask, b, seq)
        q = _project(mixer.query, x[b])
        k = _project(mixer.key, x[b])
        v = q if shared_query_value else _project(mixer.value, x[b])
        q_global = torch.zeros(width, dtype=x.dtype)
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            alpha = _softmax([_score(mixer.query_score, h, q[j], part, d, full_width) for j in keys])
            q_global[part] = sum(a * q[j][part] for a, j in zip(alpha, keys))
            for j, a in zip(keys, alpha):
                weights[b, h, 0, j] = a
        p = [q_global * k[t] for t in range(seq)]  # per head: p_t = q_g ∘ k_t
        u = [torch.zeros(width, dtype=x.dtype) for _ in range(seq)]
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            beta = _softmax([_score(mixer.key_score, h, p[j], part, d, full_width) for j in keys])
            k_global = sum(bt * p[j][part] for bt, j in zip(beta, keys))
            for i in range(seq):
                u[i][part] = k_global * v[i][part]
            for j, bt in zip(keys, beta):
                weights[b, h, 1, j] = bt
        for i in range(seq):
            out[b, i] = mixer.transform.weight @ u[i] + mixer.transform.bias + q[i]
    return out, weights


def naive_segments(ids: list[int]) -> list[int]:
    """Segment number of each token: every [CLS]/[SEP] alone, and each run of tokens between them together."""
    labels, segment, after_boundary = [], 0, False
    for t, token in enumerate(ids):
        boundary = token in (CLS_ID, SEP_ID)
        if t > 0 and (boundary or after_boundary):
            segment += 1
        labels.append(segment)
        after_boundary = boundary
    return labels


def _max_over(vectors: list[torch.Tensor], d: int, dtype) -> torch.Tensor:
    """Elementwise max of the vectors, zero when there are none."""
    if not vectors:
        return torch.zeros(d, dtype=dtype)
    result = vectors[0].clone()
    for vector in vectors[1:]:
        result = torch.maximum(result, vector)
    return result


def reference_pooling(
    mixer: PoolingMixer, x: torch.Tensor, key_mask: torch.Tensor | None, config, ids: torch.Tensor | None = None
):
    """Global aggregation + local max-pooling, y_i = g ∘ o_i + l_i, with the config's PoNet-code options: W_l for
    the local max, the key as the global value, [CLS]/[SEP] out of the local windows (and l_i = s_i = 0 at them), and
    y_i = (g + s_i) ∘ o_i + l_i with s_i the max of W_s x_j over i's segment. Segments and boundaries come from `ids`.
    Returns (out, a (batch, heads, seq))."""
    batch, seq, width = x.shape
    heads = mixer.num_heads
    d = width // heads
    half = (config.pooling_kernel_size - 1) // 2
    skip_boundaries, segment_max = config.pooling_skip_boundaries, config.pooling_segment_max
    out = torch.zeros(batch, seq, width, dtype=x.dtype)
    attn = torch.zeros(batch, heads, seq, dtype=x.dtype)
    for b in range(batch):
        keys = _keys_of_row(key_mask, b, seq)
        boundaries = {t for t in range(seq) if ids is not None and int(ids[b, t]) in (CLS_ID, SEP_ID)}
        segment_of = naive_segments(ids[b].tolist()) if ids is not None else [0] * seq
        pooled = [j for j in keys if not (skip_boundaries and j in boundaries)]  # what local and segment max read
        q, k, o = (_project(linear, x[b]) for linear in (mixer.query, mixer.key, mixer.gate))
        v = k if config.pooling_key_as_value else _project(mixer.value, x[b])
        local_source = _project(mixer.local, x[b]) if config.pooling_local_projection else _project(mixer.value, x[b])
        segment_source = _project(mixer.segment, x[b]) if segment_max else None
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            q_mean = sum(q[j][part] for j in keys) / len(keys)
            a = _softmax([float(q_mean @ k[j][part]) / math.sqrt(d) for j in keys])
            g = sum(a_j * v[j][part] for a_j, j in zip(a, keys))
            for j, a_j in zip(keys, a):
                attn[b, h, j] = a_j
            for i in range(seq):
                window = [local_source[j][part] for j in pooled if abs(j - i) <= half]
                local = _max_over(window, d, x.dtype)
                segment = torch.zeros(d, dtype=x.dtype)
                if segment_max:
                    members = [segment_source[j][part] for j in pooled if segment_of[j] == segment_of[i]]
                    segment = _max_over(members, d, x.dtype)
                if skip_boundaries and i in boundaries:
                    local, segment = torch.zeros_like(local), torch.zeros_like(segment)
                out[b, i, part] = (g + segment) * o[i][part] + local
    return out, attn


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: mixers with random float64 weights, inputs and key masks.
# ----------------------------------------------------------------------------------------------------------------


def make_mixer(cls, **overrides):
    """A mixer in float64, every parameter drawn from N(0, 0.4²) so that softmaxes are far from uniform."""
    config = tiny_config("bert", **overrides)
    mixer = cls(config).double().eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in mixer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * 0.4)
    return mixer, config


def make_hidden(seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, SEQ, 32, generator=generator, dtype=torch.float64)


def real_mask() -> torch.Tensor:
    """(batch, seq) bool: True at real (non-padding) tokens, rows of lengths ROW_LENGTHS."""
    return torch.arange(SEQ)[None] < torch.tensor(ROW_LENGTHS)[:, None]


def key_mask_for(case: str) -> torch.Tensor | None:
    """None (every position a key), padding only, or DropMask-style keys: a strict subset of the real tokens.

    The DropMask case drops 5 consecutive tokens in row 0 (so windows of size ≤ 5 around position 3 hold no key),
    two tokens in row 1 and the middle token of row 2.
    """
    if case == "all":
        return None
    keys = real_mask()
    if case == "dropmask":
        keys = keys.clone()
        keys[0, 1:6] = False
        keys[1, [0, 4]] = False
        keys[2, 1] = False
    return keys


def compared_positions(key_mask: torch.Tensor | None) -> torch.Tensor:
    """Real positions (every position when there is no padding); dropped [MASK]-like tokens stay queries."""
    return torch.ones(BATCH, SEQ, dtype=torch.bool) if key_mask is None else real_mask()


MASK_CASES = ["all", "padding", "dropmask"]


# ----------------------------------------------------------------------------------------------------------------
# 1. Vectorised mixers equal the naive references.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_self_attention_matches_naive_reference(case, attn_implementation):
    """Self-attention (SDPA and eager paths) equals the per-token softmax(QKᵀ/√d)V reference at real positions."""
    mixer, config = make_mixer(SelfAttention)
    config._attn_implementation = attn_implementation
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        out, weights = mixer(hidden, key_mask, output_attentions=False)
        expected, _ = reference_self_attention(mixer, hidden, key_mask)
    positions = compared_positions(key_mask)
    torch.testing.assert_close(out[positions], expected[positions], atol=1e-5, rtol=0)
    assert weights is None or attn_implementation == "eager"


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("shared_query_value", [False, True])
def test_additive_attention_matches_naive_reference(case, shared_query_value):
    """Additive attention (α, q_g, p, β, k_g, u, W_r u + q) equals the per-token reference, with and without v = q."""
    mixer, _ = make_mixer(AdditiveAttention, **PER_HEAD_SCORES, additive_shared_query_value=shared_query_value)
    assert (mixer.value is None) == shared_query_value
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        out, _ = mixer(hidden, key_mask)
        expected, _ = reference_additive_attention(mixer, hidden, key_mask, shared_query_value)
    positions = compared_positions(key_mask)
    torch.testing.assert_close(out[positions], expected[positions], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_pooling_mixer_matches_naive_reference(case, kernel_size):
    """The pooling mixer (mean, softmax, g ∘ o_i + windowed max over keys, 0 for a keyless window) equals the reference."""
    mixer, config = make_mixer(PoolingMixer, pooling_kernel_size=kernel_size)
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        out, _ = mixer(hidden, key_mask)
        expected, _ = reference_pooling(mixer, hidden, key_mask, config)
    positions = compared_positions(key_mask)
    torch.testing.assert_close(out[positions], expected[positions], atol=1e-5, rtol=0)


def test_pooling_keyless_window_contributes_zero():
    """With kernel 3, a query whose window has no key gets l_i = 0: its output is exactly g ∘ o_i."""
    mixer, config = make_mixer(PoolingMixer, pooling_kernel_size=3)
    hidden, key_mask = make_hidden(), key_mask_for("dropmask")  # row 0: positions 1..5 dropped
    with torch.no_grad():
        out, _ = mixer(hidden, key_mask)
        expected, _ = reference_pooling(mixer, hidden, key_mask, config)
        shifted = hidden.clone()
        shifted[0, [2, 4]] += 100.0  # the dropped neighbours in position 3's window: irrelevant as keys
        out_shifted, _ = mixer(shifted, key_mask)
    torch.testing.assert_close(out[0, 3], expected[0, 3], atol=1e-5, rtol=0)
    # Position 3 depends on itself (as gate) and on the keys elsewhere; its window's dropped neighbours change nothing.
    torch.testing.assert_close(out_shifted[0, 3], out[0, 3], atol=1e-5, rtol=0)


# The options that follow the reference code, one at a time and all together (the spec's `reference_code`).
POOLING_OPTIONS = {
    "local-projection": {"pooling_local_projection": True},
    "key-as-value": {"pooling_key_as_value": True},
    "skip-boundaries": {"pooling_skip_boundaries": True},
    "segment-max": {"pooling_segment_max": True},
    "ponet-code": MIXER_SPECS["pooling"].reference_code,
}
ADDITIVE_OPTIONS = {
    "full-width": {"additive_full_width_scores": True},
    "full-width-wv": {"additive_full_width_scores": True, "additive_shared_query_value": False},
    "fastformer-code": MIXER_SPECS["additive"].reference_code,
}


def boundary_ids() -> torch.Tensor:
    """(batch, seq) ids with [CLS]/[SEP] where ROW_LENGTHS leaves real tokens (0 at padding): a row with two
    sentences, one that starts without [CLS], and one whose last segment runs on into the padding."""
    c, s, w = CLS_ID, SEP_ID, 7
    return torch.tensor([[c, w, w, s, w, w, w, s, w], [w, w, s, w, w, s, 0, 0, 0], [c, w, w, 0, 0, 0, 0, 0, 0]])


def test_segments_partition_the_ids_as_ponet_does():
    """Segments.from_input_ids groups tokens exactly as PoNet's `get_segment_index` and the naive scan do."""

    def ponet_segment_index(input_ids):  # models/modeling_ponet.py's get_segment_index, with this vocabulary's ids
        mask = (input_ids == CLS_ID).long() + (input_ids == SEP_ID).long()
        mask = mask + torch.cat([torch.zeros_like(mask[:, 0:1]), mask[:, :-1]], dim=1)
        return mask.cumsum(dim=1) - 1

    ids = torch.cat([boundary_ids(), torch.tensor([[s, c, 7, 7, s, s, 7, c, 7] for s, c in [(SEP_ID, CLS_ID)]])])
    segments = Segments.from_input_ids(ids, CLS_ID, SEP_ID)

    def same_segment(labels):
        return labels[:, :, None] == labels[:, None, :]

    naive = torch.tensor([naive_segments(row) for row in ids.tolist()])
    assert torch.equal(same_segment(segments.segment_ids), same_segment(ponet_segment_index(ids)))
    assert torch.equal(same_segment(segments.segment_ids), same_segment(naive))
    assert torch.equal(segments.is_boundary, (ids == CLS_ID) | (ids == SEP_ID))
    assert int(segments.segment_ids.max()) < ids.shape[1]


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("options", list(POOLING_OPTIONS))
def test_pooling_reference_code_options_match_naive_reference(case, options):
    """Each PoNet-code option of the pooling mixer, alone and all together, equals the naive loop, with and without
    padding and dropped keys; the model's Segments feed the mixer, the naive scan of the ids feeds the reference."""
    mixer, config = make_mixer(PoolingMixer, pooling_kernel_size=3, **POOLING_OPTIONS[options])
    hidden, key_mask, ids = make_hidden(), key_mask_for(case), boundary_ids()
    segments = Segments.from_input_ids(ids, CLS_ID, SEP_ID) if mixer.uses_segments else None
    with torch.no_grad():
        out, weights = mixer(hidden, key_mask, output_attentions=True, segments=segments)
        expected, expected_weights = reference_pooling(mixer, hidden, key_mask, config, ids)
    positions = compared_positions(key_mask)
    torch.testing.assert_close(out[positions], expected[positions], atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
    if mixer.value is not None:  # the same weights under the paper's equations give another function
        with torch.no_grad():
            paper, _ = reference_pooling(mixer, hidden, key_mask, tiny_config("bert"), ids)
        assert (expected[positions] - paper[positions]).abs().max() > 1e-2


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("options", list(ADDITIVE_OPTIONS))
def test_additive_full_width_scores_match_naive_reference(case, options):
    """With Fastformer-code scoring (Linear(hidden, heads)), α and β and the output equal the naive loop."""
    overrides = ADDITIVE_OPTIONS[options]
    mixer, config = make_mixer(AdditiveAttention, **overrides)
    assert isinstance(mixer.query_score, nn.Linear)
    assert mixer.query_score.weight.shape == (config.num_attention_heads, config.hidden_size)
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        out, weights = mixer(hidden, key_mask, output_attentions=True)
        expected, expected_weights = reference_additive_attention(
            mixer, hidden, key_mask, config.additive_shared_query_value, full_width=True
        )
    positions = compared_positions(key_mask)
    torch.testing.assert_close(out[positions], expected[positions], atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# 2. Attention weights returned with output_attentions=True.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["padding", "dropmask"])
def test_self_attention_weights_match_reference_and_skip_non_keys(case):
    """Self-attention probabilities are (batch, heads, seq, seq), equal the reference, and are 0 at non-key columns."""
    mixer, _ = make_mixer(SelfAttention)
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        _, weights = mixer(hidden, key_mask, output_attentions=True)
        _, expected = reference_self_attention(mixer, hidden, key_mask)
    assert weights.shape == (BATCH, mixer.num_heads, SEQ, SEQ)
    rows = real_mask()
    torch.testing.assert_close(weights.permute(0, 2, 1, 3)[rows], expected.permute(0, 2, 1, 3)[rows], atol=1e-6, rtol=0)
    assert torch.all(weights.permute(0, 3, 1, 2)[~key_mask] == 0)


@pytest.mark.parametrize("case", ["padding", "dropmask"])
@pytest.mark.parametrize("shared_query_value", [False, True])
def test_additive_weights_are_alpha_and_beta(case, shared_query_value):
    """Additive attention returns (batch, heads, 2, seq) = the reference's α and β, zero at non-key positions."""
    mixer, _ = make_mixer(AdditiveAttention, **PER_HEAD_SCORES, additive_shared_query_value=shared_query_value)
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        _, weights = mixer(hidden, key_mask, output_attentions=True)
        _, expected = reference_additive_attention(mixer, hidden, key_mask, shared_query_value)
    assert weights.shape == (BATCH, mixer.num_heads, 2, SEQ)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    assert torch.all(weights.permute(0, 3, 1, 2)[~key_mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, mixer.num_heads, 2, dtype=weights.dtype))


@pytest.mark.parametrize("case", ["padding", "dropmask"])
def test_pooling_weights_are_global_aggregation_softmax(case):
    """The pooling mixer returns (batch, heads, seq) = the reference's a_j, zero at non-key positions."""
    mixer, config = make_mixer(PoolingMixer)
    hidden, key_mask = make_hidden(), key_mask_for(case)
    with torch.no_grad():
        _, weights = mixer(hidden, key_mask, output_attentions=True)
        _, expected = reference_pooling(mixer, hidden, key_mask, config)
    assert weights.shape == (BATCH, mixer.num_heads, SEQ)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    assert torch.all(weights.permute(0, 2, 1)[~key_mask] == 0)


# ----------------------------------------------------------------------------------------------------------------
# 3. Cost: linear for additive and pooling, quadratic score part for self-attention.
# ----------------------------------------------------------------------------------------------------------------


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def _mixer_flops(mixer, seq: int) -> int:
    hidden = torch.randn(1, seq, 32)
    return _flops(lambda: mixer(hidden, None))


@pytest.mark.parametrize("cls", [AdditiveAttention, PoolingMixer])
def test_linear_mixers_flops_double_with_length(cls):
    """Doubling the length about doubles the FLOPs of additive attention and of the pooling mixer."""
    mixer = cls(tiny_config("bert")).eval()
    short, long = _mixer_flops(mixer, 64), _mixer_flops(mixer, 128)
    assert short > 0
    assert 1.9 <= long / short <= 2.1


def test_self_attention_score_flops_quadruple_with_length():
    """Doubling the length about quadruples self-attention's QKᵀ and AV FLOPs (eager), unlike its projections."""
    config = tiny_config("bert")
    config._attn_implementation = "eager"
    mixer = SelfAttention(config).eval()

    def quadratic_part(seq: int) -> int:
        hidden = torch.randn(1, seq, 32)
        total = _flops(lambda: mixer(hidden, None))
        projections = _flops(lambda: [proj(hidden) for proj in (mixer.query, mixer.key, mixer.value)])
        return total - projections

    short, long = quadratic_part(64), quadratic_part(128)
    assert short > 0
    assert 3.8 <= long / short <= 4.2


# ----------------------------------------------------------------------------------------------------------------
# 4. DropMask in the whole model.
# ----------------------------------------------------------------------------------------------------------------


def _batch_with_masks():
    """padded_batch() with [CLS]/[SEP] (rows of 12, 9 and 6 real tokens) and a few [MASK] tokens among the real ones."""
    input_ids, attention_mask = padded_batch(boundaries=True)
    input_ids = input_ids.clone()
    for row, col in [(0, 2), (0, 5), (1, 0), (1, 7), (2, 3)]:
        input_ids[row, col] = MASK_ID
    return input_ids, attention_mask


def _model(architecture: str, drop_mask: bool, state_dict=None) -> HybridBertModel:
    """A tiny model whose matrices (embeddings, projections, score vectors) are redrawn at std 0.3.

    At the default init (std 0.02) additive attention barely mixes tokens (its scores and k_g are tiny), which
    would make "the [MASK] embedding reaches other tokens" unobservable; larger weights make mixing visible.
    """
    model = HybridBertModel(architecture_config(architecture, drop_mask=drop_mask)).eval()
    if state_dict is None:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() >= 2:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    else:
        model.load_state_dict(state_dict)
    return model


def _run(model, input_ids, attention_mask):
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _perturb_mask_embedding(model):
    with torch.no_grad():
        generator = torch.Generator().manual_seed(3)
        model.embeddings.word_embeddings.weight[MASK_ID] += torch.randn(model.config.hidden_size, generator=generator)


def test_dropmask_hides_mask_embedding_from_other_tokens(architecture):
    """With DropMask on, changing the [MASK] embedding leaves the outputs at every non-[MASK] position unchanged."""
    model = _model(architecture, drop_mask=True)
    input_ids, attention_mask = _batch_with_masks()
    before = _run(model, input_ids, attention_mask)
    _perturb_mask_embedding(model)
    after = _run(model, input_ids, attention_mask)
    others = input_ids != MASK_ID  # real tokens and padding alike
    torch.testing.assert_close(after[others], before[others], atol=1e-5, rtol=0)
    # The [MASK] positions themselves still see their own (changed) embedding as queries.
    assert (after[input_ids == MASK_ID] - before[input_ids == MASK_ID]).abs().max() > 1e-2


def test_without_dropmask_mask_embedding_reaches_other_tokens(architecture):
    """With DropMask off, the same change to the [MASK] embedding clearly alters the other tokens' outputs."""
    model = _model(architecture, drop_mask=False)
    input_ids, attention_mask = _batch_with_masks()
    before = _run(model, input_ids, attention_mask)
    _perturb_mask_embedding(model)
    after = _run(model, input_ids, attention_mask)
    others = (input_ids != MASK_ID) & attention_mask.bool()
    assert (after[others] - before[others]).abs().max() > 1e-2


def test_dropmask_all_mask_rows_give_finite_outputs(architecture):
    """An all-[MASK] row, an all-[MASK]-then-padding row and a padded row together give finite outputs."""
    model = _model(architecture, drop_mask=True)
    input_ids, attention_mask = padded_batch()
    input_ids = input_ids.clone()
    input_ids[0] = MASK_ID  # every token [MASK], no padding
    input_ids[1] = torch.where(attention_mask[1].bool(), MASK_ID, 0)  # every real token [MASK], then padding
    with torch.no_grad():
        output = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    assert torch.isfinite(output.last_hidden_state).all()
    assert torch.isfinite(output.pooler_output).all()
    assert all(torch.isfinite(weights).all() for weights in output.attentions)


def test_dropmask_is_a_no_op_without_mask_tokens(architecture):
    """On text without [MASK] (padded and unpadded), DropMask gives the same outputs as the same weights without it."""
    with_flag = _model(architecture, drop_mask=True)
    without_flag = _model(architecture, drop_mask=False, state_dict=with_flag.state_dict())
    input_ids, attention_mask = padded_batch(boundaries=True)
    assert not (input_ids == MASK_ID).any()
    torch.testing.assert_close(
        _run(with_flag, input_ids, attention_mask), _run(without_flag, input_ids, attention_mask), atol=1e-6, rtol=0
    )
    full = input_ids[:1]
    torch.testing.assert_close(_run(with_flag, full, None), _run(without_flag, full, None), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# 5. Sub-LN: module placement, torchscale init, and where the norms act.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant_name, norm_style, sub_norms, final_norm",
    [("hbert-v1", "sub", True, True), ("bert", "post", False, False), ("bert", "pre", False, True)],
)
def test_norm_modules_sit_where_the_norm_style_says(variant_name, norm_style, sub_norms, final_norm):
    """Sub-LN has LayerNorms at mixer_sub_norm (hidden), ffn_sub_norm (ffn) and final_norm; post/pre use Identity."""
    config = tiny_config(variant_name, norm_style=norm_style)
    model = HybridBertModel(config)
    assert model.config.norm_style == norm_style
    assert isinstance(model.final_norm, nn.LayerNorm) == final_norm
    assert isinstance(model.final_norm, nn.Identity) != final_norm
    for layer in model.layers:
        for name, width in [("mixer_sub_norm", 32), ("ffn_sub_norm", 64)]:
            module = getattr(layer, name)
            if sub_norms:
                assert isinstance(module, nn.LayerNorm) and module.normalized_shape == (width,)
            else:
                assert isinstance(module, nn.Identity)


def _std_close(tensor: torch.Tensor, expected: float, rel: float = 0.05) -> bool:
    return abs(tensor.float().std().item() - expected) <= rel * expected


def test_sub_ln_init_scales_value_path_and_ffn():
    """hbert-v1 (Sub-LN, 12 layers): value path, mixer_output, ffn_in, ffn_out start at std 0.02·sqrt(log 24)."""
    config = HybridBertConfig.from_variant(
        "hbert-v1", "base", hidden_size=256, num_attention_heads=4, intermediate_size=1024,
        vocab_size=211, max_position_embeddings=64,
    )  # fmt: skip
    model = HybridBertModel(config)
    gamma = math.sqrt(math.log(2 * 12))
    scaled_std, plain_std = 0.02 * gamma, 0.02
    assert config.num_hidden_layers == 12
    assert [layer.mixer.__class__ for layer in model.layers[:2]] == [SelfAttention, AdditiveAttention]
    for index, layer in enumerate(model.layers):
        # With the default shared query/value, additive attention has no W_v: its value path is W_r alone.
        scaled = [getattr(layer.mixer, name) for name in type(layer.mixer).value_path]
        scaled = [linear for linear in scaled if linear is not None] + [layer.mixer_output, layer.ffn_in, layer.ffn_out]
        for linear in scaled:
            assert math.isclose(getattr(linear, "init_scale", 1.0), gamma), (index, linear)
            assert _std_close(linear.weight, scaled_std), (index, linear, linear.weight.std().item())
        for linear in (layer.mixer.query, layer.mixer.key):
            assert getattr(linear, "init_scale", 1.0) == 1.0
            assert _std_close(linear.weight, plain_std), (index, linear, linear.weight.std().item())


def test_sub_ln_init_scales_pooling_value_and_gate():
    """Under Sub-LN the pooling mixer's value and gate start scaled by γ, its query and key do not."""
    config = HybridBertConfig.from_variant(
        "pool-hybrid", "base", hidden_size=256, num_attention_heads=4, intermediate_size=256,
        vocab_size=211, max_position_embeddings=64, norm_style="sub",
    )  # fmt: skip
    model = HybridBertModel(config)
    gamma = math.sqrt(math.log(2 * 12))
    pooling_layers = [layer for layer in model.layers if isinstance(layer.mixer, PoolingMixer)]
    assert len(pooling_layers) == 4
    for layer in pooling_layers:
        assert _std_close(layer.mixer.value.weight, 0.02 * gamma)
        assert _std_close(layer.mixer.gate.weight, 0.02 * gamma)
        assert _std_close(layer.mixer.query.weight, 0.02)
        assert _std_close(layer.mixer.key.weight, 0.02)


def test_post_ln_init_is_unscaled():
    """Post-LN BERT keeps every linear at std 0.02 (no torchscale scaling)."""
    config = HybridBertConfig.from_variant(
        "bert", "mini", num_hidden_layers=12, vocab_size=211, max_position_embeddings=64
    )
    model = HybridBertModel(config)
    for layer in model.layers:
        for linear in (layer.mixer.value, layer.mixer_output, layer.ffn_in, layer.ffn_out, layer.mixer.query):
            assert not hasattr(linear, "init_scale")
            assert _std_close(linear.weight, 0.02)


def _randomise_norms(module: nn.Module, seed: int) -> None:
    """Give every LayerNorm a non-trivial affine so that a misplaced norm changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.LayerNorm):
                sub.weight.copy_(1 + 0.5 * torch.randn(sub.weight.shape, generator=generator))
                sub.bias.copy_(0.5 * torch.randn(sub.bias.shape, generator=generator))


@pytest.mark.parametrize("mixer_type", ["self", "additive", "pooling"])
@pytest.mark.parametrize("norm_style", ["post", "pre", "sub"])
def test_layer_follows_its_norm_equation(norm_style, mixer_type):
    """A layer's output equals the post / pre / Sub-LN equation recomputed from its own submodules."""
    config = tiny_config("bert", norm_style=norm_style, num_hidden_layers=1, mixer_types=[mixer_type])
    model = HybridBertModel(config).eval()
    _randomise_norms(model, seed=4)
    layer = model.layers[0]
    hidden = torch.randn(BATCH, SEQ, 32, generator=torch.Generator().manual_seed(5))
    key_mask = real_mask()
    with torch.no_grad():
        got, _ = layer(hidden, key_mask=key_mask)
        if norm_style == "post":
            mid = layer.mixer_norm(hidden + layer.mixer_output(layer.mixer(hidden, key_mask)[0]))
            want = layer.ffn_norm(mid + layer.ffn_out(layer.activation(layer.ffn_in(mid))))
        elif norm_style == "pre":
            mid = hidden + layer.mixer_output(layer.mixer(layer.mixer_norm(hidden), key_mask)[0])
            want = mid + layer.ffn_out(layer.activation(layer.ffn_in(layer.ffn_norm(mid))))
        else:
            mixed = layer.mixer(layer.mixer_norm(hidden), key_mask)[0]
            mid = hidden + layer.mixer_output(layer.mixer_sub_norm(mixed))
            ffn = layer.activation(layer.ffn_in(layer.ffn_norm(mid)))
            want = mid + layer.ffn_out(layer.ffn_sub_norm(ffn))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sub_ln_normalises_mixer_output_before_output_projection():
    """Hooks: under Sub-LN, mixer_output receives exactly mixer_sub_norm(mixer output), and final_norm ends the model."""
    config = tiny_config("hbert-v1")
    model = HybridBertModel(config).eval()
    _randomise_norms(model, seed=6)
    layer = model.layers[1]  # an additive layer
    seen = {}
    hooks = [
        layer.mixer.register_forward_hook(lambda m, args, out: seen.__setitem__("mixer", out[0])),
        layer.mixer_output.register_forward_hook(lambda m, args, out: seen.__setitem__("projected_input", args[0])),
    ]
    input_ids, attention_mask = padded_batch()
    try:
        with torch.no_grad():
            output = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        normalised = layer.mixer_sub_norm(seen["mixer"])
        torch.testing.assert_close(seen["projected_input"], normalised, atol=1e-6, rtol=0)
        assert (seen["projected_input"] - seen["mixer"]).abs().max() > 1e-2  # the norm really did something
        torch.testing.assert_close(
            output.last_hidden_state, model.final_norm(output.hidden_states[-1]), atol=1e-6, rtol=0
        )


# ----------------------------------------------------------------------------------------------------------------
# 6. Variant layouts and settings.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_layout_holds_the_variants_mixers(variant, size):
    """Every variant at every size has one mixer per layer, including every mixer the variant names, and no other."""
    config = HybridBertConfig.from_variant(variant, size)
    required = VARIANTS[variant].required_mixers
    assert len(config.mixer_types) == SIZES[size]["num_hidden_layers"]
    assert set(config.mixer_types) == set(required)


def test_base_layouts_are_exact():
    """At base size: bert all self, addbert all additive, hbert-v1 additive at odd indices, hbert-v2 self at
    0, 1, 10, 11, pool-hybrid self at 0..7 and pooling at 8..11."""
    layouts = {name: HybridBertConfig.from_variant(name, "base").mixer_types for name in VARIANTS}
    assert layouts["bert"] == ["self"] * 12
    assert layouts["addbert"] == ["additive"] * 12
    assert layouts["hbert-v1"] == ["additive" if i % 2 else "self" for i in range(12)]
    assert layouts["hbert-v2"] == ["self" if i in (0, 1, 10, 11) else "additive" for i in range(12)]
    assert layouts["pool-hybrid"] == ["self"] * 8 + ["pooling"] * 4


@pytest.mark.parametrize("size", list(SIZES))
def test_variant_settings(variant, size):
    """HBERT variants: ReLU, no FFN bias, dropout 0.005, sinusoidal positions, Sub-LN; the others vanilla BERT."""
    config = HybridBertConfig.from_variant(variant, size)
    settings = (
        config.hidden_act, config.ffn_bias, config.hidden_dropout_prob, config.attention_probs_dropout_prob,
        config.position_embedding_type, config.norm_style,
    )  # fmt: skip
    if variant.startswith("hbert"):
        assert settings == ("relu", False, 0.005, 0.005, "sinusoidal", "sub")
    else:
        assert settings == ("gelu", True, 0.1, 0.1, "absolute", "post")
    for name, value in SIZES[size].items():
        assert getattr(config, name) == value


def test_variant_settings_reach_the_built_model(variant):
    """A built model follows its variant: FFN biases, activation, learned vs sinusoidal positions, mixers per layer."""
    config = tiny_config(variant)
    model = HybridBertModel(config)
    hbert = variant.startswith("hbert")
    for layer, mixer_type in zip(model.layers, config.mixer_types):
        assert type(layer.mixer) is MIXERS[mixer_type] and layer.mixer.mixer_type == mixer_type
        assert (layer.ffn_in.bias is None) == hbert and (layer.ffn_out.bias is None) == hbert
        assert isinstance(layer.activation, nn.ReLU) == hbert
    assert hasattr(model.embeddings, "position_embeddings") != hbert
