"""Pretraining data preparation (`recipes.data.corpus`, `recipes.data.blocks`): compact memory-mapped blocks, a
contiguous held-out slice, unigram counts counted shard by shard, a cache hit that reads none of the text, a token
cap, a killed preparation that resumes, and several processes that prepare once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recipes.data import assets, blocks, corpus, text_sources
from recipes.data.corpus import prepare
from recipes.data.text_sources import CorpusSpec, wikitext_paragraphs
from recipes.records import digest
from recipes.training.pretrain_arguments import DataArguments, train_token_cap

SEQ = 32
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer():
    return assets.default_tokenizer()


@pytest.fixture
def cache(tmp_path, monkeypatch, tokenizer) -> Path:
    """A private cache for prepared data (the tokenizer and offline sources are fetched before it is set)."""
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def small_shards(monkeypatch):
    """Groups of 10 documents and shards of 8 blocks, so that a small corpus spans many of both."""
    monkeypatch.setattr(blocks, "PACK_DOCUMENTS", 10)
    monkeypatch.setattr(blocks, "SHARD_BLOCKS", 8)


def spec(train_file: Path, **fields) -> CorpusSpec:
    return CorpusSpec(dataset=None, train_file=str(train_file), **fields)


def train_blocks(data) -> np.ndarray:
    return np.asarray(data.train.with_format("numpy")[:]["input_ids"])


def test_blocks_are_compact_memory_mapped_shards(cache, tokenizer, train_file, small_shards):
    data = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert data.train.features["input_ids"].feature.dtype == "uint16"
    shards = sorted(data.cache_path.glob("train-*.arrow"))
    assert len(shards) > 2 and [file["filename"] for file in data.train.cache_files] == [str(s) for s in shards]
    tokens = len(data.train) * SEQ
    assert sum(shard.stat().st_size for shard in shards) < 2 * tokens + 4096 * len(shards)  # 2 bytes a token
    assert not list(cache.glob("datasets/.*.partial"))


def test_unigram_counts_are_the_training_blocks_counts(cache, tokenizer, train_file, small_shards):
    data = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    expected = np.bincount(train_blocks(data).ravel(), minlength=len(tokenizer))
    assert np.array_equal(data.unigram_counts, expected)


def test_held_out_set_is_the_leading_documents(cache, tokenizer, train_file):
    """Without a validation split, the held-out set is the first documents up to 5% of the text's bytes, and the
    training blocks are the rest, packed alike."""
    data = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    documents = train_file.read_text(encoding="utf-8").splitlines()
    taken, held_out = 0, 0
    while taken < 0.05 * train_file.stat().st_size:
        taken += len(documents[held_out].encode())
        held_out += 1
    rest = blocks.pack(blocks.tokenize(tokenizer, documents[held_out:]), tokenizer, SEQ)
    assert np.array_equal(train_blocks(data), rest)
    leading = blocks.pack(blocks.tokenize(tokenizer, documents[:held_out]), tokenizer, SEQ)
    labelled = np.asarray(data.held_out.with_format("numpy")[:]["labels"])
    unmasked = np.where(labelled == -100, np.asarray(data.held_out.with_format("numpy")[:]["input_ids"]), labelled)
    assert np.array_equal(unmasked, leading)


def test_a_cache_hit_reads_none_of_the_text(cache, tokenizer, train_file, monkeypatch):
    first = prepare(spec(train_file), tokenizer, SEQ, 0.15)

    def unread(*args, **kwargs):
        raise AssertionError("the text was read on a cache hit")

    with monkeypatch.context() as patched:
        patched.setattr(text_sources, "utf8_sha256", unread)
        patched.setattr(text_sources, "load_dataset", unread)
        assert prepare(spec(train_file), tokenizer, SEQ, 0.15).fingerprint == first.fingerprint
    os.utime(train_file)  # touched, not changed: read once more to be sure, and the same prepared data found
    with monkeypatch.context() as patched:
        patched.setattr(corpus, "build", unread)
        assert prepare(spec(train_file), tokenizer, SEQ, 0.15).fingerprint == first.fingerprint


def test_max_train_tokens_caps_the_prepared_blocks(cache, tokenizer, train_file, small_shards):
    full = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    capped = prepare(spec(train_file), tokenizer, SEQ, 0.15, max_train_tokens=20 * SEQ + 5)
    assert len(capped.train) == 20 < len(full.train)
    assert np.array_equal(train_blocks(capped), train_blocks(full)[:20])
    assert capped.unigram_counts.sum() == 20 * SEQ
    assert capped.fingerprint != full.fingerprint
    with pytest.raises(ValueError, match="less than one block"):
        prepare(spec(train_file), tokenizer, SEQ, 0.15, max_train_tokens=SEQ - 1)


def test_the_default_token_cap_is_what_a_calibrated_budget_consumes():
    calibration = {"steps": 300}
    assert train_token_cap(DataArguments(max_seq_length=128), calibration, 16) == 300 * 16 * 128
    assert train_token_cap(DataArguments(max_train_tokens=0), calibration, 16) is None  # 0: the whole corpus
    assert train_token_cap(DataArguments(max_train_tokens=1000), calibration, 16) == 1000
    assert train_token_cap(DataArguments(), None, 16) is None
    with pytest.raises(ValueError, match="--max_train_tokens -5: a number of tokens, or 0 for all"):
        train_token_cap(DataArguments(max_train_tokens=-5), calibration, 16)


def test_a_killed_preparation_resumes_from_its_last_shard(cache, tokenizer, train_file, small_shards, monkeypatch):
    """Killed after its second shard, the next preparation tokenises only the documents after that shard and gives
    the blocks, held-out set and counts of an uninterrupted one."""
    finish_shard, finished = blocks.TrainShards.finish_shard, []

    def killed_after_two(self):
        finish_shard(self)
        finished.append(True)
        if len(finished) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(blocks.TrainShards, "finish_shard", killed_after_two)
        with pytest.raises(KeyboardInterrupt):
            prepare(spec(train_file), tokenizer, SEQ, 0.15)
    (partial,) = cache.glob("datasets/.*.partial")
    assert len(list(partial.glob("train-*.arrow"))) == 2

    tokenised, tokenize = [], blocks.tokenize
    monkeypatch.setattr(blocks, "tokenize", lambda tok, texts: tokenised.extend(texts) or tokenize(tok, texts))
    resumed = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert 0 < len(tokenised) < len(train_file.read_text().splitlines()) - 2 * blocks.PACK_DOCUMENTS + 1
    assert not partial.exists()

    monkeypatch.setenv(assets.CACHE_ENV, str(cache.parent / "fresh"))
    whole = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert np.array_equal(train_blocks(resumed), train_blocks(whole))
    assert np.array_equal(resumed.unigram_counts, whole.unigram_counts)
    assert resumed.held_out["labels"] == whole.held_out["labels"]


def test_a_bad_input_leaves_no_partial_folder(cache, tokenizer, tmp_path):
    one_line = tmp_path / "one-line.txt"
    one_line.write_text("A single line of text is all there is.\n")
    with pytest.raises(ValueError, match="too few to hold out"):
        prepare(spec(one_line), tokenizer, SEQ, 0.15)
    assert not [path for path in (cache / "datasets").iterdir() if path.is_dir() and path.name != "sources"]


def test_an_older_format_is_named_and_prepared_again(cache, tokenizer, train_file, capsys):
    settings = corpus.preparation_settings(
        spec(train_file), text_sources.source_fingerprint(spec(train_file)), tokenizer, SEQ, 0.15, format=1
    )
    older = cache / "datasets" / digest(settings)[:16]
    older.mkdir(parents=True)
    (older / "settings.json").write_text(json.dumps(settings))
    prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert f"Data prepared in an older format at {older}" in capsys.readouterr().out


def test_several_files_and_formats_are_one_corpus(cache, tokenizer, tmp_path):
    lines = wikitext_paragraphs(80)
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": line}) + "\n" for line in lines[:40]))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": line}) + "\n" for line in lines[40:]))
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    from_json = prepare(spec(tmp_path / "*.jsonl"), tokenizer, SEQ, 0.15)
    from_text = prepare(spec(tmp_path / "all.txt"), tokenizer, SEQ, 0.15)
    assert len(from_json.train) > 0 and abs(len(from_json.train) - len(from_text.train)) <= len(from_text.train) // 10


PREPARE = """
import sys
from recipes.data import assets, corpus
tokenizer = assets.default_tokenizer()
build = corpus.build
def announced(*args, **kwargs):
    print("prepared by this process", flush=True)
    return build(*args, **kwargs)
