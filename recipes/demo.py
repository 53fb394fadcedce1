"""`make demo`: build each named variant at size tiny with the embedded tokenizer, save it as a remote-code folder,
reload it the way a Hub user would (`trust_remote_code=True`) and run a fill-mask pipeline on it.

The models are untrained here (pretraining comes with `recipes/pretrain.py`), so the predictions are random words;
what the demo shows is that every variant saves, reloads and serves through transformers' own pipeline, offline.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from transformers import AutoModelForMaskedLM, pipeline

from modeling import VARIANTS, HybridBertConfig, HybridBertForMaskedLM
from recipes.assets import default_tokenizer, staging_dir


def save_variant(variant: str, size: str, output_dir: Path, tokenizer) -> None:
    """Save a freshly initialised model and the tokenizer into output_dir, all or nothing."""
    config = HybridBertConfig.from_variant(
        variant,
        size=size,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
    )
    model = HybridBertForMaskedLM(config)
    with staging_dir(output_dir.parent, f".{output_dir.name}.") as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--output_root", type=Path, default=Path("runs/demo"))
    args = parser.parse_args(argv)

    tokenizer = default_tokenizer()
    sentence = f"The capital of France is {tokenizer.mask_token}."
    for variant in VARIANTS:
        output_dir = args.output_root / f"{variant}-{args.size}"
        save_variant(variant, args.size, output_dir, tokenizer)
        model = AutoModelForMaskedLM.from_pretrained(output_dir, trust_remote_code=True)
        fill_mask = pipeline("fill-mask", model=model, tokenizer=tokenizer)
        words = ", ".join(prediction["token_str"] for prediction in fill_mask(sentence, top_k=3))
        print(f"{variant:<12} {model.config.mixer_types}  saved to {output_dir}  fill-mask (untrained): {words}")


if __name__ == "__main__":
    main()
