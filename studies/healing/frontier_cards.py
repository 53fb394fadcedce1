"""The healing frontier's published students: for every point whose healed arm keeps ≥ 97% of MiniLM's fine-tuned
accuracy on both tasks (`frontier_table`), the healed student's card, written beside the frontier's table and plot.

    python -m studies.healing.frontier_cards          # model_cards/<run name>/README.md for each point that keeps
    python recipes/push_to_hub.py --cards model_cards --weights_dir runs/heal/frontier --dry-run   # then publish

One student per point: the choosing seed's (seed 1, the seed whose MiniLM fine-tunings chose the rates), fixed before
any point kept, so the published student is not picked on a test score; its card gives the point's results over all
seeds. A card is generated from the student's gathered records (`results/heal/frontier/runs/<name>/`), so that
`python -m recipes.cards --check` regenerates it on a checkout without weights; the weights are the run folder's. The
card of a frontier student whose point does not keep (any more) is removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from recipes.cards.healed import write_healed_card
from recipes.cards.model_card import CARD_FILE, CARDS_DIR
from recipes.environment import portable_path
from recipes.records import CardProvenance, FrontierTable
from recipes.training.arguments import parse_args
from studies.healing.frontier_runs import FrontierRunArguments, model_name

TABLE_NAME = "table.json"  # in --results_dir, written by `frontier_table`


@dataclass
class FrontierCardArguments:
    namespace: str = field(default="hybrid-bert-zoo", metadata={"help": "The Hub namespace the cards name"})
    cards_dir: str = field(default=str(CARDS_DIR), metadata={"help": "Where <repo-name>/README.md cards go"})


def published_points(table: FrontierTable) -> list[str]:
    """The points whose healed arm keeps the threshold (every seed in, the interval's lower bound on every task)."""
    return [label for label, point in table.points.items() if point["arms"]["healed"]["keeps"]]


def published_students(args: FrontierRunArguments, table: FrontierTable) -> dict[str, Path]:
    """{repo name: the student's gathered run folder} of every published point."""
    names = [model_name(args, label, "healed", args.choosing_seed) for label in published_points(table)]
    return {name: Path(args.results_dir) / "runs" / name for name in names}


def frontier_cards(cards_dir: Path, table_json: Path) -> dict[str, Path]:
    """{repo name: card} of the cards in `cards_dir` written beside this frontier table."""
    written = portable_path(table_json)
    return {
        card.parent.name: card
        for card in sorted(cards_dir.glob(f"*/{CARD_FILE}"))
        if CardProvenance.from_card(card).frontier_table == written
    }


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args, card_args = parse_args((FrontierRunArguments, FrontierCardArguments), argv)
    table_json = Path(args.results_dir) / TABLE_NAME
    if not table_json.is_file():
        raise SystemExit(f"{table_json} is missing: run python -m studies.healing.frontier_table first.")
    cards_dir = Path(card_args.cards_dir)
    students = published_students(args, FrontierTable.read(table_json))
    missing = [str(run_dir) for run_dir in students.values() if not run_dir.is_dir()]
    if missing:
        raise SystemExit(f"No gathered records for {', '.join(missing)}: run studies.healing.frontier_runs first.")
    for name, card in frontier_cards(cards_dir, table_json).items():
        if name not in students:
            shutil.rmtree(card.parent)
            print(f"removed {card}: its point does not keep the threshold")
    written = {}
    for name, run_dir in students.items():
        path = cards_dir / name / CARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        written[name] = write_healed_card(run_dir, f"{card_args.namespace}/{name}", path, frontier_json=table_json)
        print(f"wrote {path}")
    if not students:
        print(f"No frontier point keeps the threshold in {table_json}: no card to write.")
    return written


if __name__ == "__main__":
    main()
