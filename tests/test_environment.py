"""recipes/environment.py: a record's code commit is '+dirty' only when code differs from HEAD, not when the results,
cards or prose that a study writes while it runs do."""

import subprocess

from recipes.environment import git_commit


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_commit_is_dirty_for_code_changes_only(tmp_path):
    files = ["recipes/train.py", "results/heal/table.md", "results/heal/step_times.json", "model_cards/a/README.md"]
    files += ["README.md"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("first\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == head

    for name in files[1:]:
        (tmp_path / name).write_text("changed by a run\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == head

    (tmp_path / "recipes/train.py").write_text("changed code\n")
    assert git_commit(tmp_path) == f"{head}+dirty"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
