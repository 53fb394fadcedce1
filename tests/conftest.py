from pathlib import Path

import pytest
from helpers import architectures, wikitext_paragraphs

from modeling import VARIANTS


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
