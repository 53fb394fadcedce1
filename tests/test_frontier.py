"""studies/healing/frontier.py: layouts chosen by the agreement of single-layer replacements, and latency of every
point beside the same-implementation control and HF's BertModel."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys

import pytest

from recipes import distill
from recipes.cards.committed import stale_cards
from recipes.cards.markdown import share_interval
from recipes.cards.model_card import CARDS_DIR
from recipes.publishing.plan import PushArguments, PushError, make_plan, stage
from recipes.records import FinetuningRecord, FrontierRecord, FrontierTable, PretrainingRecord
from studies.healing import (
    frontier_cards,
    frontier_headline,
    frontier_latency,
    frontier_runs,
    frontier_table,
    frontier_verdicts,
)
from studies.healing.frontier import (
    HF_BERT,
    SAME_IMPLEMENTATION,
    frontier_layouts,
    healing_conversions,
    main,
    point_name,
)


def test_layouts_replace_the_layers_whose_replacement_alone_costs_least():
    agreements = {0: 0.90, 1: 0.99, 2: 0.95, 3: 0.97, 4: 0.98, 5: 0.99}
    layouts = frontier_layouts(agreements, "pooling", [2, 3, 6])
    assert layouts[2] == ["self", "pooling", "self", "self", "self", "pooling"]  # a tie goes to the lower layer
    assert layouts[3] == ["self", "pooling", "self", "self", "pooling", "pooling"]
    assert layouts[6] == ["pooling"] * 6


@pytest.mark.slow
def test_frontier_measures_every_point_against_the_same_implementation(teacher_dir, tmp_path):
    argv = [
        "--teacher", str(teacher_dir), "--tasks", "trec", "--texts_per_task", "16", "--max_length", "32",
        "--counts", "2", "4", "--batch_sizes", "1", "2", "--seqs", "16", "--repeats", "1", "--group_size", "3",
        "--output_dir", str(tmp_path),
    ]  # fmt: skip
    record = main(argv)
    assert FrontierRecord.read(tmp_path / "frontier.json") == record
    for mixer in ("additive", "pooling"):
        assert set(record.layer_agreement[mixer]) == {"0", "1", "2", "3"}
        assert all(-1 <= value <= 1 for value in record.layer_agreement[mixer].values())
        assert [layout.count(mixer) for layout in record.layouts[mixer].values()] == [2, 4]
    (measured,) = record.latency_measurements
    assert set(measured["latency_ms"]) == {"1x16", "2x16"} and (measured["group_size"], measured["repeats"]) == (3, 1)
    for shape in measured["latency_ms"].values():
        names = set(shape["encoders"])
        assert names == {
            HF_BERT,
            SAME_IMPLEMENTATION,
            *(point_name(m, k) for m in ("additive", "pooling") for k in (2, 4)),
            *healing_conversions(),  # the healing study's conversions, for its table's latency column
        }
        assert shape["encoders"][SAME_IMPLEMENTATION]["ratio_vs"][SAME_IMPLEMENTATION] == 1.0
        assert len(shape["load_average_before"]) == 3
    readme = (tmp_path / "README.md").read_text()
    assert "| pooling k=4 | pppp |" in readme and f"| {SAME_IMPLEMENTATION} | all s |" in readme
    assert "| hbert-v1, teacher's settings | sasa |" in readme

    assert sorted(name for group in measured["groups"] for name in group) == sorted(names - {SAME_IMPLEMENTATION})
    assert max(map(len, measured["groups"])) - min(map(len, measured["groups"])) <= 1  # groups as even as they can be

    # a repeat keeps the record's protocol (and refuses a flag that would change it), draws its own groups, and every
    # ratio is read over both measurements
    with pytest.raises(ValueError, match="--repeats would change it"):
        main(["--repeat_latency", "--repeats", "2", "--output_dir", str(tmp_path)])
    repeated = main(["--repeat_latency", "--note", "a test", "--output_dir", str(tmp_path)])
    assert FrontierRecord.read(tmp_path / "frontier.json") == repeated
    assert repeated.layouts == record.layouts and repeated.latency_measurements[0] == measured
    again = repeated.latency_measurements[1]
    assert (again["shapes"], again["group_size"], again["repeats"]) == (["1x16", "2x16"], 3, 1)
    assert again["groups"] != measured["groups"]
    ratios = repeated.latency_ratios("2x16", point_name("additive", 4))
    first = measured["latency_ms"]["2x16"]
    timed = first["encoders"]["additive k=4"]
    assert len(ratios) == 2 and ratios[0] == timed["ratio_vs"][SAME_IMPLEMENTATION]
    assert ratios[0] == pytest.approx(timed["latency_ms"] / first["control_ms_by_group"][timed["group"]])
    readme = (tmp_path / "README.md").read_text()
    assert "(a test), N = 3, R = 1: load" in readme


def test_the_committed_frontier_page_is_what_its_record_gives():
    from studies.healing.frontier import RESULTS, report

    assert report(FrontierRecord.read(RESULTS / "frontier.json")) == (RESULTS / "README.md").read_text()


def test_the_committed_frontier_table_is_what_the_gathered_records_give():
    """Records gathered without the table made again (or the other way round) fail here: table.json, table.md and the
    README block come from the committed records and layouts alone."""
    args = frontier_runs.FrontierRunArguments()
    table = frontier_table.build_table(args)
    assert FrontierTable.read(frontier_runs.RESULTS / "table.json") == table
    assert (frontier_runs.RESULTS / "table.md").read_text() == frontier_table.page(table, args.tasks)


def test_the_committed_frontier_cards_are_the_students_the_committed_table_publishes():
    args = frontier_runs.FrontierRunArguments()
    table_json = frontier_runs.RESULTS / "table.json"
    published = frontier_cards.published_students(args, FrontierTable.read(table_json))
    assert set(frontier_cards.frontier_cards(CARDS_DIR, table_json)) == set(published)


def test_the_frontier_plan_follows_its_protocol():
    """The committed layouts: MiniLM fine-tuned at every seed (at the first with the learning-rate grid, the rest at
    the rate it chose per task), then per k, mixer and seed a 600-step distillation with MiniLM's settings, the point's
    layout and the seed's data order, and the fine-tunings of the healed and the unhealed conversion at that rate."""
    rates = {"trec": 1e-4, "wiki-topics": 2e-4}
    steps = frontier_runs.plan(frontier_runs.FrontierRunArguments(), rates)
    layouts = FrontierRecord.read(frontier_runs.RESULTS / "frontier.json").layouts
    assert len(steps) == 3 * (2 + 10 * (1 + 2 * 2)) + 2 * 4  # and the rate check: k = 6 at seed 1, both arms and tasks
    assert [step.name for step in steps[:6]] == [
        f"minilm-seed{seed}-{task}" for seed in (1, 2, 3) for task in ("trec", "wiki-topics")
    ]
    distillations = [step for step in steps if step.main is distill.main]
    assert len(distillations) == 30
    order = []
    for step in distillations:
        mixer, k, seed = re.match(r"(\w+)-k(\d)-minilm-distill-600steps-seed(\d)", step.name).groups()
        order.append((int(k), mixer, int(seed)))
        argv = " ".join(step.argv)
        assert f"--config_overrides mixer_types={'+'.join(layouts[mixer][k])}" in argv
        assert f"--seed {seed} --data_seed {seed}" in argv and "--keep_source_settings" in argv
        assert "--max_steps 600" in argv and "--bf16 false" in argv
    checks = [step.name for step in steps if frontier_runs.RATE_CHECK in step.name]
    assert len(checks) == 8 and all(re.match(r"\w+-k6-minilm-.*seed1-rate-check-", name) for name in checks)
    distilled = next(step for step in distillations if step.name == "additive-k6-minilm-distill-600steps-seed1")
    assert len(distilled.needed_by) == 4  # its weights serve the rate check's healed fine-tunings too
    assert order == sorted(order, key=lambda point: (point[0], ["additive", "pooling"].index(point[1]), point[2]))
    unhealed = next(step for step in steps if step.name == "pooling-k3-minilm-unhealed-seed2-wiki-topics")
    assert " ".join(unhealed.argv).startswith(
        f"--model minilm --convert_to pool-hybrid --keep_source_settings --convert_overrides "
        f"mixer_types={'+'.join(layouts['pooling']['3'])} --task wiki-topics --seed 2"
    )
    for step in steps:
        if step.main is not distill.main:
            argv = " ".join(step.argv)
            assert "--classifier_pooling mean" in argv
            task = "wiki-topics" if "--task wiki-topics" in argv else "trec"
            if step.name.startswith("minilm-seed1-") or frontier_runs.RATE_CHECK in step.name:
                assert "--learning_rates 5e-5 1e-4 2e-4" in argv and "--learning_rate " not in argv
            else:
                assert f"--learning_rate {rates[task]}" in argv and "--learning_rates" not in argv


