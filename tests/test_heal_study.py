"""studies/healing/study.py end to end on a tiny teacher: every planned run is made once, its records gathered, the table
written from them, and the same command afterwards runs nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from recipes.cards.committed import regenerate, stale_cards
from recipes.records import DistillationRecord
from recipes.training.arguments import parse_args
from studies.healing import step_times
from studies.healing.arguments import HealStudyArguments
from studies.healing.steps import replacing_short_run
from studies.healing.study import main

COMMITTED_HEALING_RUN = Path(__file__).resolve().parents[1] / "results/heal/runs/addbert-minilm-distill-600steps-seed1"


def study_argv(teacher_dir, train_file, tmp_path) -> list[str]:
    return [
        "--teacher", str(teacher_dir), "--variants", "hbert-v1", "--source_settings_variants", "hbert-v1",
        "--settings", "source", "--objectives", "distillation", "--seeds", "1", "2", "--steps", "3",
        "--tasks", "trec",
        "--training_args", f"--train_file {train_file} --max_seq_length 32 --per_device_train_batch_size 8 "
        "--max_eval_samples 16 --num_eval_points 1 --budget 10m --use_cpu",
        "--probe_args", "--max_train_samples 60 --max_length 32 --latency_seqs 16 --latency_repeats 1",
        "--finetune_args", "trec=--max_train_samples 32 --num_train_epochs 1 --max_seq_length 32 --use_cpu",
        "--runs_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
        "--cards_dir", str(tmp_path / "cards"), "--namespace", "org",
    ]  # fmt: skip


@pytest.mark.slow
def test_study_runs_once_gathers_records_and_writes_the_table(teacher_dir, train_file, tmp_path):
    argv = study_argv(teacher_dir, train_file, tmp_path)
    steps = main(argv)
    # per seed: the distillation, its probe, trec fine-tunings of the student, the unhealed conversion and the teacher
    # (with --settings source, neither the distillation nor the conversion with HBERT's own settings)
    assert len(steps) == 2 * 5 and all(step.done for step in steps)
    results = tmp_path / "results"
    run = f"hbert-v1-{teacher_dir.name}-distill-source-settings-3steps-seed1"
    assert sorted(path.name for path in (results / "runs" / run).iterdir()) == [
        "agreement_curve.json", "agreement_curve.png", "budget.json", "config.json",
    ]  # fmt: skip
    card = tmp_path / "cards" / run / "README.md"
    assert f"# {run}" in card.read_text() and regenerate(card) == card.read_text()  # from the gathered records alone
    assert "(trec: [CLS]-pooler classifier, 32 training examples, 1 epoch at lr 5e-05" in card.read_text()
    assert stale_cards(tmp_path / "cards") == []
    assert len(list((results / "finetuned").glob("*.json"))) == 2 * 3
    table = json.loads((results / "table.json").read_text())
    assert set(table["rows"]) == {
        "teacher",
        "hbert-v1, distillation 3 steps, teacher's settings",
        "hbert-v1, not healed, teacher's settings",
    }
    for row in table["rows"].values():
        trec = row["tasks"]["trec"]
        assert trec["probe"]["seeds"] == trec["finetuned"]["seeds"] == [1, 2]
    assert (
        "low"
        in table["rows"]["hbert-v1, not healed, teacher's settings"]["tasks"]["trec"]["finetuned"]["share_of_teacher"]
    )
    assert (results / "table.md").read_text().startswith("| encoder | trec probe | trec fine-tuned |")
    assert all(step.done for step in main([*argv, "--dry_run"]))  # the same command again runs nothing
    # a healing run stopped before its steps (a signal, the session's end) left a record: it runs again, and so does
    # the probe that measured it, also when the run was made again by an earlier invocation
    record_file = tmp_path / "runs" / run / "budget.json"
    complete = record_file.read_text()
    record_file.write_text(json.dumps({**json.loads(complete), "steps": 2, "stop_reason": "signal"}))
    planned = main([*argv, "--dry_run"])
    assert {step.name for step in planned if not step.done} == {run, "probe-hbert-v1-seed1.json"}
    # it continues from its checkpoint: the study never replaces a healing run
    assert "--overwrite_output_dir" not in next(step for step in planned if step.name == run).argv
    record_file.write_text(complete)
    probe_file = results / "probe-hbert-v1-seed1.json"
    probed = probe_file.read_text()
    short = json.loads(probed)
    short["encoders"][str(tmp_path / "runs" / run)]["steps"] = 2
    probe_file.write_text(json.dumps(short))
    assert {step.name for step in main([*argv, "--dry_run"]) if not step.done} == {"probe-hbert-v1-seed1.json"}
    probe_file.write_text(probed)
    # a study with more rows probes again: the recorded probe does not cover the new student and conversion
    wider = {step.name: step.done for step in main([*argv, "--settings", "own", "source", "--dry_run"])}
    assert not wider["probe-hbert-v1-seed1.json"] and wider[run]
    # another fine-tuning protocol fine-tunes again; the healing runs and probes stand
    protocol = argv.index("--finetune_args") + 1
    argv[protocol] += " --classifier_pooling mean"
    again = {step.name: step.done for step in main([*argv, "--dry_run"])}
    assert again[run] and again["probe-hbert-v1-seed1.json"]
    assert not any(done for name, done in again.items() if name.endswith("-trec"))
    # --finetune picks which encoders are fine-tuned; the healing runs and probes are planned as before
    students_only = [step.name for step in main([*argv, "--finetune", "distillation", "--dry_run"])]
    assert [name for name in students_only if name.endswith("-trec")] == [f"{run}-trec", f"{run[:-1]}2-trec"]
    assert len(students_only) == 2 * 3


def test_bad_arguments_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="--variants: \\['hbert-v3'\\] not among"):
        main(["--variants", "hbert-v3", "--dry_run"])
    with pytest.raises(ValueError, match="needs --step_times"):
        main(["--objectives", "mlm", "--dry_run"])
    with pytest.raises(ValueError, match="--finetune: \\['students'\\] not among"):
        main(["--finetune", "students", "--dry_run"])
    with pytest.raises(ValueError, match="--finetune_args: TASK=ARGUMENTS"):
        main(["--finetune_args", "sst2=--num_train_epochs 1", "--dry_run"])


@pytest.mark.slow
def test_measured_step_times_set_the_mlm_runs_steps(teacher_dir, train_file, tmp_path):
    """--measure_step_times times both objectives per variant and settings; a study with MLM healing then plans each
    MLM run, with the distillation's settings, for the steps that take the distillation's wall-clock, and refuses a
    record measured at other settings. Measuring more keeps what was measured before."""
    argv = study_argv(teacher_dir, train_file, tmp_path)
    measure = ["--measure_step_times", "--measure_steps", "2", "--measure_rounds", "1"]
    assert main([*argv, *measure]) == []
    record_path = tmp_path / "results" / "step_times.json"
    measured = json.loads(record_path.read_text())["variants"]["hbert-v1-source-settings"]
    assert len(measured["runs_s_per_step"]["distillation"]) == len(measured["runs_s_per_step"]["mlm"]) == 1
    expected = max(1, int(3 * measured["distillation_s_per_step"] / measured["mlm_s_per_step"]))
    assert measured["mlm_steps"] == expected
    study = [*argv, "--objectives", "distillation", "mlm", "--step_times", str(record_path), "--dry_run"]
    mlm = {step.name: step for step in main(study)}[
        f"hbert-v1-{teacher_dir.name}-mlm-source-settings-{expected}steps-seed1"
    ]
    assert "--keep_source_settings" in mlm.argv and "--init_from" in mlm.argv
    with pytest.raises(ValueError, match="needs \\['hbert-v1', 'hbert-v1-source-settings'\\]"):
        main([*study, "--settings", "own", "source"])
    assert main([*argv, *measure, "--settings", "own"]) == []
    record = json.loads(record_path.read_text())["variants"]
    assert sorted(record) == ["hbert-v1", "hbert-v1-source-settings"] and record["hbert-v1-source-settings"] == measured
    with pytest.raises(ValueError, match="was measured for"):
        main([*study, "--steps", "4"])


@pytest.mark.slow
def test_the_fair_mlm_control_warms_the_head_and_times_whole_runs(teacher_dir, train_file, tmp_path):
    """With --mlm_head_warmup_steps and --measure_steps 0, each timed run is a whole run (distillation for --steps,
    MLM for the steps measured so far), the step count follows the whole runs' times, and the study's MLM runs warm
    the head up first; with --vary_data_order each seed reads the corpus in its own order, and a run recorded in
    another order is not taken for done."""
    argv = study_argv(teacher_dir, train_file, tmp_path)
    argv[argv.index("--steps") + 1] = "12"
    control = ["--mlm_head_warmup_steps", "1", "--vary_data_order"]
    measure = [*argv, *control, "--measure_step_times", "--measure_steps", "0", "--measure_rounds", "1"]
    with pytest.raises(ValueError, match="would time only the head warm-up"):
        main([*argv, *control, "--measure_step_times", "--measure_steps", "1"])
    main(measure)
    record_path = tmp_path / "results" / "step_times.json"
    record = json.loads(record_path.read_text())
    assert record["protocol"]["steps_per_run"] == "whole runs"
    assert record["settings"]["mlm_head_warmup_steps"] == 1
    main(measure)  # timed again, the MLM run now as long as the study's
    measured = json.loads(record_path.read_text())["variants"]["hbert-v1-source-settings"]
    assert measured["mlm_steps"] == max(1, int(12 * measured["distillation_s_per_step"] / measured["mlm_s_per_step"]))
    study = [*argv, *control, "--objectives", "distillation", "mlm", "--step_times", str(record_path), "--dry_run"]
    steps = {step.name: step for step in main(study)}
    mlm = steps[f"hbert-v1-{teacher_dir.name}-mlm-warmhead1-source-settings-{measured['mlm_steps']}steps-seed2"]
    assert mlm.argv[mlm.argv.index("--head_warmup_steps") + 1] == "1"
    assert mlm.argv[mlm.argv.index("--data_seed") + 1] == "2"
    distilled = steps[f"hbert-v1-{teacher_dir.name}-distill-source-settings-12steps-seed2"]
    distilled.main(distilled.argv)
    assert distilled.done
    in_another_order = json.loads(distilled.record.read_text())
    in_another_order["run_record"]["training"]["data_seed"] = 42
    distilled.record.write_text(json.dumps(in_another_order))
    assert not distilled.done
    assert "--overwrite_output_dir" in {step.name: step for step in main(study)}[distilled.name].argv


def test_a_healing_run_short_of_its_steps_is_replaced_unless_a_signal_stopped_it(tmp_path):
    """A run that a signal stopped continues from its checkpoint; one that ended short any other way (the wall-clock
    fallback), or one in another data order, is replaced by the study; a complete one, or none, needs nothing."""
    assert replacing_short_run(tmp_path, 10, 42) == []
    committed = DistillationRecord.read(COMMITTED_HEALING_RUN)
    for stop_reason, steps, expected in (
        ("signal", 4, []),
        ("budget", 4, ["--overwrite_output_dir"]),
        ("max_steps", 10, []),
    ):
        dataclasses.replace(committed, stop_reason=stop_reason, steps=steps).write(tmp_path)
        assert replacing_short_run(tmp_path, 10, 42) == expected, stop_reason
    assert replacing_short_run(tmp_path, 10, 1) == ["--overwrite_output_dir"]  # another data order


def test_step_times_measured_another_way_are_not_merged(tmp_path, monkeypatch):
    """Whole-run times and short-run times of the same settings are different measurements: a record of one is not
    kept as entries of the other, while a second whole-run pass keeps the first pass's entries it does not remeasure."""
    timed = []

    def fake_argv(args, variant, objective, keep, seed, count, run_dir):
        timed.append((variant, objective, count))
        return (lambda argv: {"elapsed_s": (2.0 if objective == "mlm" else 1.0) * count, "steps": count}), []

    monkeypatch.setattr(step_times, "healing_argv", fake_argv)

    def measured(variants, measure_steps, earlier=None):
        argv = ["--variants", *variants, "--settings", "own", "--steps", "12", "--measure_rounds", "1"]
        argv += ["--runs_dir", str(tmp_path)]
        (args,) = parse_args((HealStudyArguments,), [*argv, "--measure_steps", str(measure_steps)])
        return step_times.measure_step_times(args, earlier)

    short = measured(["hbert-v1", "addbert"], 2)
    assert short.protocol["steps_per_run"] == 2 and {count for *_, count in timed} == {2}
    whole = measured(["hbert-v1"], 0, earlier=short)
    assert sorted(whole.variants) == ["hbert-v1"]  # addbert's short-run entry is not carried into a whole-run record
    assert whole.variants["hbert-v1"]["mlm_steps"] == 6
    again = measured(["addbert"], 0, earlier=whole)
    assert (
        sorted(again.variants) == ["addbert", "hbert-v1"] and again.variants["hbert-v1"] == whole.variants["hbert-v1"]
    )


