"""The equal-budget comparison of the mixers' reference-code options (`studies/mixer_comparison.py`): the runs it plans,
the table it writes from recorded curves, and its argument checks. (Its pretraining runs are the pretraining recipe's,
tested in test_pretrain.py.)"""

from __future__ import annotations

import json

import pytest

from modeling import MIXER_SPECS, HybridBertConfig
from recipes.records import BUDGET_FILE
from recipes.training.curves import save_curve
from recipes.training.pretrain_arguments import parse_args, parse_overrides
from studies import mixer_comparison
from studies.mixer_comparison import ARMS, ComparisonArguments, comparison_table, pretraining_argv, run_dir


def curve(accuracies: list[float], loss: float) -> list[dict]:
    return [
        {"elapsed_s": 10.0 * i, "tokens_seen": 1000 * i, "step": 5 * i, "accuracy": accuracy, "loss": loss}
        for i, accuracy in enumerate(accuracies)
    ]


def test_both_arms_of_a_seed_differ_only_by_the_reference_code_options():
    args = ComparisonArguments(
        output_dir="out", size="tiny", budget="2m", seeds=[1, 2], config_overrides="hidden_size=64",
        pretrain_args="--max_seq_length 64",
    )  # fmt: skip
    assert args.mixers == ["additive", "pooling"]
    paper, faithful = (pretraining_argv(args, "pooling", arm, seed=2) for arm in ARMS)
    model_args, data_args, budget_args, training_args = parse_args(faithful)
    assert (model_args.variant, model_args.size, budget_args.budget, training_args.seed) == (
        "pool-hybrid",
        "tiny",
        "2m",
        2,
    )
    assert data_args.max_seq_length == 64
    assert parse_overrides(model_args.config_overrides) == {"hidden_size": 64, **MIXER_SPECS["pooling"].reference_code}
    assert parse_overrides(parse_args(paper)[0].config_overrides) == {
        "hidden_size": 64,
        **MIXER_SPECS["pooling"].paper_equations,
    }
    assert training_args.output_dir == str(run_dir(args, "pooling", "reference-code", 2))
    assert not budget_args.overwrite_output_dir  # a killed run resumes
    # each arm trains its own calibrated steps, measured at the run's settings
    budget_file = parse_args(paper)[2].calibration
    assert budget_args.calibration == str(mixer_comparison.calibration_file(args, "pooling", "reference-code"))
    assert budget_file == str(mixer_comparison.calibration_file(args, "pooling", "paper")) != budget_args.calibration
    assert run_dir(args, "additive", "paper", 1).name == "addbert-paper-tiny-2m-seed1"
    # the options make a valid config of the variant (the recipe passes the tokenizer's [CLS]/[SEP])
    HybridBertConfig.from_variant(
        "pool-hybrid", "tiny", cls_token_id=1, sep_token_id=2, **MIXER_SPECS["pooling"].reference_code
    )


