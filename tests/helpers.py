"""Tiny configurations of every variant and padded random batches, for tests (`from helpers import ...`)."""

import gzip
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from modeling import HybridBertConfig
from recipes import assets

TINY_VOCAB = 211
MASK_ID = 4  # the tiny random vocabulary's [MASK]; real runs take it from the tokenizer


def tiny_config(variant: str = "bert", **overrides) -> HybridBertConfig:
    """A fresh, very small config of a named variant (a fresh one per model: building a model mutates its config)."""
    fields = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        mask_token_id=MASK_ID,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    fields.update(overrides)
    return HybridBertConfig.from_variant(variant, size="tiny", **fields)


def padded_batch(batch: int = 3, seq: int = 12, vocab: int = TINY_VOCAB, seed: int = 0):
    """Random ids (never [MASK], never padding) with right padding of different lengths per row."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(MASK_ID + 1, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row in range(1, batch):
        attention_mask[row, seq - 3 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    return input_ids, attention_mask


def wikitext_paragraphs(count: int) -> list[str]:
    """The first `count` paragraphs of WikiText-2's training split (real text; headings and blank lines skipped)."""
    lines = []
    with gzip.open(assets.fetch("wikitext-2-raw") / "train.raw.gz", "rt", encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if text and not text.startswith("="):
                lines.append(text)
                if len(lines) == count:
                    break
    return lines


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; fails the test with git's message."""
    identity = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost"}
    identity.update(GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")
    result = subprocess.run(["git", "-C", str(repo), *args], env={**os.environ, **identity}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@contextmanager
def serve_olah(mirrors: Path, workdir: Path) -> Iterator[str]:
    """olah serving the git repos under `mirrors` (`models/<org>/<name>`, `datasets/<org>/<name>`) offline on a free
    loopback port; yields its URL and stops it afterwards."""
    port = free_port()
    config = workdir / "olah.toml"
    config.write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{workdir / "cache"}"\n'
        f'mirrors-path = ["{mirrors}"]\n[accessibility]\noffline = true\n'
    )
    log = (workdir / "olah.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "olah.server", "--config", str(config)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (workdir / "olah.log").read_text()[-3000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "olah did not start within 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
