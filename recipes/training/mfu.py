"""Model-FLOPs utilisation (MFU): how much of a device's matrix-multiply peak a training run turns into model work.

    MFU = tokens/s × model training FLOPs per token / measured matmul peak of the dtype the matmuls run in

Model FLOPs are those of matrix products and attention (the convention of PaLM's appendix B): 3 × the forward pass's,
since the backward pass multiplies each matrix twice (gradients of inputs and of weights); activation recomputation
does not count. The forward pass is counted by `FlopCounterMode` on a meta-device copy of the model (no memory, no
compute), so every variant is counted as built, whatever its mixers; the MLM head is counted on the rows it really
runs on: under sparse prediction only the labelled share of positions reaches the decoder.

The peak is measured, not taken from a data sheet: the fastest of a few square matmuls timed on the device in the
dtype, cached per device, dtype and thread count in `<cache>/matmul_peak.json` (see `recipes.data.assets.cache_dir`).

    python -m recipes.training.mfu --dtype bfloat16                # prints (and caches) this machine's measured peak
    python -m recipes.training.mfu --dtype bfloat16 --remeasure    # on an idle machine: replaces a peak measured under load
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedModel

from recipes.data import assets
from recipes.environment import device_name
from recipes.records import MatmulPeaks

# Square matmul sizes that reach the device's steady-state rate (a CPU's caches, a GPU's many SMs).
PEAK_MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}
PEAK_REPEATS = 5
PEAK_CACHE_FILE = "matmul_peak.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# accelerate's mixed_precision values -> the dtype its autocast runs matrix products in
MIXED_PRECISION_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device | str) -> bool:
    """Whether the device multiplies bf16 matrices in hardware (AVX512-BF16 or AMX on a CPU, Ampere+ on CUDA); on
    CPUs without them bf16 is emulated and slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    return False


def forward_flops(model: torch.nn.Module, input_ids: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=input_ids)
    return counter.get_total_flops()


def mlm_training_flops_per_token(model: PreTrainedModel, seq: int, labelled_fraction: float) -> float:
    """Model FLOPs of one training token of a masked-LM model (HybridBertForMaskedLM, HF BertForMaskedLM, …) at
    sequence length `seq`, with `labelled_fraction` of the positions labelled: encoder per token, plus the MLM head
    per labelled token under `config.sparse_prediction` (per token otherwise), times 3 for forward + backward."""
    with torch.device("meta"):
        meta_model = type(model)(copy.deepcopy(model.config)).eval()
        input_ids = torch.zeros(1, seq, dtype=torch.long)
    encoder = forward_flops(meta_model.base_model, input_ids) / seq
    head_per_row = forward_flops(meta_model, input_ids) / seq - encoder
    head_rows = labelled_fraction if getattr(model.config, "sparse_prediction", False) else 1.0
    return 3.0 * (encoder + head_per_row * head_rows)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(device: torch.device | str, dtype: torch.dtype, size: int | None = None) -> float:
    """FLOP/s of the fastest of a few `size`² × `size`² matrix products on the device in `dtype`."""
    device = torch.device(device)
    size = size or PEAK_MATMUL_SIZE.get(device.type, PEAK_MATMUL_SIZE["cpu"])
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
    a @ b  # the first call pays for allocation and kernel selection
    fastest = float("inf")
    for _ in range(PEAK_REPEATS):
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest


def peak_cache_key(device: torch.device | str, dtype: torch.dtype) -> str:
    device = torch.device(device)
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    return f"{device_name(device)}{threads}, {str(dtype).removeprefix('torch.')}"


def matmul_peak(
    device: torch.device | str,
    dtype: torch.dtype,
    cache_file: Path | None = None,
    remeasure: bool = False,
    reached: float = 0.0,
) -> float:
    """The device's measured matmul peak (FLOP/s) in `dtype`, from the cache or measured once and cached. A peak
    measured while other work shared the device is too low: `remeasure` on an idle machine replaces it, and a cached
    peak below `reached` (a rate a run has just turned into model FLOPs, which no peak is below) is measured again,
    the higher of the two kept."""
    cache_file = cache_file or assets.cache_dir() / PEAK_CACHE_FILE
    key = peak_cache_key(device, dtype)
    # A cache of another layout (an older flat mapping) reads as empty: its peaks are measured again.
    cached = MatmulPeaks.read(cache_file) if cache_file.is_file() else MatmulPeaks()
    outpaced = key in cached.peaks and cached.peaks[key] < reached
    if remeasure or key not in cached.peaks or outpaced:
        measured = measure_matmul_peak(device, dtype)
        cached = MatmulPeaks(peaks={**cached.peaks, key: max(measured, cached.peaks[key]) if outpaced else measured})
        cached.write(cache_file)
    return cached.peaks[key]


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    return tokens_per_s * flops_per_token / peak_flops


def utilisation_record(
    tokens_per_s: float, flops_per_token: float, device: torch.device | str, dtype: torch.dtype, devices: int = 1
) -> dict:
    """What a run record says about utilisation: model FLOPs per token, the per-device peak it is measured against
    (one such device per process), and MFU for `tokens_per_s` over all of them. A cached peak the run outpaced was
    measured under load: it is measured again (an MFU above 100% is still possible where the device is loaded now)."""
    peak = matmul_peak(device, dtype, reached=tokens_per_s * flops_per_token / devices)
    return {
        "model_flops_per_token": flops_per_token,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_peak_flops": peak,
        "devices": devices,
        "mfu": mfu(tokens_per_s, flops_per_token, peak * devices),
    }


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="Measure (and cache) this device's matmul peak.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--remeasure", action="store_true", help="measure again and replace the cached peak")
    args = parser.parse_args(argv)
    peak = matmul_peak(args.device, DTYPES[args.dtype], remeasure=args.remeasure)
    print(f"{peak_cache_key(args.device, DTYPES[args.dtype])}: {peak / 1e9:,.1f} GFLOP/s")
    return peak


if __name__ == "__main__":
    main()
