"""Pretraining data: a text corpus → tokenised once → packed into fixed-length blocks, plus a held-out set that is
masked once and stored, so every variant, batch size and world size is evaluated on exactly the same masked tokens.

Sources: a named offline source of the asset registry (`wikitext-2-raw`, the default, or `wiki-vital-leads`), a Hub
dataset (`--dataset_name/--dataset_config_name`, with a network), or local text files (`--train_file`, one document per
line). The held-out set is the source's validation split when it has one, else a seeded split of the training text.
Prepared data is cached under the asset cache (`$HYBRID_BERT_CACHE/datasets/<key>`), keyed by everything that shapes it.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, Value, load_dataset, load_from_disk
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from recipes.data import assets
from recipes.data.input_files import check_utf8

OFFLINE_CORPORA = ("wikitext-2-raw", "wiki-vital-leads")
# datasets' loader for a local file by its extension; any other file is text, one document per line.
FILE_LOADERS = {".csv": "csv", ".json": "json", ".jsonl": "json"}
_WIKITEXT_ARTICLE_TITLE = re.compile(r"^ = [^=].* = $")
_WIKITEXT_ESCAPES = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}


@dataclass(frozen=True)
class CorpusSpec:
    """Where the text comes from: exactly one of a named offline source, a Hub dataset or local files."""

    dataset: str | None = "wikitext-2-raw"
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    validation_split_percentage: float = 5.0
    seed: int = 42
    text_column_name: str = "text"

    def train_files(self) -> list[str]:
        """The training files: `train_file` itself, or the files its glob pattern (`corpus/*.txt`, `**` for
        subfolders) matches, sorted; a pattern matching nothing is an error naming it."""
        if not self.train_file:
            return []
        if not glob.has_magic(self.train_file):
            return [self.train_file]
        matches = sorted(path for path in glob.glob(self.train_file, recursive=True) if Path(path).is_file())
        if not matches:
            raise FileNotFoundError(f"--train_file {self.train_file!r} matches no file.")
        return matches

    def local_files(self) -> list[str]:
        return [*self.train_files(), *([self.validation_file] if self.validation_file else [])]

    def validate(self) -> None:
        chosen = [name for name in ("dataset", "dataset_name", "train_file") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError(
                f"Give exactly one text source: --dataset (one of {', '.join(OFFLINE_CORPORA)}), --dataset_name, "
                f"or --train_file; got {', '.join(chosen) or 'none'}."
            )
        if self.dataset and self.dataset not in OFFLINE_CORPORA:
            raise ValueError(f"Unknown --dataset {self.dataset!r}; offline corpora: {', '.join(OFFLINE_CORPORA)}.")
        for path in self.local_files():
            if not Path(path).is_file():
                raise FileNotFoundError(f"Text file not found: {path}")
            if Path(path).stat().st_size == 0:
                raise ValueError(f"Text file {path} is empty.")
            check_utf8(path)
        suffixes = {Path(path).suffix for path in self.train_files()}
        if len(suffixes) > 1:
            raise ValueError(
                f"--train_file {self.train_file!r} matches files of several kinds ({', '.join(sorted(suffixes))}); give one kind."
            )
        if not 0 < self.validation_split_percentage < 100:
            raise ValueError("--validation_split_percentage must be between 0 and 100.")


def _wikitext_articles(path: Path) -> list[str]:
    """WikiText lines → one document per article (a top-level ` = Title = ` starts one), escapes undone."""
    articles, current = [], []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if _WIKITEXT_ARTICLE_TITLE.match(line.rstrip("\n")) and current:
                articles.append(" ".join(current))
                current = []
            text = line.strip()
            if text and not text.startswith("="):
                for escaped, plain in _WIKITEXT_ESCAPES.items():
                    text = text.replace(escaped, plain)
                current.append(text)
    if current:
        articles.append(" ".join(current))
    return articles


def _offline_files(name: str) -> dict[str, Path]:
    path = assets.fetch(name)
    if name == "wikitext-2-raw":
        return {"train": path / "train.raw.gz", "validation": path / "valid.raw.gz"}
    return {"train": path}


def _offline_corpus(name: str) -> dict[str, list[str]]:
    """Documents per split."""
    files = _offline_files(name)
    if name == "wikitext-2-raw":
        return {split: _wikitext_articles(file) for split, file in files.items()}
    leads = json.loads(files["train"].read_text(encoding="utf-8"))
    return {"train": [entry["extract"] for entry in leads.values() if entry.get("extract")]}


def source_fingerprint(spec: CorpusSpec) -> str | None:
    """The sha256 of an offline source's or local files' bytes, without loading them (None for a Hub dataset, whose
    fingerprint `load_corpus` takes from the loaded splits)."""
    spec.validate()
    if spec.dataset:
        return assets.sha256_of_files(sorted(_offline_files(spec.dataset).values()))
    if spec.dataset_name:
        return None
    return assets.sha256_of_files([Path(path) for path in spec.local_files()])


def source_name(spec: CorpusSpec, split: str) -> str:
    """' in FILE' for a local file's split ('' otherwise), for error messages."""
    path = spec.validation_file if split == "validation" and spec.validation_file else spec.train_file
    return f" in {path}" if path else ""


