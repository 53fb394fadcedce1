"""recipes/training/mfu.py: model FLOPs counted against the closed form of a BERT, the sparse head counted at its labelled
rows, the measured peak cached per device and dtype, and the recipe's bf16 default."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config
from transformers import BertForMaskedLM

from modeling import HybridBertForMaskedLM
from recipes.models.parameters import hf_bert_config
from recipes.training import mfu
from recipes.training.arguments import bf16_where_native

SEQ = 24


def bert_training_flops_per_token(config, seq: int, head_rows: float) -> float:
    """3 × forward matmul FLOPs per token of a BERT: per layer Q, K, V, output (4 H²) and the FFN (2 H I) at 2 FLOPs
    per multiply-add, plus QKᵀ and AV (2 × 2 seq H); the MLM head's transform (H²) and decoder (H V) on `head_rows`
    of the positions."""
    width, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    encoder = layers * (2 * (4 * width**2 + 2 * width * ffn) + 4 * seq * width)
    head = 2 * (width**2 + width * config.vocab_size)
    return 3 * (encoder + head_rows * head)


@pytest.mark.parametrize("sparse_prediction, head_rows", [(True, 0.15), (False, 1.0)])
def test_bert_flops_match_the_closed_form(sparse_prediction, head_rows):
    """Sparse prediction runs the head on the labelled share of positions only; the dense head on all of them."""
    config = tiny_config("bert", sparse_prediction=sparse_prediction)
    counted = mfu.mlm_training_flops_per_token(HybridBertForMaskedLM(config), SEQ, labelled_fraction=0.15)
    assert counted == pytest.approx(bert_training_flops_per_token(config, SEQ, head_rows))


def test_hf_bert_counts_as_the_dense_head_bert():
    config = tiny_config("bert", sparse_prediction=False)
    hf_bert = BertForMaskedLM(hf_bert_config(tiny_config("bert")))
    assert mfu.mlm_training_flops_per_token(hf_bert, SEQ, 0.15) == pytest.approx(
        bert_training_flops_per_token(config, SEQ, 1.0)
    )


def test_every_variant_is_counted_as_built(variant):
    """Linear-cost mixers have no seq-dependent matmul term: their FLOPs per token barely grow with length, while
    self-attention's grow by 4 H per layer and token for each extra position."""
    model = HybridBertForMaskedLM(tiny_config(variant))
    short, long = (mfu.mlm_training_flops_per_token(model, seq, 0.15) for seq in (SEQ, 2 * SEQ))
    self_layers = model.config.mixer_types.count("self")
    assert long - short == pytest.approx(3 * self_layers * 4 * SEQ * model.config.hidden_size)


def test_peak_is_measured_once_per_device_and_dtype_and_cached(tmp_path, monkeypatch):
    measured = []

    def fake_measure(device, dtype, size=None):
        measured.append(dtype)
        return 1e9 * len(measured)

    monkeypatch.setattr(mfu, "measure_matmul_peak", fake_measure)
    cache = tmp_path / "peak.json"
    assert mfu.matmul_peak("cpu", torch.float32, cache) == 1e9
    assert mfu.matmul_peak("cpu", torch.float32, cache) == 1e9
    assert mfu.matmul_peak("cpu", torch.bfloat16, cache) == 2e9
    assert mfu.matmul_peak("cpu", torch.float32, cache, remeasure=True) == 3e9
    assert mfu.matmul_peak("cpu", torch.bfloat16, cache) == 2e9
    assert measured == [torch.float32, torch.bfloat16, torch.float32]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_peak_a_run_outpaced_is_measured_again_and_the_higher_kept(tmp_path, monkeypatch):
    """A cached peak below what a run reached was measured under load: the next record measures it again and keeps
    the higher of the two; a peak the run stayed under is not measured again."""
    rates = iter([50e9, 120e9, 80e9])
    monkeypatch.setattr(mfu, "measure_matmul_peak", lambda device, dtype, size=None: next(rates))
    monkeypatch.setenv("HYBRID_BERT_CACHE", str(tmp_path))
    assert mfu.utilisation_record(1000.0, 30e6, "cpu", torch.float32)["mfu"] == pytest.approx(0.6)  # 50e9 cached
    record = mfu.utilisation_record(2000.0, 30e6, "cpu", torch.float32)  # 60e9 > 50e9: measured again, 120e9
    assert record["matmul_peak_flops"] == 120e9 and record["mfu"] == pytest.approx(0.5)
    assert mfu.utilisation_record(3000.0, 30e6, "cpu", torch.float32)["matmul_peak_flops"] == 120e9
    assert mfu.matmul_peak("cpu", torch.float32, reached=200e9) == 120e9  # 80e9 measured: the higher is kept
    assert next(rates, None) is None


def test_measured_peak_is_a_plausible_rate():
    peak = mfu.measure_matmul_peak("cpu", torch.float32, size=256)
    assert 1e8 < peak < 1e15


def test_utilisation_record_divides_by_every_device(tmp_path, monkeypatch):
    monkeypatch.setattr(mfu, "measure_matmul_peak", lambda device, dtype, size=None: 100e9)
    monkeypatch.setenv("HYBRID_BERT_CACHE", str(tmp_path))
    record = mfu.utilisation_record(1000.0, 30e6, "cpu", torch.bfloat16, devices=2)
    assert record == {
        "model_flops_per_token": 30e6,
        "matmul_dtype": "bfloat16",
        "matmul_peak_flops": 100e9,
        "devices": 2,
        "mfu": pytest.approx(0.15),
    }


def test_bf16_default_follows_the_hardware():
    capabilities = torch.cpu.get_capabilities()
    assert bf16_where_native() == bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
