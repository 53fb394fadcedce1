"""Prepare a pretraining corpus ahead of a run: the same blocks, held-out set and unigram counts that
`recipes/pretrain.py` prepares on its first step, stored in the cache where every later run with these data arguments
finds them without reading the text again.

    python recipes/prepare_data.py --train_file 'corpus/*.txt' --max_seq_length 128
    python recipes/prepare_data.py --train_file corpus.jsonl --text_column_name body --max_train_tokens 2000000000

Takes pretraining's data and model arguments (of the model's, only its tokenizer matters); a run with a `--calibration` budget caps the tokens it
prepares at what the budget consumes unless `--max_train_tokens` says otherwise, so give the same cap here. Prints what
was prepared as one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

from recipes.data.corpus import prepare
from recipes.models.starting_model import load_tokenizer
from recipes.training.arguments import parse_args
from recipes.training.pretrain_arguments import DataArguments, ModelArguments, corpus_spec


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args = parse_args((ModelArguments, DataArguments), argv)
    tokenizer = load_tokenizer(model_args)
    started = time.monotonic()
    data = prepare(
        corpus_spec(data_args), tokenizer, data_args.max_seq_length, data_args.mlm_probability,
        data_args.preprocessing_num_workers, data_args.max_train_tokens or None,
    )  # fmt: skip
    summary = {
        "fingerprint": data.fingerprint,
        "cache_path": str(data.cache_path),
        "train_blocks": len(data.train),
        "train_tokens": len(data.train) * data_args.max_seq_length,
        "held_out_blocks": len(data.held_out),
        "disk_bytes": sum(path.stat().st_size for path in data.cache_path.iterdir()),
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
