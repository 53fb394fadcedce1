"""Pretraining data as token blocks: documents are tokenised a group at a time, joined with [SEP] and cut into blocks
of `max_seq_length` tokens ([CLS] … [SEP]), and the blocks are appended to Arrow files of fixed-length rows in the
vocabulary's smallest unsigned dtype (uint16 below 65,536 ids: 2 bytes a token). `datasets` memory-maps the files, so
a run reads blocks by index whatever the corpus size, and preparation holds one group of documents in memory at a time.

A prepared folder holds `held_out.arrow` (input_ids and labels, masked once), `train-NNNNN.arrow` shards, the training
tokens' unigram counts (`unigram_counts.npy`, counted shard by shard) and `settings.json`, written last: its presence
marks the folder complete. A preparation writes into a partial folder beside it and records its progress after each
shard, so a killed one resumes from its last shard.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, concatenate_datasets
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from recipes.records import PreparationProgress, PreparedDataRecord

# Documents packed together: blocks never span two groups and a group's remainder that does not fill a block is
# dropped, so the group size shapes the blocks (2,000: the batch size the blocks were first packed with).
PACK_DOCUMENTS = 2000
MASK_BLOCKS = 1000  # held-out blocks masked per collator call; the masks follow the seed and this batching
SHARD_BLOCKS = (
    1 << 16
)  # training blocks per shard (16 MB at 128 uint16 tokens): the unit a killed preparation resumes from

SETTINGS_FILE = "settings.json"
HELD_OUT_FILE = "held_out.arrow"
COUNTS_FILE = "unigram_counts.npy"
PROGRESS_FILE = "progress.json"


def id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def pack(token_lists: list[list[int]], tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> np.ndarray:
    """One group's documents (token ids without special tokens) joined with [SEP] and cut into blocks of
    max_seq_length − 2 tokens, each wrapped as [CLS] … [SEP]; the remainder that does not fill a block is dropped."""
    body = max_seq_length - 2
    total = sum(len(ids) + 1 for ids in token_lists)
    stream = np.fromiter(
        itertools.chain.from_iterable(itertools.chain(ids, (tokenizer.sep_token_id,)) for ids in token_lists),
        dtype=np.int64,
        count=total,
    )
    rows = total // body
    blocks = np.empty((rows, max_seq_length), dtype=np.int64)
    blocks[:, 0] = tokenizer.cls_token_id
    blocks[:, 1:-1] = stream[: rows * body].reshape(rows, body)
    blocks[:, -1] = tokenizer.sep_token_id
    return blocks


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


_worker_tokenizer: PreTrainedTokenizerBase | None = None


def _set_worker_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _tokenize_in_worker(texts: list[str]) -> list[list[int]]:
    return tokenize(_worker_tokenizer, texts)


def packed_groups(
    groups: Iterable[tuple], tokenizer: PreTrainedTokenizerBase, max_seq_length: int, num_proc: int | None = None
) -> Iterator[tuple]:
    """(blocks, *rest) for each (documents, *rest) group, in order; `num_proc` > 1 tokenises a few groups at a time in
    that many processes (a bounded window, so memory stays flat)."""
    if not num_proc or num_proc < 2:
        for texts, *rest in groups:
            yield pack(tokenize(tokenizer, texts), tokenizer, max_seq_length), *rest
        return
    groups = iter(groups)
    with get_context("spawn").Pool(num_proc, _set_worker_tokenizer, (tokenizer,)) as pool:
        while window := list(itertools.islice(groups, 2 * num_proc)):
            tokenized = pool.map(_tokenize_in_worker, [texts for texts, *_ in window])
            for token_lists, (_, *rest) in zip(tokenized, window, strict=True):
                yield pack(token_lists, tokenizer, max_seq_length), *rest


def masking_collator(
    tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int
) -> DataCollatorForLanguageModeling:
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed, return_tensors="np")


def mask(collator: DataCollatorForLanguageModeling, blocks) -> tuple[np.ndarray, np.ndarray]:
    """BERT's 80/10/10 masking of one batch of blocks: (input_ids, labels)."""
    masked = collator([{"input_ids": list(map(int, ids))} for ids in blocks])
    return masked["input_ids"], masked["labels"]


def mask_once(blocks: Dataset, tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int) -> Dataset:
    """A Dataset of blocks masked once with a fixed seed (`input_ids`, `labels`), batch by batch as the held-out set is."""
    collator = masking_collator(tokenizer, mlm_probability, seed)

    def masked(batch):
        input_ids, labels = mask(collator, batch["input_ids"])
        return {"input_ids": input_ids.tolist(), "labels": labels.tolist()}

    return blocks.map(masked, batched=True, batch_size=MASK_BLOCKS, keep_in_memory=True, desc="Masking")


class BlockFile:
    """An Arrow stream file of fixed-length rows, written batch by batch (datasets reads it with `Dataset.from_file`)."""

    def __init__(self, path: Path, columns: dict[str, np.dtype], width: int):
        self.columns = columns
        self.width = width
        self.schema = pa.schema(
            [(name, pa.list_(pa.from_numpy_dtype(dtype), width)) for name, dtype in columns.items()]
        )
        self.rows = 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def write(self, **arrays: np.ndarray) -> None:
        columns = [
            pa.FixedSizeListArray.from_arrays(pa.array(arrays[name].astype(dtype).ravel()), self.width)
            for name, dtype in self.columns.items()
        ]
        self._writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self.rows += len(columns[0])

    def close(self) -> None:
        self._writer.close()
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self._sink.close()


