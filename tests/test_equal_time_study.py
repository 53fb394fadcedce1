"""The equal-time study's plan and its machinery: arms as declared, seeds that vary the data order, calibrated runs that
a same-seed rerun reproduces exactly, fine-tunings planned from finished runs, and the report built from records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_ind

from modeling import HybridBertConfig
from recipes.cards.model_card import CARD_FILE, CARDS_DIR
from recipes.environment import REPO_ROOT
from recipes.evaluation.stats import bootstrap_interval, holm
from recipes.records import CardProvenance, EqualTimeTable, FinetuningRecord, PretrainingRecord
from recipes.training.pretrain_arguments import parse_overrides
from studies.equal_time import CALIBRATION_DIR, Plan, downstream, finetunings, gathered, headline, report, zoo
from studies.equal_time import __main__ as study
from studies.equal_time.replicates import REPLICATES_DIR
from studies.equal_time.report import leaving_point

LAYOUTS = {
    "bert": "SSSSSS",
    "bert-hbert-settings": "SSSSSS",
    "addbert": "AAAAAA",
    "hbert-v1": "SASASA",
    "hbert-v2": "SAAAAS",
    "pool-hybrid": "SSSSPP",
    "pool-hybrid-dropmask": "SSSSPP",
}


def test_the_plan_builds_every_arm_with_the_layout_its_readme_names():
    plan = Plan.read()
    assert set(plan.arms) == set(LAYOUTS)
    for name, arm in plan.arms.items():
        config = HybridBertConfig.from_variant(
            arm.variant, size=plan.size, **{**parse_overrides(plan.overrides(arm)), "mask_token_id": 103}
        )
        assert "".join(mixer[0].upper() for mixer in config.mixer_types) == LAYOUTS[name], name
    assert plan.arms["pool-hybrid-dropmask"].overrides.endswith("drop_mask=true")


def test_a_seed_sets_the_initialisation_and_the_data_order_and_nothing_else_differs():
    plan = Plan.read()
    first, second = (run for run in plan.runs() if run.arm.name == "bert" and run.budget == "5m" and run.seed < 3)
    one, two = (plan.pretraining_argv(run, Path("out")) for run in (first, second))
    differing = [(a, b) for a, b in zip(one, two) if a != b]
    assert differing == [("1", "2"), ("1", "2"), ("out/bert-5m-seed1", "out/bert-5m-seed2")]
    assert one[one.index("--seed") + 1] == one[one.index("--data_seed") + 1] == "1"
    assert one[one.index("--held_out_seed") + 1] == "42"


def test_every_fine_tuning_is_planned_once_with_its_control():
    plan = Plan.read()
    steps = finetunings(plan)
    assert len({step.name for step in steps}) == len(steps)
    tasks, arms = plan.finetuning["tasks"], plan.arms
    pretrained = [step for step in steps if step.init == "pretrained"]
    assert len(pretrained) == len(tasks) * len(arms) * len(plan.seeds) * len(plan.finetuning["budgets"])
    assert len(steps) - len(pretrained) == len(tasks) * len(arms) * len(plan.finetuning["scratch_seeds"])


def test_a_record_made_before_an_argument_existed_agrees_only_while_it_is_planned_at_the_old_behaviour():
    """Unset keeps most new arguments' behaviour, but not max_train_tokens': unset, a calibrated run prepares only
    the tokens its budget uses; 0 prepares every block, as the study's runs did."""
    recorded = {"data": {"train_file": "a.txt"}, "budget": {"budget": "15m"}}
    planned = {"data": {"train_file": "a.txt", "max_train_tokens": 0, "new_option": None}, "budget": {"budget": "15m"}}
    assert study.arguments_agree(recorded, planned)
    for changed in (1000, None):
        assert not study.arguments_agree(
            recorded, {**planned, "data": {**planned["data"], "max_train_tokens": changed}}
        )
    assert not study.arguments_agree(recorded, {**planned, "data": {**planned["data"], "new_option": 1}})
    assert not study.arguments_agree(recorded, {**planned, "budget": {"budget": "5m"}})
    assert not study.arguments_agree({**recorded, "extra": 1}, planned)


