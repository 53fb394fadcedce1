"""The README is a user's document whose every table is generated, and its examples (and the docs') run as written.

The README's variants table and the equal-time headline are the functions that generate them, applied to the specs
and the study's committed table; a block of the README or of `docs/` marked by the HTML comment `<!-- runs on the demo's outputs -->` on the line before its fence. Each marked
block runs unchanged (Python in a fresh interpreter, shell in bash with the venv's `python` first on PATH) in a
temporary folder that holds tiny stand-ins of the demo's outputs at the demo's paths — a pretraining run made by the
real recipe and its TREC classifier — plus `my_corpus.txt` (the user's text the README asks for) and the repository's
`recipes/` and `modeling/`, so that commands naming `recipes/pretrain.py` run as typed from a clone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recipes.cards.markdown import generated_block
from recipes.cards.model_card import variants_table
from recipes.data.text_sources import wikitext_paragraphs
from recipes.distill import DistillationArguments
from recipes.finetune import main as finetune
from recipes.models.parameters import breakdown_table, breakdowns
from recipes.pretrain import main as pretrain
from recipes.records import DataScaleRecord, EqualTimeTable, StepTimesRecord
from recipes.training.arguments import parse_args
from recipes.training.pretrain_arguments import BudgetArguments, DataArguments, PretrainingArguments
from studies import data_scale
from studies.equal_time import headline
from studies.healing import frontier_headline
from studies.healing.arguments import HealStudyArguments
from studies.zoo.arguments import ZooArguments

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runs on the demo's outputs -->"
DEMO_RUN = Path("runs/demo/hbert-v1-tiny-1m-seed1")
DEMO_CLASSIFIER = Path("runs/demo/finetuned/hbert-v1-tiny-1m-seed1/trec/pretrained-seed1")
ARGUMENT_FILES = {  # a settings file -> the dataclasses of the command that reads it
    "studies/demo/zoo.json": (ZooArguments,),
    "studies/demo/heal.json": (DistillationArguments, DataArguments, BudgetArguments, PretrainingArguments),
    "studies/healing/study.json": (HealStudyArguments,),
    **{f"studies/zoo/configs/{path.name}": (ZooArguments,) for path in (REPO / "studies/zoo/configs").glob("*.json")},
}
BLOCK = re.compile(re.escape(MARKER) + r"\n```(python|bash)\n(.*?)\n```", re.DOTALL)


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every block marked to run on the demo's outputs; a marker not followed by a fence fails."""
    blocks = BLOCK.findall(text)
    assert len(blocks) == text.count(MARKER), "a run marker is not directly followed by a ```python or ```bash block"
    return blocks


