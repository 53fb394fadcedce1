"""The zoo: pretrain every variant × start × budget × pretraining seed, fine-tune each run on each task per
fine-tuning seed (and each variant once from random weights), gather each run's records, benchmark the size, write the
cards, then build the zoo's tables and curves from the gathered records alone.

    python -m studies.zoo --output_dir runs/zoo --variants bert hbert-v1 bert+dropmask --size tiny --budgets 30s 2m \
        --tasks trec --finetune_seeds 1 2 3 --pretrain_seeds 1 --headline_pretrain_seeds 1 2 3 \
        --pretrain_args "--max_seq_length 64" --finetune_args "--max_train_samples 200 --num_train_epochs 1"

Run directories are `<output_dir>/<variant>-<size>[-init-<checkpoint>]-<budget>-seed<seed>`; fine-tuned models go to
`<output_dir>/finetuned/<run>/<task>/<init>-seed<seed>` (a reference checkpoint's to `<output_dir>/reference/...`).
What the results are built from — each run's budget.json, config.json, mlm_curve.json and downstream records, the
references' records and the benchmark — is gathered under `<records_dir>` (default `<results_dir>/zoo_runs`, small
enough to commit); cards go to `<cards_dir>/<repo-name>/README.md` and the tables and curves to
`<results_dir>/zoo.md` and `mlm_curves.png` (`report.write_results`, which reads only the gathered records).

The jobs are modules: `arguments` (ZooArguments), `plan` (what runs and what is skipped), `run` (running it,
gathering the records, the benchmark and the cards) and `report` (the results from the gathered records).

Skipping: a step is skipped when the key of its record (`recipes.records`) is the key of what this invocation would
run. A pretraining run's key (`PretrainingKey`) is the code commit (with '+dirty' when tracked files were edited),
package versions, data fingerprint (of the source bytes and the preparation settings; a Hub dataset's is not checked
before running, it needs the download), budget, seed, model/data/budget arguments, samples per step and learning rate;
the config follows from the arguments and the code. A fine-tuning run's key (`FinetuningKey`) is its task, start, seed,
the pretraining run's weights and its settings (`recipes.evaluation.finetune_arguments.training_settings`). Results and cards are pure functions of
the gathered records and are always rewritten.
"""

from __future__ import annotations

from pathlib import Path

from transformers import pipeline

from recipes.training.arguments import parse_args
from studies.zoo.arguments import CURVES_FILE, ZooArguments
from studies.zoo.plan import ZooPlan, plan_zoo
from studies.zoo.report import best_run_dir, write_results
from studies.zoo.run import execute, write_cards

FILL_MASK_EXAMPLE = "The capital of France is [MASK]."


def print_report(args: ZooArguments, results_path: Path) -> None:
    best = best_run_dir(args.output_dir)
    fill_mask = pipeline("fill-mask", model=str(best), trust_remote_code=True)
    predictions = ", ".join(f"{p['token_str']} ({p['score']:.3f})" for p in fill_mask(FILL_MASK_EXAMPLE, top_k=3))
    print(
        f"Checkpoints and per-run curves (mlm_curve.png): {args.output_dir}/<variant>-<size>-<budget>-seed<seed>\n"
        f"Records the results and cards are built from: {args.records_dir}\nCards: {args.cards_dir}\n"
        f"Tables: {results_path}\nCurves: {results_path.parent / CURVES_FILE}\n\n"
        f"{results_path.read_text(encoding='utf-8')}\n"
        f"Fill-mask with the best model ({best}): {FILL_MASK_EXAMPLE!r} → {predictions}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> ZooPlan:
    (args,) = parse_args((ZooArguments,), argv)
    if args.results_only:
        written = write_cards(Path(args.records_dir), Path(args.cards_dir), args.namespace)
        results = write_results(args.records_dir, args.results_dir)
        print(f"Wrote {results}, {results.parent / CURVES_FILE} and {len(written)} cards in {args.cards_dir}.")
        return ZooPlan([], [])
    plan = plan_zoo(args)
    print(plan.describe(), flush=True)
    execute(plan, args)
    print_report(args, write_results(args.records_dir, args.results_dir))
    return plan