def test_main_calls_every_recorded_run_done_with_the_commands_that_made_it():
    """The committed records were made at an earlier commit; the study's commands on main must still describe them,
    so that `pretrain` neither makes them again nor continues them otherwise."""
    plan = Plan.read()
    recorded = [run for run in plan.runs() if (REPO_ROOT / report.RECORDS_DIR / run.name).is_dir()]
    assert len(recorded) == len(plan.runs())
    for run in recorded:
        assert study.recorded_state(plan, run, REPO_ROOT / report.RECORDS_DIR / run.name, REPO_ROOT) == "done", run.name


def test_plateau_leaving_point_and_holm():
    curve = [{"mask_accuracy": value, "step": step} for step, value in enumerate([0.05, 0.11, 0.13, 0.12])]
    assert leaving_point(curve, 0.12)["step"] == 2
    assert leaving_point(curve, 0.2) is None
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


def test_bootstrap_over_seeds_and_rows_covers_the_difference_and_widens_with_fewer_rows():
    generator = np.random.default_rng(1)
    reference = (generator.random((3, 400)) < 0.6).astype(float)
    better = np.maximum(reference, (generator.random((3, 400)) < 0.1).astype(float))
    low, high = bootstrap_interval(better, reference, draws=2000)
    observed = better.mean() - reference.mean()
    assert low < observed < high and low > 0
    narrow_low, narrow_high = bootstrap_interval(better[:, :40], reference[:, :40], draws=2000)
    assert narrow_high - narrow_low > high - low


def _tiny_plan(tmp_path: Path, train_file: Path) -> Path:
    tiny = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=4"
    plan = {
        "schema_version": 1,
        "size": "tiny",
        "common_overrides": tiny,
        "threads": 1,
        "pretrain_args": [
            "--train_file", str(train_file), "--max_seq_length", "32", "--per_device_train_batch_size", "4",
            "--max_eval_samples", "16", "--training_mlm_probability", "0.4", "--learning_rate", "2e-3", "--use_cpu",
        ],
        "arms": {"bert": {"variant": "bert", "overrides": "norm_style=pre"}, "pool-hybrid": {"variant": "pool-hybrid"}},
        "budgets": {"2s": 2},
        "seeds": [1],
    }  # fmt: skip
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


@pytest.mark.slow
def test_a_same_seed_rerun_of_a_study_configuration_gives_the_same_steps_and_accuracy(tmp_path, train_file):
    """A tiny plan, calibrated once, run twice into two folders by the study's own job runner: every run makes its
    calibrated steps and ends at the same held-out accuracy and loss; a third pass finds everything done."""
    plan = Plan.read(_tiny_plan(tmp_path, train_file))
    study.calibrate(plan, tmp_path / CALIBRATION_DIR, rounds=["--rounds", "1", "--steps_per_turn", "2"])
    results = []
    for attempt in ("first", "second"):
        output_dir, records_dir = tmp_path / attempt, tmp_path / f"{attempt}-records"
        study.run_jobs(study.pretraining_jobs(plan, output_dir, records_dir, tmp_path), 1, plan, tmp_path)
        results.append(
            {
                run.name: (
                    PretrainingRecord.read(records_dir / run.name).steps,
                    json.loads((records_dir / run.name / "mlm_curve.json").read_text())["points"][-1],
                )
                for run in plan.runs()
            }
        )
    assert results[0] == results[1]
    for run in plan.runs():
        assert results[0][run.name][0] == study.planned_steps(plan, run, tmp_path)
    assert study.pretraining_jobs(plan, tmp_path / "first", tmp_path / "first-records", tmp_path) == []
    # a fresh checkout holds the gathered records but no run folders: nothing is pretrained again
    assert study.pretraining_jobs(plan, tmp_path / "fresh", tmp_path / "first-records", tmp_path) == []


