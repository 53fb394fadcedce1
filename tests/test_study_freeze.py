"""The equal-time study runs for days over several commits: the data blocks, held-out masks and training numerics it
depends on must stay what they were when it started (`studies/equal_time/frozen.json`)."""

from pathlib import Path

import pytest

from recipes.training.pretrain_arguments import parse_args, train_token_cap
from studies.equal_time import freeze


@pytest.fixture(scope="module")
def frozen() -> dict:
    return freeze.read_frozen()


def test_study_data_blocks_and_masks_are_byte_identical(frozen):
    assert freeze.data_digests(freeze.Plan.read()) == frozen.data


@pytest.mark.slow
def test_study_first_steps_give_the_frozen_numbers(frozen):
    """Against the numbers the study's code gave on this kind of machine (native or emulated bf16)."""
    expected = getattr(frozen, freeze.numbers_field())
    if expected is None:
        pytest.skip(f"frozen.json has no {freeze.numbers_field()} numbers: make them with the study's code")
    numbers = freeze.training_numbers()
    assert set(numbers) == set(expected)
    for arm, values in expected.items():
        assert numbers[arm]["step"] == values["step"], arm
        for name in ("loss", "accuracy", "mask_accuracy"):
            assert numbers[arm][name] == pytest.approx(values[name], rel=1e-4, abs=1e-6), (arm, name)


def test_the_check_counts_cores_where_the_platform_has_no_cpu_affinity(monkeypatch):
    """macOS and Windows have no `os.sched_getaffinity`: the check runs there on every core, one process at least."""
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert freeze.usable_cores() == 6
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert freeze.usable_cores() == 1


def test_the_study_prepares_every_training_block_whatever_its_calibration():
    """The study's runs were made when a calibrated run prepared the whole corpus; its commands keep that (a capped run
    gets another decoder bias and data order), which the data digests above, made without a calibration, cannot see."""
    plan = freeze.Plan.read()
    for run in plan.runs():
        data_args = parse_args(plan.pretraining_argv(run, Path("unused")))[1]
        assert train_token_cap(data_args, {"steps": 10**6}, samples_per_step=16) is None, run.name