def test_the_frontier_plan_waits_for_the_rate_choice_and_shards_share_it(tmp_path):
    """Until MiniLM's first-seed fine-tunings have chosen the rates, the plan is those (shard 0's; another shard
    refuses to start); then the shards deal the rest between them, each step in exactly one, in the plan's order."""
    args = frontier_runs.FrontierRunArguments(runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    assert [step.name for step in frontier_runs.plan(args)] == ["minilm-seed1-trec", "minilm-seed1-wiki-topics"]
    with pytest.raises(ValueError, match="shard 0 makes first"):
        frontier_runs.plan(dataclasses.replace(args, shard="1/2"))
    rates = {"trec": 1e-4, "wiki-topics": 5e-5}
    whole = [step.name for step in frontier_runs.plan(args, rates)]
    shards = [
        [step.name for step in frontier_runs.plan(dataclasses.replace(args, shard=f"{i}/2"), rates)] for i in (0, 1)
    ]
    assert sorted(shards[0] + shards[1]) == sorted(whole) and not set(shards[0]) & set(shards[1])
    assert shards[0][:2] == ["minilm-seed1-trec", "minilm-seed1-wiki-topics"]
    assert all(names == sorted(names, key=whole.index) for names in shards)
    first_point = [name for name in shards[1] if name.startswith("additive-k2-")]
    assert len(first_point) == 5 and all("-seed2" in name for name in first_point)  # a point at a seed stays together
    # the rates of the committed records: what they chose, and the steps made at them count as done
    committed = frontier_runs.FrontierRunArguments(runs_dir=str(tmp_path / "runs"))
    assert frontier_runs.chosen_rates(committed) == {"trec": 1e-4, "wiki-topics": 2e-4}
    done = {step.name for step in frontier_runs.plan(committed) if step.done}
    assert {"minilm-seed1-trec", "minilm-seed1-wiki-topics", "minilm-seed2-trec"} <= done
    # the choosing seed is seed 1 whatever the order of --seeds; the others train at its rates
    reordered = frontier_runs.plan(dataclasses.replace(args, seeds=[2, 1, 3]), rates)
    assert [step.name for step in reordered[:2]] == ["minilm-seed1-trec", "minilm-seed1-wiki-topics"]
    fixed = [
        step for step in reordered[2:] if step.main is not distill.main and frontier_runs.RATE_CHECK not in step.name
    ]
    assert fixed and all("--learning_rates" not in step.argv for step in fixed)
    with pytest.raises(ValueError, match="--choosing_seed 1"):
        frontier_runs.FrontierRunArguments(seeds=[2, 3])
    with pytest.raises(ValueError, match="one for each of --tasks"):
        frontier_runs.plan(args, {"trec": 1e-4})
    for bad in ("2/2", "1", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            frontier_runs.FrontierRunArguments(shard=bad)
    with pytest.raises(ValueError, match="needs --learning_rates"):
        frontier_runs.FrontierRunArguments(finetune_args=["trec=--num_train_epochs 4"], tasks=["trec"])


def test_a_shard_runs_in_one_process_and_a_plan_dealt_otherwise_waits_for_it(tmp_path):
    """A running shard holds its lock: the same shard in a second process is refused, and so is a run that deals the
    plan into another number of shards (a plain run is 0/1); the other shard of its count runs beside it, and a killed
    process leaves no lock held."""
    args = frontier_runs.FrontierRunArguments(runs_dir=str(tmp_path), shard="1/2")
    holding = (
        "import time; from studies.healing import frontier_runs; "
        f"lock = frontier_runs.hold_shard(frontier_runs.FrontierRunArguments(runs_dir={str(tmp_path)!r}, shard='1/2')); "
        "print('held', flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen([sys.executable, "-c", holding], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(SystemExit, match="another process runs this shard"):
            frontier_runs.hold_shard(args)
        with pytest.raises(SystemExit, match="shard 1/2 runs in .* start every process with --shard INDEX/2"):
            frontier_runs.hold_shard(dataclasses.replace(args, shard="0/1"))
        frontier_runs.hold_shard(dataclasses.replace(args, shard="0/2")).release()
    finally:
        holder.kill()
        holder.wait()
    frontier_runs.hold_shard(dataclasses.replace(args, shard="0/1")).release()


@pytest.mark.slow
def test_a_frontier_point_runs_once_on_a_tiny_teacher(teacher_dir, train_file, tmp_path):
    """One point, one seed, one task on a 4-layer teacher: every step runs with the arguments the plan gives (the
    conversion's layout reaches the distilled and the unhealed model), its records are gathered, and the same command
    then runs nothing."""
    layouts = {"additive": {"2": ["self", "additive", "additive", "self"]}}
    FrontierRecord(
        teacher=str(teacher_dir), validation_texts={}, layer_agreement={}, layouts=layouts, latency_measurements=[],
        device="cpu", threads=1, git_commit="test", measured_at="now",
    ).write(tmp_path / "frontier.json")  # fmt: skip
    argv = [
        "--teacher", str(teacher_dir), "--layouts", str(tmp_path / "frontier.json"), "--mixers", "additive",
        "--counts", "2", "--seeds", "1", "--steps", "3", "--tasks", "trec", "wiki-topics",
        "--training_args", f"--train_file {train_file} --max_seq_length 32 --per_device_train_batch_size 8 "
        "--max_eval_samples 16 --num_eval_points 1 --budget 10m --use_cpu",
        "--finetune_args", *(f"{task}=--max_train_samples 32 --num_train_epochs 1 --max_seq_length 32 --use_cpu "
                             "--learning_rates 1e-4 2e-4" for task in ("trec", "wiki-topics")),
        "--runs_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
    ]  # fmt: skip
    steps = frontier_runs.main(argv)
    assert len(steps) == 2 + 1 + 2 * 2 + 2 * 2 and all(step.done for step in steps)  # k = 2 is the largest: checked
    teacher = teacher_dir.name
    gathered = tmp_path / "results" / "runs" / f"additive-k2-{teacher}-distill-3steps-seed1" / "config.json"
    assert json.loads(gathered.read_text())["mixer_types"] == layouts["additive"]["2"]
    unhealed = FinetuningRecord.read(
        tmp_path / "results" / "finetuned" / f"additive-k2-{teacher}-unhealed-seed1-trec.json"
    )
    assert unhealed.model["converted"]["overrides"] == "mixer_types=self+additive+additive+self"
    chosen = FinetuningRecord.read(tmp_path / "results" / "finetuned" / f"{teacher}-seed1-trec.json")
    assert chosen.training["learning_rate_grid"] == [1e-4, 2e-4]
    assert unhealed.training["learning_rate_grid"] is None and unhealed.test_predictions
    assert unhealed.training["learning_rate"] == chosen.selected_search_entry["learning_rate"]
    assert all(step.done for step in frontier_runs.main([*argv, "--dry_run"]))
    # a distillation stopped by a signal (its record, no config beside it yet) continues from its checkpoint
    run_dir = tmp_path / "runs" / f"additive-k2-{teacher}-distill-3steps-seed1"
    finished = PretrainingRecord.read(run_dir)
    (run_dir / "config.json").rename(tmp_path / "config.json")
    dataclasses.replace(finished, steps=1, stop_reason="signal").write(run_dir)
    stopped = next(step for step in frontier_runs.main([*argv, "--dry_run"]) if step.main is distill.main)
    assert not stopped.current(stopped.record) and "--overwrite_output_dir" not in stopped.argv
    finished.write(run_dir)
    (tmp_path / "config.json").rename(run_dir / "config.json")
    # a new checkout: the gathered records without the run folders. Everything is done; with one healed fine-tuning's
    # record gone, it and its distillation (whose weights it needs) are not, and nothing else
    (tmp_path / "runs").rename(tmp_path / "runs-elsewhere")
    assert all(step.done for step in frontier_runs.main([*argv, "--dry_run"]))
    healed_trec = tmp_path / "results" / "finetuned" / f"additive-k2-{teacher}-distill-3steps-seed1-trec.json"
    healed_trec.rename(tmp_path / "healed-trec.json")
    fresh = frontier_runs.main([*argv, "--dry_run"])
    assert {step.name for step in fresh if not step.done} == {
        f"additive-k2-{teacher}-distill-3steps-seed1",
        f"additive-k2-{teacher}-distill-3steps-seed1-trec",
    }
    (tmp_path / "healed-trec.json").rename(healed_trec)
    (tmp_path / "runs-elsewhere").rename(tmp_path / "runs")
    # the table, from those records: each arm's share of the teacher's accuracy with its interval, and a verdict
    table = frontier_table.main(argv)
    assert FrontierTable.read(tmp_path / "results" / "table.json") == table
    assert (tmp_path / "results" / "frontier.png").stat().st_size > 0
    teacher_accuracy = table.denominators["teacher"]["trec"]["mean"]
    for arm in ("unhealed", "healed"):
        trec = table.points["additive-k2"]["arms"][arm]["tasks"]["trec"]
        share = trec["share_of_teacher"]
        assert share["seeds"] == [1] and share["mean"] == pytest.approx(trec["accuracy"]["mean"] / teacher_accuracy)
        assert share["low"] <= share["mean"] <= share["high"]
        wiki = table.points["additive-k2"]["arms"][arm]["tasks"]["wiki-topics"]["share_of_teacher"]
        assert table.points["additive-k2"]["arms"][arm]["keeps"] == (min(share["low"], wiki["low"]) >= 0.97)
    assert table.primary["additive"]["complete"]
    # where the sequence stops, its failing bound is given with the bootstrap's own error around it
    healed = table.points["additive-k2"]["arms"]["healed"]
    assert ("stopped_at" in table.primary["additive"]) == (healed["keeps"] is False)
    if healed["keeps"] is False:
        stopped = table.primary["additive"]["stopped_at"]
        share = healed["tasks"][stopped["task"]]["share_of_teacher"]
        assert stopped["share_of_teacher"] == share and share["low"] < 0.97
        spread = stopped["low_over_generator_seeds"]
        assert spread["min"] <= spread["max"] and spread["seeds"] == 20
    arms = table.points["additive-k2"]["arms"]
    healing_gain = table.points["additive-k2"]["healing_gain"]["trec"]
    assert healing_gain["mean"] == pytest.approx(
        arms["healed"]["tasks"]["trec"]["accuracy"]["mean"] - arms["unhealed"]["tasks"]["trec"]["accuracy"]["mean"]
    )
    assert healing_gain["low"] <= healing_gain["mean"] <= healing_gain["high"]
    # the rate check: each arm's own choice from the grid against its fine-tuning at the teacher's rate
    check = table.rate_check["additive-k2"]
    assert (check["k"], check["seed"]) == (2, 1)
    for arm in ("unhealed", "healed"):
        for task in ("trec", "wiki-topics"):
            entry = check["arms"][arm][task]
            model = f"additive-k2-{teacher}-{'unhealed' if arm == 'unhealed' else 'distill-3steps'}-seed1"
            own = FinetuningRecord.read(tmp_path / "results" / "finetuned" / f"{model}-rate-check-{task}.json")
            assert entry["learning_rate"] == own.selected_search_entry["learning_rate"] in (1e-4, 2e-4)
            assert set(entry["validation_macro_f1"]) == {"0.0001", "0.0002"}
            moved = entry["own_rate_minus_teachers"]
            one_rate = table.points["additive-k2"]["arms"][arm]["tasks"][task]["accuracy"]["mean"]
            assert moved["mean"] == pytest.approx(own.test["accuracy"] - one_rate)
    assert check["healing_gain"]["trec"]["at_teachers_rate"]["mean"] == pytest.approx(healing_gain["mean"])
    assert "**Rate check** (exploratory; k = 2, seed 1)" in (tmp_path / "results" / "table.md").read_text()
    # the published students: a point whose healed arm keeps gets its seed-1 student's card beside the frontier's
    # table (regenerated from the gathered records), and a push of the committed cards sends the frontier's plot with
    # it; once the point does not keep, its card goes
    table_json, cards_dir = tmp_path / "results" / "table.json", tmp_path / "cards"
    student = f"additive-k2-{teacher}-distill-3steps-seed1"
    point = table.points["additive-k2"]
    for keeps in (True, False):
        arms = {**point["arms"], "healed": {**point["arms"]["healed"], "keeps": keeps}}
        dataclasses.replace(table, points={"additive-k2": {**point, "arms": arms}}).write(table_json)
        written = frontier_cards.main([*argv, "--cards_dir", str(cards_dir), "--namespace", "org"])
        assert list(written) == ([student] if keeps else []) and stale_cards(cards_dir) == []
        assert [card.parent.name for card in cards_dir.glob("*/README.md")] == list(written)
        if keeps:
            card = written[student].read_text()
            assert "### On the healing frontier" in card and "healed yes" in card and "](frontier.png)" in card
            assert "layout of its own" in card  # additive k = 2 is not addbert's layout
            # the card's shares read as the table's and the README's, the lower bound that decides to 2 decimals
            share = point["arms"]["healed"]["tasks"]["trec"]["share_of_teacher"]
            assert f"({share_interval(share)} of the teacher's)" in card
            plan = make_plan(None, PushArguments(cards=str(cards_dir), weights_dir=str(tmp_path / "runs")))
            (repo,) = plan.repos
            assert repo.repo_id == f"org/{student}" and "frontier.png" in repo.uploads[0].files
            staged = stage(plan, tmp_path / "staging")[repo.repo_id, "main"]
            assert (staged / "frontier.png").read_bytes() == (tmp_path / "results" / "frontier.png").read_bytes()
            # a student whose layout is no point of the table is refused with one message, before anything is staged
            other = dataclasses.replace(table, points={"additive-k2": {**point, "layout": ["self"] * 4}})
            other.write(tmp_path / "other" / "table.json")
            (tmp_path / "other" / "frontier.png").write_bytes(b"png")
            with pytest.raises(PushError, match="has this model's layout"):
                make_plan(
                    str(tmp_path / "runs" / student),
                    PushArguments(repo_id="org/x", frontier_table=str(tmp_path / "other" / "table.json")),
                )
    # a gathered record its step would not make now (another rate) does not enter the table
    original = healed_trec.read_text()
    stale = FinetuningRecord.read(healed_trec)
    dataclasses.replace(stale, training={**stale.training, "learning_rate": 3e-4}).write(healed_trec)
    assert (
        frontier_table.main(argv).points["additive-k2"]["arms"]["healed"]["tasks"]["trec"]["share_of_teacher"] is None
    )
    healed_trec.write_text(original)
    # a layout made again differently: the distillation and the unhealed fine-tunings are no longer done
    FrontierRecord(
        teacher=str(teacher_dir), validation_texts={}, layer_agreement={}, latency_measurements=[], device="cpu", threads=1,
        git_commit="test", measured_at="now", layouts={"additive": {"2": ["additive", "self", "self", "additive"]}},
    ).write(tmp_path / "frontier.json")  # fmt: skip
    planned = frontier_runs.main([*argv, "--dry_run"])
    stale = {step.name for step in planned if not step.done}
    assert "--overwrite_output_dir" in next(step for step in planned if step.main is distill.main).argv
    assert stale == {
        f"additive-k2-{teacher}-distill-3steps-seed1",
        *(
            f"additive-k2-{teacher}-unhealed-seed1{check}-{task}"
            for task in ("trec", "wiki-topics")
            for check in ("", "-rate-check")
        ),
    }


def test_the_primary_endpoint_is_a_fixed_sequence_decided_at_its_first_failure():
    """k in ascending order up to the first that does not keep the threshold: decided once that failure and every
    smaller k are in, whatever larger k are still missing; nothing before."""
    assert frontier_verdicts.primary([True, True, False, True], [2, 3, 4, 5]) == {"complete": True, "largest_k": 3}
    assert frontier_verdicts.primary([False, True], [2, 3]) == {"complete": True, "largest_k": None}
    assert frontier_verdicts.primary([False, None], [2, 3]) == {"complete": True, "largest_k": None}
    assert frontier_verdicts.primary([True, False, None], [2, 3, 4]) == {"complete": True, "largest_k": 2}
    assert frontier_verdicts.primary([True, None], [2, 3]) == {"complete": False, "largest_k": None}
    assert frontier_verdicts.primary([None, False], [2, 3]) == {"complete": False, "largest_k": None}
    assert frontier_verdicts.primary([True, True], [3, 2]) == {"complete": True, "largest_k": 3}


def test_the_readme_block_gives_each_points_shares_the_endpoint_the_fastest_keeper_and_where_healing_pays():
    def arm(trec, wiki, keeps):
        return {
            "tasks": {
                task: {
                    "share_of_teacher": None
                    if value is None
                    else {"mean": value, "low": value - 0.01, "high": value + 0.01, "seeds": [1, 2, 3]}
                }
                for task, value in (("trec", trec), ("wiki-topics", wiki))
            },
            "keeps": keeps,
        }

    def point(k, latency, unhealed, healed, gain_low):
        return {
            "mixer": "additive", "k": k, "latency_ratio": latency, "selection_ratio": latency,
            "latency_ratios": [latency - 0.01, latency + 0.01],
            "meets_latency_target": frontier_latency.latency_verdict([latency - 0.01, latency + 0.01] * 4),
            "arms": {"unhealed": unhealed, "healed": healed},
            "healing_gain": {"trec": {"mean": gain_low + 0.01, "low": gain_low, "high": gain_low + 0.02}},
        }  # fmt: skip

    def stopped(k, task, mean):
        share = {"mean": mean, "low": mean - 0.01, "high": mean + 0.01}
        return {
            "k": k, "task": task, "share_of_teacher": share,
            "low_over_generator_seeds": {"seeds": 20, "min": mean - 0.0105, "max": mean - 0.0095},
            "low_at_more_draws": {"draws": 20000, "low": mean - 0.0102},
        }  # fmt: skip

    teacher_seeds = {task: {"mean": 0.9, "sd": 0.01, "seeds": [1, 2, 3]} for task in ("trec", "wiki-topics")}
    table = FrontierTable(
        threshold=0.97, latency_shape="8x512", denominators={"teacher": teacher_seeds},
        primary={"additive": {"complete": True, "largest_k": 3, "stopped_at": stopped(4, "trec", 0.95)}},
        points={
            "additive-k2": point(2, 0.93, arm(0.99, 0.99, True), arm(0.995, 0.99, True), -0.01),
            "additive-k3": point(3, 0.88, arm(0.96, 0.97, False), arm(0.99, 0.985, True), 0.005),
            "additive-k4": point(4, 0.84, arm(0.90, None, None), arm(0.95, 0.96, False), 0.02),
        },
    )  # fmt: skip
    text = frontier_headline.headline(table)
    assert (
        "| additive k=3 | 0.88× (0.87–0.89; target missed: geometric mean 0.880× [0.871, 0.889] over its 8 measurements) | 96.0% [95.00, 97.0] | 97.0% [96.00, 98.0] "
        "| 99.0% [98.00, 100.0] |" in text
    )
    assert "| 90.0% [89.00, 91.0] | pending | 95.0% [94.00, 96.0] | 96.0% [95.00, 97.0] | pending / no |" in text
    # the endpoint names the measurement where the sequence stopped, with the bootstrap's own error at its bound
    assert (
        "healed, it keeps ≥ 97% up to k = 3; the sequence stops at k = 4 healed: 95.0% of MiniLM's trec accuracy at "
        "MiniLM's learning rate, 95% interval [94.00, 96.0], its lower bound 3.00 points under 97% (the declared "
        "2,000-resample bootstrap; at 20 other generator seeds the bound is 93.95 to 94.05, at 20,000 resamples "
        "93.98)." in text
    )
    every_k = dataclasses.replace(table, primary={"additive": {"complete": True, "largest_k": 4}})
    assert "healed, it keeps ≥ 97% up to k = 4, every k." in frontier_headline.headline(every_k)
    at_k2 = dataclasses.replace(
        table,
        primary={"additive": {"complete": True, "largest_k": None, "stopped_at": stopped(2, "wiki-topics", 0.969)}},
    )
    assert (
        "not shown to keep ≥ 97% healed at any k; the sequence stops at k = 2 healed: 96.9% of MiniLM's wiki-topics "
        "accuracy at MiniLM's learning rate, 95% interval [95.90, 97.9]" in frontier_headline.headline(at_k2)
    )
    # a share with fewer seeds than MiniLM's says so
    partial = dataclasses.replace(table, points={
        **table.points, "additive-k2": {**table.points["additive-k2"], "arms": {
            "unhealed": table.points["additive-k2"]["arms"]["unhealed"],
            "healed": {**arm(0.99, 0.99, None), "tasks": {"trec": {"share_of_teacher": {
                "mean": 0.99, "low": 0.98, "high": 1.0, "seeds": [1]}}, "wiki-topics": {"share_of_teacher": None}}},
        }},
    })  # fmt: skip
    assert "| 99.0% [98.00, 100.0] (n=1 of 3 so far) | pending | yes / pending |" in frontier_headline.headline(partial)
    assert (
        "Fastest point that keeps it so far: additive k=3 (healed) at 0.88×; the target, ≤ 0.80×: missed: geometric mean 0.880×"
        in text
    )
    assert (
        "healing pays (healed − unhealed accuracy, its interval above 0 on a task) first at k = 3 (not every point and "
        "seed is in)" in text
    )
    assert "`python -m studies.healing.frontier_cards`): additive k=2 at 0.93×, additive k=3 at 0.88×." in text
    assert text.endswith("](results/heal/frontier/frontier.png)")
    assert frontier_headline.headline(None).startswith("No frontier point's accuracy is measured yet")
    # before any point keeps it, the fastest point's latency verdict still shows
    unkept = dataclasses.replace(table, primary={"additive": {"complete": False, "largest_k": None}}, points={
        label: {**point, "arms": {arm: {**entry, "keeps": None} for arm, entry in point["arms"].items()}}
        for label, point in table.points.items()
    })  # fmt: skip
    assert (
        "- No point keeps it yet. The fastest point, additive k=4 (0.84× on the first 4 measurements, which rank), "
        "against the target, ≤ 0.80×, on the measurements that decide it: missed: geometric mean 0.840×"
        in frontier_headline.headline(unkept)
    )
    assert "`python -m studies.healing.frontier_cards`): none yet." in frontier_headline.headline(unkept)

    # before any accuracy: each point's latency, and how close the fastest comes to the target
    def measured(ratios: dict[str, float]) -> dict:
        encoders = {name: {"ratio_vs": {SAME_IMPLEMENTATION: value}} for name, value in ratios.items()}
        return {"latency_ms": {"8x512": {"encoders": encoders}}}

    layouts = FrontierRecord(
        teacher="minilm", validation_texts={}, layer_agreement={}, device="cpu", threads=2, git_commit="0",
        measured_at="then", layouts={"additive": {"2": [], "3": []}, "pooling": {"2": []}},
        latency_measurements=[
            measured({"additive k=2": 0.93, "additive k=3": 0.78, "pooling k=2": 0.95}),
            measured({"additive k=2": 0.95, "additive k=3": 0.82, "pooling k=2": 0.97}),
        ],
    )  # fmt: skip
    text = frontier_headline.headline(None, layouts)
    assert "the mean of 2 measurements: additive k = 2, 3: 0.94×, 0.80×; pooling k = 2: 0.96×." in text
    assert (
        "The point judged, additive k = 3, the fastest on the first 2 measurements (0.80×), averages 0.80× (0.78–0.82) "
        "over all 2; the target, ≤ 0.80× (1.25× faster), is decided by the 5th to 12th measurements alone: pending: 0 "
        "of its 8 measurements" in text
    )
    # the first four measurements rank the points, the 5th to 12th decide the target, and a 13th is never read: in the
    # later measurements pooling k=2 is faster still, but the point judged is the one the first four chose
    decided = dataclasses.replace(layouts, latency_measurements=[
        *layouts.latency_measurements * 2,
        *(measured({"additive k=2": 0.94, "additive k=3": 0.76 + 0.005 * index, "pooling k=2": 0.60})
          for index in range(8)),
        measured({"additive k=2": 0.94, "additive k=3": 5.0, "pooling k=2": 0.60}),
    ])  # fmt: skip
    text = frontier_headline.headline(None, decided)
    assert (
        "The point judged, additive k = 3, the fastest on the first 4 measurements (0.80×), averages 1.11× (0.76–5.00) "
        "over all 13; the target, ≤ 0.80× (1.25× faster), is decided by the 5th to 12th measurements alone: met: "
        "geometric mean 0.777× [" in text
    )


def test_the_latency_target_is_decided_by_an_interval_over_a_fixed_number_of_measurements():
    """Geometric mean of the 8 verdict measurements with a 95% t-interval on the log ratios: met when the interval is at
    or below 0.80, missed when above, undecided when it straddles; pending before all 8, however clear the first few."""
    verdict = frontier_latency.latency_verdict
    assert verdict([0.70] * 7) == {"verdict": "pending", "measurements": 7, "of": 8}
    met = verdict([0.74, 0.76] * 4)
    # log ratios ±0.0134 around log 0.7499: sd 0.014255, t(0.975, 7 df) = 2.364624, half-width 0.011917
    assert met["verdict"] == "met" and met["ratio"] == pytest.approx((0.74 * 0.76) ** 0.5)
    assert met["high"] == pytest.approx(met["ratio"] * math.exp(2.364624 * 0.014255 / 8**0.5), rel=1e-4)
    assert verdict([0.82, 0.84] * 4)["verdict"] == "missed"
    assert verdict([0.76, 0.84] * 4)["verdict"] == "undecided"
    with pytest.raises(ValueError, match="decided by 8 measurements; got 9"):
        verdict([0.70] * 9)
    # a verdict measurement that skipped the point leaves it undecidable, not pending for good
    skipped = verdict([0.70] * 7, made=8)
    assert skipped == {"verdict": "incomplete", "measurements": 7, "of": 8, "made": 8}
    assert frontier_latency.latency_verdict_text(skipped).startswith("target undecidable: 1 of its first 8")
    assert verdict([0.70] * 3, made=5)["verdict"] == "incomplete"