def test_a_timing_stopped_part_way_goes_on_from_its_next_round(tmp_path, monkeypatch):
    """A timing keeps each round it finishes: one stopped inside its second round (a run ending short of its steps)
    stops with one clear message, and the same command times that round again, whole, and no run of the first; the
    record then holds both rounds, and the kept rounds are discarded. Rounds timed in another context are not kept."""
    timed = []

    def fake_argv(args, variant, objective, keep, seed, count, run_dir):
        def run(argv):
            timed.append(objective)
            stopped = len(timed) == 3  # the second round's first run
            steps = count // 2 if stopped else count
            # seconds per step = the run's position, so the record shows which runs it holds
            return {
                "elapsed_s": len(timed) * steps,
                "steps": steps,
                "stop_reason": "signal" if stopped else "max_steps",
            }

        return run, []

    monkeypatch.setattr(step_times, "healing_argv", fake_argv)
    argv = ["--variants", "hbert-v1", "--settings", "own", "--steps", "12", "--measure_step_times"]
    argv += ["--measure_steps", "0", "--runs_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")]
    with pytest.raises(SystemExit, match="mlm run of hbert-v1 stopped \\(signal\\) after 6 of 12 steps"):
        main(argv)
    kept = tmp_path / "runs" / step_times.TIMED_ROUNDS_FILE
    assert len(json.loads(kept.read_text())["rounds"]) == 1
    main(argv)
    assert timed == ["distillation", "mlm", "mlm", "mlm", "distillation"]
    record = json.loads((tmp_path / "results" / step_times.STEP_TIMES_FILE).read_text())
    assert record["variants"]["hbert-v1"]["runs_s_per_step"] == {"distillation": [1.0, 5.0], "mlm": [2.0, 4.0]}
    assert not kept.exists()
    step_times.TimedRounds(tmp_path / "runs", {"device": "one"}).add({"hbert-v1": {"distillation": 1.0, "mlm": 2.0}})
    assert len(step_times.TimedRounds(tmp_path / "runs", {"device": "one"}).rounds) == 1
    assert step_times.TimedRounds(tmp_path / "runs", {"device": "another"}).rounds == []