corpus.build = announced
data = corpus.prepare(corpus.CorpusSpec(dataset=None, train_file=sys.argv[1]), tokenizer, 32, 0.15)
print("fingerprint", data.fingerprint, len(data.train), flush=True)
"""


def test_processes_started_together_prepare_once(tmp_path, train_file):
    """Two processes (two ranks of one launch) preparing the same corpus: one prepares, the other waits for it on the
    cache's lock (no timeout) and reads what it wrote."""
    assets.default_tokenizer()  # fetched into the shared cache, which the private one links to
    env = {**os.environ, assets.CACHE_ENV: str(tmp_path / "cache")}
    (tmp_path / "cache").mkdir()
    os.symlink(assets.cache_dir() / "assets", tmp_path / "cache" / "assets")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PREPARE), str(train_file)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert sum(output.count("prepared by this process") for output in outputs) == 1
    assert len({output.splitlines()[-1] for output in outputs}) == 1


def test_prepare_data_prepares_what_pretraining_reads(cache, train_file):
    from recipes.prepare_data import main as prepare_data

    summary = prepare_data(
        ["--train_file", str(train_file), "--max_seq_length", str(SEQ), "--max_train_tokens", "6400"]
    )
    assert summary["train_blocks"] == 6400 // SEQ and Path(summary["cache_path"]).parent == cache / "datasets"
    again = prepare_data(["--train_file", str(train_file), "--max_seq_length", str(SEQ), "--max_train_tokens", "6400"])
    assert again["fingerprint"] == summary["fingerprint"]