def test_the_committed_results_page_is_what_the_records_give(tmp_path):
    """Every number on results/equal_time/README.md (and table.json) is regenerated from the committed records: a
    page edited by hand, or records committed without regenerating it, fail here."""
    committed = Path(report.RESULTS_DIR)
    report.write_report(Plan.read(), Path(report.RECORDS_DIR), tmp_path)
    for name in ("README.md", "table.json"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name


def test_a_pretrained_arm_is_compared_with_its_random_init_control_as_two_independent_groups():
    """The control's seeds are fine-tuning seeds of seed 1's architecture, matched to no pretraining seed, so the
    committed difference is Welch's (scipy's unpaired t-interval over the records' accuracies), not a pairing by the
    seeds' numbers."""
    records = REPO_ROOT / report.RECORDS_DIR
    table = EqualTimeTable.read(Path(report.RESULTS_DIR) / "table.json")
    compared = 0
    for key, entry in table.downstream.items():
        budget, task = key.split("/", 1)
        for name, row in entry["rows"].items():
            if "vs_scratch" not in row:
                continue
            arm = name.removesuffix("/pretrained")
            # the replicates' fine-tunings stand in where the records have none (`replicates.with_replicates`)
            pretrained = [
                json.loads(path.read_text())["test"]["accuracy"]
                for folder in (records, REPO_ROOT / REPLICATES_DIR)
                for path in folder.glob(f"{arm}-{budget}-seed*/downstream/{task}/pretrained-seed*.json")
            ]
            control = [
                json.loads(path.read_text())["test"]["accuracy"]
                for path in records.glob(f"{arm}-{budget}-seed*/downstream/{task}/scratch-seed*.json")
            ]
            welch = ttest_ind(pretrained, control, equal_var=False).confidence_interval(0.95)
            assert (row["vs_scratch"]["low"], row["vs_scratch"]["high"]) == pytest.approx((welch.low, welch.high))
            compared += 1
    assert compared >= 3  # bert, hbert-v1 and pool-hybrid on trec were recorded when this was written


def test_the_published_zoo_is_the_studys():
    """results/zoo.md is what the study's records and table give, and every arm × budget whose seed-1 run is recorded
    has its committed card, written beside the study's table (`recipes.cards --check` checks each card's content)."""
    plan = Plan.read()
    page = zoo.zoo_page(plan, study_zoo_records(), zoo.TABLE_FILE, CARDS_DIR, zoo.DEFAULT_NAMESPACE, zoo.ZOO_FILE)
    assert page == zoo.ZOO_FILE.read_text(encoding="utf-8")
    published = zoo.published_runs(plan, study_zoo_records())
    assert len(published) >= 2 * len(plan.arms) - 1
    for run, recorded in published.items():
        provenance = CardProvenance.from_card(CARDS_DIR / zoo.repo_name(run, recorded) / CARD_FILE)
        assert (provenance.arm, Path(provenance.study_table)) == (run.arm.name, zoo.TABLE_FILE.relative_to(REPO_ROOT))


def study_zoo_records() -> Path:
    return REPO_ROOT / report.RECORDS_DIR


def test_an_endpoints_verdict_says_what_its_intervals_allow():
    """A [MASK] endpoint with both arms on the plateau is uninformative; a claim is supported only when the interval
    over seeds and, for a downstream endpoint, the one over seeds and test rows exclude 0 in its direction; an
    endpoint whose p times the family's size is below 0.05 survives Holm before the others are in."""
    on_plateau = {"mask_accuracy": {"1": 0.0596, "2": 0.0595, "3": 0.0596}}
    table = EqualTimeTable(
        plateau_share=0.0596, plateau_threshold=0.1192, plateau={}, downstream={}, primary_endpoints={},
        mlm={"15m": {"bert": on_plateau, "hbert-v1": on_plateau}},
    )  # fmt: skip
    endpoint = {
        "metric": "mask_accuracy", "budget": "15m", "arm": "hbert-v1", "reference": "bert", "higher_is_better": True,
        "mean": 0.0, "low": -0.0005, "high": 0.0005, "p": 0.7, "holm_p": None, "family_size": 5,
    }  # fmt: skip
    assert headline.verdict_text(table, endpoint).startswith("uninformative at this budget")
    downstream = {**endpoint, "metric": "trec_accuracy", "mean": 0.02, "low": 0.01, "high": 0.03}
    assert headline.verdict_text(table, downstream) == "supports the claim"
    not_surviving = headline.verdict_text(table, {**downstream, "holm_p": 0.052})
    assert not_surviving.startswith("cannot tell: its intervals exclude 0 in the claim's direction")
    assert "does not survive the Holm correction" in not_surviving
    assert headline.verdict_text(table, {**downstream, "holm_p": 0.049}) == "supports the claim"
    assert headline.verdict_text(table, {**downstream, "rows_interval": [-0.01, 0.05]}).startswith("cannot tell")
    wide = {**downstream, "low": -0.01, "rows_interval": [0.005, 0.03]}
    assert headline.verdict_text(table, wide).startswith("cannot tell: the interval over seeds includes 0")
    loss = {**endpoint, "metric": "loss", "higher_is_better": False, "mean": 0.1, "low": 0.05, "high": 0.15}
    assert headline.verdict_text(table, loss) == "goes against the claim"
    assert "survives Holm whatever the other endpoints give" in headline.certainty_text({**loss, "p": 0.001})
    assert headline.certainty_text({**loss, "p": 0.02}) == "Holm once every endpoint is measured"
    named = {**endpoint, "claim": "a claim", "difference": "hbert-v1 − bert"}
    one_of_two = dataclasses.replace(table, primary_endpoints={"P1": {**named, "family_size": 2}})
    assert "measured so far, 1 of 2" in "\n".join(headline.endpoints(one_of_two))
    both = {name: {**named, "family_size": 2, "holm_p": 0.9} for name in ("P1", "P2")}
    text = "\n".join(headline.endpoints(dataclasses.replace(table, primary_endpoints=both)))
    assert "All 2 primary endpoints" in text and "| 0.700 (Holm 0.900) |" in text
    assert "One-sided" not in text  # a table from before the one-sided p-values were recorded
    one_sided = {
        "P1": {**both["P1"], "holm_p_one_sided": 0.9},
        "P2": {**both["P2"], "holm_p": 0.06, "holm_p_one_sided": 0.03,
               "random_init": {"mean": 0.014, "low": -0.011, "high": 0.039}},
    }  # fmt: skip
    text = "\n".join(headline.endpoints(dataclasses.replace(table, primary_endpoints=one_sided)))
    assert (
        "One-sided in each claim's direction, the Holm-adjusted p-values would be P1 0.900, P2 0.030; P2 would then "
        "survive the Holm correction at α = 0.05." in text
    )
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| **P")}
    assert rows["| **P2**"].endswith("| +1.40 pp [-1.10, +3.90] |") and rows["| **P1**"].endswith("| – |")
    # significant two-sided but against the claim: one-sided it no longer survives
    against = {**one_sided, "P1": {**one_sided["P1"], "holm_p": 0.01, "holm_p_one_sided": 0.99}}
    text = "\n".join(headline.endpoints(dataclasses.replace(table, primary_endpoints=against)))
    assert (
        "P2 would then survive the Holm correction at α = 0.05; P1 would then not survive the Holm correction" in text
    )
    same = {**one_sided["P2"], "random_init": {"mean": 0.0, "low": 0.0, "high": 0.0, "identical": True}}
    text = "\n".join(headline.endpoints(dataclasses.replace(table, primary_endpoints={**one_sided, "P2": same})))
    assert "| 0: the same control (identical predictions at every seed) |" in text


def test_the_headline_says_how_often_the_learning_rate_grid_was_outgrown():
    """The study page's counts of fine-tunings that chose the grid's top rate, their last epoch (still improving) or
    both, and which arms chose the top rate, are counted from the records' learning-rate searches."""

    def record(rates: list[float], chosen: float, epoch: float) -> FinetuningRecord:
        search = [{"learning_rate": rate, "epoch": epoch, "selected": rate == chosen} for rate in rates]
        return dataclasses.replace(
            base, learning_rate_search=search,
            training={**base.training, "learning_rate_grid": rates, "num_train_epochs": 5.0},
        )  # fmt: skip

    base = FinetuningRecord.read(next((REPO_ROOT / report.RECORDS_DIR).glob("bert-15m-seed1/downstream/trec/*.json")))
    grid = [1e-4, 3e-4, 1e-3]
    records = {
        "bert": [record(grid, 1e-3, 5.0), record(grid, 1e-3, 3.0)],
        "addbert": [record(grid, 3e-4, 5.0), dataclasses.replace(base, learning_rate_search=None)],
    }
    edge = downstream.grid_edge(records)
    assert edge == {
        "fine_tunings": 3, "top_rate": 2, "last_epoch": 2, "top_rate_last_epoch": 1, "top_rate_by_arm": {"bert": 2},
    }  # fmt: skip
    assert downstream.task_notes("trec", {"grid_edge": edge}).startswith(
        "2 of 3 pretrained trec fine-tunings chose the grid's top learning rate (`bert` 2) and 2 of 3 their last epoch "
        "(1 both)"
    )
    nothing_at_an_edge = {**edge, "top_rate": 0, "last_epoch": 0, "top_rate_by_arm": {}}
    assert downstream.task_notes("trec", {"grid_edge": nothing_at_an_edge}) == ""


def test_a_task_where_pretraining_is_not_shown_to_help_bert_says_so():
    """Under a task's table, an interval of pretrained `bert` − its random initialisation that includes 0 is named:
    differences to `bert` there may be architectural; one that excludes 0, or a missing control, adds nothing."""

    def notes(low: float, high: float) -> str:
        rows = {"bert/pretrained": {"vs_scratch": {"mean": (low + high) / 2, "low": low, "high": high}}}
        return downstream.task_notes("wiki-topics", {"rows": rows})

    assert notes(-0.091, 0.105) == (
        "Pretrained `bert` is not shown to beat `bert` from random initialisation on wiki-topics (+0.7 pp [-9.1, "
        "+10.5]): a difference to `bert` here may come from the architectures rather than from what pretraining taught "
        "them, which each arm's random-initialisation control tells apart."
    )
    assert notes(0.01, 0.05) == ""
    assert downstream.task_notes("wiki-topics", {"rows": {"bert/pretrained": {}}}) == ""


def test_controls_that_predict_alike_at_every_seed_are_named_as_one():
    """pool-hybrid-dropmask differs from pool-hybrid only by DropMask, which acts on [MASK] tokens alone: from random
    weights at the same seed, its committed TREC controls predict every test question as pool-hybrid's do."""
    plan = Plan.read()
    runs = gathered.finished_runs(plan, REPO_ROOT / report.RECORDS_DIR)
    found = downstream.downstream(runs, REPO_ROOT / report.RECORDS_DIR)
    pairs = downstream.identical_controls(plan, found, "15m", "trec")
    assert [(pair["arm"], pair["same_as"]) for pair in pairs] == [("pool-hybrid-dropmask", "pool-hybrid")]
    assert len(pairs[0]["seeds"]) >= 2
    assert "the same control twice" in downstream.task_notes("trec", {"identical_controls": pairs})
    assert f"at each of the {len(pairs[0]['seeds'])} seeds both have" in downstream.task_notes(
        "trec", {"identical_controls": pairs}
    )
    one_seed = [{**pairs[0], "seeds": pairs[0]["seeds"][:1]}]
    assert "at the one seed both have" in downstream.task_notes("trec", {"identical_controls": one_seed})
    changed = {**found, ("pool-hybrid", "15m", "trec", "scratch"): {
        seed: dataclasses.replace(record, test_predictions=[0] * len(record.test_predictions))
        for seed, record in found["pool-hybrid", "15m", "trec", "scratch"].items()
    }}  # fmt: skip
    assert downstream.identical_controls(plan, changed, "15m", "trec") == []


def test_the_headline_gives_each_arms_finetuned_accuracy_and_only_the_plans_own_contrasts():
    """One row per arm with the task's accuracy (seed count beside it, "pending" before its first record), the
    task's baselines under the table, and the settings-against-mixer contrasts but not the arm − reference ones."""
    seeds = {"1": 0.06, "2": 0.07}
    metrics = {"mask_accuracy": seeds, "accuracy": seeds, "loss": {"1": 6.5, "2": 6.7}}
    interval = {"mean": 0.01, "low": -0.02, "high": 0.04}
    table = EqualTimeTable(
        plateau_share=0.0596, plateau_threshold=0.1192, plateau={}, primary_endpoints={},
        mlm={"15m": {"bert": metrics, "hbert-v1": metrics}},
        downstream={"15m/trec": {
            "rows": {"bert/pretrained": {"accuracy": {"1": 0.8, "2": 0.9}}}, "informative": True,
            "baselines": {"TF-IDF + LR": 0.884}, "planned": {"pretrained": 2, "scratch": 3},
        }},
        reference_arm="bert",
        contrasts={"15m": {
            "hbert-v1 − bert": {"loss": interval, "accuracy": interval},
            "hbert-v1 − bert-hbert-settings": {"loss": interval, "accuracy": interval},
        }},
    )  # fmt: skip
    # (arm, budget, seed, minutes when it left the plateau or None): bert's 30m run is a long run, still on it
    points = [
        ("bert", "15m", 1, None), ("bert", "15m", 2, None), ("hbert-v1", "15m", 1, 6.0), ("hbert-v1", "15m", 2, 9.0),
        ("bert", "30m", 1, None),
    ]  # fmt: skip
    plateau = {
        f"{arm}/{budget}/{seed}": {
            "arm": arm, "budget": budget, "seed": seed, "left": minutes is not None,
            "minutes": minutes or float(budget[:-1]), "tokens": 1e6, "mask_accuracy": 0.06,
            "evaluation_every_minutes": 1.0,
        }
        for arm, budget, seed, minutes in points
    }  # fmt: skip
    table = dataclasses.replace(table, plateau=plateau)
    text = headline.headline(table)
    assert "| `hbert-v1` | 2 | 6.50 ± 0.71% | 6.50 ± 0.71% | 6.600 | 2 of 2 seeds, at 6.0, 9.0 min |" in text
    assert "run for 30m: had not left the plateau after 30.0 calibrated core-minutes" in text
    assert "a lower bound; `hbert-v1` (every seed by 9.0 min) left it at least 3× sooner (one long run" in text
    assert "| `bert` | 2 | 6.50 ± 0.71% | 6.50 ± 0.71% | 6.600 |" in text
    assert text.count("trec test accuracy (seeds)") == 1
    assert "| 85.00 ± 7.07% (2) |" in text and "| pending |" in text
    assert "TF-IDF + LR 88.40%" in text and "trec (a headline task;" in text
    assert "No pretrained arm's mean reaches TF-IDF + LR here." in text
    assert (
        "Not in yet: the trec random-initialisation controls of `bert`, `hbert-v1`; trec for some seeds of `hbert-v1`."
        in text
    )
    assert "- hbert-v1 − bert-hbert-settings: loss +0.010 [-0.020, +0.040]" in text
    assert "hbert-v1 − bert:" not in text
    assert "from random init" not in text
    rows = table.downstream["15m/trec"]["rows"]
    with_control = {**rows, "bert/scratch": {"accuracy": {"1": 0.7}}}
    table.downstream["15m/trec"]["rows"] = with_control
    text = headline.headline(table)
    assert "| trec test accuracy (seeds) | trec test accuracy from random init (seeds) |" in text
    assert "| 85.00 ± 7.07% (2) | 70.00% (1) |" in text and "| pending | pending |" in text
    # controls are counted against the plan's control seeds (3 here), not the 2 pretraining seeds
    table.downstream["15m/trec"]["rows"] = {**rows, "bert/scratch": {"accuracy": {"1": 0.7, "2": 0.72}}}
    assert "the trec random-initialisation controls of `bert`, `hbert-v1`;" in headline.headline(table)
    table.downstream["15m/trec"]["rows"] = {**rows, "bert/scratch": {"accuracy": {"1": 0.7, "2": 0.72, "3": 0.71}}}
    assert "the trec random-initialisation controls of `hbert-v1`;" in headline.headline(table)
