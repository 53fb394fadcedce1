"""Running a zoo plan: each step that runs, then each run's records gathered (no weights), the size benchmarked and
every card written from the gathered records."""

from __future__ import annotations

import shutil
from pathlib import Path

from recipes import benchmark, finetune, pretrain
from recipes.benchmark.harness import metadata
from recipes.cards.model_card import CARD_FILE, write_card
from recipes.records import DOWNSTREAM_DIR, BenchmarkRecord, FinetuningRecord, PretrainingRecord, benchmark_key
from recipes.run_folder.naming import run_name
from recipes.run_folder.recorded_runs import RecordedRun, pretraining_runs, repo_names
from studies.zoo.arguments import BENCHMARK_PREFIX, REFERENCE_DIR, ZooArguments
from studies.zoo.plan import FinetuningStep, ZooPlan


def gather_records(run_dir: Path, records_dir: Path) -> Path:
    """Copy what the results and cards are built from (no weights) to `records_dir/<run>`, replacing what was there."""
    target = records_dir / run_dir.name
    shutil.rmtree(target, ignore_errors=True)
    for path in [*(run_dir / name for name in RecordedRun.INPUTS), *run_dir.glob(f"{DOWNSTREAM_DIR}/*/*.json")]:
        destination = target / path.relative_to(run_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    return target


def gather_reference_record(step: FinetuningStep, records_dir: Path) -> None:
    destination = records_dir / REFERENCE_DIR / step.model / f"{run_name(step.task, seed=step.seed)}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(step.output_dir / FinetuningRecord.FILE, destination)


def run_benchmark(args: ZooArguments) -> Path:
    """Parameters and latencies of every variant at the zoo's size beside HF's BERT (Table 2, the cards); skipped when
    the recorded benchmark was measured with the same code, versions, device and arguments."""
    output_dir = Path(args.records_dir) / f"{BENCHMARK_PREFIX}{args.size}"
    argv = ["--sections", "params", "infer", "--size", args.size, "--base_size", args.size]
    argv += ["--output_dir", str(output_dir)]
    benchmark_args = benchmark.parse_args(argv)
    json_path, _ = benchmark.report_paths(benchmark_args)
    if json_path.is_file() and BenchmarkRecord.read(json_path).key() == benchmark_key(metadata(benchmark_args)):
        print(f"skip benchmark {json_path}", flush=True)
        return json_path
    json_path, _ = benchmark.main(argv)
    return json_path


def execute(plan: ZooPlan, args: ZooArguments) -> None:
    """Pretrain and fine-tune each run, gather its records; fine-tune the references; then benchmark and write
    every card from the gathered records. Only the steps that run are done."""
    records_dir = Path(args.records_dir)
    for pretraining in plan.pretraining:
        if pretraining.runs:
            pretrain.main(pretraining.argv)
        for step in pretraining.finetuning:
            if step.runs:
                finetune.main(step.argv)
        gather_records(pretraining.run_dir, records_dir)
    for step in plan.references:
        if step.runs:
            finetune.main(step.argv)
        gather_reference_record(step, records_dir)
    if args.benchmark:
        run_benchmark(args)
    write_cards(records_dir, Path(args.cards_dir), args.namespace)


def size_benchmark(records_dir: Path, size: str) -> Path | None:
    return next(iter(sorted(records_dir.glob(f"{BENCHMARK_PREFIX}{size}/benchmark_*.json"))), None)


def write_cards(records_dir: Path, cards_dir: Path, namespace: str) -> list[Path]:
    """A card for every gathered run, with its size's benchmark when there is one (names resolved over all runs)."""
    return [
        write_card(
            run_dir,
            f"{namespace}/{name}",
            cards_dir / name / CARD_FILE,
            size_benchmark(records_dir, PretrainingRecord.read(run_dir).size),
        )
        for run_dir, name in repo_names(pretraining_runs(records_dir)).items()
    ]
