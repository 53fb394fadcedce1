"""The zoo: a tiny real zoo (2 variants, a 2 s budget, trec on 64 examples, 2 fine-tuning seeds) is pretrained,
fine-tuned and carded; re-running skips everything; a changed input redoes exactly that run; the results are a
deterministic function of the records."""

import json
from pathlib import Path

import pytest

from recipes import zoo
from recipes.finetune import downstream_path

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
        "--output_dir", str(root / "zoo"), "--results_dir", str(root / "results"), "--size", "tiny",
        "--variants", *variants, "--budgets", *budgets, "--tasks", "trec",
        "--finetune_seeds", *map(str, finetune_seeds), "--pretrain_seeds", "1",
        "--pretrain_args", pretrain_args(train_file), "--finetune_args", FINETUNE_ARGS,
    ]  # fmt: skip


def file_mtimes(directory: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in [directory, *directory.rglob("*")]}


def run_dir(root: Path, variant: str, budget: str = "2s") -> Path:
    return root / "zoo" / f"{variant}-tiny-{budget}-seed1"


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory, train_file) -> tuple[Path, zoo.ZooPlan]:
    root = tmp_path_factory.mktemp("zoo")
    return root, zoo.main(zoo_argv(root, train_file))


# --- planning, without training ---------------------------------------------------------------------------------


def test_variant_with_dropmask_passes_the_flag_to_pretraining():
    args = zoo.ZooArguments(variants=["bert+dropmask"], budgets=["2s"])
    argv = zoo.pretraining_argv(args, "bert+dropmask", zoo.SCRATCH, "2s", 1, Path("runs/x"))
    assert argv[argv.index("--variant") + 1] == "bert" and "--drop_mask" in argv
    with pytest.raises(ValueError, match="Unknown variant"):
        zoo.split_variant("gpt")


def test_headline_seeds_apply_to_the_headline_pair_at_the_shortest_budget_only():
    args = zoo.ZooArguments(
        variants=["bert", "hbert-v1", "addbert"],
        budgets=["2m", "30s"],
        pretrain_seeds=[1],
        headline_pretrain_seeds=[1, 2, 3],
    )
    assert zoo.pretraining_seeds(args, "hbert-v1", "30s") == [1, 2, 3]
    assert zoo.pretraining_seeds(args, "bert", "30s") == [1, 2, 3]
    assert zoo.pretraining_seeds(args, "bert", "2m") == [1]
    assert zoo.pretraining_seeds(args, "addbert", "30s") == [1]


def test_an_empty_zoo_plans_every_step(tmp_path):
    args = zoo.ZooArguments(
        output_dir=str(tmp_path), variants=["bert"], budgets=["2s"], tasks=["trec"], finetune_seeds=[1, 2]
    )
    plan = zoo.plan_zoo(args)
    assert [step.run_dir.name for step in plan.pretraining] == ["bert-tiny-2s-seed1"]
    assert sorted((step.init, step.seed) for step in plan.finetuning) == [
        ("pretrained", 1), ("pretrained", 2), ("scratch", 1), ("scratch", 2)
    ]  # fmt: skip
    assert all(step.runs for step in plan.steps)


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
            for init in zoo.INITS:
                record = json.loads(downstream_path(run, "trec", init, seed).read_text())
                assert record["init"] == init and record["seed"] == seed
    table = (root / "results" / "zoo.md").read_text()
    assert "Table 1" in table and "Held-out MLM accuracy" in table and "majority class" in table
    assert all(f"| {variant} | tiny | 2s |" in table for variant in VARIANTS)
    assert (root / "results" / "mlm_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_write_results_is_deterministic_and_matches_the_written_file(tiny_zoo, tmp_path):
    root, _ = tiny_zoo
    records = root / "results" / zoo.RECORDS_DIR
    first = zoo.write_results(records, tmp_path / "a").read_text()
    second = zoo.write_results(records, tmp_path / "b").read_text()
    assert first == second == (root / "results" / "zoo.md").read_text()


@pytest.mark.slow
def test_rerunning_the_same_zoo_skips_everything(tiny_zoo, train_file):
    root, _ = tiny_zoo
    before = {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS}
    plan = zoo.main(zoo_argv(root, train_file))
    assert not any(step.runs for step in plan.steps)
    assert {variant: file_mtimes(run_dir(root, variant)) for variant in VARIANTS} == before


@pytest.mark.slow
def test_a_changed_pretraining_input_replans_exactly_that_run(tiny_zoo, train_file):
    root, _ = tiny_zoo
    args = zoo.ZooArguments(
        output_dir=str(root / "zoo"), variants=VARIANTS, budgets=["2s"], tasks=["trec"], finetune_seeds=FINETUNE_SEEDS,
        pretrain_args=pretrain_args(train_file), finetune_args=FINETUNE_ARGS,
    )  # fmt: skip
    assert not any(step.runs for step in zoo.plan_zoo(args).steps)
    args.pretrain_args += " --learning_rate 2e-4"
    assert all(step.runs for step in zoo.plan_zoo(args).steps)  # both runs share the changed arguments


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
