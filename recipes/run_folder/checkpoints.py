"""Checkpoints that exist whole or not at all, and resuming only from one that holds the requested model.

`AtomicCheckpointTrainer` has Trainer write each checkpoint into `tmp-checkpoint-N/` (every process its part, then
`write_checkpoint_extras`), flushes it to disk, and renames it to `checkpoint-N` in one step; only then are older
checkpoints rotated away (`save_total_limit`). A kill at any moment, even mid-save, leaves the last complete checkpoint;
a save that fails (a full disk) removes its staging folder and raises `CheckpointError` naming the cause.
`last_checkpoint` finds the newest complete one, skipping incomplete ones with a warning naming them.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints, sort_checkpoints

from modeling import HybridBertConfig
from recipes.data.input_files import InvalidInputFileError, check_weights, read_config, tensor_shapes, weight_files
from recipes.environment import disk_full, free_space
from recipes.records import plain

STAGING_PREFIX = "tmp-"
TRAINER_STATE_FILE = "trainer_state.json"  # Trainer writes it last into a checkpoint
# Config fields that describe a saved model without shaping it: a checkpoint may differ from the requested model in these.
INFORMATIONAL_CONFIG_FIELDS = (
    "transformers_version", "_name_or_path", "architectures", "auto_map", "sparse_prediction", "dtype", "torch_dtype",
    "id2label", "label2id", "return_dict", "output_hidden_states", "output_attentions",
    "size",  # a name for the dimensions, which are compared themselves (a model made from a BERT may lack it)
)  # fmt: skip


def comparable_config(config: dict) -> dict:
    """A config as two runs of the same model must agree on it: every field but the informational ones, with the
    defaults a saved config.json leaves out filled in (a HybridBERT config read back as transformers reads it)."""
    if config.get("model_type") == HybridBertConfig.model_type:
        config = HybridBertConfig.from_dict(plain(config)).to_dict()
    return {name: value for name, value in plain(config).items() if name not in INFORMATIONAL_CONFIG_FIELDS}


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or cannot be resumed from; the message says which and why."""


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _flush_to_disk(folder: Path) -> None:
    """fsync every file and folder under `folder`, so that after a power cut a renamed checkpoint holds its data."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_folder(Path(root))


class AtomicCheckpointTrainer(Trainer):
    """A Trainer whose checkpoints appear whole or not at all (see the module docstring)."""

    _staging_dir: str | None = None

    def write_checkpoint_extras(self, checkpoint_dir: Path) -> None:
        """Files a subclass adds to every checkpoint (main process), written before the checkpoint is published."""

    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is being saved, Trainer's run folder is the staging folder: it writes checkpoint-N there.
        return self._staging_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging, final = run_dir / f"{STAGING_PREFIX}{name}", run_dir / name
        saver = self.args.should_save
        if saver and staging.exists():
            shutil.rmtree(staging)  # left by a save cut short at this same step
        self.accelerator.wait_for_everyone()
        self._staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
            if saver:
                self.write_checkpoint_extras(staging / name)
                _flush_to_disk(staging)
            self.accelerator.wait_for_everyone()  # every rank's part (RNG states, DeepSpeed shards) is written
            if saver:
                if final.exists():  # saved again at the same step: the new one replaces it
                    final.rename(staging / "replaced")
                (staging / name).rename(final)
                shutil.rmtree(staging)
                _fsync_folder(run_dir)
                if self.state.best_model_checkpoint == str(staging / name):
                    self.state.best_model_checkpoint = str(final)
                rotate_checkpoints(
                    str(run_dir), self.args.save_total_limit, best_model_checkpoint=self.state.best_model_checkpoint
                )
        except Exception as error:
            if saver:
                shutil.rmtree(staging, ignore_errors=True)
            complete = last_checkpoint(run_dir, warn=False)
            then = f"resumes from the last complete checkpoint, {complete}" if complete else "starts the run again"
            cause = f"{type(error).__name__}: {error}"
            if disk_full(error, run_dir):
                cause = f"the disk is full: {free_space(run_dir)}"
            raise CheckpointError(
                f"Could not save {final} ({cause}). Fix the cause (e.g. free disk space): the same command then {then}."
            ) from error
        finally:
            self._staging_dir = None
        self.accelerator.wait_for_everyone()


def incomplete_checkpoints(folder: Path) -> list[Path]:
    """Staging folders of saves that never completed (the process died while saving)."""
    return sorted(folder.glob(f"{STAGING_PREFIX}{PREFIX_CHECKPOINT_DIR}-*")) if folder.is_dir() else []


def last_checkpoint(folder: Path, required: tuple[str, ...] = (TRAINER_STATE_FILE,), warn: bool = True) -> str | None:
    """The newest complete `checkpoint-N` in `folder` (None if there is none). Incomplete ones (staging folders, or a
    checkpoint-N lacking a `required` file, as a writer other than this one may leave) are skipped, with a warning
    naming them; hence transformers' `sort_checkpoints` rather than `get_last_checkpoint`, which takes the newest."""
    if not folder.is_dir():
        return None
    skipped = [path.name for path in incomplete_checkpoints(folder)]
    found = None
    corrupt = []
    for path in reversed(sort_checkpoints(str(folder))):
        if not all((Path(path) / name).is_file() for name in required):
            skipped.append(Path(path).name)
        elif not readable_weights(Path(path)):
            corrupt.append(Path(path).name)
        else:
            found = path
            break
    if skipped and warn:
        warnings.warn(f"{folder}: skipping incomplete checkpoint(s) {', '.join(skipped)} (cut short while saving).")
    if corrupt and warn:
        warnings.warn(
            f"{folder}: skipping checkpoint(s) {', '.join(corrupt)}, whose weights cannot be read (corrupt); "
            f"resuming from {Path(found).name if found else 'the start'}."
        )
    return found


def readable_weights(checkpoint: Path) -> bool:
    """Whether every safetensors file of a checkpoint opens (its header read; a truncated or overwritten file fails)."""
    try:
        for path in weight_files(checkpoint):
            tensor_shapes(path)
    except InvalidInputFileError:
        return False
    return True


def check_resumable(checkpoint: str | Path, requested: dict, required: tuple[str, ...] = (TRAINER_STATE_FILE,)) -> None:
    """Refuse, before anything is loaded, a checkpoint that is incomplete, whose files are unreadable, whose model's
    config differs from the requested one in any field that shapes it (one message naming each with both values), or
    whose tensors are not those the requested model needs (never loaded non-strictly into a model or optimizer)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {checkpoint}: no such checkpoint folder.")
    missing = [name for name in required if not (checkpoint / name).is_file()]
    if missing:
        raise CheckpointError(f"{checkpoint} is incomplete (no {', '.join(missing)}): it cannot be resumed from.")
    saved, wanted = comparable_config(read_config(checkpoint)), comparable_config(requested)
    differing = sorted(name for name in set(saved) | set(wanted) if saved.get(name) != wanted.get(name))
    if differing:
        raise CheckpointError(
            f"{checkpoint} holds a different model than requested: "
            + "; ".join(f"{name} is {saved.get(name)!r} there, {wanted.get(name)!r} requested" for name in differing)
            + ". Resume with the checkpoint's settings, or start a new --output_dir."
        )
    check_weights(checkpoint)