def load_corpus(spec: CorpusSpec) -> tuple[DatasetDict, str]:
    """A DatasetDict with a `text` column and `train` + `validation` splits, and the source's fingerprint."""
    fingerprint = source_fingerprint(spec)
    if spec.dataset:
        corpus = DatasetDict(
            {split: Dataset.from_dict({"text": docs}) for split, docs in _offline_corpus(spec.dataset).items()}
        )
    elif spec.dataset_name:
        corpus = load_dataset(spec.dataset_name, spec.dataset_config_name)
        fingerprint = hashlib.sha256(
            json.dumps({split: corpus[split]._fingerprint for split in corpus}, sort_keys=True).encode()
        ).hexdigest()
    else:
        train_files = spec.train_files()
        data_files = {"train": train_files}
        if spec.validation_file:
            data_files["validation"] = spec.validation_file
        corpus = load_dataset(FILE_LOADERS.get(Path(train_files[0]).suffix, "text"), data_files=data_files)

    corpus = DatasetDict({split: corpus[split] for split in ("train", "validation") if split in corpus})
    column = spec.text_column_name
    for split in corpus:
        if column not in corpus[split].column_names:
            raise ValueError(
                f"The {split} data has no {column!r} column (its columns: {', '.join(corpus[split].column_names)}); "
                "name the text column with --text_column_name."
            )
    for split in corpus:
        kind = corpus[split].features[column]
        if not (isinstance(kind, Value) and kind.dtype in ("string", "large_string")):
            raise ValueError(
                f"The {split} data's {column!r} column holds {getattr(kind, 'dtype', type(kind).__name__)} values, not "
                f"text{source_name(spec, split)}; name the text column with --text_column_name."
            )
    corpus = corpus.select_columns([column])
    if column != "text":
        corpus = corpus.rename_column(column, "text")
    corpus = corpus.filter(lambda row: bool(row["text"] and row["text"].strip()))
    if len(corpus["train"]) == 0:
        raise ValueError("The training data holds no text.")
    if "validation" not in corpus:
        documents, share = len(corpus["train"]), spec.validation_split_percentage / 100
        if math.floor((1 - share) * documents) < 1 or math.ceil(share * documents) >= documents:
            raise ValueError(
                f"The training data holds {documents} document(s) with text{source_name(spec, 'train')}: too few to "
                f"hold out {spec.validation_split_percentage:g}% of them for evaluation and train on the rest. Give "
                "more text (one document per line), or a --validation_file."
            )
        held_out = corpus["train"].train_test_split(test_size=spec.validation_split_percentage / 100, seed=spec.seed)
        corpus = DatasetDict({"train": held_out["train"], "validation": held_out["test"]})
    return DatasetDict({"train": corpus["train"], "validation": corpus["validation"]}), fingerprint


def pack_into_blocks(
    documents: Dataset, tokenizer: PreTrainedTokenizerBase, max_seq_length: int, num_proc: int | None = None
) -> Dataset:
    """Tokenise without special tokens (in `num_proc` processes), join documents with [SEP], cut into blocks of
    max_seq_length − 2 tokens and wrap each as [CLS] … [SEP] (the remainder that does not fill a block is dropped).
    Packing runs in one process: its batches decide where blocks end, so they must not depend on `num_proc`."""
    body = max_seq_length - 2

    def tokenize(batch):
        return {"ids": tokenizer(batch["text"], add_special_tokens=False)["input_ids"]}

    def pack(batch):
        stream = [token for ids in batch["ids"] for token in (*ids, tokenizer.sep_token_id)]
        blocks = [stream[start : start + body] for start in range(0, len(stream) - body + 1, body)]
        return {"input_ids": [[tokenizer.cls_token_id, *block, tokenizer.sep_token_id] for block in blocks]}

    tokenized = documents.map(
        tokenize, batched=True, remove_columns=documents.column_names, num_proc=num_proc, desc="Tokenising"
    )
    return tokenized.map(pack, batched=True, batch_size=2000, remove_columns=["ids"], desc="Packing")


