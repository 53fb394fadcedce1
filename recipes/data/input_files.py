"""Input files read with errors that name the file: text that is not UTF-8, a config.json that is not JSON, weights
that safetensors cannot open (truncated, corrupt) or whose tensors do not match the config."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

import modeling
from recipes.records.files import read_json_object


class InvalidInputFileError(ValueError):
    """An input file (text, a saved model's config or weights) that cannot be used as it is; the message names it."""


def utf8_chunks(path: str | Path) -> Iterator[bytes]:
    """The file's bytes a megabyte at a time, refusing a file that is not UTF-8 text (an undecodable sequence, or a
    NUL byte: binary data) with an error naming it and the offset of the first offending byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes read before the current chunk
    with open(path, "rb") as stream:
        while True:
            chunk = stream.read(1 << 20)
            pending = len(decoder.getstate()[0])  # the undecoded tail of the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                raise InvalidInputFileError(f"not UTF-8 text: {path} (byte {offset - pending + error.start})") from None
            if (nul := chunk.find(b"\x00")) >= 0:
                raise InvalidInputFileError(f"not UTF-8 text: {path} (byte {offset + nul})")
            if not chunk:
                return
            yield chunk
            offset += len(chunk)


def check_utf8(path: str | Path) -> None:
    for _ in utf8_chunks(path):
        pass


def utf8_sha256(paths: list[str | Path]) -> str:
    """One sha256 over the files' bytes, in the order given, read once and checked to be UTF-8 text on the way."""
    digest = hashlib.sha256()
    for path in paths:
        for chunk in utf8_chunks(path):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path) -> dict:
    """A JSON object from `path`; one error naming the file when it is not UTF-8, not JSON, or not an object."""
    check_utf8(path)
    try:
        return read_json_object(path, "saved model file")
    except (ValueError, TypeError) as error:
        raise InvalidInputFileError(str(error)) from None


def read_config(folder: str | Path) -> dict:
    return read_json(Path(folder) / CONFIG_NAME)


def weight_files(folder: str | Path) -> list[Path]:
    """The safetensors files of a saved model: model.safetensors, or the shards its index names."""
    folder = Path(folder)
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    if index.is_file():
        return [folder / name for name in sorted(set(read_json(index).get("weight_map", {}).values()))]
    return [folder / SAFE_WEIGHTS_NAME] if (folder / SAFE_WEIGHTS_NAME).is_file() else []


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in one safetensors file, read from its header; names the file when it cannot be opened."""
    if not path.is_file():
        raise InvalidInputFileError(f"{path} is missing.")
    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError) as error:
        raise InvalidInputFileError(f"{path} is not a readable safetensors file ({error}).") from None


def expected_shapes(config: dict) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The tensors a HybridBERT config's architecture holds, and those it may omit (tied to another), built on the
    meta device (no memory, no initialisation)."""
    architecture = (config.get("architectures") or ["HybridBertForMaskedLM"])[0]
    model_class = getattr(modeling, architecture, None)
    if model_class is None:
        raise InvalidInputFileError(
            f"config.json names architecture {architecture!r}, which is not a HybridBERT class."
        )
    fields = {key: value for key, value in config.items() if key not in ("architectures", "auto_map", "model_type")}
    with torch.device("meta"):
        model = model_class(modeling.HybridBertConfig(**fields))
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}, tied


def check_weights(folder: str | Path, match_config: bool = True) -> None:
    """Every weight file of `folder` opens with safetensors and (`match_config`) holds exactly the tensors, with the
    shapes, that its config.json's architecture has. The error names the file and the first differences."""
    folder = Path(folder)
    files = weight_files(folder)
    if not files:
        raise InvalidInputFileError(f"{folder} holds no {SAFE_WEIGHTS_NAME} (or sharded safetensors index).")
    saved = {}
    for path in files:
        shapes = tensor_shapes(path)
        saved.update({name: (shape, path) for name, shape in shapes.items()})
    if not match_config:
        return
    config = read_config(folder)
    if config.get("model_type") != modeling.HybridBertConfig.model_type:
        return  # another library's model (an HF BERT): its own loader checks it
    expected, tied = expected_shapes(config)
    problems = [
        f"{name} is {list(shape)} in {path.name}, the config needs {list(expected[name])}"
        for name, (shape, path) in saved.items()
        if name in expected and expected[name] != shape
    ]
    problems += [f"{name} in {saved[name][1].name} is not part of the model" for name in saved if name not in expected]
    problems += [f"{name} is missing" for name in expected if name not in saved and name not in tied]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise InvalidInputFileError(f"{', '.join(map(str, files))} does not match {folder / CONFIG_NAME}: {shown}.")