README = (REPO / "README.md").read_text(encoding="utf-8")
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_BLOCKS = [block for document in DOCUMENTS for block in marked_blocks(document.read_text(encoding="utf-8"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")


def test_readme_is_a_short_users_document():
    assert README.count("\n") <= 300


def test_readme_variants_table_is_the_variant_specs():
    """The table lists every declared variant with its layout and description, as `variants_table` writes it."""
    assert "\n".join(variants_table()) in README


def test_readme_headline_is_the_studys_committed_table():
    """Every number of the README's results is the equal-time study's table.json (itself checked against the records
    by tests/test_equal_time_study.py); `python -m studies.equal_time.headline` rewrites it."""
    table = EqualTimeTable.read(REPO / headline.TABLE_FILE)
    assert headline.readme_block(README) == headline.headline(table)


def test_readme_frontier_block_is_the_committed_frontier_table():
    """The README's healing-frontier block is what the committed table gives (or says that none is measured yet);
    `python -m studies.healing.frontier_headline` rewrites it."""
    table, layouts = frontier_headline.committed_table(), frontier_headline.committed_layouts()
    assert frontier_headline.readme_block(README) == frontier_headline.headline(table, layouts)


def test_readme_data_scale_block_is_the_committed_measurement():
    """The README's data-at-scale sentence is `studies.data_scale.summary` of the committed record."""
    record = DataScaleRecord.read(data_scale.RECORD_FILE) if data_scale.RECORD_FILE.is_file() else None
    assert generated_block(README, data_scale.START, data_scale.END) == data_scale.summary(record)


def test_the_healing_docs_table_is_the_committed_healing_table():
    """docs/healing.md quotes the healing study's table: every row as `results/heal/table.md` has it."""
    committed = (REPO / "results/heal/table.md").read_text(encoding="utf-8").split("\n\n")[0].splitlines()
    quoted = [line.strip() for line in (REPO / "docs/healing.md").read_text(encoding="utf-8").splitlines()]
    start = quoted.index(committed[0])
    assert quoted[start : start + len(committed)] == committed


def test_the_committed_parameter_table_is_what_the_models_count():
    assert breakdown_table(breakdowns("base"), "base") + "\n" == (REPO / "results/parameters_base.md").read_text()


COMMAND = re.compile(r"python -m ([a-z_.]+)|(?:python|launch) ([a-z_/]+\.py)")


@pytest.mark.parametrize("document", [*DOCUMENTS, REPO / "Makefile"], ids=lambda path: path.name)
def test_every_command_names_a_module_or_script_that_exists(document):
    """`python -m X` and `python path.py` in the documents and the Makefile name code that is there."""
    commands = COMMAND.findall(document.read_text(encoding="utf-8"))
    missing = [
        module or script
        for module, script in commands
        if module not in ("pip", "pytest")
        and not (REPO / (script or module.replace(".", "/") + ".py")).is_file()
        and not (REPO / (module or "").replace(".", "/") / "__main__.py").is_file()
    ]
    assert missing == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=[document.name for document in DOCUMENTS])
def test_local_links_lead_to_files_that_exist(document):
    targets = [target for target in LINK.findall(document.read_text(encoding="utf-8")) if "://" not in target]
    missing = [target for target in targets if not (document.parent / target).exists()]
    assert not missing


@pytest.fixture
def threads_of_the_healing_step_times():
    """The healing study checks its step times were measured at this process's thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(StepTimesRecord.read(REPO / "results/heal/step_times.json").settings["threads"])
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("argument_file", sorted(ARGUMENT_FILES))
def test_every_argument_file_parses_as_its_command_reads_it(argument_file, threads_of_the_healing_step_times):
    """The studies' and the Makefile's settings files hold only fields their command has, with values it accepts."""
    dataclass_types = ARGUMENT_FILES[argument_file]
    parsed = parse_args(dataclass_types, [str(REPO / argument_file)])
    assert [type(value) for value in parsed] == list(dataclass_types)


def test_the_makefile_runs_the_argument_files():
    commands = subprocess.run(["make", "-n", "demo", "zoo", "zoo-heal"], cwd=REPO, capture_output=True, text=True)
    assert [name for name in ARGUMENT_FILES if f" {name}" not in commands.stdout] == []


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory, train_file) -> Path:
    """A folder laid out like a clone after `make demo`, with a tiny pretraining run and its TREC classifier."""
    root = tmp_path_factory.mktemp("clone")
    for package in ("recipes", "modeling"):
        (root / package).symlink_to(REPO / package, target_is_directory=True)
    (root / "my_corpus.txt").write_text("\n".join(wikitext_paragraphs(200)) + "\n", encoding="utf-8")
    pretrain([
        "--variant", "hbert-v1", "--size", "tiny", "--train_file", str(train_file), "--max_seq_length", "64",
        "--per_device_train_batch_size", "8", "--max_steps", "4", "--budget", "1h", "--num_eval_points", "0",
        "--max_eval_samples", "8", "--output_dir", str(root / DEMO_RUN),
    ])  # fmt: skip
    finetune([
        "--model", str(root / DEMO_RUN), "--task", "trec", "--max_seq_length", "32", "--max_train_samples", "64",
        "--max_steps", "2", "--per_device_eval_batch_size", "512", "--output_dir", str(root / DEMO_CLASSIFIER),
    ])  # fmt: skip
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "language, code", README_BLOCKS, ids=[f"{i}-{language}" for i, (language, _) in enumerate(README_BLOCKS)]
)
def test_readme_example_runs_as_written(language, code, demo_folder):
    """The block exits with status 0 in the stand-in clone."""
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-c", code] if language == "python" else ["bash", "-e", "-c", code]
    result = subprocess.run(command, cwd=demo_folder, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{code}\n--- stderr ---\n{result.stderr[-4000:]}"
