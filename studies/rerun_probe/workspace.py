"""The files a rerun-probe case starts from: the probe's text, a tiny BERT, a finished run, a run stopped by a signal,
and small filesystems mounted to be full or read-only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from recipes.data import assets
from recipes.data.text_sources import wikitext_paragraphs
from studies.rerun_probe import probe_env, run_command

MODEL = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2"
NEW_MODEL = ["--variant", "hbert-v1", "--size", "tiny", "--config_overrides", MODEL]
BASE = [
    "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16",
    "--max_eval_samples", "16", "--use_cpu", "--data_seed", "1", "--logging_steps", "10",
]  # fmt: skip
LONG_STEPS = 1000  # long enough to be stopped after its first checkpoint, however fast a step is
STEPS_PER_CHECKPOINT = 20
SHORT_STEPS = 20  # a finished run


@dataclass
class Workspace:
    root: Path
    train_file: Path
    other_train_file: Path
    _finished: Path | None = None

    def folder(self, name: str) -> Path:
        return self.root / name

    def pretrain(
        self, output_dir: Path, *extra: str, steps: int = SHORT_STEPS, train_file: Path | None = None, model=NEW_MODEL
    ) -> list:
        """A pretraining command: a new tiny hbert-v1 (or the `model` arguments), `steps` steps, the probe's text."""
        eval_points = max(1, steps // STEPS_PER_CHECKPOINT)
        return [
            "-m", "recipes.pretrain", *model, *BASE, "--train_file", str(train_file or self.train_file),
            "--output_dir", str(output_dir), "--max_steps", str(steps), "--num_eval_points", str(eval_points), *extra,
        ]  # fmt: skip

    def bert(self) -> Path:
        """A tiny random BERT with the real WordPiece tokenizer, saved as a Hub checkpoint is."""
        folder = self.root / "bert"
        if not folder.is_dir():
            torch.manual_seed(0)
            tokenizer = assets.default_tokenizer()
            config = BertConfig(
                vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64,
            )  # fmt: skip
            BertModel(config).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        return folder

    def finished(self) -> Path:
        """A finished short run (built once, copied by the cases that change it)."""
        if self._finished is None:
            self._finished = self.root / "finished"
            result = run_command(self.pretrain(self._finished), self.root)
            if result.returncode != 0:
                raise RuntimeError(f"the probe's finished run failed: {result.stderr_tail}")
        return self._finished

    def copy_of_finished(self, name: str) -> Path:
        target = self.folder(name)
        shutil.copytree(self.finished(), target, ignore=shutil.ignore_patterns(".run.lock"))
        return target

    def stopped(self, name: str, how: signal.Signals = signal.SIGTERM, *extra: str) -> Path:
        """A run stopped by `how` once its first checkpoint is complete (SIGTERM: the run saves and stops as
        interrupted; SIGKILL: it dies where it is)."""
        output_dir = self.folder(name)
        process = subprocess.Popen(
            [sys.executable, *self.pretrain(output_dir, *extra, steps=LONG_STEPS)],
            cwd=self.root, env=probe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while not any((path / "trainer_state.json").is_file() for path in output_dir.glob("checkpoint-*")):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the probe's run to stop ended first: {process.stderr.read()[-2000:]}")
            time.sleep(0.1)
        process.send_signal(how)
        process.communicate(timeout=600)
        return output_dir


def workspace(root: Path) -> Workspace:
    paragraphs = wikitext_paragraphs(240)
    train_file, other = root / "train.txt", root / "other.txt"
    train_file.write_text("\n".join(paragraphs[:120]) + "\n", encoding="utf-8")
    other.write_text("\n".join(paragraphs[120:]) + "\n", encoding="utf-8")
    return Workspace(root, train_file, other)


def mounted(space: Workspace, name: str, size: str, read_only: bool = False) -> Path:
    path = space.folder(name)
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)
    return path


def unmount_all(root: Path) -> None:
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        point = line.split()[1]
        if point.startswith(str(root)):
            subprocess.run(["umount", point], check=False, capture_output=True)


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        mounted_ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], capture_output=True)
        if mounted_ok.returncode != 0:
            return False
        subprocess.run(["umount", folder], check=False)
    return True
