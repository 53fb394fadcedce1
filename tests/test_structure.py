"""The tree shows the pipeline: modules import each other without a cycle, none grows past ~400 lines, and the
library does not depend on the studies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling", "recipes", "studies")
MAX_LINES = 450  # "~400": a module past this has more than one job
MODULES = {
    ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
    for package in PACKAGES
    for path in sorted((REPO / package).rglob("*.py"))
    if "metrics" not in path.parts  # evaluate's metric scripts, loaded by path
}


def imported_modules(name: str, path: Path) -> set[str]:
    """The project modules `name` imports at import time (imports under `if TYPE_CHECKING:` included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {candidate for candidate in candidates if candidate in MODULES and candidate != name}
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def cycle_from(start: str) -> list[str] | None:
    """A chain of imports from `start` back to itself, if any (parent packages, which Python imports first, are not
    edges: `recipes.data` holds no code)."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, chain = stack.pop()
        for child in GRAPH[node]:
            if child == start:
                return [*chain, child]
            if child not in seen:
                seen.add(child)
                stack.append((child, [*chain, child]))
    return None


def test_the_graph_sees_imports():
    assert "recipes.training.clock" in GRAPH["recipes.training.budget"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle(name):
    assert cycle_from(name) is None


def test_the_library_does_not_import_the_studies():
    library = [name for name in MODULES if not name.startswith("studies")]
    assert [(name, sorted(GRAPH[name])) for name in library if any(m.startswith("studies") for m in GRAPH[name])] == []


def test_no_module_over_the_limit():
    """The model's two remote-code files are the exception: a saved model carries them, whole, to the Hub."""
    library = {name: path for name, path in MODULES.items() if not name.startswith("modeling")}
    lines = {name: path.read_text(encoding="utf-8").count("\n") for name, path in library.items()}
    assert {name: count for name, count in lines.items() if count > MAX_LINES} == {}
