"""What the running study depends on, as digests and numbers that a later commit must reproduce: the prepared
training blocks, the held-out blocks and their masks (byte for byte), and a few training steps of three arms with the
study's recipe (their held-out loss and accuracy after those steps). `frozen.json` holds the values the study's code
gave; `tests/test_study_freeze.py` fails when the code on `main` gives others, so a refactor that would change a
running study's data or numerics is caught before it lands.

    python -m studies.equal_time.freeze --write     # regenerate frozen.json (only for a new study plan)

The training numbers depend on the machine kind as well as the code (the recipe is bf16, which some CPUs only
emulate): `frozen.json` holds them for both kinds, each made with the study's code, and `--write` replaces this
machine's kind only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from recipes import pretrain
from recipes.data.assets import default_tokenizer
from recipes.data.corpus import prepare
from recipes.environment import REPO_ROOT
from recipes.records import StudyFingerprint
from recipes.training.arguments import bf16_where_native
from recipes.training.curves import load_curve
from recipes.training.pretrain_arguments import corpus_spec
from studies.equal_time import Plan

FROZEN_FILE = Path(__file__).with_name("frozen.json")
CHECKED_ARMS = ("bert", "hbert-v1", "pool-hybrid-dropmask")
CHECKED_STEPS = 3
CHECKED_EVAL_BLOCKS = 32


def column_sha256(dataset, column: str) -> str:
    digest = hashlib.sha256()
    for batch in dataset.with_format("numpy").iter(batch_size=4096):
        digest.update(np.ascontiguousarray(np.stack(batch[column]).astype(np.int64)).tobytes())
    return digest.hexdigest()


def data_digests(plan: Plan) -> dict:
    data_args = plan.data_arguments()
    data = prepare(corpus_spec(data_args), default_tokenizer(), data_args.max_seq_length, data_args.mlm_probability)
    return {
        "train_blocks": len(data.train),
        "train_input_ids": column_sha256(data.train, "input_ids"),
        "held_out_blocks": len(data.held_out),
        "held_out_input_ids": column_sha256(data.held_out, "input_ids"),
        "held_out_labels": column_sha256(data.held_out, "labels"),
    }


def step_argv(plan: Plan, arm_name: str, output_dir: Path) -> list[str]:
    """The study's seed-1 command for the arm, stopped after a few steps (a step-based schedule instead of the
    calibrated budget) and evaluated once, after the last, on fewer held-out blocks. The evaluations the study makes
    before it change no training number (measured: `hbert-v1`'s numbers were identical with and without them, which
    saved 14% of the check's time where bf16 is emulated)."""
    argv = plan.pretraining_argv(plan.first_run(plan.arms[arm_name]), output_dir)
    calibration = argv.index("--calibration")
    del argv[calibration : calibration + 2]
    return [
        *argv, "--max_steps", str(CHECKED_STEPS), "--max_eval_samples", str(CHECKED_EVAL_BLOCKS),
        "--save_at_eval_points", "false", "--eval_on_start", "false", "--num_eval_points", "1",
    ]  # fmt: skip


def arm_numbers(arm: str) -> dict:
    """One arm's held-out numbers after its first steps, in this process at the study's thread count."""
    plan = Plan.read()
    torch.set_num_threads(plan.threads)
    with tempfile.TemporaryDirectory() as scratch:
        pretrain.main(step_argv(plan, arm, Path(scratch)))
        last = load_curve(Path(scratch) / plan.first_run(plan.arms[arm]).name)[-1]
    return {name: last[name] for name in ("step", "loss", "accuracy", "mask_accuracy")}


def arm_numbers_in_process(arm: str) -> dict:
    """`arm_numbers` in a fresh process (`--arm`), as the study's own runs were: alone in their process."""
    with tempfile.TemporaryDirectory() as scratch:
        numbers_file = Path(scratch) / "numbers.json"
        command = [sys.executable, "-m", "studies.equal_time.freeze", "--arm", arm, "--numbers_file", str(numbers_file)]
        finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"The freeze check's {arm} run failed:\n{finished.stderr[-4000:]}")
        return json.loads(numbers_file.read_text())


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the platform has one (Linux), else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def training_numbers() -> dict:
    """Every checked arm's numbers, the arms side by side in as many processes of the study's thread count as the
    machine's cores hold: a process's numbers do not depend on its neighbours, and where bf16 is emulated each arm
    takes minutes."""
    workers = max(1, min(len(CHECKED_ARMS), usable_cores() // Plan.read().threads))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(CHECKED_ARMS, pool.map(arm_numbers_in_process, CHECKED_ARMS)))


def numbers_field() -> str:
    """The fingerprint's field for this machine's training numbers: the study's recipe is bf16, and emulated bf16
    rounds otherwise than native (a relative 1.4e-4 in `hbert-v1`'s loss after 3 steps)."""
    return "training" if bf16_where_native() else "training_emulated_bf16"


def fingerprint(earlier: StudyFingerprint | None = None) -> StudyFingerprint:
    """This machine's digests and training numbers, keeping `earlier`'s numbers of the other machine kind."""
    kept = (
        {}
        if earlier is None
        else {"training": earlier.training, "training_emulated_bf16": earlier.training_emulated_bf16}
    )
    return StudyFingerprint(**{**kept, "data": data_digests(Plan.read()), numbers_field(): training_numbers()})


def read_frozen() -> StudyFingerprint:
    return StudyFingerprint.read(FROZEN_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"Write {FROZEN_FILE.name} (else print)")
    parser.add_argument("--arm", choices=CHECKED_ARMS, help="Only train this arm's first steps (with --numbers_file)")
    parser.add_argument("--numbers_file", help="With --arm: where its numbers are written as JSON")
    args = parser.parse_args(argv)
    if args.arm:
        if not args.numbers_file:
            parser.error("--arm needs --numbers_file: where the arm's numbers go.")
        Path(args.numbers_file).write_text(json.dumps(arm_numbers(args.arm)))
        return
    values = fingerprint(earlier=read_frozen() if FROZEN_FILE.is_file() else None)
    if args.write:
        values.write(FROZEN_FILE)
    print(values)


if __name__ == "__main__":
    main()
