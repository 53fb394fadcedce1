"""A run folder's identity (`run.json`): the mark that a folder is a run of this project, and what shapes its result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recipes.records.files import flattened, from_dict, plain, read_json_object, set_fields, write_json

IDENTITY_FILE = "run.json"


@dataclass(frozen=True)
class RunIdentity:
    """A run folder's `run.json`, written when a recipe claims the folder: the mark that the folder is a run of this
    project (only a marked folder is ever replaced), `shapes` — everything that shapes the run's result (the model
    config after overrides, the data and its fingerprint, the training arguments that change the trajectory, the
    budget, the seeds), which a command continuing the run must repeat — and `conditions`, what may differ between the
    commands of one run (code commit, threads, logging and evaluation cadence), as the latest command had them."""

    KIND: ClassVar[str] = "run identity (run.json)"
    FILE: ClassVar[str] = IDENTITY_FILE
    SCHEMA_VERSION: ClassVar[int] = 1

    recipe: str
    shapes: dict
    conditions: dict
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def path(cls, folder: str | Path) -> Path:
        return Path(folder) / cls.FILE

    @classmethod
    def read(cls, folder: str | Path) -> RunIdentity | None:
        """The folder's identity, None when it has none (an empty folder, or a run from before identities)."""
        path = cls.path(folder)
        if not path.is_file():
            return None
        data = read_json_object(path, cls.KIND)
        if data.get("schema_version") != cls.SCHEMA_VERSION:
            raise ValueError(
                f"{path} has schema_version {data.get('schema_version')!r}; this code reads {cls.SCHEMA_VERSION}."
            )
        return from_dict(cls, data, path)

    def write(self, folder: str | Path) -> Path:
        return write_json(self.path(folder), set_fields(self))

    def differences(self, requested: RunIdentity) -> list[str]:
        """One line per setting where `requested` differs from this run: its name, this run's value, the command's.
        A setting one side lacks agrees with the other side leaving it unset (None): it is an argument added to the
        recipe after the run began, and unset it keeps the recipe's earlier behaviour."""
        if requested.recipe != self.recipe:
            return [f"recipe: this folder holds a {self.recipe} run, the command is {requested.recipe}"]
        ours, theirs = flattened(plain(self.shapes)), flattened(plain(requested.shapes))
        return [
            f"{name}: the run has {ours.get(name, '(absent)')!r}, this command {theirs.get(name, '(absent)')!r}"
            for name in sorted(set(ours) | set(theirs))
            if ours.get(name) != theirs.get(name)
        ]