def test_table_pairs_the_arms_by_seed():
    curves = {
        "paper": [curve([0.0, 0.10, 0.20], 5.0), curve([0.0, 0.12, 0.22], 5.2)],
        "reference-code": [curve([0.0, 0.13, 0.21], 4.9), curve([0.0, 0.17, 0.25], 5.1)],
    }
    table = comparison_table("pooling", curves)
    assert "### pooling: `pool-hybrid`, 2 seeds" in table
    assert "Final held-out MLM loss: paper 5.100 ± 0.141, reference-code 5.000 ± 0.141." in table
    assert (
        "paper: `pooling_local_projection=false`, " in table
        and "reference-code: `pooling_local_projection=true`" in table
    )
    # last point: differences 1 and 3 pp; t(0.975, 1) = 12.706, sd 1.414 / √2 → ± 12.71
    assert "reference-code − paper: +2.00 points, 95% interval [-10.71, +14.71] over 2 paired seeds." in table
    rows = [line for line in table.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    # point 1: paper 11.00 ± 1.41, reference-code 15.00 ± 2.83, paired differences 3 and 5 pp
    assert rows[0] == "| 1 | 10 ± 0 | 1000 ± 0 | 11.00 ± 1.41 | 1000 ± 0 | 15.00 ± 2.83 | 4.00 ± 1.41 |"
    assert rows[1].endswith("| 21.00 ± 1.41 | 2000 ± 0 | 23.00 ± 2.83 | 2.00 ± 1.41 |")


def _pooling_argv(output_dir, *extra: str) -> list[str]:
    """The comparison's command line for the pooling mixer at size tiny, 1-minute budgets."""
    return ["--output_dir", str(output_dir), "--size", "tiny", "--budget", "1m", "--mixers", "pooling", *extra]


def test_finished_runs_are_not_run_again(tmp_path, monkeypatch):
    """With every run recorded, main only writes the table (pretraining would fail: it is not reachable)."""
    args = _pooling_argv(tmp_path, "--seeds", "1", "2")
    parsed = ComparisonArguments(output_dir=str(tmp_path), size="tiny", budget="1m", seeds=[1, 2], mixers=["pooling"])
    for arm in ARMS:
        for seed in (1, 2):
            directory = run_dir(parsed, "pooling", arm, seed)
            directory.mkdir(parents=True)
            save_curve(directory, curve([0.0, 0.1 * seed], 5.0))
            (directory / BUDGET_FILE).write_text(json.dumps({"budget": "1m"}))

        mixer_comparison.calibration_file(parsed, "pooling", arm).write_text("{}")

    def refuse(argv):
        raise AssertionError(f"a finished run or a made measurement was run again: {argv}")

    monkeypatch.setattr(mixer_comparison.pretrain, "main", refuse)
    monkeypatch.setattr(mixer_comparison.calibration, "calibrate_together", refuse)
    table = mixer_comparison.main(args)
    assert table == tmp_path / mixer_comparison.TABLE_FILE
    assert "### pooling: `pool-hybrid`, 2 seeds" in table.read_text()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mixers": ["self"]}, "choose among the mixers with reference-code options"),
        ({"seeds": [1, 1]}, "distinct seeds"),
        ({"pretrain_args": "--config_overrides hidden_size=64"}, "not inside --pretrain_args"),
        ({"only_calibrate": True, "calibrate": False}, "--no_calibrate turns off"),
    ],
)
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ComparisonArguments(**overrides)


def test_only_calibrate_measures_both_arms_together_and_trains_nothing(tmp_path, monkeypatch):
    """--only_calibrate measures a mixer whose records are missing, both arms in one measurement at each arm's own
    settings, and stops."""
    args = ComparisonArguments(output_dir=str(tmp_path), size="tiny", budget="1m", mixers=["pooling"])
    mixer_comparison.calibration_file(args, "pooling", "paper").write_text("{}")  # one arm measured before
    measured = []

    def refuse(argv):
        raise AssertionError(f"--only_calibrate trained: {argv}")

    monkeypatch.setattr(mixer_comparison.calibration, "calibrate_together", measured.append)
    monkeypatch.setattr(mixer_comparison.pretrain, "main", refuse)
    assert mixer_comparison.main(_pooling_argv(tmp_path, "--only_calibrate")) is None
    (together,) = measured
    outputs = [arm_argv[arm_argv.index("--output") + 1] for arm_argv in together]
    assert outputs == [str(mixer_comparison.calibration_file(args, "pooling", arm)) for arm in ARMS]
    paper, faithful = together
    assert parse_overrides(paper[paper.index("--config_overrides") + 1]) == MIXER_SPECS["pooling"].paper_equations
    overrides = parse_overrides(faithful[faithful.index("--config_overrides") + 1])
    assert overrides == MIXER_SPECS["pooling"].reference_code


def test_report_only_tables_the_finished_mixers_and_names_the_others(tmp_path, monkeypatch):
    """--report_only trains and measures nothing: the table holds the mixers whose runs have all finished and its
    heading names the ones still running."""
    args = ComparisonArguments(output_dir=str(tmp_path), size="tiny", budget="1m", seeds=[1])
    for arm in ARMS:
        directory = run_dir(args, "pooling", arm, 1)
        directory.mkdir(parents=True)
        save_curve(directory, curve([0.0, 0.1], 5.0))
        (directory / BUDGET_FILE).write_text(json.dumps({"budget": "1m"}))

    def refuse(argv):
        raise AssertionError(f"--report_only ran something: {argv}")

    monkeypatch.setattr(mixer_comparison.pretrain, "main", refuse)
    monkeypatch.setattr(mixer_comparison.calibration, "calibrate_together", refuse)
    argv = ["--output_dir", str(tmp_path), "--size", "tiny", "--budget", "1m", "--seeds", "1", "--report_only"]
    text = mixer_comparison.main(argv).read_text()
    assert "Not finished yet: additive." in text
    assert "### pooling: `pool-hybrid`, 1 seed" in text and "### additive" not in text