def mask_once(blocks: Dataset, tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int) -> Dataset:
    """Apply BERT's 80/10/10 masking once, with a fixed seed, and keep the result (`input_ids`, `labels`)."""
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=mlm_probability, seed=seed, return_tensors="np"
    )

    def mask(batch):
        masked = collator([{"input_ids": ids} for ids in batch["input_ids"]])
        return {"input_ids": masked["input_ids"].tolist(), "labels": masked["labels"].tolist()}

    return blocks.map(mask, batched=True, batch_size=1000, desc="Masking held-out set")


def is_stored(target: Path) -> bool:
    return (target / "settings.json").is_file()


def store_datasets(splits: DatasetDict, settings: dict, target: Path) -> None:
    """Write the splits beside `target` and move them into place with one rename; settings.json marks completion.
    A staging folder names the process and host writing it, so one left by a killed preparation on this host is
    removed here."""
    host = socket.gethostname()
    for staging in target.parent.glob(f".{target.name}.*@{host}.*"):
        pid = staging.name.removeprefix(f".{target.name}.").split("@")[0]
        if pid.isdigit() and not process_alive(int(pid)):  # a process of another host cannot be checked: kept
            shutil.rmtree(staging, ignore_errors=True)
    with assets.staging_dir(target.parent, f".{target.name}.{os.getpid()}@{host}.") as staging:
        splits.save_to_disk(staging / "data")
        (staging / "settings.json").write_text(json.dumps(settings, indent=2))
        try:
            staging.rename(target)
        except OSError:
            if not is_stored(target):  # another process (a second rank) did not store it first either
                raise


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class PreparedData:
    train: Dataset  # input_ids blocks, masked on the fly by the collator
    held_out: Dataset  # input_ids + labels, masked once
    fingerprint: str  # sha256 of the source text and every setting that shaped the blocks
    cache_path: Path


def preparation_settings(
    spec: CorpusSpec,
    source: str | None,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
) -> dict:
    """Everything that shapes the prepared blocks: their sha256 is the data fingerprint a run records."""
    return {
        "source": source,
        "vocab": hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode()).hexdigest(),
        "max_seq_length": max_seq_length,
        "mlm_probability": mlm_probability,
        "seed": spec.seed,
        "validation_split_percentage": spec.validation_split_percentage,
        # Only a column other than "text" is named, so that every source read from "text" keeps its fingerprint.
        **({"text_column": spec.text_column_name} if spec.text_column_name != "text" else {}),
        "format": 1,
    }


def planned_fingerprint(
    spec: CorpusSpec, tokenizer: PreTrainedTokenizerBase, max_seq_length: int, mlm_probability: float
) -> str | None:
    """The fingerprint `prepare` would record, without loading or tokenizing the text (None for a Hub dataset, whose
    source fingerprint needs the download)."""
    source = source_fingerprint(spec)
    if source is None:
        return None
    settings = preparation_settings(spec, source, tokenizer, max_seq_length, mlm_probability)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def prepare(
    spec: CorpusSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    mlm_probability: float,
    num_proc: int | None = None,
) -> PreparedData:
    """Load from the cache, or build (tokenising in `num_proc` processes) and store atomically."""
    if max_seq_length < 8 or max_seq_length > tokenizer.model_max_length:
        raise ValueError(f"--max_seq_length {max_seq_length} must be between 8 and {tokenizer.model_max_length}.")
    corpus, source = load_corpus(spec)
    settings = preparation_settings(spec, source, tokenizer, max_seq_length, mlm_probability)
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    target = assets.cache_dir() / "datasets" / fingerprint[:16]
    if not is_stored(target):
        train = pack_into_blocks(corpus["train"], tokenizer, max_seq_length, num_proc)
        held_out = mask_once(
            pack_into_blocks(corpus["validation"], tokenizer, max_seq_length, num_proc),
            tokenizer,
            mlm_probability,
            spec.seed,
        )
        if len(train) == 0:
            raise ValueError(f"The training text is shorter than one block of {max_seq_length} tokens.")
        if len(held_out) == 0:
            raise ValueError(f"The held-out text is shorter than one block of {max_seq_length} tokens.")
        store_datasets(DatasetDict({"train": train, "held_out": held_out}), settings, target)
    data = load_from_disk(str(target / "data"))
    return PreparedData(data["train"], data["held_out"], fingerprint, target)
