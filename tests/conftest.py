import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import architectures
from transformers import BertConfig, BertModel

from modeling import VARIANTS
from recipes.data.assets import default_tokenizer
from recipes.data.text_sources import wikitext_paragraphs


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    """Each named variant in turn."""
    return request.param


@pytest.fixture(params=architectures())
def architecture(request) -> str:
    """Each named variant, each declared mixer in every layer, and each mixer with its reference-code options."""
    return request.param


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    """The first 120 paragraphs of WikiText-2's training split, one per line (about 600 blocks of 32 tokens)."""
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text("\n".join(wikitext_paragraphs(120)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the real WordPiece tokenizer, saved like a Hub checkpoint."""
    torch.manual_seed(0)
    tokenizer = default_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("teacher")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; this suite does not run as root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a real filesystem of its own (tmpfs), unmounted afterwards; `mount(size)` mounts it."""
    disk = tmp_path / "disk"
    mounted = []

    def mount(size: str) -> Path:
        _mount_tmpfs(disk, size)
        mounted.append(disk)
        return disk

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)
