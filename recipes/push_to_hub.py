"""Publish pretraining run directories to the Hugging Face Hub: one repo per variant × size × budget.

    python recipes/push_to_hub.py RUN_DIR --repo-id ORG/NAME [--private] [--dry-run] [--with-checkpoints]
    python recipes/push_to_hub.py --zoo runs/zoo --namespace ORG [--collection "HybridBERT Zoo"] [--private] [--dry-run]
    (either form also takes --benchmark results/benchmark_cpu.json for the cards' speed section)
    python recipes/push_to_hub.py runs/heal/STUDENT --repo-id ORG/NAME --heal-table results/heal/table.json [--dry-run]
    python recipes/push_to_hub.py runs/heal/frontier/STUDENT --repo-id ORG/NAME \
        --frontier-table results/heal/frontier/table.json [--dry-run]
    python recipes/push_to_hub.py --cards model_cards --weights_dir runs/heal/frontier [--dry-run]
    (the committed cards whose run folder is under --weights_dir, each sent as committed)

A student healed by distillation (`recipes/distill.py`) goes as a sentence encoder: the same model files, its
budget.json and agreement curve, and a card from `recipes/cards/healed.py` with the healing study's row beside its
teacher, or its healing-frontier point beside its teacher and the frontier's plot (`frontier.png`, sent with it).

Each repo receives exactly what a Hub user needs, staged in a temporary folder: the safetensors weights, config.json
(with `auto_map`), the two remote-code files, the tokenizer, the generated card (README.md, `recipes/cards/model_card.py`), the
run's results (budget.json, mlm_curve.json, the downstream records) and the curve image. With `--with-checkpoints` each
`checkpoint-N` of a run goes to branch `step-N` of its repo (its weights, config, code and tokenizer). `--zoo` publishes
every run directory of a folder (repo names `<variant>-<size>-<budget>`) and groups the repos in a Hub Collection.

Everything is checked and staged before the first network call: a missing file, weights that safetensors cannot open
or that do not match config.json, or a card without results, is refused with one message naming it. `--dry-run` stops
there and prints the plan and the staged files. Otherwise the token comes from the usual places (`HF_TOKEN`,
`hf auth login`) and is never printed or written; a missing token, or a Hub that does not answer within a few seconds
(`HF_ENDPOINT` chooses the Hub), fails with one message before anything is created.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from transformers import HfArgumentParser

from recipes.publishing.hub import check_hub, publish
from recipes.publishing.plan import PushArguments, PushError, PushPlan, describe, make_plan, stage


def parse_args(argv: list[str] | None) -> tuple[str | None, PushArguments]:
    parser = HfArgumentParser(PushArguments, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="A pretraining run directory")
    args, positional = parser.parse_args_into_dataclasses(argv)
    return positional.run_dir, args


def main(argv: list[str] | None = None, api: HfApi | None = None) -> PushPlan:
    """Plan, stage, and (unless --dry-run) publish. `api` chooses the client (default: HfApi() on HF_ENDPOINT)."""
    run_dir, args = parse_args(argv)
    plan = make_plan(run_dir, args)
    with tempfile.TemporaryDirectory(prefix="hybrid-bert-push-") as staging_root:
        staged = stage(plan, Path(staging_root))
        print(describe(plan, staged, args.dry_run), flush=True)
        if args.dry_run:
            return plan
        api = api or HfApi()
        print(f"Pushing as {check_hub(api)} to {api.endpoint}.", flush=True)
        publish(api, plan, staged)
    print("Done: " + ", ".join(f"{api.endpoint}/{repo.repo_id}" for repo in plan.repos), flush=True)
    return plan


if __name__ == "__main__":
    try:
        main()
    except PushError as error:
        sys.exit(f"push_to_hub.py: {error}")
