"""Writing and reading a record file: whole or not at all, one clear error for a missing or malformed file, and the
schema version every record carries."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Whole or not at all: readers (cards, the zoo, a resumed run) may look while a run writes, and processes that
    write the same file (ranks, concurrent runs sharing a cache) each stage their own copy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
    return path


def write_json(path: str | Path, value: Any) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, default=str) + "\n")


def parse_json(text: str, source: str | Path, kind: str) -> Any:
    """The JSON value of `text`, read from `source`: every JSON the project reads is parsed here, with one error naming
    the source and where the JSON breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{source} is not valid JSON ({kind}): {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None


def read_json(path: str | Path, kind: str) -> Any:
    """The JSON value held in `path`; a missing file, bytes that are not UTF-8 or bad JSON is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: no {kind} there.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({kind}): byte {error.start} cannot be decoded.") from None
    return parse_json(text, path, kind)


def read_json_object(path: str | Path, kind: str) -> dict:
    """A record file's JSON object; a missing file, bad JSON or another JSON value is one clear error."""
    data = read_json(path, kind)
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a {kind}: it holds no JSON object.")
    return data


def plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, paths and enums strings): how a record compares once read."""
    return json.loads(json.dumps(value, default=str))


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def required_fields(cls) -> list[str]:
    """The fields of a record type without a default: every file of that type holds them."""
    return [f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING]


def set_fields(record) -> dict:
    """A record as JSON, without its optional fields left at None: optional parts (a benchmark's sections not run,
    fields newer than an old record) are absent, as in the files written before they existed. A required field is
    always written, None included (a model made from a BERT of no catalogued size has size None), so that `from_dict`
    reads the record back."""
    required = required_fields(record)
    return {name: value for name, value in dataclasses.asdict(record).items() if value is not None or name in required}


def from_dict(cls, data: dict, source: str | Path):
    """`cls` from a record's JSON, refusing one that lacks a field without a default or that a newer schema wrote
    (fields unknown here are ignored). A record type with a `SCHEMA_VERSION` has a `schema_version` field: None for a
    file written before its type carried one, which reads as it is."""
    if not isinstance(data, dict):
        raise TypeError(f"{source} is not a {cls.KIND}: it holds no JSON object.")
    missing = [name for name in required_fields(cls) if name not in data]
    if missing:
        raise ValueError(f"{source} is not a {cls.KIND}: it lacks {', '.join(missing)}.")
    known = {f.name for f in dataclasses.fields(cls)}
    values = {name: value for name, value in data.items() if name in known}
    if "schema_version" in known:
        version = values.setdefault("schema_version", None)
        if version is not None and version > cls.SCHEMA_VERSION:
            raise ValueError(
                f"{source} is a {cls.KIND} of schema_version {version}; this code reads up to {cls.SCHEMA_VERSION}: "
                "update the project to read it."
            )
    return cls(**values)


def flattened(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}: nested settings as the dotted names an error message shows."""
    if isinstance(value, dict) and value:
        return {name: leaf for key, item in value.items() for name, leaf in flattened(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


class FileRecord:
    """A record type held in one JSON file: `read` from its path, `write` to it (the JSON of its set fields)."""

    KIND: str

    @classmethod
    def read(cls, path: str | Path):
        return from_dict(cls, read_json_object(path, cls.KIND), path)

    def to_dict(self) -> dict:
        return set_fields(self)

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())