def test_a_dataset_loaded_by_name_is_prepared_from_its_splits(cache, tokenizer, tmp_path):
    """--dataset_name goes through `datasets.load_dataset` (a local dataset folder here; a Hub id with a network):
    its validation split is the held-out set."""
    lines = wikitext_paragraphs(90)
    folder = tmp_path / "dataset"
    folder.mkdir()
    for split, part in (("train", lines[:80]), ("validation", lines[80:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": line}) + "\n" for line in part))
    data = prepare(CorpusSpec(dataset=None, dataset_name=str(folder)), tokenizer, SEQ, 0.15)
    assert np.array_equal(train_blocks(data), blocks.pack(blocks.tokenize(tokenizer, lines[:80]), tokenizer, SEQ))
    assert len(data.held_out) == len(blocks.pack(blocks.tokenize(tokenizer, lines[80:]), tokenizer, SEQ))


def test_tokenising_processes_give_the_same_blocks(cache, tokenizer, train_file, small_shards, monkeypatch):
    one = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    monkeypatch.setenv(assets.CACHE_ENV, str(cache.parent / "two-processes"))
    two = prepare(spec(train_file), tokenizer, SEQ, 0.15, num_proc=2)
    assert np.array_equal(train_blocks(one), train_blocks(two)) and one.fingerprint == two.fingerprint
    assert np.array_equal(one.unigram_counts, two.unigram_counts)


def test_a_full_disk_during_preparation_is_named_and_leaves_nothing(tokenizer, train_file, small_disk, monkeypatch):
    disk = small_disk("256k")
    monkeypatch.setenv(assets.CACHE_ENV, str(disk))
    with pytest.raises(OSError, match=r"The disk is full: cannot prepare the pretraining data in .* MB free"):
        prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert not list((disk / "datasets").glob(".*.partial"))


KILLED_PREPARATION = """
import sys, time
from recipes.data import assets, blocks, corpus
from recipes.data.text_sources import CorpusSpec
blocks.PACK_DOCUMENTS, blocks.SHARD_BLOCKS = 10, 8
finish_shard = blocks.TrainShards.finish_shard
def finish_then_hang(self):
    finish_shard(self)
    if len(self.progress.shards) == 2:
        print("two shards written", flush=True)
        time.sleep(600)
blocks.TrainShards.finish_shard = finish_then_hang
corpus.prepare(CorpusSpec(dataset=None, train_file=sys.argv[1]), assets.default_tokenizer(), 32, 0.15)
"""


def test_a_preparation_killed_with_sigkill_resumes_from_its_shards(
    cache, tokenizer, train_file, small_shards, monkeypatch
):
    """A real kill -9 after two shards: the next preparation keeps them, and its blocks are an uninterrupted one's."""
    (cache / "datasets").mkdir(parents=True)
    os.symlink(Path(tokenizer.name_or_path).parent, cache / "assets")  # the offline assets the tokenizer came from
    env = {**os.environ, assets.CACHE_ENV: str(cache)}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_PREPARATION), str(train_file)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        assert any(line.strip() == "two shards written" for line in process.stdout)
    finally:
        process.kill()
        process.wait()
    (partial,) = cache.glob("datasets/.*.partial")
    kept = {shard.name: shard.read_bytes() for shard in partial.glob("train-*.arrow")}
    assert len(kept) == 2
    tokenised, tokenize = [], blocks.tokenize
    monkeypatch.setattr(blocks, "tokenize", lambda tok, texts: tokenised.extend(texts) or tokenize(tok, texts))
    resumed = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert {name: (resumed.cache_path / name).read_bytes() for name in kept} == kept
    documents = len(train_file.read_text(encoding="utf-8").splitlines())
    assert 0 < len(tokenised) <= documents - 2 * blocks.PACK_DOCUMENTS  # the two shards' documents are not read again
    monkeypatch.setenv(assets.CACHE_ENV, str(cache.parent / "uninterrupted"))
    whole = prepare(spec(train_file), tokenizer, SEQ, 0.15)
    assert np.array_equal(train_blocks(resumed), train_blocks(whole))
    assert np.array_equal(resumed.unigram_counts, whole.unigram_counts)
