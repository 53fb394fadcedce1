"""The committed cards: which inputs regenerate each, whether it still matches them, and writing a zoo's cards.

    python -m recipes.cards --zoo_dir runs/zoo --namespace ORG [--benchmark results/benchmark_cpu.json]
    python -m recipes.cards --check          # every model_cards/<repo-name>/README.md is what its run gives

Cards of the zoo's runs live in `model_cards/<repo-name>/README.md`; a healed student's card (`recipes.cards.healed`)
names the healing tables it was written beside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipes.cards.healed import build_healed_card, is_healed_run
from recipes.cards.model_card import CARD_FILE, CARDS_DIR, build_card, write_card
from recipes.environment import REPO_ROOT
from recipes.records import BUDGET_FILE, CardProvenance
from recipes.run_folder.recorded_runs import pretraining_runs, repo_names
from recipes.training.arguments import parse_args


def resolve_recorded(path: str | None) -> Path | None:
    return None if path is None else REPO_ROOT / path  # an absolute path stays absolute


def regenerate(card_path: str | Path) -> str:
    """The card as its recorded inputs give it now."""
    provenance = CardProvenance.from_card(card_path)
    run_dir = resolve_recorded(provenance.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{card_path} was generated from {run_dir}, which is not here to regenerate it.")
    if is_healed_run(run_dir):
        tables = (resolve_recorded(provenance.table), resolve_recorded(provenance.frontier_table))
        return str(build_healed_card(run_dir, provenance.repo_id, *tables))
    return str(
        build_card(
            run_dir,
            provenance.repo_id,
            resolve_recorded(provenance.benchmark),
            resolve_recorded(provenance.study_table),
            provenance.arm,
        )
    )


def stale_cards(cards_dir: str | Path = CARDS_DIR) -> list[Path]:
    """Generated cards under `cards_dir/<repo-name>/README.md` that differ from what their inputs give now."""
    cards = sorted(Path(cards_dir).glob(f"*/{CARD_FILE}"))
    return [card for card in cards if card.read_text(encoding="utf-8") != regenerate(card)]


def regenerate_zoo_cards(
    zoo_dir: str | Path, namespace: str, cards_dir: str | Path = CARDS_DIR, benchmark_json: str | Path | None = None
) -> list[Path]:
    """Write `cards_dir/<repo-name>/README.md` for every run directory of the zoo."""
    return [
        write_card(run_dir, f"{namespace}/{name}", Path(cards_dir) / name / CARD_FILE, benchmark_json)
        for run_dir, name in repo_names(pretraining_runs(zoo_dir)).items()
    ]


@dataclass
class CardArguments:
    zoo_dir: str | None = field(default=None, metadata={"help": "Write a card for every run directory in this folder"})
    namespace: str | None = field(default=None, metadata={"help": "The Hub user or organisation of the zoo's repos"})
    cards_dir: str = field(default=str(CARDS_DIR), metadata={"help": "Where <repo-name>/README.md cards go"})
    benchmark: str | None = field(default=None, metadata={"help": "A recipes.benchmark JSON for the speed section"})
    check: bool = field(default=False, metadata={"help": "Fail if a card in --cards_dir differs from its regeneration"})


def main(argv: list[str] | None = None) -> list[Path]:
    (args,) = parse_args((CardArguments,), argv)
    if args.check:
        stale = stale_cards(args.cards_dir)
        if stale:
            stale_list = ", ".join(map(str, stale))
            raise SystemExit(f"Cards differ from their regeneration (run without --check): {stale_list}")
        return []
    if not (args.zoo_dir and args.namespace):
        raise SystemExit("Give --zoo_dir and --namespace (or --check).")
    written = regenerate_zoo_cards(args.zoo_dir, args.namespace, args.cards_dir, args.benchmark)
    print("\n".join(map(str, written)) or f"No run directory (a subfolder with {BUDGET_FILE}) in {args.zoo_dir}.")
    return written


if __name__ == "__main__":
    main()