def shard_name(index: int) -> str:
    return f"train-{index:05d}.arrow"


def write_held_out(
    folder: Path,
    groups: Iterable[list[str]],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    collator: DataCollatorForLanguageModeling,
    num_proc: int | None,
) -> int:
    """The held-out documents' blocks, masked MASK_BLOCKS at a time in order; returns the number of blocks."""
    dtype = id_dtype(len(tokenizer))
    out = BlockFile(folder / f".{HELD_OUT_FILE}", {"input_ids": dtype, "labels": np.dtype(np.int32)}, max_seq_length)
    pending = np.empty((0, max_seq_length), dtype=np.int64)
    for blocks, *_ in packed_groups(groups, tokenizer, max_seq_length, num_proc):
        pending = np.concatenate([pending, blocks])
        while len(pending) >= MASK_BLOCKS:
            input_ids, labels = mask(collator, pending[:MASK_BLOCKS])
            out.write(input_ids=input_ids, labels=labels)
            pending = pending[MASK_BLOCKS:]
    if len(pending):
        input_ids, labels = mask(collator, pending)
        out.write(input_ids=input_ids, labels=labels)
    out.close()
    os.replace(folder / f".{HELD_OUT_FILE}", folder / HELD_OUT_FILE)
    return out.rows


class TrainShards:
    """Training blocks appended to shards of SHARD_BLOCKS, a shard finished (renamed, counted, progress recorded) at the
    end of the group that fills it, so that progress always ends on a group boundary."""

    def __init__(self, folder: Path, progress: PreparationProgress, vocab_size: int, max_seq_length: int):
        self.folder, self.progress, self.max_seq_length = folder, progress, max_seq_length
        self.dtype = id_dtype(vocab_size)
        counts = folder / COUNTS_FILE
        self.counts = np.load(counts) if progress.shards and counts.is_file() else np.zeros(vocab_size, np.int64)
        self.shard_counts = np.zeros(vocab_size, np.int64)
        self.current: BlockFile | None = None

    @property
    def blocks(self) -> int:
        return sum(self.progress.shards) + (self.current.rows if self.current else 0)

    def add(self, blocks: np.ndarray) -> None:
        if not len(blocks):
            return
        if self.current is None:
            self.current = BlockFile(self._staged(), {"input_ids": self.dtype}, self.max_seq_length)
        self.current.write(input_ids=blocks)
        self.shard_counts += np.bincount(blocks.ravel(), minlength=len(self.shard_counts))

    def end_of_group(self, train_rows: int, documents: int) -> None:
        """Called after each group's blocks: finishes the shard once it is full."""
        self.progress.train_rows, self.progress.documents = train_rows, documents
        if self.current is not None and self.current.rows >= SHARD_BLOCKS:
            self.finish_shard()

    def finish_shard(self) -> None:
        if self.current is None:
            self.progress.write(self.folder / PROGRESS_FILE)
            return
        self.current.close()
        os.replace(self._staged(), self.folder / shard_name(len(self.progress.shards)))
        self.counts += self.shard_counts
        self.shard_counts[:] = 0
        np.save(self.folder / f".{COUNTS_FILE}", self.counts)
        os.replace(self.folder / f".{COUNTS_FILE}", self.folder / COUNTS_FILE)
        self.progress.shards.append(self.current.rows)
        self.current = None
        self.progress.write(self.folder / PROGRESS_FILE)

    def _staged(self) -> Path:
        return self.folder / f".{shard_name(len(self.progress.shards))}"


def start_partial(folder: Path) -> PreparationProgress:
    """The progress of a partial folder left by a killed preparation (its unfinished shard removed), or a new one."""
    folder.mkdir(parents=True, exist_ok=True)
    for unfinished in folder.glob(".*.arrow"):
        unfinished.unlink()
    progress = folder / PROGRESS_FILE
    return PreparationProgress.read(progress) if progress.is_file() else PreparationProgress()


def finish(partial: Path, target: Path, record: PreparedDataRecord) -> None:
    """The record written last, then the folder moved into place with one rename."""
    (partial / PROGRESS_FILE).unlink(missing_ok=True)
    record.write(partial / SETTINGS_FILE)
    if target.exists():  # an incomplete folder of an older preparation that wrote in place
        shutil.rmtree(target)
    os.replace(partial, target)


def is_prepared(folder: Path) -> bool:
    return (folder / SETTINGS_FILE).is_file()


def read_train(folder: Path) -> Dataset:
    shards = sorted(folder.glob("train-*.arrow"))
    return concatenate_datasets([Dataset.from_file(str(shard)) for shard in shards])


def read_held_out(folder: Path) -> Dataset:
    return Dataset.from_file(str(folder / HELD_OUT_FILE))


def read_unigram_counts(folder: Path) -> np.ndarray:
    return np.load(folder / COUNTS_FILE)
