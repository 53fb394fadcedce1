"""The README's examples that say they run on `make demo`'s outputs do, as written.

A block is marked by the HTML comment `<!-- runs on the demo's outputs -->` on the line before its fence. Each marked
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
from helpers import wikitext_paragraphs

from recipes.finetune import main as finetune
from recipes.pretrain import main as pretrain

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runs on the demo's outputs -->"
DEMO_RUN = Path("runs/demo/hbert-v1-tiny-1m-seed1")
DEMO_CLASSIFIER = Path("runs/demo/finetuned/hbert-v1-tiny-1m-seed1/trec/pretrained-seed1")
BLOCK = re.compile(re.escape(MARKER) + r"\n```(python|bash)\n(.*?)\n```", re.DOTALL)


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every block marked to run on the demo's outputs; a marker not followed by a fence fails."""
    blocks = BLOCK.findall(text)
    assert len(blocks) == text.count(MARKER), "a run marker is not directly followed by a ```python or ```bash block"
    return blocks


README_BLOCKS = marked_blocks((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_marks_python_and_shell_examples():
    """The marked blocks cover a saved model's use (Python) and the recipes' commands (shell)."""
    languages = [language for language, _ in README_BLOCKS]
    assert "python" in languages and "bash" in languages


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
