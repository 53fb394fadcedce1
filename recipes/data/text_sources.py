"""Where pretraining text comes from: a named offline source of the asset registry (`wikitext-2-raw`, the default, or
`wiki-vital-leads`), a dataset `datasets` loads by name (`--dataset_name/--dataset_config_name`: a Hub id with a
network, or a local dataset folder), or local files (`--train_file`: text with one document per line, or
.csv/.json/.jsonl; a glob pattern for many). Each split is read as a stream of documents (local files are not copied
into the `datasets` cache), and each source has a fingerprint: local files are hashed once and remembered by path,
size and modification time, so a later run reads none of their text to find its prepared data.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, IterableDataset, Value, load_dataset

from recipes.data import assets, blocks
from recipes.data.input_files import utf8_sha256
from recipes.records import SourceFingerprintRecord, digest, read_json_object

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


def wikitext_paragraphs(count: int) -> list[str]:
    """The first `count` paragraphs of WikiText-2's training split (real text; headings and blank lines skipped): small
    corpora for tests and probes."""
    paragraphs = []
    with gzip.open(assets.fetch("wikitext-2-raw") / "train.raw.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            text = line.strip()
            if text and not text.startswith("="):
                paragraphs.append(text)
                if len(paragraphs) == count:
                    break
    return paragraphs


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
    leads = read_json_object(files["train"], "corpus of article leads")
    return {"train": [entry["extract"] for entry in leads.values() if entry.get("extract")]}


def local_source_sha256(paths: list[str]) -> str:
    """The sha256 of local files' bytes (checked to be UTF-8 on the way), remembered in the cache under their paths,
    sizes and modification times: files unchanged since are not read again."""
    stats = [[str(Path(path).resolve()), (stat := os.stat(path)).st_size, stat.st_mtime_ns] for path in paths]
    index = assets.cache_dir() / "datasets" / "sources" / f"{digest(stats)[:32]}.json"
    if index.is_file():
        remembered = SourceFingerprintRecord.read(index)
        if remembered.files == stats:
            return remembered.sha256
    record = SourceFingerprintRecord(files=stats, sha256=utf8_sha256(paths))
    record.write(index)
    return record.sha256


def source_fingerprint(spec: CorpusSpec) -> str | None:
    """The sha256 of an offline source's or local files' bytes (None for a Hub dataset, whose fingerprint `prepare`
    takes from the loaded splits). Local files are read only the first time they are seen."""
    spec.validate()
    if spec.dataset:
        return assets.sha256_of_files(sorted(_offline_files(spec.dataset).values()))
    if spec.dataset_name:
        return None
    return local_source_sha256(spec.local_files())


def source_name(spec: CorpusSpec, split: str) -> str:
    """' in FILE' for a local file's split ('' otherwise), for error messages."""
    path = spec.validation_file if split == "validation" and spec.validation_file else spec.train_file
    return f" in {path}" if path else ""


@dataclass(frozen=True)
class Source:
    """The rows of each split, streamed, and the training text's size (what the held-out share is taken of)."""

    splits: dict[str, IterableDataset]
    train_bytes: int
    fingerprint: str


def load_hub(spec: CorpusSpec) -> tuple[DatasetDict, str]:
    corpus = load_dataset(spec.dataset_name, spec.dataset_config_name)
    column = spec.text_column_name
    for split in ("train", "validation"):
        if split not in corpus:
            continue
        if column not in corpus[split].column_names:
            raise ValueError(_no_column(spec, split, corpus[split].column_names))
        kind = corpus[split].features[column]
        if not (isinstance(kind, Value) and kind.dtype in ("string", "large_string")):
            raise ValueError(_not_text(spec, split, getattr(kind, "dtype", type(kind).__name__)))
    return corpus, digest({split: corpus[split]._fingerprint for split in corpus})


def open_source(spec: CorpusSpec, hub: tuple[DatasetDict, str] | None = None) -> Source:
    """Each split's rows as a stream (local files are read as they are consumed: no copy of the text on disk)."""
    if spec.dataset:
        documents = _offline_corpus(spec.dataset)
        splits = {split: Dataset.from_dict({"text": docs}).to_iterable_dataset() for split, docs in documents.items()}
        return Source(splits, sum(len(doc.encode()) for doc in documents["train"]), source_fingerprint(spec))
    if spec.dataset_name:
        hub, fingerprint = hub or load_hub(spec)
        train_bytes = pc.sum(pc.binary_length(hub["train"].data.column(spec.text_column_name))).as_py() or 0
        splits = {split: hub[split].to_iterable_dataset() for split in ("train", "validation") if split in hub}
        return Source(splits, train_bytes, fingerprint)
    train_files = spec.train_files()
    data_files = {"train": train_files, **({"validation": spec.validation_file} if spec.validation_file else {})}
    streamed = load_dataset(
        FILE_LOADERS.get(Path(train_files[0]).suffix, "text"), data_files=data_files, streaming=True
    )
    train_bytes = sum(os.path.getsize(path) for path in train_files)
    return Source(dict(streamed), train_bytes, source_fingerprint(spec))


def _no_column(spec: CorpusSpec, split: str, columns) -> str:
    return (
        f"The {split} data has no {spec.text_column_name!r} column (its columns: {', '.join(columns)}); "
        "name the text column with --text_column_name."
    )


def _not_text(spec: CorpusSpec, split: str, kind: str) -> str:
    return (
        f"The {split} data's {spec.text_column_name!r} column holds {kind} values, not text"
        f"{source_name(spec, split)}; name the text column with --text_column_name."
    )


class Documents:
    """The documents with text of one split's rows, from a given row on, counting the rows and documents consumed."""

    def __init__(self, spec: CorpusSpec, split: str, rows: IterableDataset, start_row: int = 0, documents: int = 0):
        self.spec, self.split = spec, split
        self.rows, self.documents = start_row, documents
        self._rows = iter(rows.skip(start_row) if start_row else rows)

    def __iter__(self) -> Iterator[str]:
        column = self.spec.text_column_name
        for row in self._rows:
            self.rows += 1
            if column not in row:
                raise ValueError(_no_column(self.spec, self.split, row))
            text = row[column]
            if text is None:
                continue
            if not isinstance(text, str):
                raise ValueError(_not_text(self.spec, self.split, str(pa.infer_type([text]))))
            if text.strip():
                self.documents += 1
                yield text

    def groups(self, max_bytes: float | None = None) -> Iterator[tuple[list[str], int, int]]:
        """Groups of PACK_DOCUMENTS documents, each with the rows and documents consumed at its end; with `max_bytes`,
        documents are taken until they hold that many bytes of text."""
        taken, group = 0, []
        for text in self:
            group.append(text)
            if max_bytes is not None:  # only the held-out slice counts bytes: training text is not encoded twice
                taken += len(text.encode())
            reached = max_bytes is not None and taken >= max_bytes
            if len(group) == blocks.PACK_DOCUMENTS or reached:
                yield group, self.rows, self.documents
                group = []
                if reached:
                    return
        if group:
            yield group, self.rows, self.documents


def too_few_documents(spec: CorpusSpec, documents: int) -> str:
    return (
        f"The training data holds {documents} document(s) with text{source_name(spec, 'train')}: too few to hold out "
        f"{spec.validation_split_percentage:g}% of them and train on the rest. Give more text (one document per line), "
        "or a --validation_file."
    )
