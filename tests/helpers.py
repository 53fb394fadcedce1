"""Tiny configurations of every variant and padded random batches, for tests (`from helpers import ...`)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import BertConfig

from modeling import MIXER_SPECS, VARIANTS, HybridBertConfig

TINY_VOCAB = 211
HF_VOCAB = 211
# The tiny random vocabulary's [CLS], [SEP] and [MASK]; real runs take them from the tokenizer.
CLS_ID, SEP_ID, MASK_ID = 2, 3, 4
ONLY = "only-"  # an architecture made of one mixer: `only-<mixer>`, `only-<mixer>+code` with its reference-code options
REFERENCE_CODE = "+code"


def tiny_config(variant: str = "bert", **overrides) -> HybridBertConfig:
    """A fresh, very small config of a named variant (a fresh one per model: building a model mutates its config)."""
    fields = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        mask_token_id=MASK_ID,
        cls_token_id=CLS_ID,
        sep_token_id=SEP_ID,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    fields.update(overrides)
    return HybridBertConfig.from_variant(variant, size="tiny", **fields)


def architectures() -> list[str]:
    """Every named variant, every declared mixer alone in every layer, and each mixer with its reference-code
    options."""
    coded = [f"{ONLY}{name}{REFERENCE_CODE}" for name, spec in MIXER_SPECS.items() if spec.reference_code]
    return [*VARIANTS, *(f"{ONLY}{name}" for name in MIXER_SPECS), *coded]


def architecture_config(name: str, **overrides) -> HybridBertConfig:
    """A tiny config of a name from `architectures()`."""
    if not name.startswith(ONLY):
        return tiny_config(name, **overrides)
    mixer = name.removeprefix(ONLY).removesuffix(REFERENCE_CODE)
    options = MIXER_SPECS[mixer].reference_code if name.endswith(REFERENCE_CODE) else {}
    return tiny_config("bert", mixer_types=[mixer] * 4, **{**options, **overrides})


def padded_batch(batch: int = 3, seq: int = 12, vocab: int = TINY_VOCAB, seed: int = 0, boundaries: bool = False):
    """Random ids (never [CLS], [SEP], [MASK] or padding) with right padding of different lengths per row; with
    `boundaries`, each row reads [CLS] … [SEP] … with a [SEP] in the middle of its real tokens and none at their end,
    so that the last segment runs on into the padding."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(MASK_ID + 1, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row in range(1, batch):
        attention_mask[row, seq - 3 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    if boundaries:
        for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
            input_ids[row, [0, length // 2]] = torch.tensor([CLS_ID, SEP_ID])
    return input_ids, attention_mask


def random_hf(cls, seed: int = 0, **config_fields):
    """A tiny HF BERT of class `cls` (any `config_fields` set, e.g. `id2label`) in eval mode, every weight (LayerNorms
    and biases too) moved off its init.

    Perturbing the ones/zeros of LayerNorms and biases makes a weight copied to the wrong place show in the outputs.
    """
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=HF_VOCAB,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        **config_fields,
    )
    model = cls(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():  # tied weights appear once
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def self_attention_mapping(self_layers: list[int], prefix: str = "") -> dict[str, str]:
    """HybridBERT key (under `prefix`) -> HF BertModel key of the self-attention weights at the given layers."""
    mapping = {}
    for i in self_layers:
        for ours, theirs in [
            ("mixer.query", "attention.self.query"),
            ("mixer.key", "attention.self.key"),
            ("mixer.value", "attention.self.value"),
            ("mixer_output", "attention.output.dense"),
        ]:
            for param in ("weight", "bias"):
                mapping[f"{prefix}layers.{i}.{ours}.{param}"] = f"encoder.layer.{i}.{theirs}.{param}"
    return mapping


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; fails the test with git's message."""
    identity = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost"}
    identity.update(GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env={**os.environ, **identity}, capture_output=True, text=True
    )
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
        [sys.executable, "-m", "olah.server", "--config", str(config)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
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


def block_dataset(texts: list[str], tokenizer, max_seq_length: int):
    """The texts packed into blocks as one group (as the pretraining data is), as a Dataset of `input_ids`."""
    from datasets import Dataset

    from recipes.data.blocks import pack, tokenize

    return Dataset.from_dict({"input_ids": pack(tokenize(tokenizer, texts), tokenizer, max_seq_length).tolist()})
