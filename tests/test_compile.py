"""`torch.compile(fullgraph=True)`: every variant's encoder and the heads trace into one graph (no graph break), in
training and inference, with and without padding, with DropMask, and compute what the eager model computes.

Graph breaks are found by dynamo's tracing, before any backend runs, so most tests compile with the `eager` backend
(seconds); one slow test runs the real inductor backend on a training step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import MASK_ID, padded_batch, tiny_config

from modeling import HybridBertForMaskedLM, HybridBertForSequenceClassification, HybridBertModel


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test traces from scratch: no compiled graph, guard or recompile count carried over."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def dropmask_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The padded batch with [MASK] tokens among the real tokens, so DropMask takes keys away."""
    input_ids, attention_mask = padded_batch()
    input_ids[:, 1] = MASK_ID
    input_ids[0, 5] = MASK_ID
    return input_ids, attention_mask


def mlm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The original ids at every [MASK] and every fourth real position, -100 elsewhere."""
    positions = torch.arange(input_ids.shape[1])[None]
    labelled = ((input_ids == MASK_ID) | (positions % 4 == 2)) & attention_mask.bool()
    return torch.where(labelled, input_ids, -100)


def compiled_and_eager(model: torch.nn.Module, backend: str = "eager"):
    torch.manual_seed(0)
    return torch.compile(model, fullgraph=True, backend=backend), model


def test_every_variant_encoder_compiles_in_one_graph_training_and_inference(variant):
    """fullgraph=True raises at the first graph break: training with padding (forward and backward) and inference
    without padding each trace whole, under DropMask, and match the eager encoder."""
    model = HybridBertModel(tiny_config(variant, drop_mask=True))
    compiled, eager = compiled_and_eager(model)
    input_ids, attention_mask = dropmask_batch()

    model.train()  # dropout is 0 in the tiny config: compiled and eager outputs stay comparable
    out = compiled(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    out.square().mean().backward()
    compiled_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    expected = eager(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    expected.square().mean().backward()
    torch.testing.assert_close(out, expected)
    assert compiled_grads.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, grad in compiled_grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, msg=name)

    model.eval()
    with torch.inference_mode():
        out = compiled(input_ids=input_ids).last_hidden_state
        torch.testing.assert_close(out, eager(input_ids=input_ids).last_hidden_state)


def test_unpadded_mask_compiles_and_gives_the_unmasked_outputs():
    """Compiled, an all-ones attention mask is kept (dropping it would need a host read inside the graph); the outputs
    equal those without a mask."""
    model = HybridBertModel(tiny_config("pool-hybrid")).eval()
    compiled, eager = compiled_and_eager(model)
    input_ids, _ = padded_batch()
    with torch.inference_mode():
        out = compiled(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
        torch.testing.assert_close(out, eager(input_ids=input_ids).last_hidden_state)


@pytest.mark.parametrize("sparse_prediction", [True, False])
def test_masked_lm_head_compiles_in_one_graph(sparse_prediction):
    """The MLM head too: the sparse head's row selection (a data-dependent number of labelled rows) traces as an
    unbacked size, so loss and logits come out of one graph, as the eager model's."""
    config = tiny_config("hbert-v1", drop_mask=True, sparse_prediction=sparse_prediction)
    model = HybridBertForMaskedLM(config).train()
    compiled, eager = compiled_and_eager(model)
    input_ids, attention_mask = dropmask_batch()
    labels = mlm_labels(input_ids, attention_mask)
    out = compiled(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    out.loss.backward()
    expected = eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(out.loss, expected.loss)
    torch.testing.assert_close(out.logits, expected.logits)


def test_sequence_classification_head_compiles_in_one_graph():
    model = HybridBertForSequenceClassification(tiny_config("pool-hybrid", num_labels=3)).train()
    compiled, eager = compiled_and_eager(model)
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0, 2, 1])
    out = compiled(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    out.loss.backward()
    torch.testing.assert_close(out.loss, eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss)


def inductor_bf16_training_step() -> None:
    """The backend the recipe's --torch_compile uses: inductor generates the training graph of the sparse-head MLM
    model under bf16 autocast in one piece, and its loss matches eager to bf16 precision."""
    model = HybridBertForMaskedLM(tiny_config("hbert-v1", drop_mask=True)).train()
    compiled, eager = compiled_and_eager(model, backend="inductor")
    input_ids, attention_mask = dropmask_batch()
    labels = mlm_labels(input_ids, attention_mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = compiled(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        expected = eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    loss.backward()
    torch.testing.assert_close(loss, expected, atol=2e-2, rtol=2e-2)


@pytest.mark.slow
def test_inductor_compiles_a_bf16_training_step_of_the_sparse_mlm_model():
    """`inductor_bf16_training_step` in a fresh process: inductor's C++ builder imports setuptools, whose distutils
    shim refuses a process in which an earlier test already imported the standard library's distutils."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "tests"), str(root)])}
    code = "import test_compile; test_compile.inductor_bf16_training_step()"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
