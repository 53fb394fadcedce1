"""bf16 autocast, the recipe's default where the CPU multiplies bf16 natively, trains every variant along fp32's loss
curve: same initial weights, same batches, a few hundred AdamW steps on a tiny model.

The data is a small synthetic language (a random bigram chain over 24 of the vocabulary's ids, 15% of positions
masked) on which the loss falls from ln(vocab) ≈ 5.4 to 1.8–2.8 within the run, so both curves cover the fast early
descent and a slower tail. Measured here, the mean loss over the last 50 steps differed between bf16 and fp32 by at
most 0.009 (addbert; pool-hybrid 0.004, the others 0.0002 or less), while two fp32 runs from different seeds differed
by 0.0001–0.1. The tolerance, 0.03 (about 1% of the loss), is three times the largest bf16 gap seen: bf16's rounding
passes, a curve that drifts away does not.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import MASK_ID, TINY_VOCAB, tiny_config

from modeling import HybridBertForMaskedLM
from modeling.modeling_hybrid_bert import CPU_FP32_ATTENTION_MAX_LENGTH, SelfAttention
from recipes.training import arguments

STEPS, BATCH, SEQ = 200, 8, 32
LANGUAGE_SIZE = 24
WINDOW = 50  # steps averaged at the start and the end of the curve
TOLERANCE = 0.03


def bigram_batches(steps: int = STEPS, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) batches of sequences where each token is one of two successors of the previous one."""
    generator = torch.Generator().manual_seed(seed)
    words = torch.arange(MASK_ID + 1, MASK_ID + 1 + LANGUAGE_SIZE)
    successors = words[torch.randint(0, LANGUAGE_SIZE, (TINY_VOCAB, 2), generator=generator)]
    count = steps * BATCH
    ids = torch.empty(count, SEQ, dtype=torch.long)
    ids[:, 0] = words[torch.randint(0, LANGUAGE_SIZE, (count,), generator=generator)]
    choices = torch.randint(0, 2, (count, SEQ), generator=generator)
    for position in range(1, SEQ):
        ids[:, position] = successors[ids[:, position - 1], choices[:, position]]
    labelled = torch.rand(count, SEQ, generator=generator) < 0.15
    inputs, labels = ids.masked_fill(labelled, MASK_ID), ids.masked_fill(~labelled, -100)
    return list(zip(inputs.split(BATCH), labels.split(BATCH)))


def loss_curve(variant: str, bf16: bool, batches, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    model = HybridBertForMaskedLM(tiny_config(variant)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, fused=True)
    losses = []
    for input_ids, labels in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return torch.tensor(losses)


@pytest.fixture(scope="module")
def batches():
    return bigram_batches()


@pytest.mark.slow
def test_bf16_follows_the_fp32_loss_curve(variant, batches):
    fp32, bf16 = loss_curve(variant, False, batches), loss_curve(variant, True, batches)
    assert fp32[:WINDOW].mean() - fp32[-WINDOW:].mean() > 0.5, "the run must learn for the comparison to mean much"
    gap = (bf16[-WINDOW:].mean() - fp32[-WINDOW:].mean()).abs().item()
    assert gap < TOLERANCE, f"{variant}: bf16 ends {gap:.4f} away from fp32"


@pytest.mark.parametrize(
    "seq, grad, expected",
    [
        (CPU_FP32_ATTENTION_MAX_LENGTH, True, "fp32"),
        (CPU_FP32_ATTENTION_MAX_LENGTH, False, "bf16"),
        (512, True, "bf16"),
    ],
    ids=["training-short", "inference-short", "training-long"],
)
def test_bf16_self_attention_on_cpu_trains_short_sequences_in_fp32(seq, grad, expected):
    """Training in bf16 on a CPU, self-attention over at most CPU_FP32_ATTENTION_MAX_LENGTH tokens runs in fp32 (its
    kernels are faster there) and returns bf16; inference and longer sequences keep the bf16 kernel."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, seq, 16, generator=generator).bfloat16() for _ in range(3))
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        out = SelfAttention.attend(q, k, v, None, dropout_p=0.0)
    fp32 = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).bfloat16()
    bf16 = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, fp32 if expected == "fp32" else bf16)
    assert not torch.equal(fp32, bf16)  # the two paths are told apart


@pytest.mark.parametrize("native", [False, True])
def test_asking_for_bf16_where_it_is_only_emulated_warns(monkeypatch, native):
    """--bf16 true on a CPU without AVX512-BF16/AMX runs many times slower than fp32: the recipes say so."""
    monkeypatch.setattr(arguments, "native_bf16", lambda device: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arguments.warn_if_bf16_is_emulated(True)
        arguments.warn_if_bf16_is_emulated(False)
    assert [str(warning.message).split(":")[0] for warning in caught] == (
        [] if native else ["--bf16 true on a device without native bf16 matmuls (a CPU without AVX512-BF16 or AMX)"]
    )
