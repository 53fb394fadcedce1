"""Pretraining data: a text source (`recipes.data.text_sources`) streamed once into fixed-length token blocks
(`recipes.data.blocks`), plus a held-out set that is masked once and stored, so every variant, batch size and world
size is evaluated on exactly the same masked tokens.

The held-out set is the source's validation split when it has one, else its leading documents up to
`validation_split_percentage` of the training text's bytes (a contiguous slice: read once, in order). Prepared data is
cached under the asset cache (`$HYBRID_BERT_CACHE/datasets/<key>`), keyed by everything that shapes it, and found there
without reading the text.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict
from filelock import FileLock
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from recipes.data import assets, blocks
from recipes.data.text_sources import (
    CorpusSpec,
    Documents,
    load_hub,
    open_source,
    source_fingerprint,
    source_name,
    too_few_documents,
)
from recipes.environment import disk_full, free_space
from recipes.records import PreparedDataRecord, digest

FORMAT = 2  # token blocks in Arrow shards (1: datasets.save_to_disk of int64 lists)


@dataclass(frozen=True)
class PreparedData:
    train: Dataset  # input_ids blocks, masked on the fly by the collator
    held_out: Dataset  # input_ids + labels, masked once
    fingerprint: str  # sha256 of the source text and every setting that shaped the blocks
    cache_path: Path
    unigram_counts: np.ndarray  # how often each token id occurs in the training blocks


def preparation_settings(
    spec: CorpusSpec,
    source: str | None,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
    max_train_tokens: int | None = None,
    format: int = FORMAT,
) -> dict:
    """Everything that shapes the prepared blocks: their sha256 is the data fingerprint a run records."""
    return {
        "source": source,
        "vocab": digest(tokenizer.get_vocab()),
        "max_seq_length": max_seq_length,
        "mlm_probability": mlm_probability,
        "seed": spec.seed,
        "validation_split_percentage": spec.validation_split_percentage,
        # Settings at their defaults are left out, so that every source read that way keeps its fingerprint.
        **({"text_column": spec.text_column_name} if spec.text_column_name != "text" else {}),
        **({"max_train_tokens": max_train_tokens} if max_train_tokens else {}),
        "format": format,
    }


def planned_fingerprint(
    spec: CorpusSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
    max_train_tokens: int | None = None,
) -> str | None:
    """The fingerprint `prepare` would record, without tokenising the text (None for a Hub dataset, whose source
    fingerprint needs the download)."""
    source = source_fingerprint(spec)
    if source is None:
        return None
    return digest(preparation_settings(spec, source, tokenizer, max_seq_length, mlm_probability, max_train_tokens))


def prepare(
    spec: CorpusSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
    num_proc: int | None = None,
    max_train_tokens: int | None = None,
) -> PreparedData:
    """The prepared blocks of the source, from the cache (the text is not read) or built into it: under a file lock, so
    that of several processes (ranks of one launch) one prepares and the others wait for it, however long it takes."""
    if max_seq_length < 8 or max_seq_length > tokenizer.model_max_length:
        raise ValueError(f"--max_seq_length {max_seq_length} must be between 8 and {tokenizer.model_max_length}.")
    if max_train_tokens is not None and max_train_tokens < max_seq_length:
        raise ValueError(
            f"--max_train_tokens {max_train_tokens} is less than one block of {max_seq_length} tokens (0 prepares the "
            "whole corpus)."
        )
    hub = load_hub(spec) if spec.dataset_name else None
    source = hub[1] if hub else source_fingerprint(spec)
    settings = preparation_settings(spec, source, tokenizer, max_seq_length, mlm_probability, max_train_tokens)
    fingerprint = digest(settings)
    target = assets.cache_dir() / "datasets" / fingerprint[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if not blocks.is_prepared(target):
            _note_older_format(spec, source, tokenizer, max_seq_length, mlm_probability)
            build(
                spec,
                hub,
                tokenizer,
                max_seq_length,
                mlm_probability,
                num_proc,
                max_train_tokens,
                settings,
                target,
            )
    return PreparedData(
        blocks.read_train(target), blocks.read_held_out(target), fingerprint, target, blocks.read_unigram_counts(target)
    )


def _note_older_format(spec, source, tokenizer, max_seq_length, mlm_probability) -> None:
    settings = preparation_settings(spec, source, tokenizer, max_seq_length, mlm_probability, format=1)
    older = assets.cache_dir() / "datasets" / digest(settings)[:16]
    if blocks.is_prepared(older):
        size = sum(path.stat().st_size for path in older.rglob("*") if path.is_file())
        print(
            f"Data prepared in an older format at {older} ({size / 1e6:.0f} MB) is not read: preparing it again as "
            "token blocks. Remove that folder to free its disk.",
            flush=True,
        )


def build(
    spec: CorpusSpec,
    hub: tuple[DatasetDict, str] | None,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
    num_proc: int | None,
    max_train_tokens: int | None,
    settings: dict,
    target: Path,
) -> None:
    """Held-out set first (the source's validation split, else its leading documents up to the held-out share of its
    bytes), then the training blocks shard by shard; a partial folder left by a killed build is resumed, one left by a
    failed build (bad input, full disk) is removed."""
    partial = target.parent / f".{target.name}.partial"
    progress = blocks.start_partial(partial)
    resuming = f", resuming after {len(progress.shards)} shard(s)" if progress.shards else ""
    print(f"Preparing the pretraining data into {target}{resuming} (other processes wait for it).", flush=True)
    try:
        source = open_source(spec, hub)
        if progress.held_out_rows is None:
            _write_held_out(spec, source, tokenizer, max_seq_length, mlm_probability, num_proc, partial, progress)
        documents = Documents(spec, "train", source.splits["train"], progress.train_rows, progress.documents)
        held_out_documents = progress.documents
        shards = blocks.TrainShards(partial, progress, len(tokenizer), max_seq_length)
        cap = max_train_tokens // max_seq_length if max_train_tokens else None
        groups = blocks.packed_groups(documents.groups(), tokenizer, max_seq_length, num_proc)
        for packed, rows, seen in tqdm(groups, desc="Training blocks", unit=" groups", mininterval=10):
            if cap is not None and shards.blocks + len(packed) >= cap:
                shards.add(packed[: cap - shards.blocks])
                break
            shards.add(packed)
            shards.end_of_group(rows, seen)
        shards.finish_shard()
        if "validation" not in source.splits and documents.documents == held_out_documents:
            raise ValueError(too_few_documents(spec, documents.documents))
        if shards.blocks == 0:
            raise ValueError(f"The training text is shorter than one block of {max_seq_length} tokens.")
        if cap is not None and shards.blocks >= cap:
            print(
                f"Prepared the first {shards.blocks * max_seq_length:,} training tokens (--max_train_tokens).",
                flush=True,
            )
        record = PreparedDataRecord(
            settings=settings,
            train_blocks=shards.blocks,
            held_out_blocks=progress.held_out_blocks,
            documents=documents.documents,
        )
        blocks.finish(partial, target, record)
    except Exception as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError) and disk_full(error, target.parent):
            raise OSError(
                errno.ENOSPC,
                f"The disk is full: cannot prepare the pretraining data in {target.parent} "
                f"({free_space(target.parent)}). Free some space, or point {assets.CACHE_ENV} at a larger disk.",
            ) from None
        raise


def _write_held_out(spec, source, tokenizer, max_seq_length, mlm_probability, num_proc, partial, progress) -> None:
    collator = blocks.masking_collator(tokenizer, mlm_probability, spec.seed)
    if "validation" in source.splits:
        documents = Documents(spec, "validation", source.splits["validation"])
        groups = documents.groups()
    else:
        documents = Documents(spec, "train", source.splits["train"])
        groups = documents.groups(max_bytes=spec.validation_split_percentage / 100 * source.train_bytes)
    held_out = blocks.write_held_out(partial, groups, tokenizer, max_seq_length, collator, num_proc)
    if documents.documents == 0:
        raise ValueError(f"The {documents.split} data holds no text{source_name(spec, documents.split)}.")
    in_train = documents.split == "train"
    if in_train and held_out == 0 and next(iter(documents), None) is None:
        raise ValueError(too_few_documents(spec, documents.documents))
    if held_out == 0:
        raise ValueError(f"The held-out text is shorter than one block of {max_seq_length} tokens.")
    progress.held_out_rows = progress.train_rows = documents.rows if in_train else 0
    progress.documents = documents.documents if in_train else 0
    progress.held_out_blocks = held_out
    progress.write(partial / blocks.PROGRESS_FILE)
